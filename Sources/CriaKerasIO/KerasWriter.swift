import CriaCore
import Foundation

/// Writes models the way Keras 3 does, so that `keras.models.load_model` and
/// `model.load_weights` read Cria's files (layouts: KERAS-NOTES.md "Weight-file
/// layouts" and Tests/Fixtures/keras/LAYOUTS.txt).
///
/// Both writers go through a temporary file beside the destination and rename
/// it into place only after everything was written and flushed, so a failure
/// (full disk, a missing or non-finite weight) leaves an existing file intact.
public enum KerasWriter {
    /// The Keras release whose on-disk format these files reproduce; readers
    /// (Keras's own and `KerasFile`) branch on the major version only.
    public static let kerasVersion = "3.15.1"
    public static let backend = "tensorflow"

    /// Keras 3 legacy full model `.h5`. `weights` by layer name (nested layers under
    /// their own names), Keras 3 variable names (`kernel`, `gamma`, ...).
    /// `metadata` (Cria's class names, version, ...) goes into the root attribute
    /// `cria_metadata`, which Keras ignores and `KerasFile.criaMetadata` reads.
    public static func writeFullModel(_ config: KerasModelConfig, weights: [String: LayerWeights],
                                      metadata: JSONValue?, to url: URL) throws {
        let plan = try WeightPlan(config: config, weights: weights, destination: url)
        try writeAtomically(to: url) { file in
            let root = file.root
            try root.setStringAttribute("backend", backend, charset: .utf8)
            try root.setStringAttribute("keras_version", kerasVersion, charset: .utf8)
            try root.setStringAttribute("model_config", KerasConfigWriter.asciiJSON(config.kerasJSON()), charset: .ascii)
            if let metadata {
                try root.setStringAttribute("cria_metadata", metadata.serialized(), charset: .utf8)
            }
            let container = try root.createGroup("model_weights")
            try container.setStringAttribute("backend", backend, charset: .ascii)
            try container.setStringAttribute("keras_version", kerasVersion, charset: .ascii)
            // Keras lists `model.layers`: a Sequential's InputLayer is not one of them.
            let listed = plan.modelLayers(config)
            try container.setStringArrayAttribute("layer_names", listed.map(\.name), charset: .ascii)
            // Keras 3 builds a Sequential's own layers inside its name scope, so their variable
            // paths (the weight names) read `<sequential>/<layer>/<var>`; Functional layers do not.
            let scope = config.className == "Sequential" ? config.name + "/" : ""
            for layer in listed {
                let group = try container.createGroup(layer.name)
                // Keras's `_legacy_weights`: trainable weights first, then non-trainable.
                let variables = plan.legacyOrder(layer, parentTrainable: true, scope: scope)
                guard !variables.isEmpty else {
                    try group.setEmptyFloat64ArrayAttribute("weight_names")
                    continue
                }
                try group.setStringArrayAttribute("weight_names", variables.map(\.path), charset: .ascii)
                // Datasets live at the weight name relative to the layer's group: for a plain layer
                // `/model_weights/dense/dense/kernel`, for a nested model `/model_weights/<model>/Conv1/kernel`.
                var groups: [String: HDF5Group] = [:]
                for entry in variables {
                    var parent = group, prefix = ""
                    for component in entry.path.split(separator: "/").dropLast() {
                        prefix += String(component) + "/"
                        if let existing = groups[prefix] { parent = existing; continue }
                        parent = try parent.createGroup(String(component))
                        groups[prefix] = parent
                    }
                    try plan.write((entry.layer, entry.variable), into: parent, name: entry.variable)
                }
            }
            // The model's own (top-level) weights: none for Functional and Sequential models.
            try container.createGroup("top_level_model_weights").setEmptyFloat64ArrayAttribute("weight_names")
        }
    }

    /// Keras 3 `model.save_weights("x.weights.h5")`: `/layers/<snake_case class>[_k]/vars/<i>`
    /// with the layer's name on each `vars` group, nested models under
    /// `/layers/functional/layers/...`, and the model's own (empty) `/vars`.
    public static func writeWeights(_ config: KerasModelConfig, weights: [String: LayerWeights], to url: URL) throws {
        let plan = try WeightPlan(config: config, weights: weights, destination: url)
        try writeAtomically(to: url) { file in
            try writeKeras3Container(config, name: config.name, into: file.root, plan: plan)
        }
    }

