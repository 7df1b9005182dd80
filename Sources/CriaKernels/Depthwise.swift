import CriaCore

/// Keras `DepthwiseConv2D` (depth multiplier 1) over contiguous NHWC float32 buffers.
///
/// Shapes: input (batch, height, width, channels); kernel (kernelHeight,
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
    public static func forward(input: UnsafePointer<Float>, batch: Int, height: Int, width: Int, channels: Int,
                               kernel: UnsafePointer<Float>, kernelHeight: Int, kernelWidth: Int,
                               strideH: Int, strideW: Int, padTop: Int, padLeft: Int,
                               outputHeight: Int, outputWidth: Int,
                               bias: UnsafePointer<Float>?, clamp: Clamp,
                               output: UnsafeMutablePointer<Float>) {
        let g = DepthwiseGeometry(batch: batch, height: height, width: width, channels: channels,
                                  kernelHeight: kernelHeight, kernelWidth: kernelWidth,
                                  strideH: strideH, strideW: strideW, padTop: padTop, padLeft: padLeft,
                                  outputHeight: outputHeight, outputWidth: outputWidth)
        g.forward(input: input, kernel: kernel, tapStride: channels, bias: bias, clamp: clamp, output: output)
    }

    /// Overwrites `inputGradient` (batch, height, width, channels) with dLoss/dInput.
    ///
    /// `outputGradient` must already include the activation's derivative (the
    /// caller masks ReLU6). Stride 1 runs as a forward convolution of the
    /// gradient with the flipped kernel; other strides gather per input pixel.
    public static func backwardInput(outputGradient: UnsafePointer<Float>,
                                     batch: Int, height: Int, width: Int, channels: Int,
                                     kernel: UnsafePointer<Float>, kernelHeight: Int, kernelWidth: Int,
                                     strideH: Int, strideW: Int, padTop: Int, padLeft: Int,
                                     outputHeight: Int, outputWidth: Int,
                                     inputGradient: UnsafeMutablePointer<Float>) {
        let g = DepthwiseGeometry(batch: batch, height: height, width: width, channels: channels,
                                  kernelHeight: kernelHeight, kernelWidth: kernelWidth,
                                  strideH: strideH, strideW: strideW, padTop: padTop, padLeft: padLeft,
                                  outputHeight: outputHeight, outputWidth: outputWidth)
        if strideH == 1 && strideW == 1 {
            // dIn[y, x] = sum dOut[y + padTop - ky, x + padLeft - kx] k[ky, kx]: a stride-1
            // convolution of dOut with the kernel rotated by 180 degrees and pads k - 1 - pad.
            let flipped = DepthwiseGeometry(batch: batch, height: outputHeight, width: outputWidth,
                                            channels: channels,
                                            kernelHeight: kernelHeight, kernelWidth: kernelWidth,
                                            strideH: 1, strideW: 1,
                                            padTop: kernelHeight - 1 - padTop, padLeft: kernelWidth - 1 - padLeft,
                                            outputHeight: height, outputWidth: width)
            flipped.forward(input: outputGradient,
                            kernel: kernel + (kernelHeight * kernelWidth - 1) * channels, tapStride: -channels,
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
    /// channels over every pixel in a fixed order, each output row first into
    /// registers; so the result is bit-identical for any `Threads.count`.
    public static func backwardKernel(outputGradient: UnsafePointer<Float>, input: UnsafePointer<Float>,
                                      batch: Int, height: Int, width: Int, channels: Int,
                                      kernelHeight: Int, kernelWidth: Int,
                                      strideH: Int, strideW: Int, padTop: Int, padLeft: Int,
                                      outputHeight: Int, outputWidth: Int,
                                      kernelGradient: UnsafeMutablePointer<Float>,
                                      biasGradient: UnsafeMutablePointer<Float>?) {
        let g = DepthwiseGeometry(batch: batch, height: height, width: width, channels: channels,
                                  kernelHeight: kernelHeight, kernelWidth: kernelWidth,
                                  strideH: strideH, strideW: strideW, padTop: padTop, padLeft: padLeft,
                                  outputHeight: outputHeight, outputWidth: outputWidth)
        g.backwardKernel(outputGradient: outputGradient, input: input,
                         kernelGradient: kernelGradient, biasGradient: biasGradient)
    }

    /// Multiply-adds of one forward pass, for throughput reports.
    public static func multiplyAdds(batch: Int, channels: Int, kernelHeight: Int, kernelWidth: Int,
                                    outputHeight: Int, outputWidth: Int) -> Int {
        batch * outputHeight * outputWidth * channels * kernelHeight * kernelWidth
    }
}

struct DepthwiseGeometry {
    let batch, height, width, channels: Int
    let kernelHeight, kernelWidth: Int
    let strideH, strideW, padTop, padLeft: Int
    let outputHeight, outputWidth: Int

    init(batch: Int, height: Int, width: Int, channels: Int, kernelHeight: Int, kernelWidth: Int,
         strideH: Int, strideW: Int, padTop: Int, padLeft: Int, outputHeight: Int, outputWidth: Int) {
        precondition(batch >= 0 && height >= 0 && width >= 0 && channels >= 0
                     && outputHeight >= 0 && outputWidth >= 0, "depthwise: negative shape")
        precondition(kernelHeight > 0 && kernelWidth > 0 && strideH > 0 && strideW > 0,
                     "depthwise: kernel and strides must be positive")
        self.batch = batch; self.height = height; self.width = width; self.channels = channels
        self.kernelHeight = kernelHeight; self.kernelWidth = kernelWidth
        self.strideH = strideH; self.strideW = strideW; self.padTop = padTop; self.padLeft = padLeft
        self.outputHeight = outputHeight; self.outputWidth = outputWidth
    }

    /// Rows per parallel chunk so that a chunk is worth a thread hop (~64k multiply-adds).
    func minimumRows(perRowWork: Int) -> Int {
        max(1, 65_536 / max(1, perRowWork))
    }

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
        let taps = validTaps(origin: originY, kernel: kernelHeight, size: height)
        let interior = interiorRange(input: width, kernel: kernelWidth, stride: strideW, pad: padLeft,
                                     output: outputWidth)
        let fast = kernelHeight == 3 && kernelWidth == 3 && taps.count == 3 && !interior.isEmpty
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
                    let gradStepY = -outputWidth * C, gradStepX = -C
                    let kernStepY = strideH * kernelWidth * C, kernStepX = strideW * C
                    var c = 0
                    while c + 8 <= C {
                        var acc = SIMD8<Float>()
                        for i in 0..<countY {
                            for j in 0..<countX {
                                acc = madd(acc, load8(gradBase + i * gradStepY + j * gradStepX + c),
                                           load8(kernBase + i * kernStepY + j * kernStepX + c))
                            }
                        }
                        store8(acc, out + c)
                        c += 8
                    }
                    while c < C {
                        var acc: Float = 0
                        for i in 0..<countY {
                            for j in 0..<countX {
                                acc = madd(acc, gradBase[i * gradStepY + j * gradStepX + c],
                                           kernBase[i * kernStepY + j * kernStepX + c])
                            }
                        }
                        out[c] = acc
                        c += 1
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
        let groups = (C + 7) / 8
        Threads.parallelFor(groups) { range in
            let c0 = range.lowerBound * 8, c1 = min(C, range.upperBound * 8)
            for t in 0..<taps {
                (kernelGradient + t * C + c0).update(repeating: 0, count: c1 - c0)
            }
            biasGradient.map { ($0 + c0).update(repeating: 0, count: c1 - c0) }
            for n in 0..<batch {
                for oy in 0..<outputHeight {
                    for group in range {
                        kernelRow(n: n, oy: oy, c: group * 8, width: min(8, C - group * 8),
                                  outputGradient: outputGradient, input: input,
                                  kernelGradient: kernelGradient, biasGradient: biasGradient)
                    }
                }
            }
        }
    }

    /// Adds one output row's contribution for channels c..<c+width (width ≤ 8).
    @inline(__always)
    func kernelRow(n: Int, oy: Int, c: Int, width lanes: Int,
                   outputGradient: UnsafePointer<Float>, input: UnsafePointer<Float>,
                   kernelGradient: UnsafeMutablePointer<Float>, biasGradient: UnsafeMutablePointer<Float>?) {
        let C = channels
        let originY = oy * strideH - padTop
        let ys = validTaps(origin: originY, kernel: kernelHeight, size: height)
        let interior = interiorRange(input: width, kernel: kernelWidth, stride: strideW, pad: padLeft,
                                     output: outputWidth)
        let fast = lanes == 8 && kernelHeight == 3 && kernelWidth == 3 && ys.count == 3 && !interior.isEmpty
        guard fast else {
            for ox in 0..<outputWidth {
                kernelPixel(n: n, oy: oy, ox: ox, c: c, lanes: lanes, outputGradient: outputGradient, input: input,
                            kernelGradient: kernelGradient, biasGradient: biasGradient)
            }
            return
        }
        for ox in 0..<interior.lowerBound {
            kernelPixel(n: n, oy: oy, ox: ox, c: c, lanes: 8, outputGradient: outputGradient, input: input,
                        kernelGradient: kernelGradient, biasGradient: biasGradient)
        }
        for ox in interior.upperBound..<outputWidth {
            kernelPixel(n: n, oy: oy, ox: ox, c: c, lanes: 8, outputGradient: outputGradient, input: input,
                        kernelGradient: kernelGradient, biasGradient: biasGradient)
        }
        // The row's interior is summed in registers first, then added once.
        let rowStride = width * C
        let step = strideW * C
        var p = input + ((n * height + originY) * width - padLeft + interior.lowerBound * strideW) * C + c
        var d = outputGradient + ((n * outputHeight + oy) * outputWidth + interior.lowerBound) * C + c
        var a0 = SIMD8<Float>(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0, a8 = a0, ab = a0
        for _ in interior {
            let q = p + rowStride, r = q + rowStride
            let g = load8(d)
            ab += g
            a0 = madd(a0, g, load8(p)); a1 = madd(a1, g, load8(p + C)); a2 = madd(a2, g, load8(p + 2 * C))
            a3 = madd(a3, g, load8(q)); a4 = madd(a4, g, load8(q + C)); a5 = madd(a5, g, load8(q + 2 * C))
            a6 = madd(a6, g, load8(r)); a7 = madd(a7, g, load8(r + C)); a8 = madd(a8, g, load8(r + 2 * C))
            p += step
            d += C
        }
        let k = kernelGradient + c
        store8(load8(k) + a0, k); store8(load8(k + C) + a1, k + C); store8(load8(k + 2 * C) + a2, k + 2 * C)
        store8(load8(k + 3 * C) + a3, k + 3 * C); store8(load8(k + 4 * C) + a4, k + 4 * C)
        store8(load8(k + 5 * C) + a5, k + 5 * C); store8(load8(k + 6 * C) + a6, k + 6 * C)
        store8(load8(k + 7 * C) + a7, k + 7 * C); store8(load8(k + 8 * C) + a8, k + 8 * C)
        if let bg = biasGradient { store8(load8(bg + c) + ab, bg + c) }
    }

    /// Adds one output pixel's contribution straight into the gradients (border and general kernels).
    @inline(never)
    func kernelPixel(n: Int, oy: Int, ox: Int, c: Int, lanes: Int,
                     outputGradient: UnsafePointer<Float>, input: UnsafePointer<Float>,
                     kernelGradient: UnsafeMutablePointer<Float>, biasGradient: UnsafeMutablePointer<Float>?) {
        let C = channels
        let originY = oy * strideH - padTop, originX = ox * strideW - padLeft
        let ys = validTaps(origin: originY, kernel: kernelHeight, size: height)
        let xs = validTaps(origin: originX, kernel: kernelWidth, size: width)
        let base = input + ((n * height + originY) * width + originX) * C + c
        let d = outputGradient + ((n * outputHeight + oy) * outputWidth + ox) * C + c
        if lanes == 8 {
            let g = load8(d)
            if let bg = biasGradient { store8(load8(bg + c) + g, bg + c) }
            for ky in ys {
                for kx in xs {
                    let k = kernelGradient + (ky * kernelWidth + kx) * C + c
                    store8(madd(load8(k), g, load8(base + (ky * width + kx) * C)), k)
                }
            }
        } else {
            for lane in 0..<lanes {
                let g = d[lane]
                if let bg = biasGradient { bg[c + lane] += g }
                for ky in ys {
                    for kx in xs {
                        let k = kernelGradient + (ky * kernelWidth + kx) * C + c + lane
                        k.pointee = madd(k.pointee, g, base[(ky * width + kx) * C + lane])
                    }
                }
            }
        }
    }
}
