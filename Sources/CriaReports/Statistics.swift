import Foundation

/// The statistics behind Cria's intervals, in one place (see docs/statistics.md).
///
/// - `StudentT`: the t distribution's CDF and quantile, from the regularized incomplete beta function.
/// - `Estimate`: a mean with its 95 % interval. Under k-fold cross-validation it is Nadeau and
///   Bengio's corrected resampled t interval over the folds; over seeds on one split, the ordinary t interval.
public enum StudentT {
    /// P(T ≤ t) for Student's t with `df` degrees of freedom (df > 0, not necessarily an integer).
    public static func cdf(_ t: Double, df: Double) -> Double {
        precondition(df > 0)
        guard t.isFinite else { return t > 0 ? 1 : 0 }
        // P(|T| > |t|) = I_{df/(df+t²)}(df/2, 1/2).
        let tail = 0.5 * IncompleteBeta.regularized(df / (df + t * t), a: df / 2, b: 0.5)
        return t >= 0 ? 1 - tail : tail
    }

    /// The p-quantile: the t with P(T ≤ t) = p, for 0 < p < 1.
    ///
    /// Bisection on the CDF, which is monotone: each step halves the bracket, so 200 steps reach
    /// the spacing of doubles; the CDF's own accuracy (about 1e-14, the continued fraction's
    /// tolerance) bounds the result's.
    public static func quantile(_ p: Double, df: Double) -> Double {
        precondition(p > 0 && p < 1 && df > 0)
        if p == 0.5 { return 0 }
        if p < 0.5 { return -quantile(1 - p, df: df) }
        var low = 0.0, high = 1.0
        while cdf(high, df: df) < p { low = high; high *= 2 }
        for _ in 0..<200 {
            let middle = (low + high) / 2
            if middle == low || middle == high { break }
            if cdf(middle, df: df) < p { low = middle } else { high = middle }
        }
        return (low + high) / 2
    }
}

/// The regularized incomplete beta function I_x(a, b).
public enum IncompleteBeta {
    public static func regularized(_ x: Double, a: Double, b: Double) -> Double {
        precondition(a > 0 && b > 0)
        if x <= 0 { return 0 }
        if x >= 1 { return 1 }
        let logFront = lgamma(a + b) - lgamma(a) - lgamma(b) + a * log(x) + b * log1p(-x)
        let front = exp(logFront)
        // The continued fraction converges fast for x < (a+1)/(a+b+2); use the symmetry otherwise.
        if x < (a + 1) / (a + b + 2) { return front * continuedFraction(x, a: a, b: b) / a }
        return 1 - front * continuedFraction(1 - x, a: b, b: a) / b
    }

    /// Lentz's evaluation of the continued fraction for I_x(a, b) (Numerical Recipes' betacf).
    static func continuedFraction(_ x: Double, a: Double, b: Double) -> Double {
        let tiny = 1e-300, epsilon = 1e-15
        let qab = a + b, qap = a + 1, qam = a - 1
        var c = 1.0
        var d = 1 - qab * x / qap
        if abs(d) < tiny { d = tiny }
        d = 1 / d
        var h = d
        for m in 1...10_000 {
            let m = Double(m), m2 = 2 * m
            var aa = m * (b - m) * x / ((qam + m2) * (a + m2))
            d = 1 + aa * d; if abs(d) < tiny { d = tiny }
            c = 1 + aa / c; if abs(c) < tiny { c = tiny }
            d = 1 / d
            h *= d * c
            aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
            d = 1 + aa * d; if abs(d) < tiny { d = tiny }
            c = 1 + aa / c; if abs(c) < tiny { c = tiny }
            d = 1 / d
            let delta = d * c
            h *= delta
            if abs(delta - 1) < epsilon { break }
        }
        return h
    }
}

/// A mean with its spread and 95 % interval, as the reports print and `summary.json` stores it.
public struct Estimate: Codable, Equatable, Sendable {
    public var mean: Double
    /// Sample standard deviation (n − 1) over all runs; nil with one run.
    public var std: Double?
    /// Runs averaged (folds × seeds).
    public var runs: Int
    /// The independent units the interval counts: folds under cross-validation, else seeds.
    public var units: Int
    public var level: Double
    public var lower: Double?
    public var upper: Double?
    /// Degrees of freedom of the t quantile (units − 1).
    public var df: Int?
    /// n_val / n_train of the correction term; 0 for the plain t interval over seeds.
    public var testTrainRatio: Double
    public var method: String

    public static let correctedMethod = "corrected resampled t (Nadeau & Bengio 2003) over fold means"
    public static let seedsMethod = "t over seeds on one validation split (seed noise only)"

    /// Half the interval's width, when there is one.
    public var halfWidth: Double? { upper.map { $0 - mean } }
}

/// One run's held-out value, keyed for grouping and pairing.
public struct FoldValue: Equatable, Sendable {
    /// The held-out fold; nil without cross-validation (one fixed validation split).
    public var fold: Int?
    public var seed: Int
    public var value: Double

    public init(fold: Int?, seed: Int, value: Double) {
        self.fold = fold
        self.seed = seed
        self.value = value
    }
}

