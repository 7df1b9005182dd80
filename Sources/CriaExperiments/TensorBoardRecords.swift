import CriaCore
import CriaReports
import CriaTraining
import Foundation

/// What a sweep tells TensorBoard beyond the per-epoch scalars: the HParams experiment
/// at the sweep's root, a session (start, summary metrics, end) per trial, and the
/// text marking where each phase starts.
///
/// Hyperparameters are the sweep's key paths (`phases[1].lr`), shown under the
/// trial-id labels (`lr`); `seed` joins them when repeats vary it. A key whose values
/// are all numbers is FLOAT64, all booleans BOOL, anything else (`none` beside 100,
/// augmentation presets) STRING, with the values as trial ids print them.
enum TensorBoardRecords {
    static func experiment(config: ExperimentConfig, trials: [TrialPlan], configHash: String, time: Double) -> HParams.Experiment {
        let sweep = config.sweep
        let keys = (sweep?.parameters ?? []).map(\.path)
        var infos = [HParams.HParamInfo]()
        for parameter in sweep?.parameters ?? [] {
            let name = parameter.path.description
            let label = SweepPlanner.label(parameter.path, among: keys)
            switch parameter.values {
            case .list(let items):
                let type = dataType(items)
                var domain = [HParams.Value]()
                for item in items.map({ value($0, as: type) }) where !domain.contains(item) { domain.append(item) }
                infos.append(.init(name: name, displayName: label, type: type, domain: .discrete(domain), differs: domain.count > 1))
            case .uniform(let low, let high), .logUniform(let low, let high):
                infos.append(.init(name: name, displayName: label, type: .float64, domain: .interval(min: low, max: high), differs: true))
            case .intUniform(let low, let high):
                infos.append(.init(name: name, displayName: label, type: .float64, domain: .interval(min: Double(low), max: Double(high)),
                                   differs: high > low))
            }
        }
        if includesSeed(config) {
            let seeds = (0..<config.repeats).map { HParams.Value.number(Double(config.seed + $0)) }
            infos.append(.init(name: "seed", displayName: "seed", description: "training seed (repeat r uses seed + r)", type: .float64,
                               domain: .discrete(seeds), differs: seeds.count > 1))
        }
        let metric = sweep?.metric ?? "best_val_accuracy"
        let metrics: [HParams.MetricInfo] = [
            .init(group: "", tag: metric, displayName: metric, description: "the sweep's ranking metric (summary.json)",
                  datasetType: SweepSpec.rankable.first { $0.name == metric }?.validation == true ? .validation : .unknown),
            .init(group: MetricsLog.validationRun, tag: "epoch_accuracy", displayName: "val_accuracy",
                  description: "validation accuracy at the last epoch", datasetType: .validation),
            .init(group: MetricsLog.validationRun, tag: "epoch_loss", displayName: "val_loss",
                  description: "validation loss at the last epoch", datasetType: .validation),
            .init(group: MetricsLog.trainRun, tag: "epoch_accuracy", displayName: "accuracy",
                  description: "training accuracy at the last epoch", datasetType: .training),
            .init(group: MetricsLog.trainRun, tag: "epoch_loss", displayName: "loss",
                  description: "training loss at the last epoch", datasetType: .training),
        ]
        return HParams.Experiment(
            name: config.name, description: "cria sweep \(config.name): \(trials.count) trial(s), config hash \(configHash)",
            timeCreatedSecs: time, hparams: infos, metrics: metrics)
    }

    /// A trial's hyperparameter values, typed as the experiment declares them.
    static func values(_ trial: TrialPlan, config: ExperimentConfig) -> [(name: String, value: HParams.Value)] {
        var result = [(name: String, value: HParams.Value)]()
        for parameter in config.sweep?.parameters ?? [] {
            let name = parameter.path.description
            guard let node = trial.parameters.first(where: { $0.path == name })?.value else { continue }
            let type: HParams.DataType
            switch parameter.values {
            case .list(let items): type = dataType(items)
            default: type = .float64
            }
            result.append((name, value(node, as: type)))
        }
        if includesSeed(config) { result.append(("seed", .number(Double(trial.seed)))) }
        return result
    }

