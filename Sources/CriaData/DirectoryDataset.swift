import CriaCore
import Foundation

/// What to do with a file that has an image extension but does not decode.
public enum OnBadImage: String, Sendable {
    /// Skip it with one warning naming it (Keras would stop mid-epoch instead).
    case skip
    /// Throw the decoder's error.
    case fail
}

/// The arguments of `keras.utils.image_dataset_from_directory`, with Keras's defaults,
/// plus Cria's loading choices.
public struct DirectoryDatasetOptions: Sendable {
    public var labelMode: LabelMode = .int
    public var classNames: [String]?
    public var batchSize = 32
    public var imageSize: (height: Int, width: Int) = (256, 256)
    public var shuffle = true
    public var seed: UInt32?
    public var validationSplit: Double?
    public var subset: Subset?
    public var interpolation: Interpolation = .bilinear
    public var followLinks = false
    public var cropToAspectRatio = false

    public var onBadImage: OnBadImage = .skip
    public var storage: PixelStorage = .float32
    public var maxPixels = ImageDecoder.defaultMaxPixels
    /// `data.cache`: a directory of memory-mapped pixel caches (see `PixelCache`); nil: none.
    public var cacheDirectory: URL?
    /// `data.memory_limit` in bytes: above it pixels are streamed from a mapped file instead
    /// of held in memory; nil: `MemoryBudget.defaultFraction` of physical memory.
    public var memoryLimit: Int?
    /// Keras's `verbose`: "Found N files belonging to C classes." and the split counts.
    public var verbose = true
    /// A decoding progress bar on stderr (redrawn on a terminal, one final line otherwise).
    public var showProgress = true
    /// Where messages, warnings and the progress bar go.
    public var log: @Sendable (String) -> Void = { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }

    public init() {}
}

/// `image_dataset_from_directory` in memory.
public enum DirectoryDataset {
    /// The file lists Keras would use, without decoding: `subset == .both` gives both parts;
    /// otherwise the chosen subset (or everything) is `training` and `validation` is nil.
    public static func fileLists(_ directory: URL, options: DirectoryDatasetOptions) throws -> (training: FileIndex, validation: FileIndex?) {
        try check(options)
        let index = try DirectoryIndex.index(directory: directory, classNames: options.classNames,
                                             shuffle: options.shuffle, seed: options.seed, followLinks: options.followLinks)
        if options.verbose { options.log("Found \(index.count) files belonging to \(index.classNames.count) classes.") }
        if options.labelMode == .binary && index.classNames.count != 2 {
            throw CriaError("\(directory.path): label_mode binary needs exactly 2 classes, found \(index.classNames.count): \(index.classNames)")
        }
        guard let split = options.validationSplit else { return (index, nil) }
        let parts = try DirectoryIndex.split(index, validationSplit: split)
        switch options.subset {
        case .training?: return (parts.training, nil)
        case .validation?: return (parts.validation, nil)
        case .both?, nil: return (parts.training, parts.validation)
        }
    }

    /// Loads one dataset: `subset` must be training, validation or unset.
    public static func load(_ directory: URL, options: DirectoryDatasetOptions) throws -> ImageDataset {
        guard options.subset != .both else { throw CriaError("subset \"both\" returns two datasets; call loadSplit") }
        let lists = try fileLists(directory, options: options)
        let isValidation = options.subset == .validation
        let cache = try mappedPixels([lists.training], options: options)
        return try materialise(lists.training, options: options, shuffle: options.shuffle && !isValidation,
                               role: isValidation ? "validation" : "training", cache: cache)
    }

