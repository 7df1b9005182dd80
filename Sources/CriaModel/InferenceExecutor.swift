import CBLAS
import CriaCore
import CriaKernels
import Dispatch
import Foundation

/// Where inference time goes, by kind of kernel (`cria bench` prints it).
public enum KernelCategory: Int, CaseIterable, Sendable {
    case pointwise, depthwise, firstConvolution, other

    public var label: String {
        switch self {
        case .pointwise: return "pointwise (1x1 GEMM)"
        case .depthwise: return "depthwise"
        case .firstConvolution: return "first conv"
        case .other: return "other"
        }
    }
}

/// Runs an `InferenceProgram` over arenas planned once and reused.
///
/// Threading: with at least as many images as threads, each thread runs whole
/// images through every spatial layer (no barrier until the tail), the late
/// small layers on groups of up to 16 images per GEMM; with fewer
/// (batch 1), the threads run the image together in one `SpinTeam` region:
/// large layers split by output rows, small ones (≤ `channelSplitPixels`)
/// by channels, with a spinning barrier after each step. Either way each
/// thread calls OpenBLAS with OpenBLAS set to one thread, so GEMMs and
/// Cria's loops never oversubscribe the cores,
/// and the partition depends only on (batch, thread count): results are
/// bit-identical run to run for a fixed thread count.
final class InferenceExecutor: @unchecked Sendable {
    let program: InferenceProgram
    let plan: ArenaPlan
    private var activationArenas: [FloatArena] = []
    private var scratchArenas: [FloatArena] = []
    private let batchArena = FloatArena()
    /// Arena (re)allocations so far: constant in steady state, which the tests check.
    private(set) var arenaAllocations = 0
    var profiling = false
    /// A diagnostic for `cria bench`: run only the 1×1 GEMM calls (and the
    /// barriers between them), skipping the depthwise, first-convolution and
    /// other kernels. The outputs are then meaningless; the time is what the
    /// OpenBLAS calls alone cost in the real schedule.
    var pointwiseOnly = false
    /// Seconds per (thread, category), summed across threads when read.
    private let timings = UnsafeMutablePointer<Double>.allocate(capacity: 256 * KernelCategory.allCases.count)

    /// Seconds per (thread, spatial step), for the per-layer profile.
    private let stepTimings: UnsafeMutablePointer<Double>

    init(program: InferenceProgram, plan: ArenaPlan) {
        self.program = program
        self.plan = plan
        timings.initialize(repeating: 0, count: 256 * KernelCategory.allCases.count)
        stepTimings = .allocate(capacity: 256 * max(1, program.spatialSteps.count))
        stepTimings.initialize(repeating: 0, count: 256 * max(1, program.spatialSteps.count))
    }

    deinit { timings.deallocate(); stepTimings.deallocate() }

    /// Bytes held by the arenas (activations, scratch, batch buffers).
    var arenaBytes: Int {
        4 * (activationArenas.reduce(0) { $0 + $1.capacity } + scratchArenas.reduce(0) { $0 + $1.capacity } + batchArena.capacity)
    }

    func resetTimings() {
        timings.update(repeating: 0, count: 256 * KernelCategory.allCases.count)
        stepTimings.update(repeating: 0, count: 256 * max(1, program.spatialSteps.count))
    }

    /// Thread-seconds spent in spatial step `index` since the last reset.
    func seconds(step index: Int) -> Double {
        (0..<256).reduce(0) { $0 + stepTimings[$1 * program.spatialSteps.count + index] }
    }

    /// Runs `body` and, when profiling, adds its time to step `index` on `thread`.
    @inline(__always)
    private func timed(step index: Int, thread: Int, _ body: () -> Void) {
        guard profiling else { body(); return }
        let start = DispatchTime.now().uptimeNanoseconds
        body()
        stepTimings[thread * program.spatialSteps.count + index] += Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
    }

