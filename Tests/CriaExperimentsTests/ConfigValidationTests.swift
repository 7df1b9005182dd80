import CriaCore
@testable import CriaExperiments
import CriaTestSupport
import XCTest

/// Invalid configs must fail with the key path and the line, as `cria validate` prints them.
final class ConfigValidationTests: XCTestCase {
    let base = """
        experiment:
          name: test
        data:
          directory: /tmp/none
          image_size: [32, 32]
        model:
          weights: w.h5
        phases:
          - name: frozen
            epochs: 1
            trainable: none
          - name: fine_tune
            epochs: 1
            fine_tune_at: 120
            lr: 1.0e-4

        """

    func decode(_ text: String, overrides: [String] = []) throws -> ExperimentConfig {
        var tree = try ConfigNode.parse(text, source: "test.yaml")
        tree = try ExperimentConfig.applyOverrides(overrides, to: tree)
        return try ExperimentConfig.decode(tree, source: "test.yaml", defaultName: "test")
    }

    func error(_ text: String, overrides: [String] = [], file: StaticString = #filePath, line: UInt = #line) -> String {
        do {
            _ = try decode(text, overrides: overrides)
            XCTFail("expected an error", file: file, line: line)
            return ""
        } catch {
            return "\(error)"
        }
    }

    func testValidBaseDecodesWithDefaults() throws {
        let config = try decode(base)
        XCTAssertEqual(config.name, "test")
        XCTAssertEqual(config.phases.count, 2)
        XCTAssertEqual(config.phases[0].freezing, .baseFrozen)
        XCTAssertEqual(config.phases[1].freezing, .fineTuneAt(120))
        XCTAssertEqual(config.phases[1].optimizer.learningRate, 1e-4)
        XCTAssertEqual(config.phases[1].optimizer.kind, .adam)
        XCTAssertEqual(config.data.validationSplit, 0.2)
        XCTAssertEqual(config.data.batchSize, 32)
        XCTAssertEqual(config.model.dropout, 0.2)
        XCTAssertEqual(config.seed, 42)
    }

    func testUnknownKeySuggestsTheClosest() {
        let message = error(base.replacingOccurrences(of: "fine_tune_at: 120", with: "fine_tune_a: 120"))
        XCTAssertTrue(message.contains("phases[1].fine_tune_a: line 14: unknown key (did you mean fine_tune_at?)"), message)
        let top = error(base + "repeat: 3\n")
        XCTAssertTrue(top.contains("repeat: line 16: unknown key (did you mean repeats?)"), top)
    }

    func testWrongType() {
        let message = error(base.replacingOccurrences(of: "epochs: 1\n    trainable", with: "epochs: five\n    trainable"))
        XCTAssertTrue(message.contains("phases[0].epochs: line 10: must be an integer, got five"), message)
        let split = error(base.replacingOccurrences(of: "  image_size: [32, 32]", with: "  image_size: [32, 32]\n  crop_to_aspect_ratio: maybe"))
        XCTAssertTrue(split.contains("data.crop_to_aspect_ratio: line 6: must be true or false"), split)
        let phases = error(base.replacingOccurrences(of: "phases:", with: "phases: 3\nunused:"))
        XCTAssertTrue(phases.contains("phases: line 8: must be a list"), phases)
    }

    func testOutOfRange() {
        let message = error(base.replacingOccurrences(of: "fine_tune_at: 120", with: "fine_tune_at: 200"))
        XCTAssertTrue(message.contains("phases[1].fine_tune_at: line 14: must be between 0 and 154"), message)
        let lr = error(base.replacingOccurrences(of: "lr: 1.0e-4", with: "lr: -1"))
        XCTAssertTrue(lr.contains("phases[1].lr: line 15: must be above 0"), lr)
        let choice = error(base.replacingOccurrences(of: "trainable: none", with: "trainable: none\n    bn_mode: inferance"))
        XCTAssertTrue(choice.contains("phases[0].bn_mode: line 12: must be one of inference, train, got inferance (did you mean inference?)"), choice)
    }

    func testSeveralErrorsAreAllReported() {
        let message = error(base.replacingOccurrences(of: "fine_tune_at: 120", with: "fine_tune_at: 200").replacingOccurrences(of: "name: frozen", with: "nam: frozen"))
        XCTAssertTrue(message.contains("2 errors"), message)
        XCTAssertTrue(message.contains("phases[0].nam: line 9"), message)
    }

    func testYAMLSyntaxErrorNamesTheLine() {
        let message = error(base.replacingOccurrences(of: "  image_size: [32, 32]", with: "  image_size: [32, 32"))
        XCTAssertTrue(message.contains("test.yaml: line "), message)
        XCTAssertTrue(message.contains("YAML syntax error"), message)
        let indentation = error("data:\n  directory: x\n batch_size: 3\n")
        XCTAssertTrue(indentation.contains("line 3"), indentation)
    }

