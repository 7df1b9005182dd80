import Foundation

/// The allowed values of a config key, checked by the decoder and shown in the reference.
public enum ConfigRange: Equatable, Sendable {
    case any
    case ints(ClosedRange<Int>)
    /// `open` excludes a bound (a learning rate must be above 0).
    case floats(min: Double?, max: Double?, openMin: Bool = false, openMax: Bool = false)
    case choices([String])
    /// A layer index of the loaded base model: 0 through its layer count (154 for Keras's MobileNetV2).
    case baseLayers
    /// A layer name of the loaded base model.
    case baseLayerName
}

/// One key of an experiment config: where it is, what it holds, its range, its default and what it means.
///
/// `ConfigKeys.all` is the one description of the config. The decoder takes each section's known
/// keys and each key's range from it, the resolved-config emitter writes its keys in its order (a
/// test checks that it writes every key), and the reference tables in `Experiments/README.md` are
/// generated from it (`cria config reference`; a test fails when the committed text is stale).
public struct ConfigKey: Sendable {
    /// The mapping the key lives in: "" (top level), `data`, `phases[]`, `phases[].schedule (cosine)`.
    public var section: String
    public var key: String
    /// The type as the reference shows it: int, float, bool, string, size, list, mapping, or the choices.
    public var type: String
    public var range: ConfigRange
    /// The default as the reference shows it.
    public var defaultText: String
    public var doc: String

    init(_ section: String, _ key: String, _ type: String, _ range: ConfigRange = .any, default defaultText: String, _ doc: String) {
        self.section = section
        self.key = key
        self.type = type
        self.range = range
        self.defaultText = defaultText
        self.doc = doc
    }

    /// `data.batch_size`, `phases[].lr`.
    public var path: String { section.isEmpty ? key : "\(section.split(separator: " ").first.map(String.init) ?? section).\(key)" }
}

public enum ConfigKeys {
    static let uint32 = 0...Int(UInt32.max)
    static let unit = ConfigRange.floats(min: 0, max: 1)
    static let unitOpenMax = ConfigRange.floats(min: 0, max: 1, openMax: true)
    static let positive = ConfigRange.floats(min: 0, max: nil, openMin: true)
    static let nonNegative = ConfigRange.floats(min: 0, max: nil)
    static let monitors = ConfigRange.choices(["loss", "accuracy", "keras_accuracy", "val_loss", "val_accuracy", "val_keras_accuracy", "learning_rate"])
    static let modes = ConfigRange.choices(["auto", "min", "max"])

