import CBLAS
import CriaCore
import CriaKernels
import CriaModel
import Dispatch
import Foundation

/// What `cria bench` measures, as a library so that tests and scripts can run it.
///
/// Only ratios measured in one run mean much on a shared machine, so the
/// report carries its own sgemm reference, measured minutes apart from the
/// model, and the time split by kernel kind.
public enum Benchmark {
    public struct Configuration: Sendable {
        public var batch = 32
        public var threads = Threads.count
        /// Timed batches (after warm-up) for the throughput figure; the median is reported.
        public var repetitions = 10
        /// Timed single-image runs for the latency figure.
        public var latencyRepetitions = 30
        /// Batches of the steady-state allocation check.
        public var steadyStateBatches = 100
        public var options = InferenceOptions.default
        /// Also time every spatial step (a fused block is one) at both batch sizes.
        public var profileLayers = false
        public init() {}
    }

    /// One row of the per-layer profile (`cria bench --layers`).
    public struct LayerRow: Sendable {
        public var name: String
        public var inputPixels: Int
        public var multiplyAddsPerImage: Int
        /// CPU milliseconds per image at the throughput batch (thread-seconds / images).
        public var cpuMillisecondsPerImage: Double
        /// Wall milliseconds of the step in one batch-1 run, barrier waits included.
        public var batch1Milliseconds: Double

        /// GFLOP/s of one thread at the throughput batch.
        public var gigaflopsPerThread: Double {
            cpuMillisecondsPerImage > 0 ? 2 * Double(multiplyAddsPerImage) / cpuMillisecondsPerImage / 1e6 : 0
        }
    }

    /// One named figure: `key` for JSON, `label` for the table, nil when not measured.
    public struct Metric: Sendable {
        public var key: String
        public var label: String
        public var value: Double?
        public var unit: String
        public init(key: String, label: String, value: Double?, unit: String) {
            self.key = key; self.label = label; self.value = value; self.unit = unit
        }
    }

    public struct Report: Sendable {
        public var model: String
        public var metrics: [Metric] = []
        /// The per-layer profile, when asked for.
        public var layers: [LayerRow] = []
        /// Training steps at each fine-tune depth, when measured.
        public var training: [TrainingBenchmark.Row] = []
        /// The machine and kernels the run measured (CPU, threads, OpenBLAS's kernels, the depthwise path).
        public var system: SystemInfo = .current()

        public init(model: String) { self.model = model }

        public subscript(key: String) -> Double? {
            metrics.first { $0.key == key }?.value ?? trainingMetrics.first { $0.key == key }?.value
        }

        public mutating func set(_ key: String, _ label: String, _ value: Double?, unit: String = "") {
            if let index = metrics.firstIndex(where: { $0.key == key }) {
                metrics[index].value = value
            } else {
                metrics.append(Metric(key: key, label: label, value: value, unit: unit))
            }
        }

        /// One JSON object: every metric key with its value (null when not measured).
        public var json: JSONValue {
            var object: [String: JSONValue] = ["model": .string(model), "system": system.json]
            for metric in metrics { object[metric.key] = metric.value.map { .number($0) } ?? .null }
            if !layers.isEmpty {
                object["layers"] = .array(layers.map { row in
                    .object(["name": .string(row.name), "input_pixels": .number(Double(row.inputPixels)),
                             "multiply_adds_m": .number(Double(row.multiplyAddsPerImage) / 1e6),
                             "cpu_ms_per_img": .number(row.cpuMillisecondsPerImage),
                             "gflops_per_thread": .number(row.gigaflopsPerThread),
                             "b1_ms": .number(row.batch1Milliseconds)])
                })
            }
            for (key, value) in trainingMetrics { object[key] = value.isFinite ? .number(value) : .null }
            if !training.isEmpty {
                func number(_ value: Double) -> JSONValue { value.isFinite ? .number(value) : .null }
                object["training"] = .array(training.map { row in
                    .object(["depth": .string(row.depth.label), "key": .string(row.depth.key),
                             "img_s": number(row.imagesPerSecond), "peak_rss_mb": number(row.peakResidentMegabytes),
                             "trainable_multiply_adds_m": number(Double(row.trainableMultiplyAdds) / 1e6),
                             "multiply_adds_m": number(Double(row.allMultiplyAdds) / 1e6),
                             "bound_img_s": number(row.bound), "fraction_of_bound": number(row.fractionOfBound),
                             "step_ms": .object(["prefix": number(1000 * row.stepTimes.prefix), "forward": number(1000 * row.stepTimes.forward),
                                                 "backward": number(1000 * row.stepTimes.backward),
                                                 "update": number(1000 * row.stepTimes.update)])])
                })
            }
            return .object(object)
        }

