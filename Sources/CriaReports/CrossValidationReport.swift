import CriaCore
import Foundation

/// The experiment-level `summary.json`: each setting's held-out accuracy and loss over
/// folds × seeds, with 95 % intervals (`Intervals.estimate`), and the per-fold values.
///
/// "Held out" is the final epoch's validation figure: the model a user keeps. The best epoch's
/// value is chosen on the same images it is measured on, so it would be biased upwards.
public struct CrossValidationSummary: Codable, Equatable {
    public static let fileName = "summary.json"
    /// Tells this file from a trial's summary.json in the same tree.
    public static let kindValue = "experiment_summary"

    public struct Run: Codable, Equatable {
        public var trialId: String
        public var seed: Int
        public var accuracy: Double?
        public var loss: Double?
    }

    public struct Fold: Codable, Equatable {
        /// nil without cross-validation (one validation split).
        public var fold: Int?
        public var accuracyMean: Double?
        public var lossMean: Double?
        public var runs: [Run]
    }

    public struct Setting: Codable, Equatable {
        /// Sweep key path → value, as the tables print it.
        public var parameters: [String: String]
        public var folds: Int?
        public var seeds: [Int]
        public var runs: Int
        public var heldOutAccuracy: Estimate?
        public var heldOutLoss: Estimate?
        public var perFold: [Fold]
    }

    public var kind = kindValue
    public var experiment: String
    public var heldOut = "final_val_accuracy and final_val_loss of each run (the last epoch's model)"
    public var intervalMethod: String
    public var settings: [Setting]

    public init(experiment: String, settings: [Setting]) {
        self.experiment = experiment
        self.settings = settings
        let crossValidated = settings.contains { $0.folds != nil }
        intervalMethod = crossValidated ? Estimate.correctedMethod : Estimate.seedsMethod
    }

    /// n_val / n_train averaged over the trials (the folds differ by at most one image).
    public static func testTrainRatio(_ trials: [TrialSummary]) -> Double {
        let ratios = trials.compactMap(\.testTrainRatio)
        return ratios.isEmpty ? 0 : ratios.reduce(0, +) / Double(ratios.count)
    }

    /// One entry per parameter setting, in the order of `groups`.
    public static func make(experiment: String, groups: [ExperimentReport.Group]) -> CrossValidationSummary {
        let settings = groups.map { group -> Setting in
            let trials = group.trials
            let ratio = testTrainRatio(trials)
            let byFold = Dictionary(grouping: trials) { $0.fold ?? -1 }
            let perFold = byFold.keys.sorted().map { key -> Fold in
                let members = byFold[key]!.sorted { ($0.seed ?? 0, $0.trialID) < ($1.seed ?? 0, $1.trialID) }
                return Fold(fold: key < 0 ? nil : key, accuracyMean: MeanStd(members.compactMap(\.finalValAccuracy))?.mean,
                            lossMean: MeanStd(members.compactMap(\.finalValLoss))?.mean,
                            runs: members.map { Run(trialId: $0.trialID, seed: $0.seed ?? $0.repeatIndex, accuracy: $0.finalValAccuracy, loss: $0.finalValLoss) })
            }
            return Setting(parameters: group.setting.mapValues(TrialSummary.format), folds: trials.compactMap(\.folds).first,
                           seeds: Array(Set(trials.map { $0.seed ?? $0.repeatIndex })).sorted(), runs: trials.count,
                           heldOutAccuracy: Intervals.estimate(trials.compactMap(\.heldOutAccuracy), testTrainRatio: ratio),
                           heldOutLoss: Intervals.estimate(trials.compactMap(\.heldOutLoss), testTrainRatio: ratio), perFold: perFold)
        }
        return CrossValidationSummary(experiment: experiment, settings: settings)
    }

    public func json() throws -> String {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return String(decoding: try encoder.encode(self), as: UTF8.self) + "\n"
    }

    public static func read(_ url: URL) throws -> CrossValidationSummary {
        guard let data = FileManager.default.contents(atPath: url.path) else { throw CriaError("\(url.path): cannot read") }
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        do { return try decoder.decode(CrossValidationSummary.self, from: data) } catch {
            throw CriaError("\(url.path): not an experiment summary: \(error)")
        }
    }

    /// True when `url` (a summary.json) is an experiment summary rather than a trial's.
    public static func isExperimentSummary(_ url: URL) -> Bool {
        guard let data = FileManager.default.contents(atPath: url.path),
              let json = try? JSONValue.parse(String(decoding: data, as: UTF8.self), source: url.path) else { return false }
        return json["kind"]?.string == kindValue
    }

    /// The markdown section of summary.md: one row per setting, then the per-fold values.
    public func markdown(parameterKeys keys: [String]) -> String {
        guard settings.contains(where: { $0.folds != nil }) else { return "" }
        var out = "## Held-out estimates (cross-validation)\n\n"
        out += "Final-epoch validation accuracy and loss on each held-out fold, over folds × seeds: mean ± sample std of the runs, "
        out += "and the 95 % interval of the \(intervalMethod) (docs/statistics.md).\n\n"
        let header = keys + ["runs (folds × seeds)", "held-out acc", "95 % CI", "held-out loss", "95 % CI"]
        func interval(_ e: Estimate?) -> String {
            guard let lower = e?.lower, let upper = e?.upper else { return "" }
            return String(format: "[%.4f, %.4f]", lower, upper)
        }
        func spread(_ e: Estimate?) -> String {
            guard let e else { return "" }
            return String(format: "%.4f", e.mean) + (e.std.map { String(format: " ± %.4f", $0) } ?? "")
        }
        let rows = settings.map { setting -> [String] in
            keys.map { setting.parameters[$0] ?? "" }
                + ["\(setting.runs) (\(setting.folds.map(String.init) ?? "1") × \(setting.seeds.count))", spread(setting.heldOutAccuracy),
                   interval(setting.heldOutAccuracy), spread(setting.heldOutLoss), interval(setting.heldOutLoss)]
        }
        out += ExperimentReport.table(header, rows) + "\n"
        let folds = settings.compactMap(\.folds).max() ?? 0
        out += "### Held-out accuracy per fold (mean over seeds)\n\n"
        let foldRows = settings.map { setting -> [String] in
            let byFold = Dictionary(setting.perFold.compactMap { fold in fold.fold.map { ($0, fold) } }, uniquingKeysWith: { a, _ in a })
            return keys.map { setting.parameters[$0] ?? "" } + (0..<folds).map { ExperimentReport.fixed(byFold[$0]?.accuracyMean, 3) }
        }
        out += ExperimentReport.table(keys + (0..<folds).map { "fold \($0)" }, foldRows) + "\n"
        return out
    }

    /// summary.csv's extra columns under cross-validation: the run's fold, and its setting's estimates.
    public static let csvColumns = [
        "fold", "folds", "held_out_accuracy_mean", "held_out_accuracy_std", "held_out_accuracy_ci_low", "held_out_accuracy_ci_high",
        "held_out_loss_mean", "held_out_loss_std", "held_out_loss_ci_low", "held_out_loss_ci_high",
    ]

    static func csvFields(_ trial: TrialSummary, setting: Setting?) -> [String] {
        func number(_ value: Double?) -> String { value.map(PythonFloat.repr) ?? "" }
        let a = setting?.heldOutAccuracy, l = setting?.heldOutLoss
        return [trial.fold.map(String.init) ?? "", trial.folds.map(String.init) ?? "",
                number(a?.mean), number(a?.std), number(a?.lower), number(a?.upper),
                number(l?.mean), number(l?.std), number(l?.lower), number(l?.upper)]
    }
}
