import CriaCore
import CriaTraining
import Foundation

/// One trial as the reports see it: its `summary.json` plus its epoch records.
///
/// Reading is lenient on purpose: a key the runner leaves out (no test set,
/// no linear probe) becomes nil, so older or partial trials still report.
public struct TrialSummary {
    public struct Phase: Sendable {
        public var name: String
        public var type: String
        public var epochs: Int
        public var firstEpoch: Int
        public var freezing: String
        public var optimizer: String
        public var lr: Double?
    }

    public struct ClassMetrics: Sendable {
        public var name: String
        public var precision: Double?
        public var recall: Double?
    }

    public struct TestMetrics: Sendable {
        public var loss: Double?
        public var accuracy: Double?
        public var perClass: [ClassMetrics]
        public var confusion: [[Int]]
    }

    public var directory: URL
    public var trialID: String
    public var experiment: String
    public var seed: Int?
    public var repeatIndex: Int
    /// The held-out fold and the fold count under `data.folds` (nil without cross-validation).
    public var fold: Int?
    public var folds: Int?
    /// Sweep key path → value, as the runner resolved it.
    public var parameters: [String: JSONValue]
    public var status: String
    public var phases: [Phase]
    public var fineTuneStartEpoch: Int?
    public var bestValAccuracy: Double?
    public var bestEpoch: Int?
    public var finalValAccuracy: Double?
    public var finalValLoss: Double?
    public var finalAccuracy: Double?
    public var frozenPhaseValAccuracy: Double?
    public var test: TestMetrics?
    public var linearProbeValAccuracy: Double?
    public var wallSeconds: Double?
    public var peakRSSMB: Double?
    public var classNames: [String]
    /// The raw `dataset` object (directory, counts per split and class).
    public var dataset: JSONValue?
    public var raw: JSONValue
    /// From metrics.jsonl; empty when the file is missing.
    public var records: [EpochRecord]

    public static let fileName = "summary.json"

    public var isFinished: Bool { status == "finished" }

    /// A directory holding a trial's summary.json (an experiment's summary.json says `"kind": "experiment_summary"`).
    public static func isTrialDirectory(_ directory: URL) -> Bool {
        let url = directory.appendingPathComponent(fileName)
        return FileManager.default.fileExists(atPath: url.path) && !CrossValidationSummary.isExperimentSummary(url)
    }
    /// Planned epochs over all phases: what "equal total epochs" compares, whatever early stopping did.
    public var totalEpochs: Int { phases.isEmpty ? records.count : phases.reduce(0) { $0 + $1.epochs } }
    /// Epochs actually run (fewer than planned after early stopping).
    public var epochsRun: Int { raw["epochs"]?.int ?? records.count }
    public var bestValLoss: Double? { records.compactMap(\.valLoss).filter(\.isFinite).min() ?? finalValLoss }
    public var isFrozenOnly: Bool { fineTuneStartEpoch == nil }
    /// n_val / n_train, the correction term of the cross-validation interval.
    public var testTrainRatio: Double? {
        guard let train = dataset?["train_count"]?.double, let validation = dataset?["val_count"]?.double, train > 0 else { return nil }
        return validation / train
    }
    /// The final validation accuracy keyed by fold and seed, for intervals and pairing.
    public var heldOutAccuracy: FoldValue? { finalValAccuracy.map { FoldValue(fold: fold, seed: seed ?? repeatIndex, value: $0) } }
    public var heldOutLoss: FoldValue? { finalValLoss.map { FoldValue(fold: fold, seed: seed ?? repeatIndex, value: $0) } }

    /// The fine-tune depth, "frozen only" when no phase unfreezes: the sweep's `fine_tune_at`
    /// value when it has one, otherwise the freezing of the first unfrozen phase ("fine_tune_at=120").
    public var depthLabel: String {
        if isFrozenOnly { return "frozen only" }
        if let key = parameters.keys.sorted().first(where: { $0.contains("fine_tune_at") }), let value = parameters[key], !value.isNull,
           value.string?.lowercased() != "none" {
            return "fine_tune_at=\(Self.format(value))"
        }
        return phases.first { $0.freezing != "trainable=none" }?.freezing ?? "fine-tuned"
    }

