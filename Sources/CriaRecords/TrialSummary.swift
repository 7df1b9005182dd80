import CriaCore
import Foundation

/// One trial: its `summary.json` (written last by the runner, so its presence with status
/// "finished" marks the trial done) plus, when read from a directory, its epoch records.
///
/// The runner writes this record and the reports read it, so neither parses the other's text.
/// Reading is lenient on purpose: a key the runner leaves out (no test set, no linear probe,
/// an older file) becomes nil, so older or partial trials still report.
public struct TrialSummary: Equatable, Sendable {
    public struct ClassMetrics: Codable, Equatable, Sendable {
        public var name: String
        public var precision: Double?
        public var recall: Double?
        public init(name: String, precision: Double?, recall: Double?) {
            self.name = name
            self.precision = precision
            self.recall = recall
        }
    }

    /// Keras's `model.evaluate` on the test set, with per-class precision and recall.
    public struct TestMetrics: Equatable, Sendable {
        public var loss: Double?
        public var accuracy: Double?
        public var kerasAccuracy: Double?
        public var count: Int?
        public var perClass: [ClassMetrics]
        /// Rows: true class; columns: predicted class.
        public var confusion: [[Int]]
        public init(loss: Double?, accuracy: Double?, kerasAccuracy: Double? = nil, count: Int? = nil, perClass: [ClassMetrics] = [],
                    confusion: [[Int]] = []) {
            self.loss = loss
            self.accuracy = accuracy
            self.kerasAccuracy = kerasAccuracy
            self.count = count
            self.perClass = perClass
            self.confusion = confusion
        }
    }

    /// Where the data came from and how it split.
    public struct Dataset: Equatable, Sendable {
        public var directory: String?
        public var trainCount: Int?
        public var valCount: Int?
        public var testCount: Int?
        /// Class name → images.
        public var classCountsTrain: [String: Int]
        public var classCountsVal: [String: Int]
        public init(directory: String?, trainCount: Int?, valCount: Int?, testCount: Int? = nil, classCountsTrain: [String: Int] = [:],
                    classCountsVal: [String: Int] = [:]) {
            self.directory = directory
            self.trainCount = trainCount
            self.valCount = valCount
            self.testCount = testCount
            self.classCountsTrain = classCountsTrain
            self.classCountsVal = classCountsVal
        }
    }

    public var trialID: String
    public var experiment: String
    public var seed: Int?
    /// Zero-based repeat index.
    public var repeatIndex: Int
    /// The held-out fold and the fold count under `data.folds` (nil without cross-validation).
    public var fold: Int?
    public var folds: Int?
    /// Sweep key path → value, as the runner resolved it (for tables; the reports find the
    /// phases' freezing and learning rates in `phases`, never by a key's name).
    public var parameters: [String: JSONValue]
    public var status: String
    public var phases: [PhaseRecord]
    /// The first epoch of the first phase that unfreezes anything; nil if none does.
    public var fineTuneStartEpoch: Int?
    public var bestValAccuracy: Double?
    /// Zero-based; the earliest epoch on ties.
    public var bestEpoch: Int?
    public var finalValAccuracy: Double?
    public var finalValLoss: Double?
    public var finalAccuracy: Double?
    public var finalLoss: Double?
    /// Epochs run over all phases.
    public var epochs: Int?
    /// The last epoch with the base frozen, before fine-tuning.
    public var frozenPhaseValAccuracy: Double?
    public var test: TestMetrics?
    public var linearProbeValAccuracy: Double?
    public var wallSeconds: Double?
    /// The process's peak resident memory so far, in MiB.
    public var peakRSSMB: Double?
    public var criaVersion: String?
    public var gitCommit: String?
    public var classNames: [String]
    public var dataset: Dataset?

    /// The trial directory it was read from (not in the file).
    public var directory: URL
    /// From metrics.jsonl; empty when the file is missing (not in summary.json).
    public var records: [EpochRecord]

    public static let fileName = "summary.json"

    public init(trialID: String, experiment: String, seed: Int? = nil, repeatIndex: Int = 0, parameters: [String: JSONValue] = [:],
                status: String = "finished", phases: [PhaseRecord] = [], directory: URL = URL(fileURLWithPath: "."), records: [EpochRecord] = []) {
        self.trialID = trialID
        self.experiment = experiment
        self.seed = seed
        self.repeatIndex = repeatIndex
        self.parameters = parameters
        self.status = status
        self.phases = phases
        self.classNames = []
        self.directory = directory
        self.records = records
    }

    public var isFinished: Bool { status == "finished" }