    // The order is the order of `config.resolved.yaml` and of the reference tables.
    public static let all: [ConfigKey] = [
        .init("", "experiment", "mapping", default: "", "`name` and `runs_dir`, below"),
        .init("experiment", "name", "string", default: "the file name without `.yaml`", "`alpaca`: the `runs/<name>/` folder"),
        .init("experiment", "runs_dir", "string", default: "`runs`", "where experiment folders go (not part of the config hash)"),
        .init("", "seed", "int", .ints(uint32), default: "`42`", "training seed of repeat 0"),
        .init("", "threads", "int", .ints(1...1024), default: "`CRIA_THREADS`, else every core", "OpenBLAS and Cria threads; results are bit-identical for a given count"),
        .init("", "repeats", "int", .ints(1...1000), default: "`1`", "run each trial with seeds `seed`, `seed+1`, ..."),
        .init("", "data", "mapping", default: "", "the dataset, below"),
        .init("", "model", "mapping", default: "", "the model, below"),
        .init("", "augment", "mapping or preset", default: "none", "training-time augmentation, below"),
        .init("", "phases", "list", default: "— (required)", "the training phases, below"),
        .init("", "sweep", "mapping", default: "none", "what `cria sweep` varies, below"),
        .init("", "cria", "mapping", default: "—", "`version`, `git_commit`: written into `config.resolved.yaml`; informational, ignored on input"),
        .init("cria", "version", "string", default: "—", "the Cria version that wrote a resolved config"),
        .init("cria", "git_commit", "string", default: "—", "its git commit"),

        .init("data", "source", "choice", .choices(["directory", "fashion_mnist", "csv"]), default: "`directory`", "class folders, Debian's Fashion-MNIST, or a `path,label` CSV"),
        .init("data", "directory", "string", default: "`$CRIA_ALPACA_DIR`", "class-folder root; `$VAR`, `${VAR}` and `~` are expanded, relative paths are from the working directory"),
        .init("data", "csv", "string", default: "— (required for `csv`)", "`data/labels.csv`; paths inside relative to the CSV"),
        .init("data", "validation_split", "float", .floats(min: 0, max: 1, openMin: true, openMax: true), default: "`0.2`", "the last `int(split · n)` of Keras's shuffled list validate; unused when `folds` is set"),
        .init("data", "seed", "int", .ints(uint32), default: "the top-level `seed`", "`42`: Keras's shuffle/split seed (numpy RandomState)"),
        .init("data", "image_size", "size", .ints(1...4096), default: "`[160, 160]`", "`tf.image.resize` target"),
        .init("data", "batch_size", "int", .ints(1...65536), default: "`32`", "also each phase's default"),
        .init("data", "interpolation", "choice", .choices(["bilinear", "nearest", "area"]), default: "`bilinear`", "resize method"),
        .init("data", "crop_to_aspect_ratio", "bool", default: "`false`", "as Keras"),
        .init("data", "on_bad_image", "choice", .choices(["skip", "fail"]), default: "`skip`", "skip undecodable files with a warning, or stop"),
        .init("data", "storage", "choice", .choices(["float32", "uint8"]), default: "`float32`", "uint8 holds 4× less memory, within 0.5 grey level (results differ slightly from Keras's; prefer `cache` for size)"),
        .init("data", "class_names", "list of strings", default: "sorted folder names", "`[not alpaca, alpaca]` fixes the label order"),
        .init("data", "limit", "int", .ints(2...Int.max), default: "none", "keep the first N images of Keras's shuffled list, then split them (directory); the first N after class filtering (Fashion-MNIST)"),
        .init("data", "folds", "int", .ints(2...100_000), default: "none", "k-fold cross-validation: every trial trains K times, once per held-out fold (below)"),
        .init("data", "fold", "int", .ints(0...100_000), default: "every fold", "run only this held-out fold, below `folds` (each run's `config.resolved.yaml` names its own)"),
        .init("data", "test_directory", "string", default: "none", "a class-folder test set evaluated after training; its metrics go to `summary.json` `test`"),
        .init("data", "cache", "string", default: "none", "`.cache/pixels`: a directory of memory-mapped pixel caches keyed by (path, size, mtime, resize settings), reused by later runs, shards and splits; damaged files are rebuilt with a one-line notice. Not used for Fashion-MNIST or `limit` subsets. Not part of the config hash"),
        .init("data", "memory_limit", "size (`8GB`, `512MiB`, bytes)", default: "a quarter of physical memory", "decoded pixels above it are streamed (mapped file or rendered on demand, batches prefetched) instead of held in memory; results are identical. Not part of the config hash"),
        .init("data", "fashion_mnist", "mapping", default: "", "the Fashion-MNIST source, below"),
        .init("data.fashion_mnist", "directory", "string", default: "`/usr/share/datasets/fashion-mnist`", "IDX `.gz` files"),
        .init("data.fashion_mnist", "classes", "list of index or name", default: "all 10", "`[Sandal, Sneaker, Ankle boot]`, relabelled in this order"),
        .init("data.fashion_mnist", "positive_class", "index or name", default: "none", "`Sneaker`: binary \"Sneaker vs not\""),
        .init("data.fashion_mnist", "test", "bool", default: "`false`", "also evaluate on the t10k split"),
        .init("data.fashion_mnist", "test_limit", "int", .ints(1...Int.max), default: "all", "first N test images"),

        .init("model", "weights", "string", default: "`Weights/dog_breed_mobilenetv2.h5`", "the MobileNetV2 base is taken from it: a transfer model's nested base, a flat MobileNetV2 (cut at `out_relu`), or a weights-only file with `alpha`"),
        .init("model", "alpha", "choice", .choices(["0.35", "0.5", "0.75", "1.0", "1.3", "1.4"]), default: "`1.0`", "width multiplier, for weights-only files"),
        .init("model", "input_size", "size", .ints(1...4096), default: "`data.image_size` (or `augment.crop`)", "must equal it"),
        .init("model", "head", "mapping", default: "", "the classifier head, below"),
        .init("model.head", "dropout", "float", unitOpenMax, default: "`0.2`", "Dropout before the Dense head"),
        .init("model.head", "classes", "int", .ints(1...100_000), default: "`1`", "1: one logit, `BinaryCrossentropy(from_logits=True)`, needs 2 classes; N ≥ 2: N logits, sparse categorical cross-entropy from logits"),

        .init("augment", "preset", "string", default: "none", "start from a preset, then the keys below adjust it"),
        .init("augment", "flip", "choice", .choices(["none", "horizontal", "vertical", "horizontal_and_vertical"]), default: "`none`", "`RandomFlip(mode)`"),
        .init("augment", "rotation", "float", unit, default: "`0`", "`RandomRotation(0.2)`: ±0.2 of a full turn"),
        .init("augment", "zoom", "float", unitOpenMax, default: "`0`", "`RandomZoom(f)`"),
        .init("augment", "translation", "float or `[h, w]`", unit, default: "`[0, 0]`", "`RandomTranslation(h, w)`; one number is both factors"),
        .init("augment", "contrast", "float", unit, default: "`0`", "`RandomContrast(f)` (Keras 3 only increases contrast)"),
        .init("augment", "brightness", "float", unit, default: "`0`", "`RandomBrightness(f)` over [0, 255]"),
        .init("augment", "crop", "size", .ints(1...4096), default: "none", "`RandomCrop(h, w)`; the model input becomes this size"),
        .init("augment", "fill_mode", "choice", .choices(["reflect", "constant", "nearest", "wrap"]), default: "`reflect`", "for rotation, zoom, translation"),
        .init("augment", "interpolation", "choice", .choices(["bilinear", "nearest"]), default: "`bilinear`", "for rotation, zoom, translation"),
        .init("augment", "fill_value", "float", default: "`0`", "with `fill_mode: constant`"),

        .init("phases[]", "name", "string", default: "`phase_<i+1>`", "`fine_tune`; unique"),
        .init("phases[]", "type", "choice", .choices(["train", "linear_probe"]), default: "`train`", "`linear_probe`: closed-form ridge regression on the pooled features, written into the head (no epochs)"),
        .init("phases[]", "epochs", "int", .ints(0...100_000), default: "`1` (`0` for `linear_probe`)", "Keras's `fit(epochs=)`, numbered on from the previous phase"),
        .init("phases[]", "optimizer", "choice or mapping", .choices(["adam", "adamw", "sgd", "rmsprop"]), default: "`adam`", "`{name: sgd, momentum: 0.9, nesterov: true}`"),
        .init("phases[]", "lr", "float", .floats(min: 0, max: 10, openMin: true), default: "`1e-3`", "learning rate"),
        .init("phases[]", "schedule", "`constant` or a mapping", default: "`constant`", "the learning rate over the phase's optimizer steps, below"),
        .init("phases[]", "trainable", "choice", .choices(["none", "all"]), default: "`none`", "`base.trainable = False` / `True`"),
        .init("phases[]", "fine_tune_at", "int or `none`", .baseLayers, default: "—", "`120`: `base.layers[:120]` frozen (`none` = frozen); at most the base's layer count"),
        .init("phases[]", "fine_tune_from", "string", .baseLayerName, default: "—", "`block_13_expand`: trainable from that base layer on"),
        .init("phases[]", "bn_mode", "choice", .choices(["inference", "train"]), default: "`inference`", "the tutorial's `base(x, training=False)`; `train` uses batch statistics in unfrozen BN layers"),
        .init("phases[]", "batch_size", "int", .ints(1...65536), default: "`data.batch_size`", "batch size of this phase"),
        .init("phases[]", "callbacks", "list", default: "`[]`", "Keras callbacks, below"),
        .init("phases[]", "lambda", "float", positive, default: "`1.0`", "ridge penalty of a `linear_probe` phase"),

        .init("phases[].optimizer", "name", "choice", .choices(["adam", "adamw", "sgd", "rmsprop"]), default: "`adam`", "Keras's optimizer"),
        .init("phases[].optimizer", "beta_1", "float", unitOpenMax, default: "`0.9`", "Adam, AdamW"),
        .init("phases[].optimizer", "beta_2", "float", unitOpenMax, default: "`0.999`", "Adam, AdamW"),
        .init("phases[].optimizer", "epsilon", "float", positive, default: "`1e-7`", "Keras 3's default"),
        .init("phases[].optimizer", "momentum", "float", unitOpenMax, default: "`0`", "SGD"),
        .init("phases[].optimizer", "nesterov", "bool", default: "`false`", "SGD"),
        .init("phases[].optimizer", "rho", "float", unit, default: "`0.9`", "RMSprop"),
        .init("phases[].optimizer", "weight_decay", "float", nonNegative, default: "`0.004`", "AdamW"),

        .init("phases[].schedule (constant)", "name", "`constant`", default: "—", "the base rate throughout"),
        .init("phases[].schedule (cosine)", "name", "`cosine`", default: "—", "Keras's `CosineDecay`"),
        .init("phases[].schedule (cosine)", "decay_steps", "int", .ints(1...Int.max), default: "— (required)", "steps over which the rate decays"),
        .init("phases[].schedule (cosine)", "alpha", "float", unit, default: "`0`", "the final rate as a fraction of the base"),
        .init("phases[].schedule (cosine)", "warmup_steps", "int", .ints(0...Int.max), default: "`0`", "linear warm-up steps before the decay"),
        .init("phases[].schedule (cosine)", "warmup_from", "float", nonNegative, default: "`0`", "the rate the warm-up starts from"),
        .init("phases[].schedule (exponential)", "name", "`exponential`", default: "—", "Keras's `ExponentialDecay`"),
        .init("phases[].schedule (exponential)", "decay_steps", "int", .ints(1...Int.max), default: "— (required)", "steps per decay"),
        .init("phases[].schedule (exponential)", "decay_rate", "float", positive, default: "— (required)", "the factor per `decay_steps`"),
        .init("phases[].schedule (exponential)", "staircase", "bool", default: "`false`", "decay in whole steps"),
        .init("phases[].schedule (step)", "name", "`step`", default: "—", "Keras's `PiecewiseConstantDecay`"),
        .init("phases[].schedule (step)", "boundaries", "list of int", .ints(0...Int.max), default: "— (required)", "step counts"),
        .init("phases[].schedule (step)", "values", "list of float", positive, default: "— (required)", "one more rate than boundaries"),

        .init("phases[].callbacks[] (early_stopping)", "type", "`early_stopping`", default: "—", "Keras's `EarlyStopping`"),
        .init("phases[].callbacks[] (early_stopping)", "monitor", "choice", monitors, default: "`val_loss`", "the metric watched"),
        .init("phases[].callbacks[] (early_stopping)", "min_delta", "float", default: "`0`", "smallest change that counts as an improvement"),
        .init("phases[].callbacks[] (early_stopping)", "patience", "int", .ints(0...Int.max), default: "`0`", "epochs without improvement before stopping"),
        .init("phases[].callbacks[] (early_stopping)", "mode", "choice", modes, default: "`auto`", "`auto`: max for accuracies, else min"),
        .init("phases[].callbacks[] (early_stopping)", "restore_best_weights", "bool", default: "`false`", "end with the best epoch's weights"),
        .init("phases[].callbacks[] (reduce_lr_on_plateau)", "type", "`reduce_lr_on_plateau`", default: "—", "Keras's `ReduceLROnPlateau`"),
        .init("phases[].callbacks[] (reduce_lr_on_plateau)", "monitor", "choice", monitors, default: "`val_loss`", "the metric watched"),
        .init("phases[].callbacks[] (reduce_lr_on_plateau)", "factor", "float", .floats(min: 0, max: 1, openMin: true, openMax: true), default: "`0.1`", "the rate is multiplied by it"),
        .init("phases[].callbacks[] (reduce_lr_on_plateau)", "patience", "int", .ints(0...Int.max), default: "`10`", "epochs without improvement before reducing"),
        .init("phases[].callbacks[] (reduce_lr_on_plateau)", "min_delta", "float", default: "`1e-4`", "smallest change that counts as an improvement"),
        .init("phases[].callbacks[] (reduce_lr_on_plateau)", "cooldown", "int", .ints(0...Int.max), default: "`0`", "epochs to wait after a reduction"),
        .init("phases[].callbacks[] (reduce_lr_on_plateau)", "min_lr", "float", nonNegative, default: "`0`", "the lowest rate"),
        .init("phases[].callbacks[] (reduce_lr_on_plateau)", "mode", "choice", modes, default: "`auto`", "`auto`: max for accuracies, else min"),
        .init("phases[].callbacks[] (model_checkpoint)", "type", "`model_checkpoint`", default: "—", "Keras's `ModelCheckpoint`"),
        .init("phases[].callbacks[] (model_checkpoint)", "path", "string", default: "`checkpoint.h5`", "relative to the trial directory"),
        .init("phases[].callbacks[] (model_checkpoint)", "monitor", "choice", monitors, default: "`val_loss`", "the metric watched"),
        .init("phases[].callbacks[] (model_checkpoint)", "save_best_only", "bool", default: "`false`", "write only when the monitored metric improves"),
        .init("phases[].callbacks[] (model_checkpoint)", "mode", "choice", modes, default: "`auto`", "`auto`: max for accuracies, else min"),

        .init("sweep", "method", "choice", .choices(["grid", "random"]), default: "`grid`", "grid: every combination, first key outermost (`itertools.product`); random: `trials` draws"),
        .init("sweep", "trials", "int", .ints(1...1_000_000), default: "— (required for random)", "`20`"),
        .init("sweep", "seed", "int", .ints(uint32), default: "the top-level `seed`", "seeds the random draws"),
        .init("sweep", "parameters", "mapping: key path → values", default: "— (required)", "see below"),
        .init("sweep", "metric", "choice", .choices(["best_val_accuracy", "best_val_loss", "final_val_accuracy", "final_val_loss", "final_accuracy",
                                                      "frozen_phase_val_accuracy", "test_accuracy", "test_loss", "linear_probe_val_accuracy"]),
              default: "`best_val_accuracy`", "the `summary.json` value trials are ranked by"),
        .init("sweep", "direction", "choice", .choices(["max", "min"]), default: "`min` for losses, else `max`", ""),
    ]

    /// The keys of one section, in order (`MapReader`'s known keys).
    public static func keys(in section: String) -> [String] {
        all.filter { $0.section == section }.map(\.key)
    }

    /// The entry of `key` in `section`; a missing entry is a programming error caught by the tests.
    public static func entry(_ section: String, _ key: String) -> ConfigKey {
        guard let entry = all.first(where: { $0.section == section && $0.key == key }) else {
            preconditionFailure("config key \(section).\(key) is not in ConfigKeys.all")
        }
        return entry
    }

    /// A mapping of `section` with its entries in the table's order: the resolved-config emitter
    /// writes through this, so it writes only keys the table has, in the reference's order.
    static func ordered(_ section: String, _ entries: [(String, ConfigNode)]) -> ConfigNode {
        let order = keys(in: section)
        for (key, _) in entries where !order.contains(key) { preconditionFailure("the emitter writes \(section).\(key), which is not in ConfigKeys.all") }
        return .map(entries.sorted { order.firstIndex(of: $0.0)! < order.firstIndex(of: $1.0)! })
    }

    /// The sections in table order.
    public static var sections: [String] {
        var seen = [String]()
        for key in all where !seen.contains(key.section) { seen.append(key.section) }
        return seen
    }
}
