import CriaCore
import CriaReports
import CriaTestSupport
import XCTest

/// Experiment summaries, paired verdicts and reference comparisons over folds × seeds.
final class CrossValidationReportTests: XCTestCase {
    /// Frozen only and fine_tune_at=120 on 5 folds × 2 seeds. Frozen-only accuracy varies by fold;
    /// fine-tuning adds `gain` on every fold plus a small per-(fold, seed) wobble.
    func makeFoldedSweep(in experiment: URL, gain: Double, wobble: Double = 0.004) throws {
        for depth in [nil, 120] as [Int?] {
            for fold in 0..<5 {
                for seed in 1...2 {
                    let frozen = 0.86 + 0.02 * Double(fold)
                    let final = frozen + (depth == nil ? 0 : gain + wobble * Double((fold + seed) % 3 - 1))
                    let id = "fine_tune_at=\(depth.map(String.init) ?? "none"),seed=\(seed),fold=\(fold)"
                    try ReportFixtures.makeTrial(in: experiment, id: id, parameters: ["phases[1].fine_tune_at": depth.map { .number(Double($0)) } ?? nil],
                                                 seed: seed, valAccuracies: [0.7, 0.8, frozen, (frozen + final) / 2, final], frozenEpochs: 3,
                                                 fineTuneAt: depth, fold: fold, folds: 5)
                }
            }
        }
        try #"{"metric": "final_val_accuracy", "direction": "max", "total": 20, "parameter_keys": ["phases[1].fine_tune_at"], "trials": []}"#
            .write(to: experiment.appendingPathComponent("sweep.json"), atomically: true, encoding: .utf8)
    }

    func testExperimentSummaryOverFoldsAndSeeds() throws {
        let experiment = try temporaryDirectory()
        try makeFoldedSweep(in: experiment, gain: 0.04)
        let markdown = try ExperimentReport.rebuild(experimentDirectory: experiment)
        // Rebuilding again must not take the experiment's own summary.json for a trial.
        XCTAssertEqual(try ExperimentReport.rebuild(experimentDirectory: experiment), markdown)
        XCTAssertEqual(try TrialSummary.loadAll(under: experiment).finished.count, 20)

        let summary = try CrossValidationSummary.read(experiment.appendingPathComponent("summary.json"))
        XCTAssertEqual(summary.kind, "experiment_summary")
        XCTAssertEqual(summary.intervalMethod, Estimate.correctedMethod)
        XCTAssertEqual(summary.settings.count, 2)
        let tuned = try XCTUnwrap(summary.settings.first { $0.parameters["phases[1].fine_tune_at"] == "120" })
        XCTAssertEqual(tuned.folds, 5)
        XCTAssertEqual(tuned.seeds, [1, 2])
        XCTAssertEqual(tuned.runs, 10)
        XCTAssertEqual(tuned.perFold.map(\.fold), [0, 1, 2, 3, 4])
        XCTAssertEqual(tuned.perFold[2].runs.map(\.seed), [1, 2])
        // The stored estimate is the one Intervals computes from the runs (ratio 26/236 from the fixtures' counts).
        let trials = try TrialSummary.loadAll(under: experiment).finished.filter { !$0.isFrozenOnly }
        XCTAssertEqual(CrossValidationSummary.testTrainRatio(trials), 26.0 / 236.0, accuracy: 1e-15)
        let expected = Intervals.estimate(trials.compactMap(\.heldOutAccuracy), testTrainRatio: CrossValidationSummary.testTrainRatio(trials))
        XCTAssertEqual(tuned.heldOutAccuracy, expected)
        XCTAssertEqual(tuned.heldOutAccuracy?.units, 5)
        XCTAssertNotNil(tuned.heldOutLoss?.lower)

        let csv = try String(contentsOf: experiment.appendingPathComponent("summary.csv"), encoding: .utf8).split(separator: "\n")
        XCTAssertTrue(csv[0].hasSuffix(",fold,folds,held_out_accuracy_mean,held_out_accuracy_std,held_out_accuracy_ci_low,held_out_accuracy_ci_high,"
                                       + "held_out_loss_mean,held_out_loss_std,held_out_loss_ci_low,held_out_loss_ci_high"), String(csv[0]))
        XCTAssertEqual(csv.count, 21)
        XCTAssertTrue(markdown.contains("## Held-out estimates (cross-validation)"), markdown)
        XCTAssertTrue(markdown.contains("| 10 (5 × 2) |"), markdown)
        XCTAssertTrue(markdown.contains("| fold 0 | fold 1 | fold 2 | fold 3 | fold 4 |"), markdown)
    }

