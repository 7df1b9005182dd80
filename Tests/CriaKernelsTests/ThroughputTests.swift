import CriaCore
import CriaKernels
import Foundation
import XCTest

/// Prints timings; asserts nothing about speed (timed tests must not). Uses
/// batch 1 and one run unless `CRIA_KERNEL_BENCH=1`, which switches to the realistic
/// batch 32. Meaningful only in a release build:
/// `CRIA_KERNEL_BENCH=1 swift test -c release -Xswiftc -enable-testing --filter testPrintsThroughput`
final class ThroughputTests: XCTestCase {
    static var benchmarking: Bool { ProcessInfo.processInfo.environment["CRIA_KERNEL_BENCH"] == "1" }
    static var batch: Int { benchmarking ? 32 : 1 }

    /// Best time of `repeats` runs, in milliseconds: the calling thread's CPU
    /// time when `Threads.count == 1` (robust on a loaded shared machine,
    /// since the kernels then run on the calling thread), wall time otherwise.
    func best(_ repeats: Int = 5, _ body: () -> Void) -> Double {
        let repeats = Self.benchmarking ? repeats : 1
        func now() -> Double {
            if Threads.count == 1 {
                var t = timespec()
                clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t)
                return Double(t.tv_sec) * 1e3 + Double(t.tv_nsec) / 1e6
            }
            return Double(DispatchTime.now().uptimeNanoseconds) / 1e6
        }
        body()
        var fastest = Double.infinity
        for _ in 0..<repeats {
            let start = now()
            body()
            fastest = min(fastest, now() - start)
        }
        return fastest
    }

    func report(_ name: String, _ k: ConvCase, multiplyAdds: Int, ms: Double) {
        let gflops = 2 * Double(multiplyAdds) / (ms * 1e6)
        print(String(format: "throughput %@ [%@] threads %d (%@): %.2f ms, %.1f GFLOP/s",
                     name, k.description, Threads.count, Threads.count == 1 ? "cpu time" : "wall", ms, gflops))
    }

    func testPrintsThroughput() {
        let n = Self.batch
        // MobileNetV2 1.0 at 160×160 (the brief's 10×10×960 is the 320-pixel size of block 14).
        let layers: [ConvCase] = [
            .same("expanded_conv_depthwise", batch: n, height: 80, width: 80, channels: 32, kernel: 3, stride: 1),
            .padded("block_1_depthwise", batch: n, height: 80, width: 80, channels: 96, kernel: 3, stride: 2,
                    top: 0, bottom: 1, left: 0, right: 1),
            .same("block_2_depthwise", batch: n, height: 40, width: 40, channels: 144, kernel: 3, stride: 1),
            .padded("block_3_depthwise", batch: n, height: 40, width: 40, channels: 144, kernel: 3, stride: 2,
                    top: 0, bottom: 1, left: 0, right: 1),
            .same("block_14_depthwise", batch: n, height: 5, width: 5, channels: 960, kernel: 3, stride: 1),
            .same("10x10x960", batch: n, height: 10, width: 10, channels: 960, kernel: 3, stride: 1),
        ]
        var random = TestRandom(seed: 99)
        for k in layers {
            let input = random.tensor(k.inputShape)
            let kernel = random.tensor(k.depthwiseKernelShape)
            let bias = random.tensor([k.inputChannels])
            let gradient = random.tensor(k.outputShape)
            var output = Tensor(zeros: k.outputShape)
            var dIn = Tensor(zeros: k.inputShape)
            var dK = Tensor(zeros: kernel.shape)
            var dB = Tensor(zeros: [k.inputChannels])
            let macs = DepthwiseConv2D.multiplyAdds(k.depthwiseShape)
            let forward = best {
                DepthwiseConv2D.forward(input: input.scalars, shape: k.depthwiseShape, kernel: kernel.scalars,
                                        bias: bias.scalars, clamp: .relu6, output: &output.scalars)
            }
            report("depthwise forward", k, multiplyAdds: macs, ms: forward)
            // The inference executor's kernel, one image at a time with the whole image as its band. The
            // executor's bands are sized to stay in L2; whole images stream from memory, so this figure
            // understates the kernel (the four-pixel blocks measured slower here, faster in `cria bench`).
            let imageIn = k.height * k.width * k.inputChannels, imageOut = k.outputHeight * k.outputWidth * k.inputChannels
            let bandForward = input.scalars.withUnsafeBufferPointer { x in
                output.scalars.withUnsafeMutableBufferPointer { o in
                    best {
                        for image in 0..<k.batch {
                            BandKernels.depthwiseRows(
                                band: x.baseAddress! + image * imageIn, bandStart: 0, bandRows: k.height,
                                shape: k.depthwiseShape.with(batch: 1), kernel: kernel.scalars, rows: 0..<k.outputHeight,
                                bias: bias.scalars, clamp: .relu6, output: o.baseAddress! + image * imageOut)
                        }
                    }
                }
            }
            report("depthwise band rows", k, multiplyAdds: macs, ms: bandForward)
            let backwardInput = best {
                DepthwiseConv2D.backwardInput(outputGradient: gradient.scalars, shape: k.depthwiseShape, kernel: kernel.scalars,
                                              inputGradient: &dIn.scalars)
            }
            report("depthwise backwardInput", k, multiplyAdds: macs, ms: backwardInput)
            let backwardKernel = best {
                DepthwiseConv2D.backwardKernel(outputGradient: gradient.scalars, input: input.scalars, shape: k.depthwiseShape,
                                               kernelGradient: &dK.scalars, biasGradient: &dB.scalars)
            }
            report("depthwise backwardKernel", k, multiplyAdds: macs, ms: backwardKernel)
        }
        conv1Throughput(batch: n)
    }

    func conv1Throughput(batch n: Int) {
        let k = ConvCase.same("Conv1", batch: n, height: 160, width: 160, channels: 3, outputChannels: 32,
                              kernel: 3, stride: 2)
        var random = TestRandom(seed: 98)
        let input = random.tensor(k.inputShape)
        let kernel = random.tensor(k.convKernelShape)
        let bias = random.tensor([k.outputChannels])
        let gradient = random.tensor(k.outputShape)
        var output = Tensor(zeros: k.outputShape)
        var dIn = Tensor(zeros: k.inputShape)
        var dK = Tensor(zeros: kernel.shape)
        var dB = Tensor(zeros: [k.outputChannels])
        var workspace = [Float](repeating: 0, count: Conv2D.im2colWorkspaceCount(k.shape))
        let macs = n * k.outputHeight * k.outputWidth * 27 * 32
        let direct = best {
            Conv2D.forward(input: input.scalars, shape: k.shape, kernel: kernel.scalars,
                           bias: bias.scalars, clamp: .relu6, output: &output.scalars)
        }
        report("conv2d forward direct", k, multiplyAdds: macs, ms: direct)
        let im2col = best {
            Conv2D.forwardIm2col(input: input.scalars, shape: k.shape, kernel: kernel.scalars,
                                 bias: bias.scalars, clamp: .relu6, workspace: &workspace, output: &output.scalars)
        }
        report("conv2d forward im2col+sgemm", k, multiplyAdds: macs, ms: im2col)
        let backwardInput = best(3) {
            Conv2D.backwardInput(outputGradient: gradient.scalars, shape: k.shape, kernel: kernel.scalars,
                                 inputGradient: &dIn.scalars)
        }
        report("conv2d backwardInput", k, multiplyAdds: macs, ms: backwardInput)
        let backwardKernel = best(3) {
            Conv2D.backwardKernel(outputGradient: gradient.scalars, input: input.scalars, shape: k.shape,
                                  kernelGradient: &dK.scalars, biasGradient: &dB.scalars)
        }
        report("conv2d backwardKernel", k, multiplyAdds: macs, ms: backwardKernel)
    }
}
