import CDepthwise
import CriaCore

/// Keras `DepthwiseConv2D` (depth multiplier 1) over contiguous NHWC float32 buffers.
///
/// Shapes (the fields of `ConvShape`, with outputChannels = inputChannels =
/// channels): input (batch, height, width, channels); kernel (kernelHeight,
/// kernelWidth, channels, 1) so tap (ky, kx) of channel c is
/// `kernel[(ky * kernelWidth + kx) * channels + c]`; output (batch,
/// outputHeight, outputWidth, channels). Output (oy, ox) reads input
/// (oy * strideH - padTop + ky, ox * strideW - padLeft + kx); positions outside
/// the input are zeros. That covers TF "same" padding (padTop = total / 2) and
/// a fused `ZeroPadding2D` before a "valid" convolution. Pads may be negative
/// (a crop); the caller chooses outputHeight/outputWidth.
///
/// Every output element is computed by one thread in a fixed order that
/// depends only on its position, so results are bit-identical for any
/// `Threads.count`.
public enum DepthwiseConv2D {
    /// `output = clamp(conv(input, kernel) + bias)`; `bias` is the folded BatchNorm shift, or nil.
    public static func forward(input: UnsafePointer<Float>, shape: ConvShape, kernel: UnsafePointer<Float>,
                               bias: UnsafePointer<Float>?, clamp: Clamp, output: UnsafeMutablePointer<Float>) {
        precondition(shape.outputChannels == shape.inputChannels, "depthwise: output channels must equal input channels")
        shape.forward(input: input, kernel: kernel, tapStride: shape.channels, bias: bias, clamp: clamp, output: output)
    }

    /// Overwrites `inputGradient` (batch, height, width, channels) with dLoss/dInput.
    ///
    /// `outputGradient` must already include the activation's derivative (the
    /// caller masks ReLU6). Stride 1 runs as a forward convolution of the
    /// gradient with the flipped kernel; other strides gather per input pixel.
    public static func backwardInput(outputGradient: UnsafePointer<Float>, shape g: ConvShape, kernel: UnsafePointer<Float>,
                                     inputGradient: UnsafeMutablePointer<Float>) {
        precondition(g.outputChannels == g.inputChannels, "depthwise: output channels must equal input channels")
        if g.strideH == 1 && g.strideW == 1 {
            // dIn[y, x] = sum dOut[y + padTop - ky, x + padLeft - kx] k[ky, kx]: a stride-1
            // convolution of dOut with the kernel rotated by 180 degrees and pads k - 1 - pad.
            let flipped = ConvShape(batch: g.batch, height: g.outputHeight, width: g.outputWidth, inputChannels: g.channels,
                                    kernelHeight: g.kernelHeight, kernelWidth: g.kernelWidth, strideH: 1, strideW: 1,
                                    padTop: g.kernelHeight - 1 - g.padTop, padLeft: g.kernelWidth - 1 - g.padLeft,
                                    outputHeight: g.height, outputWidth: g.width, outputChannels: g.channels)
            flipped.forward(input: outputGradient,
                            kernel: kernel + (g.kernelHeight * g.kernelWidth - 1) * g.channels, tapStride: -g.channels,
                            bias: nil, clamp: .none, output: inputGradient)
        } else {
            g.backwardInputGather(outputGradient: outputGradient, kernel: kernel, inputGradient: inputGradient)
        }
    }

    /// Overwrites (does not accumulate into) `kernelGradient` (kernelHeight,
    /// kernelWidth, channels, 1) and, when given, `biasGradient` (channels) with
    /// the sums over the batch. Callers that accumulate over micro-batches add
    /// the result themselves.
    ///
    /// Threads split the channels (in groups of 8), and each thread sums its
    /// channels over every pixel in a fixed order (each output row into its own
    /// partial sums, then added), so the result is bit-identical for any `Threads.count`.
    public static func backwardKernel(outputGradient: UnsafePointer<Float>, input: UnsafePointer<Float>, shape: ConvShape,
                                      kernelGradient: UnsafeMutablePointer<Float>,
                                      biasGradient: UnsafeMutablePointer<Float>?) {
        precondition(shape.outputChannels == shape.inputChannels, "depthwise: output channels must equal input channels")
        shape.backwardKernel(outputGradient: outputGradient, input: input,
                             kernelGradient: kernelGradient, biasGradient: biasGradient)
    }