        /// Records the training rows: the table prints them as one block, JSON as
        /// the "training" array and as flat keys (`trainingMetrics`).
        public mutating func setTraining(_ rows: [TrainingBenchmark.Row], batch: Int) {
            training = rows
            trainingBatch = batch
        }

        /// Records the steady-state training check: what `steady.steps` steps of `trainable: all`
        /// allocated after the first (buffers, malloc's bytes in use, page faults). Keys start
        /// `train_steady_` for `bn_mode: inference` and `train_steady_bn_train_` for `bn_mode: train`.
        public mutating func setTrainingSteadyState(_ steady: TrainingBenchmark.SteadyState) {
            let key = steady.bnMode == .train ? "train_steady_bn_train_" : "train_steady_"
            set(key + "steps", "training steady state: steps (trainable: all, bn_mode: \(steady.bnMode.rawValue), batch \(steady.batch))",
                Double(steady.steps))
            set(key + "buffer_allocations_delta", "  activation, gradient and parameter buffers allocated",
                Double(steady.bufferAllocations))
            set(key + "malloc_in_use_delta_bytes", "  malloc in-use bytes, after - before", steady.mallocInUseDelta, unit: "B")
            if let calls = steady.mallocCalls {
                set(key + "malloc_calls_per_step", "  malloc calls per step (preloaded counter)", calls.total / Double(max(steady.steps, 1)))
                set(key + "openblas_malloc_calls_per_step", "    of which OpenBLAS's own", calls.fromOpenBLAS / Double(max(steady.steps, 1)))
            }
            set(key + "minor_faults_delta", "  minor page faults during the steps", steady.minorFaults)
        }

        /// Batch size of the training rows.
        public private(set) var trainingBatch = 32

        /// Flat keys per depth for scripts: `train_<depth>_b<batch>_img_s`, `_peak_rss_mb`,
        /// `_bound_img_s` and `_fraction_of_bound`.
        public var trainingMetrics: [(key: String, value: Double)] {
            training.flatMap { row -> [(key: String, value: Double)] in
                let stem = "train_\(row.depth.key)_b\(trainingBatch)"
                return [(stem + "_img_s", row.imagesPerSecond), (stem + "_peak_rss_mb", row.peakResidentMegabytes),
                        (stem + "_bound_img_s", row.bound), (stem + "_fraction_of_bound", row.fractionOfBound),
                        (stem + "_prefix_ms", 1000 * row.stepTimes.prefix), (stem + "_forward_ms", 1000 * row.stepTimes.forward),
                        (stem + "_backward_ms", 1000 * row.stepTimes.backward), (stem + "_update_ms", 1000 * row.stepTimes.update)]
            }
        }

