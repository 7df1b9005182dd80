import CriaCore
import CriaKerasIO
import CriaModel
import CriaTestSupport
import CriaTraining
import XCTest

/// Finite-difference checks of the whole backward pass: for every trainable
/// layer, the directional derivative of the loss along a random direction of
/// its variables must equal the analytic gradient's projection on it.
final class GradientCheckTests: XCTestCase {
    private func smallModel(units: Int = 1) throws -> ModelGraph {
        let file = try KerasFile.open(Fixtures.url("keras/m035_96/k2_weights.h5"))
        return try TransferModel.graph(file: file, alpha: 0.35, inputHeight: 32, inputWidth: 32,
                                       head: .init(dropout: 0, units: units), seed: 7)
    }

    private func batch(_ count: Int) -> Tensor {
        var generator = SplitMix64(seed: 42)
        return Tensor(shape: [count, 32, 32, 3], scalars: (0..<(count * 32 * 32 * 3)).map { _ in generator.nextUnitFloat() * 255 })
    }

    private func loss(_ session: TrainingGraph, _ prefix: [Int: [Float]], labels: [Int], loss: Loss, columns: Int, training: Bool) -> Double {
        let (output, _) = session.forward(prefix: prefix, batch: labels.count, training: training, dropoutSeed: 1)
        return loss.evaluate(outputs: output, labels: labels, columns: columns).loss
    }

    private func check(freezing: Freezing, bnMode: BatchNormMode, units: Int = 1, loss lossKind: Loss = .binaryCrossentropyFromLogits,
                       layers: [String], line: UInt = #line) throws {
        var graph = try smallModel(units: units)
        try graph.applyFreezing(freezing)
        let session = try TrainingGraph(graph: graph, bnMode: bnMode)
        let labels = units == 1 ? [0, 1, 1, 0] : [0, 2, 1, 2]
        let prefix = try session.runPrefix(batch(4))
        let (output, tape) = session.forward(prefix: prefix, batch: 4, training: true, dropoutSeed: 1)
        let gradients = session.backward(lossKind.evaluate(outputs: output, labels: labels, columns: units).gradient, tape: tape)
        for layer in layers {
            let index = try XCTUnwrap(graph.index(of: layer), layer)
            let variables = try XCTUnwrap(gradients[index], "\(layer) has no gradient")
            for (variable, gradient) in variables {
                var generator = SplitMix64(seed: UInt64(index))
                let direction = (0..<gradient.count).map { _ in generator.nextUnitFloat() * 2 - 1 }
                let analytic = zip(gradient.scalars, direction).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
                let original = session.graph.nodes[index].weights
                let scale = max(original[variable]!.maxMagnitude, 1e-2)
                let step = 1e-3 * scale
                func shifted(_ sign: Float) -> Double {
                    var weights = original
                    let values = zip(original[variable]!.scalars, direction).map { $0 + sign * step * $1 }
                    weights[variable] = Tensor(shape: original[variable]!.shape, scalars: values)
                    session.setWeights(weights, forNode: index)
                    defer { session.setWeights(original, forNode: index) }
                    return loss(session, prefix, labels: labels, loss: lossKind, columns: units, training: true)
                }
                let numeric = (shifted(1) - shifted(-1)) / (2 * Double(step))
                let tolerance = 2e-2 * max(abs(analytic), abs(numeric)) + 1e-4
                print("gradcheck \(layer)/\(variable): analytic \(analytic) numeric \(numeric)")
                XCTAssertEqual(analytic, numeric, accuracy: tolerance, "\(layer)/\(variable) [\(freezing), bn \(bnMode)]", line: line)
            }
        }
    }

    func testFineTuneAt120InferenceModeBatchNorm() throws {
        try check(freezing: .fineTuneAt(120), bnMode: .inference,
                  layers: ["dense", "Conv_1", "Conv_1_bn", "block_16_project", "block_15_depthwise", "block_15_depthwise_BN", "block_13_depthwise"])
    }

    func testFineTuneAt120TrainModeBatchNorm() throws {
        try check(freezing: .fineTuneAt(120), bnMode: .train,
                  layers: ["dense", "Conv_1_bn", "block_16_project_BN", "block_14_expand_BN", "block_14_depthwise", "block_13_depthwise"])
    }

    func testEverythingTrainableIncludingFirstConvolution() throws {
        try check(freezing: .all, bnMode: .inference, layers: ["Conv1", "bn_Conv1", "expanded_conv_depthwise", "block_2_expand", "block_5_project_BN"])
    }

    func testSoftmaxHeadWithSparseCategoricalLoss() throws {
        try check(freezing: .baseFrozen, bnMode: .inference, units: 3, loss: .sparseCategoricalCrossentropyFromLogits, layers: ["dense"])
    }

    func testFrozenBaseHasPooledFeaturesAsItsBoundary() throws {
        var graph = try smallModel()
        try graph.applyFreezing(.baseFrozen)
        let session = try TrainingGraph(graph: graph, bnMode: .inference)
        XCTAssertEqual(session.prefixOutputs.map { graph.nodes[$0].name }, ["global_average_pooling2d"])
        try graph.applyFreezing(.fineTuneAt(120))
        let fineTune = try TrainingGraph(graph: graph, bnMode: .inference)
        XCTAssertEqual(graph.nodes[fineTune.boundary].name, "block_13_depthwise")
    }
}
