import ArgumentParser
import Cria
import Foundation

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Rebuild summary.csv, summary.md and comparison.svg of an experiment directory from its trials.",
        discussion: """
            Reads every trial directory present (so shards run on other machines merge), ranks the finished \
            trials by the sweep's metric and prints summary.md. A trial directory rebuilds its experiment.
            """)

    @Argument(help: "An experiment directory (runs/<experiment>/<date>_<time>) or one of its trial directories.")
    var runDirectory: String

    @Flag(help: "Write the files without printing summary.md.")
    var quiet = false

    func run() throws {
        try reportingErrors {
            let markdown = try ExperimentReport.rebuild(experimentDirectory: URL(fileURLWithPath: runDirectory))
            if !quiet { print(markdown, terminator: "") }
        }
    }
}
