import CriaCore
@testable import CriaExperiments
import XCTest

final class SweepTests: XCTestCase {
    let base = """
        experiment: {name: sweep-test}
        data: {directory: /tmp/none, image_size: 32}
        model: {weights: w.h5, alpha: 0.35}
        phases:
          - {name: frozen, epochs: 1, trainable: none}
          - {name: fine_tune, epochs: 1, fine_tune_at: 120, lr: 1e-4}

        """

    func plan(_ text: String) throws -> [TrialPlan] {
        let tree = try ConfigNode.parse(text, source: "sweep.yaml")
        let config = try ExperimentConfig.decode(tree, source: "sweep.yaml", defaultName: "x")
        return try SweepPlanner.trials(tree: tree, config: config, source: "sweep.yaml")
    }

    func testGridIsTheProductInOrderWithReadableIds() throws {
        let trials = try plan(base + """
            repeats: 2
            sweep:
              parameters:
                phases[1].lr: [1e-3, 0.0001]
                phases[1].fine_tune_at: [none, 100]
                augment: [none, flip+rotation]

            """)
        XCTAssertEqual(trials.count, 2 * 2 * 2 * 2)
        XCTAssertEqual(trials[0].id, "lr=1e-3,fine_tune_at=none,aug=none,seed=42")
        XCTAssertEqual(trials[1].id, "lr=1e-3,fine_tune_at=none,aug=none,seed=43")
        XCTAssertEqual(trials[2].id, "lr=1e-3,fine_tune_at=none,aug=flip+rotation,seed=42")
        XCTAssertEqual(trials.last!.id, "lr=1e-4,fine_tune_at=100,aug=flip+rotation,seed=43")
        XCTAssertEqual(Set(trials.map(\.id)).count, trials.count)
        XCTAssertEqual(trials.map(\.index), Array(0..<16))
        let last = trials.last!.config
        XCTAssertEqual(last.phases[1].optimizer.learningRate, 1e-4)
        XCTAssertEqual(last.phases[1].freezing, .fineTuneAt(100))
        XCTAssertEqual(last.augment.rotation, 0.2)
        XCTAssertEqual(last.seed, 43)
        // The split seed stays the experiment's, so repeats share one validation set.
        XCTAssertEqual(last.data.seed, 42)
        XCTAssertEqual(trials[0].config.phases[1].freezing, .baseFrozen)
        XCTAssertEqual(trials[0].parameters.map(\.path), ["phases[1].lr", "phases[1].fine_tune_at", "augment"])
    }

    func testRandomSweepIsSeededAndInRange() throws {
        let text = base + """
            sweep:
              method: random
              trials: 6
              seed: 7
              parameters:
                phases[1].lr: {distribution: log_uniform, low: 1e-5, high: 1e-3}
                augment.rotation: {distribution: uniform, low: 0, high: 0.3}
                phases[1].fine_tune_at: [100, 120, 140]
                data.batch_size: {distribution: int_uniform, low: 8, high: 16}

            """
        let first = try plan(text), second = try plan(text)
        XCTAssertEqual(first.map(\.id), second.map(\.id))
        XCTAssertEqual(first.count, 6)
        for trial in first {
            let lr = trial.config.phases[1].optimizer.learningRate
            XCTAssertTrue((1e-5...1e-3).contains(lr), "\(lr)")
            XCTAssertTrue((0...0.3).contains(trial.config.augment.rotation))
            XCTAssertTrue([.fineTuneAt(100), .fineTuneAt(120), .fineTuneAt(140)].contains(trial.config.phases[1].freezing))
            XCTAssertTrue((8...16).contains(trial.config.data.batchSize))
            XCTAssertTrue(trial.id.hasPrefix("lr="), trial.id)
        }
        XCTAssertGreaterThan(Set(first.map(\.config.phases[1].optimizer.learningRate)).count, 1)
        let other = try plan(text.replacingOccurrences(of: "seed: 7", with: "seed: 8"))
        XCTAssertNotEqual(first.map(\.id), other.map(\.id))
    }

    func testSingleRunIdAndKeyCollisions() throws {
        XCTAssertEqual(try plan(base).map(\.id), ["seed=42"])
        let trials = try plan(base + "sweep:\n  parameters:\n    phases[0].lr: [1e-3]\n    phases[1].lr: [1e-4, 1e-5]\n")
        XCTAssertEqual(trials.map(\.id), ["phases[0].lr=1e-3,phases[1].lr=1e-4", "phases[0].lr=1e-3,phases[1].lr=1e-5"])
    }

    func testConfigHashIgnoresRunsDirAndKeyOrder() throws {
        let a = try ConfigNode.parse(base, source: "a")
        var b = try ExperimentConfig.applyOverrides(["experiment.runs_dir=/elsewhere"], to: a)
        XCTAssertEqual(ConfigEmitter.hash(a), ConfigEmitter.hash(b))
        b = try ExperimentConfig.applyOverrides(["phases[1].lr=1e-5"], to: a)
        XCTAssertNotEqual(ConfigEmitter.hash(a), ConfigEmitter.hash(b))
        let reordered = try ConfigNode.parse(base.replacingOccurrences(of: "{directory: /tmp/none, image_size: 32}", with: "{image_size: 32, directory: /tmp/none}"), source: "c")
        XCTAssertEqual(ConfigEmitter.hash(a), ConfigEmitter.hash(reordered))
    }

    func testKeyPaths() throws {
        XCTAssertEqual(try ConfigPath(parsing: "phases[1].fine_tune_at").components, [.key("phases"), .index(1), .key("fine_tune_at")])
        XCTAssertEqual(try ConfigPath(parsing: "augment").description, "augment")
        XCTAssertThrowsError(try ConfigPath(parsing: "phases[x].lr"))
        XCTAssertThrowsError(try ConfigPath(parsing: "a..b"))
        XCTAssertThrowsError(try ConfigPath(parsing: "[1]"))
    }

    func testNumberFormatting() {
        XCTAssertEqual(ConfigFormat.number(1e-4), "1e-4")
        XCTAssertEqual(ConfigFormat.number(0.0001), "1e-4")
        XCTAssertEqual(ConfigFormat.number(2.5e-5), "2.5e-5")
        XCTAssertEqual(ConfigFormat.number(0.2), "0.2")
        XCTAssertEqual(ConfigFormat.number(120), "120")
    }
}
