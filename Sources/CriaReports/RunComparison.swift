import CriaCore
import Foundation

/// "Did unfreezing help, and from which layer?"
///
/// Frozen-only trials are set against each fine-tune depth, only among trials
/// with the same total number of epochs (so fine-tuning never wins merely by
/// training longer), pooling seeds and repeats into mean ± sample std. The
/// figure compared is the final validation accuracy: at equal epochs it is
/// what a user keeps, while the best epoch would reward noise.
public enum RunComparison {
    public static let fileName = "comparison.md"

    /// One row of the table: a fine-tune depth at a given number of total epochs.
    public struct Row {
        public var depth: String
        public var trials: [TrialSummary]
        public var finalValAccuracy: MeanStd?
        public var bestValAccuracy: MeanStd?
        public var finalValLoss: MeanStd?
        public var testAccuracy: MeanStd?
        /// Final minus the trial's own frozen-phase val accuracy: what its fine-tune phase added.
        public var gainOverFrozenPhase: MeanStd?
        /// Mean final val accuracy minus frozen-only's, when there are frozen-only trials.
        public var differenceVsFrozen: Double?
        /// This depth minus frozen only, paired on the same folds and seeds (and pooled settings),
        /// with its 95 % interval (`Intervals.estimate`).
        public var pairedDifference: Estimate?
        /// Each trial's final val accuracy keyed by fold and seed (`Intervals`).
        public var heldOut: Estimate?
    }

    public struct Section {
        public var totalEpochs: Int
        public var rows: [Row]
        /// Parameters other than the fine-tune depth that vary here and are therefore pooled.
        public var pooled: [String]
        public var verdict: String
        /// One sentence per fine-tune depth: the paired difference against frozen only and its interval.
        public var pairedVerdicts: [String]
        /// The same question within the best setting of the pooled parameters, when any are pooled.
        public var bestSettingVerdict: String?
    }

