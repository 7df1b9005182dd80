import CriaCore
import CriaKerasIO
import CriaModel
import CriaTestSupport
import CriaTraining
import Foundation
import XCTest

/// Cria's training step against exact arithmetic: the fixture of
/// `KerasTrainingParityTests` rerun by Keras 3 under the float64 dtype policy
/// (Tests/Fixtures/generate/make_adam_reference_f64.py). Keras's own float32 goldens are
/// measured against the same reference (train/adam_f64.json) and printed beside
/// Cria's, so each figure reads as "as close to exact as Keras float32 is".
///
/// What these figures depend on: the CPU (OpenBLAS's kernel family and Cria's SIMD path)
/// and the thread count (Cria's and OpenBLAS's, always equal: `Threads`). Nothing else:
/// checked with glibc heap layouts changed (tcache off, mmap threshold, top pad, one
/// arena), other paths and environments, and test orders. An earlier dependence on test
/// order was a leak of the thread count: an in-process trial with `threads: 1` left it
/// at 1 for every later test; trials now restore it, and this class states its own.
final class ExactArithmeticParityTests: XCTestCase {
    /// The float32 error model of the trainable part alone (blocks 13-16 and the head, 35
    /// layers whose longest sums have 9·960 terms): each value's rounding is a random walk
    /// over its chain of sums, √(35·9·960)·u ≈ 3.3e-5 of a tensor's scale (u = 2⁻²⁴).
    private static let trainableRounding = Float((35.0 * 9 * 960).squareRoot()) * Float.ulpOfOne / 2

    override func setUp() {
        super.setUp()
        Threads.set(Threads.defaultCount)
    }

