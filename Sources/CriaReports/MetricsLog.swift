import CriaCore
import CriaTraining
import Foundation

/// The per-epoch logs of one trial: `metrics.csv`, `metrics.jsonl` and a TensorBoard event file.
///
/// The CSV and JSON-lines files are rewritten whole on every epoch (temporary
/// file, then rename), so a reader or a killed process never leaves a
/// half-written row. The event file is append-only, as TensorBoard expects; its
/// records are self-delimiting and CRC-checked, so a torn tail is detectable.
public final class MetricsLog {
    public static let csvFileName = "metrics.csv"
    public static let jsonlFileName = "metrics.jsonl"

    /// Keras's CSVLogger columns: `epoch`, then the log keys sorted alphabetically.
    public static let csvColumns = ["epoch", "accuracy", "keras_accuracy", "learning_rate", "loss", "phase", "seconds",
                                    "val_accuracy", "val_keras_accuracy", "val_loss"]

    /// The scalars sent to TensorBoard, by their Keras log key; the event tag is `epoch_<key>`.
    public static let eventKeys = ["loss", "accuracy", "keras_accuracy", "val_loss", "val_accuracy", "val_keras_accuracy",
                                   "learning_rate"]

    public let directory: URL
    public let eventsURL: URL
    public private(set) var records: [EpochRecord]
    private let events: FileHandle

    /// Opens the logs of `directory`, creating it. Records already in `metrics.jsonl`
    /// are kept and an existing event file is appended to, so a writer can be reopened.
    public init(directory: URL) throws {
        self.directory = directory
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        records = FileManager.default.fileExists(atPath: directory.appendingPathComponent(Self.jsonlFileName).path)
            ? try Self.read(directory: directory) : []
        let existing = (try? FileManager.default.contentsOfDirectory(atPath: directory.path))?
            .filter { $0.hasPrefix("events.out.tfevents.") }.sorted().first
        if let existing {
            eventsURL = directory.appendingPathComponent(existing)
            events = try FileHandle(forWritingTo: eventsURL)
            events.seekToEndOfFile()
        } else {
            let now = Date().timeIntervalSince1970
            eventsURL = directory.appendingPathComponent(TFEvents.fileName(wallTime: now))
            guard FileManager.default.createFile(atPath: eventsURL.path, contents: Data(TFEvents.record(TFEvents.fileVersionEvent(wallTime: now)))) else {
                throw CriaError("\(eventsURL.path): cannot create the event file")
            }
            events = try FileHandle(forWritingTo: eventsURL)
            events.seekToEndOfFile()
        }
    }

    deinit { try? events.close() }

    /// Adds one epoch: rewrites metrics.csv and metrics.jsonl atomically and appends its scalars to the event file.
    public func append(_ record: EpochRecord) throws {
        records.append(record)
        try AtomicFile.write(Self.csv(records), to: directory.appendingPathComponent(Self.csvFileName))
        try AtomicFile.write(Self.jsonl(records), to: directory.appendingPathComponent(Self.jsonlFileName))
        let now = Date().timeIntervalSince1970
        var bytes = [UInt8]()
        for key in Self.eventKeys {
            guard let value = record.metric(key) else { continue }
            bytes += TFEvents.record(TFEvents.scalarEvent(wallTime: now, step: Int64(record.epoch), tag: "epoch_" + key, value: Float(value)))
        }
        // One write(2) per epoch, straight to the kernel: FileHandle does not buffer, so TensorBoard sees it at once.
        do {
            try events.write(contentsOf: Data(bytes))
        } catch {
            throw CriaError("\(eventsURL.path): cannot append: \(error.localizedDescription)")
        }
    }

    /// The records of a trial directory, from `metrics.jsonl`.
    public static func read(directory: URL) throws -> [EpochRecord] {
        let url = directory.appendingPathComponent(jsonlFileName)
        guard let data = FileManager.default.contents(atPath: url.path) else { throw CriaError("\(url.path): cannot read") }
        var records = [EpochRecord]()
        for (index, line) in String(decoding: data, as: UTF8.self).split(separator: "\n").enumerated()
        where !line.trimmingCharacters(in: .whitespaces).isEmpty {
            records.append(try record(fromJSONLine: String(line), source: "\(url.path): line \(index + 1)"))
        }
        return records
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

    /// The JSON-lines schema. JSONDecoder rather than JSONSerialization, because the latter
    /// does not round-trip every double exactly on Linux (0.6931471805599453 came back one ulp off).
    private struct Line: Decodable {
        var epoch: Int
        var phase: String?
        var loss: Double
        var accuracy: Double
        var keras_accuracy: Double
        var val_loss: Double?
        var val_accuracy: Double?
        var val_keras_accuracy: Double?
        var learning_rate: Double
        var seconds: Double
    }

    static func record(fromJSONLine line: String, source: String) throws -> EpochRecord {
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
        let value: Line
        do {
            value = try decoder.decode(Line.self, from: Data(line.utf8))
        } catch let DecodingError.keyNotFound(key, _) {
            throw CriaError("\(source): missing \(key.stringValue)")
        } catch let DecodingError.typeMismatch(_, context), let DecodingError.valueNotFound(_, context) {
            throw CriaError("\(source): \(context.codingPath.map(\.stringValue).joined(separator: ".")) has the wrong type")
        } catch {
            throw CriaError("\(source): invalid JSON")
        }
        return EpochRecord(epoch: value.epoch, phase: value.phase ?? "", loss: value.loss, accuracy: value.accuracy,
                           kerasAccuracy: value.keras_accuracy, valLoss: value.val_loss, valAccuracy: value.val_accuracy,
                           valKerasAccuracy: value.val_keras_accuracy, learningRate: value.learning_rate, seconds: value.seconds)
    }

    /// Python csv's QUOTE_MINIMAL: quote a field holding the delimiter, a quote or a line break; double inner quotes.
    static func csvQuoted(_ field: String) -> String {
        guard field.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return field }
        return "\"" + field.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}
