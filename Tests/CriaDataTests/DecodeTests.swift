import CriaCore
@testable import CriaData
import CriaTestSupport
import Foundation
import XCTest

final class DecodeTests: XCTestCase {
    /// Every committed image must decode to TF's `decode_image(channels=3)` array, byte for byte.
    func testDecodeMatchesTensorFlowExactly() throws {
        let index = try JSONSerialization.jsonObject(with: Data(contentsOf: Fixtures.url("data/decode/index.json"))) as! [String: [Int]]
        XCTAssertGreaterThanOrEqual(index.count, 18)
        for (name, shape) in index.sorted(by: { $0.key < $1.key }) {
            let image = try ImageDecoder.decode(contentsOf: Fixtures.url("data/decode/\(name)"))
            let expected = try Fixtures.npy("data/decode/\(name).npy")
            XCTAssertEqual([image.height, image.width, 3], shape, name)
            var worst: Float = 0
            for (a, b) in zip(image.tensor.scalars, expected.scalars) { worst = max(worst, abs(a - b)) }
            print("decode parity \(name): max|diff| = \(worst)")
            XCTAssertEqual(worst, 0, "\(name): differs from TensorFlow by up to \(worst) grey levels")
        }
    }

    func testFormatIsSniffedNotTakenFromExtension() throws {
        let png = try Data(contentsOf: Fixtures.url("data/decode/png_rgb8.png"))
        let image = try ImageDecoder.decode(png, name: "misnamed.jpg")
        XCTAssertEqual(image.width, 37)
    }

    func testZeroByteFileIsAnErrorNamingTheFile() {
        assertThrows(try ImageDecoder.decode(Data(), name: "/x/empty.jpg"), contains: ["/x/empty.jpg", "empty"])
    }

    func testNonImageWithImageExtension() {
        assertThrows(try ImageDecoder.decode(Data("hello, I am text".utf8), name: "notes.png"),
                     contains: ["notes.png", "not a JPEG, PNG"])
    }

    func testTruncatedJPEGIsAnError() throws {
        let jpeg = try Data(contentsOf: Fixtures.url("data/decode/jpeg_420.jpg"))
        for cut in [20, jpeg.count / 2, jpeg.count - 10] {
            assertThrows(try ImageDecoder.decode(jpeg.prefix(cut), name: "cut.jpg"), contains: ["cut.jpg"])
        }
    }

    /// TF rejects a JPEG without its EOI marker but ignores bytes after it; so does Cria.
    func testMissingEOIFailsAndTrailingBytesAreIgnored() throws {
        let jpeg = try Data(contentsOf: Fixtures.url("data/decode/jpeg_420.jpg"))
        assertThrows(try ImageDecoder.decode(jpeg.dropLast(2), name: "noeoi.jpg"), contains: ["noeoi.jpg"])
        let padded = try ImageDecoder.decode(jpeg + Data("garbage".utf8), name: "padded.jpg")
        XCTAssertEqual(padded, try ImageDecoder.decode(jpeg, name: "plain.jpg"))
    }

    func testTruncatedPNGIsAnError() throws {
        let png = try Data(contentsOf: Fixtures.url("data/decode/png_rgb8.png"))
        for cut in [12, 40, png.count / 2, png.count - 5] {
            assertThrows(try ImageDecoder.decode(png.prefix(cut), name: "cut.png"), contains: ["cut.png"])
        }
    }

    func testPNGWithBrokenCRCIsAnError() throws {
        var png = [UInt8](try Data(contentsOf: Fixtures.url("data/decode/png_rgb8.png")))
        // Data intact, stored CRC wrong: only the CRC check can catch it.
        let idat = try XCTUnwrap(findChunk("IDAT", in: png))
        let length = Int(png[idat]) << 24 | Int(png[idat + 1]) << 16 | Int(png[idat + 2]) << 8 | Int(png[idat + 3])
        var badCRC = png
        badCRC[idat + 8 + length] ^= 0x5A
        assertThrows(try ImageDecoder.decode(Data(badCRC), name: "crc.png"), contains: ["crc.png", "CRC"])
        // Data corrupted under a now-stale CRC: caught by inflate or the CRC, either way an error.
        png[idat + 8 + 5] ^= 0x5A
        assertThrows(try ImageDecoder.decode(Data(png), name: "data.png"), contains: ["data.png", "corrupt PNG"])
    }

    func testGIFIsAClearUnsupportedError() {
        let gif = Data("GIF89a".utf8) + Data(repeating: 0, count: 20)
        assertThrows(try ImageDecoder.decode(gif, name: "a.gif"), contains: ["a.gif", "not supported"])
    }

    /// A 20000×20000 JPEG header is refused before any pixel buffer is allocated.
    func testHugeImageIsRefusedWithoutAllocating() throws {
        var jpeg = [UInt8](try Data(contentsOf: Fixtures.url("data/decode/jpeg_444.jpg")))
        let sof = try XCTUnwrap((0..<(jpeg.count - 1)).first { jpeg[$0] == 0xFF && jpeg[$0 + 1] == 0xC0 })
        jpeg[sof + 5] = UInt8(20000 >> 8); jpeg[sof + 6] = UInt8(20000 & 0xFF)
        jpeg[sof + 7] = UInt8(20000 >> 8); jpeg[sof + 8] = UInt8(20000 & 0xFF)
        assertThrows(try ImageDecoder.decode(Data(jpeg), name: "huge.jpg"), contains: ["huge.jpg", "20000×20000", "limit"])
    }

