import CriaCore
import CriaKernels

// What Conv2D and DepthwiseConv2D share: their Keras config, their output size, and
// their training passes. Each kind's own file says where they differ.

extension ConvSpec {
    /// Reads a Conv2D or DepthwiseConv2D config (groups 1, dilation 1, depth multiplier 1).
    init(_ layer: KerasLayerReader, depthwise: Bool) throws {
        let config = layer.config
        try layer.checkChannelsLast()
        let (kh, kw) = try layer.pair("kernel_size", default: 1)
        let (sh, sw) = try layer.pair("strides", default: 1)
        let (dh, dw) = try layer.pair("dilation_rate", default: 1)
        guard dh == 1, dw == 1 else { throw layer.fail("dilation_rate (\(dh), \(dw)) is not supported") }
        if let groups = config["groups"]?.int, groups != 1 { throw layer.fail("groups=\(groups) is not supported") }
        if depthwise, let multiplier = config["depth_multiplier"]?.int, multiplier != 1 {
            throw layer.fail("depth_multiplier=\(multiplier) is not supported")
        }
        guard let padding = ConvPadding(rawValue: config["padding"]?.string ?? "valid") else {
            throw layer.fail("padding \(config["padding"]?.string ?? "?") is not supported")
        }
        self.init(filters: depthwise ? 0 : (config["filters"]?.int ?? 0), kernelHeight: kh, kernelWidth: kw, strideH: sh, strideW: sw,
                  padding: padding, useBias: config["use_bias"]?.bool ?? true, activation: try layer.activation())
    }

    /// Output rows and columns for an image input, by Keras's padding rule.
    func outputSize(_ shapes: LayerShapes) throws -> (height: Int, width: Int) {
        let (h, w, _) = try shapes.image()
        let rows = padding.amounts(input: h, kernel: kernelHeight, stride: strideH)
        let columns = padding.amounts(input: w, kernel: kernelWidth, stride: strideW)
        guard rows.output > 0, columns.output > 0 else {
            throw shapes.fail("input \(h)×\(w) is smaller than the \(kernelHeight)×\(kernelWidth) kernel")
        }
        return (rows.output, columns.output)
    }

    /// The training forward pass: the convolution with its activation's clamp in the kernel's epilogue.
    func forward(_ pass: LayerForwardPass, depthwise: Bool) -> [Float] {
        let geometry = shape(batch: pass.batch, input: pass.inputShape, output: pass.outputShape)
        let kernel = pass.parameter("kernel")
        let bias = pass.optionalParameter("bias")
        var output = pass.takeBuffer(pass.outputCount)  // overwritten
        pass.input.withUnsafeBufferPointer { x in
            output.withUnsafeMutableBufferPointer { y in
                geometry.forward(depthwise: depthwise, input: x.baseAddress!, kernel: kernel.baseAddress!,
                                 bias: bias?.baseAddress, clamp: activation.kernelClamp, output: y.baseAddress!)
            }
        }
        return output
    }

    /// The training backward pass: the activation's mask, then the input, kernel and bias gradients.
    func backward(_ pass: LayerBackwardPass, gradient: inout [Float], depthwise: Bool) -> InputGradients {
        let geometry = shape(batch: pass.batch, input: pass.inputShape, output: pass.outputShape)
        if activation != .linear { activation.maskGradient(&gradient, output: pass.output) }
        let kernel = pass.parameter("kernel")
        var dx: [Float]? = pass.needsInput[0] ? pass.takeBuffer(pass.input.count) : nil
        geometry.backward(depthwise: depthwise, input: pass.input, kernel: kernel.baseAddress!, outputGradient: gradient,
                          inputGradient: &dx, kernelGradient: pass.gradient("kernel")?.baseAddress,
                          biasGradient: pass.gradient("bias")?.baseAddress)
        return .single(dx)
    }

