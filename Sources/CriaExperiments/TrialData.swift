import CriaCore
import CriaData
import CriaTraining
import Foundation

/// A trial's decoded data: training and validation (and optionally test) images with
/// class names and counts. It depends only on the `data` section, so a sweep decodes
/// once and every trial with the same `data` section reuses it.
public struct TrialData {
    enum Images {
        case dataset(ImageDataset, indices: [Int]?)
        case loaded(ImageLoader.Loaded, height: Int, width: Int)

        var labels: [Int] {
            switch self {
            case .dataset(let dataset, let indices): return indices.map { $0.map { dataset.labels[$0] } } ?? dataset.labels
            case .loaded(let loaded, _, _): return loaded.labels
            }
        }

        func source(_ augmentation: AugmentationPipeline?) -> ImageBatchSource {
            switch self {
            case .dataset(var dataset, let indices):
                dataset.augmentation = augmentation
                let source = DatasetBatchSource(dataset, indices: indices)
                // Streamed pixels (data.cache, data.memory_limit): assembled ahead of the trainer.
                return dataset.isStreamed ? PrefetchingBatchSource(source) : source
            case .loaded(let loaded, let height, let width):
                return LoadedImagesSource(loaded, height: height, width: width, augmentation: augmentation)
            }
        }
    }

    public let classNames: [String]
    /// Where the images came from, for summaries.
    public let origin: String
    let training: Images
    let validation: Images
    let test: Images?

    public var trainCount: Int { training.labels.count }
    public var validationCount: Int { validation.labels.count }
    public var testCount: Int? { test?.labels.count }
    public var trainLabels: [Int] { training.labels }
    public var validationLabels: [Int] { validation.labels }

    public func classCounts(_ labels: [Int]) -> [String: Int] {
        var counts = Dictionary(uniqueKeysWithValues: classNames.map { ($0, 0) })
        for label in labels where classNames.indices.contains(label) { counts[classNames[label], default: 0] += 1 }
        return counts
    }

    public func trainSource(augmentation: AugmentationPipeline?) -> ImageBatchSource { training.source(augmentation) }
    public func validationSource() -> ImageBatchSource { validation.source(nil) }
    public func testSource() -> ImageBatchSource? { test?.source(nil) }

    /// Resolves `$VAR`/`${VAR}` and `~` in a configured path; relative paths are relative to the working directory.
    public static func resolvePath(_ path: String) -> URL {
        var text = path
        if text.hasPrefix("~") { text = NSHomeDirectory() + text.dropFirst() }
        let environment = ProcessInfo.processInfo.environment
        for (name, value) in environment.sorted(by: { $0.key.count > $1.key.count }) {
            text = text.replacingOccurrences(of: "${\(name)}", with: value).replacingOccurrences(of: "$\(name)", with: value)
        }
        return URL(fileURLWithPath: text)
    }

    /// The class-folder directory of a `directory` source: the config's, else CRIA_ALPACA_DIR.
    public static func directory(_ data: DataSpec) throws -> URL {
        if let directory = data.directory { return resolvePath(directory) }
        if let environment = ProcessInfo.processInfo.environment["CRIA_ALPACA_DIR"], !environment.isEmpty {
            return URL(fileURLWithPath: environment)
        }
        throw CriaError("data.directory: not set; give it in the config, with --set data.directory=DIR, or through CRIA_ALPACA_DIR")
    }

