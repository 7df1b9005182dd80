import CriaCore
import CriaData
import CriaKerasIO
import CriaModel
import CriaReports
import CriaTraining
import Foundation

/// Runs one trial into its directory. Files appear in this order, each written
/// atomically: config.resolved.yaml, the metrics logs (every epoch), curves.svg,
/// model.h5, and summary.json last, so a summary means the trial finished.
public final class TrialRunner {
    public var criaVersion: String
    /// Prints dataset messages and per-epoch progress on stderr.
    public var verbose: Bool
    /// Draws per-epoch progress (the lead's Keras-style ConsoleReporter by default).
    public var progress: TrainingObserver?

    private var cachedData: (spec: DataSpec, seed: Int, data: TrialData)?
    private var cachedPool: (spec: DataSpec, seed: Int, pool: FoldPool)?
    private var cachedWeights: (path: String, file: KerasFile)?

    public init(criaVersion: String, verbose: Bool = true, progress: TrainingObserver? = nil) {
        self.criaVersion = criaVersion
        self.verbose = verbose
        self.progress = progress ?? (verbose ? ConsoleReporter() : nil)
    }

    /// The data of a config, decoded once per distinct `data` section (once for all folds of a cross-validation).
    public func data(for config: ExperimentConfig) throws -> TrialData {
        let splitSeed = config.data.seed ?? config.seed
        if let folds = config.data.folds {
            var spec = config.data
            spec.fold = nil
            if cachedPool == nil || cachedPool!.spec != spec || cachedPool!.seed != splitSeed {
                cachedPool = nil  // release the previous pool's pixels before decoding the next
                cachedPool = (spec, splitSeed, try FoldPool.load(spec, seed: splitSeed, verbose: verbose))
            }
            guard let fold = config.data.fold else { throw CriaError("data.folds: \(folds) set but no data.fold for this run") }
            return try cachedPool!.pool.trialData(fold: fold, of: folds)
        }
        if let cached = cachedData, cached.spec == config.data, cached.seed == splitSeed { return cached.data }
        let data = try TrialData.load(config.data, seed: splitSeed, verbose: verbose)
        cachedData = (config.data, splitSeed, data)
        return data
    }

