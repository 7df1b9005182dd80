import CriaCore
import CriaData
@testable import CriaExperiments
import CriaReports
import CriaTestSupport
import XCTest

/// `data.folds`: the fold definition, the planner's expansion, validation, and real runs.
final class FoldsTests: XCTestCase {
    var root: URL!

    override func setUpWithError() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("cria-folds-\(UUID().uuidString)")
        try SyntheticImages.write(to: root.appendingPathComponent("images"), perClass: 12)
    }

    override func tearDownWithError() throws {
        if let root { try? FileManager.default.removeItem(at: root) }
    }

    func testFoldsPartitionThePositions() {
        for n in [7, 26, 262] {
            for k in [2, 5, 10] where k <= n {
                let held = (0..<k).map { Folds.heldOut(fold: $0, of: k, count: n) }
                XCTAssertEqual(held.flatMap { Array($0) }, Array(0..<n), "n \(n), k \(k): the folds tile the list in order")
                XCTAssertTrue(held.allSatisfy { $0.count == n / k || $0.count == n / k + 1 })
                for fold in 0..<k {
                    let split = Folds.split(fold: fold, of: k, count: n)
                    XCTAssertEqual(Set(split.training).union(split.validation), Set(0..<n))
                    XCTAssertTrue(Set(split.training).isDisjoint(with: split.validation))
                    XCTAssertEqual(split.training, split.training.sorted(), "training keeps the shuffled order")
                }
            }
        }
        // The alpaca data: 262 images, 10 folds of 26 or 27 (k·n/K with integer division).
        XCTAssertEqual(Folds.heldOut(fold: 0, of: 10, count: 262), 0..<26)
        XCTAssertEqual(Folds.heldOut(fold: 1, of: 10, count: 262), 26..<52)
        XCTAssertEqual(Folds.heldOut(fold: 9, of: 10, count: 262), 235..<262)
    }

    let base = """
        experiment: {name: folds-test}
        data: {directory: /tmp/none, image_size: 32, folds: 3}
        model: {weights: w.h5, alpha: 0.35}
        repeats: 2
        phases:
          - {name: frozen, epochs: 1, trainable: none}

        """

    func plan(_ text: String) throws -> [TrialPlan] {
        let tree = try ConfigNode.parse(text, source: "folds.yaml")
        let config = try ExperimentConfig.decode(tree, source: "folds.yaml", defaultName: "x")
        return try SweepPlanner.trials(tree: tree, config: config, source: "folds.yaml")
    }

    func testPlannerRunsEveryFoldForEverySeed() throws {
        let trials = try plan(base)
        XCTAssertEqual(trials.map(\.id), ["seed=42,fold=0", "seed=42,fold=1", "seed=42,fold=2", "seed=43,fold=0", "seed=43,fold=1", "seed=43,fold=2"])
        XCTAssertEqual(trials.map(\.fold), [0, 1, 2, 0, 1, 2])
        XCTAssertEqual(trials.map(\.config.data.fold), [0, 1, 2, 0, 1, 2])
        XCTAssertTrue(trials.allSatisfy { $0.config.data.folds == 3 && $0.config.data.seed == 42 }, "one split seed, so every seed sees the same folds")
        // A resolved config names its fold, and reruns exactly that one run.
        let resolved = ConfigEmitter.yaml(trials[4].config.resolvedTree(criaVersion: "test", gitCommit: "x"))
        XCTAssertTrue(resolved.contains("  folds: 3\n  fold: 1\n"), resolved)
        let again = try plan(resolved)
        XCTAssertFalse(again.isEmpty)
        XCTAssertTrue(again.allSatisfy { $0.fold == 1 && $0.id.hasSuffix("fold=1") }, again.map(\.id).description)
        XCTAssertEqual(again[0].seed, 43)

        let swept = try plan(base + "sweep:\n  parameters:\n    phases[0].lr: [1e-3, 1e-4]\n")
        XCTAssertEqual(swept.count, 2 * 2 * 3)
        XCTAssertEqual(swept[3].id, "lr=1e-3,seed=43,fold=0")
    }

    func testInvalidFoldSettingsAreReportedWithTheirKey() {
        func message(_ text: String) -> String {
            do { _ = try plan(text); return "" } catch { return "\(error)" }
        }
        XCTAssertTrue(message(base.replacingOccurrences(of: "folds: 3", with: "folds: 1")).contains("data.folds: line 2: must be between 2 and"))
        XCTAssertTrue(message(base.replacingOccurrences(of: "folds: 3", with: "folds: 3, fold: 3")).contains("data.fold: line 2: must be below data.folds (3), got 3"))
        XCTAssertTrue(message(base.replacingOccurrences(of: "folds: 3", with: "fold: 1")).contains("data.fold: line 2: needs data.folds"))
        XCTAssertTrue(message(base.replacingOccurrences(of: "directory: /tmp/none", with: "source: csv, csv: list.csv"))
                        .contains("data.folds: line 2: cross-validation is not supported for source csv"))
    }

    func dataSpec(folds: Int, limit: Int? = nil) -> DataSpec {
        var data = DataSpec()
        data.directory = root.appendingPathComponent("images").path
        data.imageSize = [32, 32]
        data.seed = 42
        data.folds = folds
        data.limit = limit
        return data
    }

    static func files(_ images: TrialData.Images) -> [String] {
        switch images {
        case .loaded(let loaded, _, _): return loaded.files
        case .dataset(let dataset, let indices): return (indices ?? Array(0..<dataset.count)).map { dataset.files[$0] }
        }
    }

    /// Each fold validates its slice of Keras's shuffled list and trains on the rest, in order.
    func testFoldPoolSelectsKerasPositions() throws {
        let index = try DirectoryIndex.index(directory: root.appendingPathComponent("images"), shuffle: true, seed: 42)
        for limit in [nil, 18] as [Int?] {
            let pool = try FoldPool.load(dataSpec(folds: 4, limit: limit), seed: 42, verbose: false)
            let n = limit ?? 24
            XCTAssertEqual(pool.count, n)
            var validated = [String]()
            for fold in 0..<4 {
                let data = try pool.trialData(fold: fold, of: 4)
                let split = Folds.split(fold: fold, of: 4, count: n)
                XCTAssertEqual(Self.files(data.validation), split.validation.map { index.files[$0] })
                XCTAssertEqual(Self.files(data.training), split.training.map { index.files[$0] })
                XCTAssertEqual(data.validationLabels, split.validation.map { index.labels[$0] })
                validated += Self.files(data.validation)
            }
            XCTAssertEqual(validated, Array(index.files.prefix(n)))
        }
        XCTAssertThrowsError(try FoldPool.load(dataSpec(folds: 25), seed: 42, verbose: false)) {
            XCTAssertTrue("\($0)".contains("25 folds need at least 25 images, the data has 24"), "\($0)")
        }
    }

    /// The folds a Keras script gets by listing the files as image_dataset_from_directory does
    /// (sorted classes, sorted files, numpy's RandomState(seed).shuffle) and slicing k·n/K.
    func testFoldsMatchNumpysShuffle() throws {
        let script = """
        import os, sys, json
        import numpy as np
        root, k = sys.argv[1], int(sys.argv[2])
        paths = []
        for name in sorted(d for d in os.listdir(root) if not d.startswith(".")):
            paths += [name + "/" + f for f in sorted(os.listdir(os.path.join(root, name)))]
        np.random.RandomState(42).shuffle(paths)
        n = len(paths)
        print(json.dumps([paths[i * n // k:(i + 1) * n // k] for i in range(k)]))
        """
        let output = try Python.run(script, arguments: [root.appendingPathComponent("images").path, "5"], requiring: ["numpy"])
        let expected = try JSONSerialization.jsonObject(with: Data(output.utf8)) as! [[String]]
        let pool = try FoldPool.load(dataSpec(folds: 5), seed: 42, verbose: false)
        for fold in 0..<5 { XCTAssertEqual(Self.files(try pool.trialData(fold: fold, of: 5).validation), expected[fold]) }
    }

    /// Three real folds of a tiny model: each run records its fold, and the experiment's summary.json has the interval.
    func testRunsEveryFoldForReal() throws {
        let text = """
            experiment: {name: tiny-cv, runs_dir: \(root.appendingPathComponent("runs").path)}
            data: {directory: \(root.appendingPathComponent("images").path), image_size: [32, 32], batch_size: 8, folds: 3, seed: 42}
            model:
              weights: \(Fixtures.url("keras/m035_96/k2_weights.h5").path)
              alpha: 0.35
              head: {dropout: 0.2, classes: 1}
            threads: 1
            phases:
              - {name: frozen, epochs: 1, trainable: none, lr: 1e-3}
              - {name: fine_tune, epochs: 1, fine_tune_at: 140, lr: 1e-4}
            """
        let tree = try ConfigNode.parse(text, source: "tiny-cv.yaml")
        let config = try ExperimentConfig.decode(tree, source: "tiny-cv.yaml", defaultName: "tiny-cv")
        var options = ExperimentRunner.Options()
        options.verbose = false
        options.criaVersion = "test"
        let runner = try ExperimentRunner(config: config, tree: tree, source: "tiny-cv.yaml", useSweep: true, options: options)
        runner.write = { _ in }
        let experiment = try runner.run()
        let trials = try TrialSummary.loadAll(under: experiment).finished
        XCTAssertEqual(trials.map(\.fold), [0, 1, 2])
        XCTAssertTrue(trials.allSatisfy { $0.folds == 3 && $0.dataset?.valCount == 8 && $0.dataset?.trainCount == 16 })
        let summary = try CrossValidationSummary.read(experiment.appendingPathComponent("summary.json"))
        let estimate = try XCTUnwrap(summary.settings.first?.heldOutAccuracy)
        XCTAssertEqual(estimate.units, 3)
        XCTAssertEqual(estimate.testTrainRatio, 0.5)
        XCTAssertEqual(estimate.mean, trials.compactMap(\.finalValAccuracy).reduce(0, +) / 3, accuracy: 1e-12)
    }
}
