import CDepthwise
import CriaCore
import CriaKernels
import CriaTestSupport
import XCTest

final class DepthwiseTests: XCTestCase {
    /// Awkward shapes: 1×1 images, odd sizes, stride 2, both padding
    /// conventions, channel counts around the SIMD width, 5×5 kernels (general
    /// path), pads larger than the kernel (negative pads in the flipped
    /// backward) and MobileNetV2-like widths.
    static let cases: [ConvCase] = [
        .same("1x1 same s1", batch: 1, height: 1, width: 1, channels: 7, kernel: 3, stride: 1),
        .same("1x1 same s2", batch: 3, height: 1, width: 1, channels: 17, kernel: 3, stride: 2),
        .padded("1x1 valid-ish", batch: 1, height: 1, width: 1, channels: 8, kernel: 1, stride: 1,
                top: 0, bottom: 0, left: 0, right: 0),
        .padded("7x9 valid s2", batch: 1, height: 7, width: 9, channels: 17, kernel: 3, stride: 2,
                top: 0, bottom: 0, left: 0, right: 0),
        .padded("7x9 pad(0,1) s2", batch: 3, height: 7, width: 9, channels: 7, kernel: 3, stride: 2,
                top: 0, bottom: 1, left: 0, right: 1),
        .same("7x9 same s2", batch: 3, height: 7, width: 9, channels: 17, kernel: 3, stride: 2),
        .same("8x8 same s2 (even, pads 0/1)", batch: 1, height: 8, width: 8, channels: 16, kernel: 3, stride: 2),
        .padded("8x10 ZeroPadding(0,1) s2", batch: 3, height: 8, width: 10, channels: 24, kernel: 3, stride: 2,
                top: 0, bottom: 1, left: 0, right: 1),
        .same("7x9 same s1 C1", batch: 3, height: 7, width: 9, channels: 1, kernel: 3, stride: 1),
        .same("6x11 same s1", batch: 1, height: 6, width: 11, channels: 17, kernel: 3, stride: 1),
        .same("5x6 same s1 C576", batch: 1, height: 5, width: 6, channels: 576, kernel: 3, stride: 1),
        .padded("5x6 pad(0,1) s2 C576", batch: 3, height: 5, width: 6, channels: 576, kernel: 3, stride: 2,
                top: 0, bottom: 1, left: 0, right: 1),
        .same("7x9 same s1 k5", batch: 3, height: 7, width: 9, channels: 17, kernel: 5, stride: 1),
        .same("7x9 same s2 k5", batch: 1, height: 7, width: 9, channels: 7, kernel: 5, stride: 2),
        .padded("3x4 pad 3 s1 (pad > kernel)", batch: 1, height: 3, width: 4, channels: 9, kernel: 3, stride: 1,
                top: 3, bottom: 2, left: 3, right: 1),
        .padded("9x9 valid s3", batch: 1, height: 9, width: 9, channels: 12, kernel: 3, stride: 3,
                top: 0, bottom: 0, left: 1, right: 1),
        .padded("10x10 pad(1,1) s2 k2", batch: 1, height: 10, width: 10, channels: 8, kernel: 2, stride: 2,
                top: 1, bottom: 1, left: 1, right: 1),
    ]

    func testForwardMatchesReference() {
        var random = TestRandom(seed: 1)
        for k in Self.cases {
            let input = random.tensor(k.inputShape, scale: 3)
            let kernel = random.tensor(k.depthwiseKernelShape)
            let bias = random.tensor([k.inputChannels])
            for (clamp, b) in [(Clamp.none, nil), (Clamp.relu6, bias), (Clamp.none, bias)] as [(Clamp, Tensor?)] {
                let expected = Reference.depthwiseForward(k, input: input, kernel: kernel, bias: b, clamp: clamp)
                let actual = Fast.depthwiseForward(k, input: input, kernel: kernel, bias: b, clamp: clamp)
                assertMatches(actual, expected, relative: 1e-5, "depthwise forward \(k) clamp \(clamp.upper)")
            }
        }
    }

