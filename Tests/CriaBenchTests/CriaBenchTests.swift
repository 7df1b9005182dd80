import CriaBench
import CriaCore
import CriaModel
import CriaTestSupport
import CriaTraining
import XCTest

/// CriaBench's promises: multiply-add counts from the layer shapes, a profiler
/// that times inference from outside without changing its bits, and the JSON
/// that scripts read.
final class CriaBenchTests: XCTestCase {
    private var savedThreads = 1

    override func setUp() { savedThreads = Threads.count }
    override func tearDown() { Threads.set(savedThreads) }

    /// MobileNetV2 1.0/224 with its classifier is the paper's (and Keras's) "300 M multiply-adds";
    /// at 160 every feature map is (5/7)² as large, so the base without the classifier scales exactly.
    func testMultiplyAddsMatchThePublishedMobileNetV2Count() throws {
        let full = try ModelGraph(config: MobileNetV2.config(alpha: 1.0, inputHeight: 224, inputWidth: 224, includeTop: true),
                                  inputHeight: 224, inputWidth: 224, source: "shapes")
        let total224 = full.multiplyAdds
        // Sandler et al. 2018 quote 300 M for 1.0/224; summed exactly over the layers of the paper's
        // Table 2 (stem 3×3×3×32 at 112², 17 bottlenecks, 1×1 to 1280, 1280×1000 classifier) it is 300,774,272.
        XCTAssertEqual(total224, 300_774_272, "MobileNetV2 1.0/224 multiply-adds")
        let classifier = 1280 * 1000
        let base160 = try ModelGraph(config: MobileNetV2.config(alpha: 1.0, inputHeight: 160, inputWidth: 160, includeTop: false),
                                     inputHeight: 160, inputWidth: 160, source: "shapes")
        XCTAssertEqual(base160.multiplyAdds * 49, (total224 - classifier) * 25,
                       "every layer of the 160 base has (5/7)^2 of the 224 base's output pixels")
    }

    func testTrainableMultiplyAddsGrowWithDepthAndBoundFollowsTheCostModel() throws {
        var graph = try TransferModel.randomGraph(alpha: 0.35, inputHeight: 32, inputWidth: 32)
        let all = graph.multiplyAdds
        var previous = -1
        for freezing in [Freezing.baseFrozen, .fineTuneAt(140), .fineTuneAt(100), .fineTuneAt(50), .all] {
            try graph.applyFreezing(freezing)
            XCTAssertGreaterThan(graph.trainableMultiplyAdds, previous, "\(freezing)")
            previous = graph.trainableMultiplyAdds
        }
        XCTAssertEqual(previous, all, "trainable: all trains every multiply-add")
        XCTAssertEqual(trainingBound(inferenceImagesPerSecond: 300, trainableMultiplyAdds: all, allMultiplyAdds: all), 100)
        XCTAssertEqual(trainingBound(inferenceImagesPerSecond: 300, trainableMultiplyAdds: 0, allMultiplyAdds: all), 300)
    }

    /// The profiler and the pointwise-only diagnostic wrap the same kernels: with every body run,
    /// the outputs are the same bits as a plain prediction, in both schedules (batch ≥ threads and batch 1).
    func testProfilerHookLeavesResultsBitIdentical() throws {
        Threads.set(2)
        let graph = try ModelGraph.randomMobileNetV2(alpha: 0.35, inputHeight: 67, inputWidth: 73, includeTop: true,
                                                     classes: 10, pooling: nil)
        let model = try InferenceModel(graph: graph)
        let profiler = InferenceProfiler(model: model)
        for batch in [1, 4] {
            let input = Benchmark.randomImages(count: batch * graph.inputShape.reduce(1, *), seed: 3)
            var plain = [Float](repeating: 0, count: batch * model.outputCountPerImage), profiled = plain
            input.withUnsafeBufferPointer { images in
                model.predict(input: images.baseAddress!, batch: batch, output: &plain)
                model.predict(input: images.baseAddress!, batch: batch, output: &profiled, hook: profiler)
            }
            XCTAssertEqual(plain.map(\.bitPattern), profiled.map(\.bitPattern), "batch \(batch)")
        }
        XCTAssertGreaterThan(profiler.seconds(.pointwise), 0)
        XCTAssertGreaterThan(profiler.seconds(.depthwise), 0)
        XCTAssertGreaterThan(model.stepDescriptions.indices.reduce(0) { $0 + profiler.seconds(step: $1) }, 0)
    }

