import CriaCore
import CriaKerasIO
import CriaTestSupport
import Foundation
import XCTest

/// Reading every Keras layout, and failing cleanly on broken files.
final class KerasFileTests: XCTestCase {
    private let m035 = "keras/m035_96/"

    func testDetectsEveryFormat() throws {
        let expectations: [(String, KerasFileFormat, String)] = [
            ("k2_weights.h5", .keras2Weights, "2."), ("k2_full.h5", .keras2FullModel, "2."),
            ("k3_legacy_full.h5", .keras3LegacyFullModel, "3."), ("k3.weights.h5", .keras3Weights, ""),
            ("k3.keras", .keras3Archive, "3."),
        ]
        for (name, format, version) in expectations {
            let file = try KerasFile.open(Fixtures.url(m035 + name))
            XCTAssertEqual(file.format, format, name)
            if !version.isEmpty { XCTAssertTrue(file.kerasVersion?.hasPrefix(version) ?? false, "\(name): \(file.kerasVersion ?? "nil")") }
            XCTAssertEqual(file.format.hasArchitecture, file.modelConfig != nil, name)
        }
    }

    /// The same random base saved by tf-keras and Keras 3 gives the same tensors under the same names.
    func testKeras2AndKeras3WeightsAgreeByName() throws {
        let keras2 = try KerasFile.open(Fixtures.url(m035 + "k2_weights.h5"))
        let keras3 = try KerasFile.open(Fixtures.url(m035 + "k3.weights.h5"))
        XCTAssertEqual(keras2.weights["block_1_depthwise"]?["kernel"]?.shape, [3, 3, 48, 1])
        XCTAssertEqual(keras2.weights["Conv_1_bn"]?.keys.sorted(), ["beta", "gamma", "moving_mean", "moving_variance"])
        if keras3.unnamedWeights.isEmpty {
            XCTAssertEqual(keras3.weights["block_1_depthwise"]?["kernel"], keras2.weights["block_1_depthwise"]?["kernel"])
            XCTAssertEqual(keras3.weights["Conv_1_bn"]?["moving_variance"], keras2.weights["Conv_1_bn"]?["moving_variance"])
        }
    }

    func testNestedModelWeightsAreFoundUnderInnerLayerNames() throws {
        let file = try KerasFile.open(Fixtures.url(m035 + "k3_legacy_full.h5"))
        XCTAssertNotNil(file.weights["block_16_project_BN"]?["moving_mean"])
        XCTAssertEqual(file.weights["dense"]?["kernel"]?.shape, [1280, 1])
        let config = try XCTUnwrap(file.modelConfig)
        XCTAssertTrue(config.layers.contains { $0.nested?.name == "mobilenetv2_0.35_96" && $0.trainingArgument == false })
    }

    // MARK: Broken files: one clear line naming the file, never a crash or an HDF5 stack dump.

    private func temporaryFile(_ bytes: Data, name: String) throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("cria-\(UUID().uuidString)-\(name)")
        try bytes.write(to: url)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }

    private func assertFails(_ url: URL, containing parts: [String], line: UInt = #line) {
        XCTAssertThrowsError(try KerasFile.open(url), line: line) { error in
            let message = "\(error)"
            XCTAssertFalse(message.contains("\n"), "multi-line error: \(message)", line: line)
            XCTAssertTrue(message.contains(url.path), "error does not name the file: \(message)", line: line)
            for part in parts { XCTAssertTrue(message.contains(part), "\(message) lacks \(part)", line: line) }
        }
    }

    func testEmptyFile() throws {
        assertFails(try temporaryFile(Data(), name: "empty.h5"), containing: ["empty"])
    }

    func testRandomBytes() throws {
        var generator = SystemRandomNumberGenerator()
        let bytes = Data((0..<4096).map { _ in UInt8.random(in: 0...255, using: &generator) })
        assertFails(try temporaryFile(bytes, name: "random.h5"), containing: ["not an HDF5 file"])
    }

    func testTruncatedFile() throws {
        let full = try Data(contentsOf: Fixtures.url(m035 + "k2_weights.h5"))
        for fraction in [0.5, 0.9, 0.999] {
            let url = try temporaryFile(full.prefix(Int(Double(full.count) * fraction)), name: "truncated.h5")
            XCTAssertThrowsError(try KerasFile.open(url), "fraction \(fraction)") { error in
                XCTAssertTrue("\(error)".contains(url.path), "\(error)")
                XCTAssertFalse("\(error)".contains("\n"))
            }
        }
    }

    func testTruncatedArchive() throws {
        let full = try Data(contentsOf: Fixtures.url(m035 + "k3.keras"))
        assertFails(try temporaryFile(full.prefix(full.count / 2), name: "truncated.keras"), containing: ["truncated"])
    }

    func testMissingFile() {
        assertFails(URL(fileURLWithPath: "/nonexistent/model.h5"), containing: ["no such file"])
    }
}
