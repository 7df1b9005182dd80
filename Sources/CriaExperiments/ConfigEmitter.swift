import CriaCore
import CriaData
import CriaTraining
import Foundation

/// Writes configs back out: `config.resolved.yaml` (every default filled in, and
/// loadable again by `cria run`) and the canonical text behind the config hash. Every
/// mapping goes through `ConfigKeys.ordered`, so the keys are the table's, in its order.
extension ExperimentConfig {
    /// The config with every default made explicit, plus Cria's version and commit.
    public func resolvedTree(criaVersion: String, gitCommit: String) -> ConfigNode {
        func s(_ text: String) -> ConfigNode { .scalar(text, quoted: ConfigEmitter.needsQuotes(text)) }
        func n(_ value: Double) -> ConfigNode { .scalar(ConfigFormat.number(value)) }
        func i(_ value: Int) -> ConfigNode { .scalar(String(value)) }
        func b(_ value: Bool) -> ConfigNode { .scalar(value ? "true" : "false") }
        let null = ConfigNode.scalar("null")
        func size(_ value: [Int]) -> ConfigNode { .list(value.map(i)) }
        var dataEntries: [(String, ConfigNode)] = [
            ("source", s(data.source.rawValue)),
            // The directory actually used, so the resolved file reruns without the environment.
            ("directory", (data.directory ?? (data.source == .directory ? ProcessInfo.processInfo.environment["CRIA_ALPACA_DIR"] : nil)).map(s) ?? null),
            ("csv", data.csv.map(s) ?? null),
            ("validation_split", n(data.validationSplit)),
            ("seed", i(data.seed ?? seed)),
            ("image_size", size(data.imageSize)),
            ("batch_size", i(data.batchSize)),
            ("interpolation", s(data.interpolation.rawValue)),
            ("crop_to_aspect_ratio", b(data.cropToAspectRatio)),
            ("on_bad_image", s(data.onBadImage.rawValue)),
            ("storage", s(data.storage.rawValue)),
            ("class_names", data.classNames.map { .list($0.map(s)) } ?? null),
            ("limit", data.limit.map(i) ?? null),
            ("folds", data.folds.map(i) ?? null),
            ("fold", data.fold.map(i) ?? null),
            ("test_directory", data.testDirectory.map(s) ?? null),
            ("cache", data.cache.map(s) ?? null),
            ("memory_limit", data.memoryLimit.map(i) ?? null),
        ]
        if data.source == .fashionMNIST {
            dataEntries.append(("fashion_mnist", ConfigKeys.ordered("data.fashion_mnist", [
                ("directory", s(data.fashionMNIST.directory)),
                ("classes", data.fashionMNIST.classes.map { .list($0.map(i)) } ?? null),
                ("positive_class", data.fashionMNIST.positiveClass.map(i) ?? null),
                ("test", b(data.fashionMNIST.test)),
                ("test_limit", data.fashionMNIST.testLimit.map(i) ?? null),
            ])))
        }
        let augmentNode = ConfigKeys.ordered("augment", [
            ("flip", s(augment.flip?.rawValue ?? "none")),
            ("rotation", n(augment.rotation)),
            ("zoom", n(augment.zoom)),
            ("translation", .list(augment.translation.map(n))),
            ("contrast", n(augment.contrast)),
            ("brightness", n(augment.brightness)),
            ("crop", augment.crop.map(size) ?? null),
            ("fill_mode", s(augment.fillMode.rawValue)),
            ("interpolation", s(augment.interpolation.rawValue)),
            ("fill_value", n(augment.fillValue)),
        ])
        let phaseNodes: [ConfigNode] = phases.map { phase in
            var entries: [(String, ConfigNode)] = [("name", s(phase.name)), ("type", s(phase.type.rawValue)), ("epochs", i(phase.epochs))]
            let o = phase.optimizer
            entries.append(("optimizer", ConfigKeys.ordered("phases[].optimizer", [
                ("name", s(o.kind.rawValue)), ("beta_1", n(o.beta1)), ("beta_2", n(o.beta2)), ("epsilon", n(o.epsilon)),
                ("momentum", n(o.momentum)), ("nesterov", b(o.nesterov)), ("rho", n(o.rho)), ("weight_decay", n(o.weightDecay)),
            ])))
            entries.append(("lr", n(o.learningRate)))
            switch phase.schedule {
            case .constant: entries.append(("schedule", s("constant")))
            case let .cosine(steps, alpha, warmup, from):
                entries.append(("schedule", ConfigKeys.ordered("phases[].schedule (cosine)", [("name", s("cosine")), ("decay_steps", i(steps)), ("alpha", n(alpha)),
                                                  ("warmup_steps", i(warmup)), ("warmup_from", n(from))])))
            case let .exponential(steps, rate, staircase):
                entries.append(("schedule", ConfigKeys.ordered("phases[].schedule (exponential)", [("name", s("exponential")), ("decay_steps", i(steps)), ("decay_rate", n(rate)),
                                                  ("staircase", b(staircase))])))
            case let .step(boundaries, values):
                entries.append(("schedule", ConfigKeys.ordered("phases[].schedule (step)", [("name", s("step")), ("boundaries", .list(boundaries.map(i))), ("values", .list(values.map(n)))])))
            }
            switch phase.freezing {
            case .baseFrozen: entries.append(("trainable", s("none")))
            case .all: entries.append(("trainable", s("all")))
            case .fineTuneAt(let at): entries.append(("fine_tune_at", i(at)))
            case .fineTuneFrom(let name): entries.append(("fine_tune_from", s(name)))
            }
            entries.append(("bn_mode", s(phase.bnMode.rawValue)))
            entries.append(("batch_size", i(phase.batchSize)))
            entries.append(("callbacks", .list(phase.callbacks.map { callback in
                switch callback {
                case let .earlyStopping(monitor, minDelta, patience, mode, restore):
                    return ConfigKeys.ordered("phases[].callbacks[] (early_stopping)", [("type", s("early_stopping")), ("monitor", s(monitor)), ("min_delta", n(minDelta)), ("patience", i(patience)),
                                 ("mode", s(mode.rawValue)), ("restore_best_weights", b(restore))])
                case let .reduceLROnPlateau(monitor, factor, patience, minDelta, cooldown, minimum, mode):
                    return ConfigKeys.ordered("phases[].callbacks[] (reduce_lr_on_plateau)", [("type", s("reduce_lr_on_plateau")), ("monitor", s(monitor)), ("factor", n(factor)), ("patience", i(patience)),
                                 ("min_delta", n(minDelta)), ("cooldown", i(cooldown)), ("min_lr", n(minimum)), ("mode", s(mode.rawValue))])
                case let .modelCheckpoint(path, monitor, best, mode):
                    return ConfigKeys.ordered("phases[].callbacks[] (model_checkpoint)", [("type", s("model_checkpoint")), ("path", s(path)), ("monitor", s(monitor)),
                                 ("save_best_only", b(best)), ("mode", s(mode.rawValue))])
                }
            })))
            if phase.type == .linearProbe { entries.append(("lambda", n(phase.lambda))) }
            return ConfigKeys.ordered("phases[]", entries)
        }
        return ConfigKeys.ordered("", [
            ("experiment", ConfigKeys.ordered("experiment", [("name", s(name)), ("runs_dir", s(runsDirectory))])),
            ("seed", i(seed)),
            ("threads", threads.map(i) ?? i(Threads.count)),
            ("repeats", i(repeats)),
            ("data", ConfigKeys.ordered("data", dataEntries)),
            ("model", ConfigKeys.ordered("model", [("weights", s(model.weights)), ("alpha", n(model.alpha)),
                            ("input_size", size(model.inputSize ?? augment.crop ?? data.imageSize)),
                            ("head", ConfigKeys.ordered("model.head", [("dropout", n(model.dropout)), ("classes", i(model.classes))]))])),
            ("augment", augmentNode),
            ("phases", .list(phaseNodes)),
            ("cria", ConfigKeys.ordered("cria", [("version", s(criaVersion)), ("git_commit", s(gitCommit))])),
        ])
    }
}

