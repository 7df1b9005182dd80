import CriaBench
import CriaCore
import CriaModel
import CriaTestSupport
import XCTest

/// The executor's promises: arenas planned once and reused, bit-identical
/// results for a fixed thread count, and the same numbers (to rounding)
/// whichever way the work is tiled, fused or split across threads.
final class InferenceArenaTests: XCTestCase {
    private var savedThreads = 1

    override func setUp() { savedThreads = Threads.count }
    override func tearDown() { Threads.set(savedThreads) }

    /// A small MobileNetV2 with every kind of block (stride 1 and 2, residual or not), odd size.
    private func graph(size: Int = 67) throws -> ModelGraph {
        try ModelGraph.randomMobileNetV2(alpha: 0.35, inputHeight: size, inputWidth: size + 6, includeTop: true, classes: 10, pooling: nil)
    }

    private func images(_ count: Int, _ graph: ModelGraph) -> Tensor {
        Tensor(shape: [count] + graph.inputShape,
               scalars: Benchmark.randomImages(count: count * graph.inputShape.reduce(1, *), seed: 3))
    }

    func testArenaIsAllocatedOnceAndReused() throws {
        let graph = try graph()
        let model = try InferenceModel(graph: graph)
        let input = images(4, graph)
        _ = try model(input)
        let allocations = model.arenaAllocations
        let bytes = model.arenaBytes
        for _ in 0..<5 { _ = try model(input) }
        XCTAssertEqual(model.arenaAllocations, allocations, "steady-state batches must not reallocate arenas")
        XCTAssertEqual(model.arenaBytes, bytes)
        // A smaller batch fits in what is there.
        _ = try model(images(1, graph))
        XCTAssertEqual(model.arenaAllocations, allocations)
    }

    func testSteadyStateTouchesNoNewPages() throws {
        let graph = try graph()
        let model = try InferenceModel(graph: graph)
        let input = images(4, graph).scalars
        var output = [Float](repeating: 0, count: 4 * model.outputCountPerImage)
        let steady = input.withUnsafeBufferPointer { images in
            output.withUnsafeMutableBufferPointer { out in
                Benchmark.steadyState(model: model, batches: 20) {
                    model.predict(input: images.baseAddress!, batch: 4, output: out.baseAddress!)
                }
            }
        }
        XCTAssertEqual(steady.arenaDelta, 0)
        // Fresh activation buffers per batch would fault in ~900 pages per batch here (18,000 in all);
        // what remains (a few dozen) is the thread pool's own stacks and bookkeeping.
        XCTAssertLessThan(steady.faults, 200, "minor page faults grew with the batches")
        if !steady.mallocDelta.isNaN { XCTAssertLessThan(abs(steady.mallocDelta), 64 * 1024) }
    }

    /// A prediction made inside one of Cria's parallel loops runs on that worker alone: the
    /// team runs one region at a time, so opening another from inside would wait for itself
    /// forever. It gives the model's numbers (to rounding: OpenBLAS keeps the loop's thread
    /// setting), the same bits on both workers.
    func testPredictInsideAParallelLoopRunsInline() throws {
        let graph = try graph()
        let model = try InferenceModel(graph: graph)
        Threads.set(1)
        let expected = try [4, 1].map { try model(images($0, graph)) }
        Threads.set(2)
        let results = UnsafeMutableBufferPointer<Tensor?>.allocate(capacity: 4)
        results.initialize(repeating: nil)
        defer { results.deallocate() }
        let finished = DispatchSemaphore(value: 0)
        let thread = Thread {
            Threads.parallelFor(2) { range in
                // Both workers predict, each a batch of 4 and then of 1 (the batch-1 path splits
                // rows across the team when it has it).
                for (slot, batch) in [4, 1].enumerated() {
                    results[range.lowerBound * 2 + slot] = try? model(self.images(batch, graph))
                }
            }
            finished.signal()
        }
        thread.start()
        XCTAssertEqual(finished.wait(timeout: .now() + 120), .success, "predict inside Threads.parallelFor did not return")
        for slot in 0..<2 {
            let first = try XCTUnwrap(results[slot]), second = try XCTUnwrap(results[2 + slot])
            XCTAssertEqual(first.scalars, second.scalars, "batch \([4, 1][slot]): the two workers differ")
            assertMatches(first, expected[slot], relative: 1e-4, "batch \([4, 1][slot]) inside the loop")
        }
    }