        /// The training rows as a table, shallowest depth first.
        public var trainingTable: String {
            // Each heading is right-aligned over its column (the widths of the row format below).
            let headings = [("img/s", 8), ("trainable MACs", 18), ("bound img/s", 13), ("of bound", 10), ("peak RSS MB", 13),
                            ("step ms: prefix", 17), ("forward", 9), ("backward", 10), ("update", 8)]
            var lines = ["depth".padding(toLength: 17, withPad: " ", startingAt: 0)
                         + headings.map { String(repeating: " ", count: $0.1 - $0.0.count) + $0.0 }.joined()]
            for row in training {
                lines.append(row.depth.label.padding(toLength: 17, withPad: " ", startingAt: 0) + String(
                    format: "  %6.1f  %7.1f M %5.1f%%  %11.1f  %7.1f%%  %11.0f  %15.1f  %7.1f  %8.1f  %6.1f", row.imagesPerSecond,
                    Double(row.trainableMultiplyAdds) / 1e6, 100 * row.trainableFraction, row.bound,
                    100 * row.fractionOfBound, row.peakResidentMegabytes, 1000 * row.stepTimes.prefix,
                    1000 * row.stepTimes.forward, 1000 * row.stepTimes.backward, 1000 * row.stepTimes.update))
            }
            return lines.joined(separator: "\n")
        }

        public var table: String {
            let width = metrics.map(\.label.count).max() ?? 10
            var lines = ["model: \(model)"] + system.lines
            for metric in metrics {
                let value = metric.value.map { String(format: "%.3f", $0) } ?? "(not measured)"
                lines.append(metric.label.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + value
                             + (metric.unit.isEmpty || metric.value == nil ? "" : " " + metric.unit))
            }
            if !training.isEmpty { lines += ["", trainingTable] }
            if !layers.isEmpty { lines += ["", layerTable] }
            return lines.joined(separator: "\n")
        }

        /// The per-layer profile as a table, heaviest CPU time first.
        public var layerTable: String {
            let batchTotal = layers.reduce(0) { $0 + $1.cpuMillisecondsPerImage }
            let b1Total = layers.reduce(0) { $0 + $1.batch1Milliseconds }
            let width = max(10, layers.map(\.name.count).max() ?? 10)
            var lines = ["step".padding(toLength: width, withPad: " ", startingAt: 0)
                         + "  pixels   MACs (M)  CPU ms/img  share  GFLOP/s/thread  batch-1 ms  share"]
            for row in layers.sorted(by: { $0.cpuMillisecondsPerImage > $1.cpuMillisecondsPerImage }) {
                lines.append(row.name.padding(toLength: width, withPad: " ", startingAt: 0) + String(
                    format: "  %6d  %9.2f  %10.3f  %5.3f  %14.1f  %10.3f  %5.3f", row.inputPixels,
                    Double(row.multiplyAddsPerImage) / 1e6, row.cpuMillisecondsPerImage,
                    batchTotal > 0 ? row.cpuMillisecondsPerImage / batchTotal : 0, row.gigaflopsPerThread,
                    row.batch1Milliseconds, b1Total > 0 ? row.batch1Milliseconds / b1Total : 0))
            }
            return lines.joined(separator: "\n")
        }
    }

