import CriaCore
import CriaData
import CriaTraining
import Foundation

/// Decodes a config tree into an `ExperimentConfig`, strictly. Every section's keys and every
/// key's range come from `ConfigKeys.all`, which also generates the reference tables of
/// `Experiments/README.md`; what is decoded here is where each key's value goes.
extension ExperimentConfig {
    /// Reads a config file and applies `--set KEY=VALUE` overrides, validating both.
    public static func load(_ url: URL, overrides: [String] = []) throws -> (config: ExperimentConfig, tree: ConfigNode) {
        let text: String
        do { text = try String(contentsOf: url, encoding: .utf8) } catch {
            throw CriaError("\(url.path): cannot read: \(error.localizedDescription)")
        }
        var tree = try ConfigNode.parse(text, source: url.path)
        tree = try applyOverrides(overrides, to: tree)
        let name = url.deletingPathExtension().lastPathComponent
        return (try decode(tree, source: url.path, defaultName: name), tree)
    }

    /// `--set phases[1].lr=1e-4`: the value is YAML (`[96, 96]`, `none`, `"quoted"`).
    public static func applyOverrides(_ overrides: [String], to tree: ConfigNode) throws -> ConfigNode {
        var tree = tree
        for override in overrides {
            guard let equals = override.firstIndex(of: "=") else {
                throw CriaError("--set \(override): expected KEY=VALUE, e.g. --set phases[1].lr=1e-4")
            }
            let path = try ConfigPath(parsing: String(override[..<equals]))
            let valueText = String(override[override.index(after: equals)...])
            let value = try ConfigNode.parse(valueText.isEmpty ? "null" : valueText, source: "--set \(override)", location: { _ in "--set" })
            try setExclusive(&tree, path, value.relocated("--set"))
        }
        return tree
    }

    /// Sets a value; setting one of a phase's freezing keys drops the others, so a sweep or
    /// `--set` over `fine_tune_at` replaces the file's `trainable: none`.
    static func setExclusive(_ tree: inout ConfigNode, _ path: ConfigPath, _ value: ConfigNode) throws {
        let freezingKeys = Freezing.configKeys
        if freezingKeys.contains(path.lastKey), path.components.count >= 2 {
            let parent = Array(path.components.dropLast())
            for key in freezingKeys where key != path.lastKey { tree.remove(ConfigPath(parent + [.key(key)])) }
        }
        try tree.set(path, to: value)
    }

    public static func decode(_ tree: ConfigNode, source: String, defaultName: String) throws -> ExperimentConfig {
        let reader = ConfigReader()
        guard let top = MapReader(reader, "", tree, section: "") else { try reader.check(source: source); fatalError() }
        var config = ExperimentConfig(name: defaultName)
        if let node = top["experiment"], let section = MapReader(reader, "experiment", node, section: "experiment") {
            if let name = section.string("name") {
                if name.isEmpty || name.contains("/") || name.hasPrefix(".") {
                    reader.fail("experiment.name", section["name"]!, "must be a plain directory name")
                } else {
                    config.name = name
                }
            }
            config.runsDirectory = section.string("runs_dir") ?? config.runsDirectory
        }
        config.seed = top.int("seed", config.seed)
        config.threads = top.optionalInt("threads")
        config.repeats = top.int("repeats", config.repeats)
        if let node = top["cria"] { _ = MapReader(reader, "cria", node, section: "cria") }
        if let node = top["data"] { config.data = decodeData(node, reader) }
        if let node = top["model"] { config.model = decodeModel(node, reader) }
        if let node = top["augment"] { config.augment = decodeAugment(node, "augment", reader) }
        if let node = top.required("phases", "an ordered list of training phases"), let items = reader.list(node, "phases") {
            if items.isEmpty { reader.fail("phases", node, "must list at least one phase") }
            let base = BaseModelLayers.of(config.model)
            config.phases = items.enumerated().compactMap {
                decodePhase($1, "phases[\($0)]", index: $0, defaultBatchSize: config.data.batchSize, base: base, reader)
            }
            let names = config.phases.map(\.name)
            for (index, name) in names.enumerated() where names.firstIndex(of: name) != index {
                reader.fail("phases[\(index)].name", items[index], "duplicate phase name \(name)")
            }
        }
        if let node = top["sweep"] { config.sweep = decodeSweep(node, tree: tree, reader) }
        // Cross-field checks.
        let input = config.model.inputSize ?? config.augment.crop ?? config.data.imageSize
        if let crop = config.augment.crop, crop[0] > config.data.imageSize[0] || crop[1] > config.data.imageSize[1] {
            reader.fail("augment.crop", top["augment"]!, "the crop \(crop) is larger than data.image_size \(config.data.imageSize)")
        }
        if let inputNode = top["model"]?["input_size"], input != (config.augment.crop ?? config.data.imageSize) {
            reader.fail("model.input_size", inputNode, "must equal data.image_size (or augment.crop) \(config.augment.crop ?? config.data.imageSize), got \(input)")
        }
        try reader.check(source: source)
        return config
    }