    func weights(_ path: String) throws -> KerasFile {
        if let cached = cachedWeights, cached.path == path { return cached.file }
        let url = TrialData.resolvePath(path)
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw CriaError("model.weights: \(url.path) does not exist (run `make setup` or `cria weights fetch`, or set model.weights)")
        }
        let file = try KerasFile.open(url)
        cachedWeights = (path, file)
        return file
    }

    @discardableResult
    public func run(_ plan: TrialPlan, directory: URL) throws -> TrialSummary {
        let started = Date()
        let config = plan.config
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let resolved = config.resolvedTree(criaVersion: criaVersion, gitCommit: RunInfo.gitCommit)
        try AtomicFile.write("# \(config.name) / \(plan.id): every default filled in; `cria run` accepts this file.\n"
                             + ConfigEmitter.yaml(resolved), to: directory.appendingPathComponent("config.resolved.yaml"))
        // The config's thread budget holds for this trial only: it is process-wide state
        // (Cria's loops and OpenBLAS), and a caller running trials in-process (tests, a
        // notebook) must get back the budget it had.
        if let threads = config.threads {
            let previous = Threads.count
            Threads.set(threads)
            defer { Threads.set(previous) }
            return try train(plan, directory: directory, started: started)
        }
        return try train(plan, directory: directory, started: started)
    }

    private func train(_ plan: TrialPlan, directory: URL, started: Date) throws -> TrialSummary {
        let config = plan.config

        let data = try self.data(for: config)
        let classes = data.classNames.count
        if config.model.classes == 1 && classes != 2 {
            throw CriaError("model.head.classes: 1 (one logit) needs exactly 2 classes, the data has \(classes): \(data.classNames); set model.head.classes: \(classes)")
        }
        if config.model.classes > 1 && config.model.classes != classes {
            throw CriaError("model.head.classes: \(config.model.classes), but the data has \(classes) classes: \(data.classNames)")
        }
        let input = config.model.inputSize ?? config.augment.crop ?? config.data.imageSize
        let file = try weights(config.model.weights)
        let graph = try TransferModel.graph(file: file, alpha: config.model.alpha, inputHeight: input[0], inputWidth: input[1],
                                            head: .init(dropout: config.model.dropout, units: config.model.classes), seed: UInt64(plan.seed))
        let trainer = Trainer(graph: graph, loss: config.model.classes == 1 ? .binaryCrossentropyFromLogits : .sparseCategoricalCrossentropyFromLogits,
                              seed: UInt64(plan.seed))
        let metadata = modelMetadata(plan, classNames: data.classNames)
        trainer.checkpointWriter = { graph, path in
            try Self.save(graph, metadata: metadata, to: directory.appendingPathComponent(path))
        }
        let log = try MetricsLog(directory: directory)
        let observer = LoggingObserver(log: log, forward: progress)
        trainer.observer = observer

        let pipeline = Self.augmentation(config.augment)
        try pipeline?.validate()
        let train = data.trainSource(augmentation: pipeline)
        let validation = data.validationSource()

        var epoch = 0
        var phases: [PhaseRecord] = []
        var fineTuneStart: Int?
        var probeAccuracy: Double?
        for phase in config.phases {
            if verbose { FileHandle.standardError.write(Data("phase \(phase.name): \(phase.type.rawValue), \(phase.freezing.description)\n".utf8)) }
            let first = epoch
            switch phase.type {
            case .train:
                if fineTuneStart == nil && phase.freezing != .baseFrozen && phase.epochs > 0 { fineTuneStart = epoch }
                try log.phaseStarted(epoch: epoch, text: TensorBoardRecords.phaseText(phase, epoch: epoch, fineTuneStart: fineTuneStart))
                let records = try trainer.fit(phase, train: train,
                                              validation: validation, initialEpoch: epoch)
                if let error = observer.error { throw error }
                epoch += records.count
            case .linearProbe:
                let result = try LinearProbe.fit(trainer, train: data.trainSource(augmentation: nil), validation: validation,
                                                 lambda: phase.lambda, batchSize: phase.batchSize)
                probeAccuracy = result.validationAccuracy
                if verbose {
                    FileHandle.standardError.write(Data(String(format: "linear probe: train accuracy %.4f, val accuracy %.4f (λ = %g)\n",
                                                               result.trainAccuracy, result.validationAccuracy ?? .nan, result.lambda).utf8))
                }
            }
            phases.append(PhaseRecord(name: phase.name, type: phase.type, epochs: phase.epochs, epochsRun: epoch - first, firstEpoch: first,
                                      freezing: phase.freezing, optimizer: phase.optimizer.kind.rawValue,
                                      learningRate: phase.optimizer.learningRate, bnMode: phase.bnMode))
        }
        let records = log.records
        try AtomicFile.write(CurvesFigure.svg(records: records, fineTuneStartEpoch: fineTuneStart, title: "\(config.name): \(plan.id)"),
                             to: directory.appendingPathComponent("curves.svg"))
        var test: TrialSummary.TestMetrics?
        if let testSource = data.testSource() {
            let evaluation = try trainer.evaluate(testSource, batchSize: config.data.batchSize)
            test = ClassificationMetrics(evaluation, labels: testSource.labels, classNames: data.classNames).record
        }
        try Self.save(trainer.graph, metadata: metadata, to: directory.appendingPathComponent("model.h5"))

        var summary = TrialSummary(trialID: plan.id, experiment: config.name, seed: plan.seed, repeatIndex: plan.repeatIndex,
                                   parameters: Dictionary(plan.parameters.map { ($0.path.description, Summary.json($0.value)) }, uniquingKeysWith: { $1 }),
                                   status: "finished", phases: phases, directory: directory)
        Summary.fillMetrics(&summary, records, fineTuneStart: fineTuneStart, phases: config.phases)
        summary.fold = config.data.fold
        summary.folds = config.data.folds
        summary.fineTuneStartEpoch = fineTuneStart
        summary.test = test
        summary.linearProbeValAccuracy = probeAccuracy
        summary.wallSeconds = Date().timeIntervalSince(started)
        summary.peakRSSMB = ProcessUsage.peakResidentMegabytes
        summary.criaVersion = criaVersion
        summary.gitCommit = RunInfo.gitCommit
        summary.classNames = data.classNames
        summary.dataset = .init(directory: data.origin, trainCount: data.trainCount, valCount: data.validationCount, testCount: data.testCount,
                                classCountsTrain: data.classCounts(data.trainLabels), classCountsVal: data.classCounts(data.validationLabels))
        try summary.write(to: directory)
        return summary
    }

    /// The training-time augmentation. Batch sources mix the trainer's seed into the pipeline's
    /// (seed ^ pipeline.seed), so the pipeline carries a fixed salt: using the trial seed here
    /// would cancel out and give every repeat the same draws.
    public static func augmentation(_ spec: AugmentSpec) -> AugmentationPipeline? {
        let layers = spec.layers
        return layers.isEmpty ? nil : AugmentationPipeline(layers, seed: 0xA06_5A17)
    }

    func modelMetadata(_ plan: TrialPlan, classNames: [String]) -> JSONValue {
        .object(["class_names": .array(classNames.map(JSONValue.string)), "cria_version": .string(criaVersion),
                 "git_commit": .string(RunInfo.gitCommit), "experiment": .string(plan.config.name), "trial_id": .string(plan.id),
                 "seed": .number(Double(plan.seed))])
    }

    /// A Keras 3 legacy `.h5` full model that `keras.models.load_model` and `cria` both read.
    static func save(_ graph: ModelGraph, metadata: JSONValue, to url: URL) throws {
        var weights: [String: LayerWeights] = [:]
        for node in graph.nodes where !node.weights.isEmpty { weights[node.name] = node.weights }
        try KerasWriter.writeFullModel(graph.config, weights: weights, metadata: metadata, to: url)
    }
}

