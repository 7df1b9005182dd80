import CriaCore
import CriaKerasIO
import CriaModel
import Foundation

/// Training-step throughput for `cria bench`: one full step (frozen prefix,
/// trainable suffix forward and backward, Adam update) on the tutorial's model,
/// with no cache, so it is what an augmented epoch costs per image.
public enum TrainingBenchmark {
    /// The transfer model around a MobileNetV2 base with seeded random weights (speed depends on shapes only).
    public static func randomTransferGraph(alpha: Double, height: Int, width: Int) throws -> ModelGraph {
        let random = try ModelGraph.randomMobileNetV2(alpha: alpha, inputHeight: height, inputWidth: width)
        let base = try MobileNetV2.config(alpha: alpha, inputHeight: height, inputWidth: width, includeTop: false)
        var graph = try ModelGraph(config: TransferModel.config(base: base, inputHeight: height, inputWidth: width, head: .init()),
                                   source: "benchmark")
        for index in graph.nodes.indices {
            if let source = random.index(of: graph.nodes[index].name) { graph.setWeights(random.nodes[source].weights, forNode: index) }
        }
        let dense = graph.index(of: "dense")!
        let features = graph.nodes[graph.nodes[dense].inputs[0]].outputShape.last!
        var generator = SplitMix64(seed: 5)
        graph.setWeights(["kernel": Tensor(shape: [features, 1], scalars: (0..<features).map { _ in generator.nextUnitFloat() * 0.1 - 0.05 }),
                          "bias": Tensor(zeros: [1])], forNode: dense)
        return graph
    }

    /// Median images per second of full training steps at `batch` under `freezing`.
    public static func imagesPerSecond(_ graph: ModelGraph, freezing: Freezing, batch: Int = 32, repetitions: Int = 5) throws -> Double {
        var graph = graph
        try graph.applyFreezing(freezing)
        let session = try TrainingGraph(graph: graph, bnMode: .inference)
        let optimizer = Optimizer(.adam(1e-4))
        let shape = graph.inputShape
        var generator = SplitMix64(seed: 9)
        let images = Tensor(shape: [batch] + shape, scalars: (0..<(batch * shape.reduce(1, *))).map { _ in generator.nextUnitFloat() * 255 })
        let labels = (0..<batch).map { $0 % 2 }
        var times: [Double] = []
        for repetition in 0...repetitions {
            let started = Date()
            let prefix = try session.runPrefix(images)
            let (output, tape) = session.forward(prefix: prefix, batch: batch, training: true, dropoutSeed: UInt64(repetition))
            let gradient = Loss.binaryCrossentropyFromLogits.evaluate(outputs: output, labels: labels, columns: 1).gradient
            for (index, variables) in session.backward(gradient, tape: tape) {
                var weights = session.graph.nodes[index].weights
                for (name, g) in variables {
                    var values = weights[name]!.scalars
                    optimizer.update("\(index)/\(name)", values: &values, gradient: g.scalars, learningRate: 1e-4)
                    weights[name] = Tensor(shape: weights[name]!.shape, scalars: values)
                }
                session.setWeights(weights, forNode: index)
            }
            optimizer.finishStep()
            if repetition > 0 { times.append(Date().timeIntervalSince(started)) }  // the first step plans the arenas
        }
        times.sort()
        return Double(batch) / times[times.count / 2]
    }

    /// Seconds of the first and of a later epoch of frozen-base training without
    /// augmentation on `count` images: the first runs the base once per image and fills
    /// the frozen-prefix cache, the later one costs only the head. Keras repeats the base
    /// every epoch. No validation, to time the training epoch alone.
    public static func cachedFrozenEpochSeconds(_ graph: ModelGraph, count: Int = 210, batch: Int = 32)
        throws -> (first: Double, cached: Double, cacheBytes: Int) {
        let shape = graph.inputShape
        var generator = SplitMix64(seed: 11)
        let images = Tensor(shape: [count] + shape, scalars: (0..<(count * shape.reduce(1, *))).map { _ in generator.nextUnitFloat() * 2 - 1 })
        let source = TensorBatchSource(images: images, labels: (0..<count).map { $0 % 2 })
        let trainer = Trainer(graph: graph, loss: .binaryCrossentropyFromLogits, seed: 3)
        var phase = PhaseConfig(name: "frozen", epochs: 3, optimizer: .adam(1e-3), freezing: .baseFrozen)
        phase.batchSize = batch
        let records = try trainer.fit(phase, train: source, validation: nil)
        return (records[0].seconds, min(records[1].seconds, records[2].seconds), trainer.cacheBytes)
    }
}
