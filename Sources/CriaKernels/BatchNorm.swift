import CriaCore

/// BatchNormalization over the last (channel) axis of NHWC buffers, in
/// Keras's two modes. Inference mode uses the moving statistics; training
/// mode uses the batch's own (biased) mean and variance, as Keras 3 does.
///
/// Sums run per channel in Double over a fixed order, so results do not
/// depend on the thread count.
public enum BatchNorm {
    /// y = (x − mean)·γ/√(var + ε) + β, with given mean and variance (inference mode).
    public static func forwardInference(input: UnsafePointer<Float>, rows: Int, channels: Int,
                                        gamma: UnsafePointer<Float>?, beta: UnsafePointer<Float>?,
                                        mean: UnsafePointer<Float>, variance: UnsafePointer<Float>, epsilon: Float,
                                        output: UnsafeMutablePointer<Float>) {
        var scale = [Float](repeating: 0, count: channels)
        var shift = [Float](repeating: 0, count: channels)
        for c in 0..<channels {
            let inverse = 1 / (variance[c] + epsilon).squareRoot()
            scale[c] = (gamma?[c] ?? 1) * inverse
            shift[c] = (beta?[c] ?? 0) - mean[c] * scale[c]
        }
        affine(input: input, rows: rows, channels: channels, scale: scale, shift: shift, output: output)
    }

    /// Training mode: normalises with the batch statistics and returns them
    /// (mean, biased variance) for the backward pass and the moving averages.
    public static func forwardTraining(input: UnsafePointer<Float>, rows: Int, channels: Int,
                                       gamma: UnsafePointer<Float>?, beta: UnsafePointer<Float>?, epsilon: Float,
                                       output: UnsafeMutablePointer<Float>) -> (mean: [Float], variance: [Float]) {
        let (mean, variance) = moments(input: input, rows: rows, channels: channels)
        mean.withUnsafeBufferPointer { meanPointer in
            variance.withUnsafeBufferPointer { variancePointer in
                forwardInference(input: input, rows: rows, channels: channels, gamma: gamma, beta: beta,
                                 mean: meanPointer.baseAddress!, variance: variancePointer.baseAddress!, epsilon: epsilon, output: output)
            }
        }
        return (mean, variance)
    }

    /// Per-channel mean and biased variance, two-pass in Double for accuracy.
    ///
    /// Threads split the channels (in groups of 16), and every channel is summed
    /// over the rows in row order, so the result does not depend on `Threads.count`.
    public static func moments(input: UnsafePointer<Float>, rows: Int, channels: Int) -> (mean: [Float], variance: [Float]) {
        var mean = [Float](repeating: 0, count: channels), variance = [Float](repeating: 0, count: channels)
        let divisor = Double(max(rows, 1))
        mean.withUnsafeMutableBufferPointer { meanOut in
            variance.withUnsafeMutableBufferPointer { varianceOut in
                let meanPointer = meanOut.baseAddress!, variancePointer = varianceOut.baseAddress!
                forChannelBlocks(rows: rows, channels: channels) { c0, c1 in
                    let width = c1 - c0
                    withUnsafeTemporaryAllocation(of: Double.self, capacity: 2 * width) { scratch in
                        let sums = scratch.baseAddress!, means = sums + width
                        sums.update(repeating: 0, count: width)
                        for r in 0..<rows {
                            let line = input + r * channels + c0
                            for c in 0..<width { sums[c] += Double(line[c]) }
                        }
                        for c in 0..<width { means[c] = sums[c] / divisor }
                        sums.update(repeating: 0, count: width)
                        for r in 0..<rows {
                            let line = input + r * channels + c0
                            for c in 0..<width { let d = Double(line[c]) - means[c]; sums[c] += d * d }
                        }
                        for c in 0..<width {
                            meanPointer[c0 + c] = Float(means[c])
                            variancePointer[c0 + c] = Float(sums[c] / divisor)
                        }
                    }
                }
            }
        }
        return (mean, variance)
    }