    /// pandas reads the summary.csv with its fold columns, and the interval columns agree with summary.json.
    func testPandasReadsTheFoldColumns() throws {
        let experiment = try temporaryDirectory()
        try makeFoldedSweep(in: experiment, gain: 0.04)
        try ExperimentReport.rebuild(experimentDirectory: experiment)
        let script = """
        import sys, json, pandas as pd
        frame = pd.read_csv(sys.argv[1], float_precision="round_trip")  # pandas's default parser is off by an ulp
        tuned = frame[frame["phases[1].fine_tune_at"] == "120"]
        print(json.dumps([int(tuned["fold"].nunique()), float(tuned["held_out_accuracy_ci_low"].iloc[0]), float(tuned["final_val_accuracy"].mean())]))
        """
        let output = try Python.run(script, arguments: [experiment.appendingPathComponent("summary.csv").path], requiring: ["pandas"])
        let values = try JSONSerialization.jsonObject(with: Data(output.utf8)) as! [Double]
        let summary = try CrossValidationSummary.read(experiment.appendingPathComponent("summary.json"))
        let tuned = try XCTUnwrap(summary.settings.first { $0.parameters["phases[1].fine_tune_at"] == "120" })
        XCTAssertEqual(values[0], 5)
        // The same interval in both files, to the last few bits (pandas parses decimal text
        // with its own routine, which may land one ulp away).
        XCTAssertEqual(values[1], try XCTUnwrap(tuned.heldOutAccuracy?.lower), accuracy: 1e-12)
        XCTAssertEqual(values[2], try XCTUnwrap(tuned.heldOutAccuracy?.mean), accuracy: 1e-12)
    }

    func testCompareGivesPairedVerdicts() throws {
        let helps = try temporaryDirectory()
        try makeFoldedSweep(in: helps, gain: 0.04)
        let markdown = try RunComparison.compare([helps])
        // Pairs differ by 0.04 ± 0.004: the interval stays well above zero.
        XCTAssertTrue(markdown.contains("- **Fine-tuning from 120 helps by +4.0 points, 95 % CI +"), markdown)
        XCTAssertTrue(markdown.contains("(10 pairs over 5 folds × 2 seeds).**"), markdown)
        XCTAssertTrue(markdown.contains("paired Δ [95 % CI]"), markdown)
        let section = try XCTUnwrap(RunComparison.sections(try TrialSummary.loadAll(under: helps).finished).first)
        let row = try XCTUnwrap(section.rows.first { $0.depth == "fine_tune_at=120" })
        let paired = try XCTUnwrap(row.pairedDifference)
        XCTAssertEqual(paired.mean, 0.04, accuracy: 0.004)
        XCTAssertEqual(paired.units, 5)
        XCTAssertGreaterThan(try XCTUnwrap(paired.lower), 0.03)

        let unclear = try temporaryDirectory()
        try makeFoldedSweep(in: unclear, gain: 0.0, wobble: 0.03)
        XCTAssertTrue(try RunComparison.compare([unclear]).contains("- **Fine-tuning from 120 makes no clear difference: "))
    }

    // MARK: Reference (Keras) runs

    func keras(config: String = "recipe", folds: Int = 5, offset: Double, seeds: [Int] = [1, 2, 3]) -> [ReferenceRun] {
        var runs = [ReferenceRun]()
        for fold in 0..<folds {
            for seed in seeds {
                var run = ReferenceRun(framework: "keras", config: config, folds: folds, fold: fold, seed: seed,
                                       valAccuracy: 0.86 + 0.02 * Double(fold) + 0.04 + offset + 0.003 * Double(seed - 2))
                run.kerasVersion = "3.15.0"
                run.valLoss = 0.3 - offset
                run.nTrain = 236
                run.nVal = 26
                runs.append(run)
            }
        }
        return runs
    }