    /// Multiply-adds of one forward pass, for throughput reports.
    public static func multiplyAdds(_ shape: ConvShape) -> Int {
        shape.multiplyAdds(depthwise: true)
    }
}

/// The depthwise kernels' implementation, on the shape they run over.
extension ConvShape {
    // MARK: Forward

    /// Forward convolution with kernel tap t at `kernel + t * tapStride`; a
    /// negative stride walks a flipped kernel (used by the stride-1 backward),
    /// which is copied into scratch in the usual order first (9 × channels floats).
    func forward(input: UnsafePointer<Float>, kernel: UnsafePointer<Float>, tapStride: Int,
                 bias: UnsafePointer<Float>?, clamp: Clamp, output: UnsafeMutablePointer<Float>) {
        guard tapStride != channels else {
            forwardRows(input: input, kernel: kernel, bias: bias, clamp: clamp, output: output)
            return
        }
        let taps = kernelHeight * kernelWidth
        ScratchSpace.with(Float.self, count: taps * channels) { ordered in
            for t in 0..<taps {
                (ordered.baseAddress! + t * channels).update(from: kernel + t * tapStride, count: channels)
            }
            forwardRows(input: input, kernel: ordered.baseAddress!, bias: bias, clamp: clamp, output: output)
        }
    }

    /// The batch's output rows split across the threads, each image's rows through
    /// the band kernel (`BandKernels.depthwiseRows`, the C kernels on the CPU's widest
    /// path) with the whole image as its band: one depthwise forward for inference and
    /// training alike.
    private func forwardRows(input: UnsafePointer<Float>, kernel: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                             clamp: Clamp, output: UnsafeMutablePointer<Float>) {
        let rows = batch * outputHeight
        guard rows > 0, outputWidth > 0, channels > 0 else { return }
        let perRow = outputWidth * channels * kernelHeight * kernelWidth
        let imageScalars = height * width * channels, outputRowScalars = outputWidth * channels
        Threads.parallelFor(rows, minimumPerChunk: minimumRows(perRowWork: perRow)) { range in
            var row = range.lowerBound
            while row < range.upperBound {
                let n = row / outputHeight, oy = row % outputHeight
                let last = min(range.upperBound - row, outputHeight - oy) + oy
                BandKernels.depthwiseRows(band: input + n * imageScalars, bandStart: 0, bandRows: height, shape: self,
                                          kernel: kernel, rows: oy..<last, bias: bias, clamp: clamp,
                                          output: output + row * outputRowScalars)
                row += last - oy
            }
        }
    }

    // MARK: Backward, input

    /// dIn[iy, ix] = sum over taps with oy * strideH - padTop + ky = iy (same for x).
    /// Only taps congruent to (iy + padTop) mod strideH contribute, so each
    /// pixel first finds its first tap and the matching output row, then walks
    /// taps by the stride while the output row decreases by one.
    func backwardInputGather(outputGradient: UnsafePointer<Float>, kernel: UnsafePointer<Float>,
                             inputGradient: UnsafeMutablePointer<Float>) {
        let rows = batch * height
        guard rows > 0, width > 0, channels > 0 else { return }
        let C = channels
        let perRow = width * C * kernelHeight * kernelWidth / max(1, strideH * strideW)
        Threads.parallelFor(rows, minimumPerChunk: minimumRows(perRowWork: perRow)) { range in
          withUnsafeTemporaryAllocation(of: Int.self, capacity: 2 * kernelHeight * kernelWidth) { scratch in
            let tapList = scratch.baseAddress!
            for row in range {
                let n = row / height, iy = row % height
                let (ky0, oy0, countY) = gatherTaps(position: iy, pad: padTop, stride: strideH,
                                                    kernel: kernelHeight, output: outputHeight)
                for ix in 0..<width {
                    let (kx0, ox0, countX) = gatherTaps(position: ix, pad: padLeft, stride: strideW,
                                                        kernel: kernelWidth, output: outputWidth)
                    let out = inputGradient + ((n * height + iy) * width + ix) * C
                    let gradBase = outputGradient + ((n * outputHeight + oy0) * outputWidth + ox0) * C
                    let kernBase = kernel + (ky0 * kernelWidth + kx0) * C
                    // Moving one tap on means one output row (column) back.
                    var count = 0
                    for i in 0..<countY {
                        for j in 0..<countX {
                            tapList[2 * count] = -(i * outputWidth + j) * C
                            tapList[2 * count + 1] = (i * strideH * kernelWidth + j * strideW) * C
                            count += 1
                        }
                    }
                    var c = 0
                    while c + 8 <= C {
                        var acc = SIMD8<Float>()
                        for t in 0..<count {
                            acc = madd(acc, load8(gradBase + tapList[2 * t] + c), load8(kernBase + tapList[2 * t + 1] + c))
                        }
                        store8(acc, out + c)
                        c += 8
                    }
                    while c < C {
                        var acc: Float = 0
                        for t in 0..<count {
                            acc = madd(acc, gradBase[tapList[2 * t] + c], kernBase[tapList[2 * t + 1] + c])
                        }
                        out[c] = acc
                        c += 1
                    }
                }
            }
          }
        }
    }

