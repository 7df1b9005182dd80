import CriaCore
import CriaKerasIO
import CriaModel
import CriaTraining
import Foundation

/// Training-step throughput for `cria bench`, at every fine-tune depth: full
/// steps (frozen prefix, trainable suffix forward and backward, Adam update)
/// on the tutorial's model, through the public `Trainer.fit`, with no
/// prefix cache, so a step costs what an augmented epoch costs per image.
public enum TrainingBenchmark {
    /// One fine-tune depth of the benchmark.
    public struct Depth: Sendable, Equatable {
        public var freezing: Freezing
        /// The key stem of its metrics (`train_<key>_b32_img_s`) and its label.
        public var key: String
        public var label: String

        public init(_ freezing: Freezing) {
            self.freezing = freezing
            switch freezing {
            case .baseFrozen: key = "frozen"; label = "frozen base"
            case .all: key = "all"; label = "trainable: all"
            case .fineTuneAt(let layer): key = "finetune\(layer)"; label = "fine_tune_at: \(layer)"
            case .fineTuneFrom(let name): key = "from_\(name)"; label = "fine_tune_from: \(name)"
            }
        }

        /// The depths `cria bench` measures: the frozen base, `fine_tune_at` 140, 120, 100, 50, and 0 (all).
        public static let standard: [Depth] = [.init(.baseFrozen), .init(.fineTuneAt(140)), .init(.fineTuneAt(120)),
                                               .init(.fineTuneAt(100)), .init(.fineTuneAt(50)), .init(.all)]
    }

    /// What one depth measured.
    public struct Row: Sendable {
        public var depth: Depth
        public var imagesPerSecond: Double
        /// Peak resident set while its steps ran (the whole process: model, weights, tapes).
        public var peakResidentMegabytes: Double
        public var trainableMultiplyAdds: Int
        public var allMultiplyAdds: Int
        /// inference img/s ÷ (1 + 2 × trainable / all multiply-adds), inference from the same run.
        public var bound: Double
        /// Each part of the step, the median over the timed steps.
        public var stepTimes: StepTimes

        public var fractionOfBound: Double { bound > 0 ? imagesPerSecond / bound : .nan }
        public var trainableFraction: Double { Double(trainableMultiplyAdds) / Double(max(1, allMultiplyAdds)) }
    }

    /// Measures every depth in `depths`, each in a fresh `Trainer`; `inferenceImagesPerSecond`
    /// (same run, same batch) gives each depth's bound.
    public static func run(_ graph: ModelGraph, depths: [Depth] = Depth.standard, batch: Int = 32, steps: Int = 5,
                           inferenceImagesPerSecond: Double, log: (String) -> Void = { _ in }) throws -> [Row] {
        let all = graph.multiplyAdds
        return try depths.map { depth in
            log("training steps, \(depth.label)...")
            var frozen = graph
            try frozen.applyFreezing(depth.freezing)
            let trainable = frozen.trainableMultiplyAdds
            PeakMemory.reset()
            let timing = try timedSteps(graph, freezing: depth.freezing, batch: batch, steps: steps)
            return Row(depth: depth, imagesPerSecond: timing.imagesPerSecond, peakResidentMegabytes: PeakMemory.peakMegabytes,
                       trainableMultiplyAdds: trainable, allMultiplyAdds: all,
                       bound: trainingBound(inferenceImagesPerSecond: inferenceImagesPerSecond,
                                            trainableMultiplyAdds: trainable, allMultiplyAdds: all),
                       stepTimes: timing.parts)
        }
    }

    /// Median images per second of `steps` full training steps at `batch` under `freezing`
    /// (after one untimed step, which plans the arenas), timed between the trainer's
    /// batch-finished events.
    public static func imagesPerSecond(_ graph: ModelGraph, freezing: Freezing, batch: Int = 32, steps: Int = 5) throws -> Double {
        try timedSteps(graph, freezing: freezing, batch: batch, steps: steps).imagesPerSecond
    }

    /// `imagesPerSecond`, and the median of each part of the timed steps (`StepTimes`).
    public static func timedSteps(_ graph: ModelGraph, freezing: Freezing, batch: Int = 32, steps: Int = 5)
        throws -> (imagesPerSecond: Double, parts: StepTimes) {
        let shape = graph.inputShape
        var generator = SplitMix64(seed: 9)
        let images = Tensor(shape: [batch] + shape, scalars: (0..<(batch * shape.reduce(1, *))).map { _ in generator.nextUnitFloat() * 255 })
        let source = RepeatedBatch(batch: images, count: batch * (steps + 1), labels: (0 ..< batch * (steps + 1)).map { $0 % 2 })
        let trainer = Trainer(graph: graph, loss: .binaryCrossentropyFromLogits, seed: 3)
        let clock = StepClock()
        trainer.observer = clock
        var phase = PhaseConfig(name: "bench", epochs: 1, optimizer: .adam(1e-4), freezing: freezing)
        phase.batchSize = batch
        _ = try trainer.fit(phase, train: source, validation: nil)
        let timed = Array(clock.parts.dropFirst())
        func median(_ values: [Double]) -> Double { values.isEmpty ? .nan : values.sorted()[values.count / 2] }
        let parts = StepTimes(prefix: median(timed.map(\.prefix)), forward: median(timed.map(\.forward)),
                              backward: median(timed.map(\.backward)), update: median(timed.map(\.update)))
        return (Double(batch) / median(Array(clock.stepSeconds.dropFirst())), parts)
    }

