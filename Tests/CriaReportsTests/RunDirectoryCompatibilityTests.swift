import CriaCore
import CriaRecords
import CriaReports
import CriaTestSupport
import Foundation
import XCTest

/// A run directory written before the records were typed (Tests/Fixtures/runs/tiny-sweep, made
/// by `cria sweep Tests/Fixtures/runs/tiny-sweep.yaml` and trimmed to the files the reports
/// read): its phases hold freezing as text ("fine_tune_at=120"). Today's reports read it into
/// the typed records and rebuild, byte for byte, the summaries and the comparison it gave then.
final class RunDirectoryCompatibilityTests: XCTestCase {
    var fixture: URL { Fixtures.url("runs/tiny-sweep") }

    /// A copy of the fixture, so rebuilding never touches the committed files.
    func copy() throws -> URL {
        let root = try temporaryDirectory().appendingPathComponent("tiny-sweep")
        try FileManager.default.copyItem(at: fixture, to: root)
        return root
    }

    func committed(_ name: String) throws -> String {
        try String(contentsOf: fixture.appendingPathComponent(name), encoding: .utf8)
    }

    func testOlderSummariesReadIntoTypedRecords() throws {
        let trials = try TrialSummary.loadAll(under: fixture).finished
        XCTAssertEqual(trials.map(\.trialID), ["fine_tune_at=120,lr=1e-4", "fine_tune_at=120,lr=1e-5", "fine_tune_at=none,lr=1e-4", "fine_tune_at=none,lr=1e-5"])
        for trial in trials {
            XCTAssertEqual(trial.phases.map(\.freezing).first, .baseFrozen)
            XCTAssertEqual(trial.phases[1].freezing, trial.trialID.hasPrefix("fine_tune_at=120") ? .fineTuneAt(120) : .baseFrozen)
            XCTAssertEqual(trial.phases[1].learningRate, trial.trialID.hasSuffix("1e-4") ? 1e-4 : 1e-5)
            XCTAssertEqual(trial.phases.map(\.bnMode), [.inference, .inference])
            XCTAssertEqual(trial.records.count, 2)
            XCTAssertEqual(trial.test?.count, 20)
            XCTAssertEqual(trial.dataset?.trainCount, 36)
        }
        XCTAssertEqual(trials[0].depthLabel, "fine_tune_at=120")
        XCTAssertEqual(trials[0].depthValue, 120)
        XCTAssertEqual(trials[2].depthLabel, "frozen only")
    }

    func testReportRebuildsTheSameFiles() throws {
        let root = try copy()
        try ExperimentReport.rebuild(experimentDirectory: root)
        for name in ["summary.md", "comparison.svg"] {
            let rebuilt = try String(contentsOf: root.appendingPathComponent(name), encoding: .utf8)
            XCTAssertEqual(rebuilt, try committed(name), "\(name) differs from what the reports gave before the typed records")
        }
        // summary.csv: the same fields, except that a number read from summary.json may now differ
        // in its last bits. The reports used to parse it with JSONSerialization, whose decimal to
        // binary conversion on Linux is not correctly rounded (a few ulps off); the records decode
        // with JSONDecoder, which rounds correctly, so the bound is that error: 4 ulps.
        let rebuilt = try String(contentsOf: root.appendingPathComponent("summary.csv"), encoding: .utf8)
        let before = try committed("summary.csv")
        let rows = rebuilt.split(whereSeparator: \.isNewline).map { $0.split(separator: ",", omittingEmptySubsequences: false) }
        let oldRows = before.split(whereSeparator: \.isNewline).map { $0.split(separator: ",", omittingEmptySubsequences: false) }
        XCTAssertEqual(rows.count, oldRows.count)
        for (row, oldRow) in zip(rows, oldRows) {
            XCTAssertEqual(row.count, oldRow.count)
            for (field, oldField) in zip(row, oldRow) where field != oldField {
                let x = try XCTUnwrap(Double(String(field)), String(field)), y = try XCTUnwrap(Double(String(oldField)), String(oldField))
                XCTAssertLessThanOrEqual(abs(x - y), 4 * y.ulp, "\(field) vs \(oldField)")
            }
        }
        // And now exactly: each trial's final validation loss is its last epoch's, bit for bit.
        let column = try XCTUnwrap(rebuilt.split(whereSeparator: \.isNewline).first?.split(separator: ",").firstIndex(of: "final_val_loss"))
        for trial in try TrialSummary.loadAll(under: root).finished {
            let value = try XCTUnwrap(trial.records.last?.valLoss)
            let row = try XCTUnwrap(rebuilt.split(whereSeparator: \.isNewline).first { $0.contains("\"\(trial.trialID)\"") })
            let fields = row.replacingOccurrences(of: "\"\(trial.trialID)\"", with: "id").split(separator: ",", omittingEmptySubsequences: false)
            XCTAssertEqual(fields[column], "\(value)", String(row))
        }
        // The heatmap over the fine-tune phase's learning rate × fine_tune_at, found from the typed phases.
        XCTAssertTrue(try committed("comparison.svg").contains("phases[1].lr × phases[1].fine_tune_at"))
    }

    func testCompareGivesTheSameComparison() throws {
        let root = try copy()
        let markdown = try RunComparison.compare([root])
        let before = try committed("comparison.md").replacingOccurrences(of: "Runs: `/tmp/tiny-copy`", with: "Runs: `\(root.path)`")
        XCTAssertEqual(markdown, before)
        XCTAssertTrue(markdown.contains("Pooled over: `phases[1].lr`."), markdown)
    }

    /// Rewriting an older summary in today's format changes the freezing's form, not its meaning or any number.
    func testOlderSummaryMigratesLosslessly() throws {
        let trial = fixture.appendingPathComponent("fine_tune_at=120,lr=1e-4")
        let old = try TrialSummary(directory: trial)
        let root = try temporaryDirectory()
        try old.write(to: root)
        try FileManager.default.copyItem(at: trial.appendingPathComponent("metrics.jsonl"), to: root.appendingPathComponent("metrics.jsonl"))
        var migrated = try TrialSummary(directory: root)
        migrated.directory = old.directory
        XCTAssertEqual(migrated, old)
        let text = try String(contentsOf: root.appendingPathComponent("summary.json"), encoding: .utf8)
        XCTAssertTrue(text.contains("\"fine_tune_at\" : 120") && !text.contains("\"fine_tune_at=120\""), text)
    }
}
