import CriaCore
import CriaKerasIO

/// One layer of a model, with nested models flattened into the outer graph.
public struct GraphNode: Sendable {
    public let name: String
    public let className: String
    public let kind: LayerKind
    /// Indices of the nodes whose outputs feed this one.
    public internal(set) var inputs: [Int]
    /// Output shape without the batch axis: [H, W, C] for images, [C] after pooling.
    public internal(set) var outputShape: [Int]
    /// The (possibly nested) model this layer belongs to, and its index in that
    /// model's `layers`, so that `fine_tune_at` means what it means in Keras.
    public let owner: String
    public let indexInOwner: Int
    public internal(set) var trainable: Bool
    public internal(set) var weights: LayerWeights
    /// Whether Keras calls this layer with `training=False` (inside a base called that way).
    public let forcedInference: Bool
}

/// A Keras model as a flat, topologically ordered list of nodes with weights.
public struct ModelGraph: Sendable {
    public let name: String
    public internal(set) var nodes: [GraphNode]
    public let inputNode: Int
    public let outputNode: Int
    /// Layer names of each model (outer and nested) in Keras's `model.layers` order.
    public let modelLayers: [String: [String]]
    public let config: KerasModelConfig

    public var inputShape: [Int] { nodes[inputNode].outputShape }
    public var outputShape: [Int] { nodes[outputNode].outputShape }

    public func index(of layerName: String) -> Int? {
        if let index = nodes.firstIndex(where: { $0.name == layerName }) { return index }
        // Accept "model/layer" for layers of a nested model.
        let parts = layerName.split(separator: "/", maxSplits: 1).map(String.init)
        if parts.count == 2 { return nodes.firstIndex { $0.owner == parts[0] && $0.name == parts[1] } }
        return nil
    }

    public var parameterCount: Int { nodes.reduce(0) { $0 + $1.weights.values.reduce(0) { $0 + $1.count } } }

    /// Builds the graph from a config, inferring shapes for `inputHeight`×`inputWidth`
    /// when the config leaves them open. Weights are attached by `attachWeights`.
    public init(config: KerasModelConfig, inputHeight: Int? = nil, inputWidth: Int? = nil, source: String) throws {
        self.name = config.name
        self.config = config
        var flattener = Flattener(source: source)
        let outputs = try flattener.add(model: config, inputNodes: nil, forcedInference: false, inputSize: (inputHeight, inputWidth))
        guard outputs.count == 1 else {
            throw CriaError("\(source): model \(config.name) has \(outputs.count) outputs; Cria supports one")
        }
        nodes = flattener.nodes
        modelLayers = flattener.modelLayers
        guard let input = nodes.firstIndex(where: { if case .input = $0.kind { return true }; return false }) else {
            throw CriaError("\(source): model \(config.name) has no InputLayer")
        }
        inputNode = input
        outputNode = outputs[0]
    }

    /// Attaches weights by layer and variable name, checking every shape.
    ///
    /// Extra weights in the file are ignored (Keras's `by_name` loading does the
    /// same, which lets a file with a top feed a model without one).
    /// Layers named in `skipping` keep the weights they have (a new head, for instance).
    public mutating func attachWeights(from file: KerasFile, skipping: Set<String> = []) throws {
        var file = file
        if !file.unnamedWeights.isEmpty { try file.resolveUnnamedWeights(paths: keras3ObjectPaths()) }
        for index in nodes.indices where !skipping.contains(nodes[index].name) {
            let node = nodes[index]
            let inputChannels = node.inputs.first.map { nodes[$0].outputShape.last ?? 0 } ?? 0
            let expected = node.kind.expectedWeights(inputChannels: inputChannels)
            guard !expected.isEmpty else { continue }
            guard let found = file.weights[node.name] else {
                throw CriaError("\(file.displayName): layer \(node.name) (\(node.className)) has no weights in the file; expected "
                    + expected.map { "\($0.name) \(describeShape($0.shape))" }.joined(separator: ", ") + alphaHint(file))
            }
            var weights: LayerWeights = [:]
            for (variable, shape) in expected {
                guard let tensor = found[variable] else {
                    throw CriaError("\(file.displayName): layer \(node.name): variable \(variable) is missing (found: \(found.keys.sorted().joined(separator: ", ")))")
                }
                guard tensor.shape == shape else {
                    throw CriaError("\(file.displayName): layer \(node.name): \(variable) has shape \(describeShape(tensor.shape)), the model expects \(describeShape(shape))" + alphaHint(file))
                }
                weights[variable] = tensor
            }
            nodes[index].weights = weights
        }
        // An adapted Normalization layer keeps mean and variance as weights, not in its config.
        for index in nodes.indices {
            guard case .normalization(let mean, let variance) = nodes[index].kind, mean == nil || variance == nil else { continue }
            guard let found = file.weights[nodes[index].name], found["mean"] != nil, found["variance"] != nil else {
                throw CriaError("\(file.displayName): Normalization layer \(nodes[index].name) has no mean/variance in its config or the file")
            }
            nodes[index].weights = found
        }
    }