public enum Intervals {
    /// The estimate of a held-out metric from runs over folds × seeds.
    ///
    /// Under cross-validation every seed uses the same folds (they come from `data.seed`), so
    /// runs of one fold are not independent resamples: the seeds are averaged within each fold,
    /// and the K fold means get Nadeau and Bengio's corrected resampled t interval,
    /// mean ± t(1 − α/2, K − 1) · sqrt((1/K + n_val/n_train) · s²), s² the fold means' variance.
    /// The n_val/n_train term accounts for the folds' overlapping training sets, which the
    /// plain 1/K would treat as independent. Without folds the units are seeds on one split
    /// (the correction is 0), and the interval says nothing about which images were held out.
    public static func estimate(_ values: [FoldValue], testTrainRatio: Double, level: Double = 0.95) -> Estimate? {
        let finite = values.filter { $0.value.isFinite }
        guard !finite.isEmpty else { return nil }
        let all = finite.map(\.value)
        let mean = all.reduce(0, +) / Double(all.count)
        let crossValidated = finite.contains { $0.fold != nil }
        let units: [Double]
        if crossValidated {
            let byFold = Dictionary(grouping: finite) { $0.fold ?? -1 }
            units = byFold.keys.sorted().map { fold in
                let runs = byFold[fold]!.map(\.value)
                return runs.reduce(0, +) / Double(runs.count)
            }
        } else {
            units = all
        }
        var estimate = Estimate(mean: mean, std: sampleStd(all), runs: all.count, units: units.count, level: level,
                                lower: nil, upper: nil, df: nil, testTrainRatio: crossValidated ? testTrainRatio : 0,
                                method: crossValidated ? Estimate.correctedMethod : Estimate.seedsMethod)
        guard units.count >= 2, let unitStd = sampleStd(units) else { return estimate }
        // The interval is centred on the mean of the unit means (equal to `mean` when every fold has every seed).
        let centre = units.reduce(0, +) / Double(units.count)
        let variance = (1 / Double(units.count) + estimate.testTrainRatio) * unitStd * unitStd
        let t = StudentT.quantile((1 + level) / 2, df: Double(units.count - 1))
        estimate.mean = centre
        estimate.lower = centre - t * variance.squareRoot()
        estimate.upper = centre + t * variance.squareRoot()
        estimate.df = units.count - 1
        return estimate
    }

    /// The paired difference `a − b`: runs matched by fold (cross-validation) or by seed (one split).
    /// Under cross-validation the difference of the two sides' fold means is the unit, so seeds
    /// need not correspond (Keras's seed 1 is not Cria's); folds present on only one side are dropped.
    public static func difference(_ a: [FoldValue], _ b: [FoldValue], testTrainRatio: Double, level: Double = 0.95) -> Estimate? {
        let a = a.filter { $0.value.isFinite }, b = b.filter { $0.value.isFinite }
        let crossValidated = a.contains { $0.fold != nil } && b.contains { $0.fold != nil }
        var paired = [FoldValue]()
        if crossValidated {
            let left = Dictionary(grouping: a) { $0.fold ?? -1 }, right = Dictionary(grouping: b) { $0.fold ?? -1 }
            for fold in left.keys.sorted() {
                guard let l = left[fold], let r = right[fold] else { continue }
                let difference = l.map(\.value).reduce(0, +) / Double(l.count) - r.map(\.value).reduce(0, +) / Double(r.count)
                paired.append(FoldValue(fold: fold, seed: 0, value: difference))
            }
            guard var estimate = self.estimate(paired, testTrainRatio: testTrainRatio, level: level) else { return nil }
            // Report the runs behind the folds, and the spread of the per-fold differences.
            estimate.runs = paired.count
            return estimate
        }
        let right = Dictionary(b.map { ($0.seed, $0.value) }, uniquingKeysWith: { first, _ in first })
        for run in a { if let other = right[run.seed] { paired.append(FoldValue(fold: nil, seed: run.seed, value: run.value - other)) } }
        return estimate(paired, testTrainRatio: 0, level: level)
    }

    static func sampleStd(_ values: [Double]) -> Double? {
        guard values.count > 1 else { return nil }
        let mean = values.reduce(0, +) / Double(values.count)
        return (values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(values.count - 1)).squareRoot()
    }

    /// "+4.1 points, 95 % CI +1.2 to +7.0" for an accuracy difference (fractions in, points out).
    public static func points(_ estimate: Estimate) -> String {
        let mean = String(format: "%+.1f points", estimate.mean * 100)
        guard let lower = estimate.lower, let upper = estimate.upper else { return mean + " (no interval: one unit)" }
        return mean + String(format: ", %.0f %% CI %+.1f to %+.1f", estimate.level * 100, lower * 100, upper * 100)
    }

    /// "helps by +4.1 points, 95 % CI +1.2 to +7.0": the verb says whether the interval excludes zero.
    public static func verdict(_ estimate: Estimate, helps: String = "helps", hurts: String = "hurts") -> String {
        guard let lower = estimate.lower, let upper = estimate.upper else {
            return "cannot be judged (one fold or seed): " + points(estimate)
        }
        if lower > 0 { return "\(helps) by " + points(estimate) }
        if upper < 0 { return "\(hurts) by " + points(estimate) }
        return "makes no clear difference: " + points(estimate)
    }

    /// `0.9231 [0.8950, 0.9512]`.
    public static func formatted(_ estimate: Estimate?, digits: Int = 4) -> String {
        guard let estimate else { return "" }
        let mean = String(format: "%.\(digits)f", estimate.mean)
        guard let lower = estimate.lower, let upper = estimate.upper else { return mean }
        return mean + String(format: " [%.\(digits)f, %.\(digits)f]", lower, upper)
    }
}
