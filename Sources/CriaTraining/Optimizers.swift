import CriaCore
import Foundation

/// Keras 3's optimizers, with Keras's formulas and defaults, so that the same
/// gradients give the same weights step for step (see `train/optimizers` fixtures).
public struct OptimizerConfig: Equatable, Sendable {
    public enum Kind: String, Sendable, CaseIterable { case adam, adamw, sgd, rmsprop }

    public var kind: Kind
    public var learningRate: Double
    public var beta1: Double = 0.9
    public var beta2: Double = 0.999
    public var epsilon: Double = 1e-7
    public var momentum: Double = 0
    public var nesterov: Bool = false
    public var rho: Double = 0.9
    /// AdamW's decoupled decay (Keras default 0.004); ignored by the others.
    public var weightDecay: Double = 0.004

    public init(kind: Kind, learningRate: Double) {
        self.kind = kind
        self.learningRate = learningRate
    }

    public static func adam(_ learningRate: Double = 1e-3) -> OptimizerConfig { OptimizerConfig(kind: .adam, learningRate: learningRate) }
}

/// The state of one optimizer over a set of named variables ("layer/var").
public final class Optimizer {
    public let config: OptimizerConfig
    /// Steps taken so far (Keras's `optimizer.iterations`).
    public private(set) var iterations = 0
    private var firstMoments: [String: [Float]] = [:]
    private var secondMoments: [String: [Float]] = [:]

    public init(_ config: OptimizerConfig) { self.config = config }

    /// Increments the step counter; call once per batch, after all variables are updated.
    public func finishStep() { iterations += 1 }

    /// Updates `values` in place from `gradient` at learning rate `learningRate` (from the schedule).
    public func update(_ name: String, values: inout [Float], gradient: [Float], learningRate: Double) {
        let lr = Float(learningRate)
        switch config.kind {
        case .adam, .adamw:
            if config.kind == .adamw {
                let decay = Float(config.weightDecay)
                for i in values.indices { values[i] -= values[i] * decay * lr }
            }
            var m = firstMoments[name] ?? [Float](repeating: 0, count: values.count)
            var v = secondMoments[name] ?? [Float](repeating: 0, count: values.count)
            // Rounded exactly as Keras 3 rounds them (keras/src/optimizers/adam.py): the bias
            // correction in float32 tensor ops, the moment rates `1 - beta` in Python double
            // then float32. In float32, 1 - 0.999f is 1.3e-5 off 0.001, and over three steps
            // such differences moved weights by up to 8.6e-4 against Keras's 2e-5 from exact
            // arithmetic (ExactArithmeticParityTests).
            let step = Float(iterations + 1)
            let beta1Power = pow(Float(config.beta1), step), beta2Power = pow(Float(config.beta2), step)
            let alpha = lr * (1 - beta2Power).squareRoot() / (1 - beta1Power)
            let rate1 = Float(1 - config.beta1), rate2 = Float(1 - config.beta2), epsilon = Float(config.epsilon)
            for i in values.indices {
                let g = gradient[i]
                m[i] += (g - m[i]) * rate1
                v[i] += (g * g - v[i]) * rate2
                values[i] -= (m[i] * alpha) / (v[i].squareRoot() + epsilon)
            }
            firstMoments[name] = m
            secondMoments[name] = v
        case .sgd:
            guard config.momentum != 0 else {
                for i in values.indices { values[i] -= gradient[i] * lr }
                return
            }
            var m = firstMoments[name] ?? [Float](repeating: 0, count: values.count)
            let momentum = Float(config.momentum)
            for i in values.indices {
                m[i] = m[i] * momentum - gradient[i] * lr
                values[i] += config.nesterov ? m[i] * momentum - gradient[i] * lr : m[i]
            }
            firstMoments[name] = m
        case .rmsprop:
            var velocity = secondMoments[name] ?? [Float](repeating: 0, count: values.count)
            var m = firstMoments[name] ?? [Float](repeating: 0, count: values.count)
            // `1 - rho` in double, then float32, as Keras computes it from the Python float.
            let rho = Float(config.rho), rate = Float(1 - config.rho), epsilon = Float(config.epsilon), momentum = Float(config.momentum)
            for i in values.indices {
                let g = gradient[i]
                velocity[i] = rho * velocity[i] + rate * (g * g)
                let increment = lr * g / (velocity[i] + epsilon).squareRoot()
                if momentum > 0 {
                    m[i] = momentum * m[i] + increment
                    values[i] -= m[i]
                } else {
                    values[i] -= increment
                }
            }
            secondMoments[name] = velocity
            if momentum > 0 { firstMoments[name] = m }
        }
    }
}

/// Learning-rate schedules as Keras defines them, evaluated at the optimizer's step.
public enum LearningRateSchedule: Equatable, Sendable {
    case constant
    /// `CosineDecay(initial, decay_steps, alpha)`, with optional linear warmup from `warmupFrom`.
    case cosine(decaySteps: Int, alpha: Double, warmupSteps: Int, warmupFrom: Double)
    /// `ExponentialDecay(initial, decay_steps, decay_rate, staircase)`.
    case exponential(decaySteps: Int, decayRate: Double, staircase: Bool)
    /// `PiecewiseConstantDecay(boundaries, values)`: values[0] until boundaries[0], and so on.
    case step(boundaries: [Int], values: [Double])

    public func learningRate(base: Double, step: Int) -> Double {
        switch self {
        case .constant:
            return base
        case .cosine(let decaySteps, let alpha, let warmupSteps, let warmupFrom):
            // Keras: with warmup, `initial_learning_rate` is the start of the warmup and the
            // cosine decays from `warmup_target`; here `base` is that target.
            if warmupSteps > 0 && step < warmupSteps {
                return warmupFrom + (base - warmupFrom) * Double(step) / Double(warmupSteps)
            }
            let progress = min(Double(step - warmupSteps), Double(decaySteps)) / Double(max(decaySteps, 1))
            let cosine = 0.5 * (1 + cos(Double.pi * progress))
            return base * ((1 - alpha) * cosine + alpha)
        case .exponential(let decaySteps, let decayRate, let staircase):
            var exponent = Double(step) / Double(decaySteps)
            if staircase { exponent = exponent.rounded(.down) }
            return base * pow(decayRate, exponent)
        case .step(let boundaries, let values):
            for (index, boundary) in boundaries.enumerated() where step <= boundary { return values[index] }
            return values.last ?? base
        }
    }
}