    public static func load(_ data: DataSpec, seed: Int, verbose: Bool = true) throws -> TrialData {
        let splitSeed = UInt32(truncatingIfNeeded: data.seed ?? seed)
        var options = DirectoryDatasetOptions()
        options.labelMode = .int
        options.classNames = data.classNames
        options.batchSize = data.batchSize
        options.imageSize = (data.imageSize[0], data.imageSize[1])
        options.seed = splitSeed
        options.interpolation = data.interpolation
        options.cropToAspectRatio = data.cropToAspectRatio
        options.onBadImage = data.onBadImage
        options.storage = data.storage
        options.cacheDirectory = data.cache.map(resolvePath)  // data.cache / data.memory_limit (PixelCache)
        options.memoryLimit = data.memoryLimit
        options.verbose = verbose
        options.showProgress = verbose
        switch data.source {
        case .directory:
            let directory = try self.directory(data)
            let test = try loadTest(data, options: options)
            if let limit = data.limit {
                // The first `limit` files of Keras's shuffled list, then Keras's split of those.
                var index = try DirectoryIndex.index(directory: directory, classNames: data.classNames, shuffle: true, seed: splitSeed)
                if verbose { options.log("Found \(index.count) files belonging to \(index.classNames.count) classes; keeping the first \(min(limit, index.count)) (data.limit).") }
                index = index.subset(0..<min(limit, index.count))
                let parts = try DirectoryIndex.split(index, validationSplit: data.validationSplit)
                func decode(_ part: FileIndex) throws -> Images {
                    .loaded(try ImageLoader.load(part, height: data.imageSize[0], width: data.imageSize[1], interpolation: data.interpolation,
                                                 cropToAspectRatio: data.cropToAspectRatio, onBadImage: data.onBadImage,
                                                 showProgress: false, log: options.log),
                            height: data.imageSize[0], width: data.imageSize[1])
                }
                return TrialData(classNames: index.classNames, origin: directory.path, training: try decode(parts.training),
                                 validation: try decode(parts.validation), test: test)
            }
            options.validationSplit = data.validationSplit
            let split = try DirectoryDataset.loadSplit(directory, options: options)
            return TrialData(classNames: split.training.classNames, origin: directory.path, training: .dataset(split.training, indices: nil),
                             validation: .dataset(split.validation, indices: nil), test: test)
        case .csv:
            let csv = resolvePath(data.csv ?? "")
            options.validationSplit = data.validationSplit
            options.subset = .training
            let training = try CSVDataset.load(csv, options: options)
            options.subset = .validation
            let validation = try CSVDataset.load(csv, options: options)
            return TrialData(classNames: training.classNames, origin: csv.path, training: .dataset(training, indices: nil),
                             validation: .dataset(validation, indices: nil), test: try loadTest(data, options: options))
        case .fashionMNIST:
            let (all, order, test) = try fashionMNIST(data, splitSeed: splitSeed)
            // Keras's split on a seeded shuffle of the positions: the last int(split · n) validate.
            let validationCount = Int(data.validationSplit * Double(order.count))
            guard validationCount > 0, validationCount < order.count else {
                throw CriaError("data.validation_split \(data.validationSplit) of \(order.count) Fashion-MNIST images leaves an empty part; raise data.limit")
            }
            let cut = order.count - validationCount
            if verbose {
                options.log("Fashion-MNIST: \(all.count) images (\(all.classNames.joined(separator: ", "))): \(cut) for training, \(validationCount) for validation.")
            }
            return TrialData(classNames: all.classNames, origin: all.directory.path, training: .dataset(all, indices: Array(order[..<cut])),
                             validation: .dataset(all, indices: Array(order[cut...])), test: test)
        }
    }

    /// The Fashion-MNIST training images of a config, the seeded shuffle of their positions
    /// (numpy's, as for a directory), and the test split when asked for.
    static func fashionMNIST(_ data: DataSpec, splitSeed: UInt32) throws -> (all: ImageDataset, order: [Int], test: Images?) {
        let directory = resolvePath(data.fashionMNIST.directory)
        var fashion = FashionMNIST.Options()
        fashion.classes = data.fashionMNIST.classes
        fashion.positiveClass = data.fashionMNIST.positiveClass
        fashion.limit = data.limit
        fashion.imageSize = (data.imageSize[0], data.imageSize[1])
        fashion.interpolation = data.interpolation
        fashion.batchSize = data.batchSize
        fashion.seed = splitSeed
        fashion.storage = data.storage
        fashion.memoryLimit = data.memoryLimit  // streams (renders on demand) above it; data.cache is not used here
        let all = try FashionMNIST.load(split: .train, directory: directory, options: fashion)
        var order = Array(0..<all.count)
        var random = NumpyRandomState(seed: splitSeed)
        random.shuffle(&order)
        var test: Images?
        if data.fashionMNIST.test {
            fashion.limit = data.fashionMNIST.testLimit
            test = .dataset(try FashionMNIST.load(split: .test, directory: directory, options: fashion), indices: nil)
        }
        return (all, order, test)
    }

    static func loadTest(_ data: DataSpec, options: DirectoryDatasetOptions) throws -> Images? {
        guard let path = data.testDirectory else { return nil }
        var options = options
        options.validationSplit = nil
        options.subset = nil
        options.shuffle = false
        return .dataset(try DirectoryDataset.load(resolvePath(path), options: options), indices: nil)
    }
}
