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
    private func reference() throws -> JSONValue {
        let url = TrainingFixture.url("adam_f64.json")
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw XCTSkip("float64 reference not generated (Notebooks-export/make_adam_reference_f64.py)")
        }
        return try JSONValue.parse(String(contentsOf: url, encoding: .utf8), source: url.path)
    }

    /// The trainable part's gradients against float64, as a fraction of each tensor's
    /// largest exact value. `exactPrefix` feeds the float64 output of the frozen prefix
    /// (`block_13_pad`) instead of Cria's float32 one; `weights` replaces the trainable
    /// variables (the float64 weights after one Adam step, for the second step).
    private func worstGradientErrors(_ mode: BatchNormMode, exactPrefix: Bool, weights: String? = nil,
                                     expected: String) throws -> [(name: String, cria: Float)] {
        var (graph, data) = try TrainingFixture.modelAndBatch()
        if let weights {
            for (layer, variable, tensor) in try TrainingFixture.tensors(weights) {
                let index = try XCTUnwrap(graph.index(of: layer))
                var values = graph.nodes[index].weights
                values[variable] = Tensor(shape: try XCTUnwrap(values[variable]).shape, scalars: tensor.scalars)
                graph.setWeights(values, forNode: index)
            }
        }
        let session = try TrainingGraph(graph: graph, bnMode: mode)
        var prefix = try session.runPrefix(data.images)
        if exactPrefix {
            let boundary = try XCTUnwrap(graph.index(of: "block_13_pad"))
            XCTAssertEqual(Array(prefix.keys), [boundary], "the prefix of fine_tune_at=120 ends at block_13_pad")
            prefix[boundary] = try TrainingFixture.npy("prefix_f64_block_13_pad.npy").scalars
        }
        let (output, tape) = session.forward(prefix: prefix, batch: data.count, training: true, dropoutSeed: 0)
        let (_, outputGradient) = Loss.binaryCrossentropyFromLogits.evaluate(outputs: output, labels: data.labels, columns: 1)
        let gradients = session.backward(outputGradient, tape: tape)
        let exactTensors = try TrainingFixture.tensors(expected)
        XCTAssertGreaterThan(exactTensors.count, 30)
        var errors: [(name: String, cria: Float)] = []
        for (layer, variable, exact) in exactTensors {
            let gradient = try XCTUnwrap(gradients[try XCTUnwrap(graph.index(of: layer))]?[variable], "\(layer)/\(variable)")
            var worst: Float = 0
            for (a, b) in zip(gradient.scalars, exact.scalars) { worst = max(worst, abs(a - b)) }
            // β of a BatchNorm whose output a train-mode BatchNorm re-normalises: zero in exact
            // arithmetic, rounding noise (~1e-9) in float32 for both frameworks.
            if exact.maxMagnitude < 1e-6 {
                XCTAssertLessThan(worst, 1e-6, "\(mode) \(layer)/\(variable) should be zero")
                continue
            }
            errors.append(("\(layer)__\(variable)", worst / exact.maxMagnitude))
        }
        return errors
    }

    /// From Cria's own float32 prefix. Measured: inference mode 7.8e-6 (Keras float32 7.7e-6);
    /// train mode 4.6e-4 (Keras float32 2.4e-5), see the next test for why.
    private func checkEndToEnd(_ mode: BatchNormMode, tolerance: Float) throws {
        let json = try reference()
        for (name, cria) in try worstGradientErrors(mode, exactPrefix: false, expected: "\(mode.rawValue)/grad_f64") {
            let keras = json["modes"]?[mode.rawValue]?["gradient_relative_error_keras_float32"]?[name]?.double ?? .nan
            print("gradient vs float64, \(mode) \(name): Cria \(cria), Keras float32 \(keras)")
            XCTAssertLessThanOrEqual(cria, tolerance, "\(mode) \(name)")
        }
    }

    func testInferenceModeGradientsAgainstFloat64() throws { try checkEndToEnd(.inference, tolerance: 1e-5) }
    func testTrainModeGradientsAgainstFloat64() throws { try checkEndToEnd(.train, tolerance: 5e-4) }

    /// Given the exact prefix output, everything Cria computes after it (forward with batch
    /// statistics, backward, in both modes) is within 1e-5 of float64 — measured 1.6e-6 in
    /// train mode, 1.0e-6 in inference mode, closer than Keras float32 gets (2.4e-5, 7.7e-6).
    /// So train mode's 4.6e-4 above is the prefix's float32 rounding (Cria 3.3e-6 of scale,
    /// Keras 2.8e-6: as accurate, but not the same bits) amplified by ReLU6 kinks and 72-value
    /// batch statistics downstream, not an error of the trainable part.
    func testGradientsFromTheExactPrefix() throws {
        _ = try reference()
        for mode in [BatchNormMode.inference, .train] {
            for (name, cria) in try worstGradientErrors(mode, exactPrefix: true, expected: "\(mode.rawValue)/grad_f64") {
                XCTAssertLessThanOrEqual(cria, 1e-5, "\(mode) \(name)")
            }
        }
    }

    /// The second Adam step's gradients at float64's weights after the first step: within
    /// 1e-5 of float64 in both modes. Cria has no state that drifts between steps; what moves
    /// its three-step weights is the first step's rounding (see `testStepLossesAgainstFloat64`).
    func testSecondStepGradientsAtTheExactFirstStepWeights() throws {
        _ = try reference()
        for mode in [BatchNormMode.inference, .train] {
            for (name, cria) in try worstGradientErrors(mode, exactPrefix: true, weights: "\(mode.rawValue)/after1_f64",
                                                        expected: "\(mode.rawValue)/grad2_f64") {
                XCTAssertLessThanOrEqual(cria, 1e-5, "\(mode) \(name)")
            }
        }
    }

    /// The loss before each of three Adam steps. Steps 1 and 2 match exact arithmetic as
    /// closely as Keras float32 does (2e-7 and 8e-7 relative; Keras 3e-7 and 1e-6) since the
    /// optimizer rounds its constants as Keras does. Step 3 is 5.7e-5 off (Keras 3.3e-6).
    /// Why (measured while writing this test): after step 1 every weight is within 1e-5 of
    /// float64 but one, block_13_project/kernel[6117], whose gradient (5.1e-7) is in Adam's
    /// epsilon regime, where the step is proportional to g: float32 rounding of 1e-6 of the
    /// tensor's scale in g (Cria 6.6e-7, Keras 4.2e-7) moves that weight 3.4e-5 one way
    /// for Cria, 2.2e-5 the other way for Keras. Cria's side crosses a ReLU6 kink: at the
    /// exact weights plus Cria's deviation there, the gradient of block_14_expand_BN's γ[35]
    /// becomes 4.9e-4 instead of 5.8e-5 (Keras's deviation leaves it unchanged), and three
    /// steps carry that into up to 1.2 % of some tensors' weights beyond 1e-4.
    func testStepLossesAgainstFloat64() throws {
        let json = try reference()
        let exact = try XCTUnwrap(json["modes"]?["inference"]?["step_losses_float64"]?.array?.compactMap(\.double))
        let (graph, data) = try TrainingFixture.modelAndBatch()
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
