import ArgumentParser
import Cria
import Foundation

struct EvaluateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "evaluate",
        abstract: "Keras's model.evaluate on a class-folder directory: loss, accuracy, per-class precision and recall, confusion matrix.")

    @Option(help: "A Cria or Keras full-model file (.h5 or .keras), e.g. runs/.../model.h5.")
    var model: String

    @Argument(help: "A folder with one sub-folder per class (sorted names are the class indices, as in Keras).")
    var directory: String

    @Option(name: .customLong("batch-size"), help: "Batch size.")
    var batchSize = 32

    @Flag(help: "Print JSON instead of a table.")
    var json = false

    @Option(help: "Threads for OpenBLAS and Cria's loops.")
    var threads: Int?

    func run() throws {
        try reportingErrors {
            if let threads { Threads.set(threads) }
            let metrics = try ModelEvaluation.evaluate(model: URL(fileURLWithPath: model), directory: URL(fileURLWithPath: directory),
                                                       batchSize: batchSize, verbose: !json)
            print(json ? metrics.json.serialized(pretty: true) : metrics.text)
        }
    }
}
