import CBLAS
import CriaCore

/// Keras `Conv2D` (groups 1, dilation 1) over contiguous NHWC float32 buffers,
/// used for MobileNetV2's first layer `Conv1` (3×3, stride 2, 3 → 32·alpha).
///
/// Shapes (the fields of `ConvShape`): input (batch, height, width, inputChannels); kernel (kernelHeight,
/// kernelWidth, inputChannels, outputChannels); output (batch, outputHeight,
/// outputWidth, outputChannels). Padding follows `DepthwiseConv2D`: output
/// (oy, ox) reads input (oy * strideH - padTop + ky, ox * strideW - padLeft + kx),
/// zeros outside.
///
/// Direct or im2col? Measured on the 2-core EPYC (Zen 2), release build, for
/// Conv1 at batch 32, 160×160×3 → 80×80×32 (0.18 G multiply-adds), one
/// thread, best-of-5 thread CPU time (the shared machine was loaded, so wall
/// times were noise), `ThroughputTests.testPrintsThroughput`:
/// - default codegen (x86-64, SSE): direct 23.6–25.7 ms (14–15 GFLOP/s),
///   im2col + OpenBLAS sgemm 66–72 ms (5 GFLOP/s);
/// - with `-target-cpu znver2` (AVX2): direct 16.8 ms (21 GFLOP/s),
///   im2col + sgemm 34.1 ms (10 GFLOP/s).
/// With only 27 values per im2col row, the GEMM spends its time streaming the
/// 22 MB column buffer, while the direct kernel keeps the 3.4 KB kernel in L1
/// and broadcasts each input value against 32 output channels in registers.
/// `forward` is the direct kernel; `forwardIm2col` stays as a tested alternative.
///
/// Every output element (and every gradient element) is computed by one
/// thread in an order fixed by its position, so results are bit-identical for
/// any `Threads.count`.
public enum Conv2D {
    /// `output = clamp(conv(input, kernel) + bias)`.
    public static func forward(input: UnsafePointer<Float>, shape g: ConvShape, kernel: UnsafePointer<Float>,
                               bias: UnsafePointer<Float>?, clamp: Clamp, output: UnsafeMutablePointer<Float>) {
        let (outputHeight, outputWidth, outputChannels) = (g.outputHeight, g.outputWidth, g.outputChannels)
        let rows = g.batch * outputHeight
        guard rows > 0, outputWidth > 0, outputChannels > 0 else { return }
        let perRow = outputWidth * outputChannels * g.kernelHeight * g.kernelWidth * g.inputChannels
        Threads.parallelFor(rows, minimumPerChunk: max(1, 65_536 / max(1, perRow))) { range in
            for row in range {
                g.convolutionRow(n: row / outputHeight, oy: row % outputHeight, input: input, kernel: kernel,
                             bias: bias, clamp: clamp, output: output + row * outputWidth * outputChannels)
            }
        }
    }

    /// Scalars of the column buffer `forwardIm2col` needs.
    public static func im2colWorkspaceCount(_ shape: ConvShape) -> Int {
        shape.batch * shape.outputHeight * shape.outputWidth * shape.kernelHeight * shape.kernelWidth * shape.inputChannels
    }

