import CriaCore
import Foundation

/// `image_dataset_from_directory`'s `label_mode`.
public enum LabelMode: String, CaseIterable, Sendable {
    /// Class index per image: labels shape (B,).
    case int
    /// 0/1 float per image, exactly two classes: labels shape (B, 1).
    case binary
    /// One-hot: labels shape (B, classes).
    case categorical
}

/// Input scaling applied when batches are assembled.
public enum Preprocess: String, CaseIterable, Sendable {
    /// Pixels stay in [0, 255], as `image_dataset_from_directory` yields them.
    case none
    /// `keras.applications.mobilenet_v2.preprocess_input`: x / 127.5 − 1.
    case mobilenetV2 = "mobilenet_v2"
}

/// How resized pixels are held in memory.
///
/// float32 stays the default: bilinear resizing gives fractional values, and rounding
/// them moves the inputs by up to 0.5 grey level, which changes losses from the fifth
/// digit on and can flip a borderline prediction, so results would no longer match
/// Keras's. For data that does not fit, the memory-mapped cache (`data.cache`) carries
/// the float32 size on disk instead: its pages belong to the file, not to the process.
public enum PixelStorage: String, Sendable {
    /// Exactly Keras's float resize output (4 bytes per value; 80 MB for 262 images at 160²).
    case float32
    /// Rounded to bytes (20 MB for 262 at 160²): at most 0.5 grey level from Keras, so
    /// results differ slightly from Keras's. Applied the same way to cached and streamed pixels.
    case uint8
}

/// One batch: images NHWC float32 and labels shaped by the label mode.
public struct Batch: Sendable {
    public let images: Tensor
    public let labels: Tensor
    /// Positions in the dataset, for tracing a prediction back to its file.
    public let indices: [Int]
}

/// Decoded, resized images held in memory, served as batches. Each image is decoded once;
/// every epoch reorders (when shuffling) and optionally augments from that copy.
public struct ImageDataset: Sendable {
    public let directory: URL
    public let classNames: [String]
    /// Relative paths of the images that loaded, in dataset order.
    public let files: [String]
    public let labels: [Int]
    public let height: Int
    public let width: Int
    public let storage: PixelStorage
    public let labelMode: LabelMode
    /// Files that could not be decoded and were skipped: (relative path, reason).
    public let unreadable: [(file: String, reason: String)]

    public var batchSize: Int
    /// Reshuffle every epoch (Keras shuffles the training set, not the validation set).
    public var shuffle: Bool
    public var seed: UInt32
    public var preprocess: Preprocess = .none
    /// Applied per image during training only; leave nil for validation.
    public var augmentation: AugmentationPipeline?

    private let floatPixels: [Float]
    private let bytePixels: [UInt8]
    /// Pixels kept out of anonymous memory (a memory-mapped cache file, or a renderer that
    /// recomputes an image on demand) and each image's slot there; nil when held in memory.
    private let streamed: (source: PixelSource, slots: [Int])?

    /// Whether pixels come from a mapped file or a renderer rather than memory (then batches are prefetched).
    public var isStreamed: Bool { streamed != nil }

    init(directory: URL, classNames: [String], files: [String], labels: [Int], height: Int, width: Int,
         pixels: [Float], storage: PixelStorage, labelMode: LabelMode, unreadable: [(file: String, reason: String)],
         batchSize: Int, shuffle: Bool, seed: UInt32, streamed: (source: PixelSource, slots: [Int])? = nil) {
        self.streamed = streamed
        self.directory = directory
        self.classNames = classNames
        self.files = files
        self.labels = labels
        self.height = height
        self.width = width
        self.storage = storage
        self.labelMode = labelMode
        self.unreadable = unreadable
        self.batchSize = batchSize
        self.shuffle = shuffle
        self.seed = seed
        switch storage {
        case .float32: floatPixels = pixels; bytePixels = []
        case .uint8: bytePixels = pixels.map { UInt8(min(max($0.rounded(), 0), 255)) }; floatPixels = []
        }
    }

    public var count: Int { files.count }
    public var batchCount: Int { (count + batchSize - 1) / max(1, batchSize) }
    var imageSize: Int { height * width * 3 }

    /// Image `i` as HWC float32 in [0, 255], before augmentation and preprocessing.
    public func image(_ i: Int) -> Tensor {
        if let streamed {
            var scalars = [Float](unsafeUninitializedCapacity: imageSize) { buffer, initialized in
                streamed.source.render(streamed.slots[i], into: buffer.baseAddress!)
                initialized = imageSize
            }
            // The same rounding as the in-memory uint8 copy, so storage means the same thing either way.
            if storage == .uint8 { for k in scalars.indices { scalars[k] = Float(UInt8(min(max(scalars[k].rounded(), 0), 255))) } }
            return Tensor(shape: [height, width, 3], scalars: scalars)
        }
        let range = (i * imageSize)..<((i + 1) * imageSize)
        switch storage {
        case .float32: return Tensor(shape: [height, width, 3], scalars: Array(floatPixels[range]))
        case .uint8: return Tensor(shape: [height, width, 3], scalars: bytePixels[range].map(Float.init))
        }
    }

    /// The dataset order for `epoch`: a permutation seeded by (seed, epoch) when shuffling.
    public func order(epoch: Int) -> [Int] {
        var order = Array(0..<count)
        guard shuffle else { return order }
        let key = AugmentationRandom.mix(UInt64(seed) << 32 ^ UInt64(truncatingIfNeeded: epoch))
        var state = NumpyRandomState(seed: UInt32(truncatingIfNeeded: key ^ key >> 32))
        state.shuffle(&order)
        return order
    }

    /// Batch `b` of `epoch`; the last batch may be smaller, as in `tf.data.batch`.
    public func batch(_ b: Int, epoch: Int, order precomputed: [Int]? = nil) -> Batch {
        let order = precomputed ?? self.order(epoch: epoch)
        let indices = Array(order[(b * batchSize)..<min(count, (b + 1) * batchSize)])
        let images = Threads.collect(indices.count) { j -> Tensor in
            var image = self.image(indices[j])
            if let augmentation { image = augmentation.apply(image, epoch: epoch, index: indices[j]) }
            if preprocess == .mobilenetV2 {
                image.scalars = image.scalars.map { $0 / 127.5 - 1 }
            }
            return image
        }
        return Batch(images: Tensor.stack(images), labels: labelTensor(indices), indices: indices)
    }

    public func batches(epoch: Int) -> [Batch] {
        let order = self.order(epoch: epoch)
        return (0..<batchCount).map { batch($0, epoch: epoch, order: order) }
    }

    public func labelTensor(_ indices: [Int]) -> Tensor {
        switch labelMode {
        case .int: return Tensor(shape: [indices.count], scalars: indices.map { Float(labels[$0]) })
        case .binary: return Tensor(shape: [indices.count, 1], scalars: indices.map { Float(labels[$0]) })
        case .categorical:
            var scalars = [Float](repeating: 0, count: indices.count * classNames.count)
            for (row, i) in indices.enumerated() { scalars[row * classNames.count + labels[i]] = 1 }
            return Tensor(shape: [indices.count, classNames.count], scalars: scalars)
        }
    }
}
