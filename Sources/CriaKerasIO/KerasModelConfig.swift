import CriaCore

/// A reference to one output tensor of a layer, as Keras's `keras_history`
/// and Keras 2's inbound-node tuples write it: (layer, node index, tensor index).
public struct TensorReference: Equatable, Sendable {
    public var layer: String
    public var node: Int
    public var tensor: Int

    public init(layer: String, node: Int = 0, tensor: Int = 0) {
        self.layer = layer
        self.node = node
        self.tensor = tensor
    }
}

/// One layer of a Keras model config, in either Keras 2 or Keras 3 dialect.
///
/// `inputs` holds the tensors the layer is called on (one call only; Cria
/// rejects shared layers), `nested` the model config when the layer is itself
/// a Functional or Sequential model, as MobileNetV2 is inside a transfer model.
public struct KerasLayerConfig: Equatable, Sendable {
    public var className: String
    public var name: String
    public var config: JSONValue
    public var inputs: [TensorReference]
    /// The `training` argument the layer was called with, when given (the tutorial's `base(x, training=False)`).
    public var trainingArgument: Bool?
    public var nested: KerasModelConfig?

    public init(className: String, name: String, config: JSONValue, inputs: [TensorReference],
                trainingArgument: Bool? = nil, nested: KerasModelConfig? = nil) {
        self.className = className
        self.name = name
        self.config = config
        self.inputs = inputs
        self.trainingArgument = trainingArgument
        self.nested = nested
    }

    public var trainable: Bool { config["trainable"]?.bool ?? true }
}

/// A Functional or Sequential model config, normalised so that Sequential
/// models become a chain of explicit connections.
public struct KerasModelConfig: Equatable, Sendable {
    public var className: String
    public var name: String
    public var layers: [KerasLayerConfig]
    public var inputs: [TensorReference]
    public var outputs: [TensorReference]

    public init(className: String, name: String, layers: [KerasLayerConfig],
                inputs: [TensorReference], outputs: [TensorReference]) {
        self.className = className
        self.name = name
        self.layers = layers
        self.inputs = inputs
        self.outputs = outputs
    }

    public static let modelClassNames: Set<String> = ["Functional", "Model", "Sequential"]

    /// Parses the `model_config` attribute of an `.h5` file or the `config.json` of a `.keras` archive.
    public static func parse(_ json: JSONValue, source: String) throws -> KerasModelConfig {
        guard let className = json["class_name"]?.string, let config = json["config"] else {
            throw CriaError("\(source): model config has no class_name/config")
        }
        return try parseModel(className: className, config: config, source: source)
    }

    static func parseModel(className: String, config: JSONValue, source: String) throws -> KerasModelConfig {
        let name = config["name"]?.string ?? className.lowercased()
        guard let layerList = config["layers"]?.array else {
            throw CriaError("\(source): model \(name) (\(className)) has no layer list; subclassed models cannot be rebuilt from a config")
        }
        if className == "Sequential" {
            return try parseSequential(name: name, config: config, layers: layerList, source: source)
        }
        guard modelClassNames.contains(className) else {
            throw CriaError("\(source): \(className) is not a Functional or Sequential model")
        }
        let layers = try layerList.map { try parseLayer($0, source: source) }
        return KerasModelConfig(className: "Functional", name: name, layers: layers,
                                inputs: try references(config["input_layers"], source: source),
                                outputs: try references(config["output_layers"], source: source))
    }

    /// Sequential configs list layers without connections; each feeds the next.
    private static func parseSequential(name: String, config: JSONValue, layers layerList: [JSONValue],
                                        source: String) throws -> KerasModelConfig {
        var layers: [KerasLayerConfig] = []
        for entry in layerList {
            var layer = try parseLayer(entry, source: source, connected: false)
            if layers.isEmpty, layer.className != "InputLayer" {
                // Keras 2 puts the input shape on the first layer instead of an InputLayer.
                let shape = layer.config["batch_input_shape"] ?? layer.config["batch_shape"] ?? config["build_input_shape"]
                guard let shape else {
                    throw CriaError("\(source): Sequential model \(name) has no input shape; Cria needs a built model")
                }
                layers.append(KerasLayerConfig(className: "InputLayer", name: "\(name)_input",
                                               config: ["batch_shape": shape, "name": .string("\(name)_input")], inputs: []))
            }
            if let previous = layers.last { layer.inputs = [TensorReference(layer: previous.name)] }
            layers.append(layer)
        }
        guard let first = layers.first, let last = layers.last else {
            throw CriaError("\(source): Sequential model \(name) is empty")
        }
        return KerasModelConfig(className: "Sequential", name: name, layers: layers,
                                inputs: [TensorReference(layer: first.name)], outputs: [TensorReference(layer: last.name)])
    }

