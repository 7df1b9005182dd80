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
            for (variable, gradient) in variables.sorted(by: { $0.key < $1.key }) {
                // Single weights, not a random direction over all of them: a joint step moves many
                // ReLU6 units across their kinks at once and makes the difference quotient meaningless.
                // Check the largest-gradient entries (where an error would matter) and a few others.
                let ranked = gradient.scalars.indices.sorted { abs(gradient.scalars[$0]) > abs(gradient.scalars[$1]) }
                let positions = Array(ranked.prefix(3)) + [gradient.count / 2, gradient.count - 1]
                let original = session.graph.nodes[index].weights
                var checked = 0, skipped = 0
                defer { XCTAssertGreaterThan(checked, 0, "\(layer)/\(variable): every entry sat on a ReLU6 kink (\(skipped) skipped)", line: line) }
                for position in positions {
                    func lossAt(_ delta: Float) -> Double {
                        var weights = original
                        var values = original[variable]!.scalars
                        values[position] += delta
                        weights[variable] = Tensor(shape: original[variable]!.shape, scalars: values)
                        session.setWeights(weights, forNode: index)
                        defer { session.setWeights(original, forNode: index) }
                        return loss(session, prefix, labels: labels, loss: lossKind, columns: units, training: true)
                    }
                    // ReLU6 kinks make a difference quotient meaningless where a step crosses one: detect that
                    // by comparing the one-sided slopes, and shrink the step (or skip the entry) when they disagree.
                    var step: Float = 2e-4
                    var numeric: Double?
                    let center = lossAt(0)
                    for _ in 0..<4 {
                        let plus = lossAt(step), minus = lossAt(-step)
                        let right = (plus - center) / Double(step), left = (center - minus) / Double(step)
                        if abs(right - left) <= 0.05 * max(abs(right), abs(left)) + 1e-5 { numeric = (plus - minus) / Double(2 * step); break }
                        step /= 4
                    }
                    guard let numeric else { skipped += 1; continue }
                    checked += 1
                    let analytic = Double(gradient.scalars[position])
                    let tolerance = 3e-2 * max(abs(analytic), abs(numeric)) + 2e-5
                    print("gradcheck \(layer)/\(variable)[\(position)]: analytic \(analytic) numeric \(numeric)")
                    XCTAssertEqual(analytic, numeric, accuracy: tolerance, "\(layer)/\(variable)[\(position)] [\(freezing), bn \(bnMode)]", line: line)
                }
            }
        }
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
