import CriaReports
import CriaTestSupport
import XCTest

/// Student t quantiles and the cross-validation intervals, against published values and scipy.
final class StatisticsTests: XCTestCase {
    /// Published two-sided 95 % critical values (any t table, 6 decimals).
    func testKnownTQuantiles() {
        XCTAssertEqual(StudentT.quantile(0.975, df: 9), 2.262157, accuracy: 5e-7)
        XCTAssertEqual(StudentT.quantile(0.975, df: 29), 2.045230, accuracy: 5e-7)
        XCTAssertEqual(StudentT.quantile(0.975, df: 1), 12.706205, accuracy: 5e-6)
        XCTAssertEqual(StudentT.quantile(0.025, df: 4), -2.776445, accuracy: 5e-7)
        XCTAssertEqual(StudentT.quantile(0.5, df: 3), 0)
        XCTAssertEqual(StudentT.cdf(0, df: 7), 0.5, accuracy: 1e-15)
    }

    /// scipy.stats.t and scipy.special.betainc at a grid of points. The quantile is a bisection to
    /// the spacing of doubles on a CDF accurate to about 1e-14 (the continued fraction's stopping
    /// tolerance, times a few roundings); 1e-9 relative leaves room for the CDF's error divided by the
    /// density, which is smallest (about 1e-4) at p = 0.995 with df = 1.
    func testAgainstScipy() throws {
        let cases: [(p: Double, df: Double)] = [(0.975, 1), (0.975, 2), (0.975, 9), (0.975, 29), (0.995, 1), (0.995, 14), (0.9, 3.5),
                                                (0.6, 100), (0.999, 5), (0.05, 11), (0.975, 1000)]
        let betas: [(x: Double, a: Double, b: Double)] = [(0.3, 2, 3), (0.9, 0.5, 4.5), (0.01, 10, 0.5), (0.5, 50, 60), (0.999, 3, 3)]
        let script = """
        import sys, json
        from scipy import stats, special
        cases = json.loads(sys.argv[1]); betas = json.loads(sys.argv[2])
        print(json.dumps({"ppf": [stats.t.ppf(p, df) for p, df in cases], "cdf": [stats.t.cdf(1.7, df) for p, df in cases],
                          "beta": [special.betainc(a, b, x) for x, a, b in betas]}))
        """
        let output = try Python.run(script, arguments: [json(cases.map { [$0.p, $0.df] }), json(betas.map { [$0.x, $0.a, $0.b] })],
                                    requiring: ["scipy"])
        let expected = try JSONSerialization.jsonObject(with: Data(output.utf8)) as! [String: [Double]]
        for (i, c) in cases.enumerated() {
            let want = expected["ppf"]![i]
            XCTAssertEqual(StudentT.quantile(c.p, df: c.df), want, accuracy: 1e-9 * abs(want), "t.ppf(\(c.p), \(c.df))")
            XCTAssertEqual(StudentT.cdf(1.7, df: c.df), expected["cdf"]![i], accuracy: 1e-12, "t.cdf(1.7, \(c.df))")
        }
        for (i, b) in betas.enumerated() {
            XCTAssertEqual(IncompleteBeta.regularized(b.x, a: b.a, b: b.b), expected["beta"]![i], accuracy: 1e-12, "betainc\(b)")
        }
    }

