import CriaCore
import CriaTestSupport
import Foundation
import XCTest

/// `cria predict` and `cria inspect` end to end, on real files.
final class PredictCommandTests: XCTestCase {
    private func temporaryURL(_ name: String) -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("cria-cli-\(UUID().uuidString)-\(name)")
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }

    func testNpyInOutMatchesKerasForWeightsOnlyFile() throws {
        let output = temporaryURL("y.npy")
        let result = try CLI.run(["predict", "--model", "Tests/Fixtures/keras/m035_96/k2_weights.h5", "--alpha", "0.35", "--size", "96",
                                  "--input", "Tests/Fixtures/keras/m035_96/base_input.npy", "--output", output.path,
                                  "--layer", "block_2_add"])
        XCTAssertEqual(result.status, 0, result.stderr)
        assertMatches(try NPY.read(output), try Fixtures.npy("keras/m035_96/base_layer_block_2_add.npy"), "cli block_2_add")
    }

    func testNpyInOutForFullModel() throws {
        let output = temporaryURL("y.npy")
        let result = try CLI.run(["predict", "--model", "Tests/Fixtures/keras/m035_96/k3_legacy_full.h5",
                                  "--input", "Tests/Fixtures/keras/m035_96/k3_legacy_full_input.npy", "--output", output.path])
        XCTAssertEqual(result.status, 0, result.stderr)
        assertMatches(try NPY.read(output), try Fixtures.npy("keras/m035_96/k3_legacy_full_output.npy"), "cli k3 legacy")
    }

    /// `CRIA_DEPTHWISE_ISA` picks the depthwise kernels' path for the process: every path
    /// gives the same bytes of output; a name that is no path gets one line naming the
    /// variable, and the run goes on with the widest path.
    func testEveryDepthwisePathGivesTheSamePredictions() throws {
        func predict(_ path: String) throws -> (Data, String) {
            let output = temporaryURL("y-\(path).npy")
            let result = try CLI.run(["predict", "--model", "Tests/Fixtures/keras/m035_96/k3_legacy_full.h5",
                                      "--input", "Tests/Fixtures/keras/m035_96/k3_legacy_full_input.npy", "--output", output.path],
                                     environment: ["CRIA_DEPTHWISE_ISA": path])
            XCTAssertEqual(result.status, 0, result.stderr)
            return (try Data(contentsOf: output), result.stderr)
        }
        let (portable, quiet) = try predict("portable")
        XCTAssertEqual(quiet, "")
        for path in ["avx", "avx512"] {
            XCTAssertEqual(try predict(path).0, portable, "CRIA_DEPTHWISE_ISA=\(path)")
        }
        let (fallback, message) = try predict("sse9")
        XCTAssertEqual(fallback, portable)
        XCTAssertEqual(message.split(separator: "\n").count, 1, message)
        XCTAssertTrue(message.contains("CRIA_DEPTHWISE_ISA=sse9: expected portable, avx or avx512"), message)
    }

    func testBrokenFilesGiveOneLineAndNonZeroExit() throws {
        let empty = temporaryURL("empty.h5")
        try Data().write(to: empty)
        let truncated = temporaryURL("truncated.h5")
        try Data(contentsOf: Fixtures.url("keras/m035_96/k2_full.h5")).prefix(300_000).write(to: truncated)
        let random = temporaryURL("random.h5")
        try Data((0..<5000).map { UInt8(truncatingIfNeeded: $0 &* 7919) }).write(to: random)
        let cases: [(String, [String])] = [
            (empty.path, []), (truncated.path, []), (random.path, []),
            ("Tests/Fixtures/keras/broken/missing_layer.h5", ["--alpha", "0.35", "--size", "96"]),
            ("Tests/Fixtures/keras/broken/wrong_kernel_shape.h5", ["--alpha", "0.35", "--size", "96"]),
        ]
        for (file, flags) in cases {
            let result = try CLI.run(["inspect", file] + flags)
            XCTAssertNotEqual(result.status, 0, file)
            let lines = result.stderr.split(separator: "\n")
            XCTAssertEqual(lines.count, 1, "\(file): stderr was \(result.stderr)")
            XCTAssertTrue(result.stderr.hasPrefix("error: ") && result.stderr.contains(file), result.stderr)
            XCTAssertFalse(result.stderr.contains("HDF5-DIAG"), result.stderr)
        }
    }

    func testInspectShowsFormatLayersAndParameters() throws {
        let result = try CLI.run(["inspect", "Tests/Fixtures/keras/m035_96/k2_full_flat_top.h5"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stdout.contains("Keras 2 full-model .h5"))
        XCTAssertTrue(result.stdout.contains("block_13_depthwise"))
        // Keras's own count for MobileNetV2(alpha=0.35, 96, include_top=True, classes=10).
        XCTAssertTrue(result.stdout.contains("423018 total"), result.stdout)
    }

    func testPredictJSONOnRealPhotosWithLabdog() throws {
        guard Fixtures.labdogModel != nil else { throw Skip.missing("Weights/dog_breed_mobilenetv2.h5 is absent; run `make setup`") }
        guard let alpaca = Fixtures.alpacaDirectory else { throw Skip.decision("alpaca data absent (set CRIA_ALPACA_DIR)") }
        let photo = alpaca.appendingPathComponent("alpaca/01ad3ff1d94eb557.jpg")
        let result = try CLI.run(["predict", "--model", "Weights/dog_breed_mobilenetv2.h5", photo.path, "--top", "3", "--json"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let json = try JSONValue.parse(result.stdout, source: "stdout")
        let top = try XCTUnwrap(json[0]?["top"]?.array)
        XCTAssertEqual(top.count, 3)
        XCTAssertTrue(top[0]["label"]?.string?.hasPrefix("n02") ?? false, result.stdout)
        let probabilities = top.compactMap { $0["probability"]?.double }
        XCTAssertEqual(probabilities, probabilities.sorted(by: >))
    }
}
