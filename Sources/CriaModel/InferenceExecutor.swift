import CBLAS
import CriaCore
import CriaKernels
import Dispatch
import Foundation

/// Runs an `InferenceProgram` over arenas planned once and reused.
///
/// Threading, one schedule per file:
/// - with at least as many images as threads (`InferenceExecutor+ImageGroups`),
///   each thread runs whole images through every spatial layer (no barrier until
///   the tail), blocks in row bands (`InferenceExecutor+RowBands`), and the late
///   small layers on groups of up to 16 images per GEMM;
/// - with fewer (batch 1, `InferenceExecutor+ChannelSplit`), the threads run the
///   image together in one `SpinTeam` region: large layers split by output rows,
///   small ones (≤ `channelSplitPixels`) by channels, with a spinning barrier
///   after each step.
///
/// Either way each thread calls OpenBLAS with OpenBLAS set to one thread, so
/// GEMMs and Cria's loops never oversubscribe the cores, and the partition
/// depends only on (batch, thread count): results are bit-identical run to run
/// for a fixed thread count. Profiling happens from outside, through the
/// `ExecutionHook` the run is specialised for.
final class InferenceExecutor: @unchecked Sendable {
    let program: InferenceProgram
    let plan: ArenaPlan
    private var activationArenas: [FloatArena] = []
    private var scratchArenas: [FloatArena] = []
    private let batchArena = FloatArena()
    /// Arena (re)allocations so far: constant in steady state, which the tests check.
    private(set) var arenaAllocations = 0

    init(program: InferenceProgram, plan: ArenaPlan) {
        self.program = program
        self.plan = plan
    }

    /// Bytes held by the arenas (activations, scratch, batch buffers).
    var arenaBytes: Int {
        4 * (activationArenas.reduce(0) { $0 + $1.capacity } + scratchArenas.reduce(0) { $0 + $1.capacity } + batchArena.capacity)
    }

    /// Makes sure the arenas fit (batch, threads, group size); allocates only when one grows.
    private func prepare(batch: Int, threads: Int, group: Int) {
        while activationArenas.count < threads {
            activationArenas.append(FloatArena())
            scratchArenas.append(FloatArena())
        }
        for thread in 0..<threads {
            if activationArenas[thread].reserve(plan.threadCount + group * plan.groupPerImage) { arenaAllocations += 1 }
            if scratchArenas[thread].reserve(max(plan.scratchCount, group * plan.groupScratchPerImage + 16)) {
                arenaAllocations += 1
            }
        }
        if batch < threads, scratchArenas[0].reserve(channelSplitScratch) { arenaAllocations += 1 }
        if batchArena.reserve(plan.batchPerImage * max(1, batch)) { arenaAllocations += 1 }
    }

    /// The shared scratch of the channel-split steps: whole-image expanded and filtered tensors.
    private lazy var channelSplitScratch: Int = program.spatialSteps.filter(splitsChannels)
        .map { $0.op.groupScratchPerImage + 16 }.max() ?? 0

    /// Runs the program; afterwards `address(of:)` gives each requested output.
    func run<Hook: ExecutionHook>(input: UnsafePointer<Float>, batch: Int, hook: Hook) {
        // Inside one of Cria's parallel loops (a caller predicting per chunk), on this thread alone.
        let threads = Threads.isInsideWorker ? 1 : min(max(1, Threads.count), 256)
        let group = groupSize(batch: batch, threads: threads)
        prepare(batch: batch, threads: threads, group: group)
        let run = Run(input: input, batch: batch, group: group, batchBase: batchArena.base)
        // OpenBLAS's thread count is process-wide: two models running at once on
        // different threads would see each other's setting (results stay exact;
        // only the thread budget is shared). Restored below for the Dense tail.
        if threads > 1 { openblas_set_num_threads(1) }
        if batch >= threads {
            runImagesPerThread(run, threads: threads, hook: hook)
        } else {
            runSharedImages(run, threads: threads, hook: hook)
        }
        if threads > 1 { openblas_set_num_threads(Int32(threads)) }
        hook.kernel(.other, thread: 0) {
            for (node, step) in program.vectorSteps { runVector(step, node: node, input: input, batch: batch) }
        }
    }

