import CriaCore
import Foundation

/// A random stream for one image in one epoch: SplitMix64 keyed by (seed, epoch, index),
/// so augmentation does not depend on thread scheduling or on which images came before.
public struct AugmentationRandom {
    private var state: UInt64

    public init(seed: UInt64, epoch: Int, index: Int) {
        state = seed
        state = Self.mix(state ^ 0x9E37_79B9_7F4A_7C15 &* UInt64(truncatingIfNeeded: epoch &+ 1))
        state = Self.mix(state ^ 0xC2B2_AE3D_27D4_EB4F &* UInt64(truncatingIfNeeded: index &+ 1))
    }

    static func mix(_ value: UInt64) -> UInt64 {
        var z = value &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    public mutating func next() -> UInt64 {
        state = state &+ 0x9E37_79B9_7F4A_7C15
        return Self.mix(state)
    }

    /// Uniform in [low, high), like `keras.random.uniform(minval=low, maxval=high)`.
    public mutating func uniform(_ low: Double, _ high: Double) -> Double {
        low + (high - low) * Double(next() >> 11) / 9_007_199_254_740_992
    }
}

/// One Keras 3 augmentation layer, with Keras's argument conventions
/// (keras/src/layers/preprocessing/image_preprocessing/).
///
/// Factor ranges as Keras stores them (`self.factor`):
/// - RandomRotation(f): (−f, f) as fractions of a full turn, angle uniform in [360·lo, 360·hi] degrees.
/// - RandomZoom(f) / RandomTranslation(f, g): (−f, f); zoom = 1 + draw (above 1 zooms out);
///   translation = draw × size in pixels; zoom's width reuses the height draw when no width factor.
/// - RandomBrightness(f): (−f, f); delta = draw × (value range width).
/// - RandomContrast(f): Keras 3 bounds the factor to [0, 1] and stores (max(−f, 0), f) = (0, f),
///   then draws in [1 − 0, 1 + f]: contrast is only ever increased. Cria reproduces this quirk;
///   pass an explicit range `(a, b)` to draw in [1 − a, 1 + b] as the docs describe.
/// Defaults: fill_mode "reflect", interpolation "bilinear", fill_value 0, value_range (0, 255),
/// RandomFlip mode "horizontal_and_vertical" (one draw flips both axes together).
public struct AugmentationLayer: Sendable {
    public enum Kind: Sendable {
        case flip(FlipMode), rotation, zoom, translation, contrast, brightness
        case crop(height: Int, width: Int)
    }

    public var kind: Kind
    /// The height (or only) factor range, as Keras's `self.factor` / `height_lower, height_upper`.
    public var factor: (lower: Double, upper: Double) = (0, 0)
    public var widthFactor: (lower: Double, upper: Double)?
    public var fillMode: FillMode = .reflect
    public var interpolation: AffineInterpolation = .bilinear
    public var fillValue: Float = 0
    public var valueRange: (low: Float, high: Float) = (0, 255)

    public var factorRange: [Double] { [factor.lower, factor.upper] }

    /// Keras's `_set_factor` for a single number: `(max(-|f|, lowerBound), |f|)`.
    static func symmetric(_ f: Double, lowerBound: Double = -1) -> (Double, Double) {
        (max(-abs(f), lowerBound), abs(f))
    }

    static func sorted(_ range: (Double, Double)) -> (Double, Double) {
        range.0 <= range.1 ? range : (range.1, range.0)
    }

    public static func randomFlip(_ mode: FlipMode = .horizontalAndVertical) -> AugmentationLayer {
        AugmentationLayer(kind: .flip(mode))
    }

    public static func randomRotation(_ factor: Double, fillMode: FillMode = .reflect, interpolation: AffineInterpolation = .bilinear,
                                      fillValue: Float = 0) -> AugmentationLayer {
        randomRotation(range: symmetric(factor), fillMode: fillMode, interpolation: interpolation, fillValue: fillValue)
    }

    public static func randomRotation(range: (Double, Double), fillMode: FillMode = .reflect,
                                      interpolation: AffineInterpolation = .bilinear, fillValue: Float = 0) -> AugmentationLayer {
        AugmentationLayer(kind: .rotation, factor: sorted(range), fillMode: fillMode, interpolation: interpolation, fillValue: fillValue)
    }

    public static func randomZoom(_ heightFactor: Double, widthFactor: Double? = nil, fillMode: FillMode = .reflect,
                                  interpolation: AffineInterpolation = .bilinear, fillValue: Float = 0) -> AugmentationLayer {
        AugmentationLayer(kind: .zoom, factor: symmetric(heightFactor, lowerBound: -.infinity),
                          widthFactor: widthFactor.map { symmetric($0, lowerBound: -.infinity) },
                          fillMode: fillMode, interpolation: interpolation, fillValue: fillValue)
    }

    public static func randomTranslation(_ heightFactor: Double, _ widthFactor: Double, fillMode: FillMode = .reflect,
                                         interpolation: AffineInterpolation = .bilinear, fillValue: Float = 0) -> AugmentationLayer {
        AugmentationLayer(kind: .translation, factor: symmetric(heightFactor, lowerBound: -.infinity),
                          widthFactor: symmetric(widthFactor, lowerBound: -.infinity),
                          fillMode: fillMode, interpolation: interpolation, fillValue: fillValue)
    }

