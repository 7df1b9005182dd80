import CriaCore
import CriaKerasIO
import CriaModel
import Foundation

/// Receives training events; the console reporter draws Keras's progress bar.
public protocol TrainingObserver: AnyObject {
    func epochStarted(epoch: Int, of totalEpochs: Int, batches: Int)
    func batchFinished(batch: Int, loss: Double, accuracy: Double)
    func epochFinished(_ record: EpochRecord)
    /// Where the step just finished spent its time; called before `batchFinished`.
    func stepTimed(_ times: StepTimes)
}

extension TrainingObserver {
    public func stepTimed(_ times: StepTimes) {}
}

/// Wall seconds of the four parts of one training step, in the order they run.
public struct StepTimes: Sendable, Equatable {
    /// The batch's images and the frozen prefix's outputs (cached, or the prefix run forward).
    public var prefix: Double
    /// The trainable suffix forward, keeping what backward reads, and the loss.
    public var forward: Double
    /// The suffix backward: input and weight gradients into the parameter store.
    public var backward: Double
    /// The optimizer's update of the trainable range and BatchNorm's moving statistics.
    public var update: Double

    public init(prefix: Double, forward: Double, backward: Double, update: Double) {
        (self.prefix, self.forward, self.backward, self.update) = (prefix, forward, backward, update)
    }
}

/// Keras's `fit`/`evaluate` over a model graph, with Cria's frozen-prefix cache.
public final class Trainer {
    public private(set) var graph: ModelGraph
    public let loss: Loss
    public let seed: UInt64
    public weak var observer: TrainingObserver?
    /// Writes ModelCheckpoint files (Keras .h5); set by the experiment runner.
    public var checkpointWriter: CheckpointWriter?
    /// Upper bound on the memory the frozen-prefix cache may use.
    public var cacheLimitBytes: Int = 2 << 30
    /// Bytes the cache holds now, for reports.
    public private(set) var cacheBytes = 0
    /// The learning rate set by ReduceLROnPlateau, overriding the schedule's base.
    private var learningRateOverride: Double?
    /// The running (or last) phase's session.
    private var session: TrainingGraph?

    /// Buffers the running (or last) phase's session has allocated: its activation and
    /// gradient buffers and its parameter store's. Steady-state steps add none (`cria bench`).
    public var sessionBufferAllocations: Int { session.map { $0.freshBuffers + $0.store.allocations } ?? 0 }

    public init(graph: ModelGraph, loss: Loss, seed: UInt64) {
        self.graph = graph
        self.loss = loss
        self.seed = seed
    }

    /// Sets one layer's variables (the linear probe's head, a restored checkpoint).
    public func replaceWeights(_ weights: LayerWeights, forLayer name: String) {
        guard let index = graph.index(of: name) else { return }
        graph.setWeights(weights, forNode: index)
    }

    private var outputColumns: Int { graph.outputShape.last ?? 1 }
    private var outputsAreProbabilities: Bool {
        guard case .dense(_, let activation, _) = graph.nodes[graph.outputNode].kind else { return false }
        return activation == .softmax || activation == .sigmoid
    }