/// A small block-style YAML writer: mappings in order, scalar lists inline.
public enum ConfigEmitter {
    public static func yaml(_ node: ConfigNode) -> String {
        var out = ""
        emit(node, indent: 0, into: &out, inList: false)
        return out
    }

    private static func emit(_ node: ConfigNode, indent: Int, into out: inout String, inList: Bool) {
        let pad = String(repeating: "  ", count: indent)
        switch node.kind {
        case .map(let entries):
            for (position, entry) in entries.enumerated() {
                let prefix = inList && position == 0 ? "" : pad
                if let inline = inline(entry.value) {
                    out += "\(prefix)\(entry.key): \(inline)\n"
                } else {
                    out += "\(prefix)\(entry.key):\n"
                    emit(entry.value, indent: indent + 1, into: &out, inList: false)
                }
            }
        case .list(let items):
            for item in items {
                if let inline = inline(item) { out += "\(pad)- \(inline)\n"; continue }
                out += "\(pad)- "
                emit(item, indent: indent + 1, into: &out, inList: true)
            }
        case .scalar:
            out += pad + (inline(node) ?? "") + "\n"
        }
    }

    /// The one-line form of scalars, lists of scalars and empty collections; nil for block values.
    static func inline(_ node: ConfigNode) -> String? {
        switch node.kind {
        case .scalar(let text, let quoted): return quoted || (needsQuotes(text) && !node.isNull) ? quote(text) : text
        case .list(let items):
            let parts = items.map { item -> String? in if case .scalar = item.kind { return inline(item) }; return nil }
            return parts.contains(where: { $0 == nil }) ? nil : "[" + parts.map { $0! }.joined(separator: ", ") + "]"
        case .map(let entries): return entries.isEmpty ? "{}" : nil
        }
    }

