import CriaCore
import Foundation

/// One run of a reference framework (Keras), or of Cria exported the same way: a line of
/// `Notebooks-export/parity/keras-cv.jsonl`.
public struct ReferenceRun: Codable, Equatable, Sendable {
    public var framework: String
    public var kerasVersion: String?
    public var criaVersion: String?
    /// The recipe's name: recipe, recipe-bn-inference, flip, none.
    public var config: String
    public var augment: String?
    public var fineTuneBnMode: String?
    public var folds: Int?
    public var fold: Int?
    public var seed: Int
    public var nTrain: Int?
    public var nVal: Int?
    public var valAccuracy: Double
    public var valLoss: Double?
    public var valKerasBinaryAccuracy: Double?
    public var trainAccuracyFinal: Double?
    public var seconds: Double?

    public init(framework: String, config: String, folds: Int?, fold: Int?, seed: Int, valAccuracy: Double) {
        self.framework = framework
        self.config = config
        self.folds = folds
        self.fold = fold
        self.seed = seed
        self.valAccuracy = valAccuracy
    }

    var accuracy: FoldValue { FoldValue(fold: fold, seed: seed, value: valAccuracy) }
    var loss: FoldValue? { valLoss.map { FoldValue(fold: fold, seed: seed, value: $0) } }

    /// Reads JSON lines; a bad line is reported with its number. Blank lines are skipped.
    public static func read(_ url: URL) throws -> [ReferenceRun] {
        guard let data = FileManager.default.contents(atPath: url.path) else { throw CriaError("\(url.path): cannot read") }
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        var runs = [ReferenceRun]()
        for (number, line) in String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let text = line.trimmingCharacters(in: .whitespaces)
            guard !text.isEmpty else { continue }
            do { runs.append(try decoder.decode(ReferenceRun.self, from: Data(text.utf8))) } catch {
                throw CriaError("\(url.path):\(number + 1): not a reference run (needs framework, config, seed, val_accuracy): \(Self.describe(error))")
            }
        }
        guard !runs.isEmpty else { throw CriaError("\(url.path): no runs") }
        return runs
    }

    static func describe(_ error: Error) -> String {
        switch error {
        case DecodingError.keyNotFound(let key, _): return "missing \(key.stringValue)"
        case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context):
            return "\(context.codingPath.map(\.stringValue).joined(separator: ".")): \(context.debugDescription)"
        case DecodingError.dataCorrupted(let context): return context.debugDescription
        default: return "\(error)"
        }
    }

    /// Cria's finished trials in the same shape, for committing as data and for comparing Cria with Cria.
    public static func runs(_ trials: [TrialSummary], config: String) -> [ReferenceRun] {
        trials.compactMap { trial in
            guard let accuracy = trial.finalValAccuracy else { return nil }
            var run = ReferenceRun(framework: "cria", config: config, folds: trial.folds, fold: trial.fold, seed: trial.seed ?? trial.repeatIndex,
                                   valAccuracy: accuracy)
            run.criaVersion = trial.criaVersion
            run.valLoss = trial.finalValLoss
            run.trainAccuracyFinal = trial.finalAccuracy
            run.nTrain = trial.dataset?.trainCount
            run.nVal = trial.dataset?.valCount
            run.seconds = trial.wallSeconds
            run.valKerasBinaryAccuracy = trial.records.last?.valKerasAccuracy
            run.fineTuneBnMode = trial.phases.last?.bnMode?.rawValue
            if !trial.parameters.isEmpty { run.augment = trial.parameters["augment"].map(TrialSummary.format) }
            return run
        }.sorted { ($0.fold ?? -1, $0.seed) < ($1.fold ?? -1, $1.seed) }
    }

    public static func jsonLines(_ runs: [ReferenceRun]) throws -> String {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.sortedKeys]
        return try runs.map { String(decoding: try encoder.encode($0), as: UTF8.self) }.joined(separator: "\n") + "\n"
    }
}

/// Cria's runs against a reference's on the same folds: each side's held-out accuracy and
/// loss with 95 % intervals, and the paired difference with its interval and a verdict.
public enum ReferenceComparison {
    public struct Side {
        public var name: String
        public var runs: Int
        public var accuracy: Estimate?
        public var loss: Estimate?
    }

