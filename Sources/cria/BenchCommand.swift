import ArgumentParser
import Cria
import Foundation

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure inference (batch 32 and 1, time by kernel kind, sgemm reference, memory) and training steps at each fine-tune depth.",
        discussion: """
            Without --model, runs MobileNetV2 (--alpha, --size, average pooling, no top) with seeded random weights:
            speed depends on the shapes only. Only ratios measured in the same run are comparable on a shared machine.
            """)

    @Option(help: "A Keras .h5, .weights.h5 or .keras file (default: random-weight MobileNetV2).")
    var model: String?

    @Option(help: "Batch size of the throughput run.")
    var batch: Int = 32

    @Option(help: "Timed batches (median reported).")
    var repetitions: Int = 10

    @Option(help: "Batches of the steady-state allocation check (0 skips it).")
    var steadyBatches: Int = 100

    @Option(help: "Threads for OpenBLAS and Cria's loops (default: all cores or CRIA_THREADS).")
    var threads: Int?

    @Option(help: "Bytes of expanded activations per band of an inverted-residual block, in KiB (0: whole images).")
    var bandKib: Int?

    @Option(help: "Images per GEMM in the late layers, with several images per thread (1: one image at a time).")
    var groupImages: Int?

    @Option(help: "Layers whose input has at most this many pixels (to the end) run on groups of images.")
    var groupPixels: Int?

    @Option(help: "Rows per GEMM call in the group phase: a group's images are taken this many pixels at a time.")
    var groupRows: Int?

    @Option(help: "At batch 1, blocks whose input has at most this many pixels split by channels across threads (0: all by rows).")
    var splitChannelsPixels: Int?

    @Flag(help: "Run expand, depthwise and project as separate steps (no block fusion).")
    var noFusion = false

    @Flag(help: "Also profile every step (a fused block is one): CPU ms per image and GFLOP/s at the batch, ms at batch 1.")
    var layers = false

    @Flag(help: "Print one JSON object instead of the table.")
    var json = false

    @Option(help: "Width multiplier of the random-weight model (or of a weights-only file).")
    var alpha: Double = 1.0

    @Option(help: "Input size H or HxW.")
    var size: String = "160"

    func validate() throws {
        if batch < 1 { throw ValidationError("--batch must be at least 1") }
        if repetitions < 1 { throw ValidationError("--repetitions must be at least 1") }
        if trainingSteps < 1 { throw ValidationError("--training-steps must be at least 1") }
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
        if try trainingDepths().isEmpty { throw ValidationError("--depths names no depth") }
    }

    @Flag(name: .customLong("skip-training"), help: "Skip the training rows (frozen base, fine_tune_at 140/120/100/50, trainable: all, cached frozen epochs).")
    var skipTraining = false

    @Option(help: "Timed training steps per depth (median reported, after one untimed step).")
    var trainingSteps: Int = 5

    @Option(help: ArgumentHelp("Only these training depths, comma-separated: frozen, a fine_tune_at layer index, or all (default: frozen,140,120,100,50,all).",
                               discussion: "With --depths, the cached frozen epochs are skipped: they time the prefix cache, not a depth."))
    var depths: String?

    /// `--depths` as benchmark depths, or the standard six.
    func trainingDepths() throws -> [TrainingBenchmark.Depth] {
        guard let depths else { return TrainingBenchmark.Depth.standard }
        return try depths.split(separator: ",").map { item in
            let text = item.trimmingCharacters(in: .whitespaces)
            switch text {
            case "frozen": return .init(.baseFrozen)
            case "all", "0": return .init(.all)
            default:
                guard let layer = Int(text), layer > 0 else {
                    throw ValidationError("--depths: '\(text)' is not frozen, all or a layer index")
                }
                return .init(.fineTuneAt(layer))
            }
        }
    }

    func run() throws {
        try reportingErrors {
            let architecture = try ArchitectureOptions.parse(["--alpha", "\(alpha)", "--size", size, "--pooling", "avg"])
            let (height, width) = try architecture.inputSize() ?? (160, 160)
            let graph: ModelGraph
            let name: String
            if let model {
                graph = try architecture.loadGraph(model).1
                name = "\(URL(fileURLWithPath: model).lastPathComponent) at \(height)x\(width)"
            } else {
                graph = try ModelGraph.randomMobileNetV2(alpha: alpha, inputHeight: height, inputWidth: width)
                name = "MobileNetV2 \(alpha)/\(height)x\(width), random weights, avg pooling"
            }
            var configuration = Benchmark.Configuration()
            configuration.batch = batch
            configuration.repetitions = repetitions
            configuration.steadyStateBatches = steadyBatches
            if let threads { configuration.threads = threads }
            if let bandKib { configuration.options.blockBandBytes = bandKib * 1024 }
            if let groupImages { configuration.options.groupImages = max(1, groupImages) }
            if let groupPixels { configuration.options.groupPixels = groupPixels }
            if let groupRows { configuration.options.groupRows = max(1, groupRows) }
            if let splitChannelsPixels { configuration.options.channelSplitPixels = splitChannelsPixels }
            configuration.profileLayers = layers
            configuration.options.fuseBlocks = !noFusion
            let log: (String) -> Void = { line in
                if !json { FileHandle.standardError.write(Data("  \(line)\n".utf8)) }
            }
            var report = try Benchmark.run(graph: graph, name: name, configuration: configuration, log: log)
            if !skipTraining {
                let transfer = try TransferModel.randomGraph(alpha: alpha, inputHeight: height, inputWidth: width)
                let inference = report["inference_b\(batch)_img_s"] ?? .nan
                let rows = try TrainingBenchmark.run(transfer, depths: try trainingDepths(), batch: batch, steps: trainingSteps,
                                                     inferenceImagesPerSecond: inference, log: log)
                report.setTraining(rows, batch: batch)
                if depths == nil {
                    log("frozen-phase epochs with the prefix cache...")
                    let epochs = try TrainingBenchmark.cachedFrozenEpochSeconds(transfer, batch: batch)
                    report.set("train_frozen_first_epoch_s", "frozen epoch of 210 images, first (fills cache)", epochs.first, unit: "s")
                    report.set("train_frozen_cached_epoch_s", "frozen epoch of 210 images, cached", epochs.cached, unit: "s")
                    report.set("train_cache_mb", "frozen-prefix cache", Double(epochs.cacheBytes) / 1_048_576, unit: "MB")
                }
                report.set("train_peak_rss_mb", "peak RSS, after training rows", ProcessUsage.peakResidentMegabytes, unit: "MB")
                if steadyBatches > 0 {
                    log("training steady state...")
                    for bnMode in [BatchNormMode.inference, .train] {
                        report.setTrainingSteadyState(try TrainingBenchmark.steadyState(transfer, bnMode: bnMode, steps: steadyBatches))
                    }
                }
            }
            print(json ? report.json.serialized(pretty: false) : report.table)
        }
    }
}
