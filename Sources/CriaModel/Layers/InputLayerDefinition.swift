import CriaCore

/// Keras `InputLayer`: the image batch (N, H, W, C) the model takes; H and W may be left
/// to the caller (`--size`). A nested model's InputLayer becomes an `IdentityLayer`.
public struct InputLayerDefinition: LayerDefinition, InferenceLowering {
    public let height: Int?
    public let width: Int?
    public let channels: Int?

    public static let kerasClassNames = ["InputLayer"]

    public static func parse(_ layer: KerasLayerReader) throws -> LayerKind {
        let shape = (layer.config["batch_shape"] ?? layer.config["batch_input_shape"])?.array ?? []
        guard shape.count == 4 || shape.isEmpty else {
            throw layer.fail("input shape \(shape.map { $0.int.map(String.init) ?? "None" }) is not an image batch (N, H, W, C)")
        }
        return .input(height: shape.count == 4 ? shape[1].int : nil, width: shape.count == 4 ? shape[2].int : nil,
                      channels: shape.count == 4 ? shape[3].int : nil)
    }

    public func outputShape(_ shapes: LayerShapes) throws -> [Int] {
        guard let h = height ?? shapes.imageSize.height, let w = width ?? shapes.imageSize.width else {
            throw shapes.fail("the input size is not fixed by the model; pass --size")
        }
        return [h, w, channels ?? 3]
    }

    /// The input is where the executor puts the batch: no step computes it.
    func inferenceStep(_ node: GraphNode) -> InferenceStep? { nil }

    public func forward(_ pass: LayerForwardPass, saved: inout LayerSaved?) -> [Float] { pass.input }

    public func backward(_ pass: LayerBackwardPass, gradient: inout [Float]) -> InputGradients { .single(gradient) }
}