    /// Compares the finished trials under `directories` (trial, experiment or runs directories), returns the
    /// markdown, and writes it to `output` (a file, or a directory to hold comparison.md), by default into the first directory.
    public static func compare(_ directories: [URL], output: URL? = nil) throws -> String {
        guard let first = directories.first else { throw CriaError("compare: no run directories given") }
        var trials = [TrialSummary](), seen = Set<String>()
        for directory in directories {
            for trial in try TrialSummary.loadAll(under: directory).finished where seen.insert(trial.directory.standardizedFileURL.path).inserted {
                trials.append(trial)
            }
        }
        guard !trials.isEmpty else {
            throw CriaError("compare: no finished trials (summary.json with status finished) under \(directories.map(\.path).joined(separator: ", "))")
        }
        let markdown = self.markdown(sections(trials), sources: directories)
        var destination = output ?? first
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: destination.path, isDirectory: &isDirectory), isDirectory.boolValue {
            destination = destination.appendingPathComponent(fileName)
        }
        try AtomicFile.write(markdown, to: destination)
        return markdown
    }

    /// The comparison, one section per total-epoch count (most trials first).
    public static func sections(_ trials: [TrialSummary]) -> [Section] {
        let byEpochs = Dictionary(grouping: trials, by: \.totalEpochs)
        return byEpochs.keys.sorted { (byEpochs[$0]!.count, $0) > (byEpochs[$1]!.count, $1) }.map { epochs in
            let group = byEpochs[epochs]!
            let pooled = pooledParameters(group)
            let rows = depthRows(group, pooled: pooled)
            return Section(totalEpochs: epochs, rows: rows, pooled: pooled, verdict: verdict(rows, epochs: epochs),
                           pairedVerdicts: rows.compactMap(pairedVerdict),
                           bestSettingVerdict: bestSettingVerdict(group, pooled: pooled, epochs: epochs))
        }
    }

    /// The parameters pooled in a comparison: those that vary among the trials of one fine-tune
    /// depth. The swept depth itself is constant within each depth, so it is never pooled; the
    /// depth comes from the phases' typed freezing, not from the name of a sweep key.
    static func pooledParameters(_ group: [TrialSummary]) -> [String] {
        let byDepth = Dictionary(grouping: group, by: \.depthLabel)
        return ExperimentReport.parameterKeys(group).filter { key in
            byDepth.values.contains { members in Set(members.map { $0.parameters[key].map(TrialSummary.format) ?? "" }).count > 1 }
        }
    }

    /// One row per fine-tune depth of `group`, frozen only first. Paired differences match a trial
    /// with the frozen-only trial of the same fold, seed and values of the `pooled` parameters.
    static func depthRows(_ group: [TrialSummary], pooled: [String] = []) -> [Row] {
        let frozenTrials = group.filter(\.isFrozenOnly)
        let frozen = MeanStd(frozenTrials.compactMap(\.finalValAccuracy))
        let ratio = CrossValidationSummary.testTrainRatio(group)
        func key(_ trial: TrialSummary) -> String {
            (pooled.map { trial.parameters[$0].map(TrialSummary.format) ?? "" } + [trial.fold.map(String.init) ?? "-", String(trial.seed ?? trial.repeatIndex)])
                .joined(separator: "|")
        }
        var frozenByKey = [String: Double]()
        for trial in frozenTrials { if let value = trial.finalValAccuracy { frozenByKey[key(trial)] = value } }
        return ComparisonFigure.depthOrder(group).map { depth -> Row in
            let members = group.filter { $0.depthLabel == depth }
            let final = MeanStd(members.compactMap(\.finalValAccuracy))
            let gains = members.filter { !$0.isFrozenOnly }.compactMap { t in t.finalValAccuracy.flatMap { f in t.frozenPhaseValAccuracy.map { f - $0 } } }
            var paired: Estimate?
            if depth != "frozen only" {
                let differences = members.compactMap { trial -> FoldValue? in
                    guard let value = trial.finalValAccuracy, let base = frozenByKey[key(trial)] else { return nil }
                    return FoldValue(fold: trial.fold, seed: trial.seed ?? trial.repeatIndex, value: value - base)
                }
                paired = Intervals.estimate(differences, testTrainRatio: ratio)
            }
            return Row(depth: depth, trials: members, finalValAccuracy: final, bestValAccuracy: MeanStd(members.compactMap(\.bestValAccuracy)),
                       finalValLoss: MeanStd(members.compactMap(\.finalValLoss)), testAccuracy: MeanStd(members.compactMap { $0.test?.accuracy }),
                       gainOverFrozenPhase: MeanStd(gains),
                       differenceVsFrozen: depth == "frozen only" ? nil : frozen.flatMap { f in final.map { $0.mean - f.mean } },
                       pairedDifference: paired, heldOut: Intervals.estimate(members.compactMap(\.heldOutAccuracy), testTrainRatio: ratio))
        }
    }

    /// The distinct values of the pooled parameters among `trials`, in sorted order, each with its trials.
    static func settings(_ trials: [TrialSummary], pooled: [String]) -> [(values: [String], trials: [TrialSummary])] {
        let groups = Dictionary(grouping: trials) { trial in pooled.map { trial.parameters[$0].map(TrialSummary.format) ?? "" } }
        return groups.keys.sorted { $0.lexicographicallyPrecedes($1) }.map { ($0, groups[$0]!) }
    }

    /// Pooling can hide an interaction: fine-tuning at too high a learning rate wrecks the
    /// pretrained base, and averaging it in can make unfreezing look useless at the rate that
    /// works. So the headline also answers within the setting of the pooled parameters whose
    /// best fine-tuned depth scores highest (ties: the first setting in sorted order).
    static func bestSettingVerdict(_ group: [TrialSummary], pooled: [String], epochs: Int) -> String? {
        guard !pooled.isEmpty else { return nil }
        var best: (values: [String], rows: [Row], score: Double)?
        for (values, members) in settings(group, pooled: pooled) {
            let rows = depthRows(members)
            guard rows.contains(where: { $0.depth == "frozen only" && $0.finalValAccuracy != nil }) else { continue }
            guard let score = rows.filter({ $0.depth != "frozen only" }).compactMap({ $0.finalValAccuracy?.mean }).max() else { continue }
            if best == nil || score > best!.score { best = (values, rows, score) }
        }
        guard let best else { return nil }
        let label = zip(pooled, best.values).map { "`\($0)` = \($1)" }.joined(separator: ", ")
        let answer = verdict(best.rows, epochs: epochs)
        return "At the best setting of the pooled parameters (\(label)): " + answer.prefix(1).lowercased() + answer.dropFirst()
    }

    /// "Fine-tuning from 120 helps by +4.1 points, 95 % CI +1.2 to +7.0 (paired over 10 folds × 3 seeds)."
    static func pairedVerdict(_ row: Row) -> String? {
        guard let difference = row.pairedDifference else { return nil }
        let name: String
        if let equals = row.depth.firstIndex(of: "=") { name = "Fine-tuning from " + row.depth[row.depth.index(after: equals)...] } else { name = "Fine-tuning (\(row.depth))" }
        let folds = Set(row.trials.compactMap(\.fold)).count, seeds = Set(row.trials.map { $0.seed ?? $0.repeatIndex }).count
        let over = folds > 0 ? "\(difference.runs) pairs over \(folds) folds × \(seeds) seeds" : "\(difference.runs) pairs over seeds on one validation split"
        return "\(name) " + Intervals.verdict(difference) + " (\(over))."
    }

    static func verdict(_ rows: [Row], epochs: Int) -> String {
        let frozen = rows.first { $0.depth == "frozen only" }?.finalValAccuracy
        let tuned = rows.filter { $0.depth != "frozen only" && $0.finalValAccuracy != nil }
        guard let best = tuned.max(by: { $0.finalValAccuracy!.mean < $1.finalValAccuracy!.mean }), let bestStat = best.finalValAccuracy else {
            return frozen == nil ? "No trials with a validation accuracy at \(epochs) epochs."
                : "Only frozen-only trials at \(epochs) epochs (\(frozen!.formatted())): nothing to compare against."
        }
        guard let frozen else {
            return "No frozen-only trials at \(epochs) epochs to compare against; the best fine-tune depth is \(best.depth) (\(bestStat.formatted()) final val accuracy)."
        }
        let difference = bestStat.mean - frozen.mean
        let spread = max(frozen.std ?? 0, bestStat.std ?? 0)
        let noise = spread > 0 && abs(difference) <= spread ? ", within one standard deviation, so not conclusive" : ""
        let signed = String(format: "%+.4f", difference)
        if difference > 0 {
            return "Unfreezing helped: \(best.depth) is the best depth with \(bestStat.formatted()) final val accuracy against \(frozen.formatted()) frozen only (\(signed) at \(epochs) epochs\(noise))."
        }
        return "Unfreezing did not help: frozen only reaches \(frozen.formatted()) final val accuracy; the best depth, \(best.depth), reaches \(bestStat.formatted()) (\(signed) at \(epochs) epochs\(noise))."
    }

    /// The same comparison within each setting of the pooled parameters, since pooling can hide
    /// an interaction (unfreezing deep layers may only pay off at a low learning rate).
    static func breakdown(_ section: Section) -> String {
        var rows = [[String]]()
        for (values, members) in settings(section.rows.flatMap(\.trials), pooled: section.pooled) {
            for row in depthRows(members) {
                guard let final = row.finalValAccuracy else { continue }
                let difference = row.differenceVsFrozen.map { String(format: "%+.4f", $0) } ?? (row.depth == "frozen only" ? "—" : "")
                let paired = row.pairedDifference.map(pairedCell) ?? (row.depth == "frozen only" ? "—" : "")
                rows.append(values + [row.depth, String(final.count), final.formatted(), difference, paired])
            }
        }
        return "### By \(section.pooled.map { "`\($0)`" }.joined(separator: ", "))\n\n"
            + ExperimentReport.table(section.pooled + ["fine-tune depth", "n", "final val acc", "Δ vs frozen", "paired Δ [95 % CI]"], rows) + "\n"
    }

    /// The run directories as given on the command line; many trial directories of one experiment as their parent and count.
    static func describe(_ sources: [URL]) -> String {
        let parents = Set(sources.map { $0.deletingLastPathComponent().relativePath })
        if sources.count > 3, parents.count == 1, let parent = parents.first {
            return "\(sources.count) trial directories of `\(parent)`"
        }
        return sources.map { "`\($0.relativePath)`" }.joined(separator: ", ")
    }

    static func interval(_ estimate: Estimate?) -> String {
        guard let lower = estimate?.lower, let upper = estimate?.upper else { return "" }
        return String(format: "[%.4f, %.4f]", lower, upper)
    }

    static func pairedCell(_ estimate: Estimate) -> String {
        guard let lower = estimate.lower, let upper = estimate.upper else { return String(format: "%+.4f", estimate.mean) }
        return String(format: "%+.4f [%+.4f, %+.4f]", estimate.mean, lower, upper)
    }

    static func markdown(_ sections: [Section], sources: [URL]) -> String {
        var out = "# Frozen vs fine-tuned\n\n"
        out += "Runs: " + describe(sources) + "\n\n"
        out += "Final validation accuracy at equal total epochs, mean ± sample std over seeds, repeats and folds. "
        out += "Δ vs frozen is the difference of means; \"paired Δ\" pairs each trial with the frozen-only trial of the same fold and seed, "
        out += "with its 95 % interval (\(sections.flatMap(\.rows).contains { $0.trials.contains { $0.fold != nil } } ? Estimate.correctedMethod : Estimate.seedsMethod); "
        out += "see docs/statistics.md). \"Fine-tune gain\" is what each trial's fine-tune phase added to its own frozen-phase val accuracy.\n\n"
        if let first = sections.first {
            out += "**\(first.verdict)**\n\n"
            for line in first.pairedVerdicts { out += "- **\(line)**\n" }
            if !first.pairedVerdicts.isEmpty { out += "\n" }
            if let within = first.bestSettingVerdict { out += "**\(within)**\n\n" }
        }
        for section in sections {
            out += "## \(section.totalEpochs) epochs\n\n"
            if !section.pooled.isEmpty {
                out += "Pooled over: " + section.pooled.map { "`\($0)`" }.joined(separator: ", ") + ".\n\n"
            }
            let hasTest = section.rows.contains { $0.testAccuracy != nil }
            var header = ["fine-tune depth", "n", "final val acc", "95 % CI", "Δ vs frozen", "paired Δ [95 % CI]", "best val acc", "final val loss",
                          "fine-tune gain"]
            if hasTest { header.append("test acc") }
            let rows = section.rows.map { row -> [String] in
                var cells = [row.depth, String(row.trials.count), ExperimentReport.stat(row.finalValAccuracy), interval(row.heldOut),
                             row.differenceVsFrozen.map { String(format: "%+.4f", $0) } ?? (row.depth == "frozen only" ? "—" : ""),
                             row.pairedDifference.map(pairedCell) ?? (row.depth == "frozen only" ? "—" : ""),
                             ExperimentReport.stat(row.bestValAccuracy), ExperimentReport.stat(row.finalValLoss),
                             ExperimentReport.stat(row.gainOverFrozenPhase)]
                if hasTest { cells.append(ExperimentReport.stat(row.testAccuracy)) }
                return cells
            }
            out += ExperimentReport.table(header, rows) + "\n"
            if sections.count > 1 {
                out += section.verdict + "\n\n"
                for line in section.pairedVerdicts { out += "- \(line)\n" }
                if !section.pairedVerdicts.isEmpty { out += "\n" }
                if let within = section.bestSettingVerdict { out += within + "\n\n" }
            }
            if !section.pooled.isEmpty { out += breakdown(section) }
        }
        return out
    }
}
