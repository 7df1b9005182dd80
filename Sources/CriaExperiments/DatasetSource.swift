import CriaCore
import CriaData
import CriaTraining
import Foundation

/// Feeds a CriaData `ImageDataset` to the trainer: raw [0, 255] pixels (the
/// transfer model rescales them itself, as Keras's tutorial model does),
/// augmented per image with draws keyed by (seed, epoch, index).
///
/// `indices` selects a subset (a Fashion-MNIST split, a `data.limit`), in order.
public struct DatasetBatchSource: ImageBatchSource {
    public let dataset: ImageDataset
    public let indices: [Int]?

    public init(_ dataset: ImageDataset, indices: [Int]? = nil) {
        self.dataset = dataset
        self.indices = indices
    }

    public var count: Int { indices?.count ?? dataset.count }
    public var labels: [Int] { indices.map { $0.map { dataset.labels[$0] } } ?? dataset.labels }
    public var augments: Bool { !(dataset.augmentation?.layers.isEmpty ?? true) }

    public func images(_ positions: [Int], epoch: Int, augment: Bool, seed: UInt64) throws -> Tensor {
        let pipeline = augment ? dataset.augmentation.map { AugmentationPipeline($0.layers, seed: seed ^ $0.seed) } : nil
        // On every core: each image's draws depend only on (seed, epoch, position), never on
        // the worker that ran it, so the batch is bit-identical for any thread count.
        return Tensor.stack(Threads.collect(positions.count) { slot in
            let position = positions[slot]
            let image = dataset.image(indices?[position] ?? position)
            // Draws are keyed by the position in this source, so a subset augments like a dataset of its own.
            return pipeline?.apply(image, epoch: epoch, index: position) ?? image
        })
    }
}

/// Images decoded with `ImageLoader` (a `data.limit` subset of a directory), served like a dataset.
public struct LoadedImagesSource: ImageBatchSource {
    public let loaded: ImageLoader.Loaded
    public let height: Int
    public let width: Int
    public let augmentation: AugmentationPipeline?

    public init(_ loaded: ImageLoader.Loaded, height: Int, width: Int, augmentation: AugmentationPipeline?) {
        self.loaded = loaded
        self.height = height
        self.width = width
        self.augmentation = augmentation
    }

    public var count: Int { loaded.labels.count }
    public var labels: [Int] { loaded.labels }
    public var augments: Bool { !(augmentation?.layers.isEmpty ?? true) }

    public func images(_ positions: [Int], epoch: Int, augment: Bool, seed: UInt64) throws -> Tensor {
        let size = height * width * 3
        let pipeline = augment ? augmentation.map { AugmentationPipeline($0.layers, seed: seed ^ $0.seed) } : nil
        return Tensor.stack(Threads.collect(positions.count) { slot in
            let position = positions[slot]
            let image = Tensor(shape: [height, width, 3], scalars: Array(loaded.pixels[(position * size)..<((position + 1) * size)]))
            return pipeline?.apply(image, epoch: epoch, index: position) ?? image
        })
    }
}
