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

/// Loss and accuracies of a pass over a dataset (Keras's `evaluate`).
public struct Evaluation: Equatable, Sendable {
    public var loss: Double
    public var accuracy: Double
    public var kerasAccuracy: Double
    public var count: Int
    /// Per image: predicted class index.
    public var predictions: [Int]
}
