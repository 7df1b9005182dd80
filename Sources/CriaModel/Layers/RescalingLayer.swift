import CriaCore
import CriaKernels

/// Keras `Rescaling` with a scalar scale: `x * scale + offset`.
public struct RescalingLayer: LayerDefinition, InferenceLowering {
    public let scale: Float
    public let offset: Float

    public static let kerasClassNames = ["Rescaling"]

    public static func parse(_ layer: KerasLayerReader) throws -> LayerKind {
        guard let scale = layer.config["scale"]?.double else { throw layer.fail("only a scalar scale is supported") }
        return .rescaling(scale: Float(scale), offset: Float(layer.config["offset"]?.double ?? 0))
    }

    func inferenceStep(_ node: GraphNode) -> InferenceStep? {
        let channels = node.outputShape.last ?? 1
        return .affine(input: node.inputs[0], scale: [Float](repeating: scale, count: channels),
                       shift: [Float](repeating: offset, count: channels))
    }

    public func forward(_ pass: LayerForwardPass, saved: inout LayerSaved?) -> [Float] {
        let count = pass.outputCount, input = pass.input
        var output = pass.takeBuffer(count)  // overwritten
        for i in 0..<count { output[i] = input[i] * scale + offset }
        return output
    }

    public func backward(_ pass: LayerBackwardPass, gradient: inout [Float]) -> InputGradients {
        var dx = pass.takeBuffer(gradient.count)  // overwritten
        for i in dx.indices { dx[i] = gradient[i] * scale }
        return .single(dx)
    }
}
