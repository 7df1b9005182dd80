import CriaCore
@testable import CriaExperiments
import CriaReports
import CriaTestSupport
import XCTest

/// A sweep's TensorBoard records: typed hyperparameters, and a real tiny sweep served by
/// the real TensorBoard (scripts/check_tensorboard.py drives its HTTP API).
final class TensorBoardSweepTests: XCTestCase {
    var root: URL!

    override func setUpWithError() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("cria-tb-\(UUID().uuidString)")
        try SyntheticImages.write(to: root.appendingPathComponent("images"), perClass: 12)
    }

    override func tearDownWithError() throws {
        if let root { try? FileManager.default.removeItem(at: root) }
    }

    func config(_ sweep: String, repeats: Int = 1) throws -> (ExperimentConfig, ConfigNode) {
        let text = """
            experiment: {name: tb, runs_dir: \(root.appendingPathComponent("runs").path)}
            data: {directory: \(root.appendingPathComponent("images").path), image_size: [32, 32], batch_size: 8, validation_split: 0.25, seed: 42}
            model:
              weights: \(Fixtures.url("keras/m035_96/k2_weights.h5").path)
              alpha: 0.35
              head: {dropout: 0.2, classes: 1}
            threads: 1
            repeats: \(repeats)
            phases:
              - {name: frozen, epochs: 2, trainable: none, lr: 1e-3}
              - {name: fine_tune, epochs: 1, fine_tune_at: 140, lr: 1e-4}
            \(sweep)
            """
        let tree = try ConfigNode.parse(text, source: "tb.yaml")
        return (try ExperimentConfig.decode(tree, source: "tb.yaml", defaultName: "tb"), tree)
    }

    func runner(_ sweep: String, repeats: Int = 1) throws -> ExperimentRunner {
        let (config, tree) = try self.config(sweep, repeats: repeats)
        var options = ExperimentRunner.Options()
        options.verbose = false
        options.stamp = "sweep"
        let runner = try ExperimentRunner(config: config, tree: tree, source: "tb.yaml", useSweep: true, options: options)
        runner.write = { _ in }
        return runner
    }

    /// Numbers are FLOAT64, booleans BOOL, a mix (`none` beside 140) STRING as trial ids print it;
    /// distributions are intervals; seeds join when repeats vary them.
    func testHyperparameterTypesAndDomains() throws {
        let grid = try runner("""
            sweep:
              parameters:
                phases[1].fine_tune_at: [none, 140]
                phases[1].lr: [1e-4, 1e-5]
                data.crop_to_aspect_ratio: [true, false]
            """, repeats: 2)
        let experiment = TensorBoardRecords.experiment(config: grid.config, trials: grid.trials, configHash: "h", time: 0)
        XCTAssertEqual(experiment.hparams, [
            .init(name: "phases[1].fine_tune_at", displayName: "fine_tune_at", type: .string, domain: .discrete([.string("none"), .string("140")])),
            .init(name: "phases[1].lr", displayName: "lr", type: .float64, domain: .discrete([.number(1e-4), .number(1e-5)])),
            .init(name: "data.crop_to_aspect_ratio", displayName: "crop_to_aspect_ratio", type: .bool, domain: .discrete([.bool(true), .bool(false)])),
            .init(name: "seed", displayName: "seed", description: "training seed (repeat r uses seed + r)", type: .float64,
                  domain: .discrete([.number(42), .number(43)])),
        ])
        XCTAssertEqual(grid.trials.count, 16)
        let last = TensorBoardRecords.values(grid.trials[15], config: grid.config)
        XCTAssertEqual(last.map(\.name), ["phases[1].fine_tune_at", "phases[1].lr", "data.crop_to_aspect_ratio", "seed"])
        XCTAssertEqual(last.map(\.value), [.string("140"), .number(1e-5), .bool(false), .number(43)])
        XCTAssertEqual(experiment.metrics.map { "\($0.group)/\($0.tag)" },
                       ["/best_val_accuracy", "validation/epoch_accuracy", "validation/epoch_loss", "train/epoch_accuracy", "train/epoch_loss"])

        let random = try runner("""
            sweep:
              method: random
              trials: 3
              parameters:
                phases[1].lr: {distribution: log_uniform, low: 1e-5, high: 1e-3}
                model.head.dropout: {distribution: uniform, low: 0.1, high: 0.3}
              metric: final_val_loss
            """)
        let drawn = TensorBoardRecords.experiment(config: random.config, trials: random.trials, configHash: "h", time: 0)
        XCTAssertEqual(drawn.hparams.map(\.domain), [.interval(min: 1e-5, max: 1e-3), .interval(min: 0.1, max: 0.3)])
        XCTAssertEqual(drawn.metrics.first?.tag, "final_val_loss")
        for trial in random.trials {
            guard case .number(let lr) = TensorBoardRecords.values(trial, config: random.config)[0].value else { return XCTFail("lr not a number") }
            XCTAssertTrue((1e-5...1e-3).contains(lr), "\(lr)")
        }
    }

    /// A real sweep (4 trials: fine_tune_at none or 140, two seeds), then the real TensorBoard
    /// on its directory: every trial in the HParams view with its values and final metrics,
    /// Keras's train/validation scalars, and the fine-tune marker.
    func testTensorBoardServesTheSweep() throws {
        let runner = try runner("sweep:\n  parameters:\n    phases[1].fine_tune_at: [none, 140]\n", repeats: 2)
        let directory = try runner.run()
        let trial = directory.appendingPathComponent("fine_tune_at=140,seed=43")
        for run in ["", "train", "validation"] {
            let files = try FileManager.default.contentsOfDirectory(atPath: trial.appendingPathComponent(run).path)
            XCTAssertEqual(files.filter { $0.hasPrefix("events.out.tfevents.") }.count, 1, "\(run): \(files)")
        }
        XCTAssertTrue(FileManager.default.fileExists(atPath: directory.appendingPathComponent(HParams.experimentFileName).path))

        let python = try Python.require(["tensorboard"])
        let script = Fixtures.repositoryRoot.appendingPathComponent("scripts/check_tensorboard.py").path
        let result = try Python.execute(python, [script, directory.path, "--timeout", "120"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stdout.contains("4 trial(s) in the HParams view"), result.stdout)
    }
}
