import CriaCore
import CriaData
import CriaKerasIO
import CriaModel
import CriaTraining
import Foundation

/// Keras's `model.evaluate` figures plus what scikit-learn's report adds: per-class
/// precision and recall and the confusion matrix (rows: true class, columns: predicted).
public struct ClassificationMetrics: Equatable, Sendable {
    public var loss: Double
    public var accuracy: Double
    /// Keras's own "accuracy" (0.5 threshold on a logit), for comparison with Keras logs.
    public var kerasAccuracy: Double
    public var count: Int
    public var classNames: [String]
    public var precision: [Double?]
    public var recall: [Double?]
    public var confusion: [[Int]]

    public init(_ evaluation: Evaluation, labels: [Int], classNames: [String]) {
        loss = evaluation.loss
        accuracy = evaluation.accuracy
        kerasAccuracy = evaluation.kerasAccuracy
        count = evaluation.count
        self.classNames = classNames
        let k = max(classNames.count, (labels.max() ?? 0) + 1, (evaluation.predictions.max() ?? 0) + 1)
        var confusion = [[Int]](repeating: [Int](repeating: 0, count: k), count: k)
        for (label, prediction) in zip(labels, evaluation.predictions) { confusion[label][prediction] += 1 }
        self.confusion = confusion
        // Undefined (no predictions or no examples of the class) is null, not 0, so it cannot pass for a score.
        precision = (0..<k).map { c in
            let predicted = (0..<k).reduce(0) { $0 + confusion[$1][c] }
            return predicted == 0 ? nil : Double(confusion[c][c]) / Double(predicted)
        }
        recall = (0..<k).map { c in
            let actual = confusion[c].reduce(0, +)
            return actual == 0 ? nil : Double(confusion[c][c]) / Double(actual)
        }
    }

    /// The `test` record of summary.json.
    public var record: TrialSummary.TestMetrics {
        .init(loss: loss, accuracy: accuracy, kerasAccuracy: kerasAccuracy, count: count,
              perClass: classNames.indices.map { .init(name: classNames[$0], precision: precision[$0], recall: recall[$0]) },
              confusion: confusion)
    }

    /// The same as JSON (`cria evaluate --json`).
    public var json: JSONValue {
        let perClass: [JSONValue] = classNames.indices.map { c in
            .object(["name": .string(classNames[c]), "precision": precision[c].map(JSONValue.number) ?? .null,
                     "recall": recall[c].map(JSONValue.number) ?? .null])
        }
        return .object(["loss": .number(loss), "accuracy": .number(accuracy), "keras_accuracy": .number(kerasAccuracy),
                        "count": .number(Double(count)), "per_class": .array(perClass),
                        "confusion": .array(confusion.map { .array($0.map { .number(Double($0)) }) })])
    }

    /// The text `cria evaluate` prints.
    public var text: String {
        var lines = [String(format: "%d images - loss: %.4f - accuracy: %.4f", count, loss, accuracy)]
        if kerasAccuracy != accuracy {
            lines[0] += String(format: " (Keras's \"accuracy\" on logits: %.4f)", kerasAccuracy)
        }
        let width = max(10, classNames.map(\.count).max() ?? 0)
        func pad(_ text: String, _ n: Int) -> String { text.count >= n ? text : text + String(repeating: " ", count: n - text.count) }
        func score(_ value: Double?) -> String { value.map { String(format: "%.4f", $0) } ?? "   n/a" }
        lines.append("")
        lines.append(pad("class", width) + "  precision  recall  support")
        for c in classNames.indices {
            lines.append(pad(classNames[c], width) + "  " + pad(score(precision[c]), 9) + "  " + pad(score(recall[c]), 6)
                + "  " + String(confusion[c].reduce(0, +)))
        }
        lines.append("")
        lines.append("confusion matrix (rows: true class, columns: predicted):")
        let labels = classNames.indices.map { "\($0) \(classNames[$0])" }
        let labelWidth = labels.map(\.count).max() ?? 0
        lines.append(pad("", labelWidth) + "  " + classNames.indices.map { pad(String($0), 6) }.joined())
        for c in classNames.indices {
            lines.append(pad(labels[c], labelWidth) + "  " + confusion[c].map { pad(String($0), 6) }.joined())
        }
        return lines.joined(separator: "\n")
    }
}

/// `cria evaluate --model FILE DIR`: Keras's `model.evaluate` on a class-folder directory.
public enum ModelEvaluation {
    public static func evaluate(model url: URL, directory: URL, batchSize: Int = 32, verbose: Bool = true) throws -> ClassificationMetrics {
        let file = try KerasFile.open(url)
        let graph = try ModelGraph.build(file: file, architecture: nil)
        let shape = graph.inputShape
        guard shape.count >= 3 else { throw CriaError("\(url.path): model input shape \(shape) is not an image") }
        let (height, width) = (shape[shape.count - 3], shape[shape.count - 2])
        var options = DirectoryDatasetOptions()
        options.imageSize = (height, width)
        options.shuffle = false
        options.batchSize = batchSize
        options.verbose = verbose
        options.showProgress = verbose
        // A Cria model records its class names; use them so labels line up with the outputs.
        if let names = file.criaMetadata?["class_names"]?.array?.compactMap(\.string), !names.isEmpty { options.classNames = names }
        let dataset = try DirectoryDataset.load(directory, options: options)
        let units = graph.outputShape.last ?? 1
        let loss: Loss = units == 1 ? .binaryCrossentropyFromLogits : .sparseCategoricalCrossentropyFromLogits
        let trainer = Trainer(graph: graph, loss: loss, seed: 0)
        let source = DatasetBatchSource(dataset)
        let evaluation = try trainer.evaluate(source, batchSize: batchSize)
        return ClassificationMetrics(evaluation, labels: source.labels, classNames: dataset.classNames)
    }
}

/// Provenance for summaries: Cria's commit and the process's peak memory.
public enum RunInfo {
    /// `git rev-parse HEAD` in the working directory, or "unknown" outside a checkout.
    public static let gitCommit: String = {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["git", "rev-parse", "HEAD"]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return "unknown" }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return process.terminationStatus == 0 && !text.isEmpty ? text : "unknown"
    }()
}
