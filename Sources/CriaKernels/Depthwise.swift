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
    /// negative stride walks a flipped kernel (used by the stride-1 backward).
    func forward(input: UnsafePointer<Float>, kernel: UnsafePointer<Float>, tapStride: Int,
                 bias: UnsafePointer<Float>?, clamp: Clamp, output: UnsafeMutablePointer<Float>) {
        let rows = batch * outputHeight
        guard rows > 0, outputWidth > 0, channels > 0 else { return }
        let perRow = outputWidth * channels * kernelHeight * kernelWidth
        Threads.parallelFor(rows, minimumPerChunk: minimumRows(perRowWork: perRow)) { range in
            // Scratch for one pixel's tap offsets; on the stack, not the heap.
            withUnsafeTemporaryAllocation(of: Int.self, capacity: 2 * kernelHeight * kernelWidth) { taps in
                for row in range {
                    forwardRow(n: row / outputHeight, oy: row % outputHeight, input: input, kernel: kernel,
                               tapStride: tapStride, bias: bias, clamp: clamp, output: output,
                               taps: taps.baseAddress!)
                }
            }
        }
    }

    @inline(__always)
    func forwardRow(n: Int, oy: Int, input: UnsafePointer<Float>, kernel: UnsafePointer<Float>, tapStride: Int,
                    bias: UnsafePointer<Float>?, clamp: Clamp, output: UnsafeMutablePointer<Float>,
                    taps tapScratch: UnsafeMutablePointer<Int>) {
        let originY = oy * strideH - padTop
        let ys = validTaps(origin: originY, kernel: kernelHeight, size: height)
        let interior = interiorRange(input: width, kernel: kernelWidth, stride: strideW, pad: padLeft,
                                     output: outputWidth)
        let fast = kernelHeight == 3 && kernelWidth == 3 && ys.count == 3 && !interior.isEmpty
        guard fast else {
            for ox in 0..<outputWidth {
                forwardPixel(n: n, oy: oy, ox: ox, from: 0, input: input, kernel: kernel, tapStride: tapStride,
                             bias: bias, clamp: clamp, output: output, taps: tapScratch)
            }
            return
        }
        for ox in 0..<interior.lowerBound {
            forwardPixel(n: n, oy: oy, ox: ox, from: 0, input: input, kernel: kernel, tapStride: tapStride,
                         bias: bias, clamp: clamp, output: output, taps: tapScratch)
        }
        for ox in interior.upperBound..<outputWidth {
            forwardPixel(n: n, oy: oy, ox: ox, from: 0, input: input, kernel: kernel, tapStride: tapStride,
                         bias: bias, clamp: clamp, output: output, taps: tapScratch)
        }
        let C = channels
        let vectorEnd = C & ~7
        let rowStride = width * C
        let top = input + ((n * height + originY) * width - padLeft) * C
        let out = output + (n * outputHeight + oy) * outputWidth * C
        let step = strideW * C
        let lower = SIMD8<Float>(repeating: clamp.lower), upper = SIMD8<Float>(repeating: clamp.upper)
        // Pixel-outer, channels inner: each pixel's channels are contiguous, so
        // loads stream through whole cache lines and the output is written
        // sequentially. The taps come from L1 (9 × C floats). The
        // channel-outer order with taps held in registers was 1.5–2× slower:
        // it strides through three input rows once per 8 channels.
        let t0 = kernel, t1 = kernel + tapStride, t2 = kernel + 2 * tapStride
        let t3 = kernel + 3 * tapStride, t4 = kernel + 4 * tapStride, t5 = kernel + 5 * tapStride
        let t6 = kernel + 6 * tapStride, t7 = kernel + 7 * tapStride, t8 = kernel + 8 * tapStride
        for ox in interior {
            let p = top + ox * step
            let q = p + rowStride, r = q + rowStride
            let o = out + ox * C
            var c = 0
            while c < vectorEnd {
                var acc = bias.map { load8($0 + c) } ?? SIMD8<Float>()
                acc = madd(acc, load8(p + c), load8(t0 + c))
                acc = madd(acc, load8(p + C + c), load8(t1 + c))
                acc = madd(acc, load8(p + 2 * C + c), load8(t2 + c))
                acc = madd(acc, load8(q + c), load8(t3 + c))
                acc = madd(acc, load8(q + C + c), load8(t4 + c))
                acc = madd(acc, load8(q + 2 * C + c), load8(t5 + c))
                acc = madd(acc, load8(r + c), load8(t6 + c))
                acc = madd(acc, load8(r + C + c), load8(t7 + c))
                acc = madd(acc, load8(r + 2 * C + c), load8(t8 + c))
                store8(clamp8(acc, lower, upper), o + c)
                c += 8
            }
        }
        if vectorEnd < C {
            for ox in interior {
                forwardPixel(n: n, oy: oy, ox: ox, from: vectorEnd, input: input, kernel: kernel,
                             tapStride: tapStride, bias: bias, clamp: clamp, output: output, taps: tapScratch)
            }
        }
    }

    /// Any kernel, any position: channels `from..<channels` of output (n, oy, ox).
    /// The valid taps' offsets are listed once, then every channel group walks
    /// the list; taps are summed in (ky, kx) order after the bias, as in the fast path.
    @inline(never)
    func forwardPixel(n: Int, oy: Int, ox: Int, from: Int, input: UnsafePointer<Float>,
                      kernel: UnsafePointer<Float>, tapStride: Int,
                      bias: UnsafePointer<Float>?, clamp: Clamp, output: UnsafeMutablePointer<Float>,
                      taps: UnsafeMutablePointer<Int>) {
        let C = channels
        let originY = oy * strideH - padTop, originX = ox * strideW - padLeft
        let ys = validTaps(origin: originY, kernel: kernelHeight, size: height)
        let xs = validTaps(origin: originX, kernel: kernelWidth, size: width)
        let base = input + ((n * height + originY) * width + originX) * C
        let out = output + ((n * outputHeight + oy) * outputWidth + ox) * C
        var count = 0
        for ky in ys {
            for kx in xs {
                taps[2 * count] = (ky * width + kx) * C
                taps[2 * count + 1] = (ky * kernelWidth + kx) * tapStride
                count += 1
            }
        }
        let lower = SIMD8<Float>(repeating: clamp.lower), upper = SIMD8<Float>(repeating: clamp.upper)
        var c = from
        while c + 8 <= C {
            var acc = bias.map { load8($0 + c) } ?? SIMD8<Float>()
            for t in 0..<count {
                acc = madd(acc, load8(base + taps[2 * t] + c), load8(kernel + taps[2 * t + 1] + c))
            }
            store8(clamp8(acc, lower, upper), out + c)
            c += 8
        }
        while c < C {
            var acc: Float = bias?[c] ?? 0
            for t in 0..<count {
                acc = madd(acc, base[taps[2 * t] + c], kernel[taps[2 * t + 1] + c])
            }
            out[c] = clamp.apply(acc)
            c += 1
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
        let taps = kernelHeight * kernelWidth
        let originY = oy * strideH - padTop
        let ys = validTaps(origin: originY, kernel: kernelHeight, size: height)
        let interior = interiorRange(input: width, kernel: kernelWidth, stride: strideW, pad: padLeft,
                                     output: outputWidth)
        let fast = kernelHeight == 3 && kernelWidth == 3 && ys.count == 3
        let vectorEnd = lanes & ~7
        let rowStride = width * C
        let biasSums = sums + taps * lanes
        let s0 = sums, s1 = sums + lanes, s2 = sums + 2 * lanes, s3 = sums + 3 * lanes, s4 = sums + 4 * lanes
        let s5 = sums + 5 * lanes, s6 = sums + 6 * lanes, s7 = sums + 7 * lanes, s8 = sums + 8 * lanes
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
        // Interior: eight lanes at a time with the ten sums (nine taps and the bias) in
        // registers across the row, instead of loaded and stored at every pixel.
        let step = strideW * C
        var i = 0
        while i < vectorEnd {
            var a0 = load8(s0 + i), a1 = load8(s1 + i), a2 = load8(s2 + i), a3 = load8(s3 + i), a4 = load8(s4 + i)
            var a5 = load8(s5 + i), a6 = load8(s6 + i), a7 = load8(s7 + i), a8 = load8(s8 + i), ab = load8(biasSums + i)
            var d = rowGradient + interior.lowerBound * C + i
            var p = rowInput + interior.lowerBound * step + i
            for _ in interior {
                let g = load8(d)
                let q = p + rowStride, r = q + rowStride
                ab = ab + g
                a0 = madd(a0, g, load8(p)); a1 = madd(a1, g, load8(p + C)); a2 = madd(a2, g, load8(p + 2 * C))
                a3 = madd(a3, g, load8(q)); a4 = madd(a4, g, load8(q + C)); a5 = madd(a5, g, load8(q + 2 * C))
                a6 = madd(a6, g, load8(r)); a7 = madd(a7, g, load8(r + C)); a8 = madd(a8, g, load8(r + 2 * C))
                d += C
                p += step
            }
            store8(a0, s0 + i); store8(a1, s1 + i); store8(a2, s2 + i); store8(a3, s3 + i); store8(a4, s4 + i)
            store8(a5, s5 + i); store8(a6, s6 + i); store8(a7, s7 + i); store8(a8, s8 + i); store8(ab, biasSums + i)
            i += 8
        }
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