    /// What scripts read from `cria bench --json`: one row per standard depth in
    /// "training", and flat keys per depth, with the bound computed from the same run.
    func testTrainingRowsAndJSONShape() throws {
        Threads.set(1)
        let graph = try TransferModel.randomGraph(alpha: 0.35, inputHeight: 32, inputWidth: 32)
        let rows = try TrainingBenchmark.run(graph, batch: 2, steps: 1, inferenceImagesPerSecond: 1000)
        XCTAssertEqual(rows.map(\.depth.key), ["frozen", "finetune140", "finetune120", "finetune100", "finetune50", "all"])
        for row in rows {
            XCTAssertGreaterThan(row.imagesPerSecond, 0, row.depth.label)
            XCTAssertGreaterThan(row.peakResidentMegabytes, 0, row.depth.label)
            XCTAssertEqual(row.bound, 1000 / (1 + 2 * row.trainableFraction), accuracy: 1e-9)
            // One timed step: its four parts are disjoint stretches of it.
            let parts = [row.stepTimes.prefix, row.stepTimes.forward, row.stepTimes.backward, row.stepTimes.update]
            XCTAssertTrue(parts.allSatisfy { $0.isFinite && $0 >= 0 }, "\(row.depth.label): \(parts)")
            XCTAssertLessThanOrEqual(parts.reduce(0, +), 2 / row.imagesPerSecond, "\(row.depth.label): the parts outlast the step")
        }
        var report = Benchmark.Report(model: "test")
        report.setTraining(rows, batch: 2)
        guard case .object(let object) = report.json, case .array(let training)? = object["training"] else {
            return XCTFail("no training array in \(report.json)")
        }
        XCTAssertEqual(training.count, 6)
        guard case .object(let first) = training[0] else { return XCTFail("training rows are objects") }
        XCTAssertEqual(Set(first.keys), ["depth", "key", "img_s", "peak_rss_mb", "trainable_multiply_adds_m",
                                         "multiply_adds_m", "bound_img_s", "fraction_of_bound", "step_ms"])
        for key in ["train_all_b2_img_s", "train_finetune50_b2_bound_img_s", "train_finetune120_b2_fraction_of_bound",
                    "train_frozen_b2_peak_rss_mb", "train_frozen_b2_prefix_ms", "train_all_b2_forward_ms",
                    "train_all_b2_backward_ms", "train_finetune120_b2_update_ms"] {
            XCTAssertNotNil(report[key], key)
        }
        XCTAssertTrue(report.table.contains("fine_tune_at: 50"))
    }

    /// Steady-state training steps (after the first) allocate no activation, gradient,
    /// parameter or moment buffer, and the report carries the figures.
    func testSteadyStateTrainingStepsAllocateNoBuffers() throws {
        Threads.set(1)
        let graph = try TransferModel.randomGraph(alpha: 0.35, inputHeight: 32, inputWidth: 32)
        for freezing in [Freezing.all, .fineTuneAt(100)] {
            let steady = try TrainingBenchmark.steadyState(graph, freezing: freezing, batch: 2, steps: 6)
            XCTAssertEqual(steady.bufferAllocations, 0, "\(freezing)")
            XCTAssertEqual(steady.steps, 6)
            var report = Benchmark.Report(model: "test")
            report.setTrainingSteadyState(steady)
            XCTAssertEqual(report["train_steady_buffer_allocations_delta"], 0)
            guard case .object(let object) = report.json else { return XCTFail("the report is an object") }
            XCTAssertNotNil(object["train_steady_malloc_in_use_delta_bytes"])
            XCTAssertTrue(report.table.contains("parameter buffers allocated"))
        }
    }
}
