import CriaCore
import CriaKernels

/// Keras `GlobalAveragePooling2D`: per-channel means, summed in Double.
public struct GlobalAveragePooling2DLayer: LayerDefinition, InferenceLowering {
    public let keepDims: Bool

    public static let kerasClassNames = ["GlobalAveragePooling2D"]

    public static func parse(_ layer: KerasLayerReader) throws -> LayerKind {
        try layer.checkChannelsLast()
        return .globalAveragePooling2D(keepDims: layer.config["keepdims"]?.bool ?? false)
    }

    public func outputShape(_ shapes: LayerShapes) throws -> [Int] {
        let (_, _, c) = try shapes.image()
        return keepDims ? [1, 1, c] : [c]
    }

    func inferenceStep(_ node: GraphNode) -> InferenceStep? { .averagePool(input: node.inputs[0]) }

    public func forward(_ pass: LayerForwardPass, saved: inout LayerSaved?) -> [Float] {
        let pixels = pass.inputShape[0] * pass.inputShape[1], channels = pass.inputShape[2]
        var output = pass.takeBuffer(pass.outputCount)  // overwritten
        pass.input.withUnsafeBufferPointer { x in
            output.withUnsafeMutableBufferPointer { y in
                GlobalPooling.averageForward(input: x.baseAddress!, batch: pass.batch, pixels: pixels, channels: channels, output: y.baseAddress!)
            }
        }
        return output
    }

    public func backward(_ pass: LayerBackwardPass, gradient: inout [Float]) -> InputGradients {
        guard pass.needsInput[0] else { return .single(nil) }
        let inputShape = pass.inputShape
        var dx = pass.takeBuffer(pass.input.count)  // overwritten
        gradient.withUnsafeBufferPointer { dy in
            dx.withUnsafeMutableBufferPointer { d in
                GlobalPooling.averageBackward(outputGradient: dy.baseAddress!, batch: pass.batch, pixels: inputShape[0] * inputShape[1],
                                              channels: inputShape[2], inputGradient: d.baseAddress!)
            }
        }
        return .single(dx)
    }
}
