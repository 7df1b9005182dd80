import CZlib
import CriaCore
import Foundation

/// Fashion-MNIST from its IDX `.gz` files (Debian's dataset-fashion-mnist puts them in
/// /usr/share/datasets/fashion-mnist/): 28×28 grey images, expanded to RGB and resized,
/// so a MobileNetV2 pipeline can run on it unchanged.
public enum FashionMNIST {
    public static let classNames = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
    public static let defaultDirectory = URL(fileURLWithPath: "/usr/share/datasets/fashion-mnist")

    public enum Split: String, Sendable {
        case train, test
        var prefix: String { self == .train ? "train" : "t10k" }
    }

    public struct Options: Sendable {
        /// Keep only these classes (indices into `classNames`), relabelled 0..<k in this order.
        public var classes: [Int]?
        /// Binary "this class vs the rest": label 1 for the class, 0 otherwise; classes
        /// become ["not <name>", "<name>"]. Applied after `classes`.
        public var positiveClass: Int?
        /// Keep at most this many examples (the first ones, in file order, after filtering).
        public var limit: Int?
        public var imageSize: (height: Int, width: Int) = (28, 28)
        public var interpolation: Interpolation = .bilinear
        public var labelMode: LabelMode = .int
        public var batchSize = 32
        public var shuffle = true
        public var seed: UInt32 = 0
        public var storage: PixelStorage = .float32
        /// `data.memory_limit` in bytes: above it images are rendered from the IDX bytes on
        /// demand instead of held resized in memory; nil: the default share of physical memory.
        public var memoryLimit: Int?
        public init() {}
    }

    /// An IDX file (optionally gzipped): its dimensions and raw unsigned-byte payload.
    public static func readIDX(_ url: URL) throws -> (shape: [Int], bytes: [UInt8]) {
        var data: [UInt8]
        do { data = [UInt8](try Data(contentsOf: url)) } catch {
            throw CriaError("\(url.path): cannot read: \(error.localizedDescription)")
        }
        if data.count >= 2 && data[0] == 0x1f && data[1] == 0x8b { data = try gunzip(data, name: url.path) }
        guard data.count >= 4, data[0] == 0, data[1] == 0 else { throw CriaError("\(url.path): not an IDX file (bad magic)") }
        guard data[2] == 0x08 else { throw CriaError("\(url.path): IDX element type 0x\(String(data[2], radix: 16)) is not unsigned byte") }
        let rank = Int(data[3])
        guard rank >= 1, data.count >= 4 + 4 * rank else { throw CriaError("\(url.path): truncated IDX header") }
        let shape = (0..<rank).map { i in
            (0..<4).reduce(0) { $0 << 8 | Int(data[4 + 4 * i + $1]) }
        }
        let count = shape.reduce(1, *), start = 4 + 4 * rank
        guard data.count - start >= count else {
            throw CriaError("\(url.path): truncated IDX data: shape \(shape) needs \(count) bytes, found \(data.count - start)")
        }
        return (shape, Array(data[start..<(start + count)]))
    }

    public static func gunzip(_ data: [UInt8], name: String, maxSize: Int = 1 << 31) throws -> [UInt8] {
        var out: UnsafeMutablePointer<UInt8>?
        var size = 0
        var message = [CChar](repeating: 0, count: 200)
        let status = data.withUnsafeBufferPointer {
            cria_gunzip($0.baseAddress, $0.count, maxSize, &out, &size, &message, message.count)
        }
        guard status == 0, let out else { throw CriaError("\(name): cannot decompress: \(String(cString: message))") }
        defer { free(out) }
        return Array(UnsafeBufferPointer(start: out, count: size))
    }

