import CriaCore
@testable import CriaData
@testable import CriaExperiments
import XCTest

/// The trainer's batch path (`DatasetBatchSource`) augments on every thread: each image must
/// land in its own slot, once, and the batch must not depend on the thread count.
final class BatchSourceTests: XCTestCase {
    override func tearDown() { Threads.set(Threads.defaultCount) }

    /// Image i is the constant i + 1, so an unwritten slot reads 0 and a swapped one reads
    /// another constant. Flips, rotations, zooms and translations with reflect fill keep a
    /// constant image constant up to bilinear rounding (weights summing to 1 in float32: a
    /// few ulp of the value), and contrast scales about the image's own mean.
    static func dataset(pixels: [Float], count: Int, size: Int) -> ImageDataset {
        var dataset = ImageDataset(directory: URL(fileURLWithPath: "/dev/null"), classNames: ["a", "b"],
                                   files: (0..<count).map { "x/\($0).png" }, labels: (0..<count).map { $0 % 2 },
                                   height: size, width: size, pixels: pixels, storage: .float32, labelMode: .int,
                                   unreadable: [], batchSize: 8, shuffle: true, seed: 3)
        dataset.augmentation = AugmentationPipeline([.randomFlip(.horizontalAndVertical), .randomRotation(0.5), .randomZoom(0.3),
                                                     .randomTranslation(0.2, 0.2), .randomContrast(0.5)], seed: 9)
        return dataset
    }

    func testThreadedAugmentationKeepsSlotsAndIsThreadCountIndependent() throws {
        let count = 45, size = 12
        var pixels = [Float]()
        for i in 0..<count { pixels += [Float](repeating: Float(i + 1), count: size * size * 3) }
        let dataset = Self.dataset(pixels: pixels, count: count, size: size)
        let subset = Array(stride(from: 1, to: count, by: 2))   // a subset source, as data.limit or a fold gives
        let source = DatasetBatchSource(dataset, indices: subset)
        let positions = Array((0..<subset.count).reversed())
        for threads in [1, 2, 3] {
            Threads.set(threads)
            let batch = try source.images(positions, epoch: 2, augment: true, seed: 11)
            XCTAssertEqual(batch.shape, [positions.count, size, size, 3])
            let per = size * size * 3
            for (slot, position) in positions.enumerated() {
                let expected = Float(subset[position] + 1)
                let image = batch.scalars[(slot * per)..<((slot + 1) * per)]
                XCTAssert(image.allSatisfy { abs($0 - expected) <= 1e-4 * expected },
                          "\(threads) threads: slot \(slot) should hold image \(subset[position]): \(image.min()!)…\(image.max()!)")
            }
        }
        // Textured images: the same bits for any thread count, and draws that change with the epoch.
        var random = SplitMix64(seed: 5)
        let texturedPixels = (0..<pixels.count).map { _ in Float(random.next() % 256) }
        let textured = DatasetBatchSource(Self.dataset(pixels: texturedPixels, count: count, size: size), indices: subset)
        var batches = [Int: Tensor]()
        for threads in [1, 2, 3] {
            Threads.set(threads)
            batches[threads] = try textured.images(positions, epoch: 2, augment: true, seed: 11)
        }
        XCTAssertEqual(batches[2]!.scalars, batches[1]!.scalars, "2 threads give the bits of 1")
        XCTAssertEqual(batches[3]!.scalars, batches[1]!.scalars, "3 threads give the bits of 1")
        XCTAssertNotEqual(try textured.images(positions, epoch: 3, augment: true, seed: 11).scalars, batches[1]!.scalars)
    }
}
