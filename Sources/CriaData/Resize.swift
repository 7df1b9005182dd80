import CriaCore

/// The interpolations of `tf.image.resize` that Cria reproduces.
public enum Interpolation: String, CaseIterable, Sendable {
    case bilinear, nearest, area
}

/// `tf.image.resize` (TF 2, `antialias=False`) on one HWC image, float32 in and out.
///
/// Each method follows its TensorFlow CPU kernel in float32 arithmetic:
/// - bilinear: ResizeBilinear with `half_pixel_centers=True`: source = (x + 0.5)·scale − 0.5,
///   lower = max(floor, 0), upper = min(ceil, size − 1), lerp = source − floor,
///   top/bottom lerped along x first, then along y.
/// - nearest: ResizeNearestNeighbor with half-pixel centres: floor((x + 0.5)·scale), clamped.
/// - area: ResizeArea: each output pixel averages the input box [x·scale, (x+1)·scale) with
///   fractional edge weights.
/// `scale` is `Float(inSize) / Float(outSize)`, as TF's CalculateResizeScale computes it.
public enum Resize {
    public static func resize(_ image: Tensor, height: Int, width: Int, method: Interpolation = .bilinear) -> Tensor {
        precondition(image.rank == 3, "resize expects an HWC image, got shape \(image.shape)")
        return image.scalars.withUnsafeBufferPointer { input in
            run(input.baseAddress!, Geometry(inHeight: image.shape[0], inWidth: image.shape[1], channels: image.shape[2],
                                             rowStride: image.shape[1] * image.shape[2], outHeight: height, outWidth: width),
                method)
        }
    }

    /// Resizes straight from the decoded bytes (no full-size float copy), optionally from
    /// Keras's centred aspect-ratio crop, which is read in place.
    public static func resize(_ image: RGBImage, height: Int, width: Int, method: Interpolation = .bilinear,
                              cropToAspectRatio: Bool = false) -> Tensor {
        var out = [Float](repeating: 0, count: height * width * 3)
        image.pixels.withUnsafeBufferPointer { input in
            out.withUnsafeMutableBufferPointer { output in
                resize(pixels: input.baseAddress!, imageHeight: image.height, imageWidth: image.width,
                       into: output.baseAddress!, height: height, width: width, method: method,
                       cropToAspectRatio: cropToAspectRatio)
            }
        }
        return Tensor(shape: [height, width, 3], scalars: out)
    }

    /// The same, from packed RGB bytes into `height × width × 3` floats the caller owns
    /// (a slot of a dataset's pixel array), so loading allocates nothing per image.
    public static func resize(pixels: UnsafePointer<UInt8>, imageHeight: Int, imageWidth: Int,
                              into output: UnsafeMutablePointer<Float>, height: Int, width: Int,
                              method: Interpolation = .bilinear, cropToAspectRatio: Bool = false) {
        precondition(height > 0 && width > 0, "resize: target size must be positive")
        var box = (top: 0, left: 0, height: imageHeight, width: imageWidth)
        if cropToAspectRatio {
            box = aspectCropBox(height: imageHeight, width: imageWidth, targetHeight: height, targetWidth: width)
        }
        let geometry = Geometry(inHeight: box.height, inWidth: box.width, channels: 3, rowStride: imageWidth * 3,
                                outHeight: height, outWidth: width)
        let input = pixels + (box.top * imageWidth + box.left) * 3
        switch method {
        case .bilinear: bilinear(input, output, geometry)
        case .nearest: nearest(input, output, geometry)
        case .area: area(input, output, geometry)
        }
    }

    static func run<T: PixelScalar>(_ input: UnsafePointer<T>, _ geometry: Geometry, _ method: Interpolation) -> Tensor {
        precondition(geometry.outHeight > 0 && geometry.outWidth > 0, "resize: target size must be positive")
        var out = [Float](repeating: 0, count: geometry.outHeight * geometry.outWidth * geometry.channels)
        out.withUnsafeMutableBufferPointer { output in
            switch method {
            case .bilinear: bilinear(input, output.baseAddress!, geometry)
            case .nearest: nearest(input, output.baseAddress!, geometry)
            case .area: area(input, output.baseAddress!, geometry)
            }
        }
        return Tensor(shape: [geometry.outHeight, geometry.outWidth, geometry.channels], scalars: out)
    }

    /// The crop box of Keras's `smart_resize` (`crop_to_aspect_ratio=True`): the largest centred
    /// box with the target's aspect ratio. Computed in float32 then truncated, as in the graph-mode
    /// branch that `image_dataset_from_directory` runs (its shapes are dynamic there).
    public static func aspectCropBox(height: Int, width: Int, targetHeight: Int, targetWidth: Int)
        -> (top: Int, left: Int, height: Int, width: Int) {
        var cropHeight = Int(Float(width * targetHeight) / Float(targetWidth))
        cropHeight = max(min(height, cropHeight), 1)
        var cropWidth = Int(Float(height * targetWidth) / Float(targetHeight))
        cropWidth = max(min(width, cropWidth), 1)
        let top = Int(Float(height - cropHeight) / 2)
        let left = Int(Float(width - cropWidth) / 2)
        return (top, left, cropHeight, cropWidth)
    }

    public static func centerCrop(_ image: Tensor, toAspectOf targetHeight: Int, _ targetWidth: Int) -> Tensor {
        let box = aspectCropBox(height: image.shape[0], width: image.shape[1],
                                targetHeight: targetHeight, targetWidth: targetWidth)
        return crop(image, top: box.top, left: box.left, height: box.height, width: box.width)
    }

