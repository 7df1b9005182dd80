import CriaCore
import CriaKernels

/// Keras `Add` of tensors of one shape. At inference the planner adds MobileNetV2's
/// residual inside the block step that computes the projection.
public struct AddLayer: LayerDefinition, InferenceLowering {
    public static let kerasClassNames = ["Add"]

    public static func parse(_ layer: KerasLayerReader) throws -> LayerKind { .add }

    public func outputShape(_ shapes: LayerShapes) throws -> [Int] {
        let input = try shapes.input()
        for other in shapes.inputs.dropFirst() where other != input {
            throw shapes.fail("adds tensors of shapes \(describeShape(input)) and \(describeShape(other))")
        }
        return input
    }

    func inferenceStep(_ node: GraphNode) -> InferenceStep? { .add(inputs: node.inputs) }

    public func forward(_ pass: LayerForwardPass, saved: inout LayerSaved?) -> [Float] {
        let count = pass.outputCount
        var output = pass.takeBuffer(count)  // overwritten
        output.withUnsafeMutableBufferPointer { y in
            pass.input.withUnsafeBufferPointer { y.baseAddress!.update(from: $0.baseAddress!, count: count) }
            for other in pass.inputs.dropFirst() {
                other.withUnsafeBufferPointer { Elementwise.add($0.baseAddress!, into: y.baseAddress!, count: count) }
            }
        }
        return output
    }

    /// Every input gets the output's gradient itself (the same buffer).
    public func backward(_ pass: LayerBackwardPass, gradient: inout [Float]) -> InputGradients {
        .passThrough
    }
}
