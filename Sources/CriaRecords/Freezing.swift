/// Which layers of the base model train, in Keras's terms and under the config's names.
///
/// On disk (a phase of `summary.json`) it is written as the config key that sets it:
/// `{"trainable": "none"}`, `{"trainable": "all"}`, `{"fine_tune_at": 120}` or
/// `{"fine_tune_from": "block_13_expand"}`. Files written before this record was typed hold the
/// text of `description` (`"fine_tune_at=120"`); decoding reads both.
public enum Freezing: Hashable, Sendable {
    /// `trainable: none`, Keras's `base.trainable = False`: only the head trains.
    case baseFrozen
    /// `trainable: all`, `base.trainable = True`: everything trains.
    case all
    /// `fine_tune_at: k`: `base.layers[:k]` frozen, the rest trainable (the tutorial's `fine_tune_at`).
    case fineTuneAt(Int)
    /// `fine_tune_from: name`: trainable from the named base layer on.
    case fineTuneFrom(String)

    /// Whether any layer of the base trains.
    public var unfreezesBase: Bool { self != .baseFrozen }

    /// The first base layer that trains, when known without the model: `fine_tune_at`'s index, 0 for `all`.
    public var firstTrainableLayer: Int? {
        switch self {
        case .baseFrozen, .fineTuneFrom: return nil
        case .all: return 0
        case .fineTuneAt(let index): return index
        }
    }

    /// The config keys that set a phase's freezing; a phase gives at most one.
    public static let configKeys = ["fine_tune_at", "fine_tune_from", "trainable"]

    /// The config key that sets this freezing (`trainable`, `fine_tune_at`, `fine_tune_from`).
    public var configKey: String {
        switch self {
        case .baseFrozen, .all: return "trainable"
        case .fineTuneAt: return "fine_tune_at"
        case .fineTuneFrom: return "fine_tune_from"
        }
    }

    /// The key's value as the config writes it: `none`, `all`, `120`, `block_13_expand`.
    public var configValue: String {
        switch self {
        case .baseFrozen: return "none"
        case .all: return "all"
        case .fineTuneAt(let index): return String(index)
        case .fineTuneFrom(let name): return name
        }
    }

    /// `fine_tune_at=120`, for logs and tables (never parsed back, except from files written before the typed record).
    public var description: String { "\(configKey)=\(configValue)" }

    /// The text form files written before the typed record hold (`trainable=none`, `fine_tune_at=120`).
    public init?(legacyText text: String) {
        guard let equals = text.firstIndex(of: "=") else { return nil }
        let key = text[..<equals], value = String(text[text.index(after: equals)...])
        switch key {
        case "trainable" where value == "none": self = .baseFrozen
        case "trainable" where value == "all": self = .all
        case "fine_tune_at": guard let index = Int(value) else { return nil }; self = .fineTuneAt(index)
        case "fine_tune_from" where !value.isEmpty: self = .fineTuneFrom(value)
        default: return nil
        }
    }
}

extension Freezing: CustomStringConvertible {}

extension Freezing: Codable {
    private enum Key: String, CodingKey {
        case trainable
        case fineTuneAt = "fine_tune_at"
        case fineTuneFrom = "fine_tune_from"
    }

    public init(from decoder: Decoder) throws {
        if let single = try? decoder.singleValueContainer(), let text = try? single.decode(String.self) {
            guard let freezing = Freezing(legacyText: text) else {
                throw DecodingError.dataCorruptedError(in: single, debugDescription: "freezing \"\(text)\" is not trainable=none|all, fine_tune_at=N or fine_tune_from=NAME")
            }
            self = freezing
            return
        }
        let container = try decoder.container(keyedBy: Key.self)
        if let index = try container.decodeIfPresent(Int.self, forKey: .fineTuneAt) {
            self = .fineTuneAt(index)
        } else if let name = try container.decodeIfPresent(String.self, forKey: .fineTuneFrom) {
            self = .fineTuneFrom(name)
        } else {
            let value = try container.decode(String.self, forKey: .trainable)
            switch value {
            case "none": self = .baseFrozen
            case "all": self = .all
            default:
                throw DecodingError.dataCorruptedError(forKey: .trainable, in: container, debugDescription: "trainable must be none or all, got \(value)")
            }
        }
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: Key.self)
        switch self {
        case .baseFrozen: try container.encode("none", forKey: .trainable)
        case .all: try container.encode("all", forKey: .trainable)
        case .fineTuneAt(let index): try container.encode(index, forKey: .fineTuneAt)
        case .fineTuneFrom(let name): try container.encode(name, forKey: .fineTuneFrom)
        }
    }
}

/// How BatchNormalization layers that train behave, as in Keras.
public enum BatchNormMode: String, Codable, Sendable, CaseIterable {
    /// The Keras tutorial's `base(x, training=False)`: moving statistics always,
    /// while γ and β of unfrozen layers still train. The default.
    case inference
    /// `base(x, training=True)`: unfrozen BN layers normalise with batch
    /// statistics and update their moving averages (momentum 0.999).
    case train
}

/// What a phase does: Keras's `compile` + `fit`, or a closed-form linear probe of the head.
public enum PhaseType: String, Codable, CaseIterable, Sendable {
    case train
    case linearProbe = "linear_probe"
}
