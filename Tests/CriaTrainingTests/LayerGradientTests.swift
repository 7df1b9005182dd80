import CriaCore
import CriaKerasIO
import CriaModel
import CriaTestSupport
import CriaTraining
import XCTest

/// Finite-difference checks of every layer kind's backward pass, one layer at
/// a time: Input → layer → GlobalAveragePooling2D → Dense(1), with the loss
/// Σ logits·r for fixed random r, so no other nonlinearity blurs the check.
/// Inputs of ReLU-like layers are kept away from their kinks. The difference
/// quotients are of a float64 evaluation of the same graph (`Float64Graph`).
final class LayerGradientTests: XCTestCase {
    private func layer(_ className: String, _ name: String, _ fields: [String: JSONValue], _ inputs: [String]) -> KerasLayerConfig {
        var config = fields
        config["name"] = .string(name)
        return KerasLayerConfig(className: className, name: name, config: .object(config), inputs: inputs.map { TensorReference(layer: $0) })
    }

    /// Builds Input(h, w, c) → `body` → GAP → Dense(1) with seeded random weights and random BN statistics.
    private func graph(height: Int, width: Int, channels: Int, body: [KerasLayerConfig]) throws -> ModelGraph {
        var layers = [layer("InputLayer", "input", ["batch_shape": [nil, .number(Double(height)), .number(Double(width)), .number(Double(channels))]], [])]
        layers += body
        layers.append(layer("GlobalAveragePooling2D", "gap", [:], [body.last!.name]))
        layers.append(layer("Dense", "dense", ["units": 1, "activation": "linear"], ["gap"]))
        let config = KerasModelConfig(className: "Functional", name: "tiny", layers: layers,
                                      inputs: [TensorReference(layer: "input")], outputs: [TensorReference(layer: "dense")])
        var graph = try ModelGraph(config: config, source: "tiny")
        var generator = SplitMix64(seed: 3)
        for index in graph.nodes.indices {
            let node = graph.nodes[index]
            let inputChannels = node.inputs.first.map { graph.nodes[$0].outputShape.last! } ?? 0
            var weights: LayerWeights = [:]
            for (name, shape) in node.kind.expectedWeightShapes(inputChannels: inputChannels) {
                let count = shape.reduce(1, *)
                let values: [Float] = (0..<count).map { _ in
                    let u = generator.nextUnitFloat()
                    switch name {
                    case "gamma": return 0.5 + u
                    case "moving_variance": return 0.5 + u
                    case "moving_mean", "beta", "bias": return (u - 0.5) * 0.4
                    default: return (u - 0.5) * 1.2
                    }
                }
                weights[name] = Tensor(shape: shape, scalars: values)
            }
            graph.setWeights(weights, forNode: index)
        }
        return graph
    }

    private func check(_ graph: ModelGraph, bnMode: BatchNormMode = .inference, batch: Int = 2, inputRange: ClosedRange<Float> = -1...1,
                       line: UInt = #line) throws {
        var graph = graph
        try graph.applyFreezing(.all)
        let session = try TrainingGraph(graph: graph, bnMode: bnMode)
        var generator = SplitMix64(seed: 11)
        let shape = graph.inputShape
        let input = Tensor(shape: [batch] + shape, scalars: (0..<(batch * shape.reduce(1, *))).map { _ in
            inputRange.lowerBound + generator.nextUnitFloat() * (inputRange.upperBound - inputRange.lowerBound)
        })
        let weightsOfLoss = (0..<batch).map { _ in generator.nextUnitFloat() * 2 - 1 }
        let prefix = try session.runPrefix(input)
        let (_, tape) = session.forward(prefix: prefix, batch: batch, training: true, dropoutSeed: 5)
        let gradients = session.backward(weightsOfLoss, tape: tape)
        let reference = Float64Graph(graph: session.graph, bnMode: bnMode, boundary: session.boundary, prefix: prefix)
        let (checked, skipped) = reference.checkGradients(
            gradients, input: input, training: true,
            loss: { outputs in zip(outputs, weightsOfLoss).reduce(0.0) { $0 + $1.0 * Double($1.1) } },
            positions: { gradient in Set([0, gradient.count / 3, gradient.count / 2, gradient.count - 1]).sorted() },
            terms: Float32ErrorModel.longestSum(graph, nodes: graph.nodes.indices, batch: batch), depth: graph.nodes.count, context: "bn \(bnMode)", line: line)
        XCTAssertGreaterThan(checked, 0, "every entry sat on a kink (\(skipped) skipped)", line: line)
        XCTAssertLessThanOrEqual(skipped, checked / 4, "too many entries on kinks", line: line)
    }

