import CriaCore
import Foundation

/// Serialises a `KerasModelConfig` in the dialect Keras 3 itself writes into a
/// legacy `.h5` (`saving_options.keras_option_scope(use_legacy_config=True)`):
/// layer entries are `{"class_name", "config", "name", "inbound_nodes"}` with no
/// `module` key, which routes every layer through `saving_utils.model_from_config`
/// on load — the path Keras uses for its own legacy files, so configs read from
/// Keras 2, Keras 3 or built by Cria all deserialise the same way.
enum KerasConfigWriter {
    /// Output shapes (batch axis first, `nil` for unknown) keyed by layer name,
    /// needed because Keras 3 rebuilds every `__keras_tensor__` argument with
    /// `KerasTensor(shape, dtype)` before resolving its `keras_history`.
    typealias Shapes = [String: [Int?]]

    static func modelJSON(_ model: KerasModelConfig) -> JSONValue {
        let shapes = inferShapes(model, inputShapes: nil)
        return ["class_name": .string(containerClass(model.className)),
                "config": modelConfigBody(model, trainable: true, shapes: shapes)]
    }

    /// `Model` deserialises to `Functional` in Keras 3; Cria's parser already maps
    /// Functional/Model to "Functional", so only Sequential stays distinct.
    static func containerClass(_ className: String) -> String {
        className == "Sequential" ? "Sequential" : "Functional"
    }

    private static func modelConfigBody(_ model: KerasModelConfig, trainable: Bool, shapes: Shapes) -> JSONValue {
        var body: [String: JSONValue] = ["name": .string(model.name), "trainable": .bool(trainable)]
        if model.className == "Sequential" {
            body["dtype"] = dtypePolicy("float32")
            body["layers"] = .array(model.layers.map { layerEntry($0, connected: false, shapes: shapes) })
            if let input = model.layers.first, input.className == "InputLayer" {
                if let shape = batchShape(of: input) { body["build_input_shape"] = .array(shape.map(optionalNumber)) }
            }
            return .object(body)
        }
        body["layers"] = .array(model.layers.map { layerEntry($0, connected: true, shapes: shapes) })
        let triple: (TensorReference) -> JSONValue = {
            [.string($0.layer), .number(Double($0.node)), .number(Double($0.tensor))]
        }
        // Keras 3 writes a bare triple for a single input/output and a list of triples otherwise.
        body["input_layers"] = model.inputs.count == 1 ? triple(model.inputs[0]) : .array(model.inputs.map(triple))
        body["output_layers"] = model.outputs.count == 1 ? triple(model.outputs[0]) : .array(model.outputs.map(triple))
        return .object(body)
    }

    private static func layerEntry(_ layer: KerasLayerConfig, connected: Bool, shapes: Shapes) -> JSONValue {
        var entry: [String: JSONValue] = [:]
        if let nested = layer.nested {
            entry["class_name"] = .string(containerClass(nested.className))
            entry["config"] = modelConfigBody(nested, trainable: layer.trainable, shapes: shapes)
        } else {
            entry["class_name"] = .string(layer.className)
            entry["config"] = layerConfig(layer)
        }
        guard connected else { return .object(entry) }
        entry["name"] = .string(layer.name)
        if layer.inputs.isEmpty {
            entry["inbound_nodes"] = []
        } else {
            let tensors: [JSONValue] = layer.inputs.map { reference in
                let shape = shapes[reference.layer] ?? []
                return ["class_name": "__keras_tensor__",
                        "config": ["shape": .array(shape.map(optionalNumber)), "dtype": "float32",
                                   "keras_history": [.string(reference.layer), .number(Double(reference.node)),
                                                     .number(Double(reference.tensor))]]]
            }
            var kwargs: [String: JSONValue] = [:]
            if let training = layer.trainingArgument { kwargs["training"] = .bool(training) }
            // One tensor is passed as the single positional argument; several (Add) as one list argument.
            let args: JSONValue = tensors.count == 1 ? .array(tensors) : [.array(tensors)]
            entry["inbound_nodes"] = [["args": args, "kwargs": .object(kwargs)]]
        }
        return .object(entry)
    }

