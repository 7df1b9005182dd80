import CriaCore
import CriaKernels

/// Keras `ReLU`: `max_value`, `threshold` and `negative_slope`. At inference a plain
/// ReLU or ReLU6 after a convolution (and its BatchNorm) becomes the kernel's clamp.
public struct ReLULayer: LayerDefinition, InferenceLowering {
    public let maxValue: Float?
    public let threshold: Float
    public let negativeSlope: Float

    public static let kerasClassNames = ["ReLU"]

    public static func parse(_ layer: KerasLayerReader) throws -> LayerKind {
        let config = layer.config
        return .relu(maxValue: config["max_value"]?.double.map(Float.init), threshold: Float(config["threshold"]?.double ?? 0),
                     negativeSlope: Float(config["negative_slope"]?.double ?? 0))
    }

    func inferenceStep(_ node: GraphNode) -> InferenceStep? {
        .relu(input: node.inputs[0], maxValue: maxValue, threshold: threshold, negativeSlope: negativeSlope)
    }

    public func forward(_ pass: LayerForwardPass, saved: inout LayerSaved?) -> [Float] {
        let count = pass.outputCount
        var output = pass.takeBuffer(count)  // overwritten
        pass.input.withUnsafeBufferPointer { x in
            output.withUnsafeMutableBufferPointer { y in
                ReLU.forward(input: x.baseAddress!, count: count, maxValue: maxValue, threshold: threshold, negativeSlope: negativeSlope,
                             output: y.baseAddress!)
            }
        }
        return output
    }

    public func backward(_ pass: LayerBackwardPass, gradient: inout [Float]) -> InputGradients {
        guard pass.needsInput[0] else { return .single(nil) }
        let input = pass.input
        var dx = pass.takeBuffer(input.count)  // overwritten
        gradient.withUnsafeBufferPointer { dy in
            input.withUnsafeBufferPointer { x in
                dx.withUnsafeMutableBufferPointer { d in
                    ReLU.backward(outputGradient: dy.baseAddress!, input: x.baseAddress!, count: input.count, maxValue: maxValue,
                                  threshold: threshold, negativeSlope: negativeSlope, inputGradient: d.baseAddress!)
                }
            }
        }
        return .single(dx)
    }
}
