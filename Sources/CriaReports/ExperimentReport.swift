import CriaCore
import Foundation

/// Experiment-level summaries: `summary.csv`, `summary.md` and `comparison.svg`.
///
/// Everything is rebuilt from the trial directories present, never kept
/// incrementally, so shards that wrote into the same experiment directory
/// (from several machines) merge by simply rebuilding, and a resumed sweep
/// reports exactly like an uninterrupted one.
public enum ExperimentReport {
    public static let csvFileName = "summary.csv"
    public static let markdownFileName = "summary.md"
    public static let figureFileName = "comparison.svg"

    /// What the runner's `sweep.json` says about ranking and size (all optional).
    public struct SweepInfo {
        public var metric = "val_accuracy"
        public var direction = RankDirection.max
        public var total: Int?
        /// The sweep's key paths in the config's order, for table columns.
        public var parameterKeys: [String] = []

        public init(experimentDirectory: URL) throws {
            let url = experimentDirectory.appendingPathComponent("sweep.json")
            guard let data = FileManager.default.contents(atPath: url.path) else { return }
            let json = try JSONValue.parse(String(decoding: data, as: UTF8.self), source: url.path)
            if let metric = json["metric"]?.string { self.metric = metric }
            if let direction = json["direction"]?.string {
                guard let parsed = RankDirection(rawValue: direction.lowercased()) else {
                    throw CriaError("\(url.path): direction must be max or min, not \(direction)")
                }
                self.direction = parsed
            }
            total = json["total"]?.int ?? json["count"]?.int ?? json["trials"]?.array?.count
            parameterKeys = (json["parameter_keys"]?.array ?? []).compactMap(\.string)
        }

        public init(metric: String = "val_accuracy", direction: RankDirection = .max, total: Int? = nil) {
            self.metric = metric
            self.direction = direction
            self.total = total
        }
    }

    /// Rewrites the experiment's summaries and returns summary.md's text.
    /// A trial directory is accepted too: its parent experiment is rebuilt.
    @discardableResult
    public static func rebuild(experimentDirectory: URL) throws -> String {
        var directory = experimentDirectory.standardizedFileURL
        if TrialSummary.isTrialDirectory(directory) { directory = directory.deletingLastPathComponent() }
        let sweep = try SweepInfo(experimentDirectory: directory)
        let (trials, unfinished) = try TrialSummary.loadAll(under: directory, depth: 2)
        let ranked = rank(trials, metric: sweep.metric, direction: sweep.direction)
        let experiment = ranked.first?.experiment.nonEmpty ?? directory.deletingLastPathComponent().lastPathComponent
        let crossValidation = CrossValidationSummary.make(experiment: experiment,
                                                          groups: groups(ranked, metric: sweep.metric, direction: sweep.direction))
        let markdown = self.markdown(ranked, unfinished: unfinished, sweep: sweep, directory: directory, crossValidation: crossValidation)
        try AtomicFile.write(csv(ranked, parameterOrder: sweep.parameterKeys, crossValidation: crossValidation),
                             to: directory.appendingPathComponent(csvFileName))
        try AtomicFile.write(try crossValidation.json(), to: directory.appendingPathComponent(CrossValidationSummary.fileName))
        try AtomicFile.write(markdown, to: directory.appendingPathComponent(markdownFileName))
        try AtomicFile.write(ComparisonFigure.svg(trials: ranked, title: directory.lastPathComponent),
                             to: directory.appendingPathComponent(figureFileName))
        return markdown
    }

    /// Trials best first by `metric`; trials without it last; ties by trial id then repeat, so the order is reproducible.
    public static func rank(_ trials: [TrialSummary], metric: String, direction: RankDirection) -> [TrialSummary] {
        trials.sorted { a, b in
            let x = a.value(of: metric, direction: direction), y = b.value(of: metric, direction: direction)
            switch (x, y) {
            case let (x?, y?) where x != y: return direction == .max ? x > y : x < y
            case (_?, nil): return true
            case (nil, _?): return false
            default: return (a.trialID, a.repeatIndex) < (b.trialID, b.repeatIndex)
            }
        }
    }

    /// Every parameter key of `trials`: those named in `order` first, in that order, then the rest alphabetically.
    static func parameterKeys(_ trials: [TrialSummary], order: [String] = []) -> [String] {
        let keys = Set(trials.flatMap { $0.parameters.keys })
        return order.filter(keys.contains) + keys.subtracting(order).sorted()
    }

    // MARK: summary.csv

