import CriaCore
import CriaKernels

extension ConvSpec {
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
