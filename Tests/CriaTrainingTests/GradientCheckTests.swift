import CriaCore
import CriaKerasIO
import CriaModel
import CriaTestSupport
import CriaTraining
import XCTest

/// Finite-difference checks through a real MobileNetV2 head and loss, and the
/// placement of the frozen-prefix boundary. Deep layers of the whole network
/// are checked against Keras's own gradients (KerasTrainingParityTests): a
/// difference quotient through dozens of ReLU6 kinks is too blunt for them.
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

    private func check(freezing: Freezing, bnMode: BatchNormMode, units: Int = 1, loss lossKind: Loss = .binaryCrossentropyFromLogits,
                       layers: [String], line: UInt = #line) throws {
        var graph = try smallModel(units: units)
        try graph.applyFreezing(freezing)
        let session = try TrainingGraph(graph: graph, bnMode: bnMode)
        let labels = units == 1 ? [0, 1, 1, 0] : [0, 2, 1, 2]
        let input = batch(4)
        let prefix = try session.runPrefix(input)
        let (output, tape) = session.forward(prefix: prefix, batch: 4, training: true, dropoutSeed: 1)
        let gradients = session.backward(lossKind.evaluate(outputs: output, labels: labels, columns: units).gradient, tape: tape)
        var selected: [Int: [String: Tensor]] = [:]
        for layer in layers {
            let index = try XCTUnwrap(graph.index(of: layer), layer)
            selected[index] = try XCTUnwrap(gradients[index], "\(layer) has no gradient")
        }
        // The float64 side starts from Cria's own frozen-prefix outputs, so the check covers the
        // trainable part: its longest float32 sum is a reduction over the widest layer's channels
        // (or a weight gradient over 4 images × its positions), through every trainable node.
        let trainable = session.boundary..<graph.nodes.count
        let terms = Float32ErrorModel.longestSum(graph, nodes: trainable, batch: 4)
        let reference = Float64Graph(graph: session.graph, bnMode: bnMode, boundary: session.boundary, prefix: prefix)
        let (checked, skipped) = reference.checkGradients(
            selected, input: input, training: true,
            loss: { Float64Loss.evaluate(lossKind, outputs: $0, labels: labels, columns: units) },
            // The largest-gradient entries (where an error would matter) and a few others.
            positions: { gradient in
                let ranked = gradient.scalars.indices.sorted { abs(gradient.scalars[$0]) > abs(gradient.scalars[$1]) }
                return Array(ranked.prefix(3)) + [gradient.count / 2, gradient.count - 1]
            },
            terms: terms, depth: trainable.count, context: "\(freezing), bn \(bnMode)", line: line)
        XCTAssertGreaterThan(checked, 0, "every entry sat on a kink (\(skipped) skipped)", line: line)
    }

    func testSoftmaxHeadWithSparseCategoricalLoss() throws {
        try check(freezing: .baseFrozen, bnMode: .inference, units: 3, loss: .sparseCategoricalCrossentropyFromLogits, layers: ["dense"])
    }

    func testFrozenBaseHasPooledFeaturesAsItsBoundary() throws {
        let file = try KerasFile.open(Fixtures.url("keras/m035_96/k2_weights.h5"))
        var graph = try TransferModel.graph(file: file, alpha: 0.35, inputHeight: 32, inputWidth: 32, head: .init(dropout: 0.2), seed: 7)
        try graph.applyFreezing(.baseFrozen)
        let session = try TrainingGraph(graph: graph, bnMode: .inference)
        XCTAssertEqual(session.prefixOutputs.map { graph.nodes[$0].name }, ["global_average_pooling2d"], "the pooled features are what the cache keeps")
        try graph.applyFreezing(.fineTuneAt(120))
        let fineTune = try TrainingGraph(graph: graph, bnMode: .inference)
        XCTAssertEqual(graph.nodes[fineTune.boundary].name, "block_13_depthwise")
    }
}
