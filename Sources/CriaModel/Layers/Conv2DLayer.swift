import CriaCore
import CriaKernels

/// Keras `Conv2D` (groups 1, dilation 1). Shared with DepthwiseConv2D: `Convolution.swift`.
/// At inference the planner folds a padding before it and a BatchNorm and ReLU after it
/// into the kernel call (`InferencePlanner.convolution`).
public struct Conv2DLayer: LayerDefinition {
    public let spec: ConvSpec

    public static let kerasClassNames = ["Conv2D"]

    public static func parse(_ layer: KerasLayerReader) throws -> LayerKind {
        .conv2D(try ConvSpec(layer, depthwise: false))
    }

    public func outputShape(_ shapes: LayerShapes) throws -> [Int] {
        let (height, width) = try spec.outputSize(shapes)
        return [height, width, spec.filters]
    }

    /// Kernel (kh, kw, in, filters), then bias (filters).
    public func variables(inputChannels: Int) -> [(name: String, shape: [Int])] {
        [("kernel", [spec.kernelHeight, spec.kernelWidth, inputChannels, spec.filters])] + (spec.useBias ? [("bias", [spec.filters])] : [])
    }

    public var trainsVariables: Bool { true }

    /// Output pixels × filters × window × input channels.
    public func multiplyAdds(inputShape: [Int], outputShape: [Int]) -> Int {
        let outputPixels = outputShape.count == 3 ? outputShape[0] * outputShape[1] : 1
        return outputPixels * spec.filters * spec.kernelHeight * spec.kernelWidth * (inputShape.last ?? 0)
    }

    public func forward(_ pass: LayerForwardPass, saved: inout LayerSaved?) -> [Float] {
        spec.forward(pass, depthwise: false)
    }

    public var backwardReadsOutput: Bool { spec.activation != .linear }

    public func backward(_ pass: LayerBackwardPass, gradient: inout [Float]) -> InputGradients {
        spec.backward(pass, gradient: &gradient, depthwise: false)
    }
}
