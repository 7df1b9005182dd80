import CriaModel

extension ModelGraph {
    /// Forward multiply-adds per image of every node, from the layer shapes:
    /// a convolution costs output pixels × filters × kernel window × input
    /// channels, a depthwise one output pixels × channels × window, Dense
    /// inputs × units. BatchNorm, activations, padding, adds and pooling are
    /// counted as none (they are not multiply-adds of a GEMM or a filter), as
    /// the MobileNetV2 paper's 300 M figure counts.
    public var multiplyAddsPerNode: [Int] {
        nodes.map { node in
            let inputShape = node.inputs.first.map { nodes[$0].outputShape } ?? []
            return node.kind.definition.multiplyAdds(inputShape: inputShape, outputShape: node.outputShape)
        }
    }

    /// Multiply-adds per image of the whole forward pass.
    public var multiplyAdds: Int { multiplyAddsPerNode.reduce(0, +) }

    /// Forward multiply-adds per image of the layers that train under the
    /// current trainable flags (after `applyFreezing`).
    public var trainableMultiplyAdds: Int {
        zip(nodes.indices, multiplyAddsPerNode).reduce(0) { sum, pair in
            sum + (hasTrainableVariables(pair.0) ? pair.1 : 0)
        }
    }
}

/// The speed limit of a training step at one depth, from the cost model:
/// backward costs about twice the forward multiply-adds of the trainable part,
/// so a step cannot beat inference ÷ (1 + 2 × trainable / all multiply-adds).
public func trainingBound(inferenceImagesPerSecond: Double, trainableMultiplyAdds: Int, allMultiplyAdds: Int) -> Double {
    inferenceImagesPerSecond / (1 + 2 * Double(trainableMultiplyAdds) / Double(max(1, allMultiplyAdds)))
}