    /// Reads `summary.json` and `metrics.jsonl` of a trial directory. What the summary leaves out is
    /// filled from the epoch log, so ranking never depends on the writer's completeness.
    public init(directory: URL) throws {
        let url = directory.appendingPathComponent(Self.fileName)
        guard let data = FileManager.default.contents(atPath: url.path) else { throw CriaError("\(url.path): cannot read") }
        self = try RecordCoding.decode(TrialSummary.self, from: data, source: url.path)
        self.directory = directory
        if trialID.isEmpty { trialID = directory.lastPathComponent }
        let jsonl = directory.appendingPathComponent(EpochRecord.jsonlFileName)
        records = FileManager.default.fileExists(atPath: jsonl.path) ? try EpochRecord.readJSONLines(jsonl) : []
        if bestValAccuracy == nil, let best = records.filter({ $0.valAccuracy != nil }).max(by: { $0.valAccuracy! < $1.valAccuracy! }) {
            bestValAccuracy = best.valAccuracy
            bestEpoch = bestEpoch ?? best.epoch
        }
        if finalValAccuracy == nil { finalValAccuracy = records.last?.valAccuracy }
        if finalValLoss == nil { finalValLoss = records.last?.valLoss }
        if finalAccuracy == nil { finalAccuracy = records.last?.accuracy }
    }

    /// Writes `summary.json` into `directory` atomically.
    public func write(to directory: URL) throws {
        try AtomicFile.write(try json(), to: directory.appendingPathComponent(Self.fileName))
    }

    /// The text of `summary.json`: pretty, keys sorted, non-finite numbers as null.
    public func json() throws -> String {
        String(decoding: try RecordCoding.encoder().encode(self), as: UTF8.self) + "\n"
    }

    /// The first train phase that unfreezes part of the base and runs (the fine-tune phase); nil when frozen only.
    public var fineTunePhase: PhaseRecord? {
        phases.first { $0.type == .train && $0.freezing.unfreezesBase && $0.epochs > 0 }
    }
}

extension TrialSummary: Codable {
    enum CodingKeys: String, CodingKey {
        case trialID = "trial_id", experiment, seed
        case repeatIndex = "repeat"
        case fold, folds, parameters, status, phases
        case fineTuneStartEpoch = "fine_tune_start_epoch"
        case bestValAccuracy = "best_val_accuracy"
        case bestEpoch = "best_epoch"
        case finalValAccuracy = "final_val_accuracy"
        case finalValLoss = "final_val_loss"
        case finalAccuracy = "final_accuracy"
        case finalLoss = "final_loss"
        case epochs
        case frozenPhaseValAccuracy = "frozen_phase_val_accuracy"
        case test
        case linearProbe = "linear_probe"
        case wallSeconds = "wall_seconds"
        case peakRSSMB = "peak_rss_mb"
        case criaVersion = "cria_version"
        case gitCommit = "git_commit"
        case classNames = "class_names"
        case dataset
    }
    enum ProbeKeys: String, CodingKey { case valAccuracy = "val_accuracy" }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        func lenient<T: Decodable>(_ key: CodingKeys) -> T? { (try? c.decodeIfPresent(T.self, forKey: key)) ?? nil }
        trialID = lenient(.trialID) ?? ""
        experiment = lenient(.experiment) ?? ""
        seed = lenient(.seed)
        repeatIndex = lenient(.repeatIndex) ?? 0
        fold = lenient(.fold)
        folds = lenient(.folds)
        parameters = lenient(.parameters) ?? [:]
        status = lenient(.status) ?? "unknown"
        phases = try c.decodeIfPresent([PhaseRecord].self, forKey: .phases) ?? []
        fineTuneStartEpoch = lenient(.fineTuneStartEpoch)
        bestValAccuracy = lenient(.bestValAccuracy)
        bestEpoch = lenient(.bestEpoch)
        finalValAccuracy = lenient(.finalValAccuracy)
        finalValLoss = lenient(.finalValLoss)
        finalAccuracy = lenient(.finalAccuracy)
        finalLoss = lenient(.finalLoss)
        epochs = lenient(.epochs)
        frozenPhaseValAccuracy = lenient(.frozenPhaseValAccuracy)
        test = lenient(.test)
        let probe = try? c.nestedContainer(keyedBy: ProbeKeys.self, forKey: .linearProbe)
        linearProbeValAccuracy = probe.flatMap { (try? $0.decodeIfPresent(Double.self, forKey: .valAccuracy)) ?? nil }
        wallSeconds = lenient(.wallSeconds)
        peakRSSMB = lenient(.peakRSSMB)
        criaVersion = lenient(.criaVersion)
        gitCommit = lenient(.gitCommit)
        classNames = lenient(.classNames) ?? []
        dataset = lenient(.dataset)
        directory = URL(fileURLWithPath: ".")
        records = []
    }

    /// Every key is written, null when absent, as pandas expects a fixed set of columns.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        func finite(_ value: Double?) -> Double? { value.flatMap { $0.isFinite ? $0 : nil } }
        try c.encode(trialID, forKey: .trialID)
        try c.encode(experiment, forKey: .experiment)
        try c.encode(seed, forKey: .seed)
        try c.encode(repeatIndex, forKey: .repeatIndex)
        try c.encode(fold, forKey: .fold)
        try c.encode(folds, forKey: .folds)
        try c.encode(parameters, forKey: .parameters)
        try c.encode(status, forKey: .status)
        try c.encode(phases, forKey: .phases)
        try c.encode(fineTuneStartEpoch, forKey: .fineTuneStartEpoch)
        try c.encode(finite(bestValAccuracy), forKey: .bestValAccuracy)
        try c.encode(bestEpoch, forKey: .bestEpoch)
        try c.encode(finite(finalValAccuracy), forKey: .finalValAccuracy)
        try c.encode(finite(finalValLoss), forKey: .finalValLoss)
        try c.encode(finite(finalAccuracy), forKey: .finalAccuracy)
        try c.encode(finite(finalLoss), forKey: .finalLoss)
        try c.encode(epochs, forKey: .epochs)
        try c.encode(finite(frozenPhaseValAccuracy), forKey: .frozenPhaseValAccuracy)
        try c.encode(test, forKey: .test)
        if let probe = linearProbeValAccuracy {
            var nested = c.nestedContainer(keyedBy: ProbeKeys.self, forKey: .linearProbe)
            try nested.encode(finite(probe), forKey: .valAccuracy)
        } else {
            try c.encodeNil(forKey: .linearProbe)
        }
        try c.encode(finite(wallSeconds), forKey: .wallSeconds)
        try c.encode(finite(peakRSSMB), forKey: .peakRSSMB)
        try c.encode(criaVersion, forKey: .criaVersion)
        try c.encode(gitCommit, forKey: .gitCommit)
        try c.encode(classNames, forKey: .classNames)
        try c.encode(dataset, forKey: .dataset)
    }
}

