import CriaCore
@testable import CriaData
import CriaTestSupport
import Foundation
import XCTest

/// Cria's augmentation draws against Keras's, in distribution.
///
/// Tests/Fixtures/augmentation/keras_draws.json (Tests/Fixtures/generate/make_augmentation_draws.py)
/// holds 2000 parameters per transform that Keras 3 drew, each measured back from Keras's output
/// on a probe image. Here Cria augments the same probes, the same measurement recovers its draws,
/// and a two-sample Kolmogorov–Smirnov test compares the two samples.
///
/// Significance: α = 1e-3 per transform, seven transforms, so a correct implementation fails the
/// suite with probability ≤ 7e-3 over the choice of seeds; both samples are fixed by their seeds,
/// so the outcome is deterministic (it cannot flake). Power: with n = m = 2000 the test rejects at
/// this level once the CDFs differ by D ≥ 1.95·√(2/2000) ≈ 0.062 — `testKSRejectsAWrongDistribution`
/// shows it catches RandomRotation(0.1) against Keras's 0.2 and a symmetric contrast range against
/// Keras 3's one-sided one.
final class AugmentationDistributionTests: XCTestCase {
    static let alpha = 1e-3
    static let criaSeed: UInt64 = 20_261_203

    struct KerasDraws: Decodable {
        let count: Int
        let draws: [String: [Double]]
    }

    private func kerasDraws() throws -> KerasDraws {
        try JSONDecoder().decode(KerasDraws.self, from: Data(contentsOf: Fixtures.url("augmentation/keras_draws.json")))
    }

    /// The layer Keras drew from, as Cria builds it (the generator's factors).
    static func layer(_ kind: String) -> AugmentationLayer {
        switch kind {
        case "flip": return .randomFlip(.horizontal)
        case "rotation": return .randomRotation(0.2)
        case "zoom": return .randomZoom(0.1)
        case "translation_x", "translation_y": return .randomTranslation(0.1, 0.1)
        case "contrast": return .randomContrast(0.1)
        case "brightness": return .randomBrightness(0.1)
        default: fatalError(kind)
        }
    }

    /// Cria's draws for `kind`, measured from Cria's outputs exactly as the generator measures Keras's.
    private func criaDraws(_ kind: String, layer: AugmentationLayer, count: Int) throws -> [Double] {
        let probe = try Fixtures.npy("augmentation/probe.npy"), grey = try Fixtures.npy("augmentation/grey.npy")
        let source = ["contrast", "brightness"].contains(kind) ? grey : probe
        let pipeline = AugmentationPipeline([layer], seed: Self.criaSeed)
        var values = [Double](repeating: 0, count: count)
        values.withUnsafeMutableBufferPointer { slots in
            let slots = SendableBuffer(slots)
            Threads.parallelFor(count) { range in
                for i in range {
                    let output = pipeline.apply(source, epoch: 0, index: i)
                    slots.buffer[i] = ProbeMeasure.recover(kind, output: output, probe: probe, grey: grey)
                }
            }
        }
        return values
    }

    func testEveryTransformMatchesKerasInDistribution() throws {
        let keras = try kerasDraws()
        XCTAssertEqual(Set(keras.draws.keys), ["flip", "rotation", "zoom", "translation_x", "translation_y", "contrast", "brightness"])
        for kind in keras.draws.keys.sorted() {
            let expected = try XCTUnwrap(keras.draws[kind])
            XCTAssertEqual(expected.count, keras.count)
            let actual = try criaDraws(kind, layer: Self.layer(kind), count: keras.count)
            let (d, p) = KolmogorovSmirnov.twoSample(actual, expected)
            print("augmentation KS \(kind): D = \(d), p = \(p), Cria mean \(actual.mean), Keras mean \(expected.mean)")
            XCTAssertGreaterThan(p, Self.alpha, "\(kind): Cria's draws differ from Keras's (D = \(d), p = \(p))")
        }
    }

    /// The recovered values lie in Keras's documented ranges (the measurement itself is sound).
    func testRecoveredDrawsLieInKerasRanges() throws {
        let ranges: [String: ClosedRange<Double>] = [
            "flip": 0...1, "rotation": -72.1...72.1, "zoom": 0.895...1.105, "translation_x": -0.101...0.101,
            "translation_y": -0.101...0.101, "contrast": 0.9999...1.1001, "brightness": -0.1001...0.1001,
        ]
        for (kind, range) in ranges {
            let cria = try criaDraws(kind, layer: Self.layer(kind), count: 200)
            XCTAssert(cria.allSatisfy(range.contains), "\(kind): \(cria.min()!)…\(cria.max()!) outside \(range)")
            XCTAssertGreaterThan(cria.max()! - cria.min()!, 0.5 * (range.upperBound - range.lowerBound), kind)
        }
    }

