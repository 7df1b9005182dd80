import CBLAS
import CriaCore

/// 1×1 convolutions and Dense layers: both are one `cblas_sgemm` over
/// (pixels × inChannels) · (inChannels × outChannels), because a 1×1 NHWC
/// convolution already is a matrix product (Darknet skips im2col for the same reason).
///
/// The epilogue (folded-BatchNorm bias and the clamp of ReLU6) runs in one
/// pass over the output, row by row while it is still in cache.
public enum Pointwise {
    /// `output[rows, outC] = clamp(input[rows, inC] · kernel[inC, outC] + bias)`.
    public static func forward(input: UnsafePointer<Float>, rows: Int, inputChannels: Int,
                               kernel: UnsafePointer<Float>, outputChannels: Int,
                               bias: UnsafePointer<Float>?, clamp: Clamp,
                               output: UnsafeMutablePointer<Float>) {
        guard rows > 0, outputChannels > 0 else { return }
        guard inputChannels > 0 else {
            output.initialize(repeating: 0, count: rows * outputChannels)
            applyEpilogue(output, rows: rows, channels: outputChannels, bias: bias, clamp: clamp)
            return
        }
        // Each thread's rows, then their epilogue while they are still in its cache.
        Threads.splitGEMM(rows, minimumPerSlice: minimumRowsPerSlice, alignment: rowAlignment) { slice in
            let x = input + slice.lowerBound * inputChannels, y = output + slice.lowerBound * outputChannels
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(slice.count), Int32(outputChannels), Int32(inputChannels),
                        1, x, Int32(inputChannels), kernel, Int32(outputChannels), 0, y, Int32(outputChannels))
            applyEpilogue(y, rows: slice.count, channels: outputChannels, bias: bias, clamp: clamp)
        }
    }

    /// Rows per thread below which a GEMM runs as one call: smaller slices cost more in
    /// the team's barrier than the second core saves.
    static let minimumRowsPerSlice = 64
    /// Where row slices may start. OpenBLAS computes a row-major product as its transpose,
    /// so our rows are its N, which its x86 micro-kernels take 4, 8, 12 or 24 at a time; a
    /// slice starting on a multiple of all of them leaves every row in the same kind of
    /// micro-tile as one whole call would (with OpenBLAS 0.3.21's Zen and Haswell kernels
    /// the results were then bit-identical to one single-threaded call; `PointwiseSplitTests`
    /// asserts only the error bound, which holds for any kernel).
    static let rowAlignment = 48
    /// The same for a weight gradient's output columns (OpenBLAS's M, 8 or 16 per micro-tile).
    static let columnAlignment = 16

    /// Adds a per-channel bias and clamps, in place, splitting rows across threads.
    public static func applyEpilogue(_ data: UnsafeMutablePointer<Float>, rows: Int, channels: Int,
                                     bias: UnsafePointer<Float>?, clamp: Clamp) {
        if bias == nil && clamp.isIdentity { return }
        Threads.parallelFor(rows, minimumPerChunk: max(1, 16_384 / max(1, channels))) { range in
            for row in range {
                let line = data + row * channels
                if let bias {
                    if clamp.isIdentity {
                        for c in 0..<channels { line[c] += bias[c] }
                    } else {
                        for c in 0..<channels { line[c] = clamp.apply(line[c] + bias[c]) }
                    }
                } else {
                    for c in 0..<channels { line[c] = clamp.apply(line[c]) }
                }
            }
        }
    }

    /// dX[rows, inC] = dY[rows, outC] · Wᵀ (overwrites).
    public static func backwardInput(outputGradient: UnsafePointer<Float>, rows: Int, inputChannels: Int,
                                     kernel: UnsafePointer<Float>, outputChannels: Int,
                                     inputGradient: UnsafeMutablePointer<Float>) {
        guard rows > 0, inputChannels > 0 else { return }
        Threads.splitGEMM(rows, minimumPerSlice: minimumRowsPerSlice, alignment: rowAlignment) { slice in
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(slice.count), Int32(inputChannels), Int32(outputChannels),
                        1, outputGradient + slice.lowerBound * outputChannels, Int32(outputChannels), kernel, Int32(outputChannels),
                        0, inputGradient + slice.lowerBound * inputChannels, Int32(inputChannels))
        }
    }

    /// dW[inC, outC] = Xᵀ · dY, scaled by `beta` onto what is there (0 overwrites, 1 accumulates).
    public static func backwardKernel(outputGradient: UnsafePointer<Float>, input: UnsafePointer<Float>, rows: Int,
                                      inputChannels: Int, outputChannels: Int, accumulate: Bool,
                                      kernelGradient: UnsafeMutablePointer<Float>) {
        guard inputChannels > 0, outputChannels > 0 else { return }
        // Split along dW's rows (the input channels) where there are enough of them, else
        // along its columns; the sum over the pixels is each slice's own either way.
        let beta: Float = accumulate ? 1 : 0
        let outputSlices = inputChannels < 2 * rowAlignment ? outputChannels / columnAlignment : inputChannels / rowAlignment
        let threads = Threads.count
        if outputSlices < threads, rows >= threads * minimumRowsPerPixelShare, !Threads.isInsideWorker {
            backwardKernelByPixels(outputGradient: outputGradient, input: input, rows: rows, inputChannels: inputChannels,
                                   outputChannels: outputChannels, beta: beta, workers: threads, kernelGradient: kernelGradient)
        } else if inputChannels < 2 * rowAlignment {
            Threads.splitGEMM(outputChannels, minimumPerSlice: columnAlignment, alignment: columnAlignment) { columns in
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(inputChannels), Int32(columns.count), Int32(rows),
                            1, input, Int32(inputChannels), outputGradient + columns.lowerBound, Int32(outputChannels), beta,
                            kernelGradient + columns.lowerBound, Int32(outputChannels))
            }
        } else {
            Threads.splitGEMM(inputChannels, minimumPerSlice: rowAlignment, alignment: rowAlignment) { channels in
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(channels.count), Int32(outputChannels), Int32(rows),
                            1, input + channels.lowerBound, Int32(inputChannels), outputGradient, Int32(outputChannels), beta,
                            kernelGradient + channels.lowerBound * outputChannels, Int32(outputChannels))
            }
        }
    }

    /// Pixels (rows of X and dY) per worker from which a weight gradient too small to split
    /// across the threads (the first block's 32 × 16 over 80×80 pixels) splits its pixels instead.
    static let minimumRowsPerPixelShare = 4096

    /// dW summed by each worker over its own share of the rows (`sumOverWorkerShares`), each
    /// share one single-threaded sgemm; worker 0's accumulates onto dW with `beta`.
    static func backwardKernelByPixels(outputGradient: UnsafePointer<Float>, input: UnsafePointer<Float>, rows: Int,
                                       inputChannels: Int, outputChannels: Int, beta: Float, workers: Int,
                                       kernelGradient: UnsafeMutablePointer<Float>) {
        sumOverWorkerShares(rows, workers: workers, into: kernelGradient, count: inputChannels * outputChannels) { worker, share, target in
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(inputChannels), Int32(outputChannels), Int32(share.count),
                        1, input + share.lowerBound * inputChannels, Int32(inputChannels),
                        outputGradient + share.lowerBound * outputChannels, Int32(outputChannels),
                        worker == 0 ? beta : 0, target, Int32(outputChannels))
        }
    }

    /// Runs `body(worker, share, target)` on `workers` threads, each over its contiguous share
    /// of `0..<total`, where `target` is `result` for worker 0 and a zeroed partial of `count`
    /// floats for the others; then adds the partials into `result` in worker order. The shares
    /// depend only on `workers`, so the sum's bits do too, and one worker is one pass in order.
    static func sumOverWorkerShares(_ total: Int, workers: Int, into result: UnsafeMutablePointer<Float>, count: Int,
                                    _ body: (_ worker: Int, _ share: Range<Int>, _ target: UnsafeMutablePointer<Float>) -> Void) {
        let workers = max(1, workers)
        ScratchSpace.withZeroed(Float.self, count: (workers - 1) * count) { partials in
            let partialSpace = SendableBuffer(partials)
            Threads.perWorker(total, workers: workers) { worker, share in
                body(worker, share, worker == 0 ? result : partialSpace.buffer.baseAddress! + (worker - 1) * count)
            }
            for worker in 1..<workers {
                Elementwise.add(partials.baseAddress! + (worker - 1) * count, into: result, count: count)
            }
        }
    }
}

