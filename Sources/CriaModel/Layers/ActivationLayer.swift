import CriaCore
import CriaKernels

/// Keras `Activation` (linear, relu, relu6, sigmoid, softmax).
public struct ActivationLayer: LayerDefinition, InferenceLowering {
    public let function: ActivationFunction

    public static let kerasClassNames = ["Activation"]

    public static func parse(_ layer: KerasLayerReader) throws -> LayerKind {
        .activation(try layer.activation())
    }

    func inferenceStep(_ node: GraphNode) -> InferenceStep? { .activation(input: node.inputs[0], function) }

    public func forward(_ pass: LayerForwardPass, saved: inout LayerSaved?) -> [Float] {
        let count = pass.outputCount, input = pass.input
        // Into a pooled buffer: activating a copy of `input` in place would allocate one.
        var output = pass.takeBuffer(count)
        for i in 0..<count { output[i] = input[i] }
        function.apply(&output, columns: pass.outputShape.last ?? 1)
        return output
    }

    public var backwardReadsOutput: Bool { true }

    public func backward(_ pass: LayerBackwardPass, gradient: inout [Float]) -> InputGradients {
        function.maskGradient(&gradient, output: pass.output)
        return .single(gradient)
    }
}