    /// The convolution's geometry over `batch` images of shape `input` (H, W, C), giving `output`
    /// (H, W, C): Keras's padding rule turned into the kernels' top and left pads.
    public func shape(batch: Int, input: [Int], output: [Int]) -> ConvShape {
        ConvShape(batch: batch, height: input[0], width: input[1], inputChannels: input[2],
                  kernelHeight: kernelHeight, kernelWidth: kernelWidth, strideH: strideH, strideW: strideW,
                  padTop: padding.amounts(input: input[0], kernel: kernelHeight, stride: strideH).before,
                  padLeft: padding.amounts(input: input[1], kernel: kernelWidth, stride: strideW).before,
                  outputHeight: output[0], outputWidth: output[1], outputChannels: output[2])
    }
}

/// The training passes of Conv2D and DepthwiseConv2D: which kernel runs a
/// convolution (depthwise, a 1×1 GEMM, or the general one) and its gradients.
extension ConvShape {
    /// The same convolution reading the input of a ZeroPadding2D folded into it: the
    /// padding's rows and columns become implicit zeros (the kernels skip taps outside
    /// the input, so the bottom and right padding need no argument).
    public func foldingPadding(top: Int, left: Int, input: [Int]) -> ConvShape {
        var folded = self
        (folded.height, folded.width) = (input[0], input[1])
        folded.padTop += top
        folded.padLeft += left
        return folded
    }

    public func forward(depthwise: Bool, input: UnsafePointer<Float>, kernel: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                        clamp: Clamp, output: UnsafeMutablePointer<Float>) {
        if depthwise {
            DepthwiseConv2D.forward(input: input, shape: self, kernel: kernel, bias: bias, clamp: clamp, output: output)
        } else if isPointwise {
            Pointwise.forward(input: input, rows: batch * height * width, inputChannels: inputChannels, kernel: kernel,
                              outputChannels: outputChannels, bias: bias, clamp: clamp, output: output)
        } else {
            Conv2D.forward(input: input, shape: self, kernel: kernel, bias: bias, clamp: clamp, output: output)
        }
    }

    /// Gradients for the input, kernel and bias, each computed only when asked for (a
    /// buffer given): each given buffer is overwritten. The bias gradient is computed only
    /// with the kernel's (a trainable layer has both).
    public func backward(depthwise: Bool, input: [Float], kernel: UnsafePointer<Float>, outputGradient dy: [Float],
                         inputGradient dx: inout [Float]?, kernelGradient: UnsafeMutablePointer<Float>?,
                         biasGradient: UnsafeMutablePointer<Float>?) {
        let pixels = batch * height * width
        withOptionalMutablePointer(&dx) { inputGradient in
            guard let inputGradient else { return }
            if depthwise {
                DepthwiseConv2D.backwardInput(outputGradient: dy, shape: self, kernel: kernel, inputGradient: inputGradient)
            } else if isPointwise {
                Pointwise.backwardInput(outputGradient: dy, rows: pixels, inputChannels: inputChannels, kernel: kernel,
                                        outputChannels: outputChannels, inputGradient: inputGradient)
            } else {
                Conv2D.backwardInput(outputGradient: dy, shape: self, kernel: kernel, inputGradient: inputGradient)
            }
        }
        if let kernelGradient {
            if depthwise {
                DepthwiseConv2D.backwardKernel(outputGradient: dy, input: input, shape: self, kernelGradient: kernelGradient,
                                               biasGradient: biasGradient)
            } else if isPointwise {
                Pointwise.backwardKernel(outputGradient: dy, input: input, rows: pixels, inputChannels: inputChannels,
                                         outputChannels: outputChannels, accumulate: false, kernelGradient: kernelGradient)
                if let biasGradient { Elementwise.columnSums(dy, rows: pixels, columns: outputChannels, into: biasGradient) }
            } else {
                // im2col + sgemm: the direct kernel runs at a tenth of the GEMM rate on Conv1's 27-term rows.
                Conv2D.backwardKernelGEMM(outputGradient: dy, input: input, shape: self, kernelGradient: kernelGradient,
                                          biasGradient: biasGradient)
            }
        }
    }
}