    /// The test has power: deliberately wrong layers are rejected at the same α.
    func testKSRejectsAWrongDistribution() throws {
        let keras = try kerasDraws()
        let wrongRotation = try criaDraws("rotation", layer: .randomRotation(0.1), count: keras.count)
        XCTAssertLessThan(KolmogorovSmirnov.twoSample(wrongRotation, keras.draws["rotation"]!).p, Self.alpha)
        // Contrast drawn in [0.9, 1.1], as Keras's docs describe, rather than Keras 3's [1, 1.1].
        let wrongContrast = try criaDraws("contrast", layer: .randomContrast(range: (0.1, 0.1)), count: keras.count)
        XCTAssertLessThan(KolmogorovSmirnov.twoSample(wrongContrast, keras.draws["contrast"]!).p, Self.alpha)
        // And the statistic itself on known samples: identical samples D = 0, disjoint D = 1.
        XCTAssertEqual(KolmogorovSmirnov.twoSample([1, 2, 3], [1, 2, 3]).d, 0)
        XCTAssertEqual(KolmogorovSmirnov.twoSample([1, 2, 3], [4, 5]).d, 1)
        XCTAssertEqual(KolmogorovSmirnov.twoSample([0, 0, 1, 1], [0, 1, 1, 1]).d, 0.25, accuracy: 1e-12)
        // Q_KS(1.0) = 0.26999967 (Kolmogorov distribution, tabulated).
        XCTAssertEqual(KolmogorovSmirnov.kolmogorovQ(1.0), 0.26999967, accuracy: 1e-7)
    }

    /// Images stay with their labels through the threaded, augmented batch path, and every slot
    /// is written once. Image i is the constant i + 1 (so an unwritten slot reads 0): flips,
    /// rotations, zooms and translations with reflect fill and contrast (about the image's own
    /// mean) keep a constant image constant, up to bilinear rounding (weights summing to 1 in
    /// float32: a few ulp of 40).
    func testAugmentedBatchesKeepEveryImageWithItsLabel() throws {
        let count = 37, size = 12
        var pixels = [Float]()
        for i in 0..<count { pixels += [Float](repeating: Float(i + 1), count: size * size * 3) }
        let labels = (0..<count).map { ($0 * 7) % 3 }
        var dataset = ImageDataset(directory: URL(fileURLWithPath: "/dev/null"), classNames: ["a", "b", "c"],
                                   files: (0..<count).map { "x/\($0).png" }, labels: labels, height: size, width: size,
                                   pixels: pixels, storage: .float32, labelMode: .int, unreadable: [],
                                   batchSize: 8, shuffle: true, seed: 3)
        dataset.augmentation = AugmentationPipeline([.randomFlip(.horizontalAndVertical), .randomRotation(0.5), .randomZoom(0.3),
                                                     .randomTranslation(0.2, 0.2), .randomContrast(0.5)], seed: 9)
        for epoch in 0..<3 {
            var seen = [Int]()
            for batch in dataset.batches(epoch: epoch) {
                let n = batch.indices.count
                XCTAssertEqual(batch.images.shape, [n, size, size, 3])
                for (slot, index) in batch.indices.enumerated() {
                    XCTAssertEqual(Int(batch.labels.scalars[slot]), labels[index], "epoch \(epoch) slot \(slot)")
                    let image = batch.images.scalars[(slot * size * size * 3)..<((slot + 1) * size * size * 3)]
                    let expected = Float(index + 1)
                    XCTAssert(image.allSatisfy { abs($0 - expected) <= 1e-4 * expected },
                              "epoch \(epoch): slot \(slot) should hold image \(index): \(image.min()!)…\(image.max()!)")
                }
                seen += batch.indices
            }
            XCTAssertEqual(seen.sorted(), Array(0..<count), "epoch \(epoch): every image exactly once")
        }
    }
}

/// The generator's measurements (make_augmentation_draws.py `recover`), on HWC tensors.
enum ProbeMeasure {
    /// Centroid (x, y) and central moments (mu20, mu02, mu11) of channel `c`.
    static func moments(_ image: Tensor, channel c: Int) -> (cx: Double, cy: Double, mu20: Double, mu02: Double, mu11: Double) {
        let h = image.shape[0], w = image.shape[1], channels = image.shape[2]
        var m = 0.0, sx = 0.0, sy = 0.0
        for y in 0..<h { for x in 0..<w {
            let v = Double(image.scalars[(y * w + x) * channels + c])
            m += v; sx += v * Double(x); sy += v * Double(y)
        } }
        let cx = sx / m, cy = sy / m
        var mu20 = 0.0, mu02 = 0.0, mu11 = 0.0
        for y in 0..<h { for x in 0..<w {
            let v = Double(image.scalars[(y * w + x) * channels + c]), dx = Double(x) - cx, dy = Double(y) - cy
            mu20 += v * dx * dx; mu02 += v * dy * dy; mu11 += v * dx * dy
        } }
        return (cx, cy, mu20 / m, mu02 / m, mu11 / m)
    }

    static func channel(_ image: Tensor, _ c: Int) -> [Double] {
        stride(from: c, to: image.count, by: image.shape[2]).map { Double(image.scalars[$0]) }
    }