    /// Keras 3's constructor arguments for one layer. Configs from real files keep
    /// all their fields; Cria's builder gives the minimal set and Keras fills in
    /// defaults. Keras 2 leftovers that Keras 3 constructors reject are dropped.
    static func layerConfig(_ layer: KerasLayerConfig) -> JSONValue {
        var fields = layer.config.object ?? [:]
        fields["name"] = .string(layer.name)
        if layer.className == "InputLayer" {
            // InputLayer rejects unknown keyword arguments (trainable, batch_input_shape, ...).
            var input: [String: JSONValue] = ["name": .string(layer.name), "sparse": fields["sparse"] ?? false,
                                              "ragged": fields["ragged"] ?? false, "optional": fields["optional"] ?? false]
            input["batch_shape"] = batchShape(of: layer).map { JSONValue.array($0.map(optionalNumber)) } ?? .null
            input["dtype"] = .string(dtypeName(fields["dtype"]))
            return .object(input)
        }
        // Sequential's explicit InputLayer carries the shape; Keras 2 also put it on the first layer.
        fields.removeValue(forKey: "batch_input_shape")
        fields.removeValue(forKey: "batch_shape")
        if layer.className == "DepthwiseConv2D" {
            // tf-keras writes Conv2D's `groups` into DepthwiseConv2D configs; Keras 3's constructor
            // rejects it (Keras 3 cannot load tf-keras MobileNetV2 files for this reason alone).
            fields.removeValue(forKey: "groups")
        }
        fields["trainable"] = .bool(layer.trainable)
        fields["dtype"] = dtypePolicy(dtypeName(fields["dtype"]))
        return .object(fields)
    }

    static func dtypePolicy(_ name: String) -> JSONValue {
        ["module": "keras", "class_name": "DTypePolicy", "config": ["name": .string(name)], "registered_name": nil]
    }

    /// "float32" from either a plain dtype string or a DTypePolicy object.
    static func dtypeName(_ value: JSONValue?) -> String {
        if let name = value?.string { return name }
        if let name = value?["config"]?["name"]?.string { return name }
        return "float32"
    }

    static func batchShape(of layer: KerasLayerConfig) -> [Int?]? {
        guard let shape = (layer.config["batch_shape"] ?? layer.config["batch_input_shape"])?.array else { return nil }
        return shape.map { $0.int }
    }

    static func optionalNumber(_ value: Int?) -> JSONValue { value.map { .number(Double($0)) } ?? .null }

    // MARK: Shapes

    /// Output shape of every layer (nested models included, by their own layer
    /// names) for the layer classes Cria builds; other classes pass their input
    /// shape through, which is only used as a placeholder by Keras.
    static func inferShapes(_ model: KerasModelConfig, inputShapes: [[Int?]]?) -> Shapes {
        var shapes: Shapes = [:]
        infer(model, inputShapes: inputShapes, into: &shapes)
        return shapes
    }

    @discardableResult
    private static func infer(_ model: KerasModelConfig, inputShapes: [[Int?]]?, into shapes: inout Shapes) -> [[Int?]] {
        for layer in model.layers {
            let inputs = layer.inputs.map { shapes[$0.layer] ?? [] }
            if let nested = layer.nested {
                let outputs = infer(nested, inputShapes: inputs, into: &shapes)
                shapes[layer.name] = outputs.first ?? []
                continue
            }
            if layer.className == "InputLayer" {
                if let inputShapes, let position = model.inputs.firstIndex(where: { $0.layer == layer.name }),
                   position < inputShapes.count {
                    shapes[layer.name] = inputShapes[position]
                } else if let inputShapes, layer.inputs.isEmpty, model.className == "Sequential", let first = inputShapes.first {
                    shapes[layer.name] = first
                } else {
                    shapes[layer.name] = batchShape(of: layer) ?? [nil]
                }
                continue
            }
            shapes[layer.name] = outputShape(layer, input: inputs.first ?? [])
        }
        return model.outputs.map { shapes[$0.layer] ?? [] }
    }