    /// `saving_lib._save_state` on a model: its own `vars` (named after the model),
    /// then every layer of `model.layers` under a per-class unique snake-case name.
    private static func writeKeras3Container(_ model: KerasModelConfig, name: String, into group: HDF5Group,
                                             plan: WeightPlan) throws {
        try group.createGroup("vars").setStringAttribute("name", name, charset: .utf8)
        let layersGroup = try group.createGroup("layers")
        var used: [String: Int] = [:]
        for layer in plan.modelLayers(model) {
            let stem = KerasNaming.snakeCase(layer.nested.map { KerasConfigWriter.containerClass($0.className) } ?? layer.className)
            let unique: String
            if let count = used[stem] { used[stem] = count + 1; unique = "\(stem)_\(count + 1)" } else { used[stem] = 0; unique = stem }
            let layerGroup = try layersGroup.createGroup(unique)
            if let nested = layer.nested {
                try writeKeras3Container(nested, name: layer.name, into: layerGroup, plan: plan)
                continue
            }
            let vars = try layerGroup.createGroup("vars")
            try vars.setStringAttribute("name", layer.name, charset: .utf8)
            // `Layer.save_own_variables`: creation order, whatever the trainable flags.
            for (index, variable) in KerasVariables.names(for: layer).enumerated() {
                try plan.write((layer.name, variable), into: vars, name: String(index))
            }
        }
    }

    /// Writes through a temporary file and renames it over `url` only on success.
    private static func writeAtomically(to url: URL, _ body: (HDF5File) throws -> Void) throws {
        let directory = url.deletingLastPathComponent()
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        } catch {
            throw CriaError("\(url.path): cannot create directory \(directory.path): \(error.localizedDescription)")
        }
        let temporary = AtomicFile.temporaryURL(beside: url)
        do {
            // The file handle and every group must be released (closing the file) before the rename.
            try {
                let file = try HDF5File(creating: temporary)
                try body(file)
                try file.flush()
            }()
            try AtomicFile.replace(url, with: temporary)
        } catch {
            try? FileManager.default.removeItem(at: temporary)
            if let error = error as? CriaError, error.message.hasPrefix(url.path) { throw error }
            throw CriaError("\(url.path): not written (any existing file is unchanged): \(error)")
        }
    }
}

/// The variables each layer class owns, in the order Keras 3 creates them.
public enum KerasVariables {
    /// Conv2D/DepthwiseConv2D/Dense: kernel[, bias]; BatchNormalization: [gamma][, beta],
    /// moving_mean, moving_variance; Normalization: none when mean/variance are in its
    /// config, else its adapted state. Layers of other classes own no variables.
    public static func names(for layer: KerasLayerConfig) -> [String] {
        let config = layer.config
        switch layer.className {
        case "Conv2D", "DepthwiseConv2D", "Dense", "Conv1D", "Conv3D", "SeparableConv2D":
            return ["kernel"] + ((config["use_bias"]?.bool ?? true) ? ["bias"] : [])
        case "BatchNormalization":
            return ((config["scale"]?.bool ?? true) ? ["gamma"] : []) + ((config["center"]?.bool ?? true) ? ["beta"] : [])
                + ["moving_mean", "moving_variance"]
        case "Normalization":
            let fixed = !(config["mean"]?.isNull ?? true) && !(config["variance"]?.isNull ?? true)
            return fixed ? [] : ["mean", "variance", "count"]
        default:
            return []
        }
    }

    /// Variables Keras creates with `trainable=False` whatever the layer's flag.
    public static func isAlwaysNonTrainable(_ variable: String, className: String) -> Bool {
        switch className {
        case "BatchNormalization": return variable == "moving_mean" || variable == "moving_variance"
        case "Normalization": return true
        default: return false
        }
    }
}

