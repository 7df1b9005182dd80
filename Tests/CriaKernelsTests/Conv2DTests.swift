import CriaCore
import CriaKernels
import CriaTestSupport
import XCTest

final class Conv2DTests: XCTestCase {
    /// Conv1-like shapes (3 → 32, stride 2, TF "same"), plus output channel
    /// counts that exercise the 32-wide, 8-wide and scalar tails, 1×1 and 5×5
    /// kernels, and 1×1 images.
    static let cases: [ConvCase] = [
        .same("Conv1-like 8x8", batch: 3, height: 8, width: 8, channels: 3, outputChannels: 32, kernel: 3, stride: 2),
        .same("Conv1-like 7x9", batch: 1, height: 7, width: 9, channels: 3, outputChannels: 32, kernel: 3, stride: 2),
        .padded("7x9 valid s2", batch: 1, height: 7, width: 9, channels: 3, outputChannels: 16, kernel: 3, stride: 2,
                top: 0, bottom: 0, left: 0, right: 0),
        .same("1x1 image", batch: 3, height: 1, width: 1, channels: 3, outputChannels: 32, kernel: 3, stride: 2),
        .same("cout 13", batch: 1, height: 6, width: 5, channels: 4, outputChannels: 13, kernel: 3, stride: 1),
        .same("cout 43", batch: 3, height: 5, width: 7, channels: 5, outputChannels: 43, kernel: 3, stride: 2),
        .same("cin 1 cout 1", batch: 1, height: 5, width: 4, channels: 1, outputChannels: 1, kernel: 3, stride: 1),
        .padded("1x1 kernel", batch: 3, height: 5, width: 6, channels: 17, outputChannels: 24, kernel: 1, stride: 1,
                top: 0, bottom: 0, left: 0, right: 0),
        .padded("1x1 kernel s2", batch: 1, height: 5, width: 6, channels: 7, outputChannels: 9, kernel: 1, stride: 2,
                top: 0, bottom: 0, left: 0, right: 0),
        .same("5x5 kernel", batch: 1, height: 7, width: 9, channels: 3, outputChannels: 32, kernel: 5, stride: 2),
        .padded("pad(0,1) s2", batch: 1, height: 6, width: 8, channels: 3, outputChannels: 8, kernel: 3, stride: 2,
                top: 0, bottom: 1, left: 0, right: 1),
        // Wide enough for the three-pixel interior blocks, with 0, 1 and 2 pixels left over.
        .same("Conv1-like 17x23", batch: 2, height: 17, width: 23, channels: 3, outputChannels: 32, kernel: 3, stride: 2),
        .same("5x21 s1 cout 43", batch: 1, height: 5, width: 21, channels: 3, outputChannels: 43, kernel: 3, stride: 1),
        .same("4x19 s1 cout 7", batch: 1, height: 4, width: 19, channels: 2, outputChannels: 7, kernel: 3, stride: 1),
        .same("cin 1 cout 17 s2", batch: 1, height: 9, width: 17, channels: 1, outputChannels: 17, kernel: 3, stride: 2),
        .padded("pad(2,1) s2", batch: 1, height: 7, width: 20, channels: 3, outputChannels: 40, kernel: 3, stride: 2,
                top: 2, bottom: 1, left: 2, right: 1),
    ]

    func testForwardMatchesReference() {
        var random = TestRandom(seed: 11)
        for k in Self.cases {
            let input = random.tensor(k.inputShape, scale: 3)
            let kernel = random.tensor(k.convKernelShape)
            let bias = random.tensor([k.outputChannels])
            for (clamp, b) in [(Clamp.none, nil), (Clamp.relu6, bias)] as [(Clamp, Tensor?)] {
                let expected = Reference.convForward(k, input: input, kernel: kernel, bias: b, clamp: clamp)
                let direct = Fast.convForward(k, input: input, kernel: kernel, bias: b, clamp: clamp)
                assertMatches(direct, expected, relative: 1e-5, "conv2d forward \(k) clamp \(clamp.upper)")
                let im2col = Fast.convForward(k, input: input, kernel: kernel, bias: b, clamp: clamp, im2col: true)
                assertMatches(im2col, expected, relative: 1e-5, "conv2d im2col forward \(k) clamp \(clamp.upper)")
            }
        }
    }

