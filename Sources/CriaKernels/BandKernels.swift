import CBLAS
import CDepthwise
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
    /// `Add` after a linear 1×1 projection does.
    ///
    /// The output starts as the bias (plus the residual when no clamp lies in
    /// between) and sgemm adds the product with beta = 1. With beta = 0
    /// OpenBLAS first clears C in a pass of its own, which for MobileNetV2's
    /// short sums (K = 16–32) cost up to a third of the call; writing the bias
    /// instead costs the same pass and saves the epilogue's bias add (and the
    /// whole epilogue for a linear projection). The sums round as
    /// `(bias [+ residual]) + product` rather than `product + bias [+ residual]`.
    public static func gemm(input: UnsafePointer<Float>, rows: Int, inputChannels k: Int,
                            kernel: UnsafePointer<Float>, outputChannels n: Int,
                            bias: UnsafePointer<Float>?, clamp: Clamp, residual: UnsafePointer<Float>?,
                            output: UnsafeMutablePointer<Float>) {
        gemm(input: input, rows: rows, inputChannels: k, kernel: kernel, kernelStride: n, outputChannels: n,
             bias: bias, clamp: clamp, residual: residual, output: output, outputStride: n)
    }

    /// `gemm` on a slice of output channels: `kernel` points at the slice's
    /// first column of a kernel whose rows are `kernelStride` long, and output
    /// (and residual) rows are `outputStride` apart. Each thread of a
    /// channel-split layer computes its own columns with it. OpenBLAS's edge
    /// tiles may sum a column in another order than a full-width call does, so
    /// the bits depend on the slices (fixed by the thread count), not on the run.
    public static func gemm(input: UnsafePointer<Float>, rows: Int, inputChannels k: Int,
                            kernel: UnsafePointer<Float>, kernelStride: Int, outputChannels n: Int,
                            bias: UnsafePointer<Float>?, clamp: Clamp, residual: UnsafePointer<Float>?,
                            output: UnsafeMutablePointer<Float>, outputStride: Int) {
        guard rows > 0, n > 0 else { return }
        let foldResidual = clamp.isIdentity
        initialise(output, rows: rows, channels: n, stride: outputStride, bias: bias,
                   residual: foldResidual ? residual : nil)
        if k > 0 {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(rows), Int32(n), Int32(k),
                        1, input, Int32(k), kernel, Int32(kernelStride), 1, output, Int32(outputStride))
        }
        epilogue(output, rows: rows, channels: n, stride: outputStride, bias: nil, clamp: clamp,
                 residual: foldResidual ? nil : residual)
    }

    /// `data[row] = bias + residual[row]` (either may be nil, meaning zeros); rows `stride` apart.
    static func initialise(_ data: UnsafeMutablePointer<Float>, rows: Int, channels: Int, stride: Int,
                           bias: UnsafePointer<Float>?, residual: UnsafePointer<Float>?) {
        guard let bias else {
            if stride == channels {
                if let residual { data.update(from: residual, count: rows * channels) } else {
                    data.update(repeating: 0, count: rows * channels)
                }
            } else {
                for row in 0..<rows {
                    if let residual { (data + row * stride).update(from: residual + row * stride, count: channels) } else {
                        (data + row * stride).update(repeating: 0, count: channels)
                    }
                }
            }
            return
        }
        let vectorEnd = channels & ~7
        for row in 0..<rows {
            let line = data + row * stride
            if let residual {
                let add = residual + row * stride
                var c = 0
                while c < vectorEnd { bandStore(bandLoad(add + c) + bandLoad(bias + c), line + c); c += 8 }
                while c < channels { line[c] = add[c] + bias[c]; c += 1 }
            } else {
                line.update(from: bias, count: channels)
            }
        }
    }

    /// In place: `x = clamp(x + bias) + residual` per row of `channels`.
    public static func epilogue(_ data: UnsafeMutablePointer<Float>, rows: Int, channels: Int,
                                bias: UnsafePointer<Float>?, clamp: Clamp, residual: UnsafePointer<Float>?) {
        epilogue(data, rows: rows, channels: channels, stride: channels, bias: bias, clamp: clamp, residual: residual)
    }

    /// `epilogue` over rows `stride` apart (a slice of channels).
    static func epilogue(_ data: UnsafeMutablePointer<Float>, rows: Int, channels: Int, stride: Int,
                         bias: UnsafePointer<Float>?, clamp: Clamp, residual: UnsafePointer<Float>?) {
        if bias == nil && clamp.isIdentity && residual == nil { return }
        let lower = SIMD8<Float>(repeating: clamp.lower), upper = SIMD8<Float>(repeating: clamp.upper)
        let vectorEnd = channels & ~7
        for row in 0..<rows {
            let line = data + row * stride
            let add = residual.map { $0 + row * stride }
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

    /// Depthwise convolution (depth multiplier 1) of output rows `rows` of one
    /// image of geometry `shape` (its batch is not read).
    ///
    /// The input is a band: image rows `bandStart ..< bandStart + bandRows`
    /// stored contiguously at `band` (width × channels each). Rows outside
    /// `0..<height` are the convolution's zero padding; every row a valid tap
    /// needs must lie inside the band. Output row `oy` goes to
    /// `output + (oy - rows.lowerBound) * outputWidth * channels`.
    ///
    /// Taps are summed after the bias in (ky, kx) order, skipping padded ones,
    /// the same order as `DepthwiseConv2D.forward`, so both give the same bits.
    ///
    /// With `channelStride`, the call computes a slice of `shape.channels` channels
    /// of a tensor with `channelStride` channels per pixel: `band`, `kernel`,
    /// `bias` and `output` point at the slice's first channel. Threads that
    /// split a layer by channels each pass their own slice.
    ///
    /// `inputClamp` is applied to every input value as it is read: a block
    /// passes its expand layer's ReLU6 here instead of clamping the expanded
    /// band in a pass of its own, which on the early blocks (K = 16–32) read
    /// and wrote the band once more for 15–20 % of the expand GEMM's time.
    /// Clamping on read gives the bits of clamping first.
    public static func depthwiseRows(band: UnsafePointer<Float>, bandStart: Int, bandRows: Int,
                                     shape: ConvShape, channelStride: Int? = nil, kernel: UnsafePointer<Float>,
                                     rows: Range<Int>, bias: UnsafePointer<Float>?, clamp: Clamp, inputClamp: Clamp = .none,
                                     output: UnsafeMutablePointer<Float>) {
        let (height, width, channels, outputWidth) = (shape.height, shape.width, shape.channels, shape.outputWidth)
        let (kernelHeight, kernelWidth) = (shape.kernelHeight, shape.kernelWidth)
        let (strideH, strideW, padTop, padLeft) = (shape.strideH, shape.strideW, shape.padTop, shape.padLeft)
        let C = channelStride ?? channels
        let rowStride = width * C
        let vectorEnd = channels & ~7
        // Output columns whose whole window is inside the image (floor division:
        // an image narrower than the kernel has none).
        let interiorColumns = interiorRange(input: width, kernel: kernelWidth, stride: strideW, pad: padLeft,
                                            output: outputWidth)
        let interiorLow = interiorColumns.lowerBound, interiorHigh = interiorColumns.upperBound
        for oy in rows {
            let originY = oy * strideH - padTop
            let kyLow = max(0, -originY), kyHigh = min(kernelHeight, height - originY)
            precondition(kyLow >= kyHigh || (originY + kyLow >= bandStart && originY + kyHigh <= bandStart + bandRows),
                         "depthwiseRows: band does not cover the rows output row \(oy) needs")
            let top = band + (originY - bandStart) * rowStride
            let out = output + (oy - rows.lowerBound) * outputWidth * C
            let window = DepthwiseWindow(top: top, rowStride: rowStride, channels: C, count: channels, kernel: kernel,
                                         kernelWidth: kernelWidth, kyLow: kyLow, kyHigh: kyHigh, bias: bias,
                                         clamp: clamp, inputClamp: inputClamp)
            // Four neighbouring interior pixels share their kernel loads and,
            // at stride 1, two thirds of their input loads; four independent
            // sums also keep the adder busy. Every other pixel (borders, the
            // leftovers of the runs, other strides and kernel sizes) takes
            // the one-pixel kernel.
            var runs = interiorLow..<interiorLow
            if kernelWidth == 3 && kyLow < kyHigh && strideW <= 2 {
                runs = interiorLow ..< interiorLow + (interiorHigh - interiorLow) / 4 * 4
            }
            for ox in 0..<outputWidth where !runs.contains(ox) {
                window.pixel(originX: ox * strideW - padLeft, width: width, from: 0, output: out + ox * C)
            }
            for ox in stride(from: runs.lowerBound, to: runs.upperBound, by: 4) {
                window.fourPixels(stride: strideW, origin: top + (ox * strideW - padLeft) * C, vectorEnd: vectorEnd,
                                  output: out + ox * C)
                if vectorEnd < channels {
                    for pixel in ox ..< ox + 4 {
                        window.pixel(originX: pixel * strideW - padLeft, width: width, from: vectorEnd,
                                     output: out + pixel * C)
                    }
                }
            }
        }
    }

    /// Direct general convolution (Keras `Conv2D`, groups 1) of output rows
    /// `rows` of one image of geometry `shape`: the kernel of `Conv2D.forward`, which gives the
    /// same bits. Output row `oy` goes to
    /// `output + (oy - rows.lowerBound) * outputWidth * outputChannels`.
    ///
    /// For convolutions with few input channels (MobileNetV2's Conv1: 27
    /// values per window, 3.4 KB of kernel) it beats im2col + sgemm, whose
    /// GEMM with K = 27 spends its time packing and streaming the columns.
    public static func convolutionRows(input: UnsafePointer<Float>, shape: ConvShape, kernel: UnsafePointer<Float>,
                                       rows: Range<Int>, bias: UnsafePointer<Float>?, clamp: Clamp,
                                       output: UnsafeMutablePointer<Float>) {
        for oy in rows {
            shape.convolutionRow(n: 0, oy: oy, input: input, kernel: kernel, bias: bias, clamp: clamp,
                                 output: output + (oy - rows.lowerBound) * shape.outputWidth * shape.outputChannels)
        }
    }

    /// im2col of output rows `rows` of one image for a general convolution:
    /// one line of kernelHeight × kernelWidth × inputChannels per output pixel
    /// (Keras's kernel order), zeros where the window leaves the image.
    public static func im2colRows(input: UnsafePointer<Float>, shape: ConvShape, rows: Range<Int>,
                                  columns: UnsafeMutablePointer<Float>) {
        let (height, width, inputChannels, outputWidth) = (shape.height, shape.width, shape.inputChannels, shape.outputWidth)
        let (kernelHeight, kernelWidth) = (shape.kernelHeight, shape.kernelWidth)
        let (strideH, strideW, padTop, padLeft) = (shape.strideH, shape.strideW, shape.padTop, shape.padLeft)
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

/// One output row's view of a depthwise band: the valid kernel rows
/// `kyLow..<kyHigh` and where they start. Both kernels add the bias, then the
/// taps in (ky, kx) order, so a value does not depend on which one computed it.
/// `channels` is the distance between pixels; `count` of them are computed.
private struct DepthwiseWindow {
    let top: UnsafePointer<Float>
    let rowStride, channels, count: Int
    let kernel: UnsafePointer<Float>
    let kernelWidth, kyLow, kyHigh: Int
    let bias: UnsafePointer<Float>?
    /// The output's clamp (ReLU6 of the depthwise layer, or none).
    let clamp: Clamp
    /// Applied to input values as they are read (identity: none).
    let inputClamp: Clamp

    /// Channels `0..<vectorEnd` of four interior pixels of a 3-wide kernel
    /// whose windows start at `origin + p * stride * channels` (the C kernel in `CDepthwise`).
    func fourPixels(stride: Int, origin: UnsafePointer<Float>, vectorEnd: Int, output: UnsafeMutablePointer<Float>) {
        cria_depthwise_four(origin, kernel, bias, output, channels, rowStride, kyLow, kyHigh, vectorEnd, stride,
                            inputClamp.isIdentity ? 0 : 1, inputClamp.lower, inputClamp.upper, clamp.lower, clamp.upper)
    }

    /// Any kernel width and position: channels `from..<channels` of the pixel
    /// whose window starts at column `originX`, skipping taps outside the image.
    func pixel(originX: Int, width: Int, from: Int, output: UnsafeMutablePointer<Float>) {
        let C = channels
        let kxLow = max(0, -originX), kxHigh = min(kernelWidth, width - originX)
        let vectorEnd = count & ~7
        let clampsInput = !inputClamp.isIdentity
        var c = from
        if c < vectorEnd {
            // The C kernel: four channel blocks at a time.
            cria_depthwise_pixel(top + c, originX, kernel + c, bias.map { $0 + c }, output + c, C, rowStride,
                                 kyLow, kyHigh, kxLow, kxHigh, kernelWidth, vectorEnd - c, clampsInput ? 1 : 0,
                                 inputClamp.lower, inputClamp.upper, clamp.lower, clamp.upper)
            c = vectorEnd
        }
        while c < count {
            var acc: Float = bias?[c] ?? 0
            var ky = kyLow
            while ky < kyHigh {
                var kx = kxLow
                while kx < kxHigh {
                    var value = top[ky * rowStride + (originX + kx) * C + c]
                    if clampsInput { value = inputClamp.apply(value) }
                    acc = acc + value * kernel[(ky * kernelWidth + kx) * C + c]
                    kx += 1
                }
                ky += 1
            }
            output[c] = clamp.apply(acc)
            c += 1
        }
    }
}

// Local SIMD helpers for the GEMM prologue and epilogue (the depthwise files
// have their own; these stay private so that neither file's tuning can break
// the other).
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
private func bandClamp(_ v: SIMD8<Float>, _ lower: SIMD8<Float>, _ upper: SIMD8<Float>) -> SIMD8<Float> {
    let r = v.replacing(with: lower, where: v .< lower)
    return r.replacing(with: upper, where: r .> upper)
}
