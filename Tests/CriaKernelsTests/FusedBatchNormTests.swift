import CriaCore
import CriaKernels
import XCTest

/// The fused BatchNorm passes against the passes they replace: BatchNorm with its
/// ReLU in one pass gives the bits of BatchNorm then ReLU (forward and backward, both
/// modes), and the backward of a BatchNorm folded into its convolution agrees with a
/// float64 evaluation within its error model.
final class FusedBatchNormTests: XCTestCase {
    private let rows = 67, channels = 13

    /// Pre-activations spread over (-8, 10), so every branch of ReLU6 is taken, with exact
    /// zeros and sixes among them.
    private func inputs(_ random: inout TestRandom) -> (x: [Float], gamma: [Float], beta: [Float], mean: [Float], variance: [Float]) {
        var x = (0..<(rows * channels)).map { _ in random.uniform(9) + 1 }
        x[5] = 0
        x[17] = 6
        let gamma = (0..<channels).map { _ in random.uniform(1.5) + (random.next() % 2 == 0 ? 2 : -2) }
        let beta = (0..<channels).map { _ in random.uniform(2) + 2 }
        let mean = (0..<channels).map { _ in random.uniform(1) }
        let variance = (0..<channels).map { _ in random.uniform(0.5) + 1 }
        return (x, gamma, beta, mean, variance)
    }

    private func bits(_ values: [Float]) -> [UInt32] { values.map(\.bitPattern) }

    func testBatchNormWithReLUGivesTheBitsOfBatchNormThenReLU() {
        var random = TestRandom(seed: 21)
        let (x, gamma, beta, mean, variance) = inputs(&random)
        let count = rows * channels
        for (training, cap) in [(true, Float(6)), (false, Float(6)), (true, nil), (false, nil)] as [(Bool, Float?)] {
            var normalised = [Float](repeating: .nan, count: count), separate = normalised, fused = normalised
            x.withUnsafeBufferPointer { input in
                if training {
                    _ = BatchNorm.forwardTraining(input: input.baseAddress!, rows: rows, channels: channels, gamma: gamma, beta: beta,
                                                  epsilon: 1e-3, output: &normalised)
                    _ = BatchNorm.forwardTraining(input: input.baseAddress!, rows: rows, channels: channels, gamma: gamma, beta: beta,
                                                  epsilon: 1e-3, relu: FusedReLU(cap: cap), output: &fused)
                } else {
                    BatchNorm.forwardInference(input: input.baseAddress!, rows: rows, channels: channels, gamma: gamma, beta: beta,
                                               mean: mean, variance: variance, epsilon: 1e-3, output: &normalised)
                    BatchNorm.forwardInference(input: input.baseAddress!, rows: rows, channels: channels, gamma: gamma, beta: beta,
                                               mean: mean, variance: variance, epsilon: 1e-3, relu: FusedReLU(cap: cap), output: &fused)
                }
            }
            ReLU.forward(input: normalised, count: count, maxValue: cap, threshold: 0, negativeSlope: 0, output: &separate)
            XCTAssertEqual(bits(fused), bits(separate), "forward, training \(training), cap \(String(describing: cap))")
            XCTAssertTrue(separate.contains(0) && separate.contains { $0 > 0 && $0 < (cap ?? .infinity) }, "every branch is exercised")

            // Backward: the ReLU mask read from the clamped output inside the BatchNorm backward.
            let dy = (0..<count).map { _ in random.uniform(1) }
            var masked = [Float](repeating: .nan, count: count)
            ReLU.backward(outputGradient: dy, input: normalised, count: count, maxValue: cap, threshold: 0, negativeSlope: 0,
                          inputGradient: &masked)
            let (batchMean, batchVariance) = x.withUnsafeBufferPointer { BatchNorm.moments(input: $0.baseAddress!, rows: rows, channels: channels) }
            let statisticsMean = training ? batchMean : mean, statisticsVariance = training ? batchVariance : variance
            var expected = ([Float](repeating: .nan, count: count), [Float](repeating: .nan, count: channels), [Float](repeating: .nan, count: channels))
            var actual = expected
            let backward = training ? BatchNorm.backwardTraining : BatchNorm.backwardInference
            backward(masked, x, rows, channels, gamma, statisticsMean, statisticsVariance, 1e-3, nil, &expected.0, &expected.1, &expected.2)
            fused.withUnsafeBufferPointer { y in
                backward(dy, x, rows, channels, gamma, statisticsMean, statisticsVariance, 1e-3, (FusedReLU(cap: cap), output: y.baseAddress!),
                         &actual.0, &actual.1, &actual.2)
            }
            XCTAssertEqual(bits(actual.0), bits(expected.0), "dx, training \(training), cap \(String(describing: cap))")
            XCTAssertEqual(bits(actual.1), bits(expected.1), "dγ, training \(training)")
            XCTAssertEqual(bits(actual.2), bits(expected.2), "dβ, training \(training)")
        }
    }