    /// The first contributing tap, its output position, and how many taps contribute.
    @inline(__always)
    func gatherTaps(position: Int, pad: Int, stride: Int, kernel: Int, output: Int) -> (Int, Int, Int) {
        let shifted = position + pad
        var k = shifted - floorDiv(shifted, stride) * stride
        var o = floorDiv(shifted - k, stride)
        // Skip taps whose output position lies past the end.
        if o >= output {
            let skip = o - (output - 1)
            k += skip * stride
            o -= skip
        }
        guard k < kernel, o >= 0 else { return (0, 0, 0) }
        let count = min((kernel - 1 - k) / stride + 1, o + 1)
        return (k, o, count)
    }

    // MARK: Backward, kernel

    func backwardKernel(outputGradient: UnsafePointer<Float>, input: UnsafePointer<Float>,
                        kernelGradient: UnsafeMutablePointer<Float>, biasGradient: UnsafeMutablePointer<Float>?) {
        let C = channels
        let taps = kernelHeight * kernelWidth
        guard C > 0 else { return }
        Threads.parallelFor((C + 7) / 8) { range in
            let c0 = range.lowerBound * 8, c1 = min(C, range.upperBound * 8)
            let block = gradientBlock(channels: c1 - c0, rows: taps + 1)
            for t in 0..<taps {
                (kernelGradient + t * C + c0).update(repeating: 0, count: c1 - c0)
            }
            biasGradient.map { ($0 + c0).update(repeating: 0, count: c1 - c0) }
            ScratchSpace.with(Float.self, count: (taps + 1) * block) { rowSums in
                withUnsafeTemporaryAllocation(of: Int.self, capacity: 2 * taps) { tapList in
                    var b0 = c0
                    while b0 < c1 {
                        let lanes = min(block, c1 - b0)
                        let sums = rowSums.baseAddress!
                        for n in 0..<batch {
                            for oy in 0..<outputHeight {
                                // Each row is summed on its own, then added: shorter
                                // Float sums than one running total over the batch.
                                sums.update(repeating: 0, count: (taps + 1) * lanes)
                                kernelRow(n: n, oy: oy, c: b0, lanes: lanes, outputGradient: outputGradient,
                                          input: input, sums: sums, tapList: tapList.baseAddress!)
                                for t in 0..<taps {
                                    accumulate(sums + t * lanes, into: kernelGradient + t * C + b0, count: lanes)
                                }
                                if let bg = biasGradient {
                                    accumulate(sums + taps * lanes, into: bg + b0, count: lanes)
                                }
                            }
                        }
                        b0 += lanes
                    }
                }
            }
        }
    }

