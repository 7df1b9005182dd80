import CriaCore
import CriaKernels

/// Keras `DepthwiseConv2D` (depth multiplier 1): one filter per channel. Shared with
/// Conv2D: `Convolution.swift`. At inference the planner folds it like a Conv2D and runs
/// MobileNetV2's expand → depthwise → project blocks as one step (`InferenceProgram`).
public struct DepthwiseConv2DLayer: LayerDefinition {
    public let spec: ConvSpec

    public static let kerasClassNames = ["DepthwiseConv2D"]

    public static func parse(_ layer: KerasLayerReader) throws -> LayerKind {
        .depthwiseConv2D(try ConvSpec(layer, depthwise: true))
    }

    public func outputShape(_ shapes: LayerShapes) throws -> [Int] {
        let (height, width) = try spec.outputSize(shapes)
        return [height, width, try shapes.image().channels]
    }

    /// Kernel (kh, kw, channels, 1), then bias (channels).
    public func variables(inputChannels: Int) -> [(name: String, shape: [Int])] {
        [("kernel", [spec.kernelHeight, spec.kernelWidth, inputChannels, 1])] + (spec.useBias ? [("bias", [inputChannels])] : [])
    }

    public var trainsVariables: Bool { true }

    /// Output pixels × channels × window.
    public func multiplyAdds(inputShape: [Int], outputShape: [Int]) -> Int {
        let outputPixels = outputShape.count == 3 ? outputShape[0] * outputShape[1] : 1
        return outputPixels * (inputShape.last ?? 0) * spec.kernelHeight * spec.kernelWidth
    }

    public func forward(_ pass: LayerForwardPass, saved: inout LayerSaved?) -> [Float] {
        spec.forward(pass, depthwise: true)
    }

    public var backwardReadsOutput: Bool { spec.activation != .linear }

    public func backward(_ pass: LayerBackwardPass, gradient: inout [Float]) -> InputGradients {
        spec.backward(pass, gradient: &gradient, depthwise: true)
    }
}
