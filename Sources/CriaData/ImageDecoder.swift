import CriaCore
import Foundation

/// A decoded image: packed RGB bytes, row-major, `height × width × 3`.
public struct RGBImage: Equatable, Sendable {
    public let width: Int
    public let height: Int
    public var pixels: [UInt8]

    public init(width: Int, height: Int, pixels: [UInt8]) {
        precondition(pixels.count == width * height * 3, "RGBImage: \(pixels.count) bytes for \(width)×\(height)×3")
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    /// float32 HWC in [0, 255], what `tf.io.decode_image(...)` gives after a cast.
    public var tensor: Tensor {
        Tensor(shape: [height, width, 3], scalars: pixels.map(Float.init))
    }
}

public enum ImageFormat: String, Sendable {
    case jpeg, png, bmp, gif

    /// TensorFlow's `decode_image` picks the decoder by magic bytes, not by extension; so does Cria.
    public static func sniff(_ bytes: UnsafeRawBufferPointer) -> ImageFormat? {
        func starts(_ magic: [UInt8]) -> Bool {
            bytes.count >= magic.count && zip(bytes, magic).allSatisfy { $0 == $1 }
        }
        if starts([0xFF, 0xD8, 0xFF]) { return .jpeg }
        if starts([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) { return .png }
        if starts(Array("GIF8".utf8)) { return .gif }
        if starts(Array("BM".utf8)) { return .bmp }
        return nil
    }
}

/// Decodes image files to RGB8 exactly as `tf.io.decode_image(channels=3, expand_animations=False)`.
///
/// TensorFlow settings matched (tensorflow/core/kernels/image/decode_image_op.cc and
/// tensorflow/core/lib/jpeg/jpeg_mem.cc):
/// - JPEG: `dct_method` defaults to JDCT_IFAST ("sacrificing image quality for speed"),
///   so Cria passes TJFLAG_FASTDCT; fancy upsampling stays on (no TJFLAG_FASTUPSAMPLE);
///   scale 1/1; grayscale is expanded by libjpeg's gray→RGB; CMYK/YCCK is decoded to
///   CMYK and converted with TF's integer formula (inverted when an Adobe APP14 marker
///   is present); a truncated file is an error (TF sets try_recover_truncated=false);
///   other libjpeg warnings ("extraneous bytes") are ignored as TF ignores them.
/// - PNG: see `Sources/CPNG/shim.h`: alpha stripped, 16-bit → high byte, no gamma.
/// - BMP: uncompressed 24- and 32-bit (BGR[A], bottom-up or top-down), alpha dropped.
/// - GIF: not supported (a clear error), since Cria has no LZW decoder.
public enum ImageDecoder {
    /// Images above this many pixels are refused before any pixel memory is allocated.
    /// 100 M pixels is 300 MB of RGB; a 20000×20000 photograph is refused.
    public static let defaultMaxPixels = 100_000_000

    public static func decode(contentsOf url: URL, maxPixels: Int = defaultMaxPixels) throws -> RGBImage {
        let workspace = DecodeWorkspace()
        try workspace.decode(contentsOf: url, maxPixels: maxPixels)
        return workspace.image
    }

    public static func decode(_ data: Data, name: String, maxPixels: Int = defaultMaxPixels) throws -> RGBImage {
        let workspace = DecodeWorkspace()
        try data.withUnsafeBytes { try workspace.decode($0, name: name, maxPixels: maxPixels) }
        return workspace.image
    }

    static func checkSize(width: Int, height: Int, maxPixels: Int, name: String) throws {
        guard width > 0, height > 0 else { throw CriaError("\(name): image has zero size (\(width)×\(height))") }
        if width * height > maxPixels {
            throw CriaError("\(name): image is \(width)×\(height) (\(width * height / 1_000_000) M pixels), above the limit of \(maxPixels / 1_000_000) M pixels; downscale it first")
        }
    }

    // MARK: JPEG

    /// TensorFlow's conversion in jpeg_mem.cc: Adobe files store inverted CMYK.
    static func cmykToRGB(_ cmyk: UnsafePointer<UInt8>, _ rgb: UnsafeMutablePointer<UInt8>, count: Int, adobe: Bool) {
        for i in 0..<count {
            let c = Int(cmyk[4 * i]), m = Int(cmyk[4 * i + 1]), y = Int(cmyk[4 * i + 2]), k = Int(cmyk[4 * i + 3])
            if adobe {
                rgb[3 * i] = UInt8(k * c / 255); rgb[3 * i + 1] = UInt8(k * m / 255); rgb[3 * i + 2] = UInt8(k * y / 255)
            } else {
                rgb[3 * i] = UInt8((255 - k) * (255 - c) / 255)
                rgb[3 * i + 1] = UInt8((255 - k) * (255 - m) / 255)
                rgb[3 * i + 2] = UInt8((255 - k) * (255 - y) / 255)
            }
        }
    }

    /// libjpeg's `saw_Adobe_marker`, which TurboJPEG does not expose: an APP14 segment
    /// starting "Adobe" among the markers before the first scan.
    static func hasAdobeMarker(_ raw: UnsafeRawBufferPointer) -> Bool {
        var i = 2
        while i + 4 <= raw.count {
            guard raw[i] == 0xFF else { return false }
            let marker = raw[i + 1]
            if marker == 0xFF { i += 1; continue }
            if marker == 0xDA || marker == 0xD9 { return false }
            let length = Int(raw[i + 2]) << 8 | Int(raw[i + 3])
            if marker == 0xEE, length >= 7, i + 9 <= raw.count,
               Array(raw[(i + 4)..<(i + 9)]) == Array("Adobe".utf8) { return true }
            i += 2 + length
        }
        return false
    }
}