    /// Runs one phase. Epochs are numbered from `initialEpoch`, as Keras's `fit(initial_epoch=)`.
    public func fit(_ phase: PhaseConfig, train: ImageBatchSource, validation: ImageBatchSource?,
                    initialEpoch: Int = 0) throws -> [EpochRecord] {
        try graph.applyFreezing(phase.freezing)
        let session = try TrainingGraph(graph: graph, bnMode: phase.bnMode)
        self.session = session
        let optimizer = Optimizer(phase.optimizer)
        var callbacks = CallbackRunner(phase.callbacks, checkpointWriter: checkpointWriter)
        learningRateOverride = nil
        var cache = PrefixCache(limitBytes: cacheLimitBytes)
        var validationCache = PrefixCache(limitBytes: cacheLimitBytes)
        var records: [EpochRecord] = []
        // A step's labels and loss gradient, in buffers that keep their size from step to step.
        var labels: [Int] = [], outputGradient: [Float] = []
        for epoch in initialEpoch ..< initialEpoch + phase.epochs {
            let started = Date()
            var order = Array(0..<train.count)
            var shuffler = SplitMix64(seed: seed &* 0x2545_F491_4F6C_DD1D &+ UInt64(epoch))
            order.shuffle(using: &shuffler)
            let batches = stride(from: 0, to: order.count, by: phase.batchSize).map { Array(order[$0 ..< min(order.count, $0 + phase.batchSize)]) }
            observer?.epochStarted(epoch: epoch, of: initialEpoch + phase.epochs, batches: batches.count)
            // Streamed data: lets the source decode upcoming batches on worker threads (BatchPlanning).
            (train as? BatchPlanning)?.plan(batches, epoch: epoch, augment: train.augments, seed: seed)
            var lossSum = 0.0, correct = 0, kerasCorrect = 0, seen = 0
            var learningRate = phase.optimizer.learningRate
            for (batchIndex, indices) in batches.enumerated() {
                labels.removeAll(keepingCapacity: true)
                for index in indices { labels.append(train.labels[index]) }
                // Augmented images differ every epoch, so only un-augmented prefix outputs are cached.
                let started = DispatchTime.now().uptimeNanoseconds
                let prefix = train.augments
                    ? try prefixValues(session, source: train, indices: indices, epoch: epoch, augment: true, cache: nil)
                    : try prefixValues(session, source: train, indices: indices, epoch: epoch, augment: false, cache: &cache)
                let dropoutSeed = seed &+ UInt64(epoch) << 32 &+ UInt64(batchIndex)
                let prefixDone = DispatchTime.now().uptimeNanoseconds
                let (output, tape) = session.forward(prefix: prefix, batch: indices.count, training: true, dropoutSeed: dropoutSeed)
                let batchLoss = lossAndGradient(output, labels: labels, into: &outputGradient)
                let forwardDone = DispatchTime.now().uptimeNanoseconds
                guard batchLoss.isFinite else {
                    throw CriaError("phase \(phase.name): loss is \(batchLoss) at epoch \(epoch + 1), batch \(batchIndex + 1); training stopped "
                        + "(the last checkpoint on disk is kept). Lower the learning rate or check the data.")
                }
                // Gradients go into the session's parameter store, and the optimizer updates the
                // store's trainable range in place: no weights are copied per step.
                session.backwardIntoStore(outputGradient, tape: tape)
                let backwardDone = DispatchTime.now().uptimeNanoseconds
                learningRate = (learningRateOverride ?? phase.schedule.learningRate(base: phase.optimizer.learningRate, step: optimizer.iterations))
                optimizer.step(session.store, runs: session.updatedRuns, learningRate: learningRate)
                session.updateMovingStatistics(from: tape)
                optimizer.finishStep()
                observer?.stepTimed(StepTimes(prefix: Double(prefixDone - started) * 1e-9, forward: Double(forwardDone - prefixDone) * 1e-9,
                                              backward: Double(backwardDone - forwardDone) * 1e-9,
                                              update: Double(DispatchTime.now().uptimeNanoseconds - backwardDone) * 1e-9))
                lossSum += batchLoss * Double(indices.count)
                correct += Accuracy.correct(outputs: output, labels: labels, columns: outputColumns, outputsAreProbabilities: outputsAreProbabilities)
                if outputColumns == 1 { kerasCorrect += Accuracy.kerasBinary(outputs: output, labels: labels) }
                seen += indices.count
                observer?.batchFinished(batch: batchIndex + 1, loss: lossSum / Double(seen), accuracy: Double(correct) / Double(seen))
            }
            // The graph's weights are brought up to date once per epoch, for validation
            // (which reads the store too), callbacks, checkpoints and the caller.
            session.releasePrefixBuffers()
            session.syncWeights()
            graph = session.graph
            var record = EpochRecord(epoch: epoch, phase: phase.name, loss: lossSum / Double(max(seen, 1)),
                                     accuracy: Double(correct) / Double(max(seen, 1)),
                                     kerasAccuracy: outputColumns == 1 ? Double(kerasCorrect) / Double(max(seen, 1)) : Double(correct) / Double(max(seen, 1)),
                                     valLoss: nil, valAccuracy: nil, valKerasAccuracy: nil, learningRate: learningRate, seconds: 0)
            if let validation {
                let evaluation = try evaluate(session, validation, batchSize: phase.batchSize, cache: &validationCache)
                record.valLoss = evaluation.loss
                record.valAccuracy = evaluation.accuracy
                record.valKerasAccuracy = evaluation.kerasAccuracy
            }
            record.seconds = Date().timeIntervalSince(started)
            records.append(record)
            observer?.epochFinished(record)
            let decision = try callbacks.epochEnded(record, graph: graph, learningRate: learningRate)
            if let newRate = decision.learningRate { learningRateOverride = newRate }
            if let restored = decision.restoredGraph {
                graph = restored
                for index in graph.nodes.indices { session.setWeights(graph.nodes[index].weights, forNode: index) }
            }
            if decision.stop { break }
        }
        cacheBytes = max(cache.bytes, validationCache.bytes)
        session.syncWeights()
        graph = session.graph
        return records
    }

    /// Keras's `evaluate`: mean loss and accuracies in inference mode.
    public func evaluate(_ data: ImageBatchSource, batchSize: Int = 32) throws -> Evaluation {
        let session = try TrainingGraph(graph: graph, bnMode: .inference)
        var cache = PrefixCache(limitBytes: 0)
        return try evaluate(session, data, batchSize: batchSize, cache: &cache)
    }

