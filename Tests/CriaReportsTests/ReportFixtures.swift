import CriaCore
import CriaReports
import CriaRecords
import Foundation
import XCTest

/// Synthetic records and trial directories for the report tests.
enum ReportFixtures {
    static func record(epoch: Int, phase: String, valAccuracy: Double?) -> EpochRecord {
        EpochRecord(epoch: epoch, phase: phase, loss: 0.6931471805599453, accuracy: 0.5, kerasAccuracy: 0.25,
                    valLoss: valAccuracy == nil ? nil : 0.6, valAccuracy: valAccuracy, valKerasAccuracy: valAccuracy == nil ? nil : 0.5,
                    learningRate: 0.001, seconds: 1.5)
    }
}

extension XCTestCase {
    /// A fresh directory under the system temporary directory, removed when the test ends.
    func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("cria-reports-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }
}

extension ReportFixtures {
    /// Writes a finished trial like the runner does: metrics through MetricsLog, config, curves and summary.json last.
    /// `valAccuracies` has one entry per epoch; the first `frozenEpochs` are the frozen phase, the rest fine-tune from `fineTuneAt`.
    @discardableResult
    static func makeTrial(in experiment: URL, id: String, parameters: [String: JSONValue], repeatIndex: Int = 0, seed: Int = 42,
                          valAccuracies: [Double], frozenEpochs: Int, fineTuneAt: Int?, test: JSONValue = nil,
                          wallSeconds: Double = 12.5, fold: Int? = nil, folds: Int? = nil) throws -> URL {
        let directory = experiment.appendingPathComponent(id + (repeatIndex > 0 ? ",repeat=\(repeatIndex)" : ""))
        let log = try MetricsLog(directory: directory)
        var records = [EpochRecord]()
        for (epoch, val) in valAccuracies.enumerated() {
            let frozen = epoch < frozenEpochs
            let record = EpochRecord(epoch: epoch, phase: frozen ? "frozen" : "fine_tune", loss: 0.7 - 0.05 * Double(epoch),
                                     accuracy: min(1, val + 0.01), kerasAccuracy: 0.5, valLoss: 1 - val, valAccuracy: val,
                                     valKerasAccuracy: 0.5, learningRate: frozen ? 1e-3 : 1e-4, seconds: 1.25)
            try log.append(record)
            records.append(record)
        }
        let fineTuneStart: JSONValue = fineTuneAt == nil || frozenEpochs >= valAccuracies.count ? nil : .number(Double(frozenEpochs))
        let best = records.max { $0.valAccuracy! < $1.valAccuracy! }!
        let phases: [JSONValue] = [
            ["name": "frozen", "type": "train", "epochs": .number(Double(frozenEpochs)), "first_epoch": 0, "freezing": "trainable=none",
             "optimizer": "adam", "lr": 0.001],
            ["name": "fine_tune", "type": "train", "epochs": .number(Double(valAccuracies.count - frozenEpochs)),
             "first_epoch": .number(Double(frozenEpochs)), "freezing": fineTuneAt.map { .string("fine_tune_at=\($0)") } ?? "trainable=none",
             // The fine-tune rate the sweep set, as the runner records it in the phase.
             "optimizer": "adam", "lr": parameters["phases[1].lr"] ?? 0.0001],
        ]
        var summary: JSONValue = [
            "trial_id": .string(id), "experiment": "alpaca-sweep", "seed": .number(Double(seed)), "repeat": .number(Double(repeatIndex)),
            "parameters": .object(parameters), "status": "finished", "phases": .array(phases), "fine_tune_start_epoch": fineTuneStart,
            "best_val_accuracy": .number(best.valAccuracy!), "best_epoch": .number(Double(best.epoch)),
            "final_val_accuracy": .number(records.last!.valAccuracy!), "final_val_loss": .number(records.last!.valLoss!),
            "final_accuracy": .number(records.last!.accuracy), "frozen_phase_val_accuracy": .number(records[frozenEpochs - 1].valAccuracy!),
            "test": test, "linear_probe": nil, "wall_seconds": .number(wallSeconds), "peak_rss_mb": 512, "cria_version": "0.1.0",
            "git_commit": "abc1234", "class_names": ["alpaca", "not alpaca"],
            "dataset": ["directory": "/data/alpaca", "train_count": 262, "val_count": 65,
                        "class_counts_train": ["alpaca": 113, "not alpaca": 149], "class_counts_val": ["alpaca": 29, "not alpaca": 36]],
        ]
        if let folds, let fold, case .object(var fields) = summary {
            // 10-fold sizes of 262 images: 26 held out, 236 for training.
            fields["fold"] = .number(Double(fold))
            fields["folds"] = .number(Double(folds))
            fields["dataset"] = ["directory": "/data/alpaca", "train_count": 236, "val_count": 26]
            summary = .object(fields)
        }
        try "experiment: alpaca-sweep\nseed: \(seed)\nphases:\n  - name: frozen\n    epochs: \(frozenEpochs)\n"
            .write(to: directory.appendingPathComponent("config.resolved.yaml"), atomically: true, encoding: .utf8)
        try CurvesFigure.svg(records: records, fineTuneStartEpoch: fineTuneStart.int, title: id)
            .write(to: directory.appendingPathComponent("curves.svg"), atomically: true, encoding: .utf8)
        try summary.serialized(pretty: true).write(to: directory.appendingPathComponent("summary.json"), atomically: true, encoding: .utf8)
        return directory
    }

    /// A small sweep: fine_tune_at ∈ {none, 100, 120} × lr ∈ {1e-4, 1e-5}, two repeats; 120 with 1e-4 is best.
    /// `shardOrder` writes the trials as two shards would (even trials, then odd ones) with other wall times.
    static func makeSweep(in experiment: URL, shardOrder: Bool = false) throws {
        var settings = [(Double, Int?, Int)]()
        for lr in [1e-4, 1e-5] { for depth in [nil, 100, 120] as [Int?] { for repeatIndex in 0 ..< 2 { settings.append((lr, depth, repeatIndex)) } } }
        if shardOrder { settings = settings.enumerated().sorted { ($0.offset % 2, $0.offset) < ($1.offset % 2, $1.offset) }.map(\.element) }
        for (lr, depth, repeatIndex) in settings {
            let base = depth == nil ? 0.90 : (depth == 120 ? 0.95 : 0.93)
            let bonus = (lr == 1e-4 && depth != nil ? 0.02 : 0) + Double(repeatIndex) * 0.01
            let vals = [0.80, 0.85, 0.88, 0.89, base, base + bonus * 0.5, base + bonus]
            let id = "lr=\(lr == 1e-4 ? "1e-4" : "1e-5"),fine_tune_at=\(depth.map(String.init) ?? "none")"
            try makeTrial(in: experiment, id: id,
                          parameters: ["phases[1].lr": .number(lr), "phases[1].fine_tune_at": depth.map { .number(Double($0)) } ?? nil],
                          repeatIndex: repeatIndex, seed: 42 + repeatIndex, valAccuracies: vals, frozenEpochs: 4, fineTuneAt: depth,
                          wallSeconds: shardOrder ? 20 : 12.5)
        }
        try #"{"metric": "val_accuracy", "direction": "max", "total": 12, "trials": []}"#
            .write(to: experiment.appendingPathComponent("sweep.json"), atomically: true, encoding: .utf8)
    }
}