extension TrialSummary.TestMetrics: Codable {
    enum CodingKeys: String, CodingKey {
        case loss, accuracy
        case kerasAccuracy = "keras_accuracy"
        case count
        case perClass = "per_class"
        case confusion
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        func lenient<T: Decodable>(_ key: CodingKeys) -> T? { (try? c.decodeIfPresent(T.self, forKey: key)) ?? nil }
        loss = lenient(.loss)
        accuracy = lenient(.accuracy)
        kerasAccuracy = lenient(.kerasAccuracy)
        count = lenient(.count)
        perClass = lenient(.perClass) ?? []
        confusion = lenient(.confusion) ?? []
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        func finite(_ value: Double?) -> Double? { value.flatMap { $0.isFinite ? $0 : nil } }
        try c.encode(finite(loss), forKey: .loss)
        try c.encode(finite(accuracy), forKey: .accuracy)
        try c.encode(finite(kerasAccuracy), forKey: .kerasAccuracy)
        try c.encode(count, forKey: .count)
        try c.encode(perClass, forKey: .perClass)
        try c.encode(confusion, forKey: .confusion)
    }
}

extension TrialSummary.Dataset: Codable {
    enum CodingKeys: String, CodingKey {
        case directory
        case trainCount = "train_count"
        case valCount = "val_count"
        case testCount = "test_count"
        case classCountsTrain = "class_counts_train"
        case classCountsVal = "class_counts_val"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        func lenient<T: Decodable>(_ key: CodingKeys) -> T? { (try? c.decodeIfPresent(T.self, forKey: key)) ?? nil }
        directory = lenient(.directory)
        trainCount = lenient(.trainCount)
        valCount = lenient(.valCount)
        testCount = lenient(.testCount)
        classCountsTrain = lenient(.classCountsTrain) ?? [:]
        classCountsVal = lenient(.classCountsVal) ?? [:]
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(directory, forKey: .directory)
        try c.encode(trainCount, forKey: .trainCount)
        try c.encode(valCount, forKey: .valCount)
        try c.encode(testCount, forKey: .testCount)
        try c.encode(classCountsTrain, forKey: .classCountsTrain)
        try c.encode(classCountsVal, forKey: .classCountsVal)
    }
}

extension EpochRecord {
    public static let jsonlFileName = "metrics.jsonl"

    /// The records of a `metrics.jsonl` file, one JSON object per line; errors name the file and line.
    public static func readJSONLines(_ url: URL) throws -> [EpochRecord] {
        guard let data = FileManager.default.contents(atPath: url.path) else { throw CriaError("\(url.path): cannot read") }
        var records = [EpochRecord]()
        for (index, line) in String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).enumerated()
        where !line.trimmingCharacters(in: .whitespaces).isEmpty {
            records.append(try RecordCoding.decode(EpochRecord.self, from: Data(line.utf8), source: "\(url.path): line \(index + 1)"))
        }
        return records
    }
}
