import CriaCore
import CriaKernels
import XCTest

/// The training GEMMs (`Pointwise`) run as one single-threaded sgemm per thread over a
/// slice of their output (`Threads.splitGEMM`) instead of one OpenBLAS threaded call.
/// Whatever the split, every element must stay within sgemm's error bound of a float64
/// reference, and a thread count must give the same bits every time. (Equality across
/// thread counts depends on OpenBLAS's micro-kernels, which differ by CPU, so it is not
/// asserted; OpenBLAS's own threaded calls never had it either.)
final class PointwiseSplitTests: XCTestCase {
    private struct Shape { var rows, inputChannels, outputChannels: Int }
    /// Network shapes (80×80 expand at batch 2, 10×10 project, 5×5 head) and ragged ones;
    /// the first block's 32 × 16 project, too small to split by its output, splits its
    /// rows (`backwardKernelByPixels`) at 2 and 3 threads from 13,000 rows.
    private let shapes = [Shape(rows: 12_800, inputChannels: 16, outputChannels: 96),
                          Shape(rows: 13_001, inputChannels: 32, outputChannels: 16),
                          Shape(rows: 200, inputChannels: 576, outputChannels: 96),
                          Shape(rows: 50, inputChannels: 960, outputChannels: 160),
                          Shape(rows: 131, inputChannels: 17, outputChannels: 45),
                          Shape(rows: 129, inputChannels: 40, outputChannels: 8)]

    private func random(_ count: Int, seed: UInt64) -> [Float] {
        var generator = SplitMix64(seed: seed)
        return (0..<count).map { _ in generator.nextUnitFloat() * 2 - 1 }
    }

    private struct Results: Equatable {
        var output: [UInt32], inputGradient: [UInt32], kernelGradient: [UInt32], accumulated: [UInt32]
    }

    private func run(_ s: Shape, threads: Int) -> (Results, output: [Float], inputGradient: [Float], kernelGradient: [Float],
                                                   accumulated: [Float]) {
        let x = random(s.rows * s.inputChannels, seed: 1), w = random(s.inputChannels * s.outputChannels, seed: 2)
        let bias = random(s.outputChannels, seed: 3), dy = random(s.rows * s.outputChannels, seed: 4)
        var y = [Float](repeating: .nan, count: s.rows * s.outputChannels)
        var dx = [Float](repeating: .nan, count: s.rows * s.inputChannels)
        var dw = [Float](repeating: .nan, count: s.inputChannels * s.outputChannels)
        var accumulated = random(s.inputChannels * s.outputChannels, seed: 5)
        withThreads(threads) {
            Pointwise.forward(input: x, rows: s.rows, inputChannels: s.inputChannels, kernel: w, outputChannels: s.outputChannels,
                              bias: bias, clamp: Clamp(lower: 0, upper: 6), output: &y)
            Pointwise.backwardInput(outputGradient: dy, rows: s.rows, inputChannels: s.inputChannels, kernel: w,
                                    outputChannels: s.outputChannels, inputGradient: &dx)
            Pointwise.backwardKernel(outputGradient: dy, input: x, rows: s.rows, inputChannels: s.inputChannels,
                                     outputChannels: s.outputChannels, accumulate: false, kernelGradient: &dw)
            Pointwise.backwardKernel(outputGradient: dy, input: x, rows: s.rows, inputChannels: s.inputChannels,
                                     outputChannels: s.outputChannels, accumulate: true, kernelGradient: &accumulated)
        }
        let bits = { (values: [Float]) in values.map(\.bitPattern) }
        return (Results(output: bits(y), inputGradient: bits(dx), kernelGradient: bits(dw), accumulated: bits(accumulated)), y, dx, dw,
                accumulated)
    }

    func testEachThreadCountGivesTheSameBitsEveryTime() {
        for s in shapes {
            for threads in [1, 2, 3] {
                XCTAssertEqual(run(s, threads: threads).0, run(s, threads: threads).0, "\(s) at \(threads) threads")
            }
        }
    }

    /// Σ terms(k) over 0..<count in float64, with Σ|terms(k)| for the error bound.
    private func sumAndMagnitude(_ count: Int, _ term: (Int) -> Double) -> (sum: Double, magnitude: Double) {
        var sum = 0.0, magnitude = 0.0
        for k in 0..<count {
            let value = term(k)
            sum += value
            magnitude += abs(value)
        }
        return (sum, magnitude)
    }

