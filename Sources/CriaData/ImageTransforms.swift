import CriaCore
import Foundation

public enum FillMode: String, CaseIterable, Sendable { case reflect, constant, nearest, wrap }
public enum AffineInterpolation: String, CaseIterable, Sendable { case bilinear, nearest }
public enum FlipMode: String, CaseIterable, Sendable {
    case horizontal, vertical
    case horizontalAndVertical = "horizontal_and_vertical"
}

/// The deterministic halves of Keras 3's augmentation layers: each takes its parameters
/// pinned, so it can be compared with the layer's `transform_images` on a hand-made
/// transformation. Images are HWC float32 tensors.
public enum ImageTransforms {
    /// RandomFlip's transform. `horizontal_and_vertical` in Keras uses one draw for both axes.
    public static func flip(_ image: Tensor, horizontal: Bool, vertical: Bool) -> Tensor {
        let h = image.shape[0], w = image.shape[1], c = image.shape[2]
        var out = [Float](repeating: 0, count: image.count)
        for y in 0..<h {
            let sy = vertical ? h - 1 - y : y
            for x in 0..<w {
                let sx = horizontal ? w - 1 - x : x
                for k in 0..<c { out[(y * w + x) * c + k] = image.scalars[(sy * w + sx) * c + k] }
            }
        }
        return Tensor(shape: image.shape, scalars: out)
    }

    /// Keras's `_compute_affine_matrix` for a rotation about the centre ((w−1)/2, (h−1)/2),
    /// in float32 as the layer computes it. The 8 numbers map output (x, y) to input coordinates.
    public static func rotationMatrix(degrees: Float, height: Int, width: Int) -> [Float] {
        let radians = degrees * Float(Double.pi / 180)
        let cx = Float(0.5) * (Float(width) - 1), cy = Float(0.5) * (Float(height) - 1)
        let cosine = cos(radians), sine = sin(radians)
        let a0 = cosine, a1 = -sine, b0 = sine, b1 = cosine
        return [a0, a1, cx - cx * a0 - cy * a1, b0, b1, cy - cx * b0 - cy * b1, 0, 0]
    }

    /// RandomZoom's `_get_zoom_matrix`: factors above 1 zoom out.
    public static func zoomMatrix(heightZoom: Float, widthZoom: Float, height: Int, width: Int) -> [Float] {
        [widthZoom, 0, (Float(width) - 1) / 2 * (1 - widthZoom),
         0, heightZoom, (Float(height) - 1) / 2 * (1 - heightZoom), 0, 0]
    }

    public static func rotate(_ image: Tensor, degrees: Float, interpolation: AffineInterpolation = .bilinear,
                              fillMode: FillMode = .reflect, fillValue: Float = 0) -> Tensor {
        affine(image, rotationMatrix(degrees: degrees, height: image.shape[0], width: image.shape[1]),
               interpolation: interpolation, fillMode: fillMode, fillValue: fillValue)
    }

    public static func zoom(_ image: Tensor, heightZoom: Float, widthZoom: Float, interpolation: AffineInterpolation = .bilinear,
                            fillMode: FillMode = .reflect, fillValue: Float = 0) -> Tensor {
        affine(image, zoomMatrix(heightZoom: heightZoom, widthZoom: widthZoom, height: image.shape[0], width: image.shape[1]),
               interpolation: interpolation, fillMode: fillMode, fillValue: fillValue)
    }

    /// RandomTranslation's transform; `dx`, `dy` in pixels (Keras draws a fraction and multiplies by the size).
    public static func translate(_ image: Tensor, dx: Float, dy: Float, interpolation: AffineInterpolation = .bilinear,
                                 fillMode: FillMode = .reflect, fillValue: Float = 0) -> Tensor {
        affine(image, [1, 0, -dx, 0, 1, -dy, 0, 0], interpolation: interpolation, fillMode: fillMode, fillValue: fillValue)
    }

    /// TensorFlow's ImageProjectiveTransformV3 (what Keras's TF backend `affine_transform` calls),
    /// following tensorflow/core/kernels/image/image_ops.h in float32.
    public static func affine(_ image: Tensor, _ m: [Float], interpolation: AffineInterpolation,
                              fillMode: FillMode, fillValue: Float) -> Tensor {
        precondition(m.count == 8, "affine transform needs 8 numbers")
        let h = image.shape[0], w = image.shape[1], c = image.shape[2]
        var out = [Float](repeating: 0, count: image.count)
        image.scalars.withUnsafeBufferPointer { input in
            func read(_ y: Int, _ x: Int, _ k: Int) -> Float {
                (0 <= y && y < h && 0 <= x && x < w) ? input[(y * w + x) * c + k] : fillValue
            }
            for y in 0..<h {
                for x in 0..<w {
                    let o = (y * w + x) * c
                    let fx = Float(x), fy = Float(y)
                    let projection = m[6] * fx + m[7] * fy + 1
                    if projection == 0 {
                        for k in 0..<c { out[o + k] = fillValue }
                        continue
                    }
                    let inX = map((m[0] * fx + m[1] * fy + m[2]) / projection, w, fillMode)
                    let inY = map((m[3] * fx + m[4] * fy + m[5]) / projection, h, fillMode)
                    switch interpolation {
                    case .nearest:
                        let ry = Int(inY.rounded(.toNearestOrAwayFromZero)), rx = Int(inX.rounded(.toNearestOrAwayFromZero))
                        for k in 0..<c { out[o + k] = read(ry, rx, k) }
                    case .bilinear:
                        let yFloor = inY.rounded(.down), xFloor = inX.rounded(.down)
                        let yCeil = yFloor + 1, xCeil = xFloor + 1
                        let y0 = Int(yFloor), x0 = Int(xFloor), y1 = Int(yCeil), x1 = Int(xCeil)
                        for k in 0..<c {
                            let top = (xCeil - inX) * read(y0, x0, k) + (inX - xFloor) * read(y0, x1, k)
                            let bottom = (xCeil - inX) * read(y1, x0, k) + (inX - xFloor) * read(y1, x1, k)
                            out[o + k] = (yCeil - inY) * top + (inY - yFloor) * bottom
                        }
                    }
                }
            }
        }
        return Tensor(shape: image.shape, scalars: out)
    }

