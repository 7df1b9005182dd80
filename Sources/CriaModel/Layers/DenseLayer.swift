import CriaCore
import CriaKernels

/// Keras `Dense` on the last axis: a GEMM, with the activation's clamp in its epilogue
/// (sigmoid and softmax after it).
public struct DenseLayer: LayerDefinition, InferenceLowering {
    public let units: Int
    public let activation: ActivationFunction
    public let useBias: Bool

    public static let kerasClassNames = ["Dense"]

    public static func parse(_ layer: KerasLayerReader) throws -> LayerKind {
        guard let units = layer.config["units"]?.int else { throw layer.fail("has no units") }
        return .dense(units: units, activation: try layer.activation(), useBias: layer.config["use_bias"]?.bool ?? true)
    }

    public func outputShape(_ shapes: LayerShapes) throws -> [Int] {
        let input = try shapes.input()
        guard !input.isEmpty else { throw shapes.fail("has no input features") }
        return Array(input.dropLast()) + [units]
    }

    /// Kernel (in, units), then bias (units).
    public func variables(inputChannels: Int) -> [(name: String, shape: [Int])] {
        [("kernel", [inputChannels, units])] + (useBias ? [("bias", [units])] : [])
    }

    public var trainsVariables: Bool { true }

    /// Inputs × units.
    public func multiplyAdds(inputShape: [Int], outputShape: [Int]) -> Int { (inputShape.last ?? 0) * units }

    func inferenceStep(_ node: GraphNode) -> InferenceStep? {
        .dense(input: node.inputs[0], kernel: node.weights["kernel"]!.scalars, bias: useBias ? node.weights["bias"]!.scalars : nil,
               units: units, activation: activation)
    }

    public func forward(_ pass: LayerForwardPass, saved: inout LayerSaved?) -> [Float] {
        let features = pass.inputShape.last!
        let rows = pass.outputCount / units
        let kernel = pass.parameter("kernel")
        let bias = useBias ? pass.parameter("bias") : nil
        var output = pass.takeBuffer(pass.outputCount)  // overwritten
        pass.input.withUnsafeBufferPointer { x in
            output.withUnsafeMutableBufferPointer { y in
                Pointwise.forward(input: x.baseAddress!, rows: rows, inputChannels: features, kernel: kernel.baseAddress!, outputChannels: units,
                                  bias: bias?.baseAddress, clamp: activation.kernelClamp, output: y.baseAddress!)
            }
        }
        if activation == .softmax || activation == .sigmoid { activation.apply(&output, columns: units) }
        return output
    }

    public var backwardReadsOutput: Bool { activation != .linear }

    public func backward(_ pass: LayerBackwardPass, gradient: inout [Float]) -> InputGradients {
        if activation != .linear { activation.maskGradient(&gradient, output: pass.output) }
        let dy = gradient, input = pass.input
        let features = pass.inputShape.last!
        let rows = input.count / features
        let kernel = pass.parameter("kernel")
        var dx: [Float]? = pass.needsInput[0] ? pass.takeBuffer(input.count) : nil  // overwritten (sgemm with beta 0)
        dy.withUnsafeBufferPointer { g in
            if dx != nil {
                dx!.withUnsafeMutableBufferPointer { d in
                    Pointwise.backwardInput(outputGradient: g.baseAddress!, rows: rows, inputChannels: features, kernel: kernel.baseAddress!,
                                            outputChannels: units, inputGradient: d.baseAddress!)
                }
            }
            if let dw = pass.gradient("kernel") {
                input.withUnsafeBufferPointer { x in
                    Pointwise.backwardKernel(outputGradient: g.baseAddress!, input: x.baseAddress!, rows: rows, inputChannels: features,
                                             outputChannels: units, accumulate: false, kernelGradient: dw.baseAddress!)
                }
                if useBias, let db = pass.gradient("bias") {
                    Elementwise.columnSums(g.baseAddress!, rows: rows, columns: units, into: db.baseAddress!)
                }
            }
        }
        return .single(dx)
    }
}