    /// `subset="both"`: the training set reshuffles each epoch, the validation set never does.
    public static func loadSplit(_ directory: URL, options: DirectoryDatasetOptions) throws -> (training: ImageDataset, validation: ImageDataset) {
        var options = options
        options.subset = .both
        let lists = try fileLists(directory, options: options)
        guard let validation = lists.validation else { throw CriaError("loadSplit needs validation_split") }
        // One cache file for both parts: every split of the same images shares it.
        let cache = try mappedPixels([lists.training, validation], options: options)
        return (try materialise(lists.training, options: options, shuffle: options.shuffle, role: "training", cache: cache),
                try materialise(validation, options: options, shuffle: false, role: "validation", cache: cache))
    }

    static func check(_ options: DirectoryDatasetOptions) throws {
        if let split = options.validationSplit, !(split > 0 && split < 1) {
            throw CriaError("validation_split must be between 0 and 1, got \(split)")
        }
        if (options.validationSplit != nil) != (options.subset != nil) {
            throw CriaError("subset and validation_split must be given together")
        }
        if options.validationSplit != nil && options.shuffle && options.seed == nil {
            throw CriaError("validation_split with shuffling needs a seed, so that training and validation do not overlap")
        }
        guard options.imageSize.height > 0, options.imageSize.width > 0 else {
            throw CriaError("image_size must be positive, got \(options.imageSize.height)x\(options.imageSize.width)")
        }
        guard options.batchSize > 0 else { throw CriaError("batch_size must be positive, got \(options.batchSize)") }
    }

    /// The mapped pixel file for these parts, when a cache is configured or the images do not
    /// fit `memoryLimit` (then a temporary file, unlinked at once); nil: decode into memory.
    public static func mappedPixels(_ parts: [FileIndex], options: DirectoryDatasetOptions) throws -> PixelCacheFile? {
        let count = parts.reduce(0) { $0 + $1.count }
        let needed = MemoryBudget.bytes(count: count, height: options.imageSize.height, width: options.imageSize.width, storage: options.storage)
        let limit = MemoryBudget.limit(options.memoryLimit)
        guard options.cacheDirectory != nil || needed > limit else { return nil }
        if options.cacheDirectory == nil && options.verbose {
            options.log("\(count) images need \(MemoryBudget.describe(needed)), above data.memory_limit \(MemoryBudget.describe(limit)): "
                        + "streaming them from a temporary mapped file (set data.cache to keep it for the next run).")
        }
        let settings = PixelCacheSettings(height: options.imageSize.height, width: options.imageSize.width, interpolation: options.interpolation,
                                          cropToAspectRatio: options.cropToAspectRatio, maxPixels: options.maxPixels)
        let paths = parts.flatMap { part in (0..<part.count).map { part.url($0).path } }
        return try PixelCache.open(paths: paths, directory: options.cacheDirectory, settings: settings,
                                   showProgress: options.showProgress && options.verbose, verbose: options.verbose, log: options.log)
    }

    static func materialise(_ index: FileIndex, options: DirectoryDatasetOptions, shuffle: Bool, role: String,
                            cache: PixelCacheFile? = nil) throws -> ImageDataset {
        if options.verbose { options.log("Using \(index.count) files for \(role).") }
        if let cache {
            // The same skip/fail handling and messages as ImageLoader, from the cache's record of failures.
            var files = [String](), labels = [Int](), slots = [Int](), unreadable = [(file: String, reason: String)]()
            for i in 0..<index.count {
                let path = index.url(i).path
                if let reason = cache.failures[path] {
                    if options.onBadImage == .fail { throw CriaError(reason) }
                    options.log("warning: skipping unreadable image \(index.files[i]): \(reason)")
                    unreadable.append((index.files[i], reason))
                } else if let slot = cache.slot(path) {
                    files.append(index.files[i]); labels.append(index.labels[i]); slots.append(slot)
                }
            }
            if !unreadable.isEmpty {
                options.log("found \(index.count) files, \(unreadable.count) unreadable: \(unreadable.map(\.file).joined(separator: ", "))")
            }
            return ImageDataset(directory: index.directory, classNames: index.classNames, files: files, labels: labels,
                                height: options.imageSize.height, width: options.imageSize.width, pixels: [],
                                storage: options.storage, labelMode: options.labelMode, unreadable: unreadable,
                                batchSize: options.batchSize, shuffle: shuffle,
                                seed: options.seed ?? UInt32.random(in: 0..<1_000_000), streamed: (cache, slots))
        }
        let loaded = try ImageLoader.load(index, height: options.imageSize.height, width: options.imageSize.width,
                                          interpolation: options.interpolation, cropToAspectRatio: options.cropToAspectRatio,
                                          onBadImage: options.onBadImage, maxPixels: options.maxPixels,
                                          showProgress: options.showProgress && options.verbose, log: options.log)
        return ImageDataset(directory: index.directory, classNames: index.classNames, files: loaded.files, labels: loaded.labels,
                            height: options.imageSize.height, width: options.imageSize.width, pixels: loaded.pixels,
                            storage: options.storage, labelMode: options.labelMode, unreadable: loaded.unreadable,
                            batchSize: options.batchSize, shuffle: shuffle,
                            seed: options.seed ?? UInt32.random(in: 0..<1_000_000))
    }
}