    private static func outputShape(_ layer: KerasLayerConfig, input: [Int?]) -> [Int?] {
        let config = layer.config
        func pair(_ key: String, _ fallback: Int) -> (Int, Int) {
            if let single = config[key]?.int { return (single, single) }
            return (config[key]?[0]?.int ?? fallback, config[key]?[1]?.int ?? fallback)
        }
        switch layer.className {
        case "Conv2D", "DepthwiseConv2D":
            guard input.count == 4 else { return input }
            let (kh, kw) = pair("kernel_size", 1), (sh, sw) = pair("strides", 1), (dh, dw) = pair("dilation_rate", 1)
            let same = config["padding"]?.string == "same"
            func size(_ n: Int?, _ k: Int, _ s: Int, _ d: Int) -> Int? {
                guard let n else { return nil }
                let effective = (k - 1) * d + 1
                return same ? (n + s - 1) / s : (n - effective) / s + 1
            }
            let channels = layer.className == "Conv2D" ? config["filters"]?.int
                : input[3].map { $0 * (config["depth_multiplier"]?.int ?? 1) }
            return [input[0], size(input[1], kh, sh, dh), size(input[2], kw, sw, dw), channels]
        case "ZeroPadding2D":
            guard input.count == 4 else { return input }
            let padding = config["padding"]
            var (top, bottom, left, right) = (1, 1, 1, 1)
            if let all = padding?.int {
                (top, bottom, left, right) = (all, all, all, all)
            } else if let rows = padding?[0]?.int, let columns = padding?[1]?.int {
                (top, bottom, left, right) = (rows, rows, columns, columns)
            } else if let rows = padding?[0], let columns = padding?[1] {
                (top, bottom, left, right) = (rows[0]?.int ?? 0, rows[1]?.int ?? 0, columns[0]?.int ?? 0, columns[1]?.int ?? 0)
            }
            return [input[0], input[1].map { $0 + top + bottom }, input[2].map { $0 + left + right }, input[3]]
        case "GlobalAveragePooling2D", "GlobalMaxPooling2D":
            guard input.count == 4 else { return input }
            return config["keepdims"]?.bool == true ? [input[0], 1, 1, input[3]] : [input[0], input[3]]
        case "Dense":
            guard !input.isEmpty else { return input }
            return Array(input.dropLast()) + [config["units"]?.int]
        case "Flatten":
            guard let batch = input.first else { return input }
            let rest = input.dropFirst()
            return [batch, rest.contains(where: { $0 == nil }) ? nil : rest.reduce(1) { $0 * $1! }]
        default:
            return input
        }
    }

    // MARK: JSON text

    /// Deterministic JSON (sorted keys) escaped to pure ASCII, as Python's
    /// `json.dumps` writes it: the attribute is tagged ASCII like Keras's own.
    static func asciiJSON(_ value: JSONValue) -> String {
        var output = ""
        for scalar in value.serialized().unicodeScalars {
            if scalar.isASCII {
                output.unicodeScalars.append(scalar)
            } else {
                for unit in String(scalar).utf16 { output += String(format: "\\u%04x", unit) }
            }
        }
        return output
    }
}

/// Keras's `naming.to_snake_case` (the stem of `.weights.h5` object paths): the
/// same two regular expressions, used by the writer and by the reader's path matching.
public enum KerasNaming {
    public static func snakeCase(_ className: String) -> String {
        func substitute(_ pattern: String, _ text: String) -> String {
            let expression = try! NSRegularExpression(pattern: pattern)
            return expression.stringByReplacingMatches(in: text, range: NSRange(text.startIndex..., in: text), withTemplate: "$1_$2")
        }
        let cleaned = className.filter { $0.isLetter || $0.isNumber || $0 == "_" }
        return substitute("([a-z])([A-Z])", substitute("(.)([A-Z][a-z]+)", cleaned)).lowercased()
    }
}
