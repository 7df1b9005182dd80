import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A throwaway HTTP/1.1 server on 127.0.0.1 for exercising the downloader offline.
///
/// It binds port 0 (the kernel picks a free one), answers at most `maxRequests`
/// connections on a background thread, and gives up on its own after `lifetime`
/// seconds, so a failing test can never leave it running or hang the suite.
final class LocalHTTPServer: @unchecked Sendable {
    struct Response {
        var status: Int
        var reason: String
        var body: [UInt8]
    }

    let port: UInt16
    private let listener: Int32
    private let routes: [String: Response]
    private let done = DispatchSemaphore(value: 0)
    private let lock = NSLock()
    private var _requestedPaths: [String] = []

    var requestedPaths: [String] { lock.lock(); defer { lock.unlock() }; return _requestedPaths }

    init(routes: [String: Response], maxRequests: Int = 4, lifetime: TimeInterval = 20) throws {
        self.routes = routes
        // Set up on a local first: closures may not capture self before every member is set.
        let fd = socket(AF_INET, Self.streamType, 0)
        guard fd >= 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
        var address = Self.loopback(port: 0)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 8) == 0 else {
            close(fd)
            throw POSIXError(.init(rawValue: errno) ?? .EIO)
        }
        var actual = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &actual) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        listener = fd
        port = UInt16(bigEndian: actual.sin_port)
        let deadline = Date().addingTimeInterval(lifetime)
        Thread.detachNewThread { [self] in
            serve(maxRequests: maxRequests, deadline: deadline)
        }
    }

    func url(_ path: String) -> URL { URL(string: "http://127.0.0.1:\(port)\(path)")! }

    /// Waits for the server thread to finish (it closes the listening socket itself).
    func stop() {
        shutdown(listener, Int32(SHUT_RDWR))
        _ = done.wait(timeout: .now() + 5)
    }

    /// A port on 127.0.0.1 that nothing listens on: bound, then closed.
    static func closedPort() throws -> UInt16 {
        let server = try LocalHTTPServer(routes: [:], maxRequests: 0, lifetime: 0)
        server.stop()
        return server.port
    }

    private func serve(maxRequests: Int, deadline: Date) {
        defer { close(listener); done.signal() }
        var served = 0
        while served < maxRequests {
            let remaining = deadline.timeIntervalSinceNow
            if remaining <= 0 { return }
            var poller = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
            let ready = poll(&poller, 1, Int32(min(remaining, 0.2) * 1000))
            if ready < 0 { return }
            if ready == 0 { continue }
            if poller.revents & Int16(POLLHUP | POLLERR | POLLNVAL) != 0 { return }
            let client = accept(listener, nil, nil)
            if client < 0 { return }
            served += 1
            handle(client)
            close(client)
        }
    }

    private func handle(_ client: Int32) {
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var request: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        let terminator: [UInt8] = Array("\r\n\r\n".utf8)
        while request.count < 65536 {
            let count = recv(client, &chunk, chunk.count, 0)
            if count <= 0 { break }
            request.append(contentsOf: chunk[0 ..< count])
            if request.count >= 4, request.indices.dropLast(3).contains(where: { Array(request[$0 ..< $0 + 4]) == terminator }) { break }
        }
        let line = String(decoding: request.prefix(while: { $0 != 13 && $0 != 10 }), as: UTF8.self)
        let parts = line.split(separator: " ")
        let path = parts.count >= 2 ? String(parts[1]) : "/"
        lock.lock(); _requestedPaths.append(path); lock.unlock()
        let response = routes[path] ?? Response(status: 404, reason: "Not Found", body: Array("no such file\n".utf8))
        let header = "HTTP/1.1 \(response.status) \(response.reason)\r\nContent-Type: application/octet-stream\r\nContent-Length: \(response.body.count)\r\nConnection: close\r\n\r\n"
        sendAll(client, Array(header.utf8) + response.body)
    }

    private func sendAll(_ client: Int32, _ bytes: [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes.withUnsafeBytes { send(client, $0.baseAddress! + offset, bytes.count - offset, Int32(Self.noSignal)) }
            if sent <= 0 { return }
            offset += sent
        }
    }

    private static func loopback(port: UInt16) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return address
    }

    #if canImport(Glibc)
    private static let streamType = Int32(SOCK_STREAM.rawValue)
    private static let noSignal = Int(MSG_NOSIGNAL)
    #else
    private static let streamType = SOCK_STREAM
    private static let noSignal = 0
    #endif
}
