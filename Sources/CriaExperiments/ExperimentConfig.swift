import CriaCore
import CriaData
import CriaTraining
import Foundation

/// A validated experiment: every key of `Experiments/README.md` with its default filled in.
public struct ExperimentConfig: Equatable, Sendable {
    public var name: String
    /// Where `runs/<experiment>/...` goes.
    public var runsDirectory = "runs"
    public var data = DataSpec()
    public var model = ModelSpec()
    public var augment = AugmentSpec()
    /// The training seed of repeat 0 (head initialisation, batch order, augmentation, dropout); repeat r uses seed + r.
    public var seed = 42
    /// Threads for OpenBLAS and Cria's loops; nil uses CRIA_THREADS or every core.
    public var threads: Int?
    public var repeats = 1
    /// The phases, as the trainer runs them (`PhaseConfig`, CriaTraining).
    public var phases: [PhaseConfig] = []
    public var sweep: SweepSpec?

    public init(name: String) { self.name = name }
}

public enum DataSource: String, CaseIterable, Sendable {
    case directory
    case fashionMNIST = "fashion_mnist"
    case csv
}

/// `image_dataset_from_directory`'s arguments, plus the other sources.
public struct DataSpec: Equatable, Sendable {
    public var source: DataSource = .directory
    /// Class-folder directory (source directory); nil falls back to CRIA_ALPACA_DIR.
    public var directory: String?
    /// `path,label` file (source csv).
    public var csv: String?
    public var validationSplit = 0.2
    /// The split seed; nil means the experiment's `seed` (fixed across repeats, so all repeats share one validation set).
    public var seed: Int?
    public var imageSize = [160, 160]
    public var batchSize = 32
    public var interpolation: Interpolation = .bilinear
    public var cropToAspectRatio = false
    public var onBadImage: OnBadImage = .skip
    public var storage: PixelStorage = .float32
    public var classNames: [String]?
    /// At most this many images, taken from the front of Keras's shuffled file list before the split.
    public var limit: Int?
    /// k-fold cross-validation: each trial trains once per fold, holding that fold out
    /// (`validation_split` is then unused). See `Folds`.
    public var folds: Int?
    /// The held-out fold of this run (0-based); nil with `folds` set runs every fold.
    public var fold: Int?
    public var testDirectory: String?
    /// Directory of memory-mapped pixel caches (PixelCache); nil: none. Does not change results.
    public var cache: String?
    /// Bytes of decoded pixels held in memory before streaming; nil: a share of physical memory. Does not change results.
    public var memoryLimit: Int?
    public var fashionMNIST = FashionMNISTSpec()
}

public struct FashionMNISTSpec: Equatable, Sendable {
    public var directory = FashionMNIST.defaultDirectory.path
    /// Class indices kept (names are accepted in the YAML).
    public var classes: [Int]?
    /// "X vs not X": this class is label 1.
    public var positiveClass: Int?
    /// Also evaluate on the t10k split (its first `testLimit` images).
    public var test = false
    public var testLimit: Int?
}

public struct ModelSpec: Equatable, Sendable {
    public var weights = "Weights/dog_breed_mobilenetv2.h5"
    /// MobileNetV2 width multiplier for weights-only files (full model files carry their own).
    public var alpha = 1.0
    /// Nil: the data's image size.
    public var inputSize: [Int]?
    public var dropout = 0.2
    /// 1 gives one logit (binary, BinaryCrossentropy(from_logits=True)); N ≥ 2 gives N logits.
    public var classes = 1
}

/// Keras 3 augmentation layers, applied in this order: flip, rotation, zoom, translation, contrast, brightness, crop.
public struct AugmentSpec: Equatable, Sendable {
    public var flip: FlipMode?
    public var rotation = 0.0
    public var zoom = 0.0
    /// (height factor, width factor).
    public var translation = [0.0, 0.0]
    public var contrast = 0.0
    public var brightness = 0.0
    public var crop: [Int]?
    public var fillMode: FillMode = .reflect
    public var interpolation: AffineInterpolation = .bilinear
    public var fillValue = 0.0
    /// The preset name this came from (`flip+rotation`), for display only.
    public var preset: String?

    public init() {}

