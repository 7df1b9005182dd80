import CriaCore
import CriaRecords

/// One phase of training: Keras's `compile` + `fit` with a freezing setting, or a
/// closed-form linear probe of the head. The experiment config's `phases` entries decode
/// into this type and the trainer runs it, so the two never drift apart.
public struct PhaseConfig: Equatable, Sendable {
    public var name: String
    public var type: PhaseType = .train
    public var epochs: Int = 1
    public var optimizer: OptimizerConfig = .adam(1e-3)
    public var schedule: LearningRateSchedule = .constant
    public var freezing: Freezing = .baseFrozen
    public var bnMode: BatchNormMode = .inference
    /// The config's default is `data.batch_size`, filled in when it is decoded.
    public var batchSize: Int = 32
    public var callbacks: [CallbackConfig] = []
    /// Ridge penalty of a linear_probe phase.
    public var lambda = 1.0

    public init(name: String) { self.name = name }

    public init(name: String, epochs: Int, optimizer: OptimizerConfig, freezing: Freezing) {
        self.name = name
        self.epochs = epochs
        self.optimizer = optimizer
        self.freezing = freezing
    }
}
