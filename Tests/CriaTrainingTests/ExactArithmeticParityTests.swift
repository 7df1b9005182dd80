import CriaCore
import CriaKerasIO
import CriaModel
import CriaTestSupport
import CriaTraining
import Foundation
import XCTest

/// Cria's training step against exact arithmetic: the fixture of
/// `KerasTrainingParityTests` rerun by Keras 3 under the float64 dtype policy
/// (Notebooks-export/make_adam_reference_f64.py). Keras's own float32 goldens are
/// measured against the same reference (train/adam_f64.json) and printed beside
/// Cria's, so each figure reads as "as close to exact as Keras float32 is".
final class ExactArithmeticParityTests: XCTestCase {
    private let root = "keras/train/"

    private func reference() throws -> JSONValue {
        let url = Fixtures.url(root + "adam_f64.json")
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw XCTSkip("float64 reference not generated (Notebooks-export/make_adam_reference_f64.py)")
        }
        return try JSONValue.parse(String(contentsOf: url, encoding: .utf8), source: url.path)
    }

    private func setUp() throws -> (ModelGraph, TensorBatchSource) {
        var graph = try ModelGraph.build(file: try KerasFile.open(Fixtures.url(root + "model.h5")), architecture: nil)
        try graph.applyFreezing(.fineTuneAt(120))
        let inputs = try Fixtures.npy(root + "inputs.npy")
        let labels = try Fixtures.npy(root + "labels.npy").scalars.map { Int($0) }
        return (graph, TensorBatchSource(images: inputs, labels: labels))
    }

    private func tensors(_ directory: String) throws -> [(layer: String, variable: String, tensor: Tensor)] {
        let url = Fixtures.url(root + directory)
        return try FileManager.default.contentsOfDirectory(atPath: url.path).filter { $0.hasSuffix(".npy") }.sorted().map { file in
            let parts = String(file.dropLast(4)).components(separatedBy: "__")
            return (parts[0], parts[1], try NPY.read(url.appendingPathComponent(file)))
        }
    }

    /// Measured: Cria within 7.8e-6 of each tensor's scale, Keras float32 within 7.7e-6.
    func testInferenceModeGradientsAgainstFloat64() throws {
        let json = try reference()
        let (graph, data) = try setUp()
        let session = try TrainingGraph(graph: graph, bnMode: .inference)
        let prefix = try session.runPrefix(data.images)
        let (output, tape) = session.forward(prefix: prefix, batch: data.count, training: true, dropoutSeed: 0)
        let (_, outputGradient) = Loss.binaryCrossentropyFromLogits.evaluate(outputs: output, labels: data.labels, columns: 1)
        let gradients = session.backward(outputGradient, tape: tape)
        let exactTensors = try tensors("inference/grad_f64")
        XCTAssertGreaterThan(exactTensors.count, 30)
        for (layer, variable, exact) in exactTensors {
            let gradient = try XCTUnwrap(gradients[try XCTUnwrap(graph.index(of: layer))]?[variable], "\(layer)/\(variable)")
            var worst: Float = 0
            for (a, b) in zip(gradient.scalars, exact.scalars) { worst = max(worst, abs(a - b)) }
            let relative = worst / max(exact.maxMagnitude, 1e-30)
            let keras = json["modes"]?["inference"]?["gradient_relative_error_keras_float32"]?["\(layer)__\(variable)"]?.double ?? .nan
            print("gradient vs float64 \(layer)/\(variable): Cria \(relative), Keras float32 \(keras)")
            XCTAssertLessThanOrEqual(relative, 1e-5, "\(layer)/\(variable)")
        }
    }

    /// The loss before each of three Adam steps. Steps 1 and 2 match exact arithmetic as
    /// closely as Keras float32 does (2e-7 and 8e-7 relative; Keras 3e-7 and 1e-6) since the
    /// optimizer rounds its constants as Keras does. Step 3 is 5.6e-5 off (Keras 3.3e-6):
    /// at step 2 one channel's gradient (block_14_expand_BN, channel 35, whose exact
    /// value is small) differs from both Keras results by 1 % of its tensor's scale,
    /// which is what moves the weights of `KerasTrainingParityTests`'s three-step test.
    func testStepLossesAgainstFloat64() throws {
        let json = try reference()
        let exact = try XCTUnwrap(json["modes"]?["inference"]?["step_losses_float64"]?.array?.compactMap(\.double))
        let (graph, data) = try setUp()
        let trainer = Trainer(graph: graph, loss: .binaryCrossentropyFromLogits, seed: 0)
        var phase = PhaseConfig(name: "fine_tune", epochs: 3, optimizer: .adam(1e-3), freezing: .fineTuneAt(120))
        phase.batchSize = data.count
        let losses = try trainer.fit(phase, train: data, validation: nil).map(\.loss)
        XCTAssertEqual(losses.count, 3)
        for (step, (cria, reference)) in zip(losses, exact).enumerated() {
            let relative = abs(cria - reference) / abs(reference)
            print("step \(step + 1) loss: Cria \(cria), float64 \(reference), relative \(relative)")
            XCTAssertLessThanOrEqual(relative, step < 2 ? 2e-6 : 1e-4, "step \(step + 1)")
        }
    }
}