    /// The same result as `forward` (up to rounding) via an im2col buffer and
    /// `cblas_sgemm`. `workspace` holds `im2colWorkspaceCount(...)` scalars.
    /// Deterministic only as far as OpenBLAS is for a fixed thread count.
    public static func forwardIm2col(input: UnsafePointer<Float>, shape g: ConvShape, kernel: UnsafePointer<Float>,
                                     bias: UnsafePointer<Float>?, clamp: Clamp,
                                     workspace: UnsafeMutablePointer<Float>,
                                     output: UnsafeMutablePointer<Float>) {
        let (batch, outputHeight, outputWidth, outputChannels) = (g.batch, g.outputHeight, g.outputWidth, g.outputChannels)
        let (kernelHeight, kernelWidth, inputChannels) = (g.kernelHeight, g.kernelWidth, g.inputChannels)
        let pixels = batch * outputHeight * outputWidth
        let depth = kernelHeight * kernelWidth * inputChannels
        guard pixels > 0, outputChannels > 0 else { return }
        Threads.parallelFor(batch * outputHeight) { range in
            for row in range {
                g.im2colRow(n: row / outputHeight, oy: row % outputHeight, input: input,
                            columns: workspace + row * outputWidth * depth)
            }
        }
        if depth == 0 {
            output.update(repeating: 0, count: pixels * outputChannels)
        } else {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(pixels), Int32(outputChannels), Int32(depth),
                        1, workspace, Int32(depth), kernel, Int32(outputChannels), 0, output, Int32(outputChannels))
        }
        let co = outputChannels
        Threads.parallelFor(pixels, minimumPerChunk: 1024) { range in
            for p in range {
                let o = output + p * co
                for j in 0..<co { o[j] = clamp.apply(o[j] + (bias?[j] ?? 0)) }
            }
        }
    }

    /// Overwrites `inputGradient` with dLoss/dInput. `outputGradient` already
    /// includes the activation's derivative.
    public static func backwardInput(outputGradient: UnsafePointer<Float>, shape g: ConvShape, kernel: UnsafePointer<Float>,
                                     inputGradient: UnsafeMutablePointer<Float>) {
        let (batch, height, width, inputChannels) = (g.batch, g.height, g.width, g.inputChannels)
        let rows = batch * height
        guard rows > 0, width > 0, inputChannels > 0 else { return }
        Threads.parallelFor(rows) { range in
            for row in range {
                for ix in 0..<width {
                    g.inputGradientPixel(n: row / height, iy: row % height, ix: ix, outputGradient: outputGradient,
                                         kernel: kernel, inputGradient: inputGradient)
                }
            }
        }
    }

    /// Overwrites (does not accumulate into) `kernelGradient` (kernelHeight,
    /// kernelWidth, inputChannels, outputChannels) and, when given,
    /// `biasGradient` (outputChannels) with sums over the batch. Threads split
    /// the output channels in groups of 8, so the result does not depend on
    /// `Threads.count`.
    public static func backwardKernel(outputGradient: UnsafePointer<Float>, input: UnsafePointer<Float>, shape g: ConvShape,
                                      kernelGradient: UnsafeMutablePointer<Float>,
                                      biasGradient: UnsafeMutablePointer<Float>?) {
        let (batch, outputHeight, outputWidth, outputChannels) = (g.batch, g.outputHeight, g.outputWidth, g.outputChannels)
        let (kernelHeight, kernelWidth, inputChannels) = (g.kernelHeight, g.kernelWidth, g.inputChannels)
        let co = outputChannels
        guard co > 0 else { return }
        let rowsOfKernel = kernelHeight * kernelWidth * inputChannels
        Threads.parallelFor((co + 7) / 8) { range in
            let c0 = range.lowerBound * 8, c1 = min(co, range.upperBound * 8)
            for r in 0..<rowsOfKernel {
                (kernelGradient + r * co + c0).update(repeating: 0, count: c1 - c0)
            }
            biasGradient.map { ($0 + c0).update(repeating: 0, count: c1 - c0) }
            let block = gradientBlock(channels: c1 - c0, rows: rowsOfKernel + 1)
            // Each output row is summed into its own partial sums, then added:
            // shorter Float sums than one running total over the whole batch.
            ScratchSpace.with(Float.self, count: (rowsOfKernel + 1) * block) { buffer in
                let sums = buffer.baseAddress!
                var b0 = c0
                while b0 < c1 {
                    let lanes = min(block, c1 - b0)
                    let biasSums = sums + rowsOfKernel * lanes
                    for n in 0..<batch {
                        for oy in 0..<outputHeight {
                            sums.update(repeating: 0, count: (rowsOfKernel + 1) * lanes)
                            for ox in 0..<outputWidth {
                                var c = b0
                                while c < b0 + lanes {
                                    g.kernelGradientPixel(n: n, oy: oy, ox: ox, c: c, lanes: min(8, b0 + lanes - c),
                                                          outputGradient: outputGradient, input: input,
                                                          sums: sums + (c - b0), sumStride: lanes,
                                                          biasSums: biasSums + (c - b0))
                                    c += 8
                                }
                            }
                            for r in 0..<rowsOfKernel {
                                accumulate(sums + r * lanes, into: kernelGradient + r * co + b0, count: lanes)
                            }
                            if let bg = biasGradient { accumulate(biasSums, into: bg + b0, count: lanes) }
                        }
                    }
                    b0 += lanes
                }
            }
        }
    }
}

