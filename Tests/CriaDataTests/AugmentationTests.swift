import CriaCore
import CriaData
import CriaTestSupport
import Foundation
import XCTest

final class AugmentationTests: XCTestCase {
    private func cases() throws -> [String: [String: Any]] {
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: Fixtures.url("data/augment/index.json"))) as! [String: Any]
        return json["cases"] as! [String: [String: Any]]
    }

    /// Each transform with Keras's parameters pinned, against the layer's `transform_images`.
    func testPinnedTransformsMatchKeras() throws {
        let source = try Fixtures.npy("data/augment/source.npy")
        let all = try cases()
        XCTAssertGreaterThan(all.count, 40)
        for (name, p) in all.sorted(by: { $0.key < $1.key }) {
            let expected = try Fixtures.npy("data/augment/\(name).npy")
            func float(_ key: String) -> Float { Float(p[key] as! Double) }
            func fill() -> FillMode { FillMode(rawValue: p["fill_mode"] as! String)! }
            let actual: Tensor
            var tolerance: Float = 1e-3 / 255
            switch name.split(separator: "_")[0] {
            case "flip":
                let mode = FlipMode(rawValue: p["mode"] as! String)!
                actual = ImageTransforms.flip(source, horizontal: mode != .vertical, vertical: mode != .horizontal)
            case "rotate":
                let interpolation = AffineInterpolation(rawValue: p["interpolation"] as! String)!
                actual = ImageTransforms.rotate(source, degrees: float("degrees"), interpolation: interpolation,
                                                fillMode: fill(), fillValue: float("fill_value"))
                // Nearest sampling can pick the neighbour where sin/cos differ from TF's in the last bit.
                if interpolation == .nearest { tolerance = 1 }
            case "zoom":
                actual = ImageTransforms.zoom(source, heightZoom: float("height_zoom"), widthZoom: float("width_zoom"), fillMode: fill())
            case "translate":
                actual = ImageTransforms.translate(source, dx: float("dx"), dy: float("dy"), fillMode: fill())
            case "contrast":
                actual = ImageTransforms.adjustContrast(source, factor: float("factor"))
            case "brightness":
                actual = ImageTransforms.adjustBrightness(source, delta: float("delta"))
            case "crop":
                actual = ImageTransforms.crop(source, top: p["top"] as! Int, left: p["left"] as! Int,
                                              height: p["height"] as! Int, width: p["width"] as! Int)
            default:
                XCTFail("unknown fixture \(name)"); continue
            }
            assertMatches(actual, expected, relative: tolerance, name)
            if tolerance == 1 { assertMostlyExact(actual, expected, name) }
        }
    }

    func testCropFallbackOffsetsMatchKeras() throws {
        let p = try XCTUnwrap(try cases()["crop_20x12_fallback"])
        let offsets = ImageTransforms.cropFallbackOffsets(height: 12, width: 16, cropHeight: 20, cropWidth: 12)
        XCTAssertEqual(offsets.top, p["top"] as! Int)
        XCTAssertEqual(offsets.left, p["left"] as! Int)
    }

    func testFactorConventionsMatchKeras() throws {
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: Fixtures.url("data/augment/index.json"))) as! [String: Any]
        let ranges = json["factor_ranges"] as! [String: [Double]]
        XCTAssertEqual(AugmentationLayer.randomContrast(0.2).factorRange, ranges["contrast_0.2"]!.pair)
        XCTAssertEqual(AugmentationLayer.randomBrightness(0.2).factorRange, ranges["brightness_0.2"]!.pair)
        XCTAssertEqual(AugmentationLayer.randomRotation(0.2).factorRange, ranges["rotation_0.2"]!.pair)
    }

    /// Same seed, epoch and index give the same image; another epoch gives another draw.
    func testPipelineIsDeterministicPerSeedEpochAndIndex() throws {
        let source = try Fixtures.npy("data/augment/source.npy")
        let pipeline = AugmentationPipeline([.randomFlip(.horizontal), .randomRotation(0.2), .randomZoom(0.1),
                                             .randomTranslation(0.1, 0.1), .randomContrast(0.2), .randomBrightness(0.1)],
                                            seed: 7)
        let a = pipeline.apply(source, epoch: 3, index: 11)
        XCTAssertEqual(a, pipeline.apply(source, epoch: 3, index: 11))
        XCTAssertNotEqual(a, pipeline.apply(source, epoch: 4, index: 11))
        XCTAssertEqual(a.shape, source.shape)
        let cropped = AugmentationPipeline([.randomCrop(height: 8, width: 10)], seed: 1).apply(source, epoch: 0, index: 0)
        XCTAssertEqual(cropped.shape, [8, 10, 3])
    }

    func testRotationAnglesStayInKerasRange() {
        var draws = AugmentationRandom(seed: 5, epoch: 0, index: 0)
        let layer = AugmentationLayer.randomRotation(0.2)
        for _ in 0..<1000 {
            let degrees = layer.drawRotationDegrees(&draws)
            XCTAssert(degrees >= -72 && degrees <= 72)
        }
    }

    private func assertMostlyExact(_ actual: Tensor, _ expected: Tensor, _ name: String) {
        let differing = zip(actual.scalars, expected.scalars).filter { abs($0 - $1) > 1e-3 }.count
        print("parity \(name): \(differing) of \(actual.count) values differ")
        XCTAssertLessThanOrEqual(differing, actual.count / 50, name)
    }
}

private extension Array where Element == Double {
    var pair: [Double] { self }
}
