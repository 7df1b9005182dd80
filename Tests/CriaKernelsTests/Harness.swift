import CriaCore
import CriaKernels

// Tensor-level wrappers around the pointer kernels, so each test reads as
// "fast result vs reference result".

enum Fast {
    static func depthwiseForward(_ k: ConvCase, input: Tensor, kernel: Tensor, bias: Tensor?, clamp: Clamp) -> Tensor {
        var out = Tensor(repeating: .nan, shape: k.outputShape)
        input.scalars.withUnsafeBufferPointer { x in
            kernel.scalars.withUnsafeBufferPointer { w in
                withOptionalPointer(bias) { b in
                    out.scalars.withUnsafeMutableBufferPointer { o in
                        DepthwiseConv2D.forward(input: x.baseAddress!, shape: k.depthwiseShape, kernel: w.baseAddress!,
                                                bias: b, clamp: clamp, output: o.baseAddress!)
                    }
                }
            }
        }
        return out
    }

    static func depthwiseBackward(_ k: ConvCase, input: Tensor, kernel: Tensor, outputGradient: Tensor)
        -> (Tensor, Tensor, Tensor) {
        // NaN-filled outputs prove that the kernels overwrite rather than accumulate.
        var dIn = Tensor(repeating: .nan, shape: input.shape)
        var dK = Tensor(repeating: .nan, shape: kernel.shape)
        var dB = Tensor(repeating: .nan, shape: [k.inputChannels])
        input.scalars.withUnsafeBufferPointer { x in
            kernel.scalars.withUnsafeBufferPointer { w in
                outputGradient.scalars.withUnsafeBufferPointer { g in
                    dIn.scalars.withUnsafeMutableBufferPointer { di in
                        DepthwiseConv2D.backwardInput(outputGradient: g.baseAddress!, shape: k.depthwiseShape, kernel: w.baseAddress!,
                                                      inputGradient: di.baseAddress!)
                    }
                    dK.scalars.withUnsafeMutableBufferPointer { dk in
                        dB.scalars.withUnsafeMutableBufferPointer { db in
                            DepthwiseConv2D.backwardKernel(outputGradient: g.baseAddress!, input: x.baseAddress!, shape: k.depthwiseShape,
                                                           kernelGradient: dk.baseAddress!, biasGradient: db.baseAddress!)
                        }
                    }
                }
            }
        }
        return (dIn, dK, dB)
    }

    static func convForward(_ k: ConvCase, input: Tensor, kernel: Tensor, bias: Tensor?, clamp: Clamp,
                            im2col: Bool = false) -> Tensor {
        var out = Tensor(repeating: .nan, shape: k.outputShape)
        let workspaceCount = Conv2D.im2colWorkspaceCount(k.shape)
        var workspace = [Float](repeating: .nan, count: max(1, workspaceCount))
        input.scalars.withUnsafeBufferPointer { x in
            kernel.scalars.withUnsafeBufferPointer { w in
                withOptionalPointer(bias) { b in
                    out.scalars.withUnsafeMutableBufferPointer { o in
                        if im2col {
                            workspace.withUnsafeMutableBufferPointer { ws in
                                Conv2D.forwardIm2col(input: x.baseAddress!, shape: k.shape, kernel: w.baseAddress!, bias: b, clamp: clamp,
                                                     workspace: ws.baseAddress!, output: o.baseAddress!)
                            }
                        } else {
                            Conv2D.forward(input: x.baseAddress!, shape: k.shape, kernel: w.baseAddress!, bias: b, clamp: clamp,
                                           output: o.baseAddress!)
                        }
                    }
                }
            }
        }
        return out
    }

    static func convBackward(_ k: ConvCase, input: Tensor, kernel: Tensor, outputGradient: Tensor)
        -> (Tensor, Tensor, Tensor) {
        var dIn = Tensor(repeating: .nan, shape: input.shape)
        var dK = Tensor(repeating: .nan, shape: kernel.shape)
        var dB = Tensor(repeating: .nan, shape: [k.outputChannels])
        input.scalars.withUnsafeBufferPointer { x in
            kernel.scalars.withUnsafeBufferPointer { w in
                outputGradient.scalars.withUnsafeBufferPointer { g in
                    dIn.scalars.withUnsafeMutableBufferPointer { di in
                        Conv2D.backwardInput(outputGradient: g.baseAddress!, shape: k.shape, kernel: w.baseAddress!,
                                             inputGradient: di.baseAddress!)
                    }
                    dK.scalars.withUnsafeMutableBufferPointer { dk in
                        dB.scalars.withUnsafeMutableBufferPointer { db in
                            Conv2D.backwardKernel(outputGradient: g.baseAddress!, input: x.baseAddress!, shape: k.shape,
                                                  kernelGradient: dk.baseAddress!, biasGradient: db.baseAddress!)
                        }
                    }
                }
            }
        }
        return (dIn, dK, dB)
    }

    static func withOptionalPointer<R>(_ t: Tensor?, _ body: (UnsafePointer<Float>?) -> R) -> R {
        guard let t else { return body(nil) }
        return t.scalars.withUnsafeBufferPointer { body($0.baseAddress!) }
    }
}

/// Runs `body` with `Threads.count == n`, restoring the previous budget.
func withThreads<R>(_ n: Int, _ body: () -> R) -> R {
    let saved = Threads.count
    Threads.set(n)
    defer { Threads.set(saved) }
    return body()
}

func bitPatterns(_ t: Tensor) -> [UInt32] { t.scalars.map(\.bitPattern) }
