import CriaCore
import CriaTestSupport
import Foundation
import XCTest

/// `cria data preview` end to end: the PNG it writes is decoded back (through `cria data tensor`,
/// libpng) and checked cell by cell.
final class DataPreviewTests: XCTestCase {
    func testContactSheetShowsOriginalsThenAugmentedDraws() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("cria-preview-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        let sources = ["png_rgb8.png", "jpeg_444.jpg"]
        for (index, name) in sources.enumerated() {
            let folder = root.appendingPathComponent("images/class_\(index)")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            // Five copies per class, so that the default 0.2 validation split leaves training images.
            for copy in 0..<5 {
                try FileManager.default.copyItem(at: Fixtures.url("data/decode/" + name), to: folder.appendingPathComponent("\(copy)-" + name))
            }
        }
        let sheet = root.appendingPathComponent("sheet.png")
        let result = try CLI.run(["data", "preview", root.appendingPathComponent("images").path, "--augment", "flip_both+rotation=0.3",
                                  "--count", "6", "--per-row", "3", "--size", "24", "-o", sheet.path])
        XCTAssertEqual(result.status, 0, result.stderr)

        // 2 rows of (original + 3 draws), 24-pixel cells with 4-pixel white gaps.
        let side = 2 * 28 + 4, across = 4 * 28 + 4
        let decoded = root.appendingPathComponent("sheet.npy")
        let back = try CLI.run(["data", "tensor", sheet.path, "--size", "\(side)x\(across)", "-o", decoded.path])
        XCTAssertEqual(back.status, 0, back.stderr)
        let pixels = try NPY.read(decoded)  // resizing to its own size is the identity
        XCTAssertEqual(pixels.shape, [1, side, across, 3])
        func cell(_ row: Int, _ column: Int) -> [Float] {
            var out: [Float] = []
            for y in 0..<24 {
                let start = ((4 + row * 28 + y) * across + 4 + column * 28) * 3
                out += pixels.scalars[start ..< start + 24 * 3]
            }
            return out
        }
        XCTAssertTrue((0..<across * 3).allSatisfy { pixels.scalars[$0] == 255 }, "the top gap is white")
        // Each row starts with an unaugmented source image, as `cria data tensor` gives it (to 8-bit rounding).
        var originals: [[Float]] = []
        for name in sources {
            let out = root.appendingPathComponent(name + ".npy")
            XCTAssertEqual(try CLI.run(["data", "tensor", Fixtures.url("data/decode/" + name).path, "--size", "24", "-o", out.path]).status, 0)
            originals.append(try NPY.read(out).scalars)
        }
        for row in 0..<2 {
            let first = cell(row, 0)
            let match = originals.contains { original in zip(original, first).allSatisfy { abs($0.rounded() - $1) <= 0.5 } }
            XCTAssertTrue(match, "row \(row) does not start with a source image")
            // With both flips and a ±108° rotation, a draw equal to the original is vanishingly unlikely.
            for column in 1..<4 { XCTAssertNotEqual(cell(row, column), first, "row \(row) column \(column) is not augmented") }
        }
    }
}