    /// Against float64 sums: sgemm's error is at most about K·ε·Σ|aᵢbᵢ| per element.
    func testSplitMatchesFloat64Reference() {
        for s in shapes {
            for threads in [1, 2, 3] {
                let (_, y, dx, dw, accumulated) = run(s, threads: threads)
                let initial = random(s.inputChannels * s.outputChannels, seed: 5)
                let x = random(s.rows * s.inputChannels, seed: 1), w = random(s.inputChannels * s.outputChannels, seed: 2)
                let bias = random(s.outputChannels, seed: 3), dy = random(s.rows * s.outputChannels, seed: 4)
                let epsilon = Double(Float.ulpOfOne)
                for r in stride(from: 0, to: s.rows, by: max(1, s.rows / 37)) {
                    for j in 0..<s.outputChannels {
                        let (products, productMagnitude) = sumAndMagnitude(s.inputChannels) { i in
                            Double(x[r * s.inputChannels + i]) * Double(w[i * s.outputChannels + j])
                        }
                        let sum = Double(bias[j]) + products, magnitude = abs(Double(bias[j])) + productMagnitude
                        let expected = min(max(sum, 0), 6)
                        XCTAssertLessThanOrEqual(abs(Double(y[r * s.outputChannels + j]) - expected),
                                                 Double(s.inputChannels + 2) * epsilon * magnitude, "\(s) y[\(r), \(j)] at \(threads) threads")
                    }
                    for i in 0..<s.inputChannels {
                        let (sum, magnitude) = sumAndMagnitude(s.outputChannels) { j in
                            Double(dy[r * s.outputChannels + j]) * Double(w[i * s.outputChannels + j])
                        }
                        XCTAssertLessThanOrEqual(abs(Double(dx[r * s.inputChannels + i]) - sum),
                                                 Double(s.outputChannels + 1) * epsilon * magnitude, "\(s) dx[\(r), \(i)] at \(threads) threads")
                    }
                }
                for i in 0..<s.inputChannels {
                    for j in stride(from: 0, to: s.outputChannels, by: max(1, s.outputChannels / 11)) {
                        let (sum, magnitude) = sumAndMagnitude(s.rows) { r in
                            Double(x[r * s.inputChannels + i]) * Double(dy[r * s.outputChannels + j])
                        }
                        XCTAssertLessThanOrEqual(abs(Double(dw[i * s.outputChannels + j]) - sum),
                                                 Double(s.rows + 1) * epsilon * magnitude, "\(s) dW[\(i), \(j)] at \(threads) threads")
                        // Accumulated onto a starting dW: one more addition (the partials' sum, then the start).
                        let start = Double(initial[i * s.outputChannels + j])
                        XCTAssertLessThanOrEqual(abs(Double(accumulated[i * s.outputChannels + j]) - (start + sum)),
                                                 Double(s.rows + 2) * epsilon * (magnitude + abs(start)),
                                                 "\(s) accumulated dW[\(i), \(j)] at \(threads) threads")
                    }
                }
            }
        }
    }
    /// A weight gradient too small to split by its output (the first block's 32 × 16 project)
    /// splits its rows: at 2 and 3 threads it has the bits of one single-threaded sgemm per
    /// worker's share of the rows, the first accumulated onto the starting dW and the others
    /// added after it in worker order.
    func testASmallWeightGradientSumsEachWorkersRowsThenAddsThemInOrder() {
        let s = Shape(rows: 13_001, inputChannels: 32, outputChannels: 16)
        let x = random(s.rows * s.inputChannels, seed: 1), dy = random(s.rows * s.outputChannels, seed: 4)
        let initial = random(s.inputChannels * s.outputChannels, seed: 5)
        let size = s.inputChannels * s.outputChannels
        for threads in [2, 3] {
            var actual = initial
            withThreads(threads) {
                Pointwise.backwardKernel(outputGradient: dy, input: x, rows: s.rows, inputChannels: s.inputChannels,
                                         outputChannels: s.outputChannels, accumulate: true, kernelGradient: &actual)
            }
            var expected = initial
            for worker in 0..<threads {
                let share = s.rows * worker / threads ..< s.rows * (worker + 1) / threads
                var part = worker == 0 ? expected : [Float](repeating: .nan, count: size)
                withThreads(1) {
                    Pointwise.backwardKernel(outputGradient: Array(dy[(share.lowerBound * s.outputChannels)..<(share.upperBound * s.outputChannels)]),
                                             input: Array(x[(share.lowerBound * s.inputChannels)..<(share.upperBound * s.inputChannels)]),
                                             rows: share.count, inputChannels: s.inputChannels, outputChannels: s.outputChannels,
                                             accumulate: worker == 0, kernelGradient: &part)
                }
                if worker == 0 { expected = part } else { for i in 0..<size { expected[i] += part[i] } }
            }
            XCTAssertEqual(actual.map(\.bitPattern), expected.map(\.bitPattern), "\(threads) threads")
        }
    }
}
