import CBLAS
import CriaCore

/// Single-threaded kernels over bands of image rows, for callers that run one
/// band per thread themselves (Cria's inference executor).
///
/// Nothing here calls `Threads.parallelFor` or expects OpenBLAS to thread: the
/// caller splits work across threads and sets OpenBLAS to one thread around
/// it, so that GEMMs and Cria's loops never oversubscribe the cores. Each
/// output element is computed by one call in a fixed order, so results are
/// bit-identical run to run for a fixed partition.
public enum BandKernels {
    /// `output[rows, n] = clamp(input[rows, k] · kernel[k, n] + bias) + residual`.
    ///
    /// `residual` (rows × n, may be nil) is added after the clamp, as a Keras
    /// `Add` after a linear 1×1 projection does. The epilogue runs once per
    /// output row while that row is still in L1.
    public static func gemm(input: UnsafePointer<Float>, rows: Int, inputChannels k: Int,
                            kernel: UnsafePointer<Float>, outputChannels n: Int,
                            bias: UnsafePointer<Float>?, clamp: Clamp, residual: UnsafePointer<Float>?,
                            output: UnsafeMutablePointer<Float>) {
        guard rows > 0, n > 0 else { return }
        if k > 0 {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(rows), Int32(n), Int32(k),
                        1, input, Int32(k), kernel, Int32(n), 0, output, Int32(n))
        } else {
            output.update(repeating: 0, count: rows * n)
        }
        epilogue(output, rows: rows, channels: n, bias: bias, clamp: clamp, residual: residual)
    }

    /// In place: `x = clamp(x + bias) + residual` per row of `channels`.
    public static func epilogue(_ data: UnsafeMutablePointer<Float>, rows: Int, channels: Int,
                                bias: UnsafePointer<Float>?, clamp: Clamp, residual: UnsafePointer<Float>?) {
        if bias == nil && clamp.isIdentity && residual == nil { return }
        let lower = SIMD8<Float>(repeating: clamp.lower), upper = SIMD8<Float>(repeating: clamp.upper)
        let vectorEnd = channels & ~7
        for row in 0..<rows {
            let line = data + row * channels
            let add = residual.map { $0 + row * channels }
            var c = 0
            while c < vectorEnd {
                var v = bandLoad(line + c)
                if let bias { v += bandLoad(bias + c) }
                v = bandClamp(v, lower, upper)
                if let add { v += bandLoad(add + c) }
                bandStore(v, line + c)
                c += 8
            }
            while c < channels {
                var v = line[c]
                if let bias { v += bias[c] }
                v = clamp.apply(v)
                if let add { v += add[c] }
                line[c] = v
                c += 1
            }
        }
    }

    /// Depthwise convolution (depth multiplier 1) of output rows `rows` of one image.
    ///
    /// The input is a band: image rows `bandStart ..< bandStart + bandRows`
    /// stored contiguously at `band` (width × channels each). Rows outside
    /// `0..<height` are the convolution's zero padding; every row a valid tap
    /// needs must lie inside the band. Output row `oy` goes to
    /// `output + (oy - rows.lowerBound) * outputWidth * channels`.
    ///
    /// Taps are summed after the bias in (ky, kx) order, skipping padded ones,
    /// the same order as `DepthwiseConv2D.forward`, so both give the same bits.
    public static func depthwiseRows(band: UnsafePointer<Float>, bandStart: Int, bandRows: Int,
                                     height: Int, width: Int, channels: Int,
                                     kernel: UnsafePointer<Float>, kernelHeight: Int, kernelWidth: Int,
                                     strideH: Int, strideW: Int, padTop: Int, padLeft: Int,
                                     rows: Range<Int>, outputWidth: Int,
                                     bias: UnsafePointer<Float>?, clamp: Clamp,
                                     output: UnsafeMutablePointer<Float>) {
        let C = channels
        let rowStride = width * C
        let vectorEnd = C & ~7
        let lower = SIMD8<Float>(repeating: clamp.lower), upper = SIMD8<Float>(repeating: clamp.upper)
        // Output columns whose whole window is inside the image.
        let interiorLow = min(outputWidth, max(0, (padLeft + strideW - 1) / strideW))
        let interiorHigh = max(interiorLow, min(outputWidth, (width - kernelWidth + padLeft) / strideW + 1))
        for oy in rows {
            let originY = oy * strideH - padTop
            let kyLow = max(0, -originY), kyHigh = min(kernelHeight, height - originY)
            precondition(kyLow >= kyHigh || (originY + kyLow >= bandStart && originY + kyHigh <= bandStart + bandRows),
                         "depthwiseRows: band does not cover the rows output row \(oy) needs")
            let top = band + (originY - bandStart) * rowStride
            let out = output + (oy - rows.lowerBound) * outputWidth * C
            let full = kernelHeight == 3 && kernelWidth == 3 && kyLow == 0 && kyHigh == 3
            for ox in 0..<outputWidth {
                let originX = ox * strideW - padLeft
                let o = out + ox * C
                if full && ox >= interiorLow && ox < interiorHigh {
                    // The common case: nine taps, all inside, unrolled.
                    let p = top + originX * C, q = p + rowStride, r = q + rowStride
                    let t = kernel
                    var c = 0
                    while c < vectorEnd {
                        var acc = bias.map { bandLoad($0 + c) } ?? SIMD8<Float>()
                        acc = bandMadd(acc, bandLoad(p + c), bandLoad(t + c))
                        acc = bandMadd(acc, bandLoad(p + C + c), bandLoad(t + C + c))
                        acc = bandMadd(acc, bandLoad(p + 2 * C + c), bandLoad(t + 2 * C + c))
                        acc = bandMadd(acc, bandLoad(q + c), bandLoad(t + 3 * C + c))
                        acc = bandMadd(acc, bandLoad(q + C + c), bandLoad(t + 4 * C + c))
                        acc = bandMadd(acc, bandLoad(q + 2 * C + c), bandLoad(t + 5 * C + c))
                        acc = bandMadd(acc, bandLoad(r + c), bandLoad(t + 6 * C + c))
                        acc = bandMadd(acc, bandLoad(r + C + c), bandLoad(t + 7 * C + c))
                        acc = bandMadd(acc, bandLoad(r + 2 * C + c), bandLoad(t + 8 * C + c))
                        bandStore(bandClamp(acc, lower, upper), o + c)
                        c += 8
                    }
                    while c < C {
                        var acc: Float = bias?[c] ?? 0
                        for ky in 0..<3 {
                            for kx in 0..<3 {
                                acc = acc + (top + (ky * width + originX + kx) * C)[c] * t[(ky * 3 + kx) * C + c]
                            }
                        }
                        o[c] = clamp.apply(acc)
                        c += 1
                    }
                    continue
                }
                let kxLow = max(0, -originX), kxHigh = min(kernelWidth, width - originX)
                var c = 0
                while c < vectorEnd {
                    var acc = bias.map { bandLoad($0 + c) } ?? SIMD8<Float>()
                    var ky = kyLow
                    while ky < kyHigh {
                        var kx = kxLow
                        while kx < kxHigh {
                            acc = bandMadd(acc, bandLoad(top + (ky * width + originX + kx) * C + c),
                                           bandLoad(kernel + (ky * kernelWidth + kx) * C + c))
                            kx += 1
                        }
                        ky += 1
                    }
                    bandStore(bandClamp(acc, lower, upper), o + c)
                    c += 8
                }
                while c < C {
                    var acc: Float = bias?[c] ?? 0
                    var ky = kyLow
                    while ky < kyHigh {
                        var kx = kxLow
                        while kx < kxHigh {
                            acc = acc + (top + (ky * width + originX + kx) * C)[c] * kernel[(ky * kernelWidth + kx) * C + c]
                            kx += 1
                        }
                        ky += 1
                    }
                    o[c] = clamp.apply(acc)
                    c += 1
                }
            }
        }
    }

    /// im2col of output rows `rows` of one image for a general convolution:
    /// one line of kernelHeight × kernelWidth × inputChannels per output pixel
    /// (Keras's kernel order), zeros where the window leaves the image.
    public static func im2colRows(input: UnsafePointer<Float>, height: Int, width: Int, inputChannels: Int,
                                  kernelHeight: Int, kernelWidth: Int, strideH: Int, strideW: Int,
                                  padTop: Int, padLeft: Int, rows: Range<Int>, outputWidth: Int,
                                  columns: UnsafeMutablePointer<Float>) {
        let ci = inputChannels
        let depth = kernelHeight * kernelWidth * ci
        var line = columns
        for oy in rows {
            for ox in 0..<outputWidth {
                var target = line
                for ky in 0..<kernelHeight {
                    let iy = oy * strideH - padTop + ky
                    for kx in 0..<kernelWidth {
                        let ix = ox * strideW - padLeft + kx
                        if iy >= 0 && iy < height && ix >= 0 && ix < width {
                            target.update(from: input + (iy * width + ix) * ci, count: ci)
                        } else {
                            target.update(repeating: 0, count: ci)
                        }
                        target += ci
                    }
                }
                line += depth
            }
        }
    }
}

// Local SIMD helpers (the depthwise files have their own; these stay private
// so that neither file's tuning can break the other). Multiply and add stay
// separate, as in `DepthwiseSIMD.swift`: without a `-target-cpu` that has FMA,
// `addingProduct` becomes a libm call per lane.
@inline(__always)
private func bandLoad(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
}

@inline(__always)
private func bandLoad(_ p: UnsafeMutablePointer<Float>) -> SIMD8<Float> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
}

@inline(__always)
private func bandStore(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD8<Float>.self)
}

@inline(__always)
private func bandMadd(_ acc: SIMD8<Float>, _ a: SIMD8<Float>, _ b: SIMD8<Float>) -> SIMD8<Float> {
    acc + a * b
}

@inline(__always)
private func bandClamp(_ v: SIMD8<Float>, _ lower: SIMD8<Float>, _ upper: SIMD8<Float>) -> SIMD8<Float> {
    let r = v.replacing(with: lower, where: v .< lower)
    return r.replacing(with: upper, where: r .> upper)
}