    static func decodeData(_ node: ConfigNode, _ reader: ConfigReader) -> DataSpec {
        var data = DataSpec()
        guard let section = MapReader(reader, "data", node, section: "data") else { return data }
        data.source = section.choice("source", data.source)
        data.directory = section.string("directory")
        data.csv = section.string("csv")
        data.validationSplit = section.double("validation_split", data.validationSplit)
        data.seed = section.optionalInt("seed")
        data.imageSize = section["image_size"].flatMap { reader.size($0, "data.image_size", range: section.range("image_size").intRange) } ?? data.imageSize
        data.batchSize = section.int("batch_size", data.batchSize)
        data.interpolation = section.choice("interpolation", data.interpolation)
        data.cropToAspectRatio = section.bool("crop_to_aspect_ratio", data.cropToAspectRatio)
        data.onBadImage = section.choice("on_bad_image", data.onBadImage)
        data.storage = section.choice("storage", data.storage)
        if let names = section["class_names"], let items = reader.list(names, "data.class_names") {
            data.classNames = items.enumerated().compactMap { reader.string($1, "data.class_names[\($0)]") }
        }
        data.limit = section.optionalInt("limit")
        data.testDirectory = section.string("test_directory")
        data.cache = section.string("cache")
        if let node = section["memory_limit"], !node.isNull {
            data.memoryLimit = node.scalarText.flatMap(MemoryBudget.parse)
            if data.memoryLimit == nil {
                reader.fail("data.memory_limit", node, "must be a size such as 4GB, 512MiB or a number of bytes, got \(reader.show(node))")
            }
        }
        data.folds = section.optionalInt("folds")
        data.fold = section.optionalInt("fold")
        if let foldNode = section["fold"], let fold = data.fold {
            if let folds = data.folds {
                if fold >= folds { reader.fail("data.fold", foldNode, "must be below data.folds (\(folds)), got \(fold)") }
            } else {
                reader.fail("data.fold", foldNode, "needs data.folds: the fold is one of K")
            }
        }
        if let foldsNode = section["folds"], data.folds != nil, data.source == .csv {
            reader.fail("data.folds", foldsNode, "cross-validation is not supported for source csv; use a class-folder directory or fashion_mnist")
        }
        if data.source == .csv && data.csv == nil { reader.failMissing("data.csv", node, "required when source is csv: a path,label file") }
        if let node = section["fashion_mnist"],
           let fashion = MapReader(reader, "data.fashion_mnist", node, section: "data.fashion_mnist") {
            data.fashionMNIST.directory = fashion.string("directory") ?? data.fashionMNIST.directory
            func classIndex(_ node: ConfigNode, _ path: String) -> Int? {
                if let index = Int(node.scalarText ?? ""), (0..<10).contains(index) { return index }
                if let text = node.scalarText, let index = FashionMNIST.classNames.firstIndex(where: { $0.lowercased() == text.lowercased() }) {
                    return index
                }
                reader.fail(path, node, "must be a class index 0...9 or a name (\(FashionMNIST.classNames.joined(separator: ", "))), got \(reader.show(node))")
                return nil
            }
            if let classes = fashion["classes"], let items = reader.list(classes, "data.fashion_mnist.classes") {
                data.fashionMNIST.classes = items.enumerated().compactMap { classIndex($1, "data.fashion_mnist.classes[\($0)]") }
            }
            data.fashionMNIST.positiveClass = fashion["positive_class"].flatMap { classIndex($0, "data.fashion_mnist.positive_class") }
            data.fashionMNIST.test = fashion.bool("test", false)
            data.fashionMNIST.testLimit = fashion.optionalInt("test_limit")
        }
        return data
    }