    /// Inference-mode backward: the statistics are constants, so
    /// dx = dy·γ/√(var + ε), dγ = Σ dy·x̂, dβ = Σ dy. Overwrites all outputs.
    ///
    /// The sums split the channels across threads (each channel summed in row
    /// order, in Double) and dx splits the rows, so every value is computed
    /// by one thread in a fixed order: the bits do not depend on `Threads.count`.
    public static func backwardInference(outputGradient: UnsafePointer<Float>, input: UnsafePointer<Float>,
                                         rows: Int, channels: Int, gamma: UnsafePointer<Float>?,
                                         mean: UnsafePointer<Float>, variance: UnsafePointer<Float>, epsilon: Float,
                                         inputGradient: UnsafeMutablePointer<Float>?,
                                         gammaGradient: UnsafeMutablePointer<Float>?, betaGradient: UnsafeMutablePointer<Float>?) {
        var inverse = [Float](repeating: 0, count: channels)
        var factor = [Float](repeating: 0, count: channels)
        for c in 0..<channels {
            inverse[c] = 1 / (variance[c] + epsilon).squareRoot()
            factor[c] = gamma?[c] ?? 1
        }
        inverse.withUnsafeBufferPointer { inverseBuffer in
            factor.withUnsafeBufferPointer { factorBuffer in
                let inverse = inverseBuffer.baseAddress!, gammaOrOne = factorBuffer.baseAddress!
                if gammaGradient != nil || betaGradient != nil {
                    forChannelBlocks(rows: rows, channels: channels) { c0, c1 in
                        let width = c1 - c0
                        withUnsafeTemporaryAllocation(of: Double.self, capacity: 2 * width) { scratch in
                            let dGamma = scratch.baseAddress!, dBeta = dGamma + width
                            dGamma.update(repeating: 0, count: 2 * width)
                            let m = mean + c0, inv = inverse + c0
                            for r in 0..<rows {
                                let dy = outputGradient + r * channels + c0, x = input + r * channels + c0
                                for c in 0..<width {
                                    dBeta[c] += Double(dy[c])
                                    dGamma[c] += Double(dy[c]) * Double((x[c] - m[c]) * inv[c])
                                }
                            }
                            for c in 0..<width {
                                gammaGradient?[c0 + c] = Float(dGamma[c])
                                betaGradient?[c0 + c] = Float(dBeta[c])
                            }
                        }
                    }
                }
                guard let inputGradient else { return }
                Threads.parallelFor(rows, minimumPerChunk: max(1, 16_384 / max(1, channels))) { range in
                    for r in range {
                        let dy = outputGradient + r * channels, dx = inputGradient + r * channels
                        for c in 0..<channels { dx[c] = dy[c] * gammaOrOne[c] * inverse[c] }
                    }
                }
            }
        }
    }

    /// Training-mode backward through the batch statistics:
    /// dx = γ/(N·σ)·(N·dy − Σdy − x̂·Σ(dy·x̂)), with σ = √(var + ε).
    /// Threads as in `backwardInference`.
    public static func backwardTraining(outputGradient: UnsafePointer<Float>, input: UnsafePointer<Float>,
                                        rows: Int, channels: Int, gamma: UnsafePointer<Float>?,
                                        mean: UnsafePointer<Float>, variance: UnsafePointer<Float>, epsilon: Float,
                                        inputGradient: UnsafeMutablePointer<Float>?,
                                        gammaGradient: UnsafeMutablePointer<Float>?, betaGradient: UnsafeMutablePointer<Float>?) {
        var inverse = [Double](repeating: 0, count: channels)
        var means = [Double](repeating: 0, count: channels)
        var factor = [Double](repeating: 0, count: channels)
        for c in 0..<channels {
            inverse[c] = 1 / (Double(variance[c]) + Double(epsilon)).squareRoot()
            means[c] = Double(mean[c])
            factor[c] = Double(gamma?[c] ?? 1)
        }
        var sumDy = [Double](repeating: 0, count: channels)
        var sumDyXhat = [Double](repeating: 0, count: channels)
        inverse.withUnsafeBufferPointer { inverseBuffer in
          means.withUnsafeBufferPointer { meanBuffer in
            factor.withUnsafeBufferPointer { factorBuffer in
              sumDy.withUnsafeMutableBufferPointer { sumDyBuffer in
                sumDyXhat.withUnsafeMutableBufferPointer { sumDyXhatBuffer in
                    let inverse = inverseBuffer.baseAddress!, mu = meanBuffer.baseAddress!, g = factorBuffer.baseAddress!
                    let sumDy = sumDyBuffer.baseAddress!, sumDyXhat = sumDyXhatBuffer.baseAddress!
                    forChannelBlocks(rows: rows, channels: channels) { c0, c1 in
                        for r in 0..<rows {
                            let dy = outputGradient + r * channels, x = input + r * channels
                            for c in c0..<c1 {
                                let xhat = (Double(x[c]) - mu[c]) * inverse[c]
                                sumDy[c] += Double(dy[c])
                                sumDyXhat[c] += Double(dy[c]) * xhat
                            }
                        }
                    }
                    for c in 0..<channels {
                        gammaGradient?[c] = Float(sumDyXhat[c])
                        betaGradient?[c] = Float(sumDy[c])
                    }
                    guard let inputGradient else { return }
                    let n = Double(rows)
                    Threads.parallelFor(rows, minimumPerChunk: max(1, 16_384 / max(1, channels))) { range in
                        for r in range {
                            let dy = outputGradient + r * channels, x = input + r * channels, dx = inputGradient + r * channels
                            for c in 0..<channels {
                                let xhat = (Double(x[c]) - mu[c]) * inverse[c]
                                dx[c] = Float(g[c] * inverse[c] / n * (n * Double(dy[c]) - sumDy[c] - xhat * sumDyXhat[c]))
                            }
                        }
                    }
                }
              }
            }
          }
        }
    }

