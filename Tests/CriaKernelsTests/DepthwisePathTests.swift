import CDepthwise
import CriaCore
import CriaKernels
import CriaTestSupport
import XCTest

/// The depthwise kernels' instruction-set paths (plain C, AVX, AVX-512) add the same terms
/// in the same order in every lane, so each must give the plain C path's bits exactly:
/// channel counts on both sides of each register width (8, 16, 64) and of the masked
/// eight-channel tail, both strides, every kernel-row range a border leaves, with and
/// without the clamp on read, and NaN.
///
/// Paths this CPU lacks fall back to its widest, so on an AVX2 machine the AVX-512
/// comparison compares AVX with itself; `testTheWidestPathRunsByDefault` says so by skipping.
final class DepthwisePathTests: XCTestCase {
    private let vectorPaths: [DepthwisePath] = [.avx, .avx512]

    func testTheWidestPathRunsByDefault() throws {
        guard ProcessInfo.processInfo.environment["CRIA_DEPTHWISE_ISA"] == nil else {
            throw Skip.decision("CRIA_DEPTHWISE_ISA is set, so the default path is not the widest")
        }
        XCTAssertEqual(DepthwisePath.current, DepthwisePath.best)
        guard DepthwisePath.best == .avx512 else {
            throw Skip.decision("this CPU has no AVX-512F (best path: \(DepthwisePath.best)), so the AVX-512 "
                                + "path falls back to AVX here and its bits are not compared")
        }
    }

    func testFourPixelKernelGivesTheSameBitsOnEveryPath() {
        var random = TestRandom(seed: 13)
        for (channels, stride) in [(8, 1), (16, 1), (24, 1), (40, 1), (16, 2), (40, 2), (144, 2), (576, 1)] {
            let width = 4 * stride + 2, rowStride = width * channels
            var input = random.tensor([3, width, channels], scale: 10).scalars
            input[channels + 3] = .nan
            let kernel = random.tensor([3, 3, channels]).scalars
            let bias = random.tensor([channels]).scalars
            for kyRange in [0..<3, 1..<3, 0..<2] {
                for clamps in [Int32(0), 1] {
                    for withBias in [true, false] {
                        func run(_ path: DepthwisePath) -> [UInt32] {
                            var output = [Float](repeating: .nan, count: 4 * channels)
                            bias.withUnsafeBufferPointer { b in
                                cria_depthwise_four_isa(path.rawValue, input, kernel, withBias ? b.baseAddress : nil, &output,
                                                        channels, rowStride, kyRange.lowerBound, kyRange.upperBound,
                                                        channels, stride, clamps, 0, 6, 0, 6)
                            }
                            return output.map(\.bitPattern)
                        }
                        let portable = run(.portable)
                        for path in vectorPaths {
                            XCTAssertEqual(run(path), portable,
                                           "\(path): C \(channels) stride \(stride) ky \(kyRange) clamp \(clamps) bias \(withBias)")
                        }
                    }
                }
            }
        }
    }

    func testPixelKernelGivesTheSameBitsOnEveryPath() {
        var random = TestRandom(seed: 14)
        // 8 and 16: one register or less; 40, 72, 104: the four-block step and masked tails.
        for channels in [8, 16, 40, 72, 104] {
            let width = 4, rowStride = width * channels
            var input = random.tensor([3, width, channels], scale: 10).scalars
            input[5] = .nan
            let kernel = random.tensor([3, 3, channels]).scalars
            let bias = random.tensor([channels]).scalars
            for (kyRange, kxRange, originX) in [(0..<3, 0..<3, 0), (1..<3, 1..<3, -1), (0..<2, 0..<2, 2), (0..<3, 0..<1, 3)] {
                for clamps in [Int32(0), 1] {
                    func run(_ path: DepthwisePath) -> [UInt32] {
                        var output = [Float](repeating: .nan, count: channels)
                        input.withUnsafeBufferPointer { x in
                            cria_depthwise_pixel_isa(path.rawValue, x.baseAddress!, originX, kernel, bias, &output, channels,
                                                     rowStride, kyRange.lowerBound, kyRange.upperBound, kxRange.lowerBound,
                                                     kxRange.upperBound, 3, channels, clamps, 0, 6, 0, 6)
                        }
                        return output.map(\.bitPattern)
                    }
                    let portable = run(.portable)
                    for path in vectorPaths {
                        XCTAssertEqual(run(path), portable, "\(path): C \(channels) ky \(kyRange) kx \(kxRange) clamp \(clamps)")
                    }
                }
            }
        }
    }

