import CriaCore

/// A plain ReLU (threshold 0, no negative slope, optional cap) run inside the
/// pass before it: the forward clamps the value that pass computes, and the
/// backward reads the derivative from the clamped output, so neither the
/// pre-activation nor a separate mask pass is needed.
///
/// `apply` and `gradient` are `ReLU.forward` and `ReLU.backward` for threshold 0
/// and slope 0, written so they give the same bits: 0 < y < cap exactly where
/// 0 < x < cap (y = x there; y is ±0 below and the cap above), and `0 * dy`
/// keeps the signed zero (and the NaN) that `ReLU.backward` writes.
public struct FusedReLU: Equatable, Sendable {
    public let cap: Float

    public init(cap: Float?) { self.cap = cap ?? .infinity }

    @inline(__always)
    public func apply(_ x: Float) -> Float { min(x >= 0 ? x : 0 * x, cap) }

    @inline(__always)
    public func gradient(_ dy: Float, output y: Float) -> Float { y > 0 ? (y < cap ? dy : 0) : 0 * dy }
}

/// The backward pass of Conv → BatchNormalization (moving statistics) → ReLU
/// run forward as one convolution with the BatchNorm folded into its kernel
/// and bias, and the test for when that is accurate.
///
/// The forward keeps only the unit's output y = clamp(s·(z − μ) + β), with
/// s = γ/√(var + ε) and z the raw convolution output. Backward recovers what
/// it needs from y alone: where the clamp passes its input (the mask),
/// y equals the pre-activation, so x̂ = (z − μ)/σ = (y − β)/γ there.
public enum FoldedBatchNorm {
    /// Largest ρ = 2|μ|/σ + 4|β|/|γ| (over channels) at which a layer is folded.
    ///
    /// Recovering x̂ from y adds, to the error the unfolded path has, at most
    /// u·ρ per element (u = 2⁻²⁴): the folded bias β − μ·s is rounded once
    /// (u·|μ|·s + u·|β|, divided by γ), y itself once more (u·|y|, and
    /// |y| ≤ |γ·x̂| + |β|), and y − β once. Keeping ρ ≤ 2⁸ keeps that below
    /// 1.5·10⁻⁵ of x̂'s unit scale, under the bound of one float32 sum of 256
    /// terms, which the error model already counts for the ReLU the unit
    /// absorbs (a pass that rounds nothing). A γ of 0 (ρ infinite) cannot be
    /// recovered at all; such a layer runs unfolded for that step.
    public static let largestRecoveryAmplification: Double = 256

    /// Whether this step's weights allow folding: every γ is nonzero and ρ ≤ 2⁸.
    public static func canFold(gamma: [Float]?, beta: [Float]?, mean: [Float], variance: [Float], epsilon: Float) -> Bool {
        func withPointer<T>(_ array: [Float]?, _ inner: (UnsafePointer<Float>?) -> T) -> T {
            guard let array else { return inner(nil) }
            return array.withUnsafeBufferPointer { inner($0.baseAddress) }
        }
        return withPointer(gamma) { g in
            withPointer(beta) { b in
                mean.withUnsafeBufferPointer { m in
                    variance.withUnsafeBufferPointer { v in
                        canFold(gamma: g, beta: b, mean: m.baseAddress!, variance: v.baseAddress!, count: mean.count, epsilon: epsilon)
                    }
                }
            }
        }
    }

    /// `canFold` over `count` channels in place (the parameter store's values).
    public static func canFold(gamma: UnsafePointer<Float>?, beta: UnsafePointer<Float>?, mean: UnsafePointer<Float>,
                               variance: UnsafePointer<Float>, count: Int, epsilon: Float) -> Bool {
        for c in 0..<count {
            let g = Double(gamma?[c] ?? 1)
            guard g != 0 else { return false }
            let inverse = 1 / (Double(variance[c]) + Double(epsilon)).squareRoot()
            let rho = 2 * abs(Double(mean[c])) * inverse + 4 * abs(Double(beta?[c] ?? 0)) / abs(g)
            guard rho <= largestRecoveryAmplification else { return false }
        }
        return true
    }