    /// The inference executor's band entry point, on arbitrary row ranges of one image, gives the bits of `forward`.
    func testBandRowsMatchForward() {
        var random = TestRandom(seed: 15)
        for k in Self.cases {
            let input = random.tensor(k.inputShape, scale: 3)
            let kernel = random.tensor(k.convKernelShape)
            let bias = random.tensor([k.outputChannels])
            let expected = Fast.convForward(k, input: input, kernel: kernel, bias: bias, clamp: .relu6)
            let imageScalars = k.height * k.width * k.inputChannels
            let rowScalars = k.outputWidth * k.outputChannels
            let splits = Set([0, k.outputHeight / 3, k.outputHeight / 2, k.outputHeight]).sorted()
            var actual = [Float](repeating: .nan, count: expected.count)
            for n in 0..<k.batch {
                for (low, high) in zip(splits, splits.dropFirst()) {
                    input.scalars.withUnsafeBufferPointer { x in
                        kernel.scalars.withUnsafeBufferPointer { w in
                            bias.scalars.withUnsafeBufferPointer { b in
                                actual.withUnsafeMutableBufferPointer { o in
                                    BandKernels.convolutionRows(
                                        input: x.baseAddress! + n * imageScalars, shape: k.shape.with(batch: 1),
                                        kernel: w.baseAddress!, rows: low..<high, bias: b.baseAddress!, clamp: .relu6,
                                        output: o.baseAddress! + (n * k.outputHeight + low) * rowScalars)
                                }
                            }
                        }
                    }
                }
            }
            XCTAssertEqual(actual.map(\.bitPattern), bitPatterns(expected), "band rows \(k)")
        }
    }

    func testBackwardMatchesReference() {
        var random = TestRandom(seed: 12)
        for k in Self.cases {
            let input = random.tensor(k.inputShape, scale: 3)
            let kernel = random.tensor(k.convKernelShape)
            let gradient = random.tensor(k.outputShape)
            let (eIn, eK, eB) = Reference.convBackward(k, input: input, kernel: kernel, outputGradient: gradient)
            let (aIn, aK, aB) = Fast.convBackward(k, input: input, kernel: kernel, outputGradient: gradient)
            assertMatches(aIn, eIn, relative: 1e-5, "conv2d dInput \(k)")
            assertMatches(aK, eK, relative: 1e-5, "conv2d dKernel \(k)")
            assertMatches(aB, eB, relative: 1e-5, "conv2d dBias \(k)")
        }
    }

    func testGradientsMatchFiniteDifferences() {
        let shapes: [ConvCase] = [
            .same("fd conv s2", batch: 2, height: 5, width: 4, channels: 3, outputChannels: 10, kernel: 3, stride: 2),
            .same("fd conv s1", batch: 1, height: 3, width: 4, channels: 2, outputChannels: 9, kernel: 3, stride: 1),
        ]
        var random = TestRandom(seed: 13)
        for k in shapes {
            let input = random.tensor(k.inputShape)
            let kernel = random.tensor(k.convKernelShape)
            let bias = random.tensor([k.outputChannels])
            let weights = random.tensor(k.outputShape)
            func loss(_ x: Tensor, _ w: Tensor, _ b: Tensor) -> Double {
                let y = Fast.convForward(k, input: x, kernel: w, bias: b, clamp: .none)
                return zip(y.scalars, weights.scalars).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
            }
            let (dIn, dK, dB) = Fast.convBackward(k, input: input, kernel: kernel, outputGradient: weights)
            let h: Float = 1e-2
            func check(_ analytic: Tensor, _ name: String, perturb: (Int, Float) -> Double) {
                var numeric = analytic
                for i in 0..<analytic.count {
                    numeric.scalars[i] = Float((perturb(i, h) - perturb(i, -h)) / (2 * Double(h)))
                }
                assertMatches(analytic, numeric, relative: 2e-3, "finite differences \(name) \(k)")
            }
            check(dIn, "dInput") { i, d in var x = input; x.scalars[i] += d; return loss(x, kernel, bias) }
            check(dK, "dKernel") { i, d in var w = kernel; w.scalars[i] += d; return loss(input, w, bias) }
            check(dB, "dBias") { i, d in var b = bias; b.scalars[i] += d; return loss(input, kernel, b) }
        }
    }

