import CriaCore
import CriaTraining
import Foundation

/// One run of the experiment: a point of the sweep with one seed.
public struct TrialPlan: Equatable, Sendable {
    /// Position in the full trial list (shards pick by it).
    public var index: Int
    /// Readable and unique, e.g. `lr=1e-4,fine_tune_at=120,aug=flip+rotation,seed=43`; the trial's directory name.
    public var id: String
    /// Sweep key path → the value it was set to, in sweep order.
    public var parameters: [(path: String, value: ConfigNode)]
    public var seed: Int
    public var repeatIndex: Int
    /// The held-out fold under `data.folds` (nil without cross-validation).
    public var fold: Int?
    /// The experiment's config with this trial's values and seed, validated.
    public var config: ExperimentConfig

    public static func == (a: TrialPlan, b: TrialPlan) -> Bool {
        a.index == b.index && a.id == b.id && a.seed == b.seed && a.fold == b.fold && a.config == b.config
            && a.parameters.map(\.path) == b.parameters.map(\.path) && a.parameters.map(\.value) == b.parameters.map(\.value)
    }
}

extension ExperimentConfig {
    static func decodeSweep(_ node: ConfigNode, tree: ConfigNode, _ reader: ConfigReader) -> SweepSpec? {
        guard let section = MapReader(reader, "sweep", node, section: "sweep") else { return nil }
        var sweep = SweepSpec()
        sweep.method = section.choice("method", sweep.method)
        sweep.trials = section.optionalInt("trials")
        sweep.seed = section.optionalInt("seed")
        if let metric = section["metric"], let name = reader.string(metric, "sweep.metric") {
            if SweepSpec.metrics.contains(name) { sweep.metric = name } else {
                let suggestion = closest(name, among: SweepSpec.metrics).map { " (did you mean \($0)?)" } ?? ""
                reader.fail("sweep.metric", metric, "must be one of \(SweepSpec.metrics.joined(separator: ", "))\(suggestion)")
            }
        }
        sweep.direction = SweepSpec.rankable.first { $0.name == sweep.metric }?.direction ?? .max
        sweep.direction = section.choice("direction", sweep.direction)
        if sweep.method == .random && sweep.trials == nil { reader.failMissing("sweep.trials", node, "required for method random") }
        if sweep.method == .grid, let trials = section["trials"] { reader.fail("sweep.trials", trials, "only random sweeps take trials; a grid runs every combination") }
        guard let parameters = section.required("parameters", "key path → list of values or distribution") else { return sweep }
        guard let entries = parameters.entries else {
            reader.fail("sweep.parameters", parameters, "must be a mapping of key path → list of values or distribution")
            return sweep
        }
        var base = tree
        base.remove(ConfigPath([.key("sweep")]))
        for entry in entries {
            let where_ = "sweep.parameters.\(entry.key)"
            let path: ConfigPath
            do { path = try ConfigPath(parsing: entry.key) } catch {
                reader.fail(where_, entry.value, "\(error)")
                continue
            }
            guard let values = decodeSweepValues(entry.value, where_, method: sweep.method, reader) else { continue }
            sweep.parameters.append(SweepParameter(path: path, values: values))
            // Every listed value (and both ends of a range) must give a valid config, reported at the sweep's line.
            let probes: [ConfigNode]
            switch values {
            case .list(let items): probes = items
            case .uniform(let low, let high), .logUniform(let low, let high):
                probes = [low, high].map { ConfigNode.scalar(ConfigFormat.number($0), location: entry.value.location) }
            case .intUniform(let low, let high):
                probes = [low, high].map { ConfigNode.scalar(String($0), location: entry.value.location) }
            }
            for probe in probes {
                var trial = base
                do {
                    try setExclusive(&trial, path, probe)
                    _ = try decode(trial, source: "sweep", defaultName: "sweep")
                } catch {
                    // The trial's own errors already name the key path and the sweep value's line.
                    let lines = "\(error)".split(separator: "\n").dropFirst().map { $0.trimmingCharacters(in: .whitespaces) }
                    for line in lines.isEmpty ? ["\(where_): \(probe.location): \(error)"] : lines where !reader.errors.contains(line) {
                        reader.add(line)
                    }
                }
            }
        }
        if sweep.parameters.isEmpty && reader.errors.isEmpty { reader.fail("sweep.parameters", parameters, "must name at least one key path") }
        return sweep
    }

    static func decodeSweepValues(_ node: ConfigNode, _ path: String, method: SweepMethod, _ reader: ConfigReader) -> SweepValues? {
        if let items = node.items {
            if items.isEmpty { reader.fail(path, node, "must list at least one value"); return nil }
            return .list(items)
        }
        guard let section = MapReader(reader, path, node, keys: ["distribution", "low", "high"]) else { return nil }
        guard method == .random else {
            reader.fail(path, node, "a grid sweep needs a list of values; distributions need method: random")
            return nil
        }
        guard let kind = section.required("distribution", "uniform, log_uniform or int_uniform").flatMap({ reader.string($0, "\(path).distribution") }),
              let lowNode = section.required("low", "the lower end"), let highNode = section.required("high", "the upper end") else { return nil }
        switch kind {
        case "uniform", "log_uniform":
            guard let low = reader.double(lowNode, "\(path).low", min: kind == "log_uniform" ? 0 : nil, openMin: true),
                  let high = reader.double(highNode, "\(path).high") else { return nil }
            guard high > low else { reader.fail("\(path).high", highNode, "must be above low (\(ConfigFormat.number(low)))"); return nil }
            return kind == "uniform" ? .uniform(low: low, high: high) : .logUniform(low: low, high: high)
        case "int_uniform":
            guard let low = reader.int(lowNode, "\(path).low"), let high = reader.int(highNode, "\(path).high") else { return nil }
            guard high >= low else { reader.fail("\(path).high", highNode, "must be at least low (\(low))"); return nil }
            return .intUniform(low: low, high: high)
        default:
            let suggestion = closest(kind, among: ["uniform", "log_uniform", "int_uniform"]).map { " (did you mean \($0)?)" } ?? ""
            reader.fail("\(path).distribution", section["distribution"]!, "must be uniform, log_uniform or int_uniform\(suggestion)")
            return nil
        }
    }
}