    /// The corrected resampled t interval, recomputed in numpy/scipy from its formula:
    /// seeds averaged within folds, then mean ± t(0.975, K−1)·sqrt((1/K + n_val/n_train)·s²).
    func testCorrectedIntervalAgainstScipy() throws {
        var values = [FoldValue]()
        var generator = SystemRandomNumberGenerator()
        for fold in 0..<10 { for seed in 1...3 { values.append(FoldValue(fold: fold, seed: seed, value: Double.random(in: 0.8...1, using: &generator))) } }
        let ratio = 26.0 / 236.0
        let estimate = try XCTUnwrap(Intervals.estimate(values, testTrainRatio: ratio))
        let script = """
        import sys, json
        import numpy as np
        from scipy import stats
        runs = json.loads(sys.argv[1]); ratio = float(sys.argv[2])
        folds = sorted({f for f, s, v in runs})
        means = np.array([np.mean([v for f, s, v in runs if f == k]) for k in folds])
        K = len(means)
        half = stats.t.ppf(0.975, K - 1) * np.sqrt((1 / K + ratio) * means.var(ddof=1))
        allv = np.array([v for f, s, v in runs])
        print(json.dumps([means.mean() - half, means.mean() + half, allv.std(ddof=1), allv.mean()]))
        """
        let output = try Python.run(script, arguments: [json(values.map { [Double($0.fold!), Double($0.seed), $0.value] }), String(ratio)],
                                    requiring: ["numpy", "scipy"])
        let expected = try JSONSerialization.jsonObject(with: Data(output.utf8)) as! [Double]
        // Sums of 30 doubles in a different order: a few ulps of 1, far below 1e-12.
        XCTAssertEqual(try XCTUnwrap(estimate.lower), expected[0], accuracy: 1e-12)
        XCTAssertEqual(try XCTUnwrap(estimate.upper), expected[1], accuracy: 1e-12)
        XCTAssertEqual(try XCTUnwrap(estimate.std), expected[2], accuracy: 1e-12)
        XCTAssertEqual(estimate.mean, expected[3], accuracy: 1e-12)
        XCTAssertEqual(estimate.units, 10)
        XCTAssertEqual(estimate.runs, 30)
        XCTAssertEqual(estimate.df, 9)
    }

    /// Without folds the units are seeds and the correction term is zero: the textbook t interval.
    func testSeedsOnlyIntervalIsThePlainTInterval() throws {
        let values = [0.90, 0.92, 0.88].enumerated().map { FoldValue(fold: nil, seed: $0.offset, value: $0.element) }
        let estimate = try XCTUnwrap(Intervals.estimate(values, testTrainRatio: 0.25))
        // mean 0.9, s = 0.02, half-width t(0.975, 2) · 0.02 / sqrt(3) with t(0.975, 2) = 4.302653.
        XCTAssertEqual(estimate.mean, 0.9, accuracy: 1e-15)
        XCTAssertEqual(try XCTUnwrap(estimate.upper) - 0.9, 4.302653 * 0.02 / 3.0.squareRoot(), accuracy: 1e-7)
        XCTAssertEqual(estimate.testTrainRatio, 0)
        XCTAssertEqual(estimate.method, Estimate.seedsMethod)
        XCTAssertNil(Intervals.estimate([FoldValue(fold: 0, seed: 1, value: 0.9)], testTrainRatio: 0.1)?.lower, "one unit: no interval")
    }

    /// Paired differences use the two sides' fold means, so seeds need not correspond; a fold on one side only is dropped.
    func testPairedDifferenceAndVerdicts() throws {
        var a = [FoldValue](), b = [FoldValue]()
        for fold in 0..<5 {
            for seed in 1...2 { a.append(FoldValue(fold: fold, seed: seed, value: 0.90 + 0.01 * Double(fold) + 0.04 + 0.002 * Double(seed))) }
            b.append(FoldValue(fold: fold, seed: 7, value: 0.90 + 0.01 * Double(fold)))
        }
        b.append(FoldValue(fold: 9, seed: 7, value: 0.5))
        let difference = try XCTUnwrap(Intervals.difference(a, b, testTrainRatio: 0.25))
        XCTAssertEqual(difference.units, 5)
        XCTAssertEqual(difference.mean, 0.043, accuracy: 1e-12)
        // Every fold differs by exactly 0.043: zero spread, a zero-width interval.
        XCTAssertEqual(try XCTUnwrap(difference.lower), 0.043, accuracy: 1e-12)
        XCTAssertTrue(Intervals.verdict(difference).hasPrefix("helps by +4.3 points, 95 % CI +4.3 to +4.3"), Intervals.verdict(difference))
        var unclear = difference
        unclear.lower = -0.01
        XCTAssertTrue(Intervals.verdict(unclear).hasPrefix("makes no clear difference"))
        unclear.mean = -0.03; unclear.lower = -0.05; unclear.upper = -0.01
        XCTAssertEqual(Intervals.verdict(unclear), "hurts by -3.0 points, 95 % CI -5.0 to -1.0")
    }

    private func json(_ value: Any) -> String { String(decoding: try! JSONSerialization.data(withJSONObject: value), as: UTF8.self) }
}