    func testOverrides() throws {
        let config = try decode(base, overrides: ["phases[1].lr=1e-5", "phases[1].fine_tune_at=100", "augment=flip+rotation", "data.image_size=[48, 48]"])
        XCTAssertEqual(config.phases[1].optimizer.learningRate, 1e-5)
        XCTAssertEqual(config.phases[1].freezing, .fineTuneAt(100))
        XCTAssertEqual(config.augment.flip, .horizontal)
        XCTAssertEqual(config.augment.rotation, 0.2)
        XCTAssertEqual(config.data.imageSize, [48, 48])
        // A freezing key replaces the other ones instead of conflicting with them.
        XCTAssertEqual(try decode(base, overrides: ["phases[0].fine_tune_at=100"]).phases[0].freezing, .fineTuneAt(100))
        XCTAssertEqual(try decode(base, overrides: ["phases[1].trainable=all"]).phases[1].freezing, .all)

        let range = error(base, overrides: ["phases[1].fine_tune_at=155"])
        XCTAssertTrue(range.contains("phases[1].fine_tune_at: --set: must be between 0 and 154"), range)
        let unknown = error(base, overrides: ["data.batchsize=3"])
        XCTAssertTrue(unknown.contains("data.batchsize: --set: unknown key (did you mean batch_size?)"), unknown)
        let index = error(base, overrides: ["phases[2].lr=1"])
        XCTAssertTrue(index.contains("phases[2]") && index.contains("has 2 entries"), index)
        XCTAssertThrowsError(try decode(base, overrides: ["phases[1]lr"]))
    }

    func testSweepValuesAreValidatedAtTheirLine() {
        let sweep = base + """
            sweep:
              parameters:
                phases[1].fine_tune_at: [100, 300]
                augment: [none, flip+rotaton]

            """
        let message = error(sweep)
        XCTAssertTrue(message.contains("phases[1].fine_tune_at: line 18: must be between 0 and 154, got 300"), message)
        XCTAssertTrue(message.contains("augment: line 19:") && message.contains("did you mean rotation?"), message)
        let random = error(base + "sweep:\n  method: random\n  parameters:\n    phases[1].lr: {distribution: log_uniform, low: 1e-5, high: 1e-3}\n")
        XCTAssertTrue(random.contains("sweep.trials: line 17: required for method random"), random)
    }

    func testShippedExperimentsValidate() throws {
        for name in ["alpaca", "alpaca-bn-inference", "alpaca-cv", "alpaca-sweep", "quickstart", "smoke"] {
            let url = Fixtures.repositoryRoot.appendingPathComponent("Experiments/\(name).yaml")
            let (config, tree) = try ExperimentConfig.load(url)
            let trials = try SweepPlanner.trials(tree: tree, config: config, source: url.path)
            // lr × depth × augmentation × fine-tune bn_mode × 3 seeds.
            // alpaca-cv: 4 depths × seeds 1-3 × 10 folds.
            let expected = ["alpaca-sweep": 3 * 4 * 3 * 2 * 3, "alpaca-cv": 4 * 3 * 10][name] ?? 1
            XCTAssertEqual(trials.count, expected, name)
            if name == "alpaca-cv" { XCTAssertEqual(Set(trials.compactMap(\.fold)), Set(0..<10)) }
            if ["alpaca", "alpaca-bn-inference"].contains(name) {
                // Keras 3's fit trains the unfrozen BN layers with batch statistics; the other config keeps the tutorial's intent.
                XCTAssertEqual(config.phases.map(\.bnMode), [.inference, name == "alpaca" ? .train : .inference])
                XCTAssertEqual(config.phases.map(\.epochs), [5, 5])
                XCTAssertEqual(config.phases.map(\.freezing), [.baseFrozen, .fineTuneAt(120)])
                XCTAssertEqual(config.phases.map(\.optimizer.learningRate), [1e-3, 1e-4])
                XCTAssertEqual(config.augment.flip, .horizontal)
                XCTAssertEqual(config.augment.rotation, 0.2)
                XCTAssertEqual(config.data.seed, 42)
                XCTAssertEqual(config.data.imageSize, [160, 160])
            }
        }
    }

    /// config.resolved.yaml must load again and mean the same experiment.
    func testResolvedConfigRoundTrips() throws {
        let url = Fixtures.repositoryRoot.appendingPathComponent("Experiments/alpaca-sweep.yaml")
        let (config, tree) = try ExperimentConfig.load(url)
        let trial = try SweepPlanner.trials(tree: tree, config: config, source: url.path)[5]
        let yaml = ConfigEmitter.yaml(trial.config.resolvedTree(criaVersion: "0.1.0", gitCommit: "abc"))
        var again = try ExperimentConfig.decode(try ConfigNode.parse(yaml, source: "resolved"), source: "resolved", defaultName: "x")
        again.threads = trial.config.threads
        var expected = trial.config
        expected.data.seed = expected.data.seed ?? expected.seed
        expected.augment.preset = nil
        if expected.data.directory == nil { expected.data.directory = ProcessInfo.processInfo.environment["CRIA_ALPACA_DIR"] }
        // Resolved files spell out what defaulted to the data section.
        expected.model.inputSize = expected.data.imageSize
        for i in expected.phases.indices { expected.phases[i].batchSize = expected.data.batchSize }
        XCTAssertEqual(again, expected, yaml)
    }
}