    private func reference() throws -> JSONValue {
        let url = TrainingFixture.url("adam_f64.json")
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw Skip.missing("float64 reference not generated (Tests/Fixtures/generate/make_adam_reference_f64.py)")
        }
        return try JSONValue.parse(String(contentsOf: url, encoding: .utf8), source: url.path)
    }

    /// The trainable part's gradients against float64, as a fraction of each tensor's
    /// largest exact value. `exactPrefix` feeds the float64 output of the frozen prefix
    /// (`block_13_pad`) instead of Cria's float32 one; `weights` replaces the trainable
    /// variables (the float64 weights after one Adam step, for the second step).
    /// The frozen prefix's output fed to the trainable part.
    private enum PrefixSource {
        /// Cria's own float32 prefix.
        case cria
        /// The float64 prefix (rounded once to float32).
        case exact
        /// The float64 prefix plus uniform noise of the given half-width, drawn with `seed`.
        case exactPlusNoise(halfWidth: Float, seed: UInt64)
    }

    private func worstGradientErrors(_ mode: BatchNormMode, prefix source: PrefixSource, weights: String? = nil,
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
        switch source {
        case .cria: break
        case .exact, .exactPlusNoise:
            let boundary = try XCTUnwrap(graph.index(of: "block_13_pad"))
            XCTAssertEqual(Array(prefix.keys), [boundary], "the prefix of fine_tune_at=120 ends at block_13_pad")
            var exact = try TrainingFixture.npy("prefix_f64_block_13_pad.npy").scalars
            if case .exactPlusNoise(let halfWidth, let seed) = source {
                var generator = SplitMix64(seed: seed)
                for i in exact.indices { exact[i] += (generator.nextUnitFloat() * 2 - 1) * halfWidth }
            }
            prefix[boundary] = exact
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

    /// Cria's float32 prefix output (`block_13_pad`) against the float64 one: the root-mean-square
    /// difference, the size of the rounding that the end-to-end checks propagate.
    private func prefixRoundingRMS() throws -> (rms: Float, relativeToScale: Float) {
        let (graph, data) = try TrainingFixture.modelAndBatch()
        let session = try TrainingGraph(graph: graph, bnMode: .inference)
        let cria = try XCTUnwrap(try session.runPrefix(data.images)[try XCTUnwrap(graph.index(of: "block_13_pad"))])
        let exact = try TrainingFixture.npy("prefix_f64_block_13_pad.npy")
        var sum = 0.0
        for (a, b) in zip(cria, exact.scalars) { sum += Double(a - b) * Double(a - b) }
        let rms = Float((sum / Double(cria.count)).squareRoot())
        return (rms, rms / exact.maxMagnitude)
    }

    /// From Cria's own float32 prefix, whose output carries float32 rounding. How much such
    /// rounding moves each gradient is a property of the function, not of Cria: ReLU6 kinks and
    /// batch statistics downstream amplify it (in train mode, 20-70 times Keras's own error on
    /// some γ, from different but equally accurate prefix bits). So the bound is measured:
    /// the trainable part is run six times from the exact prefix plus noise of the
    /// root-mean-square size of Cria's prefix rounding; each tensor may be off by the trainable
    /// part's own float32 error (`trainableRounding`, checked by `testGradientsFromTheExactPrefix`) plus twice the
    /// largest change that noise caused. Cria's prefix rounding itself must stay within the
    /// float32 model (checked first), or a wrong prefix would widen its own tolerance.
    private func checkEndToEnd(_ mode: BatchNormMode) throws {
        let json = try reference()
        let (rms, relative) = try prefixRoundingRMS()
        print("prefix block_13_pad vs float64: rms \(rms) (\(relative) of scale)")
        // ~50 float32 layers, sums of up to 9·576 terms, each element's error a random walk of
        // roundings: √(50·5184)·u ≈ 3e-5 of the scale is the float32 model's bound for the RMS.
        XCTAssertLessThan(relative, 3e-5, "the frozen prefix is further from float64 than float32 rounding explains")
        // Uniform noise with the RMS of Cria's rounding, six draws: each is what another thread
        // count or CPU (other rounding bits, same size) might hand the trainable part, so the
        // bound covers the near-kink flips such rounding can cause. Measured over the draws:
        // median tolerance 5e-5 of scale; the 10 % of tensors downstream of flipped units
        // get 1e-2 and more. With 1 and 2 threads, Cria stays within a fifth of every bound.
        let halfWidth = rms * Float(3).squareRoot()
        var noiseEffect: [String: Float] = [:]
        for seed in UInt64(1)...6 {
            for (name, error) in try worstGradientErrors(mode, prefix: .exactPlusNoise(halfWidth: halfWidth, seed: seed),
                                                         expected: "\(mode.rawValue)/grad_f64") {
                noiseEffect[name] = max(noiseEffect[name] ?? 0, error)
            }
        }
        for (name, cria) in try worstGradientErrors(mode, prefix: .cria, expected: "\(mode.rawValue)/grad_f64") {
            let keras = json["modes"]?[mode.rawValue]?["gradient_relative_error_keras_float32"]?[name]?.double ?? .nan
            let tolerance = Self.trainableRounding + 2 * (noiseEffect[name] ?? 0)
            print("gradient vs float64, \(mode) \(name): Cria \(cria), Keras float32 \(keras), tolerance \(tolerance)")
            XCTAssertLessThanOrEqual(cria, tolerance, "\(mode) \(name)")
        }
    }

    func testInferenceModeGradientsAgainstFloat64() throws { try checkEndToEnd(.inference) }
    func testTrainModeGradientsAgainstFloat64() throws { try checkEndToEnd(.train) }

    /// Given the exact prefix output, everything Cria computes after it (forward with batch
    /// statistics, backward, in both modes) is within the trainable part's rounding model (`trainableRounding`) of float64 — measured 1.6e-6 in
    /// train mode, 1.0e-6 in inference mode, closer than Keras float32 gets (2.4e-5, 7.7e-6).
    /// So train mode's 4.6e-4 above is the prefix's float32 rounding (Cria 3.3e-6 of scale,
    /// Keras 2.8e-6: as accurate, but not the same bits) amplified by ReLU6 kinks and 72-value
    /// batch statistics downstream, not an error of the trainable part.
    func testGradientsFromTheExactPrefix() throws {
        _ = try reference()
        for mode in [BatchNormMode.inference, .train] {
            for (name, cria) in try worstGradientErrors(mode, prefix: .exact, expected: "\(mode.rawValue)/grad_f64") {
                XCTAssertLessThanOrEqual(cria, Self.trainableRounding, "\(mode) \(name)")
            }
        }
    }

    /// The second Adam step's gradients at float64's weights after the first step: within
    /// the same bound of float64 in both modes. Cria has no state that drifts between steps; what moves
    /// its three-step weights is the first step's rounding (see `testStepLossesAgainstFloat64`).
    func testSecondStepGradientsAtTheExactFirstStepWeights() throws {
        _ = try reference()
        for mode in [BatchNormMode.inference, .train] {
            for (name, cria) in try worstGradientErrors(mode, prefix: .exact, weights: "\(mode.rawValue)/after1_f64",
                                                        expected: "\(mode.rawValue)/grad2_f64") {
                XCTAssertLessThanOrEqual(cria, Self.trainableRounding, "\(mode) \(name)")
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