    /// z → BatchNorm(moving statistics) → ReLU6 run folded (y = clamp(z·s + shift)) and
    /// differentiated from y alone, against the float64 derivative of the same weights.
    func testFoldedBackwardMatchesFloat64WithinItsErrorModel() throws {
        var random = TestRandom(seed: 5)
        let (z, gamma, beta, mean, variance) = inputs(&random)
        let epsilon: Float = 1e-3
        XCTAssertTrue(FoldedBatchNorm.canFold(gamma: gamma, beta: beta, mean: mean, variance: variance, epsilon: epsilon))
        let (scale, shift) = BatchNormFolding.scaleAndShift(gamma: gamma, beta: beta, mean: mean, variance: variance, epsilon: epsilon)
        let relu = FusedReLU(cap: 6)
        let y = z.indices.map { relu.apply(z[$0] * scale[$0 % channels] + shift[$0 % channels]) }
        let dy = z.indices.map { _ in random.uniform(1) }
        var dz = [Float](repeating: .nan, count: z.count)
        var dGamma = [Float](repeating: .nan, count: channels), dBeta = dGamma
        FoldedBatchNorm.backward(outputGradient: dy, output: y, rows: rows, channels: channels, gamma: gamma, beta: beta, scale: scale,
                                 relu: relu, inputGradient: &dz, gammaGradient: &dGamma, betaGradient: &dBeta)
        let u = Double(Float.ulpOfOne) / 2
        var checkedMask = 0
        for c in 0..<channels {
            let inverse = 1 / (Double(variance[c]) + Double(epsilon)).squareRoot()
            let s = Double(gamma[c]) * inverse
            var exactGamma = 0.0, exactBeta = 0.0, magnitude = 0.0
            for r in 0..<rows {
                let i = r * channels + c
                let xhat = (Double(z[i]) - Double(mean[c])) * inverse
                let pre = Double(gamma[c]) * xhat + Double(beta[c])
                // Within a few ulps of a kink the float32 mask may differ from the exact one; those entries are not compared.
                let nearKink = abs(pre) < 1e-4 || abs(pre - 6) < 1e-4
                let m = pre > 0 && pre < 6 ? 1.0 : 0.0
                if !nearKink {
                    checkedMask += 1
                    // dz = dy·mask·s, two roundings (s, then the product).
                    XCTAssertEqual(Double(dz[i]), Double(dy[i]) * m * s, accuracy: 3 * u * abs(Double(dy[i]) * s), "dz[\(r), \(c)]")
                }
                exactGamma += Double(dy[i]) * m * xhat
                exactBeta += Double(dy[i]) * m
                magnitude += abs(Double(dy[i])) * m * (1 + abs(xhat))
            }
            // Per element, x̂ recovered from y carries (ρ + 4)·u·(1 + |x̂|) (FoldedBatchNorm.largestRecoveryAmplification);
            // the float64 sums add nothing at this size.
            let rho = 2 * abs(Double(mean[c])) * inverse + 4 * abs(Double(beta[c])) / abs(Double(gamma[c]))
            XCTAssertEqual(Double(dGamma[c]), exactGamma, accuracy: (rho + 4) * u * magnitude + u * abs(exactGamma), "dγ[\(c)]")
            XCTAssertEqual(Double(dBeta[c]), exactBeta, accuracy: u * abs(exactBeta) + 1e-12, "dβ[\(c)]")
        }
        XCTAssertGreaterThan(checkedMask, rows * channels / 2)
    }

    func testFoldingIsRefusedWhereXHatCannotBeRecovered() {
        let mean: [Float] = [0.5, -0.2], variance: [Float] = [1, 2]
        XCTAssertTrue(FoldedBatchNorm.canFold(gamma: [1, 0.5], beta: [0.1, 3], mean: mean, variance: variance, epsilon: 1e-3))
        XCTAssertFalse(FoldedBatchNorm.canFold(gamma: [1, 0], beta: [0.1, 3], mean: mean, variance: variance, epsilon: 1e-3), "γ = 0")
        XCTAssertFalse(FoldedBatchNorm.canFold(gamma: [1, 0.01], beta: [0.1, 3], mean: mean, variance: variance, epsilon: 1e-3),
                       "|β|/|γ| = 300: ρ above 2⁸")
        XCTAssertTrue(FoldedBatchNorm.canFold(gamma: nil, beta: nil, mean: mean, variance: variance, epsilon: 1e-3), "no γ, no β")
    }

    func testFoldedKernelScalesTheLastAxis() {
        let kernel: [Float] = [1, 2, 3, 4, 5, 6]
        var folded = [Float](repeating: .nan, count: 6)
        FoldedBatchNorm.foldKernel(kernel, count: 6, scale: [2, 0.5, -1], output: &folded)
        XCTAssertEqual(folded, BatchNormFolding.foldedKernel(kernel, scale: [2, 0.5, -1]))
        XCTAssertEqual(folded, [2, 1, -3, 8, 2.5, -6])
    }

