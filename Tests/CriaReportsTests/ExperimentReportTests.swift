import CriaTestSupport
import CriaCore
import Foundation
import XCTest
@testable import CriaReports

final class ExperimentReportTests: XCTestCase {
    func testMeanAndSampleStd() {
        let stat = MeanStd([0.9, 0.92, 0.94])!
        XCTAssertEqual(stat.mean, 0.92, accuracy: 1e-12)
        XCTAssertEqual(stat.std!, 0.02, accuracy: 1e-12)  // sample std (n - 1): sqrt((0.0004 + 0 + 0.0004) / 2)
        XCTAssertEqual(stat.formatted(), "0.9200 ± 0.0200")
        XCTAssertNil(MeanStd([0.5])!.std)
        XCTAssertEqual(MeanStd([0.5])!.formatted(), "0.5000")
        XCTAssertNil(MeanStd([]))
    }

    func testRankingAndSummaryFiles() throws {
        let experiment = try temporaryDirectory()
        try ReportFixtures.makeSweep(in: experiment)
        let markdown = try ExperimentReport.rebuild(experimentDirectory: experiment)
        let csv = try String(contentsOf: experiment.appendingPathComponent("summary.csv"), encoding: .utf8)
        let lines = csv.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.count, 13)
        XCTAssertEqual(lines[0], "rank,trial_id,repeat,seed,phases[1].fine_tune_at,phases[1].lr,best_val_accuracy,best_epoch,epochs_to_best,"
                       + "best_val_loss,final_val_accuracy,final_val_loss,final_accuracy,frozen_phase_val_accuracy,fine_tune_start_epoch,"
                       + "epochs,test_loss,test_accuracy,linear_probe_val_accuracy,wall_seconds,peak_rss_mb")
        // Best: fine_tune_at=120 with lr 1e-4, second repeat (0.95 + 0.02 + 0.01).
        XCTAssertTrue(lines[1].hasPrefix("1,\"lr=1e-4,fine_tune_at=120\",1,43,120,0.0001,0.98,6,7,"), lines[1])
        XCTAssertTrue(lines[2].hasPrefix("2,\"lr=1e-4,fine_tune_at=120\",0,42,120,0.0001,0.97,"), lines[2])
        // Frozen-only rows show the null fine_tune_at as "none" and no fine-tune start epoch.
        let frozen = lines.filter { $0.contains("fine_tune_at=none") }
        XCTAssertEqual(frozen.count, 4)
        XCTAssertTrue(frozen.allSatisfy { $0.contains(",none,") && $0.contains(",,7,") }, frozen.joined(separator: "\n"))
        XCTAssertTrue(markdown.contains("12 of 12 trials finished"))
        XCTAssertTrue(markdown.contains("| none | 0.0001 | 2 |"), markdown)
        XCTAssertTrue(markdown.contains("| 120 | 0.0001 | 2 | 0.9750 ± 0.0071 | 0.9750 ± 0.0071 |"), markdown)
        let written = try String(contentsOf: experiment.appendingPathComponent("summary.md"), encoding: .utf8)
        XCTAssertEqual(written, markdown)
        // The group table is ranked by mean: the best setting's row comes first.
        let groupSection = markdown.components(separatedBy: "## Over repeats")[1]
        let firstRow = groupSection.split(separator: "\n").first { $0.hasPrefix("| ") && !$0.hasPrefix("| phases") && !$0.hasPrefix("| ---") }!
        XCTAssertTrue(firstRow.hasPrefix("| 120 | 0.0001 |"), String(firstRow))
    }

    func testComparisonFigureHasOverlayAndHeatmap() throws {
        let experiment = try temporaryDirectory()
        try ReportFixtures.makeSweep(in: experiment)
        try ExperimentReport.rebuild(experimentDirectory: experiment)
        let svg = try String(contentsOf: experiment.appendingPathComponent("comparison.svg"), encoding: .utf8)
        let parsed = SVGElements.parse(svg)
        let curves = parsed.elements.filter { $0.name == "polyline" && $0.attributes["class"] == "val_accuracy" }
        XCTAssertEqual(curves.count, 12)
        XCTAssertEqual(Set(curves.compactMap { $0.attributes["data-depth"] }), ["frozen only", "fine_tune_at=100", "fine_tune_at=120"])
        XCTAssertTrue(curves.filter { $0.attributes["data-depth"] == "frozen only" }.allSatisfy { $0.attributes["stroke-dasharray"] != nil })
        XCTAssertNotNil(parsed.elements.first { $0.name == "g" && $0.attributes["class"] == "heatmap" })
        // lr 1e-4 × fine_tune_at 120: mean of the final 0.97 and 0.98.
        XCTAssertTrue(parsed.texts.contains("0.975"), parsed.texts.joined(separator: "|"))
    }

    func testNoHeatmapWithoutAnLrByDepthGrid() throws {
        let experiment = try temporaryDirectory()
        for depth in [nil, 120] as [Int?] {
            try ReportFixtures.makeTrial(in: experiment, id: "fine_tune_at=\(depth.map(String.init) ?? "none")",
                                         parameters: ["phases[1].fine_tune_at": depth.map { .number(Double($0)) } ?? nil],
                                         valAccuracies: [0.8, 0.9, 0.92], frozenEpochs: 2, fineTuneAt: depth)
        }
        try ExperimentReport.rebuild(experimentDirectory: experiment)
        let svg = try String(contentsOf: experiment.appendingPathComponent("comparison.svg"), encoding: .utf8)
        XCTAssertNil(SVGElements.parse(svg).elements.first { $0.attributes["class"] == "heatmap" })
    }

    func testShardsMergeToTheUnshardedSummary() throws {
        // Two shards write alternate trials, in a different order and with other timings, into one experiment directory.
        let unsharded = try temporaryDirectory(), sharded = try temporaryDirectory()
        try ReportFixtures.makeSweep(in: unsharded)
        try ReportFixtures.makeSweep(in: sharded, shardOrder: true)
        try ExperimentReport.rebuild(experimentDirectory: unsharded)
        try ExperimentReport.rebuild(experimentDirectory: sharded)
        func withoutTimings(_ directory: URL) throws -> [String] {
            let lines = try String(contentsOf: directory.appendingPathComponent("summary.csv"), encoding: .utf8).split(separator: "\n")
            let column = lines[0].split(separator: ",").firstIndex(of: "wall_seconds")!
            // Trial ids hold commas inside quotes; the timing columns are counted from the end instead.
            let fromEnd = lines[0].split(separator: ",").count - column
            return lines.map { line in
                var fields = line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
                fields[fields.count - fromEnd] = ""
                return fields.joined(separator: ",")
            }
        }
        XCTAssertEqual(try withoutTimings(sharded), try withoutTimings(unsharded))
    }

    func testUnfinishedTrialsAreListedAndATrialDirectoryRebuildsItsExperiment() throws {
        let experiment = try temporaryDirectory()
        try ReportFixtures.makeSweep(in: experiment)
        try ExperimentReport.rebuild(experimentDirectory: experiment)
        let whole = try String(contentsOf: experiment.appendingPathComponent("summary.csv"), encoding: .utf8)
        // Killed mid-trial: metrics written, summary.json not yet.
        let interrupted = experiment.appendingPathComponent("interrupted")
        try MetricsLog(directory: interrupted).append(ReportFixtures.record(epoch: 0, phase: "frozen", valAccuracy: 0.99))
        let markdown = try ExperimentReport.rebuild(experimentDirectory: experiment.appendingPathComponent("lr=1e-5,fine_tune_at=100"))
        XCTAssertTrue(markdown.contains("unfinished (no finished summary.json): `interrupted`"), markdown)
        XCTAssertEqual(try String(contentsOf: experiment.appendingPathComponent("summary.csv"), encoding: .utf8), whole)
    }

    func testSweepMetricAndDirection() throws {
        let experiment = try temporaryDirectory()
        try ReportFixtures.makeSweep(in: experiment)
        try #"{"metric": "val_loss", "direction": "min"}"#.write(to: experiment.appendingPathComponent("sweep.json"), atomically: true, encoding: .utf8)
        let markdown = try ExperimentReport.rebuild(experimentDirectory: experiment)
        XCTAssertTrue(markdown.contains("Ranked by lowest `val_loss`"))
        let csv = try String(contentsOf: experiment.appendingPathComponent("summary.csv"), encoding: .utf8)
        XCTAssertTrue(csv.split(separator: "\n")[1].hasPrefix("1,\"lr=1e-4,fine_tune_at=120\",1,"))
        try #"{"direction": "sideways"}"#.write(to: experiment.appendingPathComponent("sweep.json"), atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try ExperimentReport.rebuild(experimentDirectory: experiment))
    }

    func testParameterColumnsFollowTheSweepOrder() throws {
        let experiment = try temporaryDirectory()
        try ReportFixtures.makeSweep(in: experiment)
        try #"{"metric": "best_val_accuracy", "direction": "max", "parameter_keys": ["phases[1].lr", "phases[1].fine_tune_at"]}"#
            .write(to: experiment.appendingPathComponent("sweep.json"), atomically: true, encoding: .utf8)
        let markdown = try ExperimentReport.rebuild(experimentDirectory: experiment)
        let csv = try String(contentsOf: experiment.appendingPathComponent("summary.csv"), encoding: .utf8)
        XCTAssertTrue(csv.hasPrefix("rank,trial_id,repeat,seed,phases[1].lr,phases[1].fine_tune_at,best_val_accuracy,"))
        XCTAssertTrue(csv.split(separator: "\n")[1].hasPrefix("1,\"lr=1e-4,fine_tune_at=120\",1,43,0.0001,120,0.98,"))
        XCTAssertTrue(markdown.contains("| rank | trial | repeat | phases[1].lr | phases[1].fine_tune_at |"))
    }

    func testPandasReadsSummaryCSV() throws {
        let experiment = try temporaryDirectory()
        try ReportFixtures.makeSweep(in: experiment)
        try ExperimentReport.rebuild(experimentDirectory: experiment)
        let script = """
            import pandas as pd, sys
            df = pd.read_csv(sys.argv[1])
            print(len(df), df["trial_id"][0], df["test_accuracy"].isna().all(), df["phases[1].fine_tune_at"].tolist().count("none"))
            """
        let result = try Python.run(script, arguments: [experiment.appendingPathComponent("summary.csv").path], requiring: ["pandas"])
        XCTAssertEqual(result, "12 lr=1e-4,fine_tune_at=120 True 4\n")
    }
}