    static func needsQuotes(_ text: String) -> Bool {
        if text.isEmpty { return true }
        if ["true", "false", "yes", "no", "null", "~", "True", "False"].contains(text) { return false }
        let special = CharacterSet(charactersIn: ":#{}[],&*!|>'\"%@`")
        return text.unicodeScalars.contains { special.contains($0) } || text.hasPrefix("-") && ConfigReader.number(text) == nil
            || text.hasPrefix(" ") || text.hasSuffix(" ")
    }

    static func quote(_ text: String) -> String {
        "\"" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }

    /// Order-independent text of a tree (keys sorted, locations dropped), for the config hash.
    public static func canonical(_ node: ConfigNode) -> String {
        switch node.kind {
        case .scalar(let text, let quoted): return quoted ? quote(text) : text
        case .list(let items): return "[" + items.map(canonical).joined(separator: ",") + "]"
        case .map(let entries):
            return "{" + entries.sorted { $0.key < $1.key }.map { "\($0.key):\(canonical($0.value))" }.joined(separator: ",") + "}"
        }
    }

    /// FNV-1a 64 of the canonical config, minus keys that do not change results (where runs go, provenance).
    public static func hash(_ tree: ConfigNode) -> String {
        var tree = tree
        tree.remove(ConfigPath([.key("experiment"), .key("runs_dir")]))
        tree.remove(ConfigPath([.key("cria")]))
        // Where pixels are kept (a cache, streaming) never changes a result.
        tree.remove(ConfigPath([.key("data"), .key("cache")]))
        tree.remove(ConfigPath([.key("data"), .key("memory_limit")]))
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in canonical(tree).utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        return String(hash, radix: 16).leftPadded(to: 16)
    }
}

extension String {
    func leftPadded(to width: Int) -> String { String(repeating: "0", count: max(0, width - count)) + self }
}