    static func decodeModel(_ node: ConfigNode, _ reader: ConfigReader) -> ModelSpec {
        var model = ModelSpec()
        guard let section = MapReader(reader, "model", node, section: "model") else { return model }
        model.weights = section.string("weights") ?? model.weights
        if let alpha = section["alpha"], let value = reader.double(alpha, "model.alpha", min: 0, openMin: true) {
            let widths = section.range("alpha").choices ?? []
            if widths.compactMap(Double.init).contains(value) { model.alpha = value } else {
                reader.fail("model.alpha", alpha, "must be one of \(widths.joined(separator: ", ")) (the published MobileNetV2 widths), got \(ConfigFormat.number(value))")
            }
        }
        model.inputSize = section["input_size"].flatMap { reader.size($0, "model.input_size", range: section.range("input_size").intRange) }
        if let head = section["head"], let headReader = MapReader(reader, "model.head", head, section: "model.head") {
            model.dropout = headReader.double("dropout", model.dropout)
            model.classes = headReader.int("classes", model.classes)
        }
        return model
    }

    static func decodeAugment(_ node: ConfigNode, _ path: String, _ reader: ConfigReader) -> AugmentSpec {
        if case .scalar(let name, _) = node.kind {
            do { return try AugmentSpec.preset(name) } catch {
                reader.fail(path, node, "\(error)")
                return AugmentSpec()
            }
        }
        var spec = AugmentSpec()
        guard let section = MapReader(reader, path, node, section: "augment") else { return spec }
        if let preset = section["preset"] {
            if let name = reader.string(preset, "\(path).preset") {
                do { spec = try AugmentSpec.preset(name) } catch { reader.fail("\(path).preset", preset, "\(error)") }
            }
        }
        if let flip = section["flip"] {
            spec.flip = flip.scalarText == "none" ? nil : reader.choice(flip, "\(path).flip", FlipMode.self, names: section.range("flip").choices ?? [])
        }
        spec.rotation = section.double("rotation", spec.rotation)
        spec.zoom = section.double("zoom", spec.zoom)
        if let translation = section["translation"] {
            if let items = translation.items {
                let values = items.enumerated().compactMap { reader.double($1, "\(path).translation[\($0)]", section.range("translation")) }
                if items.count != 2 { reader.fail("\(path).translation", translation, "must be one number or [height_factor, width_factor]") }
                if values.count == 2 { spec.translation = values }
            } else if let value = reader.double(translation, "\(path).translation", section.range("translation")) {
                spec.translation = [value, value]
            }
        }
        spec.contrast = section.double("contrast", spec.contrast)
        spec.brightness = section.double("brightness", spec.brightness)
        spec.crop = section["crop"].flatMap { reader.size($0, "\(path).crop", range: section.range("crop").intRange) } ?? spec.crop
        spec.fillMode = section.choice("fill_mode", spec.fillMode)
        spec.interpolation = section.choice("interpolation", spec.interpolation)
        spec.fillValue = section.double("fill_value", spec.fillValue)
        return spec
    }

