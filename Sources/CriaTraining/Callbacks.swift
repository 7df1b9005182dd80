import CriaCore
import CriaModel
import Foundation

/// Keras's callbacks that change the course of `fit`.
public enum CallbackConfig: Equatable, Sendable {
    /// `EarlyStopping(monitor, min_delta, patience, mode, restore_best_weights)`.
    case earlyStopping(monitor: String, minDelta: Double, patience: Int, mode: MonitorMode, restoreBestWeights: Bool)
    /// `ReduceLROnPlateau(monitor, factor, patience, min_delta, cooldown, min_lr)`.
    case reduceLROnPlateau(monitor: String, factor: Double, patience: Int, minDelta: Double, cooldown: Int, minLearningRate: Double, mode: MonitorMode)
    /// `ModelCheckpoint(filepath, monitor, save_best_only, mode)`: the writer is given by the caller.
    case modelCheckpoint(path: String, monitor: String, saveBestOnly: Bool, mode: MonitorMode)
}

/// Whether a smaller or larger monitored value is better; `auto` follows Keras (accuracy-like → max).
public enum MonitorMode: String, Equatable, Sendable, CaseIterable {
    case auto, min, max

    func isBetter(_ value: Double, than best: Double?, minDelta: Double, monitor: String) -> Bool {
        guard let best else { return true }
        let maximise = self == .max || (self == .auto && (monitor.contains("acc") || monitor.hasPrefix("fmeasure")))
        return maximise ? value - abs(minDelta) > best : value + abs(minDelta) < best
    }
}

/// What the callbacks decided at the end of an epoch.
struct CallbackDecision {
    var stop = false
    var learningRate: Double?
    var restoredGraph: ModelGraph?
}

/// Saves a model for ModelCheckpoint; set by whoever knows how to write files (the experiment runner).
public typealias CheckpointWriter = (ModelGraph, String) throws -> Void

struct CallbackRunner {
    let configs: [CallbackConfig]
    var best: [Int: Double] = [:]
    var wait: [Int: Int] = [:]
    var cooldown: [Int: Int] = [:]
    var bestGraph: ModelGraph?
    let checkpointWriter: CheckpointWriter?

    init(_ configs: [CallbackConfig], checkpointWriter: CheckpointWriter?) {
        self.configs = configs
        self.checkpointWriter = checkpointWriter
    }

    mutating func epochEnded(_ record: EpochRecord, graph: ModelGraph, learningRate: Double) throws -> CallbackDecision {
        var decision = CallbackDecision()
        for (position, config) in configs.enumerated() {
            switch config {
            case .earlyStopping(let monitor, let minDelta, let patience, let mode, let restore):
                let value = try metric(monitor, record)
                if mode.isBetter(value, than: best[position], minDelta: minDelta, monitor: monitor) {
                    best[position] = value
                    wait[position] = 0
                    if restore { bestGraph = graph }
                } else {
                    wait[position, default: 0] += 1
                    if wait[position]! >= patience {
                        decision.stop = true
                        if restore, let bestGraph { decision.restoredGraph = bestGraph }
                    }
                }
            case .reduceLROnPlateau(let monitor, let factor, let patience, let minDelta, let cooldownEpochs, let minimum, let mode):
                let value = try metric(monitor, record)
                if cooldown[position, default: 0] > 0 { cooldown[position]! -= 1; wait[position] = 0 }
                if mode.isBetter(value, than: best[position], minDelta: minDelta, monitor: monitor) {
                    best[position] = value
                    wait[position] = 0
                } else if cooldown[position, default: 0] == 0 {
                    wait[position, default: 0] += 1
                    if wait[position]! >= patience, learningRate > minimum {
                        decision.learningRate = max(learningRate * factor, minimum)
                        cooldown[position] = cooldownEpochs
                        wait[position] = 0
                    }
                }
            case .modelCheckpoint(let path, let monitor, let saveBestOnly, let mode):
                let value = try metric(monitor, record)
                if !saveBestOnly || mode.isBetter(value, than: best[position], minDelta: 0, monitor: monitor) {
                    best[position] = value
                    guard let checkpointWriter else {
                        throw CriaError("ModelCheckpoint(\(path)): no checkpoint writer is set on the trainer")
                    }
                    try checkpointWriter(graph, path)
                }
            }
        }
        return decision
    }

    private func metric(_ name: String, _ record: EpochRecord) throws -> Double {
        guard let value = record.metric(name) else {
            throw CriaError("callback monitor \(name) is not available (have: \(EpochRecord.metricNames.filter { record.metric($0) != nil }.joined(separator: ", ")))")
        }
        return value
    }
}
