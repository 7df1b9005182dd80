import CPNG
import CriaCore
import Foundation

/// Writes 8-bit RGB images as PNG through libpng (contact sheets, previews).
public enum PNGWriter {
    /// `pixels` is H × W × 3 float32 in [0, 255] (Cria's image layout); values are rounded and clamped.
    public static func write(_ pixels: Tensor, to url: URL) throws {
        guard pixels.shape.count == 3, pixels.shape[2] == 3, pixels.shape[0] > 0, pixels.shape[1] > 0 else {
            throw CriaError("\(url.path): a PNG needs an H×W×3 image, got \(describeShape(pixels.shape))")
        }
        let height = pixels.shape[0], width = pixels.shape[1]
        let bytes = pixels.scalars.map { UInt8(max(0, min(255, $0.rounded()))) }
        var out: UnsafeMutablePointer<UInt8>?
        var size = 0
        var message = [CChar](repeating: 0, count: 200)
        let status = cria_png_encode_rgb(bytes, UInt32(width), UInt32(height), &out, &size, &message, message.count)
        guard status == 0, let out else { throw CriaError("\(url.path): cannot encode PNG: \(String(cString: message))") }
        defer { free(out) }
        try AtomicFile.write(Data(bytes: out, count: size), to: url)
    }
}