    private static func parseLayer(_ entry: JSONValue, source: String, connected: Bool = true) throws -> KerasLayerConfig {
        guard let className = entry["class_name"]?.string, let config = entry["config"] else {
            throw CriaError("\(source): a layer entry has no class_name/config")
        }
        let name = entry["name"]?.string ?? config["name"]?.string ?? className
        var nested: KerasModelConfig?
        if modelClassNames.contains(className) {
            nested = try parseModel(className: className, config: config, source: source)
        }
        var inputs: [TensorReference] = []
        var training: Bool?
        if connected, let nodes = entry["inbound_nodes"]?.array, !nodes.isEmpty {
            guard nodes.count == 1 else {
                throw CriaError("\(source): layer \(name) is called \(nodes.count) times; Cria does not support shared layers")
            }
            (inputs, training) = try parseNode(nodes[0], layer: name, source: source)
        }
        return KerasLayerConfig(className: className, name: name, config: config, inputs: inputs,
                                trainingArgument: training, nested: nested)
    }

    /// Keras 3 writes `{"args": [...], "kwargs": {...}}` with `__keras_tensor__`
    /// entries; Keras 2 writes a list of `[layer, node, tensor, kwargs]` tuples.
    private static func parseNode(_ node: JSONValue, layer: String, source: String) throws -> ([TensorReference], Bool?) {
        if let args = node["args"] {
            var references: [TensorReference] = []
            collectKerasTensors(args, into: &references)
            return (references, node["kwargs"]?["training"]?.bool)
        }
        guard let tuples = node.array else {
            throw CriaError("\(source): layer \(layer) has an inbound node Cria cannot read")
        }
        var references: [TensorReference] = []
        var training: Bool?
        for tuple in tuples {
            guard let layerName = tuple[0]?.string else {
                throw CriaError("\(source): layer \(layer) has an inbound node Cria cannot read")
            }
            references.append(TensorReference(layer: layerName, node: tuple[1]?.int ?? 0, tensor: tuple[2]?.int ?? 0))
            if let value = tuple[3]?["training"]?.bool { training = value }
        }
        return (references, training)
    }

    private static func collectKerasTensors(_ value: JSONValue, into references: inout [TensorReference]) {
        switch value {
        case .array(let items):
            items.forEach { collectKerasTensors($0, into: &references) }
        case .object:
            if value["class_name"]?.string == "__keras_tensor__", let history = value["config"]?["keras_history"],
               let layer = history[0]?.string {
                references.append(TensorReference(layer: layer, node: history[1]?.int ?? 0, tensor: history[2]?.int ?? 0))
            }
        default:
            break
        }
    }

    /// `input_layers`/`output_layers`: Keras 3 writes a single `[name, 0, 0]` for
    /// one tensor, Keras 2 always a list of such triples.
    private static func references(_ value: JSONValue?, source: String) throws -> [TensorReference] {
        guard let items = value?.array, !items.isEmpty else {
            throw CriaError("\(source): model config has no input_layers/output_layers")
        }
        if let name = items[0].string {
            return [TensorReference(layer: name, node: value?[1]?.int ?? 0, tensor: value?[2]?.int ?? 0)]
        }
        return try items.map { item in
            guard let name = item[0]?.string else { throw CriaError("\(source): malformed input_layers/output_layers") }
            return TensorReference(layer: name, node: item[1]?.int ?? 0, tensor: item[2]?.int ?? 0)
        }
    }

    /// Serialises to the JSON Keras 3 writes as a legacy `.h5` `model_config` (and
    /// that `keras.models.load_model` rebuilds): see `KerasConfigWriter`.
    public func kerasJSON() -> JSONValue {
        KerasConfigWriter.modelJSON(self)
    }
}