    public static func crop(_ image: Tensor, top: Int, left: Int, height: Int, width: Int) -> Tensor {
        let inWidth = image.shape[1], channels = image.shape[2]
        precondition(top >= 0 && left >= 0 && top + height <= image.shape[0] && left + width <= inWidth,
                     "crop box outside the image")
        var out = [Float]()
        out.reserveCapacity(height * width * channels)
        for y in top..<(top + height) {
            let start = (y * inWidth + left) * channels
            out.append(contentsOf: image.scalars[start..<(start + width * channels)])
        }
        return Tensor(shape: [height, width, channels], scalars: out)
    }

    struct Geometry {
        /// `rowStride` (elements between input rows) lets a crop be read in place.
        let inHeight, inWidth, channels, rowStride, outHeight, outWidth: Int
        var heightScale: Float { Float(inHeight) / Float(outHeight) }
        var widthScale: Float { Float(inWidth) / Float(outWidth) }
    }

    private struct Lerp { var lower: Int; var upper: Int; var lerp: Float }

    private static func halfPixelLerps(inSize: Int, outSize: Int, scale: Float) -> [Lerp] {
        (0..<outSize).map { i in
            let source = (Float(i) + 0.5) * scale - 0.5
            let floored = source.rounded(.down)
            return Lerp(lower: max(Int(floored), 0), upper: min(Int(source.rounded(.up)), inSize - 1),
                        lerp: source - floored)
        }
    }

    static func bilinear<T: PixelScalar>(_ input: UnsafePointer<T>, _ output: UnsafeMutablePointer<Float>, _ g: Geometry) {
        let ys = halfPixelLerps(inSize: g.inHeight, outSize: g.outHeight, scale: g.heightScale)
        let xs = halfPixelLerps(inSize: g.inWidth, outSize: g.outWidth, scale: g.widthScale)
        let c = g.channels
        for y in 0..<g.outHeight {
            let top = input + ys[y].lower * g.rowStride
            let bottom = input + ys[y].upper * g.rowStride
            let yLerp = ys[y].lerp
            for x in 0..<g.outWidth {
                let left = xs[x].lower * c, right = xs[x].upper * c, xLerp = xs[x].lerp
                let o = output + (y * g.outWidth + x) * c
                for k in 0..<c {
                    let topLeft = top[left + k].float, topRight = top[right + k].float
                    let bottomLeft = bottom[left + k].float, bottomRight = bottom[right + k].float
                    let upper = topLeft + (topRight - topLeft) * xLerp
                    let lower = bottomLeft + (bottomRight - bottomLeft) * xLerp
                    o[k] = upper + (lower - upper) * yLerp
                }
            }
        }
    }

    static func nearest<T: PixelScalar>(_ input: UnsafePointer<T>, _ output: UnsafeMutablePointer<Float>, _ g: Geometry) {
        func source(_ i: Int, _ scale: Float, _ size: Int) -> Int {
            max(0, min(Int(((Float(i) + 0.5) * scale).rounded(.down)), size - 1))
        }
        let c = g.channels
        for y in 0..<g.outHeight {
            let sy = source(y, g.heightScale, g.inHeight)
            for x in 0..<g.outWidth {
                let sx = source(x, g.widthScale, g.inWidth)
                let from = input + sy * g.rowStride + sx * c, to = output + (y * g.outWidth + x) * c
                for k in 0..<c { to[k] = from[k].float }
            }
        }
    }

    /// The fractional coverage of input cells start..<end by the box [low, high), as in resize_area_op.cc.
    private static func areaWeights(_ i: Int, scale: Float, size: Int) -> [(index: Int, weight: Float)] {
        let low = Float(i) * scale, high = Float(i + 1) * scale
        let start = Int(low.rounded(.down)), end = Int(high.rounded(.up))
        return (start..<end).map { j in
            let weight: Float
            if Float(j) < low {
                weight = Float(j + 1) > high ? scale : Float(j + 1) - low
            } else {
                weight = Float(j + 1) > high ? high - Float(j) : 1
            }
            return (min(max(j, 0), size - 1), weight)
        }
    }

    static func area<T: PixelScalar>(_ input: UnsafePointer<T>, _ output: UnsafeMutablePointer<Float>, _ g: Geometry) {
        let c = g.channels
        let norm: Float = 1 / (g.heightScale * g.widthScale)
        let xWeights = (0..<g.outWidth).map { areaWeights($0, scale: g.widthScale, size: g.inWidth) }
        var sums = [Float](repeating: 0, count: c), rowSums = [Float](repeating: 0, count: c)
        for y in 0..<g.outHeight {
            let yWeights = areaWeights(y, scale: g.heightScale, size: g.inHeight)
            for x in 0..<g.outWidth {
                for k in 0..<c { sums[k] = 0 }
                for (sy, wy) in yWeights {
                    for k in 0..<c { rowSums[k] = 0 }
                    for (sx, wx) in xWeights[x] {
                        let p = input + sy * g.rowStride + sx * c
                        for k in 0..<c { rowSums[k] += p[k].float * wx }
                    }
                    for k in 0..<c { sums[k] += rowSums[k] * wy }
                }
                let o = output + (y * g.outWidth + x) * c
                for k in 0..<c { o[k] = sums[k] * norm }
            }
        }
    }
}

/// Input element types the resize kernels read: decoded bytes or float images.
public protocol PixelScalar { var float: Float { get } }
extension Float: PixelScalar { @inline(__always) public var float: Float { self } }
extension UInt8: PixelScalar { @inline(__always) public var float: Float { Float(self) } }