    public static let csvMetricColumns = [
        "best_val_accuracy", "best_epoch", "epochs_to_best", "best_val_loss", "final_val_accuracy", "final_val_loss",
        "final_accuracy", "frozen_phase_val_accuracy", "fine_tune_start_epoch", "epochs", "test_loss", "test_accuracy",
        "linear_probe_val_accuracy", "wall_seconds", "peak_rss_mb",
    ]

    /// One row per finished trial, ranked. Numbers are Python `repr`s and a missing value is an empty field,
    /// which pandas reads as NaN.
    /// Under cross-validation the fold columns and each setting's estimates (`CrossValidationSummary.csvColumns`) follow.
    public static func csv(_ ranked: [TrialSummary], parameterOrder: [String] = [], crossValidation: CrossValidationSummary? = nil) -> String {
        let keys = parameterKeys(ranked, order: parameterOrder)
        let folded = ranked.contains { $0.folds != nil }
        var settings = [String: CrossValidationSummary.Setting]()
        for setting in crossValidation?.settings ?? [] {
            settings[setting.parameters.keys.sorted().map { "\($0)=\(setting.parameters[$0]!)" }.joined(separator: ",")] = setting
        }
        var lines = [(["rank", "trial_id", "repeat", "seed"] + keys + csvMetricColumns + (folded ? CrossValidationSummary.csvColumns : []))
            .map(MetricsLog.csvQuoted).joined(separator: ",")]
        func number(_ value: Double?) -> String { value.map(PythonFloat.repr) ?? "" }
        func integer(_ value: Int?) -> String { value.map(String.init) ?? "" }
        for (index, trial) in ranked.enumerated() {
            var fields = [String(index + 1), trial.trialID, String(trial.repeatIndex), integer(trial.seed)]
            fields += keys.map { key in trial.parameters[key].map(TrialSummary.format) ?? "" }
            fields += [
                number(trial.bestValAccuracy), integer(trial.bestEpoch), integer(trial.bestEpoch.map { $0 + 1 }),
                number(trial.bestValLoss), number(trial.finalValAccuracy), number(trial.finalValLoss), number(trial.finalAccuracy),
                number(trial.frozenPhaseValAccuracy), integer(trial.fineTuneStartEpoch), String(trial.epochsRun),
                number(trial.test?.loss), number(trial.test?.accuracy), number(trial.linearProbeValAccuracy),
                number(trial.wallSeconds), number(trial.peakRSSMB),
            ]
            if folded { fields += CrossValidationSummary.csvFields(trial, setting: settings[trial.settingKey]) }
            lines.append(fields.map(MetricsLog.csvQuoted).joined(separator: ","))
        }
        return lines.joined(separator: "\n") + "\n"
    }

    // MARK: summary.md

    /// A parameter setting's repeats, for the mean ± std table.
    public struct Group {
        public var setting: [String: JSONValue]
        public var trials: [TrialSummary]
        public func stat(_ value: (TrialSummary) -> Double?) -> MeanStd? { MeanStd(trials.compactMap(value)) }
    }

    /// Repeats grouped by parameter setting, best mean of the ranking metric first.
    public static func groups(_ trials: [TrialSummary], metric: String, direction: RankDirection) -> [Group] {
        var order = [String](), byKey = [String: Group]()
        for trial in trials {
            if byKey[trial.settingKey] == nil {
                order.append(trial.settingKey)
                byKey[trial.settingKey] = Group(setting: trial.parameters, trials: [])
            }
            byKey[trial.settingKey]!.trials.append(trial)
        }
        let groups = order.map { byKey[$0]! }
        return groups.sorted { a, b in
            let x = a.stat { $0.value(of: metric, direction: direction) }?.mean, y = b.stat { $0.value(of: metric, direction: direction) }?.mean
            switch (x, y) {
            case let (x?, y?) where x != y: return direction == .max ? x > y : x < y
            case (_?, nil): return true
            case (nil, _?): return false
            default: return false
            }
        }
    }

