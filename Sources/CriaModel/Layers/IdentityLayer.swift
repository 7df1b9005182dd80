import CriaCore

/// A layer that passes its input through at inference: Keras's random augmentation
/// layers (no-ops when `training` is false), and the InputLayer of a nested model.
public struct IdentityLayer: LayerDefinition, InferenceLowering {
    /// Keras's random augmentation layers are no-ops when `training` is false.
    public static let kerasClassNames = [
        "RandomFlip", "RandomRotation", "RandomZoom", "RandomTranslation", "RandomContrast",
        "RandomBrightness", "GaussianNoise", "GaussianDropout", "AlphaDropout", "SpatialDropout2D",
        "ActivityRegularization",
    ].sorted()

    public static func parse(_ layer: KerasLayerReader) throws -> LayerKind { .identity }

    func inferenceStep(_ node: GraphNode) -> InferenceStep? { .alias(input: node.inputs[0]) }

    public func forward(_ pass: LayerForwardPass, saved: inout LayerSaved?) -> [Float] { pass.input }

    public func backward(_ pass: LayerBackwardPass, gradient: inout [Float]) -> InputGradients { .single(gradient) }
}
