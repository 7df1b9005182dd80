import CriaCore
import CriaKerasIO
import CriaModel
import CriaTestSupport
import Foundation
import XCTest

/// Every Keras fixture, in every file format, through Cria's fused inference
/// path: outputs must match Keras within 1e-4 of each output's largest magnitude.
final class KerasParityTests: XCTestCase {
    private func base035() throws -> KerasModelConfig {
        try MobileNetV2.config(alpha: 0.35, inputHeight: 96, inputWidth: 96, includeTop: false)
    }

    private func check(_ file: String, architecture: KerasModelConfig? = nil, input: String, expected: [String: String],
                       line: UInt = #line) throws {
        let layers = Array(expected.keys).sorted()
        let model = try InferenceModel.load(Fixtures.url(file), architecture: architecture, outputs: layers)
        let outputs = try model.predict(try Fixtures.npy(input))
        for layer in layers {
            assertMatches(outputs[layer]!, try Fixtures.npy(expected[layer]!), "\(file) \(layer)", line: line)
        }
    }

    func testKeras2WeightsOnlyWithIntermediateLayers() throws {
        let names = ["Conv1", "bn_Conv1", "Conv1_relu", "expanded_conv_depthwise_relu", "block_1_pad", "block_1_depthwise",
                     "block_1_depthwise_BN", "block_2_add", "block_13_depthwise_relu", "Conv_1_bn", "out_relu"]
        try check("keras/m035_96/k2_weights.h5", architecture: try base035(), input: "keras/m035_96/base_input.npy",
                  expected: Dictionary(uniqueKeysWithValues: names.map { ($0, "keras/m035_96/base_layer_\($0).npy") }))
    }

    func testKeras2WeightsOnlyFinalOutput() throws {
        try check("keras/m035_96/k2_weights.h5", architecture: try base035(), input: "keras/m035_96/base_input.npy",
                  expected: ["out_relu": "keras/m035_96/k2_weights_output.npy"])
    }

    func testKeras3WeightsFile() throws {
        try check("keras/m035_96/k3.weights.h5", architecture: try base035(), input: "keras/m035_96/base_input.npy",
                  expected: ["out_relu": "keras/m035_96/k3.weights_output.npy"])
    }

    func testKeras2FullSequentialWithNestedBase() throws {
        try check("keras/m035_96/k2_full.h5", input: "keras/m035_96/k2_full_input.npy",
                  expected: ["dense": "keras/m035_96/k2_full_output.npy",
                             "global_average_pooling2d": "keras/m035_96/k2_full_pooled.npy"])
    }

    func testKeras2FullFlatModelWithTop() throws {
        try check("keras/m035_96/k2_full_flat_top.h5", input: "keras/m035_96/k2_full_flat_top_input.npy",
                  expected: ["predictions": "keras/m035_96/k2_full_flat_top_output.npy"])
    }

    func testKeras3LegacyFullModelWithAugmentationLayers() throws {
        try check("keras/m035_96/k3_legacy_full.h5", input: "keras/m035_96/k3_legacy_full_input.npy",
                  expected: ["dense": "keras/m035_96/k3_legacy_full_output.npy"])
    }

    func testKeras3Archive() throws {
        try check("keras/m035_96/k3.keras", input: "keras/m035_96/k3_input.npy",
                  expected: ["dense_1": "keras/m035_96/k3_output.npy"])
    }

    func testOddRectangularInputWithTop() throws {
        try check("keras/m050_75x90_top/model.h5", input: "keras/m050_75x90_top/input.npy",
                  expected: ["predictions": "keras/m050_75x90_top/output.npy", "out_relu": "keras/m050_75x90_top/out_relu.npy"])
    }
}
