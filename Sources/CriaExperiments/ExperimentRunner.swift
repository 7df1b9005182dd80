import CriaCore
import CriaReports
import Foundation

/// Runs an experiment's trials into `runs/<experiment>/<stamp>/<trial-id>/`, resuming
/// and sharding: a trial whose summary.json says "finished" is never rerun; any other
/// trial directory is cleared and its trial run again.
public final class ExperimentRunner {
    public struct Options: Sendable {
        /// Run only trials with index % count == index (0-based).
        public var shard: (index: Int, count: Int)?
        /// Run at most this many trials (after sharding and skipping finished ones).
        public var limit: Int?
        /// The experiment directory's name; shards of one sweep must share it. Nil: resume
        /// the latest unfinished directory with the same config hash, or start a new one.
        public var stamp: String?
        /// Start a new experiment directory even if an unfinished one matches.
        public var fresh = false
        /// Print the trial list only.
        public var dryRun = false
        public var verbose = true
        public var criaVersion = "unknown"
        public init() {}
    }

    public let config: ExperimentConfig
    public let tree: ConfigNode
    public let trials: [TrialPlan]
    public let configHash: String
    public var options: Options
    public var write: (String) -> Void = { FileHandle.standardError.write(Data($0.utf8)) }

    /// `useSweep: false` runs the base config only (`cria run`).
    public init(config: ExperimentConfig, tree: ConfigNode, source: String, useSweep: Bool, options: Options) throws {
        self.config = config
        self.tree = tree
        self.options = options
        trials = try SweepPlanner.trials(tree: tree, config: config, source: source, useSweep: useSweep)
        var hashed = tree
        if !useSweep { hashed.remove(ConfigPath([.key("sweep")])) }
        configHash = ConfigEmitter.hash(hashed)
        if let shard = options.shard, !(shard.count >= 1 && (0..<shard.count).contains(shard.index)) {
            throw CriaError("--shard \(shard.index)/\(shard.count): expected i/n with 0 ≤ i < n")
        }
    }

    /// Trials this process is responsible for (its shard), in order.
    public var shardTrials: [TrialPlan] {
        guard let shard = options.shard else { return trials }
        return trials.filter { $0.index % shard.count == shard.index }
    }

