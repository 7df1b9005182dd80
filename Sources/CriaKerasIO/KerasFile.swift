import CriaCore
import Foundation

/// The on-disk layouts Keras has used for models and weights (see KERAS-NOTES.md).
public enum KerasFileFormat: String, Sendable {
    case keras2Weights = "Keras 2 weights-only .h5"
    case keras2FullModel = "Keras 2 full-model .h5"
    case keras3LegacyFullModel = "Keras 3 legacy full-model .h5"
    case keras3LegacyWeights = "Keras 3 legacy weights-only .h5"
    case keras3Weights = "Keras 3 .weights.h5"
    case keras3Archive = "Keras 3 .keras archive"

    public var hasArchitecture: Bool {
        switch self {
        case .keras2FullModel, .keras3LegacyFullModel, .keras3Archive: return true
        default: return false
        }
    }
}

/// The variables of one layer, by Keras variable name (`kernel`, `gamma`, ...).
public typealias LayerWeights = [String: Tensor]

/// Everything Cria reads from a Keras file: its format, version, architecture
/// (when it has one) and the weights by layer name.
public struct KerasFile {
    public let url: URL
    public let format: KerasFileFormat
    public let kerasVersion: String?
    public let backend: String?
    public let modelConfig: KerasModelConfig?
    /// Extra metadata Cria writes into its own files (class names), when present.
    public let criaMetadata: JSONValue?
    /// Weights keyed by the owning layer's name; nested models' layers appear under their own names.
    public private(set) var weights: [String: LayerWeights]
    /// Keras 3 `.weights.h5` groups that carry no layer name (written before Keras 3.10):
    /// they are matched to layers by Keras's own object paths once the architecture is known.
    public let unnamedWeights: [String: [Tensor]]

    public var displayName: String { url.path }

    public static func open(_ url: URL) throws -> KerasFile {
        let handle = try? FileHandle(forReadingFrom: url)
        let head = (try? handle?.read(upToCount: 8)) ?? nil
        try? handle?.close()
        guard FileManager.default.fileExists(atPath: url.path) else { throw CriaError("\(url.path): no such file") }
        guard let head, !head.isEmpty else { throw CriaError("\(url.path): empty file (0 bytes), not a Keras model") }
        if ZipArchive.isZip(head) { return try openArchive(url) }
        let file = try HDF5File(reading: url)
        return try read(file, url: url, archiveConfig: nil, archiveMetadata: nil)
    }

    private static func openArchive(_ url: URL) throws -> KerasFile {
        let data = try Data(contentsOf: url)
        let archive = try ZipArchive(data: data, source: url.path)
        let configText = String(decoding: try archive.data(for: "config.json"), as: UTF8.self)
        let config = try JSONValue.parse(configText, source: "\(url.path) config.json")
        // metadata.json is optional, but when present it is read (and CRC-checked) like the rest.
        let hasMetadata = archive.entries.contains { $0.name == "metadata.json" }
        let metadataText = try hasMetadata ? String(decoding: archive.data(for: "metadata.json"), as: UTF8.self) : nil
        let metadata = try metadataText.map { try JSONValue.parse($0, source: "\(url.path) metadata.json") }
        let file = try HDF5File(image: try archive.data(for: "model.weights.h5"), name: "\(url.path)!model.weights.h5")
        return try read(file, url: url, archiveConfig: config, archiveMetadata: metadata)
    }

