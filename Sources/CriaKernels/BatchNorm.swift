import CriaCore

/// BatchNormalization over the last (channel) axis of NHWC buffers, in
/// Keras's two modes. Inference mode uses the moving statistics; training
/// mode uses the batch's own (biased) mean and variance, as Keras 3 does.
///
/// Sums run per channel in Double over a fixed order, so results do not
/// depend on the thread count.
public enum BatchNorm {
    /// y = (x − mean)·γ/√(var + ε) + β, with given mean and variance (inference mode),
    /// then `relu` when given (the ReLU layer that follows, run in this pass).
    public static func forwardInference(input: UnsafePointer<Float>, rows: Int, channels: Int,
                                        gamma: UnsafePointer<Float>?, beta: UnsafePointer<Float>?,
                                        mean: UnsafePointer<Float>, variance: UnsafePointer<Float>, epsilon: Float,
                                        relu: FusedReLU? = nil, output: UnsafeMutablePointer<Float>) {
        ScratchSpace.with(Float.self, count: 2 * channels) { constants in
            let scale = constants.baseAddress!, shift = scale + channels
            for c in 0..<channels {
                let inverse = 1 / (variance[c] + epsilon).squareRoot()
                scale[c] = (gamma?[c] ?? 1) * inverse
                shift[c] = (beta?[c] ?? 0) - mean[c] * scale[c]
            }
            affine(input: input, rows: rows, channels: channels, scale: UnsafePointer(scale), shift: UnsafePointer(shift),
                   relu: relu, output: output)
        }
    }

    /// Training mode: normalises with the batch statistics and returns them
    /// (mean, biased variance) for the backward pass and the moving averages;
    /// `relu`, when given, clamps the output in the same pass.
    public static func forwardTraining(input: UnsafePointer<Float>, rows: Int, channels: Int,
                                       gamma: UnsafePointer<Float>?, beta: UnsafePointer<Float>?, epsilon: Float,
                                       relu: FusedReLU? = nil, output: UnsafeMutablePointer<Float>) -> (mean: [Float], variance: [Float]) {
        var mean = [Float](repeating: 0, count: channels), variance = [Float](repeating: 0, count: channels)
        forwardTraining(input: input, rows: rows, channels: channels, gamma: gamma, beta: beta, epsilon: epsilon, relu: relu,
                        output: output, mean: &mean, variance: &variance)
        return (mean, variance)
    }

    /// As above, with the batch statistics written into `mean` and `variance` (`channels`
    /// values each, overwritten): a training step passes buffers from its pool.
    public static func forwardTraining(input: UnsafePointer<Float>, rows: Int, channels: Int,
                                       gamma: UnsafePointer<Float>?, beta: UnsafePointer<Float>?, epsilon: Float,
                                       relu: FusedReLU? = nil, output: UnsafeMutablePointer<Float>,
                                       mean: inout [Float], variance: inout [Float]) {
        precondition(mean.count == channels && variance.count == channels, "batch statistics need one value per channel")
        mean.withUnsafeMutableBufferPointer { m in
            variance.withUnsafeMutableBufferPointer { v in
                moments(input: input, rows: rows, channels: channels, mean: m.baseAddress!, variance: v.baseAddress!)
                forwardInference(input: input, rows: rows, channels: channels, gamma: gamma, beta: beta,
                                 mean: m.baseAddress!, variance: v.baseAddress!, epsilon: epsilon, relu: relu, output: output)
            }
        }
    }

    /// Per-channel mean and biased variance, two-pass in Double for accuracy.
    public static func moments(input: UnsafePointer<Float>, rows: Int, channels: Int) -> (mean: [Float], variance: [Float]) {
        var mean = [Float](repeating: 0, count: channels), variance = [Float](repeating: 0, count: channels)
        mean.withUnsafeMutableBufferPointer { m in
            variance.withUnsafeMutableBufferPointer { v in
                moments(input: input, rows: rows, channels: channels, mean: m.baseAddress!, variance: v.baseAddress!)
            }
        }
        return (mean, variance)
    }

