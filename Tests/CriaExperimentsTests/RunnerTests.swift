import CriaCore
@testable import CriaExperiments
import CriaKerasIO
import CriaModel
import CriaReports
import CriaTestSupport
import CriaTraining
import XCTest

/// Tiny real runs: 24 synthetic 40×40 BMPs resized to 32×32, the α = 0.35 fixture weights.
final class RunnerTests: XCTestCase {
    var root: URL!

    override func setUpWithError() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("cria-exp-\(UUID().uuidString)")
        try SyntheticImages.write(to: root.appendingPathComponent("images"), perClass: 12)
    }

    override func tearDownWithError() throws {
        if let root { try? FileManager.default.removeItem(at: root) }
    }

    func configText(name: String = "tiny", sweep: String = "", repeats: Int = 1) -> String {
        """
        experiment: {name: \(name), runs_dir: \(root.appendingPathComponent("runs").path)}
        data: {directory: \(root.appendingPathComponent("images").path), image_size: [32, 32], batch_size: 8, validation_split: 0.25, seed: 42}
        model:
          weights: \(Fixtures.url("keras/m035_96/k2_weights.h5").path)
          alpha: 0.35
          head: {dropout: 0.2, classes: 1}
        augment: {flip: horizontal}
        threads: 1
        repeats: \(repeats)
        phases:
          - {name: frozen, epochs: 2, trainable: none, lr: 1e-3}
          - {name: fine_tune, epochs: 1, fine_tune_at: 140, lr: 1e-4}
        \(sweep)
        """
    }

    func runner(_ text: String, useSweep: Bool = true, configure: (inout ExperimentRunner.Options) -> Void = { _ in }) throws -> ExperimentRunner {
        let tree = try ConfigNode.parse(text, source: "tiny.yaml")
        let config = try ExperimentConfig.decode(tree, source: "tiny.yaml", defaultName: "tiny")
        var options = ExperimentRunner.Options()
        options.verbose = false
        options.criaVersion = "test"
        configure(&options)
        let runner = try ExperimentRunner(config: config, tree: tree, source: "tiny.yaml", useSweep: useSweep, options: options)
        runner.write = { _ in }
        return runner
    }

    func summary(_ directory: URL) throws -> JSONValue {
        try JSONValue.parse(String(contentsOf: directory.appendingPathComponent("summary.json"), encoding: .utf8), source: directory.path)
    }

    func testEndToEndDirectoryLayoutAndReload() throws {
        let runner = try runner(configText(), useSweep: false) { $0.fresh = true }
        let experiment = try runner.run()
        XCTAssertEqual(experiment.deletingLastPathComponent().lastPathComponent, "tiny")
        XCTAssertNotNil(experiment.lastPathComponent.range(of: #"^\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d$"#, options: .regularExpression))
        XCTAssertTrue(FileManager.default.fileExists(atPath: experiment.appendingPathComponent("sweep.json").path))
        let trial = experiment.appendingPathComponent("seed=42")
        let files = try FileManager.default.contentsOfDirectory(atPath: trial.path)
        for name in ["config.resolved.yaml", "metrics.csv", "metrics.jsonl", "curves.svg", "model.h5", "summary.json"] {
            XCTAssertTrue(files.contains(name), "\(name) missing from \(files)")
        }
        XCTAssertTrue(files.contains { $0.hasPrefix("events.out.tfevents.") }, "\(files)")
        XCTAssertFalse(files.contains { $0.hasPrefix(".") }, "temporary files left: \(files)")

        let s = try summary(trial)
        for key in ["trial_id", "experiment", "seed", "repeat", "parameters", "status", "phases", "fine_tune_start_epoch", "best_val_accuracy",
                    "best_epoch", "final_val_accuracy", "final_val_loss", "final_accuracy", "frozen_phase_val_accuracy", "test", "linear_probe",
                    "wall_seconds", "peak_rss_mb", "cria_version", "git_commit", "class_names", "dataset"] {
            XCTAssertNotNil(s[key], "summary.json lacks \(key)")
        }
        XCTAssertEqual(s["status"]?.string, "finished")
        XCTAssertEqual(s["fine_tune_start_epoch"]?.int, 2)
        // The freezing is written as the config key that set it (docs/records.md).
        XCTAssertEqual(s["phases"]?[1]?["freezing"], ["fine_tune_at": 140])
        XCTAssertEqual(s["phases"]?[0]?["freezing"], ["trainable": "none"])
        XCTAssertEqual(s["phases"]?[1]?["first_epoch"]?.int, 2)
        XCTAssertEqual(s["class_names"]?.array?.compactMap(\.string), ["bright", "dark"])
        XCTAssertEqual(s["dataset"]?["train_count"]?.int, 18)
        XCTAssertEqual(s["dataset"]?["val_count"]?.int, 6)
        let records = try MetricsLog.read(directory: trial)
        XCTAssertEqual(records.map(\.epoch), [0, 1, 2])
        XCTAssertEqual(records.map(\.phase), ["frozen", "frozen", "fine_tune"])
        for record in records {
            XCTAssertTrue(record.loss.isFinite && (0...1).contains(record.accuracy))
            XCTAssertTrue((0...1).contains(record.valAccuracy ?? -1))
        }
        XCTAssertEqual(s["final_val_accuracy"]?.double, records.last?.valAccuracy)

        // The resolved config runs again as is.
        let resolved = try String(contentsOf: trial.appendingPathComponent("config.resolved.yaml"), encoding: .utf8)
        XCTAssertNoThrow(try ExperimentConfig.decode(try ConfigNode.parse(resolved, source: "resolved"), source: "resolved", defaultName: "x"))
        XCTAssertTrue(resolved.contains("git_commit"))

        // The saved model, reloaded, gives the validation figures of the last epoch.
        let file = try KerasFile.open(trial.appendingPathComponent("model.h5"))
        XCTAssertEqual(file.criaMetadata?["class_names"]?.array?.compactMap(\.string), ["bright", "dark"])
        let graph = try ModelGraph.build(file: file, architecture: nil)
        let data = try TrialData.load(runner.trials[0].config.data, seed: 42, verbose: false)
        let evaluation = try Trainer(graph: graph, loss: .binaryCrossentropyFromLogits, seed: 0).evaluate(data.validationSource(), batchSize: 8)
        XCTAssertEqual(evaluation.accuracy, records.last!.valAccuracy!)
        XCTAssertEqual(evaluation.loss, records.last!.valLoss!, accuracy: 1e-5)

        // `cria evaluate`'s library half on the class folders.
        let metrics = try ModelEvaluation.evaluate(model: trial.appendingPathComponent("model.h5"), directory: root.appendingPathComponent("images"),
                                                   batchSize: 8, verbose: false)
        XCTAssertEqual(metrics.count, 24)
        XCTAssertEqual(metrics.confusion.flatMap { $0 }.reduce(0, +), 24)
        XCTAssertEqual(metrics.confusion.map { $0.reduce(0, +) }, [12, 12])
        XCTAssertEqual(metrics.classNames, ["bright", "dark"])
    }

    func testSameConfigAndSeedGiveBitIdenticalMetrics() throws {
        var runs: [[EpochRecord]] = []
        for _ in 0..<2 {
            let experiment = try runner(configText(), useSweep: false) { $0.fresh = true }.run()
            runs.append(try MetricsLog.read(directory: experiment.appendingPathComponent("seed=42")).map { var r = $0; r.seconds = 0; return r })
        }
        XCTAssertEqual(runs[0], runs[1])
        XCTAssertEqual(runs[0].count, 3)
    }

    func testResumeRedoesOnlyTheInterruptedTrial() throws {
        let text = configText(name: "resume", sweep: "sweep:\n  parameters:\n    phases[1].lr: [1e-3, 1e-4, 1e-5]\n")
        let first = try runner(text) { $0.limit = 2 }
        let experiment = try first.run()
        let ids = first.trials.map(\.id)
        XCTAssertEqual(ids, ["lr=1e-3", "lr=1e-4", "lr=1e-5"])
        let finished = ids.prefix(2).map { experiment.appendingPathComponent($0) }
        XCTAssertTrue(finished.allSatisfy(ExperimentRunner.isFinished))
        // What a kill -9 in the middle of trial 3 leaves: a directory with logs but no summary.json.
        let killed = experiment.appendingPathComponent(ids[2])
        try FileManager.default.createDirectory(at: killed, withIntermediateDirectories: true)
        try "epoch,loss\n0,0.7\n".write(to: killed.appendingPathComponent("metrics.csv"), atomically: false, encoding: .utf8)
        try "partial".write(to: killed.appendingPathComponent("stale.txt"), atomically: false, encoding: .utf8)
        func mtimes() throws -> [Date] {
            try finished.flatMap { dir in try ["summary.json", "model.h5", "metrics.csv"].map {
                try FileManager.default.attributesOfItem(atPath: dir.appendingPathComponent($0).path)[.modificationDate] as! Date
            } }
        }
        let before = try mtimes()

        let again = try runner(text).run()
        XCTAssertEqual(again.path, experiment.path, "resume must reuse the unfinished experiment directory")
        XCTAssertEqual(try mtimes(), before, "finished trials must not be recomputed")
        XCTAssertTrue(ExperimentRunner.isFinished(killed))
        XCTAssertFalse(FileManager.default.fileExists(atPath: killed.appendingPathComponent("stale.txt").path))
        XCTAssertEqual(try MetricsLog.read(directory: killed).count, 3)

        // Everything finished: the same command now starts a fresh directory; --new always does.
        let fresh = try runner(text) { $0.limit = 0 }.run()
        XCTAssertNotEqual(fresh.path, experiment.path)
    }

    /// Two shards as two concurrent `cria` processes sharing one --stamp give the unsharded results.
    func testTwoConcurrentShardsMatchOneUnshardedRun() throws {
        let text = configText(name: "shards", sweep: "sweep:\n  parameters:\n    phases[1].fine_tune_at: [none, 140]\n", repeats: 2)
        let configURL = root.appendingPathComponent("shards.yaml")
        try text.write(to: configURL, atomically: true, encoding: .utf8)
        let runsRoot = root.appendingPathComponent("runs/shards")
        if CLI.binary != nil {
            var results = [CLI.Result?](repeating: nil, count: 2)
            DispatchQueue.concurrentPerform(iterations: 3) { i in
                // The third process is the unsharded reference, in its own directory.
                let arguments = i < 2 ? ["sweep", configURL.path, "--shard", "\(i)/2", "--stamp", "sharded", "-q"]
                                      : ["sweep", configURL.path, "--stamp", "whole", "-q"]
                let result = try? CLI.run(arguments)
                if i < 2 { results[i] = result }
                XCTAssertEqual(result?.status, 0, result?.stderr ?? "no result")
            }
            XCTAssertTrue(results.allSatisfy { $0?.stdout.contains("sharded") == true })
        } else {
            let runners = try (0..<2).map { i in try runner(text) { $0.shard = (i, 2); $0.stamp = "sharded" } }
            DispatchQueue.concurrentPerform(iterations: 2) { i in
                do { _ = try runners[i].run() } catch { XCTFail("shard \(i): \(error)") }
            }
            try runner(text) { $0.stamp = "whole" }.run()
        }
        let sharded = runsRoot.appendingPathComponent("sharded"), whole = runsRoot.appendingPathComponent("whole")
        _ = try ExperimentReport.rebuild(experimentDirectory: sharded)
        let ids = try FileManager.default.contentsOfDirectory(atPath: whole.path).filter { !$0.contains(".") }.sorted()
        XCTAssertEqual(ids.count, 4, "\(ids)")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: sharded.path).filter { !$0.contains(".") }.sorted(), ids)
        let timing: Set<String> = ["wall_seconds", "peak_rss_mb"]
        for id in ids {
            let a = try summary(sharded.appendingPathComponent(id)).object!.filter { !timing.contains($0.key) }
            let b = try summary(whole.appendingPathComponent(id)).object!.filter { !timing.contains($0.key) }
            XCTAssertEqual(a, b, id)
        }
        XCTAssertEqual(try String(contentsOf: sharded.appendingPathComponent("sweep.json"), encoding: .utf8),
                       try String(contentsOf: whole.appendingPathComponent("sweep.json"), encoding: .utf8))
        let csv = { (dir: URL) -> [String]? in
            guard let text = try? String(contentsOf: dir.appendingPathComponent("summary.csv"), encoding: .utf8) else { return nil }
            return Self.droppingTimingColumns(text)
        }
        if let a = csv(sharded), let b = csv(whole) { XCTAssertEqual(a, b) }
    }

    /// Repeats differ in their augmentation draws, and one seed always draws the same.
    func testAugmentationDrawsFollowTheTrialSeed() throws {
        let config = try ExperimentConfig.decode(try ConfigNode.parse(configText(), source: "t"), source: "t", defaultName: "t")
        let data = try TrialData.load(config.data, seed: 42, verbose: false)
        var spec = AugmentSpec()
        spec.rotation = 0.2
        let source = data.trainSource(augmentation: TrialRunner.augmentation(spec))
        let a = try source.images([0, 1], epoch: 0, augment: true, seed: 42)
        XCTAssertEqual(a, try source.images([0, 1], epoch: 0, augment: true, seed: 42))
        XCTAssertNotEqual(a, try source.images([0, 1], epoch: 0, augment: true, seed: 43))
        XCTAssertNotEqual(a, try source.images([0, 1], epoch: 1, augment: true, seed: 42))
        XCTAssertNotEqual(a, try source.images([0, 1], epoch: 0, augment: false, seed: 42))
    }

    /// Keras callbacks from the config: ModelCheckpoint writes into the trial directory, EarlyStopping ends the phase.
    func testCallbacks() throws {
        let text = configText(name: "callbacks").replacingOccurrences(
            of: "- {name: fine_tune, epochs: 1, fine_tune_at: 140, lr: 1e-4}",
            with: """
            - name: fine_tune
                epochs: 4
                fine_tune_at: 140
                lr: 1e-4
                callbacks:
                  - {type: model_checkpoint, path: best.h5, monitor: val_loss, save_best_only: true}
                  - {type: early_stopping, monitor: loss, patience: 0, min_delta: 100}
            """)
        let experiment = try runner(text, useSweep: false) { $0.fresh = true }.run()
        let trial = experiment.appendingPathComponent("seed=42")
        XCTAssertTrue(FileManager.default.fileExists(atPath: trial.appendingPathComponent("best.h5").path))
        // As Keras: the first epoch sets the baseline; with min_delta 100 the second cannot improve on it and stops the phase.
        let s = try summary(trial)
        XCTAssertEqual(s["phases"]?[1]?["epochs_run"]?.int, 2)
        XCTAssertEqual(try MetricsLog.read(directory: trial).count, 4)
    }

    /// A linear_probe phase installs the ridge head and the next phase trains on from it.
    func testLinearProbePhaseThenFineTune() throws {
        let text = configText(name: "probe").replacingOccurrences(of: "- {name: frozen, epochs: 2, trainable: none, lr: 1e-3}",
                                                                   with: "- {name: probe, type: linear_probe, lambda: 0.5}")
        let experiment = try runner(text, useSweep: false) { $0.fresh = true }.run()
        let s = try summary(experiment.appendingPathComponent("seed=42"))
        let probe = try XCTUnwrap(s["linear_probe"]?["val_accuracy"]?.double)
        XCTAssertTrue((0...1).contains(probe))
        XCTAssertEqual(s["phases"]?[0]?["type"]?.string, "linear_probe")
        XCTAssertEqual(s["phases"]?[1]?["first_epoch"]?.int, 0)
        XCTAssertEqual(s["fine_tune_start_epoch"]?.int, 0)
        XCTAssertEqual(try MetricsLog.read(directory: experiment.appendingPathComponent("seed=42")).count, 1)
    }

    /// The real binary: errors on stderr with key path and line, exit status 1; evaluate's JSON.
    func testCLIValidateRunAndEvaluate() throws {
        guard CLI.binary != nil else { throw Skip.missing("the cria binary is not built next to the tests") }
        let bad = root.appendingPathComponent("bad.yaml")
        try configText().replacingOccurrences(of: "fine_tune_at: 140", with: "fine_tune_at: 400").write(to: bad, atomically: true, encoding: .utf8)
        let invalid = try CLI.run(["validate", bad.path])
        XCTAssertEqual(invalid.status, 1)
        XCTAssertTrue(invalid.stderr.contains("phases[1].fine_tune_at: line 12: must be between 0 and 154"), invalid.stderr)
        let fixed = try CLI.run(["validate", bad.path, "--set", "phases[1].fine_tune_at=140"])
        XCTAssertEqual(fixed.status, 0, fixed.stderr)
        XCTAssertTrue(fixed.stdout.contains("valid"), fixed.stdout)

        let run = try CLI.run(["run", bad.path, "--set", "phases[1].fine_tune_at=140", "--set", "phases[0].epochs=1", "-q"])
        XCTAssertEqual(run.status, 0, run.stderr)
        let experiment = URL(fileURLWithPath: run.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        let model = experiment.appendingPathComponent("seed=42/model.h5")
        let evaluate = try CLI.run(["evaluate", "--model", model.path, root.appendingPathComponent("images").path, "--json"])
        XCTAssertEqual(evaluate.status, 0, evaluate.stderr)
        let json = try JSONValue.parse(evaluate.stdout, source: "evaluate")
        XCTAssertEqual(json["count"]?.int, 24)
        XCTAssertEqual(json["per_class"]?.array?.count, 2)
        XCTAssertEqual(json["confusion"]?.array?.count, 2)
    }

    /// summary.csv rows without the columns that measure time or memory.
    static func droppingTimingColumns(_ text: String) -> [String] {
        let rows = text.split(separator: "\n").map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
        guard let header = rows.first else { return [] }
        let keep = header.indices.filter { i in !["second", "wall", "rss", "time"].contains { header[i].lowercased().contains($0) } }
        return rows.map { row in keep.map { $0 < row.count ? row[$0] : "" }.joined(separator: ",") }
    }
}
