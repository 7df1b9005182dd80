import CriaCore
import CriaKernels

/// Keras `ZeroPadding2D`. At inference, and in the training engine's fused units, a
/// padding whose only consumer is a convolution becomes that convolution's pads
/// (`ConvShape.foldingPadding`); the planner and `FusionPlan` own that rule.
public struct ZeroPadding2DLayer: LayerDefinition, InferenceLowering {
    public let top, bottom, left, right: Int

    public static let kerasClassNames = ["ZeroPadding2D"]

    public static func parse(_ layer: KerasLayerReader) throws -> LayerKind {
        try layer.checkChannelsLast()
        let padding = layer.config["padding"]
        if let all = padding?.int { return .zeroPadding2D(top: all, bottom: all, left: all, right: all) }
        guard let rows = padding?[0], let columns = padding?[1] else { throw layer.fail("cannot read padding") }
        if let height = rows.int, let width = columns.int {
            return .zeroPadding2D(top: height, bottom: height, left: width, right: width)
        }
        guard let top = rows[0]?.int, let bottom = rows[1]?.int, let left = columns[0]?.int, let right = columns[1]?.int else {
            throw layer.fail("cannot read padding")
        }
        return .zeroPadding2D(top: top, bottom: bottom, left: left, right: right)
    }

    public func outputShape(_ shapes: LayerShapes) throws -> [Int] {
        let (h, w, c) = try shapes.image()
        return [h + top + bottom, w + left + right, c]
    }

    func inferenceStep(_ node: GraphNode) -> InferenceStep? {
        .pad(input: node.inputs[0], top: top, bottom: bottom, left: left, right: right)
    }

    public func forward(_ pass: LayerForwardPass, saved: inout LayerSaved?) -> [Float] {
        let inputShape = pass.inputShape
        var output = pass.takeBuffer(pass.outputCount)  // overwritten
        pass.input.withUnsafeBufferPointer { x in
            output.withUnsafeMutableBufferPointer { y in
                ZeroPadding.forward(input: x.baseAddress!, batch: pass.batch, height: inputShape[0], width: inputShape[1], channels: inputShape[2],
                                    top: top, left: left, outputHeight: pass.outputShape[0], outputWidth: pass.outputShape[1],
                                    output: y.baseAddress!)
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
                ZeroPadding.backward(outputGradient: dy.baseAddress!, batch: pass.batch, height: inputShape[0], width: inputShape[1],
                                     channels: inputShape[2], top: top, left: left, outputHeight: pass.outputShape[0],
                                     outputWidth: pass.outputShape[1], inputGradient: d.baseAddress!)
            }
        }
        return .single(dx)
    }
}