    private func evaluate(_ session: TrainingGraph, _ data: ImageBatchSource, batchSize: Int, cache: inout PrefixCache) throws -> Evaluation {
        var lossSum = 0.0, correct = 0, kerasCorrect = 0
        var predictions: [Int] = [], outputGradient: [Float] = []
        (data as? BatchPlanning)?.plan(stride(from: 0, to: data.count, by: batchSize).map { Array($0 ..< min(data.count, $0 + batchSize)) },
                                       epoch: 0, augment: false, seed: seed)  // streamed data: prefetch (BatchPlanning)
        for start in stride(from: 0, to: data.count, by: batchSize) {
            let indices = Array(start ..< min(data.count, start + batchSize))
            let labels = indices.map { data.labels[$0] }
            let prefix = try prefixValues(session, source: data, indices: indices, epoch: 0, augment: false, cache: &cache)
            let (output, tape) = session.forward(prefix: prefix, batch: indices.count, training: false, dropoutSeed: 0)
            session.reclaim(tape)
            lossSum += lossAndGradient(output, labels: labels, into: &outputGradient) * Double(indices.count)
            correct += Accuracy.correct(outputs: output, labels: labels, columns: outputColumns, outputsAreProbabilities: outputsAreProbabilities)
            if outputColumns == 1 { kerasCorrect += Accuracy.kerasBinary(outputs: output, labels: labels) }
            for r in 0..<indices.count {
                if outputColumns == 1 {
                    predictions.append(output[r] > (outputsAreProbabilities ? 0.5 : 0) ? 1 : 0)
                } else {
                    let row = output[r * outputColumns ..< (r + 1) * outputColumns]
                    predictions.append(row.indices.max { row[$0] < row[$1] }! - r * outputColumns)
                }
            }
        }
        let count = max(data.count, 1)
        return Evaluation(loss: lossSum / Double(count), accuracy: Double(correct) / Double(count),
                          kerasAccuracy: outputColumns == 1 ? Double(kerasCorrect) / Double(count) : Double(correct) / Double(count),
                          count: data.count, predictions: predictions)
    }

    /// The batch's mean loss, with dLoss/dOutput written into `gradient`.
    private func lossAndGradient(_ output: [Float], labels: [Int], into gradient: inout [Float]) -> Double {
        if outputsAreProbabilities && outputColumns > 1 {
            let value = Loss.sparseCategoricalCrossentropy.evaluate(outputs: output, labels: labels, columns: outputColumns,
                                                                    gradient: &gradient)
            Loss.softmaxCrossEntropyGradient(probabilities: output, labels: labels, columns: outputColumns, into: &gradient)
            return value
        }
        return loss.evaluate(outputs: output, labels: labels, columns: outputColumns, gradient: &gradient)
    }

    /// The prefix outputs for a batch, from the cache where possible. Images are
    /// cached one by one, so any later batch order can be assembled from them.
    private func prefixValues(_ session: TrainingGraph, source: ImageBatchSource, indices: [Int], epoch: Int, augment: Bool,
                              cache: UnsafeMutablePointer<PrefixCache>?) throws -> [Int: [Float]] {
        if let cache, indices.allSatisfy({ cache.pointee.entries[$0] != nil }) {
            return cache.pointee.assemble(indices, nodes: session.prefixOutputs)
        }
        let images = try source.images(indices, epoch: epoch, augment: augment, seed: seed)
        let values = try session.runPrefix(images)
        if let cache {
            let sizes = Dictionary(uniqueKeysWithValues: session.prefixOutputs.map { ($0, session.prefixShape($0).reduce(1, *)) })
            for (position, index) in indices.enumerated() {
                var entry: [Int: [Float]] = [:]
                for (node, value) in values {
                    let size = sizes[node] ?? value.count / indices.count
                    entry[node] = Array(value[position * size ..< (position + 1) * size])
                }
                cache.pointee.insert(index, entry)
            }
        }
        return values
    }

    private func prefixValues(_ session: TrainingGraph, source: ImageBatchSource, indices: [Int], epoch: Int, augment: Bool,
                              cache: inout PrefixCache) throws -> [Int: [Float]] {
        try withUnsafeMutablePointer(to: &cache) { try prefixValues(session, source: source, indices: indices, epoch: epoch, augment: augment, cache: $0) }
    }
}

/// Per-image outputs of the frozen prefix, kept while they fit under a memory cap.
struct PrefixCache {
    let limitBytes: Int
    private(set) var entries: [Int: [Int: [Float]]] = [:]
    private(set) var bytes = 0

    init(limitBytes: Int) { self.limitBytes = limitBytes }

    mutating func insert(_ index: Int, _ entry: [Int: [Float]]) {
        let size = entry.values.reduce(0) { $0 + $1.count * 4 }
        guard bytes + size <= limitBytes, entries[index] == nil else { return }
        entries[index] = entry
        bytes += size
    }

    func assemble(_ indices: [Int], nodes: [Int]) -> [Int: [Float]] {
        var result: [Int: [Float]] = [:]
        for node in nodes {
            var values: [Float] = []
            for index in indices { values.append(contentsOf: entries[index]![node]!) }
            result[node] = values
        }
        return result
    }
}
