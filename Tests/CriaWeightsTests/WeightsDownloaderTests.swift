import CriaCore
import CriaWeights
import Foundation
import XCTest

final class WeightsDownloaderTests: XCTestCase {
    private var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("cria-download-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: directory)
    }

    /// The downloader only checks the signature, so a signature plus filler stands in for a real .h5.
    private static let fixture: [UInt8] = Weights.hdf5Signature + (0 ..< 70_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }

    private var downloader: WeightsDownloader { WeightsDownloader(timeout: 10, showProgress: false) }

    private func leftovers() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasPrefix(".") }
    }

    func testDownloadVerifiesHashAndInstallsAtomically() throws {
        let server = try LocalHTTPServer(routes: ["/w/a.h5": .init(status: 200, reason: "OK", body: Self.fixture)])
        defer { server.stop() }
        let destination = directory.appendingPathComponent("a.h5")
        let expected = SHA256.hexDigest(of: Data(Self.fixture))
        let result = try downloader.download(server.url("/w/a.h5"), to: destination, expectedSHA256: expected)
        XCTAssertEqual(result.sha256, expected)
        XCTAssertEqual(result.bytes, Self.fixture.count)
        XCTAssertEqual(try Data(contentsOf: destination), Data(Self.fixture))
        XCTAssertEqual(try leftovers(), [])
        XCTAssertEqual(server.requestedPaths, ["/w/a.h5"])
    }

    func testHashMismatchLeavesDestinationUntouched() throws {
        let server = try LocalHTTPServer(routes: ["/a.h5": .init(status: 200, reason: "OK", body: Self.fixture)])
        defer { server.stop() }
        let destination = directory.appendingPathComponent("a.h5")
        try Data("previous".utf8).write(to: destination)
        let wrong = String(repeating: "ab", count: 32)
        XCTAssertThrowsError(try downloader.download(server.url("/a.h5"), to: destination, expectedSHA256: wrong)) { error in
            let message = "\(error)"
            XCTAssertTrue(message.hasPrefix("a.h5 downloaded from \(server.url("/a.h5").absoluteString) has sha256 "), message)
            XCTAssertTrue(message.contains("expected \(wrong); the download was discarded"), message)
            XCTAssertFalse(message.contains("\n"))
        }
        XCTAssertEqual(try Data(contentsOf: destination), Data("previous".utf8))
        XCTAssertEqual(try leftovers(), [])
    }

    func testNotFoundNamesURLAndStatus() throws {
        let server = try LocalHTTPServer(routes: [:])
        defer { server.stop() }
        let destination = directory.appendingPathComponent("missing.h5")
        XCTAssertThrowsError(try downloader.download(server.url("/missing.h5"), to: destination)) { error in
            XCTAssertEqual("\(error)", "cannot download missing.h5 from \(server.url("/missing.h5").absoluteString): HTTP 404 not found")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: destination.path))
        XCTAssertEqual(try leftovers(), [])
    }

    func testNonHDF5BodyIsRejected() throws {
        let page = Array("<!DOCTYPE html><html>quota exceeded</html>".utf8)
        let server = try LocalHTTPServer(routes: ["/a.h5": .init(status: 200, reason: "OK", body: page)])
        defer { server.stop() }
        let destination = directory.appendingPathComponent("a.h5")
        XCTAssertThrowsError(try downloader.download(server.url("/a.h5"), to: destination)) { error in
            XCTAssertEqual("\(error)", "a.h5 downloaded from \(server.url("/a.h5").absoluteString) is not an HDF5 file (\(page.count) bytes starting \"<!DOCTYPE html><\"); the download was discarded")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: destination.path))
        XCTAssertEqual(try leftovers(), [])
    }

    func testTooSmallBodyIsRejected() throws {
        let server = try LocalHTTPServer(routes: ["/a.h5": .init(status: 200, reason: "OK", body: Self.fixture)])
        defer { server.stop() }
        XCTAssertThrowsError(try downloader.download(server.url("/a.h5"), to: directory.appendingPathComponent("a.h5"), minimumBytes: 1_000_000)) { error in
            XCTAssertTrue("\(error)".contains("is only \(Self.fixture.count) bytes, expected at least 1000000"), "\(error)")
        }
    }

    func testConnectionRefusedIsOneLineWithHint() throws {
        let port = try LocalHTTPServer.closedPort()
        let url = URL(string: "http://127.0.0.1:\(port)/mobilenet.h5")!
        var offline = downloader
        offline.offlineHint = "copy the file to Weights/"
        let started = Date()
        XCTAssertThrowsError(try offline.download(url, to: directory.appendingPathComponent("mobilenet.h5"))) { error in
            XCTAssertEqual("\(error)", "cannot download mobilenet.h5 from \(url.absoluteString): connection refused; copy the file to Weights/")
        }
        XCTAssertLessThan(Date().timeIntervalSince(started), 10)
        XCTAssertEqual(try leftovers(), [])
    }

    func testSignatureAfterUserBlockIsAccepted() throws {
        let url = directory.appendingPathComponent("userblock.h5")
        try Data([UInt8](repeating: 0, count: 512) + Weights.hdf5Signature + [1, 2, 3]).write(to: url)
        XCTAssertTrue(Weights.hasHDF5Signature(url))
        try Data("not hdf5 at all".utf8).write(to: url)
        XCTAssertFalse(Weights.hasHDF5Signature(url))
    }
}