    private static func read(_ file: HDF5File, url: URL, archiveConfig: JSONValue?, archiveMetadata: JSONValue?) throws -> KerasFile {
        let root = file.root
        let source = url.path
        if let archiveConfig {
            let (named, unnamed) = try readKeras3Weights(root, source: source)
            return KerasFile(url: url, format: .keras3Archive, kerasVersion: archiveMetadata?["keras_version"]?.string,
                             backend: nil, modelConfig: try KerasModelConfig.parse(archiveConfig, source: source),
                             criaMetadata: archiveMetadata?["cria"], weights: named, unnamedWeights: unnamed)
        }
        let version = try root.stringAttribute("keras_version")
        let backend = try root.stringAttribute("backend")
        let isKeras3 = version.map { $0.hasPrefix("3.") } ?? false
        if let configText = try root.stringAttribute("model_config") {
            let config = try KerasModelConfig.parse(try JSONValue.parse(configText, source: source), source: source)
            guard root.isGroup("model_weights") else {
                throw CriaError("\(source): full-model file has no /model_weights group")
            }
            let weights = try readLegacyWeights(try root.group("model_weights"), source: source)
            let metadata = try root.stringAttribute("cria_metadata").map { try JSONValue.parse($0, source: source) }
            return KerasFile(url: url, format: isKeras3 ? .keras3LegacyFullModel : .keras2FullModel, kerasVersion: version,
                             backend: backend, modelConfig: config, criaMetadata: metadata, weights: weights, unnamedWeights: [:])
        }
        if root.hasAttribute("layer_names") {
            return KerasFile(url: url, format: isKeras3 ? .keras3LegacyWeights : .keras2Weights, kerasVersion: version,
                             backend: backend, modelConfig: nil, criaMetadata: nil,
                             weights: try readLegacyWeights(root, source: source), unnamedWeights: [:])
        }
        if root.isGroup("layers") || root.isGroup("vars") {
            let (named, unnamed) = try readKeras3Weights(root, source: source)
            return KerasFile(url: url, format: .keras3Weights, kerasVersion: version, backend: backend, modelConfig: nil,
                             criaMetadata: nil, weights: named, unnamedWeights: unnamed)
        }
        throw CriaError("\(source): HDF5 file is not a Keras model or weights file (no model_config, layer_names or /layers)")
    }

    /// Keras 2 and Keras 3 legacy `.h5`: `layer_names` on the container, and on each
    /// layer group a `weight_names` list whose entries are dataset paths relative
    /// to that group, such as `block_1_expand/kernel:0` or, inside a nested model's
    /// group, `<inner layer>/<variable>`.
    static func readLegacyWeights(_ container: HDF5Group, source: String) throws -> [String: LayerWeights] {
        guard let layerNames = try container.stringArrayAttribute("layer_names") else {
            throw CriaError("\(source): \(container.path) has no layer_names attribute")
        }
        var result: [String: LayerWeights] = [:]
        for layerName in layerNames {
            guard container.isGroup(layerName) else {
                throw CriaError("\(source): layer \(layerName) is listed in layer_names but its group is missing")
            }
            let group = try container.group(layerName)
            for weightName in try group.stringArrayAttribute("weight_names") ?? [] {
                let components = weightName.split(separator: "/").map(String.init)
                guard components.count >= 2 else {
                    throw CriaError("\(source): layer \(layerName): weight name \(weightName) has no layer/variable form")
                }
                let owner = components[components.count - 2]
                let variable = canonicalVariableName(components[components.count - 1])
                guard group.isDataset(weightName) else {
                    throw CriaError("\(source): layer \(layerName): dataset \(group.path)/\(weightName) is missing")
                }
                let tensor = try group.dataset(weightName).read()
                try checkFinite(tensor, source: source, layer: owner, variable: variable)
                if let existing = result[owner]?[variable], existing != tensor {
                    throw CriaError("\(source): two different weights are both named \(owner)/\(variable)")
                }
                result[owner, default: [:]][variable] = tensor
            }
        }
        return result
    }

    /// A NaN or infinite weight makes every prediction NaN: it is a broken file, reported
    /// by layer and variable (an .h5 file has no checksums, so this is also the check
    /// that catches some corrupted weight bytes).
    static func checkFinite(_ tensor: Tensor, source: String, layer: String, variable: String) throws {
        let bad = tensor.scalars.withUnsafeBufferPointer { values in values.firstIndex { !$0.isFinite } }
        if let bad {
            throw CriaError("\(source): layer \(layer), variable \(variable): weight \(bad) is \(tensor.scalars[bad]) (a broken or corrupted file)")
        }
    }

    /// Keras 2 names variables `kernel:0` and DepthwiseConv2D's `depthwise_kernel:0`;
    /// Keras 3 drops the suffix and calls it `kernel`. Cria uses Keras 3's names.
    static func canonicalVariableName(_ raw: String) -> String {
        var name = raw
        if let colon = name.lastIndex(of: ":") { name = String(name[..<colon]) }
        return name == "depthwise_kernel" ? "kernel" : name
    }