/// Appends each finished epoch to the metrics logs, then forwards to the progress display.
final class LoggingObserver: TrainingObserver {
    let log: MetricsLog
    let forward: TrainingObserver?
    private(set) var error: Error?

    init(log: MetricsLog, forward: TrainingObserver?) {
        self.log = log
        self.forward = forward
    }

    func epochStarted(epoch: Int, of totalEpochs: Int, batches: Int) { forward?.epochStarted(epoch: epoch, of: totalEpochs, batches: batches) }
    func batchFinished(batch: Int, loss: Double, accuracy: Double) { forward?.batchFinished(batch: batch, loss: loss, accuracy: accuracy) }
    func epochFinished(_ record: EpochRecord) {
        do { try log.append(record) } catch { self.error = self.error ?? error }
        forward?.epochFinished(record)
    }
}

/// The metric fields of summary.json, from the epoch records.
enum Summary {
    static func fillMetrics(_ summary: inout TrialSummary, _ records: [EpochRecord], fineTuneStart: Int?, phases: [PhaseConfig]) {
        // Ties go to the earliest epoch, as Keras's EarlyStopping keeps the first best.
        let best = records.filter { $0.valAccuracy != nil }.max { a, b in a.valAccuracy! < b.valAccuracy! || (a.valAccuracy! == b.valAccuracy! && a.epoch > b.epoch) }
        summary.bestValAccuracy = best?.valAccuracy
        summary.bestEpoch = best?.epoch
        summary.finalValAccuracy = records.last?.valAccuracy
        summary.finalValLoss = records.last?.valLoss
        summary.finalAccuracy = records.last?.accuracy
        summary.finalLoss = records.last?.loss
        summary.epochs = records.count
        let frozenNames = Set(phases.filter { $0.type == .train && $0.freezing == .baseFrozen }.map(\.name))
        let frozen = records.last { frozenNames.contains($0.phase) && $0.epoch < (fineTuneStart ?? .max) }
        summary.frozenPhaseValAccuracy = frozen?.valAccuracy
    }

    static func json(_ node: ConfigNode) -> JSONValue {
        switch node.kind {
        case .scalar(let text, let quoted):
            if node.isNull { return .null }
            if !quoted, let number = ConfigReader.number(text) { return .number(number) }
            if !quoted, text == "true" || text == "false" { return .bool(text == "true") }
            return .string(text)
        case .list(let items): return .array(items.map(json))
        case .map(let entries): return .object(Dictionary(entries.map { ($0.key, json($0.value)) }, uniquingKeysWith: { $1 }))
        }
    }
}