    func seconds(_ category: KernelCategory) -> Double {
        (0..<256).reduce(0) { $0 + timings[$1 * KernelCategory.allCases.count + category.rawValue] }
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

    /// Whether a step runs split by output channels when one image is shared by
    /// all threads: its input is small (`InferenceOptions.channelSplitPixels`).
    ///
    /// Splitting a 10×10 or 5×5 image by rows leaves each thread 2–5 rows,
    /// and each must expand the rows its 3×3 window overlaps as well: on the
    /// 5×5 blocks the busier thread computes 4 of 5 expanded rows. Split by
    /// channels, each thread expands and filters half the channels of every
    /// row, meets the other at a barrier, then projects half the output
    /// channels from all of them: no work is repeated, for one more barrier.
    private func splitsChannels(_ step: SpatialStep) -> Bool {
        switch step.op {
        case .block(let block):
            return block.depthwise.inputHeight * block.depthwise.inputWidth <= program.channelSplitPixels
        case .pointwise(let conv):
            return conv.postActivation == nil && conv.inputHeight * conv.inputWidth <= program.channelSplitPixels
        default:
            return false
        }
    }

    /// The shared scratch of the channel-split steps: whole-image expanded and filtered tensors.
    private lazy var channelSplitScratch: Int = program.spatialSteps.filter(splitsChannels)
        .map { $0.op.groupScratchPerImage + 16 }.max() ?? 0

    /// Channels `[lower, upper)` of `count` for `member` of `members`: slices start on multiples of 8 (one SIMD vector).
    private static func channelSlice(_ count: Int, member: Int, of members: Int) -> Range<Int> {
        func boundary(_ m: Int) -> Int { m == members ? count : (count * m / members) & ~7 }
        return boundary(member) ..< boundary(member + 1)
    }

    /// Images per group in the group phase: what each thread holds, up to the option.
    /// Depends only on (batch, threads), as the partition must.
    private func groupSize(batch: Int, threads: Int) -> Int {
        guard batch >= threads else { return 1 }
        return max(1, min(program.groupImages, (batch + threads - 1) / threads))
    }

    /// Runs the program; afterwards `address(of:)` gives each requested output.
    func run(input: UnsafePointer<Float>, batch: Int) {
        let threads = min(max(1, Threads.count), 256)
        let group = groupSize(batch: batch, threads: threads)
        prepare(batch: batch, threads: threads, group: group)
        let batchBase = batchArena.base
        let steps = program.spatialSteps, groupStart = min(program.groupStart, steps.count)
        func context(_ arena: Int, scratch: Int, thread: Int) -> Context {
            let activations = activationArenas[arena].base
            return Context(input: input, batch: batch, batchBase: batchBase, activations: activations,
                           group: activations + plan.threadCount, groupSize: group,
                           scratch: scratchArenas[scratch].base, thread: thread)
        }
        // OpenBLAS's thread count is process-wide: two models running at once on
        // different threads would see each other's setting (results stay exact;
        // only the thread budget is shared). Restored below for the Dense tail.
        if threads > 1 { openblas_set_num_threads(1) }
        if batch >= threads {
            // Whole images per thread: contiguous ranges fixed by (batch, threads),
            // taken `group` at a time; each image runs alone up to the group
            // phase, then the group's images run through each step together.
            DispatchQueue.concurrentPerform(iterations: threads) { thread in
                let context = context(thread, scratch: thread, thread: thread)
                let images = batch * thread / threads ..< batch * (thread + 1) / threads
                for first in stride(from: images.lowerBound, to: images.upperBound, by: group) {
                    let count = min(group, images.upperBound - first)
                    for slot in 0..<count {
                        for index in 0..<groupStart {
                            let step = steps[index]
                            timed(step: index, thread: thread) {
                                runSpatial(step, image: first + slot, slot: slot, rows: 0..<step.rows, context)
                            }
                        }
                    }
                    for index in groupStart..<steps.count {
                        let step = steps[index], perCall = imagesPerCall(step, group: count)
                        timed(step: index, thread: thread) {
                            for slot in stride(from: 0, to: count, by: perCall) {
                                runGroup(step, first: first + slot, slot: slot, count: min(perCall, count - slot), context)
                            }
                        }
                    }
                }
            }
        } else {
            // One team region for the whole image: a barrier after every step
            // (its outputs are the next step's inputs), no thread wake-up per layer.
            let team = SpinTeam.shared
            team.run(size: threads) { thread in
                let own = context(0, scratch: thread, thread: thread), shared = context(0, scratch: 0, thread: thread)
                for image in 0..<batch {
                    for (index, step) in steps.enumerated() {
                        self.timed(step: index, thread: thread) {
                            if self.splitsChannels(step) {
                                self.runChannelSlice(step, image: image, member: thread, of: threads, shared, team: team)
                            } else if step.op.splitsRows && step.rows > 1 {
                                self.runSpatial(step, image: image, slot: 0,
                                                rows: step.rows * thread / threads ..< step.rows * (thread + 1) / threads, own)
                            } else if thread == 0 {
                                self.runSpatial(step, image: image, slot: 0, rows: 0..<step.rows, shared)
                            }
                            // An alias writes nothing: nobody needs to wait for it.
                            if case .alias = step.op { return }
                            team.barrier()
                        }
                    }
                }
            }
        }
        if threads > 1 { openblas_set_num_threads(Int32(threads)) }
        let start = profiling ? DispatchTime.now().uptimeNanoseconds : 0
        for (node, step) in program.vectorSteps { runVector(step, node: node, input: input, batch: batch) }
        if profiling { record(.other, since: start, thread: 0) }
    }

    /// Images of a group that one call of `step` takes (`InferenceOptions.groupRows`).
    private func imagesPerCall(_ step: SpatialStep, group: Int) -> Int {
        max(1, min(group, program.groupRows / max(1, step.inputPixels)))
    }

    /// One step of the group phase on images `first ..< first + count`, in slots `slot ..< slot + count`.
    private func runGroup(_ step: SpatialStep, first: Int, slot: Int, count: Int, _ context: Context) {
        if case .block(let block) = step.op {
            runWholeImageBlock(block, input: address(step.inputs[0], image: first, slot: slot, context),
                               residual: block.residual.map { address($0, image: first, slot: slot, context) },
                               output: address(step.node, image: first, slot: slot, context), images: count, context)
        } else if step.op.stacksImages {
            // The group's images lie one after the other in every buffer: one call over all their rows.
            runSpatial(step, image: first, slot: slot, rows: 0 ..< count * step.rows, context)
        } else {
            for offset in 0..<count {
                runSpatial(step, image: first + offset, slot: slot + offset, rows: 0..<step.rows, context)
            }
        }
    }

    /// The whole-batch buffer of a node (valid after `run` for requested and tail nodes).
    func address(of node: Int, input: UnsafePointer<Float>, batch: Int) -> UnsafePointer<Float> {
        switch plan.storage[node]! {
        case .input: return input
        case .batch(let offset): return UnsafePointer(batchArena.base + offset * batch)
        case .thread, .group: preconditionFailure("node \(node) is not kept for the whole batch")
        }
    }

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

    @inline(__always)
    private func address(_ node: Int, image: Int, slot: Int, _ context: Context) -> UnsafeMutablePointer<Float> {
        switch plan.storage[node]! {
        case .input: return UnsafeMutablePointer(mutating: context.input) + image * plan.perImage[node]
        case .thread(let offset): return context.activations + offset
        case .group(let offset): return context.group + offset * context.groupSize + slot * plan.perImage[node]
        case .batch(let offset): return context.batchBase + offset * context.batch + image * plan.perImage[node]
        }
    }

    @inline(__always)
    private func record(_ category: KernelCategory, since start: UInt64, thread: Int) {
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
        timings[thread * KernelCategory.allCases.count + category.rawValue] += elapsed
    }

    private func runSpatial(_ step: SpatialStep, image: Int, slot: Int, rows: Range<Int>, _ context: Context) {
        guard !rows.isEmpty else { return }
        if pointwiseOnly { switch step.op { case .pointwise, .block: break; default: return } }
        let output = address(step.node, image: image, slot: slot, context)
        let input = address(step.inputs[0], image: image, slot: slot, context)
        let start = profiling ? DispatchTime.now().uptimeNanoseconds : 0
        var category = KernelCategory.other
        switch step.op {
        case .pointwise(let conv):
            category = .pointwise
            let first = rows.lowerBound * conv.outputWidth
            pointwise(conv, input: input + first * conv.inputChannels, rows: rows.count * conv.outputWidth,
                      output: output + first * conv.outputChannels)
            if let post = conv.postActivation {
                post.apply(output + first * conv.outputChannels, rows: rows.count * conv.outputWidth, columns: conv.outputChannels)
            }
        case .convolution(let conv, let bandRows):
            category = .firstConvolution
            let depth = conv.kernelHeight * conv.kernelWidth * conv.inputChannels
            var row = rows.lowerBound
            while row < rows.upperBound {
                let end = min(row + bandRows, rows.upperBound)
                BandKernels.im2colRows(input: input, height: conv.inputHeight, width: conv.inputWidth,
                                       inputChannels: conv.inputChannels, kernelHeight: conv.kernelHeight,
                                       kernelWidth: conv.kernelWidth, strideH: conv.strideH, strideW: conv.strideW,
                                       padTop: conv.padTop, padLeft: conv.padLeft, rows: row..<end,
                                       outputWidth: conv.outputWidth, columns: context.scratch)
                BandKernels.gemm(input: context.scratch, rows: (end - row) * conv.outputWidth, inputChannels: depth,
                                 kernel: conv.kernel, outputChannels: conv.outputChannels, bias: conv.bias,
                                 clamp: conv.clamp, residual: nil,
                                 output: output + row * conv.outputWidth * conv.outputChannels)
                row = end
            }
            if let post = conv.postActivation {
                post.apply(output + rows.lowerBound * conv.outputWidth * conv.outputChannels,
                                rows: rows.count * conv.outputWidth, columns: conv.outputChannels)
            }
        case .directConvolution(let conv):
            category = .firstConvolution
            BandKernels.convolutionRows(input: input, height: conv.inputHeight, width: conv.inputWidth,
                                        inputChannels: conv.inputChannels, kernel: conv.kernel,
                                        kernelHeight: conv.kernelHeight, kernelWidth: conv.kernelWidth,
                                        outputChannels: conv.outputChannels, strideH: conv.strideH,
                                        strideW: conv.strideW, padTop: conv.padTop, padLeft: conv.padLeft,
                                        rows: rows, outputWidth: conv.outputWidth, bias: conv.bias, clamp: conv.clamp,
                                        output: output + rows.lowerBound * conv.outputWidth * conv.outputChannels)
            if let post = conv.postActivation {
                post.apply(output + rows.lowerBound * conv.outputWidth * conv.outputChannels,
                           rows: rows.count * conv.outputWidth, columns: conv.outputChannels)
            }
        case .depthwise(let conv):
            category = .depthwise
            depthwise(conv, band: input, bandStart: 0, bandRows: conv.inputHeight, rows: rows, inputClamp: .none,
                      output: output + rows.lowerBound * conv.outputWidth * conv.outputChannels)
        case .block(let block):
            let residual = block.residual.map { address($0, image: image, slot: slot, context) }
            runBlock(block, input: input, residual: residual, output: output, rows: rows, context)
            return
        case .scaleShift(let scale, let shift, let channels):
            let first = rows.lowerBound * step.rowScalars, count = rows.count * step.rowScalars
            for pixel in 0 ..< count / channels {
                let source = input + first + pixel * channels, target = output + first + pixel * channels
                for c in 0..<channels { target[c] = source[c] * scale[c] + shift[c] }
            }
        case .relu(let maxValue, let threshold, let slope):
            let first = rows.lowerBound * step.rowScalars
            for i in first ..< first + rows.count * step.rowScalars {
                let x = input[i]
                var y = x >= threshold ? x : slope * (x - threshold)
                if let maxValue { y = min(y, maxValue) }
                output[i] = y
            }
        case .activation(let function, let channels):
            let first = rows.lowerBound * step.rowScalars, count = rows.count * step.rowScalars
            (output + first).update(from: input + first, count: count)
            function.apply(output + first, rows: count / channels, columns: channels)
        case .pad(let top, let left, let inputHeight, let inputWidth, let channels):
            let rowLength = step.rowScalars, copy = inputWidth * channels
            for oy in rows {
                let target = output + oy * rowLength, iy = oy - top
                if iy >= 0 && iy < inputHeight {
                    target.update(repeating: 0, count: left * channels)
                    (target + left * channels).update(from: input + iy * copy, count: copy)
                    let tail = rowLength - left * channels - copy
                    (target + left * channels + copy).update(repeating: 0, count: tail)
                } else {
                    target.update(repeating: 0, count: rowLength)
                }
            }
        case .add:
            let first = rows.lowerBound * step.rowScalars, count = rows.count * step.rowScalars
            (output + first).update(from: input + first, count: count)
            for other in step.inputs.dropFirst() {
                let addend = address(other, image: image, slot: slot, context) + first
                for i in 0..<count { output[first + i] += addend[i] }
            }
        case .averagePool(let pixels, let channels):
            // Summed in Double in pixel order, as GlobalPooling does; the sums use the scratch arena.
            let sums = UnsafeMutableRawPointer(context.scratch).bindMemory(to: Double.self, capacity: channels)
            sums.update(repeating: 0, count: channels)
            for p in 0..<pixels {
                let pixel = input + p * channels
                for c in 0..<channels { sums[c] += Double(pixel[c]) }
            }
            for c in 0..<channels { output[c] = Float(sums[c] / Double(pixels)) }
            UnsafeMutableRawPointer(sums).bindMemory(to: Float.self, capacity: 2 * channels)
        case .maxPool(let pixels, let channels):
            for c in 0..<channels { output[c] = -.infinity }
            for p in 0..<pixels {
                for c in 0..<channels { output[c] = max(output[c], input[p * channels + c]) }
            }
        case .alias:
            break
        }
        if profiling { record(category, since: start, thread: context.thread) }
    }

    /// `conv`'s 1×1 GEMM over `rows` pixel rows, for output channels `columns`
    /// (all by default; a channel-split thread passes its slice). `output`
    /// and `residual` point at channel 0 of the first row.
    private func pointwise(_ conv: ConvOp, input: UnsafePointer<Float>, rows: Int, columns: Range<Int>? = nil,
                           residual: UnsafeMutablePointer<Float>? = nil, output: UnsafeMutablePointer<Float>) {
        let columns = columns ?? 0..<conv.outputChannels, first = columns.lowerBound
        BandKernels.gemm(input: input, rows: rows, inputChannels: conv.inputChannels, kernel: conv.kernel + first,
                         kernelStride: conv.outputChannels, outputChannels: columns.count,
                         bias: conv.bias.map { $0 + first }, clamp: conv.clamp,
                         residual: residual.map { UnsafePointer($0 + first) }, output: output + first,
                         outputStride: conv.outputChannels)
    }

    /// Depthwise rows of a band (see `BandKernels.depthwiseRows`), for
    /// channels `channels` (all by default). `band` and `output` point at channel 0.
    private func depthwise(_ conv: ConvOp, band: UnsafePointer<Float>, bandStart: Int, bandRows: Int,
                           rows: Range<Int>, channels: Range<Int>? = nil, inputClamp: Clamp,
                           output: UnsafeMutablePointer<Float>) {
        guard !pointwiseOnly else { return }
        let channels = channels ?? 0..<conv.inputChannels, first = channels.lowerBound
        BandKernels.depthwiseRows(band: band + first, bandStart: bandStart, bandRows: bandRows,
                                  height: conv.inputHeight, width: conv.inputWidth, channels: channels.count,
                                  channelStride: conv.inputChannels, kernel: conv.kernel + first,
                                  kernelHeight: conv.kernelHeight, kernelWidth: conv.kernelWidth,
                                  strideH: conv.strideH, strideW: conv.strideW, padTop: conv.padTop,
                                  padLeft: conv.padLeft, rows: rows, outputWidth: conv.outputWidth,
                                  bias: conv.bias.map { $0 + first }, clamp: conv.clamp, inputClamp: inputClamp,
                                  output: output + first)
    }

    /// One inverted-residual block over output rows `rows`, band by band.
    ///
    /// The expanded rows of a band live in scratch; rows that the next band
    /// needs again (the 3×3 window's overlap) are moved to the front rather
    /// than recomputed, so the expand GEMM computes every row once per thread.
    private func runBlock(_ block: BlockOp, input: UnsafeMutablePointer<Float>, residual: UnsafeMutablePointer<Float>?,
                          output: UnsafeMutablePointer<Float>, rows: Range<Int>, _ context: Context) {
        let dw = block.depthwise, project = block.project
        let width = dw.inputWidth, channels = dw.inputChannels, rowScalars = width * channels
        let expanded = context.scratch
        let depthwiseOut = context.scratch + (block.expand == nil ? 0
            : ArenaPlan.aligned(block.expandedRowsPerBand * rowScalars))
        var start = 0, end = 0
        var first = rows.lowerBound
        while first < rows.upperBound {
            let last = min(first + block.bandRows, rows.upperBound)
            let low = max(0, first * dw.strideH - dw.padTop)
            let high = min(dw.inputHeight, (last - 1) * dw.strideH - dw.padTop + dw.kernelHeight)
            var band = UnsafePointer(input), bandStart = 0, bandRows = dw.inputHeight
            if let expand = block.expand {
                var time = profiling ? DispatchTime.now().uptimeNanoseconds : 0
                if low >= start && low < end {
                    if low > start { memmove(expanded, expanded + (low - start) * rowScalars, (end - low) * rowScalars * 4) }
                    start = low
                } else {
                    start = low; end = low
                }
                if high > end {
                    pointwise(expand, input: input + end * width * expand.inputChannels, rows: (high - end) * width,
                              output: expanded + (end - start) * rowScalars)
                    end = high
                }
                band = UnsafePointer(expanded); bandStart = start; bandRows = end - start
                if profiling { record(.pointwise, since: time, thread: context.thread); time = DispatchTime.now().uptimeNanoseconds }
            }
            var time = profiling ? DispatchTime.now().uptimeNanoseconds : 0
            depthwise(dw, band: band, bandStart: bandStart, bandRows: bandRows, rows: first..<last,
                      inputClamp: block.depthwiseInputClamp, output: depthwiseOut)
            if profiling { record(.depthwise, since: time, thread: context.thread); time = DispatchTime.now().uptimeNanoseconds }
            let offset = first * project.outputWidth * project.outputChannels
            pointwise(project, input: depthwiseOut, rows: (last - first) * dw.outputWidth,
                      residual: residual.map { $0 + offset }, output: output + offset)
            if profiling { record(.pointwise, since: time, thread: context.thread) }
            first = last
        }
    }

    /// One inverted-residual block on `images` whole images stored one after
    /// the other: one expand GEMM and one project GEMM for all of them, the
    /// depthwise step image by image in between. A channel-split thread
    /// passes its slices of the expanded channels (`expanded`) and of the
    /// output channels (`outputs`), and a barrier as `between`: the
    /// projection reads every thread's filtered channels.
    private func runWholeImageBlock(_ block: BlockOp, input: UnsafeMutablePointer<Float>,
                                    residual: UnsafeMutablePointer<Float>?, output: UnsafeMutablePointer<Float>,
                                    images: Int, expanded: Range<Int>? = nil, outputs: Range<Int>? = nil,
                                    between: () -> Void = {}, _ context: Context) {
        let dw = block.depthwise, project = block.project
        let inputScalars = dw.inputHeight * dw.inputWidth * dw.inputChannels
        let outputPixels = dw.outputHeight * dw.outputWidth
        var band = UnsafePointer(input)
        var filtered = context.scratch
        var time = profiling ? DispatchTime.now().uptimeNanoseconds : 0
        if let expand = block.expand {
            pointwise(expand, input: input, rows: images * dw.inputHeight * dw.inputWidth, columns: expanded,
                      output: context.scratch)
            band = UnsafePointer(context.scratch)
            filtered += ArenaPlan.aligned(images * inputScalars)
            if profiling { record(.pointwise, since: time, thread: context.thread); time = DispatchTime.now().uptimeNanoseconds }
        }
        for image in 0..<images {
            depthwise(dw, band: band + image * inputScalars, bandStart: 0, bandRows: dw.inputHeight,
                      rows: 0..<dw.outputHeight, channels: expanded, inputClamp: block.depthwiseInputClamp,
                      output: filtered + image * outputPixels * dw.inputChannels)
        }
        if profiling { record(.depthwise, since: time, thread: context.thread) }
        between()
        time = profiling ? DispatchTime.now().uptimeNanoseconds : 0
        pointwise(project, input: filtered, rows: images * outputPixels, columns: outputs, residual: residual,
                  output: output)
        if profiling { record(.pointwise, since: time, thread: context.thread) }
    }

    /// `member`'s share of a channel-split step (see `splitsChannels`) on one
    /// image. Every member uses the shared scratch of `context`; a block meets
    /// at one barrier between the depthwise step and the projection.
    private func runChannelSlice(_ step: SpatialStep, image: Int, member: Int, of members: Int,
                                 _ context: Context, team: SpinTeam) {
        let input = address(step.inputs[0], image: image, slot: 0, context)
        let output = address(step.node, image: image, slot: 0, context)
        switch step.op {
        case .pointwise(let conv):
            let start = profiling ? DispatchTime.now().uptimeNanoseconds : 0
            pointwise(conv, input: input, rows: conv.outputHeight * conv.outputWidth,
                      columns: Self.channelSlice(conv.outputChannels, member: member, of: members), output: output)
            if profiling { record(.pointwise, since: start, thread: context.thread) }
        case .block(let block):
            runWholeImageBlock(block, input: input, residual: block.residual.map { address($0, image: image, slot: 0, context) },
                               output: output, images: 1,
                               expanded: Self.channelSlice(block.depthwise.inputChannels, member: member, of: members),
                               outputs: Self.channelSlice(block.project.outputChannels, member: member, of: members),
                               between: { team.barrier() }, context)
        default:
            preconditionFailure("step \(step.node) does not split by channels")
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