    /// `moments` into `mean` and `variance` (`channels` values each).
    public static func moments(input: UnsafePointer<Float>, rows: Int, channels: Int,
                               mean: UnsafeMutablePointer<Float>, variance: UnsafeMutablePointer<Float>) {
        ScratchSpace.withZeroed(Double.self, count: 2 * channels) { scratch in
            let means = scratch.baseAddress!, squares = means + channels
            for r in 0..<rows {
                let line = input + r * channels
                for c in 0..<channels { means[c] += Double(line[c]) }
            }
            for c in 0..<channels { means[c] /= Double(max(rows, 1)) }
            for r in 0..<rows {
                let line = input + r * channels
                for c in 0..<channels { let d = Double(line[c]) - means[c]; squares[c] += d * d }
            }
            for c in 0..<channels {
                mean[c] = Float(means[c])
                variance[c] = Float(squares[c] / Double(max(rows, 1)))
            }
        }
    }

    /// Inference-mode backward: the statistics are constants, so
    /// dx = dy·γ/√(var + ε), dγ = Σ dy·x̂, dβ = Σ dy. Overwrites all outputs.
    /// With `relu` (a ReLU run in the forward pass, and its clamped output), dy is
    /// first masked by the ReLU's derivative, element by element as it is read.
    public static func backwardInference(outputGradient: UnsafePointer<Float>, input: UnsafePointer<Float>,
                                         rows: Int, channels: Int, gamma: UnsafePointer<Float>?,
                                         mean: UnsafePointer<Float>, variance: UnsafePointer<Float>, epsilon: Float,
                                         relu: (FusedReLU, output: UnsafePointer<Float>)? = nil,
                                         inputGradient: UnsafeMutablePointer<Float>?,
                                         gammaGradient: UnsafeMutablePointer<Float>?, betaGradient: UnsafeMutablePointer<Float>?) {
        let masking = relu != nil, mask = relu?.0 ?? FusedReLU(cap: nil), clamped = relu?.output ?? outputGradient
        ScratchSpace.with(Float.self, count: channels) { inverseBuffer in
        ScratchSpace.withZeroed(Double.self, count: 2 * channels) { sums in
        let inverse = inverseBuffer.baseAddress!, dGamma = sums.baseAddress!, dBeta = dGamma + channels
        for c in 0..<channels { inverse[c] = 1 / (variance[c] + epsilon).squareRoot() }
        for r in 0..<rows {
            let dy = outputGradient + r * channels, x = input + r * channels, y = clamped + r * channels
            for c in 0..<channels {
                let g = masking ? mask.gradient(dy[c], output: y[c]) : dy[c]
                dBeta[c] += Double(g)
                dGamma[c] += Double(g) * Double((x[c] - mean[c]) * inverse[c])
            }
            if let inputGradient {
                let dx = inputGradient + r * channels
                for c in 0..<channels { dx[c] = (masking ? mask.gradient(dy[c], output: y[c]) : dy[c]) * (gamma?[c] ?? 1) * inverse[c] }
            }
        }
        for c in 0..<channels {
            gammaGradient?[c] = Float(dGamma[c])
            betaGradient?[c] = Float(dBeta[c])
        }
        }
        }
    }