    /// What every thread of one `run` shares.
    struct Run {
        let input: UnsafePointer<Float>
        let batch: Int
        /// Images per group in the group phase.
        let group: Int
        let batchBase: UnsafeMutablePointer<Float>
    }

    /// The buffers a thread uses: activation arena `arena`, scratch arena `scratch`.
    func context(_ arena: Int, scratch: Int, thread: Int, _ run: Run) -> Context {
        let activations = activationArenas[arena].base
        return Context(input: run.input, batch: run.batch, batchBase: run.batchBase, activations: activations,
                       group: activations + plan.threadCount, groupSize: run.group,
                       scratch: scratchArenas[scratch].base, thread: thread)
    }

    /// The whole-batch buffer of a node (valid after `run` for requested and tail nodes).
    func address(of node: Int, input: UnsafePointer<Float>, batch: Int) -> UnsafePointer<Float> {
        switch plan.storage[node]! {
        case .input: return input
        case .batch(let offset): return UnsafePointer(batchArena.base + offset * batch)
        case .thread, .group: preconditionFailure("node \(node) is not kept for the whole batch")
        }
    }

    /// Where one thread's run reads and writes.
    struct Context: @unchecked Sendable {
        let input: UnsafePointer<Float>
        let batch: Int
        let batchBase: UnsafeMutablePointer<Float>
        let activations: UnsafeMutablePointer<Float>
        /// The group region and the images per group of this run.
        let group: UnsafeMutablePointer<Float>
        let groupSize: Int
        let scratch: UnsafeMutablePointer<Float>
        let thread: Int
    }

    /// A node's buffer for `image` (in group slot `slot`) as `context` sees it.
    @inline(__always)
    func address(_ node: Int, image: Int, slot: Int, _ context: Context) -> UnsafeMutablePointer<Float> {
        switch plan.storage[node]! {
        case .input: return UnsafeMutablePointer(mutating: context.input) + image * plan.perImage[node]
        case .thread(let offset): return context.activations + offset
        case .group(let offset): return context.group + offset * context.groupSize + slot * plan.perImage[node]
        case .batch(let offset): return context.batchBase + offset * context.batch + image * plan.perImage[node]
        }
    }

    /// The tail after pooling (Dense, its activation, vector BatchNorm...), on the whole batch.
    private func runVector(_ step: InferenceStep, node: Int, input: UnsafePointer<Float>, batch: Int) {
        let count = batch * plan.perImage[node]
        let output = UnsafeMutablePointer(mutating: address(of: node, input: input, batch: batch))
        func source(_ index: Int) -> UnsafePointer<Float> { address(of: index, input: input, batch: batch) }
        switch step {
        case .alias:
            break
        case .batchNorm(let from, let scale, let shift), .affine(let from, let scale, let shift):
            let values = source(from), channels = scale.count
            for i in 0..<count { output[i] = values[i] * scale[i % channels] + shift[i % channels] }
        case .relu(let from, let maxValue, let threshold, let slope):
            let values = source(from)
            for i in 0..<count {
                let x = values[i]
                var y = x >= threshold ? x : slope * (x - threshold)
                if let maxValue { y = min(y, maxValue) }
                output[i] = y
            }
        case .activation(let from, let function):
            output.update(from: source(from), count: count)
            let columns = plan.perImage[node]
            function.apply(output, rows: count / max(1, columns), columns: columns)
        case .add(let inputs):
            output.update(from: source(inputs[0]), count: count)
            for other in inputs.dropFirst() {
                let values = source(other)
                for i in 0..<count { output[i] += values[i] }
            }
        case .dense(let from, let kernel, let bias, let units, let activation):
            let features = plan.perImage[from]
            let clamp: Clamp = activation == .relu ? .relu : activation == .relu6 ? .relu6 : .none
            withOptionalPointer(bias) { biasPointer in
                Pointwise.forward(input: source(from), rows: batch, inputChannels: features, kernel: kernel,
                                  outputChannels: units, bias: biasPointer, clamp: clamp, output: output)
            }
            if activation == .softmax || activation == .sigmoid { activation.apply(output, rows: batch, columns: units) }
        case .convolution, .pad, .averagePool, .maxPool:
            preconditionFailure("spatial step \(node) planned into the vector tail")
        }
    }
}
