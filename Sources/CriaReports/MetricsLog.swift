import CriaCore
import CriaRecords
import Foundation

/// The per-epoch logs of one trial: `metrics.csv`, `metrics.jsonl`, and TensorBoard
/// event files in the layout Keras's `TensorBoard` callback writes: a `train/` and a
/// `validation/` run under the trial directory, each with `epoch_<metric>` scalars,
/// so TensorBoard overlays a trial's training and validation curves.
///
/// The CSV and JSON-lines files are rewritten whole on every epoch (temporary
/// file, then rename), so a reader or a killed process never leaves a
/// half-written row. The event files are append-only, as TensorBoard expects; their
/// records are self-delimiting and CRC-checked, so a torn tail is detectable.
public final class MetricsLog {
    public static let csvFileName = "metrics.csv"
    public static let jsonlFileName = EpochRecord.jsonlFileName

    /// Keras's CSVLogger columns: `epoch`, then the log keys sorted alphabetically.
    public static let csvColumns = ["epoch", "accuracy", "keras_accuracy", "learning_rate", "loss", "phase", "seconds",
                                    "val_accuracy", "val_keras_accuracy", "val_loss"]

    /// Keras's run names: `TensorBoard(log_dir)` writes `log_dir/train` and `log_dir/validation`.
    public static let trainRun = "train", validationRun = "validation"

    /// The Keras log keys sent to the `train/` run, in Keras's order (compiled metrics, then
    /// the learning rate its callback collects); the event tag is `epoch_<key>`.
    public static let trainEventKeys = ["loss", "accuracy", "keras_accuracy", "learning_rate"]
    /// The `val_` log keys sent to the `validation/` run; the tag drops the prefix (`epoch_loss`), as Keras does.
    public static let validationEventKeys = ["val_loss", "val_accuracy", "val_keras_accuracy"]
    /// The text summary in `train/` that marks where each phase starts (the fine-tune start among them).
    public static let phaseTag = "phase"

    public let directory: URL
    public private(set) var records: [EpochRecord]
    private let train: EventFileWriter
    private let validation: EventFileWriter

    public var trainEventsURL: URL { train.url }
    public var validationEventsURL: URL { validation.url }

    /// Opens the logs of `directory`, creating it. Records already in `metrics.jsonl`
    /// are kept and existing event files are appended to, so a writer can be reopened.
    public init(directory: URL) throws {
        self.directory = directory
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        records = FileManager.default.fileExists(atPath: directory.appendingPathComponent(Self.jsonlFileName).path)
            ? try Self.read(directory: directory) : []
        train = try EventFileWriter(directory: directory.appendingPathComponent(Self.trainRun))
        validation = try EventFileWriter(directory: directory.appendingPathComponent(Self.validationRun))
    }

    /// Adds one epoch: rewrites metrics.csv and metrics.jsonl atomically and appends its scalars to the event files.
    public func append(_ record: EpochRecord) throws {
        records.append(record)
        try AtomicFile.write(Self.csv(records), to: directory.appendingPathComponent(Self.csvFileName))
        try AtomicFile.write(Self.jsonl(records), to: directory.appendingPathComponent(Self.jsonlFileName))
        let now = Date().timeIntervalSince1970
        func scalars(_ keys: [String]) -> [TFEvents.SummaryValue] {
            keys.compactMap { key in
                record.metric(key).map { .scalar(tag: Self.eventTag(key), value: Float($0)) }
            }
        }
        let step = Int64(record.epoch)
        try train.append([TFEvents.summaryEvent(wallTime: now, step: step, values: scalars(Self.trainEventKeys))])
        let validationValues = scalars(Self.validationEventKeys)
        if !validationValues.isEmpty {
            try validation.append([TFEvents.summaryEvent(wallTime: now, step: step, values: validationValues)])
        }
    }

    /// Marks the start of a phase in the `train/` run: a text summary at its first epoch
    /// (TensorBoard's Text tab lists them by step, beside the curves' epochs).
    public func phaseStarted(epoch: Int, text: String) throws {
        try train.append([TFEvents.summaryEvent(wallTime: Date().timeIntervalSince1970, step: Int64(epoch),
                                                values: [.text(tag: Self.phaseTag, text: text)])])
    }

    /// `loss` → `epoch_loss`, `val_loss` → `epoch_loss` (in the validation run), as Keras names them.
    public static func eventTag(_ key: String) -> String {
        "epoch_" + (key.hasPrefix("val_") ? String(key.dropFirst(4)) : key)
    }

    /// The records of a trial directory, from `metrics.jsonl`.
    public static func read(directory: URL) throws -> [EpochRecord] {
        try EpochRecord.readJSONLines(directory.appendingPathComponent(jsonlFileName))
    }

    // MARK: Formats

    /// The whole CSV as Keras's CSVLogger writes it: Python's `csv.excel` dialect
    /// (comma, `\r\n` line ends, quoting only when needed), floats as Python's
    /// `repr`, and `NA` for a missing value (what CSVLogger writes for absent keys).
    public static func csv(_ records: [EpochRecord]) -> String {
        var text = csvColumns.joined(separator: ",") + "\r\n"
        for record in records {
            let fields: [String] = [
                String(record.epoch), PythonFloat.repr(record.accuracy), PythonFloat.repr(record.kerasAccuracy),
                PythonFloat.repr(record.learningRate), PythonFloat.repr(record.loss), csvQuoted(record.phase),
                PythonFloat.repr(record.seconds), record.valAccuracy.map(PythonFloat.repr) ?? "NA",
                record.valKerasAccuracy.map(PythonFloat.repr) ?? "NA", record.valLoss.map(PythonFloat.repr) ?? "NA",
            ]
            text += fields.joined(separator: ",") + "\r\n"
        }
        return text
    }

    /// One JSON object per line, keys as in the CSV. A missing value is `null`;
    /// a non-finite one is the string "NaN", "Infinity" or "-Infinity", since JSON has no such numbers.
    public static func jsonl(_ records: [EpochRecord]) -> String {
        records.map(jsonLine).joined()
    }

    public static func jsonLine(_ record: EpochRecord) -> String {
        func number(_ value: Double?) -> String {
            guard let value else { return "null" }
            if value.isNaN { return "\"NaN\"" }
            if value.isInfinite { return value < 0 ? "\"-Infinity\"" : "\"Infinity\"" }
            return PythonFloat.repr(value)
        }
        let fields = [
            "\"epoch\": \(record.epoch)", "\"accuracy\": \(number(record.accuracy))",
            "\"keras_accuracy\": \(number(record.kerasAccuracy))", "\"learning_rate\": \(number(record.learningRate))",
            "\"loss\": \(number(record.loss))", "\"phase\": \(JSONValue.string(record.phase).serialized())",
            "\"seconds\": \(number(record.seconds))", "\"val_accuracy\": \(number(record.valAccuracy))",
            "\"val_keras_accuracy\": \(number(record.valKerasAccuracy))", "\"val_loss\": \(number(record.valLoss))",
        ]
        return "{" + fields.joined(separator: ", ") + "}\n"
    }

    static func record(fromJSONLine line: String, source: String) throws -> EpochRecord {
        try RecordCoding.decode(EpochRecord.self, from: Data(line.utf8), source: source)
    }

    /// Python csv's QUOTE_MINIMAL: quote a field holding the delimiter, a quote or a line break; double inner quotes.
    static func csvQuoted(_ field: String) -> String {
        guard field.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return field }
        return "\"" + field.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}