/// Decodes and resizes a file list in parallel, once.
public enum ImageLoader {
    public struct Loaded: Sendable {
        public var files: [String]
        public var labels: [Int]
        /// N × H × W × 3 float32 in [0, 255].
        public var pixels: [Float]
        public var unreadable: [(file: String, reason: String)]
    }

    public static func load(_ index: FileIndex, height: Int, width: Int, interpolation: Interpolation = .bilinear,
                            cropToAspectRatio: Bool = false, onBadImage: OnBadImage = .skip,
                            maxPixels: Int = ImageDecoder.defaultMaxPixels,
                            showProgress: Bool = true,
                            log: @Sendable (String) -> Void = { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }) throws -> Loaded {
        let n = index.count, size = height * width * 3
        var pixels = [Float](repeating: 0, count: n * size)
        var failures = [String?](repeating: nil, count: n)
        let progress = showProgress && n > 0 ? ProgressBar(total: n, label: "decoding") : nil
        pixels.withUnsafeMutableBufferPointer { pixelBuffer in
            failures.withUnsafeMutableBufferPointer { failureBuffer in
                let out = SendableBuffer(pixelBuffer), errors = SendableBuffer(failureBuffer)
                // Photographs differ in size, so workers take the next file when free; each
                // writes only its image's slot, so the result does not depend on scheduling.
                Threads.forEachItem(n, makeState: { DecodeWorkspace() }) { workspace, i in
                    do {
                        try workspace.decode(contentsOf: index.url(i), maxPixels: maxPixels)
                        Resize.resize(pixels: workspace.pixels, imageHeight: workspace.height, imageWidth: workspace.width,
                                      into: out.buffer.baseAddress! + i * size, height: height, width: width,
                                      method: interpolation, cropToAspectRatio: cropToAspectRatio)
                    } catch {
                        errors.buffer[i] = "\(error)"
                    }
                    progress?.advance()
                }
            }
        }
        progress?.finish()
        var kept = [Int](), unreadable = [(file: String, reason: String)]()
        for i in 0..<n {
            if let reason = failures[i] {
                if onBadImage == .fail { throw CriaError(reason) }
                log("warning: skipping unreadable image \(index.files[i]): \(reason)")
                unreadable.append((index.files[i], reason))
            } else {
                kept.append(i)
            }
        }
        if !unreadable.isEmpty {
            log("found \(n) files, \(unreadable.count) unreadable: \(unreadable.map(\.file).joined(separator: ", "))")
            var compact = [Float]()
            compact.reserveCapacity(kept.count * size)
            for i in kept { compact.append(contentsOf: pixels[(i * size)..<((i + 1) * size)]) }
            pixels = compact
        }
        return Loaded(files: kept.map { index.files[$0] }, labels: kept.map { index.labels[$0] },
                      pixels: pixels, unreadable: unreadable)
    }
}