    /// The layer index fine-tuning starts from, for sorting depths (nil when frozen only or unknown).
    public var depthValue: Double? {
        guard !isFrozenOnly, let equals = depthLabel.firstIndex(of: "=") else { return nil }
        return Double(depthLabel[depthLabel.index(after: equals)...])
    }

    public init(directory: URL) throws {
        let url = directory.appendingPathComponent(Self.fileName)
        guard let data = FileManager.default.contents(atPath: url.path) else { throw CriaError("\(url.path): cannot read") }
        let json = try JSONValue.parse(String(decoding: data, as: UTF8.self), source: url.path)
        guard json.object != nil else { throw CriaError("\(url.path): not a JSON object") }
        self.directory = directory
        raw = json
        trialID = json["trial_id"]?.string ?? directory.lastPathComponent
        experiment = json["experiment"]?.string ?? ""
        seed = json["seed"]?.int
        repeatIndex = json["repeat"]?.int ?? 0
        fold = json["fold"]?.int
        folds = json["folds"]?.int
        parameters = json["parameters"]?.object ?? [:]
        status = json["status"]?.string ?? "unknown"
        phases = (json["phases"]?.array ?? []).map { phase in
            Phase(name: phase["name"]?.string ?? "", type: phase["type"]?.string ?? "train", epochs: phase["epochs"]?.int ?? 0,
                  firstEpoch: phase["first_epoch"]?.int ?? 0, freezing: phase["freezing"]?.string ?? "",
                  optimizer: phase["optimizer"]?.string ?? "", lr: phase["lr"]?.double)
        }
        fineTuneStartEpoch = json["fine_tune_start_epoch"]?.int
        bestValAccuracy = json["best_val_accuracy"]?.double
        bestEpoch = json["best_epoch"]?.int
        finalValAccuracy = json["final_val_accuracy"]?.double
        finalValLoss = json["final_val_loss"]?.double
        finalAccuracy = json["final_accuracy"]?.double
        frozenPhaseValAccuracy = json["frozen_phase_val_accuracy"]?.double
        if let test = json["test"], test.object != nil {
            self.test = TestMetrics(
                loss: test["loss"]?.double, accuracy: test["accuracy"]?.double,
                perClass: (test["per_class"]?.array ?? []).map {
                    ClassMetrics(name: $0["name"]?.string ?? "", precision: $0["precision"]?.double, recall: $0["recall"]?.double)
                },
                confusion: (test["confusion"]?.array ?? []).map { ($0.array ?? []).map { $0.int ?? 0 } })
        }
        linearProbeValAccuracy = json["linear_probe"]?["val_accuracy"]?.double
        wallSeconds = json["wall_seconds"]?.double
        peakRSSMB = json["peak_rss_mb"]?.double
        classNames = (json["class_names"]?.array ?? []).compactMap(\.string)
        dataset = json["dataset"]
        let jsonl = directory.appendingPathComponent(MetricsLog.jsonlFileName)
        records = FileManager.default.fileExists(atPath: jsonl.path) ? try MetricsLog.read(directory: directory) : []
        // Fill what summary.json leaves out from the epoch log, so ranking never depends on the writer's completeness.
        if bestValAccuracy == nil, let best = records.filter({ $0.valAccuracy != nil }).max(by: { $0.valAccuracy! < $1.valAccuracy! }) {
            bestValAccuracy = best.valAccuracy
            bestEpoch = bestEpoch ?? best.epoch
        }
        if finalValAccuracy == nil { finalValAccuracy = records.last?.valAccuracy }
        if finalValLoss == nil { finalValLoss = records.last?.valLoss }
        if finalAccuracy == nil { finalAccuracy = records.last?.accuracy }
    }