    public static func randomContrast(_ factor: Double, valueRange: (Float, Float) = (0, 255)) -> AugmentationLayer {
        AugmentationLayer(kind: .contrast, factor: symmetric(factor, lowerBound: 0), valueRange: valueRange)
    }

    public static func randomContrast(range: (Double, Double), valueRange: (Float, Float) = (0, 255)) -> AugmentationLayer {
        AugmentationLayer(kind: .contrast, factor: sorted(range), valueRange: valueRange)
    }

    public static func randomBrightness(_ factor: Double, valueRange: (Float, Float) = (0, 255)) -> AugmentationLayer {
        AugmentationLayer(kind: .brightness, factor: symmetric(factor), valueRange: valueRange)
    }

    public static func randomCrop(height: Int, width: Int) -> AugmentationLayer {
        AugmentationLayer(kind: .crop(height: height, width: width))
    }

    /// Keras's argument checks, as one-line errors.
    public func validate() throws {
        func inside(_ r: (lower: Double, upper: Double), _ low: Double, _ high: Double, _ name: String) throws {
            guard r.lower >= low, r.upper <= high else {
                throw CriaError("\(name) factor \(r) must lie in [\(low), \(high)]")
            }
        }
        switch kind {
        case .flip: break
        case .rotation, .brightness: try inside(factor, -1, 1, "\(kind)")
        case .contrast: try inside(factor, 0, 1, "contrast")
        case .zoom, .translation:
            try inside(factor, -1, 1, "\(kind) height")
            if let widthFactor { try inside(widthFactor, -1, 1, "\(kind) width") }
            guard factor.lower > -1, (widthFactor?.lower ?? 0) > -1 else { throw CriaError("\(kind) factor must be above -1") }
        case let .crop(height, width):
            guard height > 0, width > 0 else { throw CriaError("random crop size \(height)×\(width) must be positive") }
        }
    }

    public func drawRotationDegrees(_ random: inout AugmentationRandom) -> Float {
        Float(random.uniform(factor.lower * 360, factor.upper * 360))
    }

    /// Draws this layer's parameters and applies the pinned transform.
    public func apply(_ image: Tensor, _ random: inout AugmentationRandom) -> Tensor {
        let height = image.shape[0], width = image.shape[1]
        switch kind {
        case let .flip(mode):
            guard random.uniform(0, 1) <= 0.5 else { return image }
            return ImageTransforms.flip(image, horizontal: mode != .vertical, vertical: mode != .horizontal)
        case .rotation:
            return ImageTransforms.rotate(image, degrees: drawRotationDegrees(&random), interpolation: interpolation,
                                          fillMode: fillMode, fillValue: fillValue)
        case .zoom:
            let heightZoom = Float(random.uniform(1 + factor.lower, 1 + factor.upper))
            let widthZoom = widthFactor.map { Float(random.uniform(1 + $0.lower, 1 + $0.upper)) } ?? heightZoom
            return ImageTransforms.zoom(image, heightZoom: heightZoom, widthZoom: widthZoom, interpolation: interpolation,
                                        fillMode: fillMode, fillValue: fillValue)
        case .translation:
            let dy = Float(random.uniform(factor.lower, factor.upper) * Double(height))
            let w = widthFactor ?? factor
            let dx = Float(random.uniform(w.lower, w.upper) * Double(width))
            return ImageTransforms.translate(image, dx: dx, dy: dy, interpolation: interpolation, fillMode: fillMode, fillValue: fillValue)
        case .contrast:
            let value = Float(random.uniform(1 - factor.lower, 1 + factor.upper))
            return ImageTransforms.adjustContrast(image, factor: value, valueRange: valueRange)
        case .brightness:
            let delta = Float(random.uniform(factor.lower, factor.upper)) * (valueRange.high - valueRange.low)
            return ImageTransforms.adjustBrightness(image, delta: delta, valueRange: valueRange)
        case let .crop(cropHeight, cropWidth):
            let top: Int, left: Int
            if height > cropHeight && width > cropWidth {
                top = Int(random.uniform(0, Double(height - cropHeight + 1)))
                left = Int(random.uniform(0, Double(width - cropWidth + 1)))
            } else {
                (top, left) = ImageTransforms.cropFallbackOffsets(height: height, width: width, cropHeight: cropHeight, cropWidth: cropWidth)
            }
            return ImageTransforms.crop(image, top: top, left: left, height: cropHeight, width: cropWidth)
        }
    }
}

/// A `keras.Sequential` of augmentation layers, applied per image during training only.
public struct AugmentationPipeline: Sendable {
    public var layers: [AugmentationLayer]
    public var seed: UInt64

    public init(_ layers: [AugmentationLayer], seed: UInt64) {
        self.layers = layers
        self.seed = seed
    }

    public func validate() throws { for layer in layers { try layer.validate() } }

    /// The augmented image for dataset position `index` in `epoch`: deterministic in (seed, epoch, index).
    public func apply(_ image: Tensor, epoch: Int, index: Int) -> Tensor {
        var random = AugmentationRandom(seed: seed, epoch: epoch, index: index)
        var result = image
        for layer in layers { result = layer.apply(result, &random) }
        return result
    }
}
