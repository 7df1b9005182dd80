import CriaCore
// The records the reports read (TrialSummary, EpochRecord, ...) come with `import CriaReports`.
@_exported import CriaRecords
import Foundation

/// How the reports read a trial (`TrialSummary`, from CriaRecords): finding trials under a
/// directory, ranking values and the fine-tune depth, all from the typed record.
extension TrialSummary {
    /// A directory holding a trial's summary.json (an experiment's summary.json says `"kind": "experiment_summary"`).
    public static func isTrialDirectory(_ directory: URL) -> Bool {
        let url = directory.appendingPathComponent(fileName)
        return FileManager.default.fileExists(atPath: url.path) && !CrossValidationSummary.isExperimentSummary(url)
    }
    /// Planned epochs over all phases: what "equal total epochs" compares, whatever early stopping did.
    public var totalEpochs: Int { phases.isEmpty ? records.count : phases.reduce(0) { $0 + $1.epochs } }
    /// Epochs actually run (fewer than planned after early stopping).
    public var epochsRun: Int { epochs ?? records.count }
    public var bestValLoss: Double? { records.compactMap(\.valLoss).filter(\.isFinite).min() ?? finalValLoss }
    public var isFrozenOnly: Bool { fineTuneStartEpoch == nil }
    /// n_val / n_train, the correction term of the cross-validation interval.
    public var testTrainRatio: Double? {
        guard let train = dataset?.trainCount, let validation = dataset?.valCount, train > 0 else { return nil }
        return Double(validation) / Double(train)
    }
    /// The final validation accuracy keyed by fold and seed, for intervals and pairing.
    public var heldOutAccuracy: FoldValue? { finalValAccuracy.map { FoldValue(fold: fold, seed: seed ?? repeatIndex, value: $0) } }
    public var heldOutLoss: FoldValue? { finalValLoss.map { FoldValue(fold: fold, seed: seed ?? repeatIndex, value: $0) } }

    /// The fine-tune depth: "frozen only" when no phase unfreezes, otherwise the freezing of
    /// the fine-tune phase as the config writes it ("fine_tune_at=120").
    public var depthLabel: String {
        if isFrozenOnly { return "frozen only" }
        return fineTunePhase?.freezing.description ?? "fine-tuned"
    }

    /// The layer index fine-tuning starts from, for sorting depths (nil when frozen only or unknown).
    public var depthValue: Double? {
        guard !isFrozenOnly else { return nil }
        return fineTunePhase?.freezing.firstTrainableLayer.map(Double.init)
    }

    /// A metric by name for ranking: summary keys first, then test metrics, then the best epoch value.
    public func value(of metric: String, direction: RankDirection) -> Double? {
        switch metric {
        case "val_accuracy", "best_val_accuracy": return bestValAccuracy
        case "val_loss", "best_val_loss": return bestValLoss
        case "final_val_accuracy": return finalValAccuracy
        case "final_val_loss": return finalValLoss
        case "final_accuracy": return finalAccuracy
        case "final_loss": return finalLoss ?? records.last?.loss
        case "frozen_phase_val_accuracy": return frozenPhaseValAccuracy
        case "test_accuracy": return test?.accuracy
        case "test_loss": return test?.loss
        case "linear_probe_val_accuracy": return linearProbeValAccuracy
        case "best_epoch": return bestEpoch.map(Double.init)
        case "epochs": return Double(epochsRun)
        case "fine_tune_start_epoch": return fineTuneStartEpoch.map(Double.init)
        case "wall_seconds": return wallSeconds
        case "peak_rss_mb": return peakRSSMB
        default:
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