    /// Runs the whole inference benchmark on `graph`.
    public static func run(graph: ModelGraph, name: String, configuration: Configuration,
                           log: (String) -> Void = { _ in }) throws -> Report {
        Threads.set(configuration.threads)
        var report = Report(model: name)
        report.set("threads", "threads (OpenBLAS and Cria)", Double(Threads.count))

        log("sgemm reference...")
        let gemm = sgemmGigaflops()
        report.set("gemm_gflops", "sgemm 1024^3 (same run)", gemm, unit: "GFLOP/s")

        let model = try InferenceModel(graph: graph, outputs: nil, options: configuration.options)
        let batch = max(1, configuration.batch)
        let perImage = graph.inputShape.reduce(1, *)
        let input = randomImages(count: batch * perImage, seed: 7)
        let output = UnsafeMutablePointer<Float>.allocate(capacity: batch * model.outputCountPerImage)
        defer { output.deallocate() }

        log("batch \(batch)...")
        let cpuBefore = ProcessUsage.cpuSeconds
        let batchSeconds = input.withUnsafeBufferPointer { images -> Double in
            median(timings(warmup: 2, count: configuration.repetitions) {
                model.predict(input: images.baseAddress!, batch: batch, output: output)
            })
        }
        // CPU time per image: on a loaded shared machine, a steadier figure than wall time for comparing variants.
        let cpuPerImage = (ProcessUsage.cpuSeconds - cpuBefore) / Double((configuration.repetitions + 2) * batch)
        report.set("inference_b\(batch)_cpu_ms_per_img", "CPU time per image, batch \(batch)", cpuPerImage * 1000, unit: "ms")
        let throughput = Double(batch) / batchSeconds
        report.set("inference_b\(batch)_img_s", "inference, batch \(batch)", throughput, unit: "img/s")
        if batch != 32 { report.set("inference_b32_img_s", "inference, batch 32", nil) }

        log("batch 1...")
        func batch1Latency<Hook: ExecutionHook>(_ hook: Hook) -> Double {
            input.withUnsafeBufferPointer { images in
                median(timings(warmup: 3, count: configuration.latencyRepetitions) {
                    model.predict(input: images.baseAddress!, batch: 1, output: output, hook: hook)
                })
            }
        }
        let latency = batch1Latency(NoExecutionHook())
        report.set("inference_b1_ms", "inference, batch 1, latency", latency * 1000, unit: "ms")
        report.set("inference_b1_img_s", "inference, batch 1", 1 / latency, unit: "img/s")
        // The same schedule with only the 1×1 GEMMs: the part of batch-1 latency
        // that OpenBLAS sets (it packs every call's weights; see docs/inference-speed.md).
        let pointwiseLatency = batch1Latency(PointwiseOnlyHook())
        report.set("inference_b1_pointwise_only_ms", "batch 1, its 1x1 GEMM calls alone", pointwiseLatency * 1000, unit: "ms")

        // Where the time goes: one profiled pass of a few batches (clock reads add ~1%).
        log("profile...")
        let profiler = InferenceProfiler(model: model)
        let profiledBatches = 3
        input.withUnsafeBufferPointer { images in
            for _ in 0..<profiledBatches { model.predict(input: images.baseAddress!, batch: batch, output: output, hook: profiler) }
        }
        let seconds = Dictionary(uniqueKeysWithValues: KernelCategory.allCases.map { ($0, profiler.seconds($0)) })
        if configuration.profileLayers {
            let steps = model.stepDescriptions
            let atBatch = steps.indices.map { profiler.seconds(step: $0) }
            profiler.reset()
            let latencyRuns = 20
            input.withUnsafeBufferPointer { images in
                for _ in 0..<latencyRuns { model.predict(input: images.baseAddress!, batch: 1, output: output, hook: profiler) }
            }
            report.layers = steps.indices.map { index in
                let step = steps[index]
                return LayerRow(name: Self.stepName(step.layers), inputPixels: step.inputPixels,
                                multiplyAddsPerImage: step.multiplyAddsPerImage,
                                cpuMillisecondsPerImage: atBatch[index] / Double(batch * profiledBatches) * 1000,
                                batch1Milliseconds: profiler.seconds(step: index) / Double(Threads.count * latencyRuns) * 1000)
            }
        }
        let total = seconds.values.reduce(0, +)
        let flops = model.multiplyAddsPerImage
        let totalMultiplyAdds = flops.values.reduce(0, +)
        report.set("multiply_adds_per_image_m", "multiply-adds per image", Double(totalMultiplyAdds) / 1e6, unit: "M")
        for category in KernelCategory.allCases {
            let key = "time_fraction_" + ["pointwise", "depthwise", "first_conv", "other"][category.rawValue]
            report.set(key, "time share: \(category.label)", total > 0 ? (seconds[category] ?? 0) / total : nil)
            // Per-kernel GFLOP/s on thread-seconds, times the thread count: what all cores achieve.
            if let macs = flops[category], macs > 0, let time = seconds[category], time > 0 {
                let rate = 2 * Double(macs * batch * profiledBatches) / time * Double(Threads.count) / 1e9
                report.set(key.replacingOccurrences(of: "time_fraction", with: "gflops"),
                           "GFLOP/s: \(category.label)", rate, unit: "GFLOP/s")
            }
        }
        let achieved = 2 * Double(totalMultiplyAdds) * throughput / 1e9
        report.set("achieved_gflops", "achieved, batch \(batch)", achieved, unit: "GFLOP/s")
        report.set("fraction_of_sgemm", "achieved / sgemm", gemm > 0 ? achieved / gemm : nil)

        if configuration.steadyStateBatches > 0 {
        log("steady state...")
        let steady = input.withUnsafeBufferPointer { images in
            steadyState(model: model, batches: configuration.steadyStateBatches) {
                model.predict(input: images.baseAddress!, batch: batch, output: output)
            }
        }
        report.set("steady_batches", "steady-state check: batches", Double(configuration.steadyStateBatches))
        report.set("steady_malloc_in_use_delta_bytes", "  malloc in-use bytes, after - before", steady.mallocDelta, unit: "B")
        report.set("steady_minor_faults_delta", "  minor page faults during the batches", steady.faults)
        report.set("steady_rss_delta_mb", "  RSS, after - before", steady.rssDelta, unit: "MB")
        report.set("steady_arena_allocations_delta", "  arena allocations during the batches", steady.arenaDelta)
        if let calls = steady.mallocCalls {
            report.set("steady_malloc_calls", "  malloc calls during the batches (preloaded counter)", calls.total)
            report.set("steady_openblas_malloc_calls", "    of which OpenBLAS's own", calls.fromOpenBLAS)
        }
        }
        report.set("arena_mb", "activation arenas", Double(model.arenaBytes) / 1_048_576, unit: "MB")
        report.set("peak_rss_mb", "peak RSS", ProcessUsage.peakResidentMegabytes, unit: "MB")
        return report
    }

