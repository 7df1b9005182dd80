import ArgumentParser
import Cria
import Foundation

struct CompareCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compare",
        abstract: "Frozen-only against each fine-tune depth at equal total epochs: did unfreezing help, and from which layer?",
        discussion: "Prints the table and writes it as comparison.md into the first directory, or to --output.")

    @Argument(help: "Experiment, trial or runs directories; every finished trial under them is compared.")
    var runDirectories: [String]

    @Option(name: .shortAndLong, help: "Where to write the markdown (a file, or a directory for comparison.md).")
    var output: String?

    func validate() throws {
        if runDirectories.isEmpty { throw ValidationError("give at least one run directory") }
    }

    func run() throws {
        try reportingErrors {
            let markdown = try RunComparison.compare(runDirectories.map { URL(fileURLWithPath: $0) },
                                                     output: output.map { URL(fileURLWithPath: $0) })
            print(markdown, terminator: "")
        }
    }
}
