import CriaCore
import CriaKernels

// Plain scalar reference convolutions, written to be obviously right rather
// than fast: every sum is accumulated in Double, every input position is
// bounds-checked, and the input gradient is computed by scattering (the fast
// kernels gather), so the two are derived independently.

/// One convolution's shapes. `padBottom`/`padRight` only size the output.
struct ConvCase: CustomStringConvertible {
    var name: String
    var batch: Int
    var height: Int
    var width: Int
    var inputChannels: Int
    var outputChannels: Int
    var kernelHeight: Int
    var kernelWidth: Int
    var strideH: Int
    var strideW: Int
    var padTop: Int
    var padBottom: Int
    var padLeft: Int
    var padRight: Int

    var outputHeight: Int { (height + padTop + padBottom - kernelHeight) / strideH + 1 }
    var outputWidth: Int { (width + padLeft + padRight - kernelWidth) / strideW + 1 }

    /// The kernels' view of the case (the bottom and right pads follow from the output size).
    var shape: ConvShape {
        ConvShape(batch: batch, height: height, width: width, inputChannels: inputChannels,
                  kernelHeight: kernelHeight, kernelWidth: kernelWidth, strideH: strideH, strideW: strideW,
                  padTop: padTop, padLeft: padLeft, outputHeight: outputHeight, outputWidth: outputWidth,
                  outputChannels: outputChannels)
    }

    /// The case as a depthwise convolution: one output channel per input channel.
    var depthwiseShape: ConvShape {
        var shape = shape
        shape.outputChannels = inputChannels
        return shape
    }

    /// One image of the depthwise case, computing `channels` of its channels (a channel slice).
    func sliceShape(channels: Int) -> ConvShape {
        var shape = depthwiseShape.with(batch: 1)
        (shape.inputChannels, shape.outputChannels) = (channels, channels)
        return shape
    }

    var inputShape: [Int] { [batch, height, width, inputChannels] }
    var outputShape: [Int] { [batch, outputHeight, outputWidth, outputChannels] }
    var depthwiseKernelShape: [Int] { [kernelHeight, kernelWidth, inputChannels, 1] }
    var convKernelShape: [Int] { [kernelHeight, kernelWidth, inputChannels, outputChannels] }

    var description: String {
        "\(name) n\(batch) \(height)x\(width)x\(inputChannels)->\(outputChannels) k\(kernelHeight)x\(kernelWidth) "
            + "s\(strideH)x\(strideW) pad(t\(padTop) b\(padBottom) l\(padLeft) r\(padRight)) "
            + "out \(outputHeight)x\(outputWidth)"
    }

    /// Explicit pads, as from `ZeroPadding2D` followed by a "valid" convolution.
    static func padded(_ name: String, batch: Int, height: Int, width: Int, channels: Int, outputChannels: Int? = nil,
                       kernel: Int, stride: Int, top: Int, bottom: Int, left: Int, right: Int) -> ConvCase {
        ConvCase(name: name, batch: batch, height: height, width: width, inputChannels: channels,
                 outputChannels: outputChannels ?? channels, kernelHeight: kernel, kernelWidth: kernel,
                 strideH: stride, strideW: stride, padTop: top, padBottom: bottom, padLeft: left, padRight: right)
    }

    /// TF/Keras `padding="same"`: output ceil(in / stride), total padding split with the smaller half first.
    static func same(_ name: String, batch: Int, height: Int, width: Int, channels: Int, outputChannels: Int? = nil,
                     kernel: Int, stride: Int) -> ConvCase {
        func pads(_ size: Int) -> (Int, Int) {
            let out = (size + stride - 1) / stride
            let total = max((out - 1) * stride + kernel - size, 0)
            return (total / 2, total - total / 2)
        }
        let (top, bottom) = pads(height), (left, right) = pads(width)
        return padded(name, batch: batch, height: height, width: width, channels: channels,
                      outputChannels: outputChannels, kernel: kernel, stride: stride,
                      top: top, bottom: bottom, left: left, right: right)
    }
}

enum Reference {
    /// The input value at (n, y, x, c), or zero outside the image.
    static func at(_ t: Tensor, _ n: Int, _ y: Int, _ x: Int, _ c: Int) -> Double {
        let (h, w, ch) = (t.shape[1], t.shape[2], t.shape[3])
        guard y >= 0, y < h, x >= 0, x < w else { return 0 }
        return Double(t.scalars[((n * h + y) * w + x) * ch + c])
    }

    static func clamped(_ value: Double, _ clamp: Clamp) -> Float {
        Float(min(max(value, Double(clamp.lower)), Double(clamp.upper)))
    }

    // MARK: Depthwise

    static func depthwiseForward(_ k: ConvCase, input: Tensor, kernel: Tensor, bias: Tensor?, clamp: Clamp) -> Tensor {
        var out = Tensor(zeros: k.outputShape)
        let C = k.inputChannels
        for n in 0..<k.batch {
            for oy in 0..<k.outputHeight {
                for ox in 0..<k.outputWidth {
                    for c in 0..<C {
                        var sum = bias.map { Double($0.scalars[c]) } ?? 0
                        for ky in 0..<k.kernelHeight {
                            for kx in 0..<k.kernelWidth {
                                let x = at(input, n, oy * k.strideH - k.padTop + ky, ox * k.strideW - k.padLeft + kx, c)
                                sum += x * Double(kernel.scalars[(ky * k.kernelWidth + kx) * C + c])
                            }
                        }
                        out.scalars[((n * k.outputHeight + oy) * k.outputWidth + ox) * C + c] = clamped(sum, clamp)
                    }
                }
            }
        }
        return out
    }

