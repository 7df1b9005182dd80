import CriaCore
import Foundation

/// One row of a Keras `History`, plus Cria's extra columns: one line of a trial's
/// `metrics.jsonl` and one row of its `metrics.csv` (docs/records.md).
public struct EpochRecord: Equatable, Sendable {
    /// Zero-based, continuing across phases as Keras's `initial_epoch` does.
    public var epoch: Int
    /// The config phase's name (`frozen`, `fine_tune`, ...).
    public var phase: String
    public var loss: Double
    /// Correct accuracy (logit > 0, or argmax).
    public var accuracy: Double
    /// What Keras's `metrics=["accuracy"]` reports for this model (0.5 threshold on logits).
    public var kerasAccuracy: Double
    public var valLoss: Double?
    public var valAccuracy: Double?
    public var valKerasAccuracy: Double?
    public var learningRate: Double
    public var seconds: Double

    public init(epoch: Int, phase: String, loss: Double, accuracy: Double, kerasAccuracy: Double, valLoss: Double?,
                valAccuracy: Double?, valKerasAccuracy: Double?, learningRate: Double, seconds: Double) {
        self.epoch = epoch
        self.phase = phase
        self.loss = loss
        self.accuracy = accuracy
        self.kerasAccuracy = kerasAccuracy
        self.valLoss = valLoss
        self.valAccuracy = valAccuracy
        self.valKerasAccuracy = valKerasAccuracy
        self.learningRate = learningRate
        self.seconds = seconds
    }

    /// A metric by its Keras name (`val_loss`, `accuracy`, ...), for callbacks and sweeps.
    public func metric(_ name: String) -> Double? {
        switch name {
        case "loss": return loss
        case "accuracy": return accuracy
        case "keras_accuracy": return kerasAccuracy
        case "val_loss": return valLoss
        case "val_accuracy": return valAccuracy
        case "val_keras_accuracy": return valKerasAccuracy
        case "learning_rate", "lr": return learningRate
        default: return nil
        }
    }

    public static let metricNames = ["loss", "accuracy", "keras_accuracy", "val_loss", "val_accuracy", "val_keras_accuracy", "learning_rate"]
}

/// The keys are the Keras log keys, as in `metrics.jsonl`. A missing `phase` (files from
/// before phases were named) reads as "".
extension EpochRecord: Codable {
    enum CodingKeys: String, CodingKey {
        case epoch, phase, loss, accuracy
        case kerasAccuracy = "keras_accuracy"
        case valLoss = "val_loss"
        case valAccuracy = "val_accuracy"
        case valKerasAccuracy = "val_keras_accuracy"
        case learningRate = "learning_rate"
        case seconds
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        epoch = try c.decode(Int.self, forKey: .epoch)
        phase = try c.decodeIfPresent(String.self, forKey: .phase) ?? ""
        loss = try c.decode(Double.self, forKey: .loss)
        accuracy = try c.decode(Double.self, forKey: .accuracy)
        kerasAccuracy = try c.decode(Double.self, forKey: .kerasAccuracy)
        valLoss = try c.decodeIfPresent(Double.self, forKey: .valLoss)
        valAccuracy = try c.decodeIfPresent(Double.self, forKey: .valAccuracy)
        valKerasAccuracy = try c.decodeIfPresent(Double.self, forKey: .valKerasAccuracy)
        learningRate = try c.decode(Double.self, forKey: .learningRate)
        seconds = try c.decode(Double.self, forKey: .seconds)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(epoch, forKey: .epoch)
        try c.encode(phase, forKey: .phase)
        try c.encode(loss, forKey: .loss)
        try c.encode(accuracy, forKey: .accuracy)
        try c.encode(kerasAccuracy, forKey: .kerasAccuracy)
        try c.encode(valLoss, forKey: .valLoss)
        try c.encode(valAccuracy, forKey: .valAccuracy)
        try c.encode(valKerasAccuracy, forKey: .valKerasAccuracy)
        try c.encode(learningRate, forKey: .learningRate)
        try c.encode(seconds, forKey: .seconds)
    }
}

/// The JSON coders of the records. JSON has no NaN or infinity, so a diverged epoch's
/// numbers travel as the strings "NaN", "Infinity" and "-Infinity" (as pandas writes them).
/// JSONDecoder rather than JSONSerialization, because the latter does not round-trip every
/// double exactly on Linux (0.6931471805599453 came back one ulp off).
public enum RecordCoding {
    public static func decoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
        return decoder
    }

    /// Sorted keys and pretty printing, so the same record always gives the same bytes.
    public static func encoder(pretty: Bool = true) -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
        encoder.outputFormatting = pretty ? [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes] : [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }

    /// Decodes `data` read from `source` (a path, with a line when known); errors name the source and the key.
    public static func decode<T: Decodable>(_ type: T.Type, from data: Data, source: String) throws -> T {
        do {
            return try decoder().decode(type, from: data)
        } catch let DecodingError.keyNotFound(key, context) {
            throw CriaError("\(source): missing \(path(context.codingPath + [key]))")
        } catch let DecodingError.typeMismatch(_, context), let DecodingError.valueNotFound(_, context) {
            throw CriaError("\(source): \(path(context.codingPath)) has the wrong type")
        } catch let DecodingError.dataCorrupted(context) {
            throw CriaError("\(source): \(context.codingPath.isEmpty ? "invalid JSON" : "\(path(context.codingPath)): \(context.debugDescription)")")
        } catch {
            throw CriaError("\(source): invalid JSON")
        }
    }

    static func path(_ keys: [CodingKey]) -> String {
        var text = ""
        for key in keys {
            if let index = key.intValue { text += "[\(index)]" } else { text += text.isEmpty ? key.stringValue : ".\(key.stringValue)" }
        }
        return text
    }
}
