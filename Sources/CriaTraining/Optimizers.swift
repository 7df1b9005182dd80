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

/// The state of one optimizer: its step count and its moments, either in a
/// `ParameterStore` (training: one loop over the trainable range) or per named
/// variable ("layer/var", for updating loose arrays).
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
        let constants = Constants(config, iterations: iterations, learningRate: learningRate)
        var m = firstMoments[name] ?? [Float](repeating: 0, count: values.count)
        var v = secondMoments[name] ?? [Float](repeating: 0, count: values.count)
        values.withUnsafeMutableBufferPointer { x in
            gradient.withUnsafeBufferPointer { g in
                m.withUnsafeMutableBufferPointer { first in
                    v.withUnsafeMutableBufferPointer { second in
                        Optimizer.apply(config, constants, values: x.baseAddress!, gradient: g.baseAddress!, first: first.baseAddress!,
                                        second: second.baseAddress!, count: x.count)
                    }
                }
            }
        }
        if config.usesFirstMoment { firstMoments[name] = m }
        if config.usesSecondMoment { secondMoments[name] = v }
    }

    /// Updates every variable of `store` in `runs` (its trainable range, `store.trainableRuns`)
    /// from the store's gradients: one loop per run over the flat buffers, the moments kept in
    /// the store. The same formulas as `update`, so the same bits.
    public func step(_ store: ParameterStore, runs: [Range<Int>], learningRate: Double) {
        guard !runs.isEmpty else { return }
        let constants = Constants(config, iterations: iterations, learningRate: learningRate)
        let moments = store.moments(for: self, first: config.usesFirstMoment, second: config.usesSecondMoment)
        let base = store.trainableSpan.lowerBound
        let config = config
        let values = store.values.baseAddress!, gradients = store.gradients.baseAddress!
        let first = moments.first?.baseAddress, second = moments.second?.baseAddress
        // The runs laid end to end, cut into one contiguous piece per thread: the update is
        // bound by memory traffic (Adam reads four values per weight and writes three), and
        // every element is updated on its own, so the split never changes a bit.
        let total = runs.reduce(0) { $0 + $1.count }
        Threads.parallelFor(total, minimumPerChunk: Self.minimumPerThread) { piece in
            var start = 0
            for run in runs {
                let end = start + run.count
                defer { start = end }
                let lower = max(piece.lowerBound, start), upper = min(piece.upperBound, end)
                guard lower < upper else { continue }
                let value = run.lowerBound + (lower - start), offset = value - base
                Optimizer.apply(config, constants, values: values + value, gradient: gradients + offset,
                                first: first.map { $0 + offset }, second: second.map { $0 + offset }, count: upper - lower)
            }
        }
    }

    /// Weights per thread below which the update runs on one thread.
    static let minimumPerThread = 32_768

    /// The per-step constants, rounded exactly as Keras 3 rounds them.
    struct Constants {
        let lr: Float
        var alpha: Float = 0, rate1: Float = 0, rate2: Float = 0, epsilon: Float = 0
        var decay: Float = 0, momentum: Float = 0, rho: Float = 0

        init(_ config: OptimizerConfig, iterations: Int, learningRate: Double) {
            lr = Float(learningRate)
            switch config.kind {
            case .adam, .adamw:
                decay = Float(config.weightDecay)
                // Rounded exactly as Keras 3 rounds them (keras/src/optimizers/adam.py): the bias
                // correction in float32 tensor ops, the moment rates `1 - beta` in Python double
                // then float32. In float32, 1 - 0.999f is 1.3e-5 off 0.001, and over three steps
                // such differences moved weights by up to 8.6e-4 against Keras's 2e-5 from exact
                // arithmetic (ExactArithmeticParityTests).
                let step = Float(iterations + 1)
                let beta1Power = pow(Float(config.beta1), step), beta2Power = pow(Float(config.beta2), step)
                alpha = lr * (1 - beta2Power).squareRoot() / (1 - beta1Power)
                rate1 = Float(1 - config.beta1); rate2 = Float(1 - config.beta2); epsilon = Float(config.epsilon)
            case .sgd:
                momentum = Float(config.momentum)
            case .rmsprop:
                // `1 - rho` in double, then float32, as Keras computes it from the Python float.
                rho = Float(config.rho); rate1 = Float(1 - config.rho); epsilon = Float(config.epsilon); momentum = Float(config.momentum)
            }
        }
    }

    /// One optimizer step over `count` contiguous values. Every element is updated on its
    /// own by the formula of Keras's optimizer, so a variable updated alone and the same
    /// variable inside a longer run get the same bits.
    static func apply(_ config: OptimizerConfig, _ k: Constants, values: UnsafeMutablePointer<Float>, gradient: UnsafePointer<Float>,
                      first m: UnsafeMutablePointer<Float>?, second v: UnsafeMutablePointer<Float>?, count: Int) {
        let lr = k.lr
        switch config.kind {
        case .adam, .adamw:
            let m = m!, v = v!, alpha = k.alpha, rate1 = k.rate1, rate2 = k.rate2, epsilon = k.epsilon
            // AdamW decays each weight before its Adam update (Keras applies the decay first).
            if config.kind == .adamw {
                let decay = k.decay
                for i in 0..<count { values[i] -= values[i] * decay * lr }
            }
            // Eight lanes at a time with the scalar loop's operations in its order (no fused
            // multiply-add), so every element gets the scalar formula's bits.
            typealias Lanes = SIMD8<Float>
            let alphas = Lanes(repeating: alpha), rates1 = Lanes(repeating: rate1), rates2 = Lanes(repeating: rate2),
                epsilons = Lanes(repeating: epsilon)
            var i = 0
            while i + Lanes.scalarCount <= count {
                let g = UnsafeRawPointer(gradient + i).loadUnaligned(as: Lanes.self)
                var first = UnsafeRawPointer(m + i).loadUnaligned(as: Lanes.self)
                var second = UnsafeRawPointer(v + i).loadUnaligned(as: Lanes.self)
                var x = UnsafeRawPointer(values + i).loadUnaligned(as: Lanes.self)
                first += (g - first) * rates1
                second += (g * g - second) * rates2
                x -= (first * alphas) / (second.squareRoot() + epsilons)
                UnsafeMutableRawPointer(m + i).storeBytes(of: first, as: Lanes.self)
                UnsafeMutableRawPointer(v + i).storeBytes(of: second, as: Lanes.self)
                UnsafeMutableRawPointer(values + i).storeBytes(of: x, as: Lanes.self)
                i += Lanes.scalarCount
            }
            while i < count {
                let g = gradient[i]
                m[i] += (g - m[i]) * rate1
                v[i] += (g * g - v[i]) * rate2
                values[i] -= (m[i] * alpha) / (v[i].squareRoot() + epsilon)
                i += 1
            }
        case .sgd:
            guard config.momentum != 0 else {
                for i in 0..<count { values[i] -= gradient[i] * lr }
                return
            }
            let m = m!, momentum = k.momentum
            if config.nesterov {
                for i in 0..<count {
                    m[i] = m[i] * momentum - gradient[i] * lr
                    values[i] += m[i] * momentum - gradient[i] * lr
                }
            } else {
                for i in 0..<count {
                    m[i] = m[i] * momentum - gradient[i] * lr
                    values[i] += m[i]
                }
            }
        case .rmsprop:
            let velocity = v!, rho = k.rho, rate = k.rate1, epsilon = k.epsilon, momentum = k.momentum
            for i in 0..<count {
                let g = gradient[i]
                velocity[i] = rho * velocity[i] + rate * (g * g)
                let increment = lr * g / (velocity[i] + epsilon).squareRoot()
                if momentum > 0 {
                    m![i] = momentum * m![i] + increment
                    values[i] -= m![i]
                } else {
                    values[i] -= increment
                }
            }
        }
    }
}

extension OptimizerConfig {
    /// Whether the optimizer keeps a first moment (Adam's m, SGD's or RMSprop's momentum).
    var usesFirstMoment: Bool {
        switch kind {
        case .adam, .adamw: return true
        case .sgd, .rmsprop: return momentum != 0
        }
    }

    /// Whether it keeps a second moment (Adam's v, RMSprop's velocity).
    var usesSecondMoment: Bool { kind == .adam || kind == .adamw || kind == .rmsprop }
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