    /// Training-mode backward through the batch statistics:
    /// dx = γ/(N·σ)·(N·dy − Σdy − x̂·Σ(dy·x̂)), with σ = √(var + ε).
    /// With `relu`, dy is masked by the ReLU's derivative as it is read (see `backwardInference`):
    /// the same values in the same order as a separate ReLU backward pass would give.
    public static func backwardTraining(outputGradient: UnsafePointer<Float>, input: UnsafePointer<Float>,
                                        rows: Int, channels: Int, gamma: UnsafePointer<Float>?,
                                        mean: UnsafePointer<Float>, variance: UnsafePointer<Float>, epsilon: Float,
                                        relu: (FusedReLU, output: UnsafePointer<Float>)? = nil,
                                        inputGradient: UnsafeMutablePointer<Float>?,
                                        gammaGradient: UnsafeMutablePointer<Float>?, betaGradient: UnsafeMutablePointer<Float>?) {
        let masking = relu != nil, mask = relu?.0 ?? FusedReLU(cap: nil), clamped = relu?.output ?? outputGradient
        ScratchSpace.withZeroed(Double.self, count: 3 * channels) { scratch in
        let inverse = scratch.baseAddress!, sumDy = inverse + channels, sumDyXhat = sumDy + channels
        for c in 0..<channels { inverse[c] = 1 / (Double(variance[c]) + Double(epsilon)).squareRoot() }
        for r in 0..<rows {
            let dy = outputGradient + r * channels, x = input + r * channels, y = clamped + r * channels
            for c in 0..<channels {
                let g = masking ? mask.gradient(dy[c], output: y[c]) : dy[c]
                let xhat = (Double(x[c]) - Double(mean[c])) * inverse[c]
                sumDy[c] += Double(g)
                sumDyXhat[c] += Double(g) * xhat
            }
        }
        for c in 0..<channels {
            gammaGradient?[c] = Float(sumDyXhat[c])
            betaGradient?[c] = Float(sumDy[c])
        }
        guard let inputGradient else { return }
        let n = Double(rows)
        for r in 0..<rows {
            let dy = outputGradient + r * channels, x = input + r * channels, dx = inputGradient + r * channels
            let y = clamped + r * channels
            for c in 0..<channels {
                let xhat = (Double(x[c]) - Double(mean[c])) * inverse[c]
                let g = Double(gamma?[c] ?? 1)
                let d = masking ? mask.gradient(dy[c], output: y[c]) : dy[c]
                dx[c] = Float(g * inverse[c] / n * (n * Double(d) - sumDy[c] - xhat * sumDyXhat[c]))
            }
        }
        }
    }

    /// Keras's moving-average update: moving = moving·momentum + batch·(1 − momentum).
    public static func updateMovingAverage(_ moving: UnsafeMutableBufferPointer<Float>, batch: [Float], momentum: Float) {
        for c in moving.indices { moving[c] = moving[c] * momentum + batch[c] * (1 - momentum) }
    }

    /// y = x·scale[c] + shift[c] over rows of `channels` values, then `relu` when given.
    public static func affine(input: UnsafePointer<Float>, rows: Int, channels: Int, scale: [Float], shift: [Float],
                              relu: FusedReLU? = nil, output: UnsafeMutablePointer<Float>) {
        scale.withUnsafeBufferPointer { s in
            shift.withUnsafeBufferPointer { b in
                affine(input: input, rows: rows, channels: channels, scale: s.baseAddress!, shift: b.baseAddress!, relu: relu, output: output)
            }
        }
    }

    /// `affine` with the per-channel constants in place.
    public static func affine(input: UnsafePointer<Float>, rows: Int, channels: Int, scale s: UnsafePointer<Float>,
                              shift b: UnsafePointer<Float>, relu: FusedReLU? = nil, output: UnsafeMutablePointer<Float>) {
        Threads.parallelFor(rows, minimumPerChunk: max(1, 16_384 / max(1, channels))) { range in
            for r in range {
                let x = input + r * channels, y = output + r * channels
                if let relu {
                    for c in 0..<channels { y[c] = relu.apply(x[c] * s[c] + b[c]) }
                } else {
                    for c in 0..<channels { y[c] = x[c] * s[c] + b[c] }
                }
            }
        }
    }
}

/// Keras's ReLU (threshold, negative slope, max value) and its gradient.
public enum ReLU {
    public static func forward(input: UnsafePointer<Float>, count: Int, maxValue: Float?, threshold: Float, negativeSlope: Float,
                               output: UnsafeMutablePointer<Float>) {
        let cap = maxValue ?? .infinity
        for i in 0..<count {
            let x = input[i]
            output[i] = min(x >= threshold ? x : negativeSlope * (x - threshold), cap)
        }
    }

    /// dx = dy where the input lies strictly inside (threshold, max value), as TF's Relu6Grad;
    /// times the negative slope below the threshold. Overwrites `inputGradient`.
    public static func backward(outputGradient: UnsafePointer<Float>, input: UnsafePointer<Float>, count: Int,
                                maxValue: Float?, threshold: Float, negativeSlope: Float,
                                inputGradient: UnsafeMutablePointer<Float>) {
        let cap = maxValue ?? .infinity
        for i in 0..<count {
            let x = input[i]
            inputGradient[i] = x > threshold ? (x < cap ? outputGradient[i] : 0) : negativeSlope * outputGradient[i]
        }
    }
}
