import ArgumentParser
import Cria
import Foundation

struct PredictCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "predict",
        abstract: "Classify images, or run raw .npy arrays through a model (optionally reading any layer).")

    @Option(help: "A Keras .h5, .weights.h5 or .keras file.")
    var model: String

    @Argument(help: "Image files (JPEG, PNG) to classify.")
    var images: [String] = []

    @Option(help: "Show the K most probable classes.")
    var top: Int = 5

    @Flag(help: "Print JSON: one object per image with its top classes.")
    var json = false

    @Option(help: "A float32 .npy batch (N, H, W, C) to run instead of images.")
    var input: String?

    @Option(help: "Where to write the raw output as .npy (with --input).")
    var output: String?

    @Option(help: "Read this layer's output instead of the model's (with --input), as Keras's Model(inputs, layer.output).")
    var layer: String?

    @Option(help: "Class names: a text file with one per line, or a JSON list.")
    var labels: String?

    @Option(help: "Pixel preprocessing for images: auto, mobilenet_v2 or none.")
    var preprocess: String = "auto"

    @Option(help: "Threads for OpenBLAS and Cria's loops.")
    var threads: Int?

    @OptionGroup var architecture: ArchitectureOptions

    func validate() throws {
        if input == nil && images.isEmpty { throw ValidationError("give image files, or --input x.npy --output y.npy") }
        if input != nil && output == nil { throw ValidationError("--input needs --output") }
        if input != nil && !images.isEmpty { throw ValidationError("give either image files or --input, not both") }
        if layer != nil && input == nil { throw ValidationError("--layer works with --input/--output") }
        if top < 1 { throw ValidationError("--top must be at least 1") }
        if ImageClassifier.Preprocessing(rawValue: preprocess) == nil { throw ValidationError("--preprocess must be auto, mobilenet_v2 or none") }
    }

    func run() throws {
        try reportingErrors {
            if let threads { Threads.set(threads) }
            let (file, graph) = try architecture.loadGraph(model)
            if let input, let output {
                let inference = try InferenceModel(graph: graph, outputs: layer.map { [$0] })
                let batch = try NPY.read(URL(fileURLWithPath: input))
                try NPY.write(try inference(batch), to: URL(fileURLWithPath: output))
                return
            }
            let classifier = ImageClassifier(
                model: try InferenceModel(graph: graph),
                classNames: try ImageClassifier.classNames(for: URL(fileURLWithPath: model), file: file, labelsFile: labels.map { URL(fileURLWithPath: $0) }),
                preprocessing: ImageClassifier.Preprocessing(rawValue: preprocess)!)
            let results = try classifier.classify(images.map { URL(fileURLWithPath: $0) }, top: top)
            if json {
                let list: [JSONValue] = zip(images, results).map { file, predictions in
                    ["file": .string(file), "top": .array(predictions.map { prediction in
                        ["index": .number(Double(prediction.index)), "label": prediction.label.map { .string($0) } ?? nil,
                         "probability": .number(Double(prediction.probability))]
                    })]
                }
                print(JSONValue.array(list).serialized(pretty: true))
            } else {
                for (file, predictions) in zip(images, results) {
                    print(file)
                    for prediction in predictions {
                        print(String(format: "  %6.2f%%  %3d  %@", prediction.probability * 100, prediction.index, prediction.label ?? ""))
                    }
                }
            }
        }
    }
}