    /// The band kernel gives the bits of `forward` (which runs it on whole images), for
    /// row ranges of one image read from a band that holds only the rows they need.
    func testBandRowsMatchForward() {
        // Wide rows, so that the four-pixel interior blocks run with 0 to 3 pixels left over.
        let wide: [ConvCase] = [
            .same("3x13 same s1 C17", batch: 1, height: 3, width: 13, channels: 17, kernel: 3, stride: 1),
            .same("4x14 same s1 C576", batch: 2, height: 4, width: 14, channels: 576, kernel: 3, stride: 1),
            .same("2x10 same s1 C1", batch: 1, height: 2, width: 10, channels: 1, kernel: 3, stride: 1),
            .padded("5x19 pad(0,1) s2 C24", batch: 1, height: 5, width: 19, channels: 24, kernel: 3, stride: 2,
                    top: 0, bottom: 1, left: 0, right: 1),
            .same("6x23 same s2 C7", batch: 1, height: 6, width: 23, channels: 7, kernel: 3, stride: 2),
            .same("5x18 same s1 k5 C9", batch: 1, height: 5, width: 18, channels: 9, kernel: 5, stride: 1),
            // Narrower than the kernel: no column is interior, though some rows are.
            .padded("3x2 pad(0,1) s2 C16", batch: 1, height: 3, width: 2, channels: 16, kernel: 3, stride: 2,
                    top: 0, bottom: 1, left: 0, right: 1),
            .padded("4x2 pad(1,1) s1 C8", batch: 1, height: 4, width: 2, channels: 8, kernel: 3, stride: 1,
                    top: 1, bottom: 1, left: 0, right: 2),
        ]
        var random = TestRandom(seed: 8)
        for k in Self.cases + wide {
            let input = random.tensor(k.inputShape, scale: 3)
            let kernel = random.tensor(k.depthwiseKernelShape)
            let bias = random.tensor([k.inputChannels])
            for (clamp, b) in [(Clamp.none, nil), (Clamp.relu6, bias)] as [(Clamp, Tensor?)] {
                let expected = Fast.depthwiseForward(k, input: input, kernel: kernel, bias: b, clamp: clamp)
                let actual = bandDepthwise(k, input: input, kernel: kernel, bias: b, clamp: clamp)
                XCTAssertEqual(actual.map(\.bitPattern), bitPatterns(expected), "band rows \(k) clamp \(clamp.upper)")
            }
        }
    }

    /// Threads that split a layer by channels call the band kernel on slices
    /// (`channelStride`); the slices together must give the whole call's bits,
    /// including a scalar tail in the last slice (C = 17, 23).
    func testChannelSlicesGiveTheWholeCallsBits() {
        var random = TestRandom(seed: 11)
        for k in Self.cases + [ConvCase.same("C23 s1", batch: 1, height: 6, width: 9, channels: 23, kernel: 3, stride: 1)] {
            let C = k.inputChannels
            let input = random.tensor(k.inputShape, scale: 3)
            let kernel = random.tensor(k.depthwiseKernelShape)
            let bias = random.tensor([C])
            let whole = bandDepthwise(k, input: input, kernel: kernel, bias: bias, clamp: .relu6)
            for boundaries in [[0, C], [0, (C / 2) & ~7, C], [0, 8 * (C / 24), 8 * (C / 12), C]] {
                let sliced = bandDepthwise(k, input: input, kernel: kernel, bias: bias, clamp: .relu6,
                                           channelSlices: boundaries)
                XCTAssertEqual(sliced.map(\.bitPattern), whole.map(\.bitPattern), "slices \(boundaries) of \(k)")
            }
        }
    }