    /// Keras 3 `.weights.h5`: `/layers/<object path>/vars/<index>`. Since Keras 3.10
    /// each `vars` group has a `name` attribute with the layer's real name.
    static func readKeras3Weights(_ root: HDF5Group, source: String) throws -> ([String: LayerWeights], [String: [Tensor]]) {
        var named: [String: LayerWeights] = [:]
        var unnamed: [String: [Tensor]] = [:]
        // A corrupted link can point back at an ancestor group: bound the depth and the
        // number of groups visited, so that a cycle is an error rather than endless recursion.
        var visited = 0
        func visit(_ group: HDF5Group, path: String, depth: Int) throws {
            visited += 1
            guard depth <= HDF5Limits.depth, visited <= Int(HDF5Limits.links) else {
                throw CriaError("\(source): the group tree under /\(path) is too deep or too large (corrupt file: a link cycle?)")
            }
            for child in try group.childNames() {
                guard group.isGroup(child) else { continue }
                let childGroup = try group.group(child)
                let childPath = path.isEmpty ? child : path + "/" + child
                if child == "vars" {
                    let names = try childGroup.childNames().filter { Int($0) != nil }.sorted { Int($0)! < Int($1)! }
                    guard !names.isEmpty else { continue }
                    let tensors = try names.map { try childGroup.dataset($0).read() }
                    let className = path.split(separator: "/").last.map { keras3ClassStem(String($0)) } ?? ""
                    if let layerName = try childGroup.stringAttribute("name") {
                        let variables = variableNames(forSnakeClass: className, count: tensors.count)
                        var layer: LayerWeights = [:]
                        for (index, tensor) in tensors.enumerated() {
                            try checkFinite(tensor, source: source, layer: layerName, variable: variables[index])
                            layer[variables[index]] = tensor
                        }
                        named[layerName] = layer
                    } else {
                        for (index, tensor) in tensors.enumerated() {
                            try checkFinite(tensor, source: source, layer: "/\(path)", variable: "vars/\(names[index])")
                        }
                        unnamed[path] = tensors
                    }
                } else {
                    try visit(childGroup, path: childPath, depth: depth + 1)
                }
            }
        }
        try visit(root, path: "", depth: 0)
        return (named, unnamed)
    }

    /// `batch_normalization_3` → `batch_normalization`: the class stem of a Keras 3 object path.
    static func keras3ClassStem(_ component: String) -> String {
        if let underscore = component.lastIndex(of: "_"), Int(component[component.index(after: underscore)...]) != nil {
            return String(component[..<underscore])
        }
        return component
    }

    /// The order in which Keras 3 layers create (and save) their variables.
    public static func variableNames(forSnakeClass className: String, count: Int, config: JSONValue? = nil) -> [String] {
        var names: [String]
        switch className {
        case "batch_normalization":
            let scale = config?["scale"]?.bool ?? true
            let center = config?["center"]?.bool ?? true
            names = (scale ? ["gamma"] : []) + (center ? ["beta"] : []) + ["moving_mean", "moving_variance"]
        case "normalization":
            names = ["mean", "variance", "count"]
        default:
            names = ["kernel", "bias"]
        }
        if names.count < count { names += (names.count..<count).map { "var\($0)" } }
        return Array(names.prefix(count))
    }

    /// Attaches unnamed Keras 3 weights to layer names once the architecture is known:
    /// `paths` maps each object path (`layers/functional/layers/conv2d`) to a layer name.
    public mutating func resolveUnnamedWeights(paths: [String: (layer: String, snakeClass: String, config: JSONValue)]) throws {
        for (path, tensors) in unnamedWeights {
            guard let target = paths[path] else {
                throw CriaError("\(url.path): weights at /\(path) match no layer of the model (the architecture differs from the one saved)")
            }
            let variables = KerasFile.variableNames(forSnakeClass: target.snakeClass, count: tensors.count, config: target.config)
            var layer: LayerWeights = [:]
            for (index, tensor) in tensors.enumerated() { layer[variables[index]] = tensor }
            weights[target.layer] = layer
        }
    }
}