    /// The Keras layers, in the documented order.
    public var layers: [AugmentationLayer] {
        var layers: [AugmentationLayer] = []
        if let flip { layers.append(.randomFlip(flip)) }
        if rotation != 0 {
            layers.append(.randomRotation(rotation, fillMode: fillMode, interpolation: interpolation, fillValue: Float(fillValue)))
        }
        if zoom != 0 {
            layers.append(.randomZoom(zoom, fillMode: fillMode, interpolation: interpolation, fillValue: Float(fillValue)))
        }
        if translation.contains(where: { $0 != 0 }) {
            layers.append(.randomTranslation(translation[0], translation[1], fillMode: fillMode, interpolation: interpolation,
                                             fillValue: Float(fillValue)))
        }
        if contrast != 0 { layers.append(.randomContrast(contrast)) }
        if brightness != 0 { layers.append(.randomBrightness(brightness)) }
        if let crop { layers.append(.randomCrop(height: crop[0], width: crop[1])) }
        return layers
    }

    /// Named presets for sweeps (`augment: [none, flip, flip+rotation]`): `+`-joined parts,
    /// each optionally `=factor`. `flip` is RandomFlip("horizontal"); `rotation` (alias `rot`)
    /// defaults to the tutorial's 0.2; zoom, translation, contrast and brightness to 0.1.
    public static func preset(_ name: String) throws -> AugmentSpec {
        var spec = AugmentSpec()
        spec.preset = name
        guard name != "none" else { return spec }
        for part in name.split(separator: "+").map(String.init) {
            let pieces = part.split(separator: "=", maxSplits: 1).map(String.init)
            let factor = pieces.count == 2 ? Double(pieces[1]) : nil
            if pieces.count == 2 && factor == nil { throw CriaError("augmentation preset part \(part): the factor must be a number") }
            switch pieces[0] {
            case "flip", "hflip": spec.flip = .horizontal
            case "vflip": spec.flip = .vertical
            case "flip_both": spec.flip = .horizontalAndVertical
            case "rotation", "rot": spec.rotation = factor ?? 0.2
            case "zoom": spec.zoom = factor ?? 0.1
            case "translation", "shift": spec.translation = [factor ?? 0.1, factor ?? 0.1]
            case "contrast": spec.contrast = factor ?? 0.1
            case "brightness": spec.brightness = factor ?? 0.1
            default:
                let known = ["none", "flip", "vflip", "flip_both", "rotation", "rot", "zoom", "translation", "contrast", "brightness"]
                let suggestion = closest(pieces[0], among: known).map { " (did you mean \($0)?)" } ?? ""
                throw CriaError("unknown augmentation preset part \"\(pieces[0])\"\(suggestion); presets are +-joined parts of "
                    + known.joined(separator: ", ") + ", each optionally =factor")
            }
        }
        return spec
    }
}

public enum SweepMethod: String, CaseIterable, Sendable { case grid, random }
public enum SweepDirection: String, CaseIterable, Sendable { case max, min }

/// What to vary: a list of values (grid or random choice) or a distribution (random only).
public enum SweepValues: Equatable, Sendable {
    case list([ConfigNode])
    case uniform(low: Double, high: Double)
    case logUniform(low: Double, high: Double)
    case intUniform(low: Int, high: Int)
}

public struct SweepParameter: Equatable, Sendable {
    public var path: ConfigPath
    public var values: SweepValues
}

public struct SweepSpec: Equatable, Sendable {
    public var method: SweepMethod = .grid
    /// Random sweeps only: how many trials to draw.
    public var trials: Int?
    /// Seeds the random draws; nil uses the experiment's seed.
    public var seed: Int?
    public var parameters: [SweepParameter] = []
    /// A summary.json key to rank trials by.
    public var metric = "best_val_accuracy"
    public var direction: SweepDirection = .max

    /// The summary.json values a sweep ranks by: the better direction, and whether the value is
    /// measured on the validation set (TensorBoard's HParams dataset type).
    public static let rankable: [(name: String, direction: SweepDirection, validation: Bool)] = [
        ("best_val_accuracy", .max, true), ("best_val_loss", .min, true), ("final_val_accuracy", .max, true),
        ("final_val_loss", .min, true), ("final_accuracy", .max, false), ("frozen_phase_val_accuracy", .max, true),
        ("test_accuracy", .max, false), ("test_loss", .min, false), ("linear_probe_val_accuracy", .max, true),
    ]
    public static var metrics: [String] { rankable.map(\.name) }
}
