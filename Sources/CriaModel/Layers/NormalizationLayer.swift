import CriaCore
import CriaKernels

/// Keras `Normalization` over the channel axis: `(x − mean) / max(√variance, ε)`, with
/// mean and variance from its config or, once adapted, from the weights file.
public struct NormalizationLayer: LayerDefinition, InferenceLowering {
    public let mean: [Float]?
    public let variance: [Float]?

    public static let kerasClassNames = ["Normalization"]

    public static func parse(_ layer: KerasLayerReader) throws -> LayerKind {
        let config = layer.config
        if let axis = config["axis"]?.int, axis != -1, axis != 3 { throw layer.fail("axis \(axis) is not the channel axis") }
        if config["invert"]?.bool == true { throw layer.fail("invert=True is not supported") }
        func floats(_ key: String) -> [Float]? {
            if let value = config[key]?.double { return [Float(value)] }
            return config[key]?.array?.compactMap { $0.double.map(Float.init) }
        }
        return .normalization(mean: floats("mean"), variance: floats("variance"))
    }

    func inferenceStep(_ node: GraphNode) -> InferenceStep? {
        let channels = node.outputShape.last ?? 1
        let means = mean ?? node.weights["mean"]?.scalars ?? []
        let variances = variance ?? node.weights["variance"]?.scalars ?? []
        // Keras: (x - mean) / max(sqrt(variance), epsilon), with mean/variance broadcast over channels.
        let scale = (0..<channels).map { c in 1 / max(Float(variances[variances.count == 1 ? 0 : c]).squareRoot(), 1e-7) }
        let shift = (0..<channels).map { c in -means[means.count == 1 ? 0 : c] * scale[c] }
        return .affine(input: node.inputs[0], scale: scale, shift: shift)
    }

    /// Normalization sits before the base in the frozen prefix; it is never trained, so
    /// the training passes do not compute it.
    public func forward(_ pass: LayerForwardPass, saved: inout LayerSaved?) -> [Float] { pass.input }

    public func backward(_ pass: LayerBackwardPass, gradient: inout [Float]) -> InputGradients { .single(gradient) }
}