    /// Returns (dInput, dKernel, dBias) for the linear part (no activation).
    static func depthwiseBackward(_ k: ConvCase, input: Tensor, kernel: Tensor, outputGradient: Tensor)
        -> (Tensor, Tensor, Tensor) {
        let C = k.inputChannels
        var dIn = [Double](repeating: 0, count: input.count)
        var dK = [Double](repeating: 0, count: kernel.count)
        var dB = [Double](repeating: 0, count: C)
        for n in 0..<k.batch {
            for oy in 0..<k.outputHeight {
                for ox in 0..<k.outputWidth {
                    for c in 0..<C {
                        let g = Double(outputGradient.scalars[((n * k.outputHeight + oy) * k.outputWidth + ox) * C + c])
                        dB[c] += g
                        for ky in 0..<k.kernelHeight {
                            for kx in 0..<k.kernelWidth {
                                let y = oy * k.strideH - k.padTop + ky, x = ox * k.strideW - k.padLeft + kx
                                guard y >= 0, y < k.height, x >= 0, x < k.width else { continue }
                                let t = (ky * k.kernelWidth + kx) * C + c
                                let i = ((n * k.height + y) * k.width + x) * C + c
                                dIn[i] += g * Double(kernel.scalars[t])
                                dK[t] += g * Double(input.scalars[i])
                            }
                        }
                    }
                }
            }
        }
        return (Tensor(shape: input.shape, scalars: dIn.map(Float.init)),
                Tensor(shape: kernel.shape, scalars: dK.map(Float.init)),
                Tensor(shape: [C], scalars: dB.map(Float.init)))
    }

    // MARK: Conv2D

    static func convForward(_ k: ConvCase, input: Tensor, kernel: Tensor, bias: Tensor?, clamp: Clamp) -> Tensor {
        var out = Tensor(zeros: k.outputShape)
        let (ci, co) = (k.inputChannels, k.outputChannels)
        for n in 0..<k.batch {
            for oy in 0..<k.outputHeight {
                for ox in 0..<k.outputWidth {
                    for o in 0..<co {
                        var sum = bias.map { Double($0.scalars[o]) } ?? 0
                        for ky in 0..<k.kernelHeight {
                            for kx in 0..<k.kernelWidth {
                                for i in 0..<ci {
                                    let x = at(input, n, oy * k.strideH - k.padTop + ky,
                                               ox * k.strideW - k.padLeft + kx, i)
                                    sum += x * Double(kernel.scalars[((ky * k.kernelWidth + kx) * ci + i) * co + o])
                                }
                            }
                        }
                        out.scalars[((n * k.outputHeight + oy) * k.outputWidth + ox) * co + o] = clamped(sum, clamp)
                    }
                }
            }
        }
        return out
    }

    static func convBackward(_ k: ConvCase, input: Tensor, kernel: Tensor, outputGradient: Tensor)
        -> (Tensor, Tensor, Tensor) {
        let (ci, co) = (k.inputChannels, k.outputChannels)
        var dIn = [Double](repeating: 0, count: input.count)
        var dK = [Double](repeating: 0, count: kernel.count)
        var dB = [Double](repeating: 0, count: co)
        for n in 0..<k.batch {
            for oy in 0..<k.outputHeight {
                for ox in 0..<k.outputWidth {
                    for o in 0..<co {
                        let g = Double(outputGradient.scalars[((n * k.outputHeight + oy) * k.outputWidth + ox) * co + o])
                        dB[o] += g
                        for ky in 0..<k.kernelHeight {
                            for kx in 0..<k.kernelWidth {
                                let y = oy * k.strideH - k.padTop + ky, x = ox * k.strideW - k.padLeft + kx
                                guard y >= 0, y < k.height, x >= 0, x < k.width else { continue }
                                for i in 0..<ci {
                                    let t = ((ky * k.kernelWidth + kx) * ci + i) * co + o
                                    let p = ((n * k.height + y) * k.width + x) * ci + i
                                    dIn[p] += g * Double(kernel.scalars[t])
                                    dK[t] += g * Double(input.scalars[p])
                                }
                            }
                        }
                    }
                }
            }
        }
        return (Tensor(shape: input.shape, scalars: dIn.map(Float.init)),
                Tensor(shape: kernel.shape, scalars: dK.map(Float.init)),
                Tensor(shape: [co], scalars: dB.map(Float.init)))
    }
}

/// A seeded SplitMix64, so failures reproduce.
struct TestRandom {
    var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [-scale, scale).
    mutating func uniform(_ scale: Float) -> Float {
        Float(next() >> 40) / Float(1 << 24) * 2 * scale - scale
    }

    mutating func tensor(_ shape: [Int], scale: Float = 1) -> Tensor {
        Tensor(shape: shape, scalars: (0..<shape.reduce(1, *)).map { _ in uniform(scale) })
    }
}