    public struct Result {
        public var setting: String
        public var cria: Side
        public var reference: Side
        public var accuracyDifference: Estimate?
        public var lossDifference: Estimate?
        /// fold → (Cria mean, reference mean) of held-out accuracy.
        public var perFold: [(fold: Int, cria: Double, reference: Double)]
        public var verdict: String
    }

    /// Pairs every setting of Cria's finished trials under `directories` with the reference runs of `config`.
    public static func compare(_ directories: [URL], reference url: URL, config: String?) throws -> (results: [Result], markdown: String) {
        var trials = [TrialSummary]()
        for directory in directories { trials += try TrialSummary.loadAll(under: directory).finished }
        guard !trials.isEmpty else {
            throw CriaError("compare: no finished trials (summary.json with status finished) under \(directories.map(\.path).joined(separator: ", "))")
        }
        let all = try ReferenceRun.read(url)
        let configs = Array(Set(all.map(\.config))).sorted()
        let chosen: String
        if let config {
            guard configs.contains(config) else {
                throw CriaError("--reference-config \(config): \(url.path) has configs \(configs.joined(separator: ", "))")
            }
            chosen = config
        } else {
            guard configs.count == 1 else {
                throw CriaError("\(url.path) holds several configs (\(configs.joined(separator: ", "))); choose one with --reference-config")
            }
            chosen = configs[0]
        }
        let reference = all.filter { $0.config == chosen }
        let referenceFolds = Set(reference.compactMap(\.folds))
        let criaFolds = Set(trials.compactMap(\.folds))
        if !referenceFolds.isEmpty, !criaFolds.isEmpty, referenceFolds != criaFolds {
            throw CriaError("compare: the reference's runs use \(referenceFolds.sorted()) folds, Cria's \(criaFolds.sorted()); pair runs on the same folds")
        }
        let groups = Dictionary(grouping: trials, by: \.settingKey)
        let results = groups.keys.sorted().map { key in result(groups[key]!, setting: key, reference: reference, config: chosen) }
        return (results, markdown(results, sources: directories, reference: url, config: chosen, referenceRuns: reference))
    }

    static func result(_ trials: [TrialSummary], setting: String, reference: [ReferenceRun], config: String) -> Result {
        let criaRatio = CrossValidationSummary.testTrainRatio(trials)
        let referenceRatios = reference.compactMap { run in run.nTrain.flatMap { train in run.nVal.map { Double($0) / Double(train) } } }
        let ratio = referenceRatios.isEmpty ? criaRatio : referenceRatios.reduce(0, +) / Double(referenceRatios.count)
        let framework = reference.first?.framework ?? "reference"
        let criaAccuracy = trials.compactMap(\.heldOutAccuracy), criaLoss = trials.compactMap(\.heldOutLoss)
        let refAccuracy = reference.map(\.accuracy), refLoss = reference.compactMap(\.loss)
        let cria = Side(name: "cria", runs: criaAccuracy.count, accuracy: Intervals.estimate(criaAccuracy, testTrainRatio: criaRatio),
                        loss: Intervals.estimate(criaLoss, testTrainRatio: criaRatio))
        let other = Side(name: "\(framework) (\(config))", runs: refAccuracy.count, accuracy: Intervals.estimate(refAccuracy, testTrainRatio: ratio),
                         loss: Intervals.estimate(refLoss, testTrainRatio: ratio))
        let accuracyDifference = Intervals.difference(criaAccuracy, refAccuracy, testTrainRatio: (criaRatio + ratio) / 2)
        let lossDifference = Intervals.difference(criaLoss, refLoss, testTrainRatio: (criaRatio + ratio) / 2)
        var perFold = [(fold: Int, cria: Double, reference: Double)]()
        let criaByFold = Dictionary(grouping: criaAccuracy) { $0.fold ?? -1 }, refByFold = Dictionary(grouping: refAccuracy) { $0.fold ?? -1 }
        for fold in criaByFold.keys.sorted() where fold >= 0 {
            guard let mine = criaByFold[fold], let theirs = refByFold[fold] else { continue }
            perFold.append((fold, mine.map(\.value).reduce(0, +) / Double(mine.count), theirs.map(\.value).reduce(0, +) / Double(theirs.count)))
        }
        let verdict: String
        if let difference = accuracyDifference {
            if let lower = difference.lower, let upper = difference.upper, lower > 0 || upper < 0 {
                verdict = "Cria is \(lower > 0 ? "higher" : "lower") than \(framework) on the same folds: Cria − \(framework) = "
                    + Intervals.points(difference) + "."
            } else if difference.lower == nil {
                verdict = "Cria − \(framework) = " + Intervals.points(difference) + "."
            } else {
                verdict = "Cria and \(framework) agree within the interval: Cria − \(framework) = " + Intervals.points(difference) + "."
            }
        } else {
            verdict = "No folds (or seeds) in common with the reference: nothing to pair."
        }
        return Result(setting: setting, cria: cria, reference: other, accuracyDifference: accuracyDifference, lossDifference: lossDifference,
                      perFold: perFold, verdict: verdict)
    }

