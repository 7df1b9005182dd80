import ArgumentParser
import Cria
import Foundation

struct ExportNotebookCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export-notebook",
        abstract: "Export a run as a Jupyter notebook (nbformat 4) with its config, dataset, curves and summary tables.",
        discussion: """
            The curves are embedded as SVG outputs, so they show without running anything; the Python cells \
            re-plot from metrics.csv with pandas and matplotlib. An experiment directory features its best trial.
            """)

    @Argument(help: "A trial directory or an experiment directory.")
    var runDirectory: String

    @Option(name: .shortAndLong, help: "The notebook to write (FILE.ipynb).")
    var output: String

    func validate() throws {
        if !output.hasSuffix(".ipynb") { throw ValidationError("--output must name a .ipynb file") }
    }

    func run() throws {
        try reportingErrors {
            try NotebookExport.export(runDirectory: URL(fileURLWithPath: runDirectory), to: URL(fileURLWithPath: output))
            print("wrote \(output)")
        }
    }
}