    /// Adds output row (n, oy)'s contribution for channels c..<c+lanes into
    /// `sums`, laid out [tap][lane] with the bias row last. Pixel-outer and
    /// channels inner, so the loads stream through contiguous channels.
    @inline(__always)
    func kernelRow(n: Int, oy: Int, c: Int, lanes: Int,
                   outputGradient: UnsafePointer<Float>, input: UnsafePointer<Float>,
                   sums: UnsafeMutablePointer<Float>, tapList: UnsafeMutablePointer<Int>) {
        let C = channels
        let originY = oy * strideH - padTop
        let ys = validTaps(origin: originY, kernel: kernelHeight, size: height)
        let interior = interiorRange(input: width, kernel: kernelWidth, stride: strideW, pad: padLeft,
                                     output: outputWidth)
        let fast = kernelHeight == 3 && kernelWidth == 3 && ys.count == 3
        let vectorEnd = lanes & ~7
        let rowStride = width * C
        let rowGradient = outputGradient + (n * outputHeight + oy) * outputWidth * C + c
        let rowInput = input + ((n * height + originY) * width - padLeft) * C + c
        guard fast && !interior.isEmpty else {
            for ox in 0..<outputWidth {
                kernelPixel(originX: ox * strideW - padLeft, ys: ys, gradient: rowGradient + ox * C,
                            base: rowInput + ox * strideW * C, lanes: lanes, sums: sums, tapList: tapList)
            }
            return
        }
        // Pixels in ascending order for every lane, as the sums' order is part of the result:
        // the left border, the interior, then the right border.
        for ox in 0..<interior.lowerBound {
            kernelPixel(originX: ox * strideW - padLeft, ys: ys, gradient: rowGradient + ox * C,
                        base: rowInput + ox * strideW * C, lanes: lanes, sums: sums, tapList: tapList)
        }
        // Interior: the C kernel keeps the ten sums (nine taps and the bias) in registers
        // across the row, sixteen or eight lanes at a time, instead of loading and storing
        // them at every pixel.
        let step = strideW * C
        cria_depthwise_kernel_row(rowGradient + interior.lowerBound * C, rowInput + interior.lowerBound * step, sums,
                                  lanes, C, rowStride, step, interior.count, vectorEnd)
        if vectorEnd < lanes {
            for ox in interior {
                kernelPixel(originX: ox * strideW - padLeft, ys: ys, gradient: rowGradient + ox * C,
                            base: rowInput + ox * strideW * C, lanes: lanes, from: vectorEnd, sums: sums, tapList: tapList)
            }
        }
        for ox in interior.upperBound..<outputWidth {
            kernelPixel(originX: ox * strideW - padLeft, ys: ys, gradient: rowGradient + ox * C,
                        base: rowInput + ox * strideW * C, lanes: lanes, sums: sums, tapList: tapList)
        }
    }

    /// One pixel, any kernel and position, lanes `from..<lanes`: list the valid
    /// taps once, then add each lane's products in (ky, kx) order.
    @inline(never)
    func kernelPixel(originX: Int, ys: Range<Int>, gradient d: UnsafePointer<Float>, base: UnsafePointer<Float>,
                     lanes: Int, from: Int = 0, sums: UnsafeMutablePointer<Float>, tapList: UnsafeMutablePointer<Int>) {
        let C = channels
        let taps = kernelHeight * kernelWidth
        let xs = validTaps(origin: originX, kernel: kernelWidth, size: width)
        var count = 0
        for ky in ys {
            for kx in xs {
                tapList[2 * count] = (ky * width + kx) * C
                tapList[2 * count + 1] = (ky * kernelWidth + kx) * lanes
                count += 1
            }
        }
        let biasSums = sums + taps * lanes
        var i = from
        while i + 8 <= lanes {
            let g = load8(d + i)
            store8(load8(biasSums + i) + g, biasSums + i)
            for t in 0..<count {
                let s = sums + tapList[2 * t + 1] + i
                store8(madd(load8(s), g, load8(base + tapList[2 * t] + i)), s)
            }
            i += 8
        }
        while i < lanes {
            let g = d[i]
            biasSums[i] += g
            for t in 0..<count {
                let s = sums + tapList[2 * t + 1] + i
                s.pointee = madd(s.pointee, g, base[tapList[2 * t] + i])
            }
            i += 1
        }
    }
}