    /// A step's name for the profile: its first layer, and how many it fuses.
    static func stepName(_ layers: [String]) -> String {
        guard let first = layers.first else { return "?" }
        return layers.count == 1 ? first : "\(first) (+\(layers.count - 1))"
    }

    // MARK: Measurements

    /// GFLOP/s of one OpenBLAS sgemm (1024³) at the current thread count, best of several.
    public static func sgemmGigaflops(size: Int = 1024, repetitions: Int = 8) -> Double {
        let a = randomImages(count: size * size, seed: 1), b = randomImages(count: size * size, seed: 2)
        var c = [Float](repeating: 0, count: size * size)
        let n = Int32(size)
        let times = timings(warmup: 1, count: repetitions) {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b, n, 0, &c, n)
        }
        return 2 * pow(Double(size), 3) / median(times) / 1e9
    }

    /// Wall-clock seconds of `count` calls after `warmup` untimed ones.
    public static func timings(warmup: Int, count: Int, _ body: () -> Void) -> [Double] {
        for _ in 0..<warmup { body() }
        return (0..<max(1, count)).map { _ in
            let start = DispatchTime.now().uptimeNanoseconds
            body()
            return Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
        }
    }

    public static func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        guard !sorted.isEmpty else { return .nan }
        return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
    }

    public struct SteadyState: Sendable {
        public var mallocDelta: Double
        public var faults: Double
        public var rssDelta: Double
        public var arenaDelta: Double
        /// malloc-family calls during the batches, when counted (`mallocCalls`).
        public var mallocCalls: MallocCalls?
    }

    /// malloc-family calls counted by the preloaded probe: all of them, and those OpenBLAS's
    /// own code made (its AVX-512 small-matrix sgemm allocates a buffer per call for some shapes).
    public struct MallocCalls: Sendable {
        public var total: Double
        public var fromOpenBLAS: Double
        /// Calls made by everything else: Cria, Swift's runtime and Foundation.
        public var outsideOpenBLAS: Double { total - fromOpenBLAS }

        static func - (after: MallocCalls, before: MallocCalls) -> MallocCalls {
            MallocCalls(total: after.total - before.total, fromOpenBLAS: after.fromOpenBLAS - before.fromOpenBLAS)
        }
    }

    /// Runs `body` `batches` times after one warm-up and reports what grew:
    /// malloc's in-use bytes (glibc `mallinfo2`), minor page faults (every
    /// fresh page an allocation touches costs one) and the resident set.
    public static func steadyState(model: InferenceModel, batches: Int, _ body: () -> Void) -> SteadyState {
        body()
        let arenas = model.arenaAllocations
        let malloc = mallocInUse(), faults = ProcessUsage.minorFaults, rss = residentMegabytes(), calls = mallocCalls()
        for _ in 0..<batches { body() }
        let callsAfter = mallocCalls()
        return SteadyState(mallocDelta: mallocInUse() - malloc, faults: ProcessUsage.minorFaults - faults,
                           rssDelta: residentMegabytes() - rss, arenaDelta: Double(model.arenaAllocations - arenas),
                           mallocCalls: callsAfter.flatMap { after in calls.map { after - $0 } })
    }

    /// Seeded uniform values in [-1, 1): the scale of `preprocess_input` images.
    public static func randomImages(count: Int, seed: UInt64) -> [Float] {
        var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        return (0..<count).map { _ in
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            return Float(state >> 40) / Float(1 << 23) - 1
        }
    }

    static func residentMegabytes() -> Double {
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8),
              let pages = text.split(separator: " ").dropFirst().first.flatMap({ Double($0) }) else { return .nan }
        return pages * Double(sysconf(Int32(_SC_PAGESIZE))) / 1_048_576
    }

    /// malloc-family calls so far, when `Benchmarks/probes/malloc_count.c` is preloaded
    /// (`LD_PRELOAD`); nil otherwise (glibc itself counts no calls).
    static func mallocCalls() -> MallocCalls? {
        typealias Counter = @convention(c) () -> Int
        guard let library = dlopen(nil, RTLD_NOW), let total = dlsym(library, "cria_malloc_calls") else { return nil }
        let fromOpenBLAS = dlsym(library, "cria_malloc_calls_from_openblas")
        return MallocCalls(total: Double(unsafeBitCast(total, to: Counter.self)()),
                           fromOpenBLAS: fromOpenBLAS.map { Double(unsafeBitCast($0, to: Counter.self)()) } ?? 0)
    }

    /// glibc's `mallinfo2().uordblks + hblkhd` (bytes in use, heap and mmap).
    ///
    /// Swift's Glibc module map does not include malloc.h, so the function is
    /// looked up at run time. `struct mallinfo2` is ten size_t fields, returned
    /// through a caller-provided buffer whose address goes in the first
    /// argument register on x86-64 System V; elsewhere this reports NaN.
    static func mallocInUse() -> Double {
        #if arch(x86_64) && os(Linux)
        typealias ReturnsThroughBuffer = @convention(c) (UnsafeMutableRawPointer) -> UnsafeMutableRawPointer?
        guard let library = dlopen(nil, RTLD_NOW), let symbol = dlsym(library, "mallinfo2") else { return .nan }
        var fields = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        return withUnsafeMutableBytes(of: &fields) { buffer -> Double in
            _ = unsafeBitCast(symbol, to: ReturnsThroughBuffer.self)(buffer.baseAddress!)
            let values = buffer.bindMemory(to: Int.self)
            return Double(values[7] + values[4])  // uordblks + hblkhd
        }
        #else
        return .nan
        #endif
    }
}