    func testCMYKConversionFollowsTensorFlow() {
        func convert(_ cmyk: [UInt8], adobe: Bool) -> [UInt8] {
            var rgb = [UInt8](repeating: 0, count: 3)
            ImageDecoder.cmykToRGB(cmyk, &rgb, count: 1, adobe: adobe)
            return rgb
        }
        XCTAssertEqual(convert([255, 0, 128, 255], adobe: true), [255, 0, 128])
        XCTAssertEqual(convert([0, 255, 127, 0], adobe: false), [255, 0, 128])
    }

    /// Real photographs: TF's full decode checked by checksums, then the 160×160 resize.
    func testRealAlpacaPhotosMatchTensorFlow() throws {
        guard let directory = Fixtures.alpacaDirectory else {
            throw Skip.decision("alpaca data not found; set CRIA_ALPACA_DIR or place it at ../shared/data/alpaca")
        }
        let index = try JSONSerialization.jsonObject(with: Data(contentsOf: Fixtures.url("data/alpaca/index.json"))) as! [String: [String: Any]]
        for (key, entry) in index.sorted(by: { $0.key < $1.key }) {
            let file = entry["file"] as! String
            let image = try ImageDecoder.decode(contentsOf: directory.appendingPathComponent(file))
            XCTAssertEqual([image.height, image.width, 3], entry["shape"] as! [Int], file)
            var sum = 0, weighted = 0
            for (i, p) in image.pixels.enumerated() { sum += Int(p); weighted += Int(p) * (i % 251 + 1) }
            XCTAssertEqual(sum, entry["sum"] as! Int, "\(file): decoded pixels differ from TensorFlow's")
            XCTAssertEqual(weighted, entry["weighted_sum"] as! Int, "\(file): decoded pixels differ from TensorFlow's")
            let resized = Resize.resize(image, height: 160, width: 160)
            assertMatches(resized, try Fixtures.npy("data/alpaca/\(key)_160.npy"), relative: 1e-3 / 255, "alpaca \(file) 160×160")
        }
    }

    private func findChunk(_ type: String, in png: [UInt8]) -> Int? {
        var i = 8
        while i + 8 <= png.count {
            let length = Int(png[i]) << 24 | Int(png[i + 1]) << 16 | Int(png[i + 2]) << 8 | Int(png[i + 3])
            if String(bytes: png[(i + 4)..<(i + 8)], encoding: .ascii) == type { return i }
            i += 12 + length
        }
        return nil
    }
}

/// Asserts that `body` throws a `CriaError` whose one-line message contains every fragment.
func assertThrows<T>(_ body: @autoclosure () throws -> T, contains fragments: [String],
                     file: StaticString = #filePath, line: UInt = #line) {
    do {
        _ = try body()
        XCTFail("expected an error containing \(fragments)", file: file, line: line)
    } catch let error as CriaError {
        for fragment in fragments {
            XCTAssert(error.message.contains(fragment), "'\(error.message)' lacks '\(fragment)'", file: file, line: line)
        }
        XCTAssertFalse(error.message.contains("\n"), "error message spans lines", file: file, line: line)
    } catch {
        XCTFail("expected CriaError, got \(error)", file: file, line: line)
    }
}

final class DecodeWorkspaceTests: XCTestCase {
    /// One workspace decodes every fixture in turn, big after small and the other way
    /// round, with errors in between: each result equals a fresh decode, byte for byte.
    func testReusedWorkspaceGivesFreshDecodeResults() throws {
        let index = try JSONSerialization.jsonObject(with: Data(contentsOf: Fixtures.url("data/decode/index.json"))) as! [String: [Int]]
        let names = index.keys.sorted()
        let workspace = DecodeWorkspace()
        for name in names + names.reversed() {
            let url = Fixtures.url("data/decode/\(name)")
            try workspace.decode(contentsOf: url)
            XCTAssertEqual(workspace.image, try ImageDecoder.decode(contentsOf: url), name)
            XCTAssertThrowsError(try Data("not an image".utf8).withUnsafeBytes { raw in
                try workspace.decode(raw, name: "junk.jpg")
            })
        }
    }

    func testMissingFileAndDirectoryAreErrorsNamingThePath() {
        let workspace = DecodeWorkspace()
        assertThrows(try workspace.decode(contentsOf: URL(fileURLWithPath: "/nonexistent/cria.jpg")), contains: ["/nonexistent/cria.jpg", "cannot read"])
        assertThrows(try workspace.decode(contentsOf: Fixtures.url("data/decode")), contains: ["decode", "directory"])
    }

    /// The loader (dynamic work queue, workspaces, resize into the dataset's array) gives
    /// the same floats as decoding and resizing each file on its own, for 1 and 2 threads.
    func testLoaderEqualsPerImageDecodeAndResize() throws {
        let index = try JSONSerialization.jsonObject(with: Data(contentsOf: Fixtures.url("data/decode/index.json"))) as! [String: [Int]]
        let files = index.keys.sorted().map { Fixtures.url("data/decode/\($0)").path }
        let list = FileIndex(directory: URL(fileURLWithPath: "/"), classNames: [""], files: files, labels: files.map { _ in 0 })
        let expected = try files.flatMap { path -> [Float] in
            Resize.resize(try ImageDecoder.decode(contentsOf: URL(fileURLWithPath: path)), height: 13, width: 17, cropToAspectRatio: true).scalars
        }
        let saved = Threads.count
        defer { Threads.set(saved) }
        for threads in [1, 2] {
            Threads.set(threads)
            let loaded = try ImageLoader.load(list, height: 13, width: 17, cropToAspectRatio: true, onBadImage: .fail, showProgress: false)
            XCTAssertEqual(loaded.pixels, expected, "\(threads) threads")
        }
    }
}