    static func markdown(_ results: [Result], sources: [URL], reference: URL, config: String, referenceRuns: [ReferenceRun]) -> String {
        let framework = referenceRuns.first?.framework ?? "reference"
        let versions = Set(referenceRuns.compactMap { $0.kerasVersion ?? $0.criaVersion }).sorted()
        var out = "# Cria vs \(framework): \(config)\n\n"
        out += "Cria: " + RunComparison.describe(sources) + ". "
        out += "Reference: `\(reference.lastPathComponent)`, config `\(config)`, \(referenceRuns.count) runs"
        out += versions.isEmpty ? ".\n\n" : " (\(framework) \(versions.joined(separator: ", "))).\n\n"
        out += "Held-out accuracy and loss are the final epoch's on each held-out fold. Intervals: 95 %, \(Estimate.correctedMethod) "
        out += "for each side and for the difference of the two sides' fold means (docs/statistics.md).\n\n"
        func spread(_ e: Estimate?, _ digits: Int = 4) -> String {
            guard let e else { return "" }
            return String(format: "%.\(digits)f", e.mean) + (e.std.map { String(format: " ± %.\(digits)f", $0) } ?? "")
        }
        for result in results {
            if results.count > 1 || !result.setting.isEmpty { out += "## \(result.setting.isEmpty ? "Cria" : "`\(result.setting)`")\n\n" }
            out += "**\(result.verdict)**\n\n"
            let rows: [[String]] = [
                [result.cria.name, String(result.cria.runs), spread(result.cria.accuracy), RunComparison.interval(result.cria.accuracy),
                 spread(result.cria.loss), RunComparison.interval(result.cria.loss)],
                [result.reference.name, String(result.reference.runs), spread(result.reference.accuracy), RunComparison.interval(result.reference.accuracy),
                 spread(result.reference.loss), RunComparison.interval(result.reference.loss)],
                ["Cria − \(framework) (paired by fold)", String(result.accuracyDifference?.units ?? 0),
                 result.accuracyDifference.map { String(format: "%+.4f", $0.mean) } ?? "", signedInterval(result.accuracyDifference),
                 result.lossDifference.map { String(format: "%+.4f", $0.mean) } ?? "", signedInterval(result.lossDifference)],
            ]
            out += ExperimentReport.table(["", "runs", "held-out acc", "95 % CI", "held-out loss", "95 % CI"], rows) + "\n"
            if !result.perFold.isEmpty {
                out += "Per fold, held-out accuracy (mean over seeds):\n\n"
                out += ExperimentReport.table(["fold", "cria", framework, "difference"], result.perFold.map {
                    [String($0.fold), String(format: "%.3f", $0.cria), String(format: "%.3f", $0.reference), String(format: "%+.3f", $0.cria - $0.reference)]
                }) + "\n"
            }
        }
        return out
    }

    static func signedInterval(_ estimate: Estimate?) -> String {
        guard let lower = estimate?.lower, let upper = estimate?.upper else { return "" }
        return String(format: "[%+.4f, %+.4f]", lower, upper)
    }
}
