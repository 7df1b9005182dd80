import CriaCore
import CriaKernels

/// Keras `Dropout`: inverted dropout in training steps, the identity otherwise.
public struct DropoutLayer: LayerDefinition, InferenceLowering {
    public let rate: Float

    public static let kerasClassNames = ["Dropout"]

    public static func parse(_ layer: KerasLayerReader) throws -> LayerKind {
        .dropout(rate: Float(layer.config["rate"]?.double ?? 0))
    }

    public func changesInTraining(batchStatistics: Bool) -> Bool { rate > 0 }

    func inferenceStep(_ node: GraphNode) -> InferenceStep? { .alias(input: node.inputs[0]) }

    /// Kept units are scaled by 1/(1 − rate), so inference needs no rescaling. The mask
    /// comes from `pass.seed`, so a step's masks are reproducible.
    public func forward(_ pass: LayerForwardPass, saved: inout LayerSaved?) -> [Float] {
        guard pass.training, rate > 0 else { return pass.input }
        let count = pass.outputCount, input = pass.input
        var output = pass.takeBuffer(count)  // overwritten
        var generator = SplitMix64(seed: pass.seed)
        let scale = 1 / (1 - rate)
        // The mask comes from the pool too; the graph takes it back with the tape's tables.
        var mask = pass.takeBuffer(count)  // overwritten
        for i in mask.indices { mask[i] = generator.nextUnitFloat() >= rate ? scale : 0 }
        for i in output.indices { output[i] = input[i] * mask[i] }
        saved = .dropoutMask(mask)
        return output
    }

    public func backward(_ pass: LayerBackwardPass, gradient: inout [Float]) -> InputGradients {
        guard case .dropoutMask(let mask) = pass.saved else { return .single(gradient) }
        // From the pool, as every gradient that the pool takes back afterwards must be:
        // a fresh array recycled each step would grow the pool by one buffer per step.
        var dx = pass.takeBuffer(gradient.count)  // overwritten
        for i in dx.indices { dx[i] = gradient[i] * mask[i] }
        return .single(dx)
    }
}