    func testReferenceComparisonPairsByFold() throws {
        let experiment = try temporaryDirectory()
        try makeFoldedSweep(in: experiment, gain: 0.04)
        let cria = experiment.appendingPathComponent("cria")
        try FileManager.default.createDirectory(at: cria, withIntermediateDirectories: true)
        for trial in try TrialSummary.loadAll(under: experiment).finished where !trial.isFrozenOnly {
            try FileManager.default.copyItem(at: trial.directory, to: cria.appendingPathComponent(trial.directory.lastPathComponent))
        }
        let file = experiment.appendingPathComponent("keras-cv.jsonl")
        try AtomicFile.write(try ReferenceRun.jsonLines(keras(offset: 0) + keras(config: "flip", offset: -0.05)), to: file)

        let (results, markdown) = try ReferenceComparison.compare([cria], reference: file, config: "recipe")
        let result = try XCTUnwrap(results.first)
        XCTAssertEqual(result.reference.runs, 15)
        XCTAssertEqual(result.cria.runs, 10)
        XCTAssertEqual(result.perFold.count, 5)
        // Same fold means up to the wobble: the difference is near zero and its interval covers zero.
        let difference = try XCTUnwrap(result.accuracyDifference)
        XCTAssertEqual(difference.mean, 0, accuracy: 0.004)
        XCTAssertLessThan(try XCTUnwrap(difference.lower), 0)
        XCTAssertGreaterThan(try XCTUnwrap(difference.upper), 0)
        XCTAssertTrue(markdown.contains("**Cria and keras agree within the interval: Cria − keras = "), markdown)
        XCTAssertTrue(markdown.contains("| keras (recipe) | 15 |"), markdown)

        let (flip, _) = try ReferenceComparison.compare([cria], reference: file, config: "flip")
        XCTAssertTrue(try XCTUnwrap(flip.first).verdict.hasPrefix("Cria is higher than keras on the same folds: Cria − keras = +5.0 points, 95 % CI +"),
                      flip.first!.verdict)

        XCTAssertThrowsError(try ReferenceComparison.compare([cria], reference: file, config: nil)) {
            XCTAssertTrue("\($0)".contains("choose one with --reference-config"), "\($0)")
        }
        let tenFolds = experiment.appendingPathComponent("ten.jsonl")
        try AtomicFile.write(try ReferenceRun.jsonLines(keras(folds: 10, offset: 0)), to: tenFolds)
        XCTAssertThrowsError(try ReferenceComparison.compare([cria], reference: tenFolds, config: nil)) {
            XCTAssertTrue("\($0)".contains("use [10] folds, Cria's [5]"), "\($0)")
        }
        let broken = experiment.appendingPathComponent("broken.jsonl")
        try "{\"framework\":\"keras\",\"config\":\"recipe\",\"seed\":1,\"val_accuracy\":0.9}\n\n{\"framework\":\"keras\",\"config\":\"recipe\"}\n"
            .write(to: broken, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try ReferenceRun.read(broken)) { XCTAssertTrue("\($0)".contains("broken.jsonl:3: "), "\($0)") }
    }

    /// Cria's runs exported in the reference format read back unchanged, and compare against themselves with a zero difference.
    func testExportedRunsRoundTrip() throws {
        let experiment = try temporaryDirectory()
        try makeFoldedSweep(in: experiment, gain: 0.04)
        let trials = try TrialSummary.loadAll(under: experiment).finished.filter { !$0.isFrozenOnly }
        let runs = ReferenceRun.runs(trials, config: "recipe")
        XCTAssertEqual(runs.count, 10)
        XCTAssertEqual(runs.first?.framework, "cria")
        XCTAssertEqual(runs.first?.nVal, 26)
        let file = experiment.appendingPathComponent("cria-cv.jsonl")
        try AtomicFile.write(try ReferenceRun.jsonLines(runs), to: file)
        XCTAssertEqual(try ReferenceRun.read(file), runs)
    }
}