    /// A phase; `fine_tune_at` and `fine_tune_from` are checked against the base model's layers
    /// (`BaseModelLayers`), so the range is the real model's, with the key path and the line.
    static func decodePhase(_ node: ConfigNode, _ path: String, index: Int, defaultBatchSize: Int, base: BaseModelLayers,
                            _ reader: ConfigReader) -> PhaseConfig? {
        guard let section = MapReader(reader, path, node, section: "phases[]") else { return nil }
        var phase = PhaseConfig(name: section.string("name") ?? "phase_\(index + 1)")
        phase.type = section.choice("type", phase.type)
        phase.epochs = section.int("epochs", phase.type == .linearProbe ? 0 : phase.epochs)
        let lr = section.double("lr", 1e-3)
        phase.optimizer = decodeOptimizer(section["optimizer"], "\(path).optimizer", lr: lr, reader)
        phase.schedule = section["schedule"].map { decodeSchedule($0, "\(path).schedule", reader) } ?? .constant
        let given = Freezing.configKeys.filter { section.has($0) }
        if given.count > 1 {
            reader.fail("\(path).\(given[1])", section[given[1]]!, "give only one of fine_tune_at, fine_tune_from and trainable (found \(given.joined(separator: " and ")))")
        }
        if let node = section["fine_tune_at"] {
            if node.scalarText == "none" { phase.freezing = .baseFrozen } else if let at = reader.int(node, "\(path).fine_tune_at", range: 0...base.count) {
                phase.freezing = .fineTuneAt(at)
            }
        } else if let fromNode = section["fine_tune_from"], let from = section.string("fine_tune_from") {
            if base.names.contains(from) { phase.freezing = .fineTuneFrom(from) } else {
                let suggestion = closest(from, among: base.names).map { " (did you mean \($0)?)" } ?? ""
                reader.fail("\(path).fine_tune_from", fromNode, "the base \(base.name) has no layer \(from)\(suggestion)")
            }
        } else if let node = section["trainable"] {
            switch node.scalarText {
            case "none"?, "false"?: phase.freezing = .baseFrozen
            case "all"?, "true"?: phase.freezing = .all
            default: reader.fail("\(path).trainable", node, "must be none or all (or use fine_tune_at / fine_tune_from), got \(reader.show(node))")
            }
        }
        phase.bnMode = section.choice("bn_mode", phase.bnMode)
        phase.batchSize = section.int("batch_size", defaultBatchSize)
        phase.lambda = section.double("lambda", phase.lambda)
        if let callbacks = section["callbacks"], let items = reader.list(callbacks, "\(path).callbacks") {
            phase.callbacks = items.enumerated().compactMap { decodeCallback($1, "\(path).callbacks[\($0)]", reader) }
        }
        return phase
    }

    static func decodeOptimizer(_ node: ConfigNode?, _ path: String, lr: Double, _ reader: ConfigReader) -> OptimizerConfig {
        var optimizer = OptimizerConfig.adam(lr)
        guard let node else { return optimizer }
        if node.scalarText != nil {
            optimizer.kind = reader.choice(node, path, OptimizerConfig.Kind.self, names: ConfigKeys.entry("phases[]", "optimizer").range.choices ?? []) ?? .adam
            return optimizer
        }
        guard let section = MapReader(reader, path, node, section: "phases[].optimizer") else { return optimizer }
        optimizer.kind = section.choice("name", optimizer.kind)
        optimizer.beta1 = section.double("beta_1", optimizer.beta1)
        optimizer.beta2 = section.double("beta_2", optimizer.beta2)
        optimizer.epsilon = section.double("epsilon", optimizer.epsilon)
        optimizer.momentum = section.double("momentum", optimizer.momentum)
        optimizer.nesterov = section.bool("nesterov", optimizer.nesterov)
        optimizer.rho = section.double("rho", optimizer.rho)
        optimizer.weightDecay = section.double("weight_decay", optimizer.weightDecay)
        return optimizer
    }