    /// Runs `body(c0, c1)` over blocks of 16 channels split across threads (whole
    /// cache lines of a row each, so threads do not share lines).
    static func forChannelBlocks(rows: Int, channels: Int, _ body: (Int, Int) -> Void) {
        let blocks = (channels + 15) / 16
        guard blocks > 0 else { return }
        Threads.parallelFor(blocks, minimumPerChunk: max(1, 65_536 / max(1, rows * 16))) { range in
            body(range.lowerBound * 16, min(channels, range.upperBound * 16))
        }
    }

    /// Keras's moving-average update: moving = moving·momentum + batch·(1 − momentum).
    public static func updateMovingAverage(_ moving: inout [Float], batch: [Float], momentum: Float) {
        for c in moving.indices { moving[c] = moving[c] * momentum + batch[c] * (1 - momentum) }
    }

    /// y = x·scale[c] + shift[c] over rows of `channels` values.
    public static func affine(input: UnsafePointer<Float>, rows: Int, channels: Int, scale: [Float], shift: [Float],
                              output: UnsafeMutablePointer<Float>) {
        scale.withUnsafeBufferPointer { s in
            shift.withUnsafeBufferPointer { b in
                Threads.parallelFor(rows, minimumPerChunk: max(1, 16_384 / max(1, channels))) { range in
                    for r in range {
                        let x = input + r * channels, y = output + r * channels
                        for c in 0..<channels { y[c] = x[c] * s[c] + b[c] }
                    }
                }
            }
        }
    }
}

/// Keras's ReLU (threshold, negative slope, max value) and its gradient.
public enum ReLU {
    /// Elementwise, split across threads; each value's formula is the same on any thread.
    public static func forward(input: UnsafePointer<Float>, count: Int, maxValue: Float?, threshold: Float, negativeSlope: Float,
                               output: UnsafeMutablePointer<Float>) {
        let cap = maxValue ?? .infinity
        Threads.parallelFor(count, minimumPerChunk: 32_768) { range in
            for i in range {
                let x = input[i]
                output[i] = min(x >= threshold ? x : negativeSlope * (x - threshold), cap)
            }
        }
    }

    /// dx = dy where the input lies strictly inside (threshold, max value), as TF's Relu6Grad;
    /// times the negative slope below the threshold. Overwrites `inputGradient`.
    public static func backward(outputGradient: UnsafePointer<Float>, input: UnsafePointer<Float>, count: Int,
                                maxValue: Float?, threshold: Float, negativeSlope: Float,
                                inputGradient: UnsafeMutablePointer<Float>) {
        let cap = maxValue ?? .infinity
        Threads.parallelFor(count, minimumPerChunk: 32_768) { range in
            for i in range {
                let x = input[i]
                inputGradient[i] = x > threshold ? (x < cap ? outputGradient[i] : 0) : negativeSlope * outputGradient[i]
            }
        }
    }
}