    /// The weight gradient's row kernel: the sums it starts from are part of the result
    /// (rows add into them), so they start random, not zero.
    func testWeightGradientRowGivesTheSameBitsOnEveryPath() {
        var random = TestRandom(seed: 15)
        for (lanes, channels, stride, pixels) in [(8, 8, 1, 5), (16, 16, 2, 3), (24, 40, 1, 7), (40, 40, 2, 4),
                                                  (48, 144, 1, 9), (72, 96, 2, 1)] {
            let width = pixels * stride + 2, rowStride = width * channels
            var input = random.tensor([3, width, channels], scale: 3).scalars
            input[2 * channels + 1] = .nan
            let gradient = random.tensor([pixels, channels]).scalars
            let start = random.tensor([10, lanes]).scalars
            func run(_ path: DepthwisePath) -> [UInt32] {
                var sums = start
                cria_depthwise_kernel_row_isa(path.rawValue, gradient, input, &sums, lanes, channels, rowStride,
                                              stride * channels, pixels, lanes & ~7)
                return sums.map(\.bitPattern)
            }
            let portable = run(.portable)
            XCTAssertNotEqual(portable, start.map(\.bitPattern))
            for path in vectorPaths {
                XCTAssertEqual(run(path), portable, "\(path): lanes \(lanes) C \(channels) stride \(stride) pixels \(pixels)")
            }
        }
    }

    /// Whole layers, as training calls them (forward with ReLU6, input, kernel and bias
    /// gradients), on MobileNetV2's shapes, with the process switched from path to path.
    func testLayersGiveTheSameBitsOnEveryPath() {
        let shapes: [ConvCase] = [
            .same("20x20 s1 C144", batch: 2, height: 20, width: 20, channels: 144, kernel: 3, stride: 1),
            .padded("20x20 pad(0,1) s2 C96", batch: 2, height: 20, width: 20, channels: 96, kernel: 3, stride: 2,
                    top: 0, bottom: 1, left: 0, right: 1),
            .same("5x5 s1 C960", batch: 3, height: 5, width: 5, channels: 960, kernel: 3, stride: 1),
            .same("10x10 s1 C40", batch: 1, height: 10, width: 10, channels: 40, kernel: 3, stride: 1),
            .same("9x9 s1 k5 C24", batch: 1, height: 9, width: 9, channels: 24, kernel: 5, stride: 1),
            .same("7x9 s1 C17", batch: 2, height: 7, width: 9, channels: 17, kernel: 3, stride: 1),
        ]
        var random = TestRandom(seed: 16)
        let saved = DepthwisePath.current
        defer { DepthwisePath.select(saved) }
        for k in shapes {
            let input = random.tensor(k.inputShape, scale: 3)
            let kernel = random.tensor(k.depthwiseKernelShape)
            let bias = random.tensor([k.inputChannels])
            let gradient = random.tensor(k.outputShape)
            func run(_ path: DepthwisePath) -> [[UInt32]] {
                DepthwisePath.select(path)
                let y = Fast.depthwiseForward(k, input: input, kernel: kernel, bias: bias, clamp: .relu6)
                let (dIn, dK, dB) = Fast.depthwiseBackward(k, input: input, kernel: kernel, outputGradient: gradient)
                return [y, dIn, dK, dB].map(bitPatterns)
            }
            let portable = run(.portable)
            for path in vectorPaths {
                let other = run(path)
                for (index, name) in ["forward", "dInput", "dKernel", "dBias"].enumerated() {
                    XCTAssertEqual(other[index], portable[index], "\(name) on \(path) for \(k)")
                }
            }
        }
    }
}