    public static func stamp(_ date: Date = Date()) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone.current
        formatter.dateFormat = "yyyy-MM-dd_HH-mm-ss"
        return formatter.string(from: date)
    }

    var experimentRoot: URL { TrialData.resolvePath(config.runsDirectory).appendingPathComponent(config.name) }

    /// The experiment directory: `--stamp`, else the newest unfinished one with this config hash, else a new one.
    public func experimentDirectory() throws -> URL {
        if let stamp = options.stamp {
            guard !stamp.isEmpty, !stamp.contains("/"), !stamp.hasPrefix(".") else { throw CriaError("--stamp \(stamp): must be a plain directory name") }
            let directory = experimentRoot.appendingPathComponent(stamp)
            if let existing = try? Self.readSweep(directory), existing["config_hash"]?.string != configHash {
                throw CriaError("\(directory.path) holds a different experiment (config hash \(existing["config_hash"]?.string ?? "?"), this config \(configHash)); choose another --stamp")
            }
            return directory
        }
        if !options.fresh, let candidates = try? FileManager.default.contentsOfDirectory(atPath: experimentRoot.path) {
            for name in candidates.sorted(by: >) {
                let directory = experimentRoot.appendingPathComponent(name)
                guard let sweep = try? Self.readSweep(directory), sweep["config_hash"]?.string == configHash else { continue }
                if !trials.allSatisfy({ Self.isFinished(directory.appendingPathComponent($0.id)) }) { return directory }
            }
        }
        var name = Self.stamp()
        var suffix = 2
        while FileManager.default.fileExists(atPath: experimentRoot.appendingPathComponent(name).path) {
            name = "\(Self.stamp())-\(suffix)"
            suffix += 1
        }
        return experimentRoot.appendingPathComponent(name)
    }

    static func readSweep(_ directory: URL) throws -> JSONValue {
        let text = try String(contentsOf: directory.appendingPathComponent("sweep.json"), encoding: .utf8)
        return try JSONValue.parse(text, source: directory.path)
    }

    public static func isFinished(_ trialDirectory: URL) -> Bool {
        guard let text = try? String(contentsOf: trialDirectory.appendingPathComponent("summary.json"), encoding: .utf8),
              let summary = try? JSONValue.parse(text, source: trialDirectory.path) else { return false }
        return summary["status"]?.string == "finished"
    }

    /// sweep.json: the whole trial list (every shard writes the same bytes), the ranking metric and the hash.
    public func sweepJSON() -> JSONValue {
        let sweep = config.sweep
        let list: [JSONValue] = trials.map { trial in
            .object(["index": .number(Double(trial.index)), "id": .string(trial.id), "seed": .number(Double(trial.seed)),
                     "repeat": .number(Double(trial.repeatIndex)), "fold": trial.fold.map { .number(Double($0)) } ?? .null,
                     "parameters": .object(Dictionary(trial.parameters.map { ($0.path, Summary.json($0.value)) }, uniquingKeysWith: { $1 }))])
        }
        return .object([
            "experiment": .string(config.name), "config_hash": .string(configHash), "total": .number(Double(trials.count)),
            "repeats": .number(Double(config.repeats)), "folds": config.data.folds.map { .number(Double($0)) } ?? .null,
            "method": sweep.map { .string($0.method.rawValue) } ?? .null,
            "parameter_keys": .array((sweep?.parameters ?? []).map { .string($0.path.description) }),
            "metric": .string(sweep?.metric ?? "best_val_accuracy"), "direction": .string(sweep?.direction.rawValue ?? "max"),
            "trials": .array(list),
        ])
    }

    /// The trial list as `cria sweep --dry-run` prints it.
    public func listing() -> String {
        var lines = ["\(config.name): \(trials.count) trial(s), config hash \(configHash)"
            + (options.shard.map { ", shard \($0.index)/\($0.count): \(shardTrials.count) trial(s)" } ?? "")]
        for trial in shardTrials { lines.append(String(format: "%4d  %@", trial.index, trial.id)) }
        return lines.joined(separator: "\n") + "\n"
    }

    /// Runs this shard's unfinished trials, then rebuilds the experiment's summaries. Returns the experiment directory.
    @discardableResult
    public func run(runner: TrialRunner? = nil) throws -> URL {
        if options.dryRun { write(listing()); return experimentRoot }
        let directory = try experimentDirectory()
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try AtomicFile.write(sweepJSON().serialized(pretty: true) + "\n", to: directory.appendingPathComponent("sweep.json"))
        try writeHParamsExperiment(directory)
        let runner = runner ?? TrialRunner(criaVersion: options.criaVersion, verbose: options.verbose)
        let mine = shardTrials
        var pending = mine.filter { !Self.isFinished(directory.appendingPathComponent($0.id)) }
        if let limit = options.limit { pending = Array(pending.prefix(max(0, limit))) }
        let done = mine.count - mine.filter { !Self.isFinished(directory.appendingPathComponent($0.id)) }.count
        write("\(config.name): \(directory.path)\n  \(mine.count) trial(s) in this \(options.shard == nil ? "sweep" : "shard"), "
              + "\(done) already finished, running \(pending.count)\n")
        let started = Date()
        for (position, trial) in pending.enumerated() {
            let trialDirectory = directory.appendingPathComponent(trial.id)
            // An interrupted trial restarts from scratch: its partial logs must not mix with the new run.
            if FileManager.default.fileExists(atPath: trialDirectory.path) { try FileManager.default.removeItem(at: trialDirectory) }
            write(progressLine(position: position, of: pending.count, trial: trial, started: started))
            let summary = try withHParamsSession(trial, in: trialDirectory) { try runner.run(trial, directory: trialDirectory) }
            write(Self.resultLine(summary, id: trial.id))
        }
        if !pending.isEmpty {
            write(String(format: "%@: %d trial(s) finished in %@\n", config.name, pending.count, Self.duration(Date().timeIntervalSince(started))))
        }
        do {
            let report = try ExperimentReport.rebuild(experimentDirectory: directory)
            if !report.isEmpty { write(report.hasSuffix("\n") ? report : report + "\n") }
        } catch {
            write("warning: \(directory.path): could not rebuild the summaries: \(error)\n")
        }
        write(whereLines(directory))
        return directory
    }

    /// Where to look next: the summaries, and for a single trial its curves and model.
    func whereLines(_ directory: URL) -> String {
        var lines = ["results: \(directory.path)"]
        for name in ["summary.md", "summary.csv", "comparison.svg"]
        where FileManager.default.fileExists(atPath: directory.appendingPathComponent(name).path) {
            lines.append("  \(directory.appendingPathComponent(name).path)")
        }
        if trials.count == 1 {
            let trial = directory.appendingPathComponent(trials[0].id)
            for name in ["curves.svg", "summary.json", "model.h5"] { lines.append("  \(trial.appendingPathComponent(name).path)") }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// `lr=1e-4: val_accuracy best 0.9231 (epoch 8), final 0.9038; frozen phase 0.8654; 63s`
    static func resultLine(_ summary: TrialSummary, id: String) -> String {
        func value(_ number: Double?) -> String { number.map { String(format: "%.4f", $0) } ?? "n/a" }
        var parts = ["\(id): val_accuracy best \(value(summary.bestValAccuracy))"
            + (summary.bestEpoch.map { " (epoch \($0 + 1))" } ?? "") + ", final \(value(summary.finalValAccuracy))"]
        if summary.frozenPhaseValAccuracy != nil { parts.append("frozen phase \(value(summary.frozenPhaseValAccuracy))") }
        if let test = summary.test?.accuracy { parts.append(String(format: "test %.4f", test)) }
        if let probe = summary.linearProbeValAccuracy { parts.append(String(format: "linear probe %.4f", probe)) }
        parts.append(duration(summary.wallSeconds ?? 0))
        return parts.joined(separator: "; ") + "\n"
    }

    /// `trial 3/36 [lr=1e-4,...] elapsed 4m12s, ETA 46m` (the ETA assumes equal trials).
    func progressLine(position: Int, of total: Int, trial: TrialPlan, started: Date) -> String {
        let elapsed = Date().timeIntervalSince(started)
        let eta = position == 0 ? "?" : Self.duration(elapsed / Double(position) * Double(total - position))
        return "trial \(position + 1)/\(total) (#\(trial.index) of \(trials.count)) \(trial.id) — elapsed \(Self.duration(elapsed)), ETA \(eta)\n"
    }

    static func duration(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        if s < 60 { return "\(s)s" }
        if s < 3600 { return "\(s / 60)m\(String(format: "%02d", s % 60))s" }
        return "\(s / 3600)h\(String(format: "%02d", s % 3600 / 60))m"
    }
}
