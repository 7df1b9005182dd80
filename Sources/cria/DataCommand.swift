import ArgumentParser
import Cria
import Foundation

struct DataCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "data",
        abstract: "List, check and convert image datasets exactly as Keras's image_dataset_from_directory reads them.",
        subcommands: [List.self, Check.self, ToTensor.self, Bench.self, Preview.self])

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the files of DIR (relative paths) in Keras's shuffled order, optionally one subset of the split.")

        @Argument(help: "A folder with one sub-folder per class.") var directory: String
        @Option(help: "Shuffle seed (numpy RandomState), as image_dataset_from_directory's seed.") var seed: UInt32?
        @Option(name: .customLong("validation-split"), help: "Fraction of files held out for validation.") var validationSplit: Double?
        @Option(help: "training or validation (needs --validation-split).") var subset: String?
        @Flag(name: .customLong("no-shuffle"), help: "Keep sorted order (shuffle=False).") var noShuffle = false
        @Flag(name: .customLong("labels"), help: "Print each file's class name after a tab.") var showLabels = false

        func run() throws {
            try reportingErrors {
                var options = DirectoryDatasetOptions()
                options.seed = seed
                options.shuffle = !noShuffle
                options.validationSplit = validationSplit
                options.subset = try subset.map(parseSubset)
                options.verbose = false
                if options.subset == .both { throw CriaError("data list prints one subset; use training or validation") }
                let index = try DirectoryDataset.fileLists(URL(fileURLWithPath: directory), options: options).training
                for (file, label) in zip(index.files, index.labels) {
                    print(showLabels ? "\(file)\t\(index.classNames[label])" : file)
                }
            }
        }
    }

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Decode every image of DIR; print class counts and any unreadable files (exit 1 if any).")

        @Argument(help: "A folder with one sub-folder per class.") var directory: String

        func run() throws {
            try reportingErrors {
                let url = URL(fileURLWithPath: directory)
                let index = try DirectoryIndex.index(directory: url, shuffle: false)
                // A tiny target size: only decodability matters here.
                let loaded = try ImageLoader.load(index, height: 1, width: 1, log: { _ in })
                print("found \(index.count) files belonging to \(index.classNames.count) classes")
                for (name, count) in zip(index.classNames, index.classCounts) { print("  \(name): \(count)") }
                if loaded.unreadable.isEmpty {
                    print("all \(index.count) images decode")
                } else {
                    print("\(loaded.unreadable.count) unreadable:")
                    for (file, reason) in loaded.unreadable { print("  \(file): \(reason)") }
                    throw ExitCode(1)
                }
            }
        }
    }

    struct ToTensor: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "tensor",
            abstract: "Decode and resize images as Keras does; write float32 NHWC in [0, 255] to a .npy file.")

        @Argument(help: "Image files (JPEG, PNG, BMP).") var images: [String]
        @Option(help: "Target size H or HxW.") var size: String
        @Option(help: "bilinear, nearest or area.") var interpolation: String = "bilinear"
        @Flag(name: .customLong("crop-to-aspect-ratio"), help: "Centre-crop to the target aspect ratio first.") var crop = false
        @Option(name: .shortAndLong, help: "Output .npy path.") var output: String

        func run() throws {
            try reportingErrors {
                let (height, width) = try parseSize(size)
                guard let method = Interpolation(rawValue: interpolation) else {
                    throw CriaError("unknown interpolation '\(interpolation)'; use bilinear, nearest or area")
                }
                // The dataset loader's path (all cores, reused decoders), over an explicit file list.
                let paths = images.map { URL(fileURLWithPath: $0).standardizedFileURL.path }
                let list = FileIndex(directory: URL(fileURLWithPath: "/"), classNames: [""], files: paths,
                                     labels: [Int](repeating: 0, count: paths.count))
                let loaded = try ImageLoader.load(list, height: height, width: width, interpolation: method,
                                                  cropToAspectRatio: crop, onBadImage: .fail, showProgress: false)
                let batch = Tensor(shape: [paths.count, height, width, 3], scalars: loaded.pixels)
                try NPY.write(batch, to: URL(fileURLWithPath: output))
                print("wrote \(output): float32 \(describeShape(batch.shape))")
            }
        }
    }
}

extension DataCommand {
    /// The in-process counterpart of iterating `image_dataset_from_directory` once:
    /// index the folder, decode and resize every image into memory. Benchmarks/compare.sh
    /// times Keras's side the same way (after `import tensorflow`).
    struct Bench: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Time loading DIR as image_dataset_from_directory does (decode + resize, all cores); median of rounds.")

        @Argument(help: "A folder with one sub-folder per class.") var directory: String
        @Option(help: "Target size H or HxW.") var size: String = "160"
        @Option(help: "Timed rounds (median reported).") var rounds: Int = 3
        @Option(help: "Threads (default: all cores or CRIA_THREADS).") var threads: Int?
        @Flag(help: "Print one JSON object.") var json = false

        func run() throws {
            try reportingErrors {
                let (height, width) = try parseSize(size)
                if let threads { Threads.set(threads) }
                var options = DirectoryDatasetOptions()
                options.imageSize = (height, width)
                options.shuffle = false
                options.verbose = false
                options.showProgress = false
                var times: [Double] = [], count = 0
                for _ in 0..<max(1, rounds) {
                    let started = Date()
                    let dataset = try DirectoryDataset.load(URL(fileURLWithPath: directory), options: options)
                    times.append(Date().timeIntervalSince(started))
                    count = dataset.count
                }
                let median = times.sorted()[times.count / 2]
                if json {
                    let record: JSONValue = ["engine": "cria", "data_images": .number(Double(count)), "data_seconds": .number(median),
                                             "data_img_s": .number(Double(count) / median), "threads": .number(Double(Threads.count))]
                    print(record.serialized(pretty: false))
                } else {
                    print(String(format: "%d images decoded and resized to %dx%d in %.3f s (%.0f images/s), median of %d, %d threads",
                                 count, height, width, median, Double(count) / median, times.count, Threads.count))
                }
            }
        }
    }
}

private func parseSubset(_ text: String) throws -> Subset {
    guard let subset = Subset(rawValue: text) else { throw CriaError("unknown subset '\(text)'; use training or validation") }
    return subset
}

/// "160" or "160x224" (height × width).
func parseSize(_ text: String) throws -> (Int, Int) {
    let parts = text.lowercased().split(separator: "x").map { Int($0) }
    if parts.count == 1, let side = parts[0], side > 0 { return (side, side) }
    if parts.count == 2, let h = parts[0], let w = parts[1], h > 0, w > 0 { return (h, w) }
    throw CriaError("size '\(text)' must be H or HxW with positive integers, e.g. 160 or 160x224")
}
