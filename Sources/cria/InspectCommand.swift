import ArgumentParser
import Cria
import Foundation

struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Show a Keras file's format, layers, output shapes and parameters, and what Cria builds from it.")

    @Argument(help: "A Keras .h5, .weights.h5 or .keras file.")
    var file: String

    @OptionGroup var architecture: ArchitectureOptions

    func run() throws {
        try reportingErrors {
            let (keras, graph) = try architecture.loadGraph(file)
            print("file:      \(file)")
            print("format:    \(keras.format.rawValue)")
            print("keras:     \(keras.kerasVersion ?? "unknown")\(keras.backend.map { " (backend \($0))" } ?? "")")
            print("model:     \(graph.name)\(keras.modelConfig == nil ? " (architecture from flags: MobileNetV2)" : "")")
            print("input:     \(describeShape([-1] + graph.inputShape).replacingOccurrences(of: "-1", with: "None"))")
            print("")
            print(pad("index", 7) + pad("layer", 34) + pad("class", 24) + pad("output shape", 20) + pad("params", 10) + "trainable")
            var trainable = 0, frozen = 0
            var currentOwner = ""
            for node in graph.nodes {
                if node.owner != currentOwner {
                    currentOwner = node.owner
                    print("  [\(node.owner)]")
                }
                let parameters = node.weights.values.reduce(0) { $0 + $1.count }
                // Moving statistics are never trained; everything else follows the layer's saved flag.
                let statistics = (node.weights["moving_mean"]?.count ?? 0) + (node.weights["moving_variance"]?.count ?? 0)
                if node.trainable { trainable += parameters - statistics; frozen += statistics } else { frozen += parameters }
                print(pad("\(node.indexInOwner)", 7) + pad(node.name, 34) + pad(node.className, 24)
                      + pad(describeShape(node.outputShape), 20) + pad(parameters == 0 ? "" : "\(parameters)", 10)
                      + (parameters == 0 ? "" : (node.trainable ? "yes" : "no")))
            }
            print("")
            print("parameters: \(trainable + frozen) total, \(trainable) trainable, \(frozen) non-trainable (as saved)")
            let plan = try InferenceModel(graph: graph).planSummary
            print("cria plan:  \(plan)")
        }
    }

    private func pad(_ text: String, _ width: Int) -> String {
        text.count >= width ? text + " " : text + String(repeating: " ", count: width - text.count)
    }
}
