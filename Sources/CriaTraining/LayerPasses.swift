import CriaCore
import CriaKernels
import CriaModel

/// The per-layer forward and backward passes of the trainable suffix: each layer kind's
/// definition (`CriaModel/Layers/`) computes them; this hands it the tape's values and a
/// view of the parameter store and buffer pool for its node.
extension TrainingGraph {
    func forwardNode(_ index: Int, tape: inout Tape, seed: UInt64) -> [Float] {
        let node = graph.nodes[index]
        var inputs = inputValues[index]
        inputValues[index] = []
        for (position, input) in node.inputs.enumerated() { inputs[position] = tape.values[input]! }
        var saved: LayerSaved?
        let output: [Float]
        do {
            let pass = LayerForwardPass(batch: tape.batch, training: tape.training,
                                        usesBatchStatistics: tape.training && bnMode == .train && node.trainable,
                                        inputs: inputs, inputShapes: inputShapes[index],
                                        outputShape: node.outputShape, seed: seed, storage: NodeStorage(graph: self, node: index))
            output = definitions[index].forward(pass, saved: &saved)
        }
        // The list drops its references to the tape's buffers (so that they stay unshared) and keeps its capacity.
        for position in inputs.indices { inputs[position] = [] }
        inputValues[index] = inputs
        switch saved {
        case .batchStatistics(let mean, let variance): tape.batchStatistics[index] = Tape.BatchStatistics(mean: mean, variance: variance)
        case .dropoutMask(let mask): tape.dropoutMasks[index] = mask
        case nil: break
        }
        return output
    }

    /// Returns the gradients of its inputs, and writes the gradients of this layer's
    /// trainable variables into their places in the parameter store (`gradientBuffer`).
    /// `gradient` may be masked in place (the activation's derivative) and recycled.
    func backwardNode(_ index: Int, gradient: inout [Float], tape: Tape, needsInput: [Bool]) -> InputGradients {
        let node = graph.nodes[index]
        var saved: LayerSaved?
        if let statistics = tape.batchStatistics[index] {
            saved = .batchStatistics(mean: statistics.mean, variance: statistics.variance)
        } else if let mask = tape.dropoutMasks[index] {
            saved = .dropoutMask(mask)
        }
        let pass = LayerBackwardPass(batch: tape.batch, input: node.inputs.first.map { tape.values[$0]! } ?? [],
                                     inputShape: node.inputs.first.map { graph.nodes[$0].outputShape } ?? [],
                                     outputShape: node.outputShape,
                                     output: tape.values[index] ?? [],  // released already when this layer's backward does not read it
                                     needsInput: needsInput, saved: saved, storage: NodeStorage(graph: self, node: index))
        return definitions[index].backward(pass, gradient: &gradient)
    }

    static func clamp(for activation: ActivationFunction) -> Clamp { activation.kernelClamp }

    /// Multiplies a gradient by the activation's derivative, written in terms of its output.
    static func maskByOutput(_ gradient: inout [Float], output: [Float], activation: ActivationFunction) {
        activation.maskGradient(&gradient, output: output)
    }
}

/// One node's view of the training engine: its variables in the parameter store and the buffer pool.
private struct NodeStorage: LayerPassStorage {
    let graph: TrainingGraph
    let node: Int

    func parameter(_ name: String) -> UnsafeMutableBufferPointer<Float>? { graph.optionalParameter(node, name) }
    func gradient(_ name: String) -> UnsafeMutableBufferPointer<Float>? { graph.gradientBuffer(node, name) }
    func takeBuffer(_ count: Int) -> [Float] { graph.takeBuffer(count) }
    func recycle(_ buffer: inout [Float]) { graph.recycle(&buffer) }
}