    /// A block's depthwise step clamps the expanded values as it reads them
    /// (`inputClamp`, the C kernel on four-pixel runs) instead of a pass
    /// before it: the same bits either way, NaN included.
    func testClampOnReadGivesTheBitsOfAClampPass() {
        var random = TestRandom(seed: 12)
        let wide = [ConvCase.same("6x13 s1 C17", batch: 1, height: 6, width: 13, channels: 17, kernel: 3, stride: 1),
                    ConvCase.same("9x20 s2 C24", batch: 2, height: 9, width: 20, channels: 24, kernel: 3, stride: 2)]
        for k in Self.cases + wide {
            var input = random.tensor(k.inputShape, scale: 10)
            if input.scalars.count > 40 { input.scalars[37] = .nan }
            let kernel = random.tensor(k.depthwiseKernelShape)
            let bias = random.tensor([k.inputChannels])
            // The clamp pass this replaces: BandKernels.epilogue.
            var clamped = input.scalars
            clamped.withUnsafeMutableBufferPointer {
                BandKernels.epilogue($0.baseAddress!, rows: $0.count / k.inputChannels, channels: k.inputChannels,
                                     bias: nil, clamp: .relu6, residual: nil)
            }
            let expected = bandDepthwise(k, input: Tensor(shape: input.shape, scalars: clamped), kernel: kernel,
                                         bias: bias, clamp: .relu6)
            let actual = bandDepthwise(k, input: input, kernel: kernel, bias: bias, clamp: .relu6, inputClamp: .relu6)
            XCTAssertEqual(actual.map(\.bitPattern), expected.map(\.bitPattern), "clamp on read \(k)")
        }
    }

    /// The band kernel over bands of rows of each image and, when
    /// `channelSlices` holds boundaries, over those slices of channels.
    private func bandDepthwise(_ k: ConvCase, input: Tensor, kernel: Tensor, bias: Tensor?, clamp: Clamp,
                               inputClamp: Clamp = .none, channelSlices: [Int]? = nil) -> [Float] {
        let C = k.inputChannels, rowScalars = k.width * C, outRow = k.outputWidth * C
        let boundaries = channelSlices ?? [0, C]
        var output = [Float](repeating: .nan, count: k.batch * k.outputHeight * outRow)
        let splits = Set([0, k.outputHeight / 3, k.outputHeight / 2, k.outputHeight]).sorted()
        for n in 0..<k.batch {
            for (first, last) in zip(splits, splits.dropFirst()) {
                // Input rows the output rows first..<last read, clipped to the image.
                let low = max(0, min(k.height, first * k.strideH - k.padTop))
                let high = max(low, min(k.height, (last - 1) * k.strideH - k.padTop + k.kernelHeight))
                let start = (n * k.height + low) * rowScalars
                let band = Array(input.scalars[start ..< start + (high - low) * rowScalars]) + [0]
                band.withUnsafeBufferPointer { x in
                    kernel.scalars.withUnsafeBufferPointer { w in
                        Fast.withOptionalPointer(bias) { bp in
                            output.withUnsafeMutableBufferPointer { o in
                                for (lower, upper) in zip(boundaries, boundaries.dropFirst()) where upper > lower {
                                    BandKernels.depthwiseRows(
                                        band: x.baseAddress! + lower, bandStart: low, bandRows: high - low,
                                        shape: k.sliceShape(channels: upper - lower), channelStride: C,
                                        kernel: w.baseAddress! + lower, rows: first..<last,
                                        bias: bp.map { $0 + lower }, clamp: clamp, inputClamp: inputClamp,
                                        output: o.baseAddress! + (n * k.outputHeight + first) * outRow + lower)
                                }
                            }
                        }
                    }
                }
            }
        }
        return output
    }

    func testRelu6ClampsBothEnds() {
        let k = ConvCase.same("clamp", batch: 1, height: 4, width: 4, channels: 8, kernel: 3, stride: 1)
        var random = TestRandom(seed: 2)
        let input = random.tensor(k.inputShape, scale: 10)
        let kernel = random.tensor(k.depthwiseKernelShape, scale: 2)
        let out = Fast.depthwiseForward(k, input: input, kernel: kernel, bias: nil, clamp: .relu6)
        XCTAssertTrue(out.scalars.contains(0) && out.scalars.contains(6), "test data should hit both clamp ends")
        XCTAssertTrue(out.scalars.allSatisfy { $0 >= 0 && $0 <= 6 })
    }

