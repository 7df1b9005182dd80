import CriaCore
import CriaKerasIO
import CriaKernels

/// Keras `BatchNormalization` over the channel axis. At inference it folds into the
/// convolution before it when it is that convolution's only consumer (the planner's rule),
/// and otherwise runs as a per-channel scale and shift.
public struct BatchNormalizationLayer: LayerDefinition, InferenceLowering {
    public let epsilon: Float
    public let center: Bool
    public let scale: Bool

    public static let kerasClassNames = ["BatchNormalization"]

    public static func parse(_ layer: KerasLayerReader) throws -> LayerKind {
        try layer.checkChannelAxis()
        let config = layer.config
        return .batchNormalization(epsilon: Float(config["epsilon"]?.double ?? 1e-3),
                                   center: config["center"]?.bool ?? true, scale: config["scale"]?.bool ?? true)
    }

    /// γ and β (when scaled and centred), then the moving mean and variance.
    public func variables(inputChannels: Int) -> [(name: String, shape: [Int])] {
        (scale ? [("gamma", [inputChannels])] : []) + (center ? [("beta", [inputChannels])] : [])
            + [("moving_mean", [inputChannels]), ("moving_variance", [inputChannels])]
    }

    /// γ and β train; the moving statistics never do.
    public var trainsVariables: Bool { center || scale }

    public func changesInTraining(batchStatistics: Bool) -> Bool { batchStatistics }

    /// The per-channel scale γ/√(var + ε) and shift β − μ·scale of inference, from a node's weights.
    func scaleAndShift(_ weights: LayerWeights) -> (scale: [Float], shift: [Float]) {
        BatchNormFolding.scaleAndShift(gamma: weights["gamma"]?.scalars, beta: weights["beta"]?.scalars,
                                       mean: weights["moving_mean"]!.scalars, variance: weights["moving_variance"]!.scalars,
                                       epsilon: epsilon)
    }

    func inferenceStep(_ node: GraphNode) -> InferenceStep? {
        let (scale, shift) = scaleAndShift(node.weights)
        return .batchNorm(input: node.inputs[0], scale: scale, shift: shift)
    }

    /// Batch statistics (kept for backward and the moving averages) or the moving ones.
    public func forward(_ pass: LayerForwardPass, saved: inout LayerSaved?) -> [Float] {
        let channels = pass.inputShape.last!
        let rows = pass.outputCount / channels
        let g = pass.optionalParameter("gamma")?.baseAddress, b = pass.optionalParameter("beta")?.baseAddress
        var output = pass.takeBuffer(pass.outputCount)  // overwritten
        pass.input.withUnsafeBufferPointer { x in
            output.withUnsafeMutableBufferPointer { y in
                if pass.usesBatchStatistics {
                    // From the pool: the graph takes them back with the tape's tables.
                    var mean = pass.takeBuffer(channels), variance = pass.takeBuffer(channels)
                    BatchNorm.forwardTraining(input: x.baseAddress!, rows: rows, channels: channels, gamma: g, beta: b,
                                              epsilon: epsilon, output: y.baseAddress!, mean: &mean, variance: &variance)
                    saved = .batchStatistics(mean: mean, variance: variance)
                } else {
                    let mean = pass.parameter("moving_mean"), variance = pass.parameter("moving_variance")
                    BatchNorm.forwardInference(input: x.baseAddress!, rows: rows, channels: channels, gamma: g, beta: b,
                                               mean: mean.baseAddress!, variance: variance.baseAddress!, epsilon: epsilon,
                                               output: y.baseAddress!)
                }
            }
        }
        return output
    }

    public func backward(_ pass: LayerBackwardPass, gradient: inout [Float]) -> InputGradients {
        let input = pass.input
        let channels = pass.inputShape.last!
        let rows = input.count / channels
        var dx: [Float]? = pass.needsInput[0] ? pass.takeBuffer(input.count) : nil  // overwritten
        let dg = pass.gradient("gamma")?.baseAddress, dbeta = pass.gradient("beta")?.baseAddress
        let g = pass.optionalParameter("gamma")?.baseAddress
        gradient.withUnsafeBufferPointer { dy in
            input.withUnsafeBufferPointer { x in
                withOptionalMutablePointer(&dx) { dxPointer in
                    if case .batchStatistics(let mean, let variance) = pass.saved {
                        BatchNorm.backwardTraining(outputGradient: dy.baseAddress!, input: x.baseAddress!, rows: rows, channels: channels,
                                                   gamma: g, mean: mean, variance: variance, epsilon: epsilon,
                                                   inputGradient: dxPointer, gammaGradient: dg, betaGradient: dbeta)
                    } else {
                        BatchNorm.backwardInference(outputGradient: dy.baseAddress!, input: x.baseAddress!, rows: rows, channels: channels,
                                                    gamma: g, mean: pass.parameter("moving_mean").baseAddress!,
                                                    variance: pass.parameter("moving_variance").baseAddress!, epsilon: epsilon,
                                                    inputGradient: dxPointer, gammaGradient: dg, betaGradient: dbeta)
                    }
                }
            }
        }
        return .single(dx)
    }
}