    /// The folded backward runs eight channels at a time with the scalar loop's operations per
    /// element: against a scalar evaluation of the same formulas (13 channels: a vector block
    /// and a tail), dz and the Double sums keep every bit, with and without the ReLU6 mask.
    func testVectorisedFoldedBackwardGivesTheBitsOfTheScalarFormulas() {
        var random = TestRandom(seed: 5)
        let (y, gamma, beta, _, _) = inputs(&random)
        let dy = (0..<(rows * channels)).map { _ in random.uniform(1) }
        let scale = (0..<channels).map { _ in random.uniform(1) + 1.5 }
        for relu in [FusedReLU(cap: 6), nil] {
            var dz = [Float](repeating: 0, count: rows * channels), sums = [Double](repeating: 0, count: 2 * channels)
            gamma.withUnsafeBufferPointer { g in
                beta.withUnsafeBufferPointer { b in
                    scale.withUnsafeBufferPointer { s in
                        FoldedBatchNormBackward.with(channels: channels, gamma: g.baseAddress, beta: b.baseAddress,
                                                     scale: s.baseAddress!, relu: relu) { pass in
                            pass.accumulate(outputGradient: dy, output: y, rows: rows, inputGradient: &dz, sums: &sums)
                        }
                    }
                }
            }
            var expectedDz = [Float](repeating: 0, count: rows * channels), expectedSums = [Double](repeating: 0, count: 2 * channels)
            for r in 0..<rows {
                for c in 0..<channels {
                    let i = r * channels + c
                    let masked = relu.map { $0.gradient(dy[i], output: y[i]) } ?? dy[i]
                    expectedSums[channels + c] += Double(masked)
                    expectedSums[c] += Double(masked) * (Double(y[i] - beta[c]) * (1 / Double(gamma[c])))
                    expectedDz[i] = masked * scale[c]
                }
            }
            XCTAssertEqual(bits(dz), bits(expectedDz), "dz, relu \(relu != nil)")
            XCTAssertEqual(sums.map(\.bitPattern), expectedSums.map(\.bitPattern), "sums, relu \(relu != nil)")
        }
    }
    /// Large enough to split (16,000 rows × 13 channels = 3 workers' worth at 65,536 elements
    /// each), the folded backward sums each worker's share of the rows in order and adds the
    /// shares in worker order: at 1, 2 and 3 threads dz keeps the scalar formula's bits, and
    /// dγ and dβ are the scalar formula's Double sums over those shares, rounded once.
    func testSplitFoldedBackwardSumsEachWorkersRowsThenAddsThemInOrder() {
        var random = TestRandom(seed: 9)
        let rows = 16_000, channels = 13
        let y = (0..<(rows * channels)).map { _ in random.uniform(9) + 1 }
        let dy = (0..<(rows * channels)).map { _ in random.uniform(1) }
        let gamma = (0..<channels).map { _ in random.uniform(1.5) + (random.next() % 2 == 0 ? 2 : -2) }
        let beta = (0..<channels).map { _ in random.uniform(2) + 2 }
        let scale = (0..<channels).map { _ in random.uniform(1) + 1.5 }
        let relu = FusedReLU(cap: 6)
        for threads in [1, 2, 3] {
            var dz = [Float](repeating: .nan, count: rows * channels)
            var dGamma = [Float](repeating: .nan, count: channels), dBeta = dGamma
            withThreads(threads) {
                FoldedBatchNorm.backward(outputGradient: dy, output: y, rows: rows, channels: channels, gamma: gamma, beta: beta,
                                         scale: scale, relu: relu, inputGradient: &dz, gammaGradient: &dGamma, betaGradient: &dBeta)
            }
            let workers = min(threads, rows * channels / 65_536)
            var expectedDz = [Float](repeating: 0, count: rows * channels)
            var expectedGamma = [Double](repeating: 0, count: channels), expectedBeta = expectedGamma
            for worker in 0..<workers {
                var shareGamma = [Double](repeating: 0, count: channels), shareBeta = shareGamma
                for r in rows * worker / workers ..< rows * (worker + 1) / workers {
                    for c in 0..<channels {
                        let i = r * channels + c
                        let masked = relu.gradient(dy[i], output: y[i])
                        shareBeta[c] += Double(masked)
                        shareGamma[c] += Double(masked) * (Double(y[i] - beta[c]) * (1 / Double(gamma[c])))
                        expectedDz[i] = masked * scale[c]
                    }
                }
                for c in 0..<channels {
                    expectedGamma[c] += shareGamma[c]
                    expectedBeta[c] += shareBeta[c]
                }
            }
            XCTAssertEqual(bits(dz), bits(expectedDz), "dz at \(threads) threads")
            XCTAssertEqual(bits(dGamma), bits(expectedGamma.map { Float($0) }), "dγ at \(threads) threads (\(workers) workers)")
            XCTAssertEqual(bits(dBeta), bits(expectedBeta.map { Float($0) }), "dβ at \(threads) threads (\(workers) workers)")
        }
    }
}
