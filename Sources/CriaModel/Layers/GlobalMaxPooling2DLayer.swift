import CriaCore
import CriaKernels

/// Keras `GlobalMaxPooling2D`: per-channel maxima.
public struct GlobalMaxPooling2DLayer: LayerDefinition, InferenceLowering {
    public let keepDims: Bool

    public static let kerasClassNames = ["GlobalMaxPooling2D"]

    public static func parse(_ layer: KerasLayerReader) throws -> LayerKind {
        try layer.checkChannelsLast()
        return .globalMaxPooling2D(keepDims: layer.config["keepdims"]?.bool ?? false)
    }

    public func outputShape(_ shapes: LayerShapes) throws -> [Int] {
        let (_, _, c) = try shapes.image()
        return keepDims ? [1, 1, c] : [c]
    }

    func inferenceStep(_ node: GraphNode) -> InferenceStep? { .maxPool(input: node.inputs[0]) }

    public func forward(_ pass: LayerForwardPass, saved: inout LayerSaved?) -> [Float] {
        let pixels = pass.inputShape[0] * pass.inputShape[1], channels = pass.inputShape[2]
        var output = pass.takeBuffer(pass.outputCount)  // overwritten
        pass.input.withUnsafeBufferPointer { x in
            output.withUnsafeMutableBufferPointer { y in
                GlobalPooling.maxForward(input: x.baseAddress!, batch: pass.batch, pixels: pixels, channels: channels, output: y.baseAddress!)
            }
        }
        return output
    }

    /// Reads the output to find where each maximum was.
    public var backwardReadsOutput: Bool { true }

    public func backward(_ pass: LayerBackwardPass, gradient: inout [Float]) -> InputGradients {
        guard pass.needsInput[0] else { return .single(nil) }
        // The gradient goes to the first pixel holding each channel's maximum, as TF's argmax does.
        let input = pass.input, output = pass.output
        let pixels = pass.inputShape[0] * pass.inputShape[1], channels = pass.inputShape[2]
        var dx = pass.takeBuffer(input.count)
        dx.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
        for n in 0..<pass.batch {
            for c in 0..<channels {
                let target = output[n * channels + c]
                if let p = (0..<pixels).first(where: { input[(n * pixels + $0) * channels + c] == target }) {
                    dx[(n * pixels + p) * channels + c] = gradient[n * channels + c]
                }
            }
        }
        return .single(dx)
    }
}
