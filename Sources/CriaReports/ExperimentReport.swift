import CriaCore
import Foundation

/// Experiment-level summaries: summary.csv, summary.md and comparison.svg.
public enum ExperimentReport {
    @discardableResult
    public static func rebuild(experimentDirectory: URL) throws -> String {
        throw CriaError("cria report: not implemented yet")
    }
}
