import CriaCore

/// Uncompressed 24- and 32-bit Windows bitmaps, the kinds TensorFlow's `decode_bmp` reads.
enum BMPDecoder {
    static func decode(_ raw: UnsafeRawBufferPointer, name: String, maxPixels: Int) throws -> RGBImage {
        func u32(_ at: Int) -> Int { Int(raw[at]) | Int(raw[at + 1]) << 8 | Int(raw[at + 2]) << 16 | Int(raw[at + 3]) << 24 }
        func u16(_ at: Int) -> Int { Int(raw[at]) | Int(raw[at + 1]) << 8 }
        guard raw.count >= 54 else { throw CriaError("\(name): truncated BMP header") }
        let offset = u32(10)
        let width = Int(Int32(truncatingIfNeeded: u32(18)))
        let signedHeight = Int(Int32(truncatingIfNeeded: u32(22)))
        let bitsPerPixel = u16(28)
        let compression = u32(30)
        guard bitsPerPixel == 24 || bitsPerPixel == 32, compression == 0 || (compression == 3 && bitsPerPixel == 32) else {
            throw CriaError("\(name): unsupported BMP (\(bitsPerPixel) bits per pixel, compression \(compression)); only uncompressed 24/32-bit BMPs are read")
        }
        let height = abs(signedHeight)
        try ImageDecoder.checkSize(width: width, height: height, maxPixels: maxPixels, name: name)
        let bytesPerPixel = bitsPerPixel / 8
        let rowBytes = (width * bytesPerPixel + 3) / 4 * 4
        guard offset >= 0, offset + rowBytes * height <= raw.count else {
            throw CriaError("\(name): truncated BMP: pixel data needs \(rowBytes * height) bytes after offset \(offset), file has \(raw.count)")
        }
        var pixels = [UInt8](repeating: 0, count: width * height * 3)
        for y in 0..<height {
            // Positive heights are stored bottom-up.
            let sourceRow = signedHeight > 0 ? height - 1 - y : y
            let base = offset + sourceRow * rowBytes
            for x in 0..<width {
                let p = base + x * bytesPerPixel
                let o = (y * width + x) * 3
                pixels[o] = raw[p + 2]; pixels[o + 1] = raw[p + 1]; pixels[o + 2] = raw[p]
            }
        }
        return RGBImage(width: width, height: height, pixels: pixels)
    }
}
