import CriaCore
import CriaKernels
import Foundation

/// The row-band strategy: a step computes a range of output rows of one image,
/// and an inverted-residual block runs band by band so that a band's expanded
/// rows stay in L2 between its three kernels. The other schedules hand it
/// whole images (`+ImageGroups`) or a thread's share of the rows (`+ChannelSplit`).
extension InferenceExecutor {
    /// Output rows `rows` of `step` on `image` (group slot `slot`).
    func runSpatial<Hook: ExecutionHook>(_ step: SpatialStep, image: Int, slot: Int, rows: Range<Int>, _ context: Context,
                                         hook: Hook) {
        guard !rows.isEmpty else { return }
        let output = address(step.node, image: image, slot: slot, context)
        let input = address(step.inputs[0], image: image, slot: slot, context)
        if case .block(let block) = step.op {
            let residual = block.residual.map { address($0, image: image, slot: slot, context) }
            runBlock(block, input: input, residual: residual, output: output, rows: rows, context, hook: hook)
            return
        }
        hook.kernel(step.op.category, thread: context.thread) {
            switch step.op {
            case .pointwise(let conv):
                let first = rows.lowerBound * conv.shape.outputWidth
                pointwise(conv, input: input + first * conv.shape.inputChannels, rows: rows.count * conv.shape.outputWidth,
                          output: output + first * conv.shape.outputChannels)
                if let post = conv.postActivation {
                    post.apply(output + first * conv.shape.outputChannels, rows: rows.count * conv.shape.outputWidth, columns: conv.shape.outputChannels)
                }
            case .convolution(let conv, let bandRows):
                let depth = conv.shape.kernelHeight * conv.shape.kernelWidth * conv.shape.inputChannels
                var row = rows.lowerBound
                while row < rows.upperBound {
                    let end = min(row + bandRows, rows.upperBound)
                    BandKernels.im2colRows(input: input, shape: conv.shape, rows: row..<end, columns: context.scratch)
                    BandKernels.gemm(input: context.scratch, rows: (end - row) * conv.shape.outputWidth, inputChannels: depth,
                                     kernel: conv.kernel, outputChannels: conv.shape.outputChannels, bias: conv.bias,
                                     clamp: conv.clamp, residual: nil,
                                     output: output + row * conv.shape.outputWidth * conv.shape.outputChannels)
                    row = end
                }
                if let post = conv.postActivation {
                    post.apply(output + rows.lowerBound * conv.shape.outputWidth * conv.shape.outputChannels,
                                    rows: rows.count * conv.shape.outputWidth, columns: conv.shape.outputChannels)
                }
            case .directConvolution(let conv):
                BandKernels.convolutionRows(input: input, shape: conv.shape, kernel: conv.kernel, rows: rows,
                                            bias: conv.bias, clamp: conv.clamp,
                                            output: output + rows.lowerBound * conv.shape.outputWidth * conv.shape.outputChannels)
                if let post = conv.postActivation {
                    post.apply(output + rows.lowerBound * conv.shape.outputWidth * conv.shape.outputChannels,
                               rows: rows.count * conv.shape.outputWidth, columns: conv.shape.outputChannels)
                }
            case .depthwise(let conv):
                depthwise(conv, band: input, bandStart: 0, bandRows: conv.shape.height, rows: rows, inputClamp: .none,
                          output: output + rows.lowerBound * conv.shape.outputWidth * conv.shape.outputChannels)
            case .block:
                preconditionFailure("blocks run band by band above")
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
        }
    }


    /// `conv`'s 1×1 GEMM over `rows` pixel rows, for output channels `columns`
    /// (all by default; a channel-split thread passes its slice). `output`
    /// and `residual` point at channel 0 of the first row.
    func pointwise(_ conv: ConvOp, input: UnsafePointer<Float>, rows: Int, columns: Range<Int>? = nil,
                           residual: UnsafeMutablePointer<Float>? = nil, output: UnsafeMutablePointer<Float>) {
        let columns = columns ?? 0..<conv.shape.outputChannels, first = columns.lowerBound
        BandKernels.gemm(input: input, rows: rows, inputChannels: conv.shape.inputChannels, kernel: conv.kernel + first,
                         kernelStride: conv.shape.outputChannels, outputChannels: columns.count,
                         bias: conv.bias.map { $0 + first }, clamp: conv.clamp,
                         residual: residual.map { UnsafePointer($0 + first) }, output: output + first,
                         outputStride: conv.shape.outputChannels)
    }

    /// Depthwise rows of a band (see `BandKernels.depthwiseRows`), for
    /// channels `channels` (all by default). `band` and `output` point at channel 0.
    func depthwise(_ conv: ConvOp, band: UnsafePointer<Float>, bandStart: Int, bandRows: Int,
                           rows: Range<Int>, channels: Range<Int>? = nil, inputClamp: Clamp,
                           output: UnsafeMutablePointer<Float>) {
        let channels = channels ?? 0..<conv.shape.inputChannels, first = channels.lowerBound
        // The slice's shape: `channels.count` channels of a tensor with `inputChannels` per pixel.
        var slice = conv.shape
        (slice.inputChannels, slice.outputChannels) = (channels.count, channels.count)
        BandKernels.depthwiseRows(band: band + first, bandStart: bandStart, bandRows: bandRows, shape: slice,
                                  channelStride: conv.shape.inputChannels, kernel: conv.kernel + first, rows: rows,
                                  bias: conv.bias.map { $0 + first }, clamp: conv.clamp, inputClamp: inputClamp,
                                  output: output + first)
    }

    /// One inverted-residual block over output rows `rows`, band by band.
    ///
    /// The expanded rows of a band live in scratch; rows that the next band
    /// needs again (the 3×3 window's overlap) are moved to the front rather
    /// than recomputed, so the expand GEMM computes every row once per thread.
    func runBlock<Hook: ExecutionHook>(_ block: BlockOp, input: UnsafeMutablePointer<Float>, residual: UnsafeMutablePointer<Float>?,
                                       output: UnsafeMutablePointer<Float>, rows: Range<Int>, _ context: Context, hook: Hook) {
        let dw = block.depthwise, project = block.project
        let width = dw.shape.width, channels = dw.shape.inputChannels, rowScalars = width * channels
        let expanded = context.scratch
        let depthwiseOut = context.scratch + (block.expand == nil ? 0
            : ArenaPlan.aligned(block.expandedRowsPerBand * rowScalars))
        var start = 0, end = 0
        var first = rows.lowerBound
        while first < rows.upperBound {
            let last = min(first + block.bandRows, rows.upperBound)
            let low = max(0, first * dw.shape.strideH - dw.shape.padTop)
            let high = min(dw.shape.height, (last - 1) * dw.shape.strideH - dw.shape.padTop + dw.shape.kernelHeight)
            var band = UnsafePointer(input), bandStart = 0, bandRows = dw.shape.height
            if let expand = block.expand {
                hook.kernel(.pointwise, thread: context.thread) {
                    if low >= start && low < end {
                        if low > start { memmove(expanded, expanded + (low - start) * rowScalars, (end - low) * rowScalars * 4) }
                        start = low
                    } else {
                        start = low; end = low
                    }
                    if high > end {
                        pointwise(expand, input: input + end * width * expand.shape.inputChannels, rows: (high - end) * width,
                                  output: expanded + (end - start) * rowScalars)
                        end = high
                    }
                }
                band = UnsafePointer(expanded); bandStart = start; bandRows = end - start
            }
            hook.kernel(.depthwise, thread: context.thread) {
                depthwise(dw, band: band, bandStart: bandStart, bandRows: bandRows, rows: first..<last,
                          inputClamp: block.depthwiseInputClamp, output: depthwiseOut)
            }
            let offset = first * project.shape.outputWidth * project.shape.outputChannels
            hook.kernel(.pointwise, thread: context.thread) {
                pointwise(project, input: depthwiseOut, rows: (last - first) * dw.shape.outputWidth,
                          residual: residual.map { $0 + offset }, output: output + offset)
            }
            first = last
        }
    }
}

extension SpatialOp {
    /// The profile's kind of kernel for a step that is not a fused block (a block times its three kernels apart).
    var category: KernelCategory {
        switch self {
        case .pointwise: return .pointwise
        case .convolution, .directConvolution: return .firstConvolution
        case .depthwise: return .depthwise
        default: return .other
        }
    }
}
