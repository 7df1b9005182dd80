import CriaCore
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Downloads a weight file so that the destination is either the complete,
/// verified file or untouched: the body streams into a temporary file beside
/// the destination, is hashed on the way in, checked, and only then renamed
/// into place. Every error is one line naming the file and the URL.
public struct WeightsDownloader {
    /// Seconds without any data before giving up; this is what makes an offline
    /// machine fail within a bounded time instead of hanging.
    public var timeout: TimeInterval
    /// Upper bound on the whole transfer.
    public var resourceTimeout: TimeInterval
    /// Draws a progress line on stderr; off by default unless stderr is a terminal,
    /// so logs and CI output stay free of carriage-return noise.
    public var showProgress: Bool
    /// Appended to network failures (not to verification failures), e.g. how to get weights offline.
    public var offlineHint: String?

    public init(timeout: TimeInterval = 30, resourceTimeout: TimeInterval = 3600,
                showProgress: Bool = isatty(STDERR_FILENO) != 0, offlineHint: String? = nil) {
        self.timeout = timeout
        self.resourceTimeout = resourceTimeout
        self.showProgress = showProgress
        self.offlineHint = offlineHint
    }

    public struct Result: Equatable {
        public var url: URL
        public var sha256: String
        public var bytes: Int
    }

    /// Downloads `url` to `destination`.
    /// - Parameters:
    ///   - expectedSHA256: lower-case hex; a mismatch discards the download.
    ///   - requireHDF5: reject bodies without the HDF5 signature (error pages, truncation).
    ///   - minimumBytes: reject bodies smaller than this (a real weight file is megabytes).
    @discardableResult
    public func download(_ url: URL, to destination: URL, expectedSHA256: String? = nil,
                         requireHDF5: Bool = true, minimumBytes: Int = 0) throws -> Result {
        let name = destination.lastPathComponent
        let directory = destination.deletingLastPathComponent()
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        } catch {
            throw CriaError("\(directory.path): cannot create directory for \(name): \(error.localizedDescription)")
        }
        let temporary = AtomicFile.temporaryURL(beside: destination)
        guard FileManager.default.createFile(atPath: temporary.path, contents: nil),
              let handle = FileHandle(forWritingAtPath: temporary.path) else {
            throw CriaError("\(temporary.path): cannot create temporary file for \(name): \(String(cString: strerror(errno)))")
        }
        var keepTemporary = false
        defer { if !keepTemporary { try? FileManager.default.removeItem(at: temporary) } }

        let delegate = DownloadDelegate(handle: handle, progress: showProgress ? ProgressLine(name: name) : nil)
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = timeout
        configuration.timeoutIntervalForResource = resourceTimeout
        configuration.requestCachePolicy = .reloadIgnoringLocalCacheData
        let queue = OperationQueue()
        queue.maxConcurrentOperationCount = 1
        let session = URLSession(configuration: configuration, delegate: delegate, delegateQueue: queue)
        session.dataTask(with: URLRequest(url: url)).resume()
        delegate.finished.wait()
        // Breaks the session -> delegate reference cycle.
        session.finishTasksAndInvalidate()
        try? handle.close()
        delegate.progress?.finish()

        let prefix = "cannot download \(name) from \(url.absoluteString)"
        if let status = delegate.httpStatus, !(200 ..< 300).contains(status) {
            throw CriaError("\(prefix): HTTP \(status)\(Self.statusText(status).map { " \($0)" } ?? "")")
        }
        if let error = delegate.writeError {
            throw CriaError("\(prefix): cannot write \(temporary.path): \(error)")
        }
        if let error = delegate.transportError {
            let hint = offlineHint.map { "; \($0)" } ?? ""
            throw CriaError("\(prefix): \(Self.describe(error, timeout: timeout))\(hint)")
        }
        if let expected = delegate.expectedLength, expected >= 0, expected != Int64(delegate.received) {
            throw CriaError("\(prefix): transfer ended after \(delegate.received) of \(expected) bytes")
        }