    public static func load(split: Split, directory: URL = defaultDirectory, options: Options = Options()) throws -> ImageDataset {
        let images = try readIDX(directory.appendingPathComponent("\(split.prefix)-images-idx3-ubyte.gz"))
        let labels = try readIDX(directory.appendingPathComponent("\(split.prefix)-labels-idx1-ubyte.gz"))
        guard images.shape.count == 3, labels.shape.count == 1, images.shape[0] == labels.shape[0] else {
            throw CriaError("\(directory.path): image shape \(images.shape) and label shape \(labels.shape) do not pair up")
        }
        var names = classNames
        var selected = Array(0..<labels.shape[0])
        var label = labels.bytes.map(Int.init)
        if let classes = options.classes {
            guard !classes.isEmpty, classes.allSatisfy({ (0..<10).contains($0) }), Set(classes).count == classes.count else {
                throw CriaError("Fashion-MNIST classes \(classes) must be distinct indices 0...9")
            }
            selected = selected.filter { classes.contains(label[$0]) }
            for i in selected { label[i] = classes.firstIndex(of: label[i])! }
            names = classes.map { classNames[$0] }
        }
        if let positive = options.positiveClass {
            // After relabelling by `classes`, the positive class's label is its position there.
            let position: Int? = if let classes = options.classes { classes.firstIndex(of: positive) } else { (0..<10).contains(positive) ? positive : nil }
            guard let position else {
                throw CriaError("Fashion-MNIST positive class \(positive) is not among the selected classes")
            }
            for i in selected { label[i] = label[i] == position ? 1 : 0 }
            names = ["not \(classNames[positive])", classNames[positive]]
        }
        if let limit = options.limit { selected = Array(selected.prefix(max(0, limit))) }
        let (h, w) = options.imageSize
        let renderer = Renderer(bytes: images.bytes, imageHeight: images.shape[1], imageWidth: images.shape[2],
                                height: h, width: w, interpolation: options.interpolation)
        let needed = MemoryBudget.bytes(count: selected.count, height: h, width: w, storage: options.storage)
        // Over the budget the dataset keeps only the IDX bytes (784 per image) and renders each
        // image when a batch needs it: cheaper than reading 300 KB per image back from a cache.
        let streamed = needed > MemoryBudget.limit(options.memoryLimit)
        var pixels = [Float](repeating: 0, count: streamed ? 0 : selected.count * h * w * 3)
        if !streamed {
            pixels.withUnsafeMutableBufferPointer { buffer in
                let out = SendableBuffer(buffer)
                Threads.parallelFor(selected.count, minimumPerChunk: 64) { range in
                    for j in range { renderer.render(selected[j], into: out.buffer.baseAddress! + j * h * w * 3) }
                }
            }
        }
        if options.labelMode == .binary && names.count != 2 {
            throw CriaError("label_mode binary needs exactly 2 classes; set positiveClass or two classes")
        }
        return ImageDataset(directory: directory, classNames: names, files: selected.map { "\(split.prefix)/\($0)" },
                            labels: selected.map { label[$0] }, height: h, width: w, pixels: pixels, storage: options.storage,
                            labelMode: options.labelMode, unreadable: [], batchSize: options.batchSize,
                            shuffle: options.shuffle, seed: options.seed, streamed: streamed ? (renderer, selected) : nil)
    }

    /// One IDX image expanded to RGB and resized: the in-memory and the streamed path both call it.
    struct Renderer: PixelSource {
        let bytes: [UInt8]
        let imageHeight: Int
        let imageWidth: Int
        let height: Int
        let width: Int
        let interpolation: Interpolation

        func render(_ slot: Int, into destination: UnsafeMutablePointer<Float>) {
            let side = imageHeight * imageWidth
            var rgb = [UInt8](repeating: 0, count: side * 3)
            for p in 0..<side {
                let value = bytes[slot * side + p]
                rgb[3 * p] = value; rgb[3 * p + 1] = value; rgb[3 * p + 2] = value
            }
            let image = RGBImage(width: imageWidth, height: imageHeight, pixels: rgb)
            let resized = Resize.resize(image, height: height, width: width, method: interpolation)
            resized.scalars.withUnsafeBufferPointer { destination.update(from: $0.baseAddress!, count: $0.count) }
        }
    }
}
