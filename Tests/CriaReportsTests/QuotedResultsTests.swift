import CriaTestSupport
import Foundation
import XCTest

/// Every results table that the README and docs/ quote is regenerated from
/// Benchmarks/results/*.jsonl by Benchmarks/tables.py; a quoted row that no longer
/// matches the data fails here, so a figure cannot drift from the run it came from.
final class QuotedResultsTests: XCTestCase {
    func testQuotedTablesMatchTheRecordedRuns() throws {
        let root = Fixtures.repositoryRoot
        let docs = try FileManager.default.contentsOfDirectory(atPath: root.appendingPathComponent("docs").path)
            .filter { $0.hasSuffix(".md") }.sorted().map { root.appendingPathComponent("docs/\($0)").path }
        let python = try Python.require([])
        let result = try Python.execute(python, [root.appendingPathComponent("Benchmarks/tables.py").path, "check",
                                                 root.appendingPathComponent("README.md").path] + docs)
        XCTAssertEqual(result.status, 0, result.stdout + result.stderr)
        XCTAssertTrue(result.stdout.contains("0 rows differ"), result.stdout)
    }
}
