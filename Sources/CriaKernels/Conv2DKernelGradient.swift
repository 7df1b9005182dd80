import CriaCore

extension Conv2D {
    /// Output pixels per im2col chunk: 4096 rows of kh·kw·ci values (27 for the first
    /// convolution of MobileNetV2, 432 KiB) stay in L2 between being written and read by sgemm.
    static let im2colChunkPixels = 4096
    /// Output pixels per worker below which the weight gradient runs on one thread.
    static let minimumPixelsPerWorker = 1024

    /// The kernel gradient (and, when given, the bias gradient) as `backwardKernel`, computed as
    /// dW = Pᵀ·dY with one sgemm per chunk of output pixels: P is the im2col matrix, one row per
    /// output pixel holding its kh·kw·ci input taps in the kernel's (ky, kx, ci) order (zeros where
    /// a tap falls in the padding). Each worker adds its share's chunks in order (sgemm's β = 1)
    /// into its own partial, and the partials are added into dW in worker order.
    ///
    /// The direct kernel reaches a few GFLOP/s on the first convolution's small reduction
    /// (27 × 32 outputs summed over every output pixel); this runs at the GEMM rate. The sums
    /// follow the workers' shares, which depend on the thread count: the result is the same
    /// for the same thread count, not bit-identical across thread counts as `backwardKernel` is.
    /// The bias gradient is summed per channel in Double, in pixel order.
    public static func backwardKernelGEMM(outputGradient: UnsafePointer<Float>, input: UnsafePointer<Float>, shape: ConvShape,
                                          kernelGradient: UnsafeMutablePointer<Float>,
                                          biasGradient: UnsafeMutablePointer<Float>?) {
        let (batch, height, width, inputChannels) = (shape.batch, shape.height, shape.width, shape.inputChannels)
        let (kernelHeight, kernelWidth, outputChannels) = (shape.kernelHeight, shape.kernelWidth, shape.outputChannels)
        let (strideH, strideW, padTop, padLeft) = (shape.strideH, shape.strideW, shape.padTop, shape.padLeft)
        let (outputHeight, outputWidth) = (shape.outputHeight, shape.outputWidth)
        let taps = kernelHeight * kernelWidth * inputChannels, co = outputChannels
        let pixels = batch * outputHeight * outputWidth
        kernelGradient.update(repeating: 0, count: taps * co)
        if let biasGradient {
            ScratchSpace.withZeroed(Double.self, count: co) { sums in
                for p in 0..<pixels {
                    let g = outputGradient + p * co
                    for c in 0..<co { sums[c] += Double(g[c]) }
                }
                for c in 0..<co { biasGradient[c] = Float(sums[c]) }
            }
        }
        guard taps > 0, co > 0, pixels > 0 else { return }
        // Each worker sums its own contiguous share of the pixels, chunk by chunk, into its
        // own partial dW (worker 0's is dW itself); the partials are then added in worker
        // order. One parallel region for the whole gradient, each worker's im2col chunk in
        // its own core's L2, and each sgemm single-threaded: the split depends only on the
        // thread count, so the bits do too, and at one thread this is one pass in pixel order.
        let workers = max(1, min(Threads.count, pixels / minimumPixelsPerWorker))
        Pointwise.sumOverWorkerShares(pixels, workers: workers, into: kernelGradient, count: taps * co) { _, share, target in
            let chunk = min(share.count, im2colChunkPixels)
            ScratchSpace.with(Float.self, count: chunk * taps) { buffer in
                let columns = buffer.baseAddress!
                var start = share.lowerBound
                while start < share.upperBound {
                    let count = min(chunk, share.upperBound - start)
                    for local in 0..<count {
                        let p = start + local
                        let ox = p % outputWidth, oy = (p / outputWidth) % outputHeight, n = p / (outputWidth * outputHeight)
                        let row = columns + local * taps
                        for ky in 0..<kernelHeight {
                            let y = oy * strideH - padTop + ky
                            for kx in 0..<kernelWidth {
                                let x = ox * strideW - padLeft + kx
                                let tap = row + (ky * kernelWidth + kx) * inputChannels
                                if y >= 0, y < height, x >= 0, x < width {
                                    // A loop, not `update(from:count:)`: with the first
                                    // convolution's 3 channels a memmove call per tap cost
                                    // more than the copy.
                                    let source = input + ((n * height + y) * width + x) * inputChannels
                                    for c in 0..<inputChannels { tap[c] = source[c] }
                                } else {
                                    for c in 0..<inputChannels { tap[c] = 0 }
                                }
                            }
                        }
                    }
                    Pointwise.backwardKernel(outputGradient: outputGradient + start * co, input: columns, rows: count,
                                             inputChannels: taps, outputChannels: co, accumulate: true, kernelGradient: target)
                    start += count
                }
            }
        }
    }
}
