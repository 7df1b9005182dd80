import CriaCore
import CriaData
import Foundation

/// k-fold cross-validation over Keras's file order.
///
/// The n images are indexed as `image_dataset_from_directory(shuffle=True, seed=data.seed)`
/// orders them (classes sorted, files sorted, then numpy's seeded shuffle), so the folds are
/// the same in Cria and in a Keras script that lists the files the same way. Fold k (0-based)
/// holds the shuffled positions `k·n/K ..< (k+1)·n/K` (integer division); training is every
/// other position, in order. `validation_split` plays no part.
public enum Folds {
    /// The shuffled positions held out by fold `fold` of `folds` over `count` images.
    public static func heldOut(fold: Int, of folds: Int, count: Int) -> Range<Int> {
        precondition(folds >= 1 && (0..<folds).contains(fold))
        return (fold * count / folds)..<((fold + 1) * count / folds)
    }

    /// (training positions, validation positions) of one fold.
    public static func split(fold: Int, of folds: Int, count: Int) -> (training: [Int], validation: [Int]) {
        let held = heldOut(fold: fold, of: folds, count: count)
        return (Array(0..<held.lowerBound) + Array(held.upperBound..<count), Array(held))
    }
}

/// Every image of a `data` section, decoded once, from which each fold's training and
/// validation sets are selected without decoding again.
public struct FoldPool {
    let images: TrialData.Images
    /// Shuffled position → index into `images`; nil for a file that did not decode (skipped).
    let positions: [Int?]
    let classNames: [String]
    let origin: String
    let test: TrialData.Images?

    /// The number of files in Keras's shuffled list (after `data.limit`).
    public var count: Int { positions.count }

    public static func load(_ data: DataSpec, seed: Int, verbose: Bool = true) throws -> FoldPool {
        let splitSeed = UInt32(truncatingIfNeeded: data.seed ?? seed)
        let folds = data.folds ?? 1
        var pool: FoldPool
        switch data.source {
        case .directory:
            let directory = try TrialData.directory(data)
            var index = try DirectoryIndex.index(directory: directory, classNames: data.classNames, shuffle: true, seed: splitSeed)
            let log: @Sendable (String) -> Void = { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }
            if let limit = data.limit { index = index.subset(0..<min(limit, index.count)) }
            if verbose {
                log("Found \(index.count) files belonging to \(index.classNames.count) classes; \(folds)-fold cross-validation"
                    + (data.limit.map { " over the first \($0) (data.limit)" } ?? "") + ".")
            }
            let loaded = try ImageLoader.load(index, height: data.imageSize[0], width: data.imageSize[1], interpolation: data.interpolation,
                                              cropToAspectRatio: data.cropToAspectRatio, onBadImage: data.onBadImage,
                                              showProgress: verbose, log: log)
            // Skipped files leave holes: map each shuffled position to its decoded image, if any.
            var decoded = [String: Int]()
            for (i, file) in loaded.files.enumerated() { decoded[file] = i }
            var test: TrialData.Images?
            if data.testDirectory != nil {
                var options = DirectoryDatasetOptions()
                options.classNames = data.classNames
                options.batchSize = data.batchSize
                options.imageSize = (data.imageSize[0], data.imageSize[1])
                options.interpolation = data.interpolation
                options.cropToAspectRatio = data.cropToAspectRatio
                options.onBadImage = data.onBadImage
                options.storage = data.storage
                options.verbose = verbose
                options.showProgress = verbose
                test = try TrialData.loadTest(data, options: options)
            }
            pool = FoldPool(images: .loaded(loaded, height: data.imageSize[0], width: data.imageSize[1]),
                            positions: index.files.map { decoded[$0] }, classNames: index.classNames, origin: directory.path, test: test)
        case .fashionMNIST:
            // The same split seed and shuffle as the hold-out split, folded instead of cut.
            let (all, order, test) = try TrialData.fashionMNIST(data, splitSeed: splitSeed)
            pool = FoldPool(images: .dataset(all, indices: order), positions: order.indices.map { $0 }, classNames: all.classNames,
                            origin: all.directory.path, test: test)
            if verbose { FileHandle.standardError.write(Data("Fashion-MNIST: \(all.count) images, \(folds)-fold cross-validation.\n".utf8)) }
        case .csv:
            throw CriaError("data.folds: cross-validation is not supported for source csv")
        }
        guard pool.count >= folds else {
            throw CriaError("data.folds: \(folds) folds need at least \(folds) images, the data has \(pool.count)")
        }
        return pool
    }

    /// Fold `fold` of `folds`: that fold validates, the others train.
    public func trialData(fold: Int, of folds: Int) throws -> TrialData {
        guard (0..<folds).contains(fold) else { throw CriaError("data.fold: \(fold) is not one of 0..<\(folds)") }
        let parts = Folds.split(fold: fold, of: folds, count: count)
        let training = parts.training.compactMap { positions[$0] }, validation = parts.validation.compactMap { positions[$0] }
        guard !training.isEmpty, !validation.isEmpty else {
            throw CriaError("data.fold \(fold) of \(folds): no decodable images in its \(training.isEmpty ? "training" : "validation") part")
        }
        return TrialData(classNames: classNames, origin: origin, training: images.select(training),
                         validation: images.select(validation), test: test)
    }
}

extension TrialData.Images {
    /// The images at `indices` (into this set), in that order.
    func select(_ chosen: [Int]) -> TrialData.Images {
        switch self {
        case .dataset(let dataset, let indices):
            return .dataset(dataset, indices: indices.map { all in chosen.map { all[$0] } } ?? chosen)
        case .loaded(let loaded, let height, let width):
            let size = height * width * 3
            var part = loaded
            part.files = chosen.map { loaded.files[$0] }
            part.labels = chosen.map { loaded.labels[$0] }
            var pixels = [Float]()
            pixels.reserveCapacity(chosen.count * size)
            for i in chosen { pixels += loaded.pixels[(i * size)..<((i + 1) * size)] }
            part.pixels = pixels
            return .loaded(part, height: height, width: width)
        }
    }
}
