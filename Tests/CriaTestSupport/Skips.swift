import Foundation
import XCTest

/// Why a test may not run, and whether CI accepts that.
///
/// In CI (`CI=true`, as `.ci/run` is run) a skip must be a decision, such as the
/// alpaca photos being absent beside the clone. A missing tool, package or generated
/// file is a broken CI setup, so there the same condition fails the test instead of
/// hiding a check that never ran.
public enum Skip {
    /// True when running under CI (`CI=true`).
    public static var inCI: Bool {
        let value = ProcessInfo.processInfo.environment["CI"]?.lowercased()
        return value == "true" || value == "1"
    }

    /// A skip that CI accepts: the data or machine is deliberately absent.
    public static func decision(_ reason: String) -> XCTSkip { XCTSkip(reason) }

    /// Something the suite needs is missing (a tool, a Python module, a built binary,
    /// a fetched weights file). Outside CI the test skips and says why; in CI it
    /// fails, naming what `.ci/run` should have installed.
    public static func missing(_ what: String, file: StaticString = #filePath, line: UInt = #line) -> Error {
        if inCI {
            XCTFail("CI is missing \(what); .ci/run must install it (a skip in CI must be a decision, not a missing tool)",
                    file: file, line: line)
            return MissingInCI(what: what)
        }
        return XCTSkip(what)
    }

    private struct MissingInCI: Error, CustomStringConvertible {
        let what: String
        var description: String { "missing in CI: \(what)" }
    }
}