    func testBitIdenticalRunToRunForEachThreadCount() throws {
        let graph = try graph()
        for threads in [1, 2, 3] {
            Threads.set(threads)
            for batch in [1, 2, 5] {
                let model = try InferenceModel(graph: graph, outputs: ["block_2_add", graph.nodes[graph.outputNode].name])
                let input = images(batch, graph)
                let first = try model.predict(input)
                let second = try model.predict(input)
                let fresh = try InferenceModel(graph: graph, outputs: ["block_2_add", graph.nodes[graph.outputNode].name]).predict(input)
                for (name, tensor) in first {
                    XCTAssertEqual(tensor.scalars, second[name]!.scalars, "\(name), \(threads) threads, batch \(batch): run to run")
                    XCTAssertEqual(tensor.scalars, fresh[name]!.scalars, "\(name), \(threads) threads, batch \(batch): new model")
                }
            }
        }
    }

    func testTilingFusionAndSplitsAgree() throws {
        let graph = try graph()
        let input = images(3, graph)
        Threads.set(1)
        let reference = try InferenceModel(graph: graph, outputs: ["out_relu"],
                                           options: InferenceOptions(blockBandBytes: 0, fuseBlocks: false)).predict(input)["out_relu"]!
        for options in [InferenceOptions(blockBandBytes: 0, fuseBlocks: true),
                        InferenceOptions(blockBandBytes: 1, fuseBlocks: true),  // one output row per band
                        InferenceOptions(blockBandBytes: 20_000, fuseBlocks: true),
                        InferenceOptions(groupImages: 1),
                        // Every spatial step on groups of images, unfused and fused.
                        InferenceOptions(blockBandBytes: 0, fuseBlocks: false, groupImages: 2, groupPixels: .max),
                        InferenceOptions(groupImages: 2, groupPixels: .max),
                        // Batch 1 on rows only, and every block and 1×1 layer split by channels.
                        InferenceOptions(channelSplitPixels: 0),
                        InferenceOptions(channelSplitPixels: .max),
                        .default] {
            for threads in [1, 2, 3] {
                Threads.set(threads)
                let model = try InferenceModel(graph: graph, outputs: ["out_relu"], options: options)
                assertMatches(try model.predict(input)["out_relu"]!, reference, relative: 1e-4, "\(options), \(threads) threads")
                // Batch 1 splits rows or channels across threads instead of images.
                for n in 0..<3 {
                    assertMatches(try model.predict(Tensor(shape: [1] + graph.inputShape, scalars: input.slice(n).scalars))["out_relu"]!,
                                  Tensor(shape: [1] + reference.shape.dropFirst(), scalars: reference.slice(n).scalars),
                                  relative: 1e-4, "image \(n) alone, \(options), \(threads) threads")
                }
            }
        }
    }

    func testUnpooledTailAndRequestedInnerLayers() throws {
        // Requesting a layer inside a block stops the fusion there, as Keras's Model(inputs, layer.output) needs.
        let graph = try graph()
        let input = images(2, graph)
        let names = ["block_2_expand_relu", "block_2_depthwise", "block_5_project_BN", "Conv1_relu", "predictions"]
        let split = try InferenceModel(graph: graph, outputs: names).predict(input)
        let whole = try InferenceModel(graph: graph, outputs: names, options: InferenceOptions(blockBandBytes: 0, fuseBlocks: false)).predict(input)
        for name in names { assertMatches(split[name]!, whole[name]!, relative: 1e-4, name) }
        XCTAssertEqual(split["predictions"]!.shape, [2, 10])
    }
}