    func testBitIdenticalForAnyThreadCount() {
        let k = ConvCase.same("det conv", batch: 3, height: 17, width: 15, channels: 3, outputChannels: 43,
                              kernel: 3, stride: 2)
        var random = TestRandom(seed: 14)
        let input = random.tensor(k.inputShape, scale: 3)
        let kernel = random.tensor(k.convKernelShape)
        let bias = random.tensor([k.outputChannels])
        let gradient = random.tensor(k.outputShape)
        func run() -> [[UInt32]] {
            let y = Fast.convForward(k, input: input, kernel: kernel, bias: bias, clamp: .relu6)
            let (a, b, c) = Fast.convBackward(k, input: input, kernel: kernel, outputGradient: gradient)
            return [y, a, b, c].map(bitPatterns)
        }
        let one = withThreads(1, run)
        for n in [2, 3] {
            let many = withThreads(n, run)
            for (index, name) in ["forward", "dInput", "dKernel", "dBias"].enumerated() {
                XCTAssertEqual(one[index], many[index], "\(name) differs between 1 and \(n) threads")
            }
        }
    }
}

/// The first convolution's weight gradient as im2col + sgemm (`Conv2D.backwardKernelGEMM`).
final class Conv2DKernelGradientGEMMTests: XCTestCase {
    private func gemm(_ k: ConvCase, input: Tensor, gradient: Tensor) -> (Tensor, Tensor) {
        var dK = Tensor(repeating: .nan, shape: k.convKernelShape)
        var dB = Tensor(repeating: .nan, shape: [k.outputChannels])
        Conv2D.backwardKernelGEMM(outputGradient: gradient.scalars, input: input.scalars, shape: k.shape,
                                  kernelGradient: &dK.scalars, biasGradient: &dB.scalars)
        return (dK, dB)
    }

    /// Each dW entry is a float32 sum over the batch's output pixels: within N·u·Σ|dy·x| of the
    /// float64 sum (N = batch × output pixels, u = 2⁻²⁴), whatever order sgemm adds in.
    func testMatchesFloat64WithinItsSumBound() {
        var random = TestRandom(seed: 31)
        // The kernel-test shapes, and one whose 20,000 output pixels span five im2col chunks.
        let large = ConvCase.same("five chunks", batch: 2, height: 100, width: 100, channels: 3, outputChannels: 8, kernel: 3, stride: 1)
        for k in Conv2DTests.cases + [large] {
            let input = random.tensor(k.inputShape, scale: 3)
            let kernel = random.tensor(k.convKernelShape)
            let gradient = random.tensor(k.outputShape)
            let (_, exact, exactBias) = Reference.convBackward(k, input: input, kernel: kernel, outputGradient: gradient)
            let absolute = { (t: Tensor) in Tensor(shape: t.shape, scalars: t.scalars.map(abs)) }
            let (_, magnitude, biasMagnitude) = Reference.convBackward(k, input: absolute(input), kernel: kernel, outputGradient: absolute(gradient))
            // At 2 and 3 threads the larger cases split their pixels between workers
            // (partial sums added in worker order), which the same bound covers.
            for threads in [1, 2, 3] {
                let (dK, dB) = withThreads(threads) { gemm(k, input: input, gradient: gradient) }
                let n = Double(k.batch * k.outputHeight * k.outputWidth), u = Double(Float.ulpOfOne) / 2
                for i in 0..<dK.count {
                    // The float64 reference is rounded to float32 once more: u·|exact|.
                    let bound = n * u * Double(magnitude.scalars[i]) + u * abs(Double(exact.scalars[i]))
                    XCTAssertEqual(Double(dK.scalars[i]), Double(exact.scalars[i]), accuracy: bound, "dKernel[\(i)] \(k), \(threads) threads")
                }
                for c in 0..<dB.count {
                    XCTAssertEqual(Double(dB.scalars[c]), Double(exactBias.scalars[c]), accuracy: 2 * u * Double(biasMagnitude.scalars[c]),
                                   "dBias[\(c)] \(k), \(threads) threads")
                }
            }
        }
    }

    func testSameBitsForTheSameThreadCount() {
        let k = ConvCase.same("det gemm", batch: 2, height: 70, width: 66, channels: 3, outputChannels: 32, kernel: 3, stride: 2)
        var random = TestRandom(seed: 32)
        let input = random.tensor(k.inputShape, scale: 3), gradient = random.tensor(k.outputShape)
        for threads in [1, 2, 3] {
            let first = withThreads(threads) { gemm(k, input: input, gradient: gradient) }
            let second = withThreads(threads) { gemm(k, input: input, gradient: gradient) }
            XCTAssertEqual(bitPatterns(first.0), bitPatterns(second.0), "\(threads) threads")
            XCTAssertEqual(bitPatterns(first.1), bitPatterns(second.1), "\(threads) threads")
        }
    }
}
