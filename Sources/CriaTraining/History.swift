import CriaCore

/// Images and labels for training or validation, in any order the trainer asks.
///
/// The experiment layer adapts CriaData's in-memory datasets to this; tests
/// use plain arrays. Images come as float32 NHWC in the model's input range
/// (raw [0, 255] pixels when the model starts with its own Rescaling).
public protocol ImageBatchSource {
    var count: Int { get }
    var labels: [Int] { get }
    /// Whether `images(..., augment: true)` changes pixels; when false, frozen-prefix outputs are cached.
    var augments: Bool { get }
    /// The images at `indices`, augmented with draws seeded by (`seed`, `epoch`, index) when `augment`.
    func images(_ indices: [Int], epoch: Int, augment: Bool, seed: UInt64) throws -> Tensor
}

/// A source over tensors already in memory (tests, features, small sets).
public struct TensorBatchSource: ImageBatchSource {
    public let images: Tensor
    public let labels: [Int]
    public var augments: Bool { false }
    public var count: Int { labels.count }

    public init(images: Tensor, labels: [Int]) {
        precondition(images.shape[0] == labels.count, "images and labels differ in count")
        self.images = images
        self.labels = labels
    }

    public func images(_ indices: [Int], epoch: Int, augment: Bool, seed: UInt64) throws -> Tensor {
        let size = images.count / max(images.shape[0], 1)
        var scalars = [Float]()
        scalars.reserveCapacity(size * indices.count)
        for index in indices { scalars.append(contentsOf: images.scalars[index * size ..< (index + 1) * size]) }
        return Tensor(shape: [indices.count] + Array(images.shape.dropFirst()), scalars: scalars)
    }
}

/// One row of a Keras `History`, plus Cria's extra columns.
public struct EpochRecord: Equatable, Sendable, Codable {
    /// Zero-based, continuing across phases as Keras's `initial_epoch` does.
    public var epoch: Int
    public var phase: String
    public var loss: Double
    /// Correct accuracy (logit > 0, or argmax).
    public var accuracy: Double
    /// What Keras's `metrics=["accuracy"]` reports for this model (0.5 threshold on logits).
    public var kerasAccuracy: Double
    public var valLoss: Double?
    public var valAccuracy: Double?
    public var valKerasAccuracy: Double?
    public var learningRate: Double
    public var seconds: Double

    public init(epoch: Int, phase: String, loss: Double, accuracy: Double, kerasAccuracy: Double, valLoss: Double?,
                valAccuracy: Double?, valKerasAccuracy: Double?, learningRate: Double, seconds: Double) {
        self.epoch = epoch
        self.phase = phase
        self.loss = loss
        self.accuracy = accuracy
        self.kerasAccuracy = kerasAccuracy
        self.valLoss = valLoss
        self.valAccuracy = valAccuracy
        self.valKerasAccuracy = valKerasAccuracy
        self.learningRate = learningRate
        self.seconds = seconds
    }

    /// A metric by its Keras name (`val_loss`, `accuracy`, ...), for callbacks and sweeps.
    public func metric(_ name: String) -> Double? {
        switch name {
        case "loss": return loss
        case "accuracy": return accuracy
        case "keras_accuracy": return kerasAccuracy
        case "val_loss": return valLoss
        case "val_accuracy": return valAccuracy
        case "val_keras_accuracy": return valKerasAccuracy
        case "learning_rate", "lr": return learningRate
        default: return nil
        }
    }

    public static let metricNames = ["loss", "accuracy", "keras_accuracy", "val_loss", "val_accuracy", "val_keras_accuracy", "learning_rate"]
}

/// Loss and accuracies of a pass over a dataset (Keras's `evaluate`).
public struct Evaluation: Equatable, Sendable {
    public var loss: Double
    public var accuracy: Double
    public var kerasAccuracy: Double
    public var count: Int
    /// Per image: predicted class index.
    public var predictions: [Int]
}