    static func recover(_ kind: String, output: Tensor, probe: Tensor, grey: Tensor) -> Double {
        let size = Double(output.shape[1])
        switch kind {
        case "flip":
            let w = output.shape[1], h = output.shape[0]
            var left = 0.0, right = 0.0
            for y in 0..<h { for x in 0..<w {
                let v = Double(output.scalars[(y * w + x) * 3 + 1])
                if x < w / 2 { left += v } else { right += v }
            } }
            return right > left ? 1 : 0
        case "rotation":
            let m = moments(output, channel: 0)
            return -0.5 * atan2(2 * m.mu11, m.mu20 - m.mu02) * 180 / .pi
        case "zoom":
            return (moments(probe, channel: 0).mu20 / moments(output, channel: 0).mu20).squareRoot()
        case "translation_x":
            return (moments(output, channel: 0).cx - moments(probe, channel: 0).cx) / size
        case "translation_y":
            return (moments(output, channel: 0).cy - moments(probe, channel: 0).cy) / Double(output.shape[0])
        case "contrast":
            return channel(output, 0).std / channel(grey, 0).std
        case "brightness":
            return (channel(output, 0).mean - channel(grey, 0).mean) / 255
        default:
            fatalError(kind)
        }
    }
}

/// Two-sample Kolmogorov–Smirnov test with the asymptotic p-value
/// (Numerical Recipes §14.3: λ = (√nₑ + 0.12 + 0.11/√nₑ)·D, nₑ = nm/(n+m), p = Q_KS(λ)).
/// With ties (the 0/1 flip draws) the asymptotic p is conservative: it over-states p.
enum KolmogorovSmirnov {
    static func twoSample(_ a: [Double], _ b: [Double]) -> (d: Double, p: Double) {
        let x = a.sorted(), y = b.sorted()
        var i = 0, j = 0, d = 0.0
        while i < x.count && j < y.count {
            let v = min(x[i], y[j])
            while i < x.count && x[i] == v { i += 1 }
            while j < y.count && y[j] == v { j += 1 }
            d = max(d, abs(Double(i) / Double(x.count) - Double(j) / Double(y.count)))
        }
        let ne = Double(x.count * y.count) / Double(x.count + y.count)
        let lambda = (ne.squareRoot() + 0.12 + 0.11 / ne.squareRoot()) * d
        return (d, kolmogorovQ(lambda))
    }

    /// Q_KS(λ) = 2 Σ_{k≥1} (−1)^{k−1} exp(−2k²λ²), which is 1 at λ = 0.
    static func kolmogorovQ(_ lambda: Double) -> Double {
        if lambda < 0.2 { return 1 }
        var sum = 0.0
        for k in 1...100 {
            let term = exp(-2 * Double(k * k) * lambda * lambda)
            sum += (k % 2 == 1 ? term : -term)
            if term < 1e-16 { break }
        }
        return min(max(2 * sum, 0), 1)
    }
}

extension Array where Element == Double {
    var mean: Double { reduce(0, +) / Double(count) }
    var std: Double {
        let m = mean
        return (map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(count)).squareRoot()
    }
}

/// The Cria half of the trajectory fixture (Tests/Fixtures/generate/make_trajectory_fixture.py):
/// Cria's own augmented batches of the training fixture's first 6 images, one batch per
/// epoch for 4 epochs, RandomFlip("horizontal") + RandomRotation(0.2), written as
/// (epochs, 6, 96, 96, 3) to $CRIA_EXPORT_TRAJECTORY_BATCHES for Keras to replay.
final class TrajectoryBatchExport: XCTestCase {
    static let images = 6, epochs = 4, seed: UInt64 = 91

    static func batches() throws -> Tensor {
        let inputs = try Fixtures.npy("keras/train/inputs.npy")
        let size = inputs.count / inputs.shape[0]
        let pipeline = AugmentationPipeline([.randomFlip(.horizontal), .randomRotation(0.2)], seed: seed)
        var scalars = [Float]()
        for epoch in 0..<epochs {
            for i in 0..<images {
                let image = Tensor(shape: Array(inputs.shape.dropFirst()), scalars: Array(inputs.scalars[i * size ..< (i + 1) * size]))
                scalars += pipeline.apply(image, epoch: epoch, index: i).scalars
            }
        }
        return Tensor(shape: [epochs, images] + Array(inputs.shape.dropFirst()), scalars: scalars)
    }

    func testExportTrajectoryBatches() throws {
        let batches = try Self.batches()
        XCTAssertEqual(batches, try Self.batches(), "deterministic by seed")
        guard let path = ProcessInfo.processInfo.environment["CRIA_EXPORT_TRAJECTORY_BATCHES"] else {
            throw Skip.decision("set CRIA_EXPORT_TRAJECTORY_BATCHES=file.npy to export the trajectory batches")
        }
        try NPY.write(batches, to: URL(fileURLWithPath: path))
    }
}
