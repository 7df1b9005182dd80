import ArgumentParser
import Cria
import Foundation

struct CompareCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compare",
        abstract: "Frozen-only against each fine-tune depth at equal total epochs: did unfreezing help, and from which layer?",
        discussion: """
            Prints the table, with paired differences and 95 % intervals, and writes it as comparison.md into the first \
            directory, or to --output.
            With --reference FILE.jsonl, compares Cria's runs with a reference's (Keras's) on the same folds instead, \
            and writes reference-comparison.md. With --export-jsonl FILE, writes Cria's runs in the reference's format.
            """)

    @Argument(help: "Experiment, trial or runs directories; every finished trial under them is compared.")
    var runDirectories: [String]

    @Option(name: .shortAndLong, help: "Where to write the markdown (a file, or a directory for comparison.md).")
    var output: String?

    @Option(help: ArgumentHelp("Reference runs as JSON lines (e.g. Notebooks-export/parity/keras-cv.jsonl).", valueName: "file.jsonl"))
    var reference: String?

    @Option(name: .customLong("reference-config"), help: "The reference's config to pair with (needed when the file holds several).")
    var referenceConfig: String?

    @Option(name: .customLong("export-jsonl"), help: ArgumentHelp("Write Cria's finished runs as reference-format JSON lines.", valueName: "file.jsonl"))
    var exportJSONL: String?

    @Option(help: "The config name written with --export-jsonl.")
    var label: String = "cria"

    func validate() throws {
        if runDirectories.isEmpty { throw ValidationError("give at least one run directory") }
        if referenceConfig != nil && reference == nil { throw ValidationError("--reference-config needs --reference FILE.jsonl") }
    }

    func run() throws {
        try reportingErrors {
            let directories = runDirectories.map { URL(fileURLWithPath: $0) }
            if let exportJSONL {
                var trials = [TrialSummary]()
                for directory in directories { trials += try TrialSummary.loadAll(under: directory).finished }
                try AtomicFile.write(try ReferenceRun.jsonLines(ReferenceRun.runs(trials, config: label)), to: URL(fileURLWithPath: exportJSONL))
                FileHandle.standardError.write(Data("wrote \(trials.count) run(s) to \(exportJSONL)\n".utf8))
            }
            if let reference {
                let (_, markdown) = try ReferenceComparison.compare(directories, reference: URL(fileURLWithPath: reference), config: referenceConfig)
                var destination = output.map { URL(fileURLWithPath: $0) } ?? directories[0]
                var isDirectory: ObjCBool = false
                if FileManager.default.fileExists(atPath: destination.path, isDirectory: &isDirectory), isDirectory.boolValue {
                    destination = destination.appendingPathComponent("reference-comparison.md")
                }
                try AtomicFile.write(markdown, to: destination)
                print(markdown, terminator: "")
                return
            }
            if exportJSONL != nil && output == nil { return }
            let markdown = try RunComparison.compare(directories, output: output.map { URL(fileURLWithPath: $0) })
            print(markdown, terminator: "")
        }
    }
}
