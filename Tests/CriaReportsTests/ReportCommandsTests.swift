import CriaTestSupport
import Foundation
import XCTest

/// The three reporting subcommands, run as the real binary on synthetic runs.
final class ReportCommandsTests: XCTestCase {
    func testReportCompareAndExportNotebook() throws {
        let root = try temporaryDirectory()
        let experiment = root.appendingPathComponent("runs/alpaca-sweep/2026-11-27_05-00-00")
        try ReportFixtures.makeSweep(in: experiment)

        let report = try CLI.run(["report", experiment.appendingPathComponent("lr=1e-4,fine_tune_at=120").path])
        XCTAssertEqual(report.status, 0, report.stderr)
        XCTAssertTrue(report.stdout.hasPrefix("# alpaca-sweep: 2026-11-27_05-00-00"), report.stdout)
        for name in ["summary.csv", "summary.md", "comparison.svg"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: experiment.appendingPathComponent(name).path), name)
        }

        let compare = try CLI.run(["compare", experiment.path, "-o", root.appendingPathComponent("cmp.md").path])
        XCTAssertEqual(compare.status, 0, compare.stderr)
        XCTAssertTrue(compare.stdout.contains("Unfreezing helped: fine_tune_at=120"))
        XCTAssertTrue(FileManager.default.fileExists(atPath: root.appendingPathComponent("cmp.md").path))

        let notebook = root.appendingPathComponent("Notebooks-export/sweep.ipynb")
        let export = try CLI.run(["export-notebook", experiment.path, "-o", notebook.path])
        XCTAssertEqual(export.status, 0, export.stderr)
        XCTAssertNotNil(try JSONSerialization.jsonObject(with: Data(contentsOf: notebook)) as? [String: Any])
    }

    func testErrorsAreOneLine() throws {
        let missing = try CLI.run(["report", "/nonexistent/run"])
        XCTAssertEqual(missing.status, 1)
        XCTAssertEqual(missing.stderr, "error: /nonexistent/run: no such directory\n")
        let empty = try temporaryDirectory()
        let compare = try CLI.run(["compare", empty.path])
        XCTAssertEqual(compare.status, 1)
        XCTAssertTrue(compare.stderr.hasPrefix("error: compare: no finished trials"), compare.stderr)
        let badOutput = try CLI.run(["export-notebook", empty.path, "-o", "notebook.txt"])
        XCTAssertNotEqual(badOutput.status, 0)
        XCTAssertTrue(badOutput.stderr.contains(".ipynb"), badOutput.stderr)
    }
}