/// The general convolution kernels' implementation, on the shape they run over.
extension ConvShape {
    /// Output row (n, oy), written at `output` (outputWidth × outputChannels).
    ///
    /// One pixel at a time leaves only four independent sums in flight, so the
    /// adds wait on each other; the interior (whole window inside the image)
    /// goes three pixels at a time, which shares each kernel load between
    /// three pixels and keeps twelve sums in flight. The edges take the
    /// per-pixel path. Every sum still starts at the bias and adds taps in
    /// (ky, kx, ci) order, so the two paths give the same bits.
    @inline(__always)
    func convolutionRow(n: Int, oy: Int, input: UnsafePointer<Float>, kernel: UnsafePointer<Float>,
                    bias: UnsafePointer<Float>?, clamp: Clamp, output: UnsafeMutablePointer<Float>) {
        let co = outputChannels
        let originY = oy * strideH - padTop
        var interior = interiorRange(input: width, kernel: kernelWidth, stride: strideW, pad: padLeft,
                                     output: outputWidth)
        if validTaps(origin: originY, kernel: kernelHeight, size: height).count != kernelHeight { interior = 0..<0 }
        let blockEnd = interior.lowerBound + interior.count / 3 * 3
        for ox in 0..<interior.lowerBound {
            convolutionPixel(n: n, oy: oy, ox: ox, input: input, kernel: kernel, bias: bias, clamp: clamp,
                         out: output + ox * co)
        }
        var ox = interior.lowerBound
        while ox < blockEnd {
            convolutionThreePixels(base: input + ((n * height + originY) * width + ox * strideW - padLeft) * inputChannels,
                               kernel: kernel, bias: bias, clamp: clamp, out: output + ox * co)
            ox += 3
        }
        for ox in blockEnd..<outputWidth {
            convolutionPixel(n: n, oy: oy, ox: ox, input: input, kernel: kernel, bias: bias, clamp: clamp,
                         out: output + ox * co)
        }
    }

    /// Three neighbouring interior pixels whose windows start at `base`,
    /// `base + strideW * ci` and `base + 2 * strideW * ci`. A window row
    /// (kernelWidth × ci values) is contiguous in NHWC, and so are the kernel
    /// rows it meets, so each window row is one flat loop.
    @inline(__always)
    func convolutionThreePixels(base: UnsafePointer<Float>, kernel: UnsafePointer<Float>,
                            bias: UnsafePointer<Float>?, clamp: Clamp, out: UnsafeMutablePointer<Float>) {
        let ci = inputChannels, co = outputChannels
        let span = kernelWidth * ci, step = strideW * ci, rowStride = width * ci
        let o0 = out, o1 = out + co, o2 = out + 2 * co
        var c = 0
        while c + 32 <= co {
            let b0 = bias.map { load8($0 + c) } ?? SIMD8<Float>(), b1 = bias.map { load8($0 + c + 8) } ?? SIMD8<Float>()
            let b2 = bias.map { load8($0 + c + 16) } ?? SIMD8<Float>(), b3 = bias.map { load8($0 + c + 24) } ?? SIMD8<Float>()
            var a00 = b0, a01 = b1, a02 = b2, a03 = b3
            var a10 = b0, a11 = b1, a12 = b2, a13 = b3
            var a20 = b0, a21 = b1, a22 = b2, a23 = b3
            for ky in 0..<kernelHeight {
                let x = base + ky * rowStride
                let k = kernel + ky * span * co + c
                for j in 0..<span {
                    let w = k + j * co
                    let w0 = load8(w), w1 = load8(w + 8), w2 = load8(w + 16), w3 = load8(w + 24)
                    let v0 = SIMD8<Float>(repeating: x[j])
                    a00 = madd(a00, v0, w0); a01 = madd(a01, v0, w1); a02 = madd(a02, v0, w2); a03 = madd(a03, v0, w3)
                    let v1 = SIMD8<Float>(repeating: x[j + step])
                    a10 = madd(a10, v1, w0); a11 = madd(a11, v1, w1); a12 = madd(a12, v1, w2); a13 = madd(a13, v1, w3)
                    let v2 = SIMD8<Float>(repeating: x[j + 2 * step])
                    a20 = madd(a20, v2, w0); a21 = madd(a21, v2, w1); a22 = madd(a22, v2, w2); a23 = madd(a23, v2, w3)
                }
            }
            store8(clamp.apply8(a00), o0 + c); store8(clamp.apply8(a01), o0 + c + 8)
            store8(clamp.apply8(a02), o0 + c + 16); store8(clamp.apply8(a03), o0 + c + 24)
            store8(clamp.apply8(a10), o1 + c); store8(clamp.apply8(a11), o1 + c + 8)
            store8(clamp.apply8(a12), o1 + c + 16); store8(clamp.apply8(a13), o1 + c + 24)
            store8(clamp.apply8(a20), o2 + c); store8(clamp.apply8(a21), o2 + c + 8)
            store8(clamp.apply8(a22), o2 + c + 16); store8(clamp.apply8(a23), o2 + c + 24)
            c += 32
        }
        while c + 8 <= co {
            let b = bias.map { load8($0 + c) } ?? SIMD8<Float>()
            var a0 = b, a1 = b, a2 = b
            for ky in 0..<kernelHeight {
                let x = base + ky * rowStride
                let k = kernel + ky * span * co + c
                for j in 0..<span {
                    let w = load8(k + j * co)
                    a0 = madd(a0, SIMD8(repeating: x[j]), w)
                    a1 = madd(a1, SIMD8(repeating: x[j + step]), w)
                    a2 = madd(a2, SIMD8(repeating: x[j + 2 * step]), w)
                }
            }
            store8(clamp.apply8(a0), o0 + c); store8(clamp.apply8(a1), o1 + c); store8(clamp.apply8(a2), o2 + c)
            c += 8
        }
        while c < co {
            let b: Float = bias?[c] ?? 0
            var a0 = b, a1 = b, a2 = b
            for ky in 0..<kernelHeight {
                let x = base + ky * rowStride
                let k = kernel + ky * span * co + c
                for j in 0..<span {
                    let w = k[j * co]
                    a0 = madd(a0, x[j], w); a1 = madd(a1, x[j + step], w); a2 = madd(a2, x[j + 2 * step], w)
                }
            }
            o0[c] = clamp.apply(a0); o1[c] = clamp.apply(a1); o2[c] = clamp.apply(a2)
            c += 1
        }
    }

