/// The geometry of one convolution over NHWC buffers: what every convolution
/// kernel (`Conv2D`, `DepthwiseConv2D`, the row-band kernels) and every caller
/// that sets one up share, in one value instead of a dozen arguments.
///
/// Input (batch, height, width, inputChannels); kernel (kernelHeight,
/// kernelWidth, ...); output (batch, outputHeight, outputWidth, outputChannels).
/// Output (oy, ox) reads input (oy * strideH - padTop + ky, ox * strideW - padLeft + kx);
/// positions outside the input are zeros. That covers TF "same" padding
/// (padTop = total / 2) and a `ZeroPadding2D` folded into a "valid"
/// convolution. Pads may be negative (a crop); the bottom and right pads need
/// no field, as the output size says where the window stops.
///
/// A depthwise convolution (depth multiplier 1) has outputChannels == inputChannels.
public struct ConvShape: Equatable, Sendable {
    public var batch: Int
    /// The input's rows and columns.
    public var height, width: Int
    public var inputChannels: Int
    public var kernelHeight, kernelWidth: Int
    public var strideH, strideW: Int
    public var padTop, padLeft: Int
    public var outputHeight, outputWidth, outputChannels: Int

    public init(batch: Int, height: Int, width: Int, inputChannels: Int,
                kernelHeight: Int, kernelWidth: Int, strideH: Int = 1, strideW: Int = 1, padTop: Int = 0, padLeft: Int = 0,
                outputHeight: Int, outputWidth: Int, outputChannels: Int) {
        precondition(batch >= 0 && height >= 0 && width >= 0 && inputChannels >= 0 && outputChannels >= 0
                     && outputHeight >= 0 && outputWidth >= 0, "convolution: negative shape")
        precondition(kernelHeight > 0 && kernelWidth > 0 && strideH > 0 && strideW > 0,
                     "convolution: kernel and strides must be positive")
        self.batch = batch; self.height = height; self.width = width; self.inputChannels = inputChannels
        self.kernelHeight = kernelHeight; self.kernelWidth = kernelWidth
        self.strideH = strideH; self.strideW = strideW; self.padTop = padTop; self.padLeft = padLeft
        self.outputHeight = outputHeight; self.outputWidth = outputWidth; self.outputChannels = outputChannels
    }

    /// A depthwise convolution's channels (its input's and its output's).
    public var channels: Int { inputChannels }

    /// The same convolution over `batch` images.
    public func with(batch: Int) -> ConvShape {
        var shape = self
        shape.batch = batch
        return shape
    }

    /// A 1×1, stride-1, unpadded convolution: a GEMM over the pixels (`Pointwise`).
    public var isPointwise: Bool {
        kernelHeight == 1 && kernelWidth == 1 && strideH == 1 && strideW == 1 && padTop == 0 && padLeft == 0
    }

    /// Multiply-adds of one forward pass over the batch; a depthwise kernel has one input channel per output.
    public func multiplyAdds(depthwise: Bool) -> Int {
        batch * outputHeight * outputWidth * outputChannels * kernelHeight * kernelWidth * (depthwise ? 1 : inputChannels)
    }

    /// Rows per parallel chunk so that a chunk is worth a thread hop (~64k multiply-adds).
    func minimumRows(perRowWork: Int) -> Int {
        max(1, 65_536 / max(1, perRowWork))
    }
}
