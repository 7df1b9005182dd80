import CriaCore
import CriaTestSupport
import CriaTraining
import Foundation
import XCTest

/// Losses, optimizers and learning-rate schedules against the values Keras 3
/// computed (`Tests/Fixtures/keras/train/{losses,optimizers,schedules.json}`).
final class KerasOptimizerLossScheduleTests: XCTestCase {
    private let root = "keras/train/"

    private func json(_ path: String) throws -> JSONValue {
        try JSONValue.parse(try String(contentsOf: Fixtures.url(root + path), encoding: .utf8), source: path)
    }

    func testLossesAndTheirGradients() throws {
        let cases: [(String, Loss)] = [("bce_logits", .binaryCrossentropyFromLogits), ("scce_logits", .sparseCategoricalCrossentropyFromLogits),
                                       ("scce_probs", .sparseCategoricalCrossentropy), ("cce_logits", .sparseCategoricalCrossentropyFromLogits),
                                       ("cce_probs", .sparseCategoricalCrossentropy)]
        for (name, loss) in cases {
            let predictions = try Fixtures.npy(root + "losses/\(name)_y_pred.npy")
            let truth = try Fixtures.npy(root + "losses/\(name)_y_true.npy")
            let columns = predictions.shape.count > 1 ? predictions.shape.last! : 1
            let rows = predictions.count / columns
            var labels: [Int]
            if truth.count == rows * columns && columns > 1 {
                // One-hot targets (CategoricalCrossentropy) become class indices.
                labels = (0..<rows).map { r in (0..<columns).max { truth.scalars[r * columns + $0] < truth.scalars[r * columns + $1] }! }
                guard truth.scalars.allSatisfy({ $0 == 0 || $0 == 1 }) else { continue }
            } else {
                labels = truth.scalars.map { Int($0) }
            }
            let (value, gradient) = loss.evaluate(outputs: predictions.scalars, labels: labels, columns: columns)
            let expected = try Fixtures.npy(root + "losses/\(name)_value.npy").scalars[0]
            XCTAssertEqual(Float(value), expected, accuracy: 1e-5 * max(1, abs(expected)), "\(name) value")
            assertMatches(Tensor(shape: predictions.shape, scalars: gradient), try Fixtures.npy(root + "losses/\(name)_grad.npy"),
                          relative: 1e-5, "\(name) gradient")
        }
    }

    func testOptimizersFollowKerasStepByStep() throws {
        let initial = try Fixtures.npy(root + "optimizers/initial.npy").scalars
        let gradients = try Fixtures.npy(root + "optimizers/grads.npy")
        var adamw = OptimizerConfig(kind: .adamw, learningRate: 1e-3)
        adamw.weightDecay = 0.004
        var momentum = OptimizerConfig(kind: .sgd, learningRate: 1e-2)
        momentum.momentum = 0.9
        var nesterov = momentum
        nesterov.nesterov = true
        var rmspropMomentum = OptimizerConfig(kind: .rmsprop, learningRate: 1e-3)
        rmspropMomentum.momentum = 0.9
        let cases: [(String, OptimizerConfig)] = [("adam", .adam(1e-3)), ("adamw", adamw), ("sgd_momentum", momentum),
                                                  ("sgd_nesterov", nesterov), ("rmsprop", OptimizerConfig(kind: .rmsprop, learningRate: 1e-3)),
                                                  ("rmsprop_momentum", rmspropMomentum)]
        for (name, config) in cases {
            let expected = try Fixtures.npy(root + "optimizers/\(name).npy")
            let optimizer = Optimizer(config)
            var values = initial
            for step in 0..<5 {
                let gradient = Array(gradients.scalars[step * 10 ..< (step + 1) * 10])
                optimizer.update("w", values: &values, gradient: gradient, learningRate: config.learningRate)
                optimizer.finishStep()
                assertMatches(Tensor(shape: [10], scalars: values), expected.slice(step), relative: 1e-6, "\(name) after step \(step + 1)")
            }
        }
    }

    func testLearningRateSchedules() throws {
        let schedules = try json("schedules.json")
        let cases: [(String, LearningRateSchedule, Double)] = [
            ("cosine", .cosine(decaySteps: 40, alpha: 0.1, warmupSteps: 0, warmupFrom: 0), 1e-3),
            ("cosine_warmup", .cosine(decaySteps: 40, alpha: 0.1, warmupSteps: 10, warmupFrom: 0), 1e-3),
            ("exponential", .exponential(decaySteps: 10, decayRate: 0.5, staircase: false), 1e-3),
            ("exponential_staircase", .exponential(decaySteps: 10, decayRate: 0.5, staircase: true), 1e-3),
            ("piecewise", .step(boundaries: [10, 20], values: [1e-3, 5e-4, 1e-4]), 1e-3),
        ]
        for (name, schedule, base) in cases {
            let expected = try XCTUnwrap(schedules[name]?["learning_rate"]?.array?.compactMap(\.double), name)
            XCTAssertEqual(expected.count, 51)
            for (step, value) in expected.enumerated() {
                // Keras evaluates schedules in float32.
                XCTAssertEqual(schedule.learningRate(base: base, step: step), value, accuracy: 1e-6 * value + 1e-12, "\(name) at step \(step)")
            }
        }
    }
}
