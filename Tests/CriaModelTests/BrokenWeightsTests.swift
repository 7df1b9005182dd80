import CriaCore
import CriaKerasIO
import CriaModel
import CriaTestSupport
import XCTest

/// Weights that do not fit the architecture: each error names the file, the layer and both shapes.
final class BrokenWeightsTests: XCTestCase {
    private func load(_ file: String, alpha: Double = 0.35) throws -> InferenceModel {
        try InferenceModel.load(Fixtures.url(file), architecture: try MobileNetV2.config(alpha: alpha, inputHeight: 96, inputWidth: 96, includeTop: false))
    }

    func testMissingLayer() {
        XCTAssertThrowsError(try load("keras/broken/missing_layer.h5")) { error in
            let message = "\(error)"
            XCTAssertTrue(message.contains("missing_layer.h5") && message.contains("block_3_expand") && message.contains("(1, 1, 8, 48)"), message)
        }
    }

    func testWrongKernelShape() {
        XCTAssertThrowsError(try load("keras/broken/wrong_kernel_shape.h5")) { error in
            let message = "\(error)"
            XCTAssertTrue(message.contains("block_3_expand") && message.contains("(1, 1, 24, 7)") && message.contains("(1, 1, 8, 48)"), message)
        }
    }

    func testWrongAlphaNamesTheLikelyAlpha() {
        XCTAssertThrowsError(try load("keras/m035_96/k2_weights.h5", alpha: 0.5)) { error in
            let message = "\(error)"
            XCTAssertTrue(message.contains("k2_weights.h5") && message.contains("alpha 0.35"), message)
        }
    }

    func testUnknownLayerClassIsNamed() throws {
        var config = try MobileNetV2.config(alpha: 0.35, inputHeight: 96, inputWidth: 96, includeTop: false)
        config.layers[3] = KerasLayerConfig(className: "LayerNormalization", name: "Conv1_relu", config: ["name": "Conv1_relu"],
                                            inputs: config.layers[3].inputs)
        XCTAssertThrowsError(try ModelGraph(config: config, source: "custom.h5")) { error in
            XCTAssertTrue("\(error)".contains("LayerNormalization") && "\(error)".contains("Conv1_relu"), "\(error)")
        }
    }
}