    static func decodeSchedule(_ node: ConfigNode, _ path: String, _ reader: ConfigReader) -> LearningRateSchedule {
        if node.scalarText == "constant" { return .constant }
        guard node.entries != nil else {
            reader.fail(path, node, "must be constant or a mapping with name: cosine | exponential | step, got \(reader.show(node))")
            return .constant
        }
        let name = node["name"]?.scalarText ?? ""
        let names = ["constant", "cosine", "exponential", "step"]
        guard names.contains(name) else {
            let suggestion = closest(name, among: names).map { " (did you mean \($0)?)" } ?? ""
            reader.fail("\(path).name", node["name"] ?? node, "must be one of constant, cosine, exponential, step\(suggestion)")
            return .constant
        }
        guard let section = MapReader(reader, path, node, section: "phases[].schedule (\(name))") else { return .constant }
        func required(_ key: String, _ what: String) -> ConfigNode? { section.required(key, what) }
        switch name {
        case "cosine":
            let steps = required("decay_steps", "steps over which the rate decays").flatMap { reader.int($0, "\(path).decay_steps", section.range("decay_steps")) } ?? 1
            return .cosine(decaySteps: steps, alpha: section.double("alpha", 0), warmupSteps: section.int("warmup_steps", 0),
                           warmupFrom: section.double("warmup_from", 0))
        case "exponential":
            let steps = required("decay_steps", "steps per decay").flatMap { reader.int($0, "\(path).decay_steps", section.range("decay_steps")) } ?? 1
            let rate = required("decay_rate", "the factor per decay_steps").flatMap { reader.double($0, "\(path).decay_rate", section.range("decay_rate")) } ?? 1
            return .exponential(decaySteps: steps, decayRate: rate, staircase: section.bool("staircase", false))
        case "step":
            let boundaries = required("boundaries", "step counts").flatMap { reader.list($0, "\(path).boundaries") }?
                .enumerated().compactMap { reader.int($1, "\(path).boundaries[\($0)]", section.range("boundaries")) } ?? []
            let values = required("values", "one more rate than boundaries").flatMap { reader.list($0, "\(path).values") }?
                .enumerated().compactMap { reader.double($1, "\(path).values[\($0)]", section.range("values")) } ?? []
            if values.count != boundaries.count + 1, let node = section["values"] {
                reader.fail("\(path).values", node, "must have one more entry than boundaries (\(boundaries.count + 1)), got \(values.count)")
            }
            return .step(boundaries: boundaries, values: values)
        default:
            return .constant
        }
    }

    static func decodeCallback(_ node: ConfigNode, _ path: String, _ reader: ConfigReader) -> CallbackConfig? {
        let type = node["type"]?.scalarText ?? ""
        let known = ["early_stopping", "reduce_lr_on_plateau", "model_checkpoint"]
        guard known.contains(type) else {
            let suggestion = closest(type, among: known).map { " (did you mean \($0)?)" } ?? ""
            reader.fail("\(path).type", node["type"] ?? node, "must be one of \(known.joined(separator: ", "))\(suggestion)")
            return nil
        }
        guard let s = MapReader(reader, path, node, section: "phases[].callbacks[] (\(type))") else { return nil }
        func monitor(_ fallback: String) -> String {
            guard let node = s["monitor"], let name = reader.string(node, "\(path).monitor") else { return fallback }
            let names = s.range("monitor").choices ?? EpochRecord.metricNames
            guard names.contains(name) else {
                let suggestion = closest(name, among: names).map { " (did you mean \($0)?)" } ?? ""
                reader.fail("\(path).monitor", node, "must be one of \(names.joined(separator: ", "))\(suggestion)")
                return fallback
            }
            return name
        }
        switch type {
        case "early_stopping":
            return .earlyStopping(monitor: monitor("val_loss"), minDelta: s.double("min_delta", 0), patience: s.int("patience", 0),
                                  mode: s.choice("mode", MonitorMode.auto), restoreBestWeights: s.bool("restore_best_weights", false))
        case "reduce_lr_on_plateau":
            return .reduceLROnPlateau(monitor: monitor("val_loss"), factor: s.double("factor", 0.1), patience: s.int("patience", 10),
                                      minDelta: s.double("min_delta", 1e-4), cooldown: s.int("cooldown", 0), minLearningRate: s.double("min_lr", 0),
                                      mode: s.choice("mode", MonitorMode.auto))
        default:
            return .modelCheckpoint(path: s.string("path") ?? "checkpoint.h5", monitor: monitor("val_loss"),
                                    saveBestOnly: s.bool("save_best_only", false), mode: s.choice("mode", MonitorMode.auto))
        }
    }
}