/// The checked weights to write, and Keras's orders over them.
struct WeightPlan {
    let weights: [String: LayerWeights]
    let destination: URL

    init(config: KerasModelConfig, weights: [String: LayerWeights], destination: URL) throws {
        self.weights = weights
        self.destination = destination
        // Check everything before a file is created, so that a missing weight names the layer.
        func check(_ model: KerasModelConfig) throws {
            for layer in model.layers {
                if let nested = layer.nested { try check(nested); continue }
                // A weight Cria has no Keras variable order for would be dropped silently: refuse instead.
                let known = Set(KerasVariables.names(for: layer))
                if let extra = weights[layer.name]?.keys.filter({ !known.contains($0) }).sorted(), !extra.isEmpty {
                    throw CriaError("\(destination.path): not written: layer \(layer.name) (\(layer.className)) has weights "
                        + "\(extra.joined(separator: ", ")) that Cria cannot place in a Keras file")
                }
                for variable in KerasVariables.names(for: layer) {
                    // An adapted Normalization layer may come without its `count`.
                    if layer.className == "Normalization", variable == "count" { continue }
                    guard weights[layer.name]?[variable] != nil else {
                        let found = weights[layer.name].map { $0.keys.sorted().joined(separator: ", ") } ?? "no weights"
                        throw CriaError("\(destination.path): not written: layer \(layer.name) (\(layer.className)) needs \(variable) (found: \(found))")
                    }
                }
            }
        }
        try check(config)
    }

    /// `model.layers`: all layers of a Functional model, a Sequential's without its InputLayer.
    func modelLayers(_ model: KerasModelConfig) -> [KerasLayerConfig] {
        model.className == "Sequential" ? model.layers.filter { $0.className != "InputLayer" } : model.layers
    }

    func variables(of layer: KerasLayerConfig) -> [String] {
        KerasVariables.names(for: layer).filter { weights[layer.name]?[$0] != nil }
    }

    /// `layer.trainable_weights + layer.non_trainable_weights`, recursing into nested
    /// models: a variable is trainable when its layer and every enclosing model are
    /// (Keras's `base.trainable = False` freezes all of `base`) and it is not a
    /// statistic such as BatchNorm's moving mean and variance.
    func legacyOrder(_ layer: KerasLayerConfig, parentTrainable: Bool, scope: String = "")
        -> [(layer: String, variable: String, path: String)] {
        collect(layer, parentTrainable: parentTrainable, trainable: true, scope: scope)
            + collect(layer, parentTrainable: parentTrainable, trainable: false, scope: scope)
    }

    private func collect(_ layer: KerasLayerConfig, parentTrainable: Bool, trainable wanted: Bool,
                         scope: String) -> [(layer: String, variable: String, path: String)] {
        let effective = parentTrainable && layer.trainable
        if let nested = layer.nested {
            // A model builds its layers before it is nested, so the enclosing scope does not apply.
            let innerScope = nested.className == "Sequential" ? nested.name + "/" : ""
            return modelLayers(nested).flatMap { collect($0, parentTrainable: effective, trainable: wanted, scope: innerScope) }
        }
        return variables(of: layer).filter { variable in
            let isTrainable = effective && !KerasVariables.isAlwaysNonTrainable(variable, className: layer.className)
            return isTrainable == wanted
        }.map { (layer.name, $0, "\(scope)\(layer.name)/\($0)") }
    }

    /// Writes one variable as float32 with its Keras shape, refusing non-finite values:
    /// a diverged model must not replace the last good checkpoint.
    func write(_ entry: (layer: String, variable: String), into group: HDF5Group, name: String) throws {
        guard let tensor = weights[entry.layer]?[entry.variable] else {
            throw CriaError("\(destination.path): not written: layer \(entry.layer) has no \(entry.variable)")
        }
        if let bad = tensor.scalars.firstIndex(where: { !$0.isFinite }) {
            throw CriaError("\(destination.path): not written: \(entry.layer)/\(entry.variable) holds a non-finite value (\(tensor.scalars[bad]) at index \(bad))")
        }
        try group.writeDataset(name, shape: tensor.shape, scalars: tensor.scalars)
    }
}
