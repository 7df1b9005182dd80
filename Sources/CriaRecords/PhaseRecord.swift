/// One phase as it ran: an entry of `phases` in a trial's `summary.json`.
public struct PhaseRecord: Equatable, Sendable {
    public var name: String
    public var type: PhaseType
    /// Planned epochs (0 for a linear probe).
    public var epochs: Int
    /// Epochs actually run (fewer after early stopping); nil in files that predate it.
    public var epochsRun: Int?
    /// The zero-based epoch the phase started at (Keras's `initial_epoch`).
    public var firstEpoch: Int
    public var freezing: Freezing
    /// Keras's optimizer name (`adam`, `sgd`, ...).
    public var optimizer: String
    /// The base learning rate of the phase (before any schedule).
    public var learningRate: Double?
    /// Nil in files that predate it.
    public var bnMode: BatchNormMode?

    public init(name: String, type: PhaseType = .train, epochs: Int, epochsRun: Int? = nil, firstEpoch: Int, freezing: Freezing,
                optimizer: String, learningRate: Double?, bnMode: BatchNormMode? = nil) {
        self.name = name
        self.type = type
        self.epochs = epochs
        self.epochsRun = epochsRun
        self.firstEpoch = firstEpoch
        self.freezing = freezing
        self.optimizer = optimizer
        self.learningRate = learningRate
        self.bnMode = bnMode
    }
}

/// Keys as in `summary.json`. Reading is lenient where older files leave a key out.
extension PhaseRecord: Codable {
    enum CodingKeys: String, CodingKey {
        case name, type, epochs
        case epochsRun = "epochs_run"
        case firstEpoch = "first_epoch"
        case freezing, optimizer
        case learningRate = "lr"
        case bnMode = "bn_mode"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decodeIfPresent(String.self, forKey: .name) ?? ""
        type = try c.decodeIfPresent(PhaseType.self, forKey: .type) ?? .train
        epochs = try c.decodeIfPresent(Int.self, forKey: .epochs) ?? 0
        epochsRun = try c.decodeIfPresent(Int.self, forKey: .epochsRun)
        firstEpoch = try c.decodeIfPresent(Int.self, forKey: .firstEpoch) ?? 0
        freezing = try c.decodeIfPresent(Freezing.self, forKey: .freezing) ?? .baseFrozen
        optimizer = try c.decodeIfPresent(String.self, forKey: .optimizer) ?? ""
        learningRate = try c.decodeIfPresent(Double.self, forKey: .learningRate)
        bnMode = try c.decodeIfPresent(BatchNormMode.self, forKey: .bnMode)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encode(type, forKey: .type)
        try c.encode(epochs, forKey: .epochs)
        try c.encode(epochsRun, forKey: .epochsRun)
        try c.encode(firstEpoch, forKey: .firstEpoch)
        try c.encode(freezing, forKey: .freezing)
        try c.encode(optimizer, forKey: .optimizer)
        try c.encode(learningRate, forKey: .learningRate)
        try c.encode(bnMode, forKey: .bnMode)
    }
}
