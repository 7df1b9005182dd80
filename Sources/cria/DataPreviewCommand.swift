import ArgumentParser
import Cria
import Foundation

extension DataCommand {
    /// A contact sheet of augmented training samples: the picture to look at before
    /// training, so that a wrong augmentation is seen before any training time is spent.
    ///
    /// It goes through training's own path: the config's data section is decoded by
    /// `TrialData` and the training subset's batch source draws the augmentations, so
    /// the cell in column k of row i is exactly the image training sees at position i
    /// in epoch k-1 (repeat 0, seed = the config's seed).
    struct Preview: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a PNG contact sheet of augmented training samples: one row per source image, the original first.",
            discussion: """
                DIR is a folder with one sub-folder per class; CONFIG is an experiment config, whose data, \
                augment and seed sections are used. Row i shows training image i (Keras's shuffled order, \
                training subset) and then its augmented draws for epochs 1, 2, ...: --count samples in all, \
                --per-row of them per row.
                """)

        @Argument(help: "A class-folder directory, or an experiment config (.yaml).") var source: String
        @Option(help: "Augmentation preset (e.g. flip+rotation, flip+zoom=0.2); default: the config's, or flip+rotation for a directory.")
        var augment: String?
        @Option(help: "Augmented samples in all.") var count: Int = 32
        @Option(name: .customLong("per-row"), help: "Augmented samples per row (each row also shows its original).") var perRow: Int = 8
        @Option(help: "Image size H or HxW for a directory (a config gives its own data.image_size).") var size: String = "160"
        @Option(help: "Seed for a directory (a config gives its own seed).") var seed: Int = 42
        @Option(name: .shortAndLong, help: "Output PNG path.") var output: String

        func run() throws {
            try reportingErrors {
                guard count > 0, perRow > 0 else { throw CriaError("--count and --per-row must be positive") }
                var config = try loadConfig()
                if let augment { config.augment = try AugmentSpec.preset(augment) }
                guard let pipeline = TrialRunner.augmentation(config.augment) else {
                    throw CriaError("\(source): no augmentation to preview (augment is none); give --augment, e.g. flip+rotation")
                }
                try pipeline.validate()
                guard config.data.source == .directory else {
                    throw CriaError("\(source): data.source is \(config.data.source.rawValue); preview reads image folders (data.source: directory)")
                }
                let data = try TrialData.load(config.data, seed: config.seed, verbose: false)
                let training = data.trainSource(augmentation: pipeline)
                let rows = min((count + perRow - 1) / perRow, training.count)
                guard rows > 0 else { throw CriaError("\(source): no training images") }
                var sheet: [[Tensor]] = []
                var drawn = 0
                for position in 0..<rows {
                    let samples = min(perRow, count - drawn)
                    drawn += samples
                    // The trainer is given the trial seed (config seed + repeat 0) and mixes it into the pipeline's.
                    var row = [try training.images([position], epoch: 0, augment: false, seed: UInt64(config.seed))]
                    for epoch in 0..<samples {
                        row.append(try training.images([position], epoch: epoch, augment: true, seed: UInt64(config.seed)))
                    }
                    sheet.append(row.map { Tensor(shape: Array($0.shape.dropFirst()), scalars: $0.scalars) })
                }
                let image = ContactSheet.compose(sheet)
                try PNGWriter.write(image, to: URL(fileURLWithPath: output))
                print("wrote \(output): \(rows) source image(s) × (original + \(min(perRow, count)) augmented), "
                      + "augment \(config.augment.preset ?? "from config"), \(image.shape[1])x\(image.shape[0]) px")
            }
        }

        private func loadConfig() throws -> ExperimentConfig {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: source, isDirectory: &isDirectory) else {
                throw CriaError("\(source): no such file or directory")
            }
            if !isDirectory.boolValue { return try ExperimentConfig.load(URL(fileURLWithPath: source)).config }
            var config = ExperimentConfig(name: "preview")
            config.data.directory = source
            let (height, width) = try parseSize(size)
            config.data.imageSize = [height, width]
            config.seed = seed
            config.augment = try AugmentSpec.preset(augment ?? "flip+rotation")
            return config
        }
    }
}

/// Lays H×W×3 images out in rows on a white sheet with a small gap; a cell is as large
/// as the largest image (a random crop is smaller than the original) and images sit at its top left.
enum ContactSheet {
    static let gap = 4

    static func compose(_ rows: [[Tensor]]) -> Tensor {
        let cellHeight = rows.flatMap { $0 }.map { $0.shape[0] }.max() ?? 1
        let cellWidth = rows.flatMap { $0 }.map { $0.shape[1] }.max() ?? 1
        let columns = rows.map(\.count).max() ?? 1
        let height = rows.count * (cellHeight + gap) + gap, width = columns * (cellWidth + gap) + gap
        var pixels = [Float](repeating: 255, count: height * width * 3)
        for (r, row) in rows.enumerated() {
            for (c, image) in row.enumerated() {
                let top = gap + r * (cellHeight + gap), left = gap + c * (cellWidth + gap)
                let h = image.shape[0], w = image.shape[1]
                for y in 0..<h {
                    let source = y * w * 3, destination = ((top + y) * width + left) * 3
                    for x in 0..<(w * 3) { pixels[destination + x] = image.scalars[source + x] }
                }
            }
        }
        return Tensor(shape: [height, width, 3], scalars: pixels)
    }
}