    /// All output channels of pixel (n, oy, ox), written at `out`, 32 at a
    /// time in registers. Each sum starts at the bias and adds taps in (ky, kx, ci) order.
    @inline(__always)
    func convolutionPixel(n: Int, oy: Int, ox: Int, input: UnsafePointer<Float>, kernel: UnsafePointer<Float>,
                      bias: UnsafePointer<Float>?, clamp: Clamp, out: UnsafeMutablePointer<Float>) {
        let ci = inputChannels, co = outputChannels
        let originY = oy * strideH - padTop, originX = ox * strideW - padLeft
        let ys = validTaps(origin: originY, kernel: kernelHeight, size: height)
        let xs = validTaps(origin: originX, kernel: kernelWidth, size: width)
        let base = input + ((n * height + originY) * width + originX) * ci
        var c = 0
        while c + 32 <= co {
            var a0 = bias.map { load8($0 + c) } ?? SIMD8<Float>()
            var a1 = bias.map { load8($0 + c + 8) } ?? SIMD8<Float>()
            var a2 = bias.map { load8($0 + c + 16) } ?? SIMD8<Float>()
            var a3 = bias.map { load8($0 + c + 24) } ?? SIMD8<Float>()
            for ky in ys {
                for kx in xs {
                    let x = base + (ky * width + kx) * ci
                    let k = kernel + (ky * kernelWidth + kx) * ci * co + c
                    for i in 0..<ci {
                        let v = SIMD8<Float>(repeating: x[i])
                        let w = k + i * co
                        a0 = madd(a0, v, load8(w)); a1 = madd(a1, v, load8(w + 8))
                        a2 = madd(a2, v, load8(w + 16)); a3 = madd(a3, v, load8(w + 24))
                    }
                }
            }
            store8(clamp.apply8(a0), out + c); store8(clamp.apply8(a1), out + c + 8)
            store8(clamp.apply8(a2), out + c + 16); store8(clamp.apply8(a3), out + c + 24)
            c += 32
        }
        while c + 8 <= co {
            var a0 = bias.map { load8($0 + c) } ?? SIMD8<Float>()
            for ky in ys {
                for kx in xs {
                    let x = base + (ky * width + kx) * ci
                    let k = kernel + (ky * kernelWidth + kx) * ci * co + c
                    for i in 0..<ci { a0 = madd(a0, SIMD8(repeating: x[i]), load8(k + i * co)) }
                }
            }
            store8(clamp.apply8(a0), out + c)
            c += 8
        }
        while c < co {
            var a: Float = bias?[c] ?? 0
            for ky in ys {
                for kx in xs {
                    let x = base + (ky * width + kx) * ci
                    let k = kernel + (ky * kernelWidth + kx) * ci * co + c
                    for i in 0..<ci { a = madd(a, x[i], k[i * co]) }
                }
            }
            out[c] = clamp.apply(a)
            c += 1
        }
    }