/// Folds inference-mode BatchNormalization into the convolution before it:
/// y = γ(conv(x) − μ)/√(σ² + ε) + β  =  conv_{W·s}(x) + (β − μ·s), with s = γ/√(σ² + ε).
/// Computed in Double so that the folded weights round once.
public enum BatchNormFolding {
    public static func scaleAndShift(gamma: [Float]?, beta: [Float]?, mean: [Float], variance: [Float],
                                     epsilon: Float) -> (scale: [Float], shift: [Float]) {
        var scale = [Float](repeating: 0, count: mean.count)
        var shift = [Float](repeating: 0, count: mean.count)
        withOptionalPointers(gamma, beta) { g, b in
            scale.withUnsafeMutableBufferPointer { s in
                shift.withUnsafeMutableBufferPointer { t in
                    scaleAndShift(gamma: g, beta: b, mean: mean, variance: variance, count: mean.count, epsilon: epsilon,
                                  scale: s.baseAddress!, shift: t.baseAddress!)
                }
            }
        }
        return (scale, shift)
    }

    /// s = γ/√(var + ε) and shift = β − μ·s per channel, in Double, into caller-provided
    /// buffers (a training step folds every BatchNorm without allocating).
    public static func scaleAndShift(gamma: UnsafePointer<Float>?, beta: UnsafePointer<Float>?, mean: UnsafePointer<Float>,
                                     variance: UnsafePointer<Float>, count: Int, epsilon: Float,
                                     scale: UnsafeMutablePointer<Float>, shift: UnsafeMutablePointer<Float>) {
        for c in 0..<count {
            let s = Double(gamma?[c] ?? 1) / (Double(variance[c]) + Double(epsilon)).squareRoot()
            scale[c] = Float(s)
            shift[c] = Float(Double(beta?[c] ?? 0) - Double(mean[c]) * s)
        }
    }

