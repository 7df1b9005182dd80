import Foundation

/// Feeds a CriaData `ImageDataset` to the trainer: raw [0, 255] pixels (the
/// transfer model rescales them itself, as Keras's tutorial model does),
/// augmented per image with draws keyed by (seed, epoch, index).
public struct DatasetBatchSource: ImageBatchSource {
    public let dataset: ImageDataset

    public init(_ dataset: ImageDataset) { self.dataset = dataset }

    public var count: Int { dataset.count }
    public var labels: [Int] { dataset.labels }
    public var augments: Bool { !(dataset.augmentation?.layers.isEmpty ?? true) }

    public func images(_ indices: [Int], epoch: Int, augment: Bool, seed: UInt64) throws -> Tensor {
        var images = [Tensor](repeating: Tensor(zeros: [0]), count: indices.count)
        let pipeline = augment ? dataset.augmentation.map { AugmentationPipeline($0.layers, seed: seed ^ $0.seed) } : nil
        for (position, index) in indices.enumerated() {
            var image = dataset.image(index)
            if let pipeline { image = pipeline.apply(image, epoch: epoch, index: index) }
            images[position] = image
        }
        return Tensor.stack(images)
    }
}