/// Expands a config into its trials: grid (every combination, first key outermost, as
/// itertools.product) or random (seeded draws), each repeated with seeds seed, seed+1, ...
public enum SweepPlanner {
    public static func trials(tree: ConfigNode, config: ExperimentConfig, source: String, useSweep: Bool = true) throws -> [TrialPlan] {
        var base = tree
        base.remove(ConfigPath([.key("sweep")]))
        // The split seed stays fixed across repeats, so every repeat sees the same validation set.
        try base.set(ConfigPath([.key("data"), .key("seed")]), to: .scalar(String(config.data.seed ?? config.seed), location: "default"))
        var points: [[(path: ConfigPath, value: ConfigNode)]] = [[]]
        if useSweep, let sweep = config.sweep {
            switch sweep.method {
            case .grid:
                for parameter in sweep.parameters {
                    guard case .list(let values) = parameter.values else { continue }
                    points = points.flatMap { point in values.map { point + [(parameter.path, $0)] } }
                }
            case .random:
                var random = SplitMix64(seed: UInt64(sweep.seed ?? config.seed) ^ 0x5EED_5EED)
                points = (0..<(sweep.trials ?? 1)).map { _ in
                    sweep.parameters.map { parameter in (parameter.path, draw(parameter.values, &random)) }
                }
            }
        }
        let keys = points.first?.map(\.path) ?? []
        // Cross-validation: every trial trains once per fold, unless the config names one fold.
        let folds: [Int?] = config.data.folds.map { count in config.data.fold.map { [$0] } ?? Array(0..<count) } ?? [nil]
        var plans: [TrialPlan] = []
        for point in points {
            for repeatIndex in 0..<config.repeats {
                let seed = config.seed + repeatIndex
                for fold in folds {
                    var trial = base
                    for (path, value) in point { try ExperimentConfig.setExclusive(&trial, path, value) }
                    try trial.set(ConfigPath([.key("seed")]), to: .scalar(String(seed), location: "default"))
                    if let fold { try trial.set(ConfigPath([.key("data"), .key("fold")]), to: .scalar(String(fold), location: "default")) }
                    var trialConfig = try ExperimentConfig.decode(trial, source: source, defaultName: config.name)
                    trialConfig.name = config.name
                    trialConfig.runsDirectory = config.runsDirectory
                    var parts = point.map { "\(label($0.path, among: keys))=\(valueLabel($0.value))" }
                    if config.repeats > 1 || parts.isEmpty { parts.append("seed=\(seed)") }
                    if let fold { parts.append("fold=\(fold)") }
                    let id = parts.joined(separator: ",").replacingOccurrences(of: "/", with: "_")
                    plans.append(TrialPlan(index: plans.count, id: id, parameters: point.map { ($0.path.description, $0.value) },
                                           seed: seed, repeatIndex: repeatIndex, fold: fold, config: trialConfig))
                }
            }
        }
        var seen: [String: Int] = [:]
        for i in plans.indices {
            // Two points can print alike (a random sweep drawing one list value twice): keep directories unique.
            seen[plans[i].id, default: 0] += 1
            if seen[plans[i].id]! > 1 { plans[i].id += ",n=\(seen[plans[i].id]!)" }
        }
        return plans
    }

    static func draw(_ values: SweepValues, _ random: inout SplitMix64) -> ConfigNode {
        let unit = Double(random.next() >> 11) / 9_007_199_254_740_992
        switch values {
        case .list(let items): return items[min(items.count - 1, Int(unit * Double(items.count)))]
        case .uniform(let low, let high): return .scalar(ConfigFormat.number(low + (high - low) * unit), location: "sweep")
        case .logUniform(let low, let high): return .scalar(ConfigFormat.number(exp(log(low) + (log(high) - log(low)) * unit)), location: "sweep")
        case .intUniform(let low, let high): return .scalar(String(low + min(high - low, Int(unit * Double(high - low + 1)))), location: "sweep")
        }
    }

    /// `phases[1].lr` → `lr`, `augment` → `aug`; the full path when two keys share a last name.
    static func label(_ path: ConfigPath, among paths: [ConfigPath]) -> String {
        let last = path.lastKey
        if paths.filter({ $0.lastKey == last }).count > 1 { return path.description }
        return last == "augment" ? "aug" : last
    }

    static func valueLabel(_ value: ConfigNode) -> String {
        switch value.kind {
        case .scalar(let text, let quoted):
            if !quoted, let number = ConfigReader.number(text) { return ConfigFormat.number(number) }
            return text
        case .list(let items): return items.map(valueLabel).joined(separator: "x")
        case .map(let entries): return entries.map { "\($0.key)=\(valueLabel($0.value))" }.joined(separator: "+")
        }
    }
}