    /// What a run of steady-state training steps allocated (after one warm-up step).
    public struct SteadyState: Sendable {
        public var steps: Int
        public var batch: Int
        public var bnMode: BatchNormMode
        /// Activation, gradient and parameter-store buffers allocated during the steps.
        public var bufferAllocations: Int
        /// glibc's bytes in use, after − before, and minor page faults during the steps.
        public var mallocInUseDelta: Double
        public var minorFaults: Double
        /// malloc-family calls during the steps, when counted (`Benchmark.mallocCalls`).
        public var mallocCalls: Benchmark.MallocCalls?
    }

    /// Allocations of `steps` training steps under `freezing` at `batch`, through `Trainer.fit`
    /// as the timed rows run, counted from the end of the second step to the end of the last.
    /// Two steps warm up: the first makes the buffers, and the second is the first to take a
    /// previous step's tape back, where the Swift runtime builds, once per process, the
    /// metadata of the generic types it empties (a few mallocs that no later step repeats).
    /// Allocation does not depend on the batch size, so a small batch keeps the check short.
    /// `bnMode: .train` (Keras 3's `fit`, the recipe's fine-tune phase) also records batch
    /// statistics and updates the moving ones every step.
    public static func steadyState(_ graph: ModelGraph, freezing: Freezing = .all, bnMode: BatchNormMode = .inference,
                                   batch: Int = 4, steps: Int = 100) throws -> SteadyState {
        let shape = graph.inputShape
        var generator = SplitMix64(seed: 9)
        let images = Tensor(shape: [batch] + shape, scalars: (0..<(batch * shape.reduce(1, *))).map { _ in generator.nextUnitFloat() * 255 })
        let warmUp = AllocationProbe.warmUpSteps
        let source = RepeatedBatch(batch: images, count: batch * (steps + warmUp), labels: (0 ..< batch * (steps + warmUp)).map { $0 % 2 })
        let trainer = Trainer(graph: graph, loss: .binaryCrossentropyFromLogits, seed: 3)
        let probe = AllocationProbe(trainer: trainer, lastBatch: steps + warmUp)
        trainer.observer = probe
        var phase = PhaseConfig(name: "bench", epochs: 1, optimizer: .adam(1e-4), freezing: freezing)
        phase.batchSize = batch
        phase.bnMode = bnMode
        _ = try trainer.fit(phase, train: source, validation: nil)
        let (first, last) = (probe.first!, probe.last!)
        return SteadyState(steps: steps, batch: batch, bnMode: bnMode, bufferAllocations: last.buffers - first.buffers,
                           mallocInUseDelta: last.mallocInUse - first.mallocInUse, minorFaults: last.faults - first.faults,
                           mallocCalls: last.mallocCalls.flatMap { after in first.mallocCalls.map { after - $0 } })
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

/// One batch of images served for every step. It declares itself augmenting,
/// so the trainer caches no frozen-prefix outputs and every step runs the whole
/// network, as an augmented epoch does; the pixels are the same each time.
private struct RepeatedBatch: ImageBatchSource {
    let batch: Tensor
    let count: Int
    let labels: [Int]
    var augments: Bool { true }

    func images(_ indices: [Int], epoch: Int, augment: Bool, seed: UInt64) throws -> Tensor {
        guard indices.count != batch.shape[0] else { return batch }
        let size = batch.count / batch.shape[0]
        return Tensor(shape: [indices.count] + Array(batch.shape.dropFirst()),
                      scalars: Array(batch.scalars[0 ..< indices.count * size]))
    }
}

/// Reads the allocation counters at the end of the first batch and of `lastBatch`.
private final class AllocationProbe: TrainingObserver {
    /// Steps before the first reading (`TrainingBenchmark.steadyState`).
    static let warmUpSteps = 2
    struct Reading { var buffers: Int; var mallocInUse: Double; var faults: Double; var mallocCalls: Benchmark.MallocCalls? }
    private unowned let trainer: Trainer
    private let lastBatch: Int
    private(set) var first: Reading?
    private(set) var last: Reading?

    init(trainer: Trainer, lastBatch: Int) {
        self.trainer = trainer
        self.lastBatch = lastBatch
    }

    func epochStarted(epoch: Int, of totalEpochs: Int, batches: Int) {}
    func batchFinished(batch: Int, loss: Double, accuracy: Double) {
        guard batch == Self.warmUpSteps || batch == lastBatch else { return }
        let reading = Reading(buffers: trainer.sessionBufferAllocations, mallocInUse: Benchmark.mallocInUse(),
                              faults: ProcessUsage.minorFaults, mallocCalls: Benchmark.mallocCalls())
        if batch == Self.warmUpSteps { first = reading } else { last = reading }
    }
    func epochFinished(_ record: EpochRecord) {}
}

/// Wall seconds between consecutive batch-finished events (the first from the epoch's start),
/// and the trainer's timing of each step's parts.
private final class StepClock: TrainingObserver {
    private(set) var stepSeconds: [Double] = []
    private(set) var parts: [StepTimes] = []
    private var last = DispatchTime.now().uptimeNanoseconds

    func epochStarted(epoch: Int, of totalEpochs: Int, batches: Int) { last = DispatchTime.now().uptimeNanoseconds }
    func batchFinished(batch: Int, loss: Double, accuracy: Double) {
        let now = DispatchTime.now().uptimeNanoseconds
        stepSeconds.append(Double(now - last) * 1e-9)
        last = now
    }
    func stepTimed(_ times: StepTimes) { parts.append(times) }
    func epochFinished(_ record: EpochRecord) {}
}