    func testPointwiseConvolutionWithBias() throws {
        try check(graph(height: 3, width: 4, channels: 5, body: [
            layer("Conv2D", "conv", ["filters": 6, "kernel_size": [1, 1], "strides": [1, 1], "padding": "same", "use_bias": true], ["input"])]))
    }

    func testStridedThreeByThreeConvolution() throws {
        try check(graph(height: 7, width: 6, channels: 3, body: [
            layer("Conv2D", "conv", ["filters": 4, "kernel_size": [3, 3], "strides": [2, 2], "padding": "same", "use_bias": false], ["input"])]))
    }

    func testPaddedStridedDepthwiseConvolution() throws {
        try check(graph(height: 6, width: 5, channels: 9, body: [
            layer("ZeroPadding2D", "pad", ["padding": [[0, 1], [1, 1]]], ["input"]),
            layer("DepthwiseConv2D", "depthwise", ["kernel_size": [3, 3], "strides": [2, 2], "padding": "valid", "use_bias": true], ["pad"])]))
    }

    func testBatchNormInferenceMode() throws {
        try check(graph(height: 3, width: 3, channels: 4, body: [
            layer("Conv2D", "conv", ["filters": 5, "kernel_size": [1, 1], "use_bias": false], ["input"]),
            layer("BatchNormalization", "bn", ["epsilon": 0.001], ["conv"])]))
    }

    func testBatchNormTrainModeThroughBatchStatistics() throws {
        try check(graph(height: 3, width: 3, channels: 4, body: [
            layer("Conv2D", "conv", ["filters": 5, "kernel_size": [1, 1], "use_bias": false], ["input"]),
            layer("BatchNormalization", "bn", ["epsilon": 0.001], ["conv"]),
            // A second consumer-free nonlinearity makes the loss depend on the normalised values non-linearly.
            layer("Conv2D", "after", ["filters": 3, "kernel_size": [1, 1], "use_bias": false], ["bn"])]), bnMode: .train, batch: 3)
    }

    /// Conv → BatchNorm → ReLU6 in inference mode runs as one folded unit (kernel scaled, clamp
    /// epilogue, backward from its output); in train mode BatchNorm and ReLU6 run as one pass.
    /// Inputs in 2…3 and the random weights keep the pre-activations off the kinks.
    func testConvBatchNormReLU6UnitsInBothModes() throws {
        for bnMode in BatchNormMode.allCases {
            try check(graph(height: 3, width: 3, channels: 4, body: [
                layer("Conv2D", "conv", ["filters": 5, "kernel_size": [1, 1], "use_bias": false], ["input"]),
                layer("BatchNormalization", "bn", ["epsilon": 0.001], ["conv"]),
                layer("ReLU", "relu", ["max_value": 6.0], ["bn"]),
                layer("Conv2D", "after", ["filters": 3, "kernel_size": [1, 1], "use_bias": false], ["relu"])]),
                      bnMode: bnMode, batch: 3, inputRange: 2...3)
        }
    }

    func testReLU6AndAdd() throws {
        // Conv outputs near 0 or 6 would sit on a kink; small weights and inputs keep them inside (0, 6) or well below 0.
        try check(graph(height: 4, width: 4, channels: 3, body: [
            layer("Conv2D", "conv", ["filters": 3, "kernel_size": [1, 1], "use_bias": true], ["input"]),
            layer("ReLU", "relu", ["max_value": 6.0], ["conv"]),
            layer("Add", "add", [:], ["relu", "input"])]), inputRange: 2...3)
    }

    func testDenseHeadOnly() throws {
        try check(graph(height: 2, width: 2, channels: 7, body: [layer("Dropout", "dropout", ["rate": 0.0], ["input"])]))
    }

    func testInvertedDropoutScalesKeptUnits() throws {
        var model = try graph(height: 2, width: 2, channels: 64, body: [layer("Dropout", "dropout", ["rate": 0.25], ["input"])])
        try model.applyFreezing(.all)
        let session = try TrainingGraph(graph: model, bnMode: .inference)
        let ones = Tensor(repeating: 1, shape: [1, 2, 2, 64])
        let prefix = try session.runPrefix(ones)
        let dropout = model.index(of: "dropout")!
        let (_, tape) = session.forward(prefix: prefix, batch: 1, training: true, dropoutSeed: 9)
        let values = Set(tape.value(of: dropout)!)
        XCTAssertEqual(values, [0, 1 / 0.75], "kept units are scaled by 1/(1 − rate)")
        let (_, inference) = session.forward(prefix: prefix, batch: 1, training: false, dropoutSeed: 9)
        XCTAssertEqual(Set(inference.value(of: dropout)!), [1], "dropout is off at inference")
    }
}
