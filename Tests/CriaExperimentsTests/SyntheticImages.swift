import Foundation

/// Tiny class-folder datasets written as 24-bit BMPs (which CriaData decodes like
/// Keras), so runner tests need no downloads: "bright" images are lighter than "dark"
/// ones, with seeded noise so the task is learnable but not trivial.
enum SyntheticImages {
    static func write(to directory: URL, perClass: Int, size: Int = 40, seed: UInt64 = 1) throws {
        var state = seed
        func next() -> UInt8 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return UInt8(truncatingIfNeeded: state >> 56)
        }
        for (classIndex, name) in ["bright", "dark"].enumerated() {
            let folder = directory.appendingPathComponent(name)
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            for i in 0..<perClass {
                var pixels = [UInt8](repeating: 0, count: size * size * 3)
                let base = classIndex == 0 ? 150 : 90
                for p in pixels.indices { pixels[p] = UInt8(clamping: base + Int(next()) / 3 - 42 + (p % 7)) }
                try bmp(width: size, height: size, rgb: pixels).write(to: folder.appendingPathComponent(String(format: "img_%03d.bmp", i)))
            }
        }
    }

    static func bmp(width: Int, height: Int, rgb: [UInt8]) -> Data {
        let rowBytes = (width * 3 + 3) / 4 * 4
        let imageBytes = rowBytes * height
        var data = Data()
        func u16(_ v: Int) { data.append(contentsOf: [UInt8(v & 0xff), UInt8(v >> 8 & 0xff)]) }
        func u32(_ v: Int) { data.append(contentsOf: (0..<4).map { UInt8(v >> (8 * $0) & 0xff) }) }
        data.append(contentsOf: Array("BM".utf8)); u32(54 + imageBytes); u32(0); u32(54)
        u32(40); u32(width); u32(height); u16(1); u16(24); u32(0); u32(imageBytes); u32(2835); u32(2835); u32(0); u32(0)
        for y in (0..<height).reversed() {
            var row = [UInt8]()
            for x in 0..<width {
                let p = (y * width + x) * 3
                row += [rgb[p + 2], rgb[p + 1], rgb[p]]
            }
            row += [UInt8](repeating: 0, count: rowBytes - width * 3)
            data.append(contentsOf: row)
        }
        return data
    }
}