    /// One output row's im2col rows: (kh, kw, cin) per pixel, zeros outside the input.
    func im2colRow(n: Int, oy: Int, input: UnsafePointer<Float>, columns: UnsafeMutablePointer<Float>) {
        let ci = inputChannels
        let depth = kernelHeight * kernelWidth * ci
        let originY = oy * strideH - padTop
        for ox in 0..<outputWidth {
            let originX = ox * strideW - padLeft
            let col = columns + ox * depth
            for ky in 0..<kernelHeight {
                let y = originY + ky
                for kx in 0..<kernelWidth {
                    let x = originX + kx
                    let dst = col + (ky * kernelWidth + kx) * ci
                    if y >= 0 && y < height && x >= 0 && x < width {
                        dst.update(from: input + ((n * height + y) * width + x) * ci, count: ci)
                    } else {
                        dst.update(repeating: 0, count: ci)
                    }
                }
            }
        }
    }

    /// dIn[n, iy, ix, i] = sum over contributing taps of dot(dOut[n, oy, ox, :], K[ky, kx, i, :]).
    @inline(__always)
    func inputGradientPixel(n: Int, iy: Int, ix: Int, outputGradient: UnsafePointer<Float>,
                            kernel: UnsafePointer<Float>, inputGradient: UnsafeMutablePointer<Float>) {
        let ci = inputChannels, co = outputChannels
        let (ky0, oy0, countY) = gatherTaps(position: iy, pad: padTop, stride: strideH,
                                                      kernel: kernelHeight, output: outputHeight)
        let (kx0, ox0, countX) = gatherTaps(position: ix, pad: padLeft, stride: strideW,
                                                      kernel: kernelWidth, output: outputWidth)
        let out = inputGradient + ((n * height + iy) * width + ix) * ci
        let vectorEnd = co & ~7
        for i in 0..<ci {
            var acc = SIMD8<Float>()
            var tail: Float = 0
            for a in 0..<countY {
                for b in 0..<countX {
                    let d = outputGradient + ((n * outputHeight + oy0 - a) * outputWidth + ox0 - b) * co
                    let k = kernel + (((ky0 + a * strideH) * kernelWidth + kx0 + b * strideW) * ci + i) * co
                    var c = 0
                    while c < vectorEnd { acc = madd(acc, load8(d + c), load8(k + c)); c += 8 }
                    while c < co { tail = madd(tail, d[c], k[c]); c += 1 }
                }
            }
            out[i] = acc.sum() + tail
        }
    }

    /// Adds pixel (n, oy, ox)'s contribution for output channels c..<c+lanes
    /// into row sums laid out [kernel row][lane] with row stride `sumStride`.
    @inline(__always)
    func kernelGradientPixel(n: Int, oy: Int, ox: Int, c: Int, lanes: Int,
                             outputGradient: UnsafePointer<Float>, input: UnsafePointer<Float>,
                             sums: UnsafeMutablePointer<Float>, sumStride: Int, biasSums: UnsafeMutablePointer<Float>) {
        let ci = inputChannels, co = outputChannels
        let originY = oy * strideH - padTop, originX = ox * strideW - padLeft
        let ys = validTaps(origin: originY, kernel: kernelHeight, size: height)
        let xs = validTaps(origin: originX, kernel: kernelWidth, size: width)
        let base = input + ((n * height + originY) * width + originX) * ci
        let d = outputGradient + ((n * outputHeight + oy) * outputWidth + ox) * co + c
        if lanes == 8 {
            let g = load8(d)
            store8(load8(biasSums) + g, biasSums)
            for ky in ys {
                for kx in xs {
                    let x = base + (ky * width + kx) * ci
                    let k = sums + (ky * kernelWidth + kx) * ci * sumStride
                    for i in 0..<ci {
                        store8(madd(load8(k + i * sumStride), g, SIMD8(repeating: x[i])), k + i * sumStride)
                    }
                }
            }
        } else {
            for lane in 0..<lanes {
                let g = d[lane]
                biasSums[lane] += g
                for ky in ys {
                    for kx in xs {
                        let x = base + (ky * width + kx) * ci
                        let k = sums + (ky * kernelWidth + kx) * ci * sumStride + lane
                        for i in 0..<ci { k[i * sumStride] = madd(k[i * sumStride], g, x[i]) }
                    }
                }
            }
        }
    }
}