    /// TF's MapCoordinate for each fill mode; constant leaves the coordinate for the fill test.
    static func map(_ coordinate: Float, _ length: Int, _ mode: FillMode) -> Float {
        let len = Float(length)
        var v = coordinate
        switch mode {
        case .constant:
            return v
        case .nearest:
            return min(max(v, 0), len - 1)
        case .reflect:
            if v < 0 {
                if length <= 1 { v = 0 } else {
                    let size2 = 2 * len
                    if v < size2 { v = size2 * Float(Int(-v / size2)) + v }
                    v = v < -len ? v + size2 : -v - 1
                }
            } else if v > len - 1 {
                if length <= 1 { v = 0 } else {
                    let size2 = 2 * len
                    v -= size2 * Float(Int(v / size2))
                    if v >= len { v = size2 - v - 1 }
                }
            }
        case .wrap:
            if v < 0 {
                if length <= 1 { v = 0 } else {
                    let size = len - 1
                    v += len * (Float(Int(-v / size)) + 1)
                }
            } else if v > len - 1 {
                if length <= 1 { v = 0 } else {
                    let size = len - 1
                    v -= len * Float(Int(v / size))
                }
            }
        }
        return min(max(v, 0), len - 1)
    }

    /// RandomContrast's `_adjust_contrast` then clip: (x − mean) · factor + mean per channel,
    /// the mean taken over height then width.
    public static func adjustContrast(_ image: Tensor, factor: Float, valueRange: (Float, Float) = (0, 255)) -> Tensor {
        let h = image.shape[0], w = image.shape[1], c = image.shape[2]
        var means = [Float](repeating: 0, count: c)
        for k in 0..<c {
            var columnMeans: Float = 0
            for x in 0..<w {
                var sum: Float = 0
                for y in 0..<h { sum += image.scalars[(y * w + x) * c + k] }
                columnMeans += sum / Float(h)
            }
            means[k] = columnMeans / Float(w)
        }
        var out = image.scalars
        for i in 0..<out.count {
            let mean = means[i % c]
            out[i] = min(max((out[i] - mean) * factor + mean, valueRange.0), valueRange.1)
        }
        return Tensor(shape: image.shape, scalars: out)
    }

    /// RandomBrightness's transform: add `delta` (already scaled to the value range), then clip.
    public static func adjustBrightness(_ image: Tensor, delta: Float, valueRange: (Float, Float) = (0, 255)) -> Tensor {
        Tensor(shape: image.shape, scalars: image.scalars.map { min(max($0 + delta, valueRange.0), valueRange.1) })
    }

    /// RandomCrop's `transform_images`: slice `height × width` at (top, left); when the image is
    /// not larger than the crop (Keras's fallback offsets), the slice is short and is resized
    /// bilinearly to the crop size.
    public static func crop(_ image: Tensor, top: Int, left: Int, height: Int, width: Int) -> Tensor {
        let h = image.shape[0], w = image.shape[1]
        let sliceHeight = max(0, min(top + height, h) - top), sliceWidth = max(0, min(left + width, w) - left)
        let sliced = Resize.crop(image, top: top, left: left, height: sliceHeight, width: sliceWidth)
        if sliceHeight == height && sliceWidth == width { return sliced }
        return Resize.resize(sliced, height: height, width: width, method: .bilinear)
    }

    /// RandomCrop's offsets when the image is not larger than the crop in both dimensions:
    /// the centred aspect-ratio box of `smart_resize`, computed in Python floats.
    public static func cropFallbackOffsets(height: Int, width: Int, cropHeight: Int, cropWidth: Int) -> (top: Int, left: Int) {
        var boxHeight = Int(Double(width * cropHeight) / Double(cropWidth))
        boxHeight = max(min(height, boxHeight), 1)
        var boxWidth = Int(Double(height * cropWidth) / Double(cropHeight))
        boxWidth = max(min(width, boxWidth), 1)
        return (Int(Double(height - boxHeight) / 2), Int(Double(width - boxWidth) / 2))
    }
}