    /// When shapes disagree on a MobileNetV2, the usual cause is a file for another alpha: say which.
    private func alphaHint(_ file: KerasFile) -> String {
        guard let kernel = file.weights["block_16_project"]?["kernel"], kernel.shape.count == 4,
              let ours = nodes.first(where: { $0.name == "block_16_project" }),
              case .conv2D(let spec) = ours.kind, spec.filters != kernel.shape[3] else { return "" }
        let candidates = MobileNetV2.publishedAlphas.filter { MobileNetV2.makeDivisible(Double(Int(320 * $0))) == kernel.shape[3] }
        guard !candidates.isEmpty else { return "" }
        return " (the file looks like a MobileNetV2 with alpha \(candidates.map { formatShort($0) }.joined(separator: " or ")); pass --alpha accordingly)"
    }

    /// Keras 3's object paths (`layers/functional/layers/conv2d_3`) for every layer with
    /// weights, reproducing the names `saving_lib` gives containers of layers.
    func keras3ObjectPaths() -> [String: (layer: String, snakeClass: String, config: JSONValue)] {
        var result: [String: (layer: String, snakeClass: String, config: JSONValue)] = [:]
        func walk(_ model: KerasModelConfig, prefix: String) {
            var used: [String: Int] = [:]
            for layer in model.layers {
                let stem = LayerKind.snakeCase(layer.className)
                let unique: String
                if let count = used[stem] { used[stem] = count + 1; unique = "\(stem)_\(count + 1)" } else { used[stem] = 0; unique = stem }
                let path = prefix + "layers/" + unique
                if let nested = layer.nested { walk(nested, prefix: path + "/") } else {
                    result[path] = (layer.name, stem, layer.config)
                }
            }
        }
        walk(config, prefix: "")
        return result
    }
}

func formatShort(_ value: Double) -> String {
    value == value.rounded() ? String(format: "%.1f", value) : String(value)
}

/// Turns nested model configs into one flat node list, resolving each nested
/// model's inputs to the outer tensors it is called on.
private struct Flattener {
    let source: String
    var nodes: [GraphNode] = []
    var modelLayers: [String: [String]] = [:]

    init(source: String) { self.source = source }

    /// `trainable` is false inside a model whose own flag is off: Keras's `base.trainable = False`
    /// freezes every layer of the base whatever the layers' own flags say.
    mutating func add(model: KerasModelConfig, inputNodes: [Int]?, forcedInference: Bool,
                      inputSize: (Int?, Int?), trainable: Bool = true) throws -> [Int] {
        var produced: [String: Int] = [:]
        modelLayers[model.name] = model.layers.map(\.name)
        for (index, layer) in model.layers.enumerated() {
            let inputs = try layer.inputs.map { reference -> Int in
                guard let node = produced[reference.layer] else {
                    throw CriaError("\(source): layer \(layer.name) takes the output of \(reference.layer), which is not defined before it")
                }
                return node
            }
            if let nested = layer.nested {
                let outputs = try add(model: nested, inputNodes: inputs, forcedInference: forcedInference || layer.trainingArgument == false,
                                      inputSize: inputSize, trainable: trainable && layer.trainable)
                guard outputs.count == 1 else { throw CriaError("\(source): nested model \(layer.name) has \(outputs.count) outputs") }
                produced[layer.name] = outputs[0]
                continue
            }
            var kind = try LayerKind.parse(layer, source: source)
            var nodeInputs = inputs
            if case .input = kind, let inputNodes {
                // A nested model's InputLayer stands for the tensor the model is called on.
                guard let position = model.inputs.firstIndex(where: { $0.layer == layer.name }), position < inputNodes.count else {
                    throw CriaError("\(source): nested model \(model.name): input \(layer.name) is not connected")
                }
                kind = .identity
                nodeInputs = [inputNodes[position]]
            }
            let shape = try outputShape(kind: kind, layer: layer.name, inputs: nodeInputs, inputSize: inputSize)
            nodes.append(GraphNode(name: uniqueName(layer.name, owner: model.name), className: layer.className, kind: kind,
                                   inputs: nodeInputs, outputShape: shape, owner: model.name, indexInOwner: index,
                                   trainable: trainable && layer.trainable, weights: [:],
                                   forcedInference: forcedInference || layer.trainingArgument == false))
            produced[layer.name] = nodes.count - 1
        }
        return try model.outputs.map { reference in
            guard let node = produced[reference.layer] else {
                throw CriaError("\(source): model \(model.name) outputs \(reference.layer), which is not one of its layers")
            }
            return node
        }
    }

    private func uniqueName(_ name: String, owner: String) -> String {
        nodes.contains { $0.name == name } ? "\(owner)/\(name)" : name
    }

    private func outputShape(kind: LayerKind, layer: String, inputs: [Int], inputSize: (Int?, Int?)) throws -> [Int] {
        let shapes = LayerShapes(inputs: inputs.map { nodes[$0].outputShape }, imageSize: inputSize,
                                 fail: { CriaError("\(source): layer \(layer): \($0)") })
        return try kind.definition.outputShape(shapes)
    }
}

extension ModelGraph {
    /// The nodes before `boundary` as a graph of their own (outputs read by name),
    /// so a frozen prefix can run through the fused inference path alone.
    public func prefix(before boundary: Int) -> ModelGraph {
        var copy = self
        copy.nodes = Array(nodes.prefix(boundary))
        return copy
    }

    /// Weights are edited in place by training; this sets one layer's variables.
    public mutating func setWeights(_ weights: LayerWeights, forNode index: Int) {
        nodes[index].weights = weights
    }

    public mutating func setTrainable(_ trainable: Bool, forNode index: Int) {
        nodes[index].trainable = trainable
    }
}