    /// Seeds are a hyperparameter when repeats vary them, or when nothing else is (a single run).
    static func includesSeed(_ config: ExperimentConfig) -> Bool {
        config.repeats > 1 || (config.sweep?.parameters ?? []).isEmpty
    }

    static func dataType(_ items: [ConfigNode]) -> HParams.DataType {
        if items.allSatisfy({ number($0) != nil }) { return .float64 }
        if items.allSatisfy({ bool($0) != nil }) { return .bool }
        return .string
    }

    static func value(_ node: ConfigNode, as type: HParams.DataType) -> HParams.Value {
        switch type {
        case .float64: if let number = number(node) { return .number(number) }
        case .bool: if let flag = bool(node) { return .bool(flag) }
        case .string: break
        }
        return .string(SweepPlanner.valueLabel(node))
    }

    static func number(_ node: ConfigNode) -> Double? {
        guard case .scalar(let text, false) = node.kind else { return nil }
        return ConfigReader.number(text)
    }

    static func bool(_ node: ConfigNode) -> Bool? {
        guard case .scalar(let text, false) = node.kind, text == "true" || text == "false" else { return nil }
        return text == "true"
    }

    /// The text summary at a phase's first epoch; the first phase that unfreezes any of the
    /// base is the tutorial's "Start Fine Tuning" line, as curves.svg labels it.
    static func phaseText(_ phase: PhaseConfig, epoch: Int, fineTuneStart: Int?) -> String {
        let what = "\(phase.freezing.description), \(phase.optimizer.kind.rawValue), lr \(ConfigFormat.number(phase.optimizer.learningRate))"
        if fineTuneStart == epoch && phase.freezing != .baseFrozen {
            return "**Start Fine Tuning** at epoch \(epoch): phase `\(phase.name)`, \(what)"
        }
        return "Phase `\(phase.name)` from epoch \(epoch): \(what)"
    }

    /// The sweep's ranking metric of a finished trial, as a scalar for the trial's own run
    /// (the experiment lists it with an empty group), read back from its summary.json and epoch log.
    /// Only that one: every summary metric would add a one-point chart per trial to the Scalars tab.
    static func summaryScalars(_ trialDirectory: URL, metric: String, direction: SweepDirection) -> (scalars: [(tag: String, value: Double)], step: Int64) {
        guard let summary = try? TrialSummary(directory: trialDirectory),
              let value = summary.value(of: metric, direction: direction == .max ? .max : .min), value.isFinite else { return ([], 0) }
        return ([(metric, value)], Int64(max(0, summary.epochsRun - 1)))
    }
}

extension ExperimentRunner {
    /// The HParams experiment at the sweep's root; the first shard to get here writes it.
    func writeHParamsExperiment(_ directory: URL) throws {
        guard !FileManager.default.fileExists(atPath: directory.appendingPathComponent(HParams.experimentFileName).path) else { return }
        let experiment = TensorBoardRecords.experiment(config: config, trials: trials, configHash: configHash,
                                                       time: Date().timeIntervalSince1970)
        try HParams.writeExperiment(experiment, to: directory)
    }

    /// Runs `body` (the trial) as an HParams session: start record before, summary metrics
    /// and a success record after, a failure record if it throws.
    func withHParamsSession<Result>(_ trial: TrialPlan, in directory: URL, _ body: () throws -> Result) throws -> Result {
        try HParams.startSession(in: directory, hparams: TensorBoardRecords.values(trial, config: config))
        let summary: Result
        do {
            summary = try body()
        } catch {
            try? HParams.endSession(in: directory, status: .failure)
            throw error
        }
        let (scalars, step) = TensorBoardRecords.summaryScalars(directory, metric: config.sweep?.metric ?? "best_val_accuracy",
                                                                direction: config.sweep?.direction ?? .max)
        try HParams.endSession(in: directory, status: .success, scalars: scalars, step: step)
        return summary
    }
}