    /// Writes the kernel with its last axis (Conv2D's output channels, DepthwiseConv2D's
    /// channels) scaled by `scale`, as `BatchNormFolding.foldedKernel` does, into `output`.
    public static func foldKernel(_ kernel: UnsafePointer<Float>, count: Int, scale: [Float], output: UnsafeMutablePointer<Float>) {
        let channels = scale.count
        scale.withUnsafeBufferPointer { s in
            for row in stride(from: 0, to: count, by: channels) {
                for c in 0..<min(channels, count - row) { output[row + c] = kernel[row + c] * s[c] }
            }
        }
    }

    /// Elements (rows × channels) per worker below which the backward pass runs on one thread.
    static let minimumElementsPerWorker = 65_536

    /// From the unit's output gradient dy and output y: overwrites `inputGradient` with
    /// dz = dy·mask·s (the gradient of the raw convolution output), and writes
    /// dβ = Σ dy·mask and dγ = Σ dy·mask·x̂ with x̂ = (y − β)/γ, summed per channel in
    /// Double. Each worker sums its own contiguous share of the rows in order and the
    /// workers' sums are added in worker order, then rounded once: the shares depend only
    /// on the thread count, so the bits do too, and at one thread the sum runs over every
    /// row in order. Every γ must be nonzero (`canFold`). `relu` nil means the BatchNorm
    /// output is the unit's output (no mask).
    public static func backward(outputGradient: UnsafePointer<Float>, output: UnsafePointer<Float>, rows: Int, channels: Int,
                                gamma: UnsafePointer<Float>?, beta: UnsafePointer<Float>?, scale: UnsafePointer<Float>,
                                relu: FusedReLU?, inputGradient: UnsafeMutablePointer<Float>?,
                                gammaGradient: UnsafeMutablePointer<Float>?, betaGradient: UnsafeMutablePointer<Float>?) {
        let workers = max(1, min(Threads.count, rows * channels / minimumElementsPerWorker))
        FoldedBatchNormBackward.with(channels: channels, gamma: gamma, beta: beta, scale: scale, relu: relu) { pass in
            ScratchSpace.withZeroed(Double.self, count: workers * 2 * channels) { sums in
                let sumSpace = SendableBuffer(sums)
                Threads.perWorker(rows, workers: workers) { worker, share in
                    let offset = share.lowerBound * channels
                    pass.accumulate(outputGradient: outputGradient + offset, output: output + offset, rows: share.count,
                                    inputGradient: inputGradient.map { $0 + offset },
                                    sums: sumSpace.buffer.baseAddress! + worker * 2 * channels)
                }
                for c in 0..<channels {
                    var gammaSum = 0.0, betaSum = 0.0
                    for worker in 0..<workers {
                        gammaSum += sums[worker * 2 * channels + c]
                        betaSum += sums[worker * 2 * channels + channels + c]
                    }
                    gammaGradient?[c] = Float(gammaSum)
                    betaGradient?[c] = Float(betaSum)
                }
            }
        }
    }
}

/// The backward pass of a folded BatchNorm with its per-channel constants prepared once,
/// for callers that run it over many row ranges (an image at a time) and add the
/// per-channel sums themselves.
public struct FoldedBatchNormBackward {
    public let channels: Int
    let shifts: UnsafePointer<Float>
    /// 1/γ in Double: x̂ = (y − β)·(1/γ) with the difference rounded once in float32 and the
    /// rest in float64, no float32 division per element and no more rounding than (y − β)/γ.
    let reciprocals: UnsafePointer<Double>
    let scale: UnsafePointer<Float>
    let relu: FusedReLU?