    func testBackwardMatchesReference() {
        var random = TestRandom(seed: 3)
        for k in Self.cases {
            let input = random.tensor(k.inputShape, scale: 3)
            let kernel = random.tensor(k.depthwiseKernelShape)
            let gradient = random.tensor(k.outputShape)
            let (eIn, eK, eB) = Reference.depthwiseBackward(k, input: input, kernel: kernel, outputGradient: gradient)
            let (aIn, aK, aB) = Fast.depthwiseBackward(k, input: input, kernel: kernel, outputGradient: gradient)
            assertMatches(aIn, eIn, relative: 1e-5, "depthwise dInput \(k)")
            assertMatches(aK, eK, relative: 1e-5, "depthwise dKernel \(k)")
            assertMatches(aB, eB, relative: 1e-5, "depthwise dBias \(k)")
        }
    }

    /// Finite differences of L = sum(output * R) in Double against the analytic gradients.
    func testGradientsMatchFiniteDifferences() {
        let shapes: [ConvCase] = [
            .padded("fd s2", batch: 2, height: 5, width: 6, channels: 9, kernel: 3, stride: 2,
                    top: 0, bottom: 1, left: 0, right: 1),
            .same("fd s1", batch: 1, height: 4, width: 5, channels: 10, kernel: 3, stride: 1),
            .same("fd k5 s2", batch: 1, height: 5, width: 5, channels: 3, kernel: 5, stride: 2),
        ]
        var random = TestRandom(seed: 4)
        for k in shapes {
            let input = random.tensor(k.inputShape)
            let kernel = random.tensor(k.depthwiseKernelShape)
            let bias = random.tensor([k.inputChannels])
            let weights = random.tensor(k.outputShape)
            func loss(_ x: Tensor, _ w: Tensor, _ b: Tensor) -> Double {
                let y = Fast.depthwiseForward(k, input: x, kernel: w, bias: b, clamp: .none)
                return zip(y.scalars, weights.scalars).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
            }
            let (dIn, dK, dB) = Fast.depthwiseBackward(k, input: input, kernel: kernel, outputGradient: weights)
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

    /// Threads split rows (forward, dInput) or channel groups (dKernel); no
    /// value may depend on how many threads there are.
    func testBitIdenticalForAnyThreadCount() {
        let shapes: [ConvCase] = [
            .padded("det s2", batch: 3, height: 17, width: 19, channels: 45, kernel: 3, stride: 2,
                    top: 0, bottom: 1, left: 0, right: 1),
            .same("det s1", batch: 2, height: 13, width: 15, channels: 70, kernel: 3, stride: 1),
            .same("det k5", batch: 2, height: 9, width: 7, channels: 19, kernel: 5, stride: 1),
            // Wide enough that one thread splits dKernel into two L1 blocks and two threads do not.
            .same("det C576", batch: 1, height: 4, width: 5, channels: 576, kernel: 3, stride: 1),
        ]
        var random = TestRandom(seed: 5)
        for k in shapes {
            let input = random.tensor(k.inputShape, scale: 3)
            let kernel = random.tensor(k.depthwiseKernelShape)
            let bias = random.tensor([k.inputChannels])
            let gradient = random.tensor(k.outputShape)
            func run() -> [[UInt32]] {
                let y = Fast.depthwiseForward(k, input: input, kernel: kernel, bias: bias, clamp: .relu6)
                let (a, b, c) = Fast.depthwiseBackward(k, input: input, kernel: kernel, outputGradient: gradient)
                return [y, a, b, c].map(bitPatterns)
            }
            let one = withThreads(1, run)
            for n in [2, 3] {
                let many = withThreads(n, run)
                for (index, name) in ["forward", "dInput", "dKernel", "dBias"].enumerated() {
                    XCTAssertEqual(one[index], many[index], "\(name) differs between 1 and \(n) threads for \(k)")
                }
            }
        }
    }
}