        let digest = delegate.hasher.finalizeHex()
        let source = "\(name) downloaded from \(url.absoluteString)"
        if let expected = expectedSHA256?.lowercased(), digest != expected {
            throw CriaError("\(source) has sha256 \(digest), expected \(expected); the download was discarded")
        }
        if delegate.received < minimumBytes {
            throw CriaError("\(source) is only \(delegate.received) bytes, expected at least \(minimumBytes); the download was discarded")
        }
        if requireHDF5 && !Weights.hasHDF5Signature(temporary) {
            throw CriaError("\(source) is not an HDF5 file (\(delegate.received) bytes starting \(Self.printable(delegate.head))); the download was discarded")
        }
        try AtomicFile.replace(destination, with: temporary)
        keepTemporary = true
        return Result(url: url, sha256: digest, bytes: delegate.received)
    }

    /// A short reason for a transport failure; Foundation's own descriptions on
    /// Linux are often the generic "The operation could not be completed".
    static func describe(_ error: Error, timeout: TimeInterval) -> String {
        if let urlError = error as? URLError {
            switch urlError.code {
            case .cannotConnectToHost: return "connection refused"
            case .cannotFindHost, .dnsLookupFailed: return "host not found (no network or DNS)"
            case .notConnectedToInternet, .networkConnectionLost: return "no network connection"
            case .timedOut: return "timed out (no data for \(Int(timeout)) s)"
            case .secureConnectionFailed, .serverCertificateUntrusted, .serverCertificateHasBadDate,
                 .serverCertificateNotYetValid, .serverCertificateHasUnknownRoot:
                return "TLS failure (\(urlError.localizedDescription))"
            case .unsupportedURL: return "unsupported URL"
            default: break
            }
        }
        let nsError = error as NSError
        return "\(nsError.localizedDescription) (\(nsError.domain) \(nsError.code))"
    }

    /// Own wording rather than HTTPURLResponse.localizedString, which differs between Darwin and Linux.
    static func statusText(_ status: Int) -> String? {
        switch status {
        case 401: return "unauthorized"
        case 403: return "forbidden"
        case 404: return "not found"
        case 410: return "gone"
        case 429: return "too many requests"
        case 500 ..< 600: return "server error"
        default: return nil
        }
    }

    /// The first bytes of a rejected body, escaped, so an HTML error page is recognisable in one line.
    static func printable(_ bytes: [UInt8]) -> String {
        var text = ""
        for byte in bytes.prefix(16) {
            if byte >= 0x20 && byte < 0x7f && byte != UInt8(ascii: "\"") && byte != UInt8(ascii: "\\") {
                text.append(Character(UnicodeScalar(byte)))
            } else {
                text += String(format: "\\x%02x", byte)
            }
        }
        return "\"\(text)\""
    }
}

/// Collects one data task's outcome. All callbacks arrive on a serial queue and
/// the waiting thread reads the fields only after `finished` is signalled.
private final class DownloadDelegate: NSObject, URLSessionDataDelegate, @unchecked Sendable {
    let handle: FileHandle
    let progress: ProgressLine?
    let finished = DispatchSemaphore(value: 0)
    var hasher = SHA256()
    var received = 0
    var head: [UInt8] = []
    var httpStatus: Int?
    var expectedLength: Int64?
    var transportError: Error?
    var writeError: String?

    init(handle: FileHandle, progress: ProgressLine?) {
        self.handle = handle
        self.progress = progress
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive response: URLResponse,
                    completionHandler: @escaping (URLSession.ResponseDisposition) -> Void) {
        if let http = response as? HTTPURLResponse {
            httpStatus = http.statusCode
            if !(200 ..< 300).contains(http.statusCode) {
                completionHandler(.cancel)
                return
            }
        }
        expectedLength = response.expectedContentLength
        progress?.total = response.expectedContentLength > 0 ? Int(response.expectedContentLength) : nil
        completionHandler(.allow)
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive data: Data) {
        guard writeError == nil else { return }
        do {
            try handle.write(contentsOf: data)
        } catch {
            writeError = error.localizedDescription
            dataTask.cancel()
            return
        }
        hasher.update(data)
        if head.count < 16 { head.append(contentsOf: data.prefix(16 - head.count)) }
        received += data.count
        progress?.update(received)
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: Error?) {
        // A cancel we asked for (bad status, write failure) is reported through those fields instead.
        if let error, writeError == nil, httpStatus.map({ (200 ..< 300).contains($0) }) ?? true {
            transportError = error
        }
        finished.signal()
    }
}

/// A minimal one-line progress display for terminals.
private final class ProgressLine: @unchecked Sendable {
    let name: String
    var total: Int?
    private var lastDraw = Date.distantPast
    private var drawn = false

    init(name: String) { self.name = name }

    func update(_ received: Int) {
        // Only with a known length: a bar without an end says nothing useful.
        guard let total, total > 0 else { return }
        let now = Date()
        guard now.timeIntervalSince(lastDraw) >= 0.1 || received >= total else { return }
        lastDraw = now
        let fraction = min(1, Double(received) / Double(total))
        let width = 30
        let filled = Int(fraction * Double(width))
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        let line = String(format: "\r%@ [%@] %3d%% %.1f/%.1f MB", name, bar, Int(fraction * 100),
                          Double(received) / 1e6, Double(total) / 1e6)
        FileHandle.standardError.write(Data(line.utf8))
        drawn = true
    }

    func finish() {
        if drawn { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}