    /// Runs `body` with the pass, its per-channel constants in this thread's scratch
    /// (`ScratchSpace`), valid until `body` returns; other threads may use the pass
    /// meanwhile. `scale` must stay valid as long; every γ must be nonzero (`canFold`).
    public static func with<Result>(channels: Int, gamma: UnsafePointer<Float>?, beta: UnsafePointer<Float>?,
                                    scale: UnsafePointer<Float>, relu: FusedReLU?,
                                    _ body: (FoldedBatchNormBackward) -> Result) -> Result {
        ScratchSpace.with(Double.self, count: channels) { reciprocals in
            ScratchSpace.with(Float.self, count: channels) { shifts in
                for c in 0..<channels {
                    shifts[c] = beta?[c] ?? 0
                    reciprocals[c] = 1 / Double(gamma?[c] ?? 1)
                }
                return body(FoldedBatchNormBackward(channels: channels, shifts: UnsafePointer(shifts.baseAddress!),
                                                    reciprocals: UnsafePointer(reciprocals.baseAddress!), scale: scale, relu: relu))
            }
        }
    }

    private init(channels: Int, shifts: UnsafePointer<Float>, reciprocals: UnsafePointer<Double>,
                 scale: UnsafePointer<Float>, relu: FusedReLU?) {
        self.channels = channels
        self.shifts = shifts
        self.reciprocals = reciprocals
        self.scale = scale
        self.relu = relu
    }

    /// Rows `0..<rows` in order: overwrites `inputGradient` (when given) with dz = dy·mask·s and
    /// adds Σ dy·mask·x̂ into `sums[0..<channels]` (dγ) and Σ dy·mask into `sums[channels...]` (dβ).
    public func accumulate(outputGradient: UnsafePointer<Float>, output: UnsafePointer<Float>, rows: Int,
                           inputGradient: UnsafeMutablePointer<Float>?, sums: UnsafeMutablePointer<Double>) {
        let channels = channels, scale = scale
        let sumXhat = sums, sum = sums + channels
        // Without an input gradient to write, each row's dz goes to a scratch row.
        ScratchSpace.with(Float.self, count: inputGradient == nil ? channels : 0) { spare in
            let b = shifts, inverse = reciprocals
            // No branches on the data: a masked entry adds 0·x̂ = 0 (x̂ is finite, γ ≠ 0), so the
            // loop runs the same instructions on every element. Eight channels at a time with
            // the same operations per element as the scalar tail, so the bits are the same.
            let vectorEnd = channels & ~7
            for r in 0..<rows {
                let dy = outputGradient + r * channels, y = output + r * channels
                let dz = inputGradient.map { $0 + r * channels } ?? spare.baseAddress!
                var c = 0
                while c < vectorEnd {
                    let g = load8(dy + c), v = load8(y + c)
                    var masked = g
                    if let relu {
                        masked = SIMD8<Float>(repeating: 0)
                        masked.replace(with: g, where: (v .> 0) .& (v .< relu.cap))
                        masked.replace(with: 0 * g, where: .!(v .> 0))
                    }
                    let shifted = v - load8(b + c)
                    let (lowMasked, highMasked) = (SIMD4<Double>(masked.lowHalf), SIMD4<Double>(masked.highHalf))
                    let lowXhat = SIMD4<Double>(shifted.lowHalf) * loadDoubles4(inverse + c)
                    let highXhat = SIMD4<Double>(shifted.highHalf) * loadDoubles4(inverse + c + 4)
                    storeDoubles4(loadDoubles4(sum + c) + lowMasked, sum + c)
                    storeDoubles4(loadDoubles4(sum + c + 4) + highMasked, sum + c + 4)
                    storeDoubles4(loadDoubles4(sumXhat + c) + lowMasked * lowXhat, sumXhat + c)
                    storeDoubles4(loadDoubles4(sumXhat + c + 4) + highMasked * highXhat, sumXhat + c + 4)
                    store8(masked * load8(scale + c), dz + c)
                    c += 8
                }
                if c == channels { continue }
                if let relu {
                    for c in vectorEnd..<channels {
                        let masked = relu.gradient(dy[c], output: y[c])
                        sum[c] += Double(masked)
                        sumXhat[c] += Double(masked) * (Double(y[c] - b[c]) * inverse[c])
                        dz[c] = masked * scale[c]
                    }
                } else {
                    for c in vectorEnd..<channels {
                        sum[c] += Double(dy[c])
                        sumXhat[c] += Double(dy[c]) * (Double(y[c] - b[c]) * inverse[c])
                        dz[c] = dy[c] * scale[c]
                    }
                }
            }
        }
    }
}