    static func markdown(_ ranked: [TrialSummary], unfinished: [URL], sweep: SweepInfo, directory: URL,
                         crossValidation: CrossValidationSummary? = nil) -> String {
        let keys = parameterKeys(ranked, order: sweep.parameterKeys)
        let experiment = ranked.first?.experiment.nonEmpty ?? directory.deletingLastPathComponent().lastPathComponent
        var out = "# \(experiment): \(directory.lastPathComponent)\n\n"
        let total = sweep.total.map { " of \($0)" } ?? ""
        out += "\(ranked.count)\(total) trials finished"
        if !unfinished.isEmpty {
            out += "; unfinished (no finished summary.json): " + unfinished.map { "`\($0.lastPathComponent)`" }.joined(separator: ", ")
        }
        out += ". Ranked by \(sweep.direction == .max ? "highest" : "lowest") `\(sweep.metric)`"
        let bestEpoch = ["val_accuracy", "best_val_accuracy", "val_loss", "best_val_loss"].contains(sweep.metric)
        out += bestEpoch ? " (best epoch).\n\n" : ".\n\n"
        out += "Accuracy is the correct figure (logit > 0, or argmax); Keras's `metrics=[\"accuracy\"]` value is in each trial's `metrics.csv` as `keras_accuracy`.\n\n"
        guard !ranked.isEmpty else { return out + "No finished trials yet.\n" }

        let hasTest = ranked.contains { $0.test != nil }
        out += "## Trials\n\n"
        var header = ["rank", "trial", "repeat"] + keys + ["best val acc (epoch)", "final val acc", "best val loss", "final val loss"]
        if hasTest { header += ["test acc", "test loss"] }
        header += ["epochs to best", "wall time"]
        var rows = [[String]]()
        for (index, trial) in ranked.enumerated() {
            var row = [String(index + 1), "`\(trial.trialID)`", String(trial.repeatIndex)]
            row += keys.map { key in trial.parameters[key].map(TrialSummary.format) ?? "" }
            row += [fixed(trial.bestValAccuracy) + (trial.bestEpoch.map { " (\($0))" } ?? ""), fixed(trial.finalValAccuracy),
                    fixed(trial.bestValLoss), fixed(trial.finalValLoss)]
            if hasTest { row += [fixed(trial.test?.accuracy), fixed(trial.test?.loss)] }
            row += [trial.bestEpoch.map { String($0 + 1) } ?? "", duration(trial.wallSeconds)]
            rows.append(row)
        }
        out += table(header, rows) + "\n"

        let groups = self.groups(ranked, metric: sweep.metric, direction: sweep.direction)
        out += "## Over repeats (mean ± sample std)\n\n"
        var groupHeader = keys + ["n", "best val acc", "final val acc", "final val loss"]
        if hasTest { groupHeader += ["test acc"] }
        groupHeader += ["epochs to best", "wall time"]
        let groupRows = groups.map { group -> [String] in
            var row = keys.map { key in group.setting[key].map(TrialSummary.format) ?? "" }
            row += [String(group.trials.count), stat(group.stat(\.bestValAccuracy)), stat(group.stat(\.finalValAccuracy)),
                    stat(group.stat(\.finalValLoss))]
            if hasTest { row.append(stat(group.stat { $0.test?.accuracy })) }
            row += [stat(group.stat { $0.bestEpoch.map { Double($0 + 1) } }, digits: 1),
                    group.stat(\.wallSeconds).map { duration($0.mean) } ?? ""]
            return row
        }
        out += table(groupHeader.isEmpty ? ["n"] : groupHeader, groupRows) + "\n"
        if let crossValidation { out += crossValidation.markdown(parameterKeys: keys) }
        out += "![validation accuracy of frozen-only and fine-tuned trials](\(figureFileName))\n"
        return out
    }

    // MARK: Formatting helpers shared by the markdown writers

    static func table(_ header: [String], _ rows: [[String]]) -> String {
        func line(_ cells: [String]) -> String { "| " + cells.map { $0.replacingOccurrences(of: "|", with: "\\|") }.joined(separator: " | ") + " |\n" }
        return line(header) + "|" + header.map { _ in " --- |" }.joined() + "\n" + rows.map(line).joined()
    }

    static func fixed(_ value: Double?, _ digits: Int = 4) -> String {
        guard let value else { return "" }
        return value.isFinite ? String(format: "%.\(digits)f", value) : PythonFloat.repr(value)
    }

    static func stat(_ value: MeanStd?, digits: Int = 4) -> String { value?.formatted(digits) ?? "" }

    static func duration(_ seconds: Double?) -> String {
        guard let seconds, seconds.isFinite else { return "" }
        if seconds < 60 { return String(format: "%.1f s", seconds) }
        if seconds < 3600 { return String(format: "%d min %02d s", Int(seconds) / 60, Int(seconds) % 60) }
        return String(format: "%d h %02d min", Int(seconds) / 3600, Int(seconds) % 3600 / 60)
    }
}

extension String {
    var nonEmpty: String? { isEmpty ? nil : self }
}