    /// Scales the last axis of a kernel (Conv2D's cout; DepthwiseConv2D's c) by `scale`.
    public static func foldedKernel(_ kernel: [Float], scale: [Float]) -> [Float] {
        let channels = scale.count
        var result = kernel
        for i in 0..<result.count { result[i] *= scale[i % channels] }
        return result
    }

    /// The folded bias: the conv's own bias (if any) scaled, plus the shift.
    public static func foldedBias(_ bias: [Float]?, scale: [Float], shift: [Float]) -> [Float] {
        [Float](unsafeUninitializedCapacity: scale.count) { output, initialized in
            withOptionalPointers(bias, nil) { b, _ in
                foldedBias(b, scale: scale, shift: shift, count: scale.count, output: output.baseAddress!)
            }
            initialized = scale.count
        }
    }

    /// The folded bias b·s + shift per channel, into `output`.
    public static func foldedBias(_ bias: UnsafePointer<Float>?, scale: UnsafePointer<Float>, shift: UnsafePointer<Float>,
                                  count: Int, output: UnsafeMutablePointer<Float>) {
        for c in 0..<count { output[c] = (bias?[c] ?? 0) * scale[c] + shift[c] }
    }

    /// Runs `body` with the base addresses of two optional arrays (nil for a missing one).
    private static func withOptionalPointers<R>(_ first: [Float]?, _ second: [Float]?,
                                                _ body: (UnsafePointer<Float>?, UnsafePointer<Float>?) -> R) -> R {
        func withPointer<T>(_ array: [Float]?, _ inner: (UnsafePointer<Float>?) -> T) -> T {
            guard let array else { return inner(nil) }
            return array.withUnsafeBufferPointer { inner($0.baseAddress) }
        }
        return withPointer(first) { a in withPointer(second) { b in body(a, b) } }
    }
}