    /// A metric by name for ranking: summary keys first, then test metrics, then the best epoch value.
    public func value(of metric: String, direction: RankDirection) -> Double? {
        switch metric {
        case "val_accuracy", "best_val_accuracy": return bestValAccuracy
        case "val_loss", "best_val_loss": return bestValLoss
        case "final_val_accuracy": return finalValAccuracy
        case "final_val_loss": return finalValLoss
        case "final_accuracy": return finalAccuracy
        case "test_accuracy": return test?.accuracy
        case "test_loss": return test?.loss
        case "linear_probe_val_accuracy": return linearProbeValAccuracy
        default:
            if let number = raw[metric]?.double { return number }
            let values = records.compactMap { $0.metric(metric) }.filter(\.isFinite)
            return direction == .max ? values.max() : values.min()
        }
    }

    /// Sweep values as they read in a table: numbers in Python's notation, null as "none".
    public static func format(_ value: JSONValue) -> String {
        switch value {
        case .null: return "none"
        case .bool(let flag): return flag ? "true" : "false"
        case .number(let number): return number == number.rounded() && abs(number) < 1e15 ? String(Int(number)) : PythonFloat.repr(number)
        case .string(let text): return text
        case .array, .object: return value.serialized()
        }
    }

    /// Every finished trial under `directory` (a trial, an experiment, or a folder of experiments), sorted by id.
    /// Trials without a finished summary.json are left out and listed in `unfinished`.
    public static func loadAll(under directory: URL, depth: Int = 3) throws -> (finished: [TrialSummary], unfinished: [URL]) {
        var finished = [TrialSummary](), unfinished = [URL]()
        func visit(_ url: URL, _ remaining: Int) throws {
            if isTrialDirectory(url) {
                let trial = try TrialSummary(directory: url)
                if trial.isFinished { finished.append(trial) } else { unfinished.append(url) }
                return
            }
            if FileManager.default.fileExists(atPath: url.appendingPathComponent(MetricsLog.jsonlFileName).path) {
                unfinished.append(url)  // a trial that was interrupted before its summary was written
                return
            }
            guard remaining > 0 else { return }
            let children = (try? FileManager.default.contentsOfDirectory(at: url, includingPropertiesForKeys: [.isDirectoryKey])) ?? []
            for child in children.sorted(by: { $0.lastPathComponent < $1.lastPathComponent })
            where (try? child.resourceValues(forKeys: [.isDirectoryKey]).isDirectory) == true && !child.lastPathComponent.hasPrefix(".") {
                try visit(child, remaining - 1)
            }
        }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory.path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw CriaError("\(directory.path): no such directory")
        }
        try visit(directory, depth)
        finished.sort { ($0.trialID, $0.repeatIndex, $0.directory.path) < ($1.trialID, $1.repeatIndex, $1.directory.path) }
        return (finished, unfinished)
    }

    /// The parameters other than the repeat seed, as a stable key for grouping repeats.
    public var settingKey: String {
        parameters.keys.sorted().map { "\($0)=\(Self.format(parameters[$0]!))" }.joined(separator: ",")
    }
}

public enum RankDirection: String, Sendable {
    case max, min
}

/// Mean and sample standard deviation (n - 1), as reports over repeats use them.
public struct MeanStd: Equatable, Sendable {
    public var mean: Double
    /// nil with fewer than two values.
    public var std: Double?
    public var count: Int

    public init?(_ values: [Double]) {
        let finite = values.filter(\.isFinite)
        guard !finite.isEmpty else { return nil }
        count = finite.count
        mean = finite.reduce(0, +) / Double(finite.count)
        if finite.count > 1 {
            let m = mean
            std = (finite.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(finite.count - 1)).squareRoot()
        } else {
            std = nil
        }
    }

    public func formatted(_ digits: Int = 4) -> String {
        let m = String(format: "%.\(digits)f", mean)
        return std.map { m + " ± " + String(format: "%.\(digits)f", $0) } ?? m
    }
}
