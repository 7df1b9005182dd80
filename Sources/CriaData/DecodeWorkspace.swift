import CPNG
import CTurboJPEG
import CriaCore
import Foundation

/// Decode state that one thread reuses from image to image: a TurboJPEG handle,
/// the file bytes and the RGB pixels.
///
/// Why: a folder of 1024×768 photographs decoded into fresh arrays spends about a
/// fifth of its time zero-filling and page-faulting 2.4 MB per image. Reused
/// buffers grow to the largest image once and stay warm in the page tables.
/// The pixels are exactly `ImageDecoder`'s (it decodes through a workspace too).
///
/// Not thread-safe: give each thread its own.
public final class DecodeWorkspace {
    /// Size of the last decoded image; `pixels` holds `height × width × 3` bytes.
    public private(set) var width = 0
    public private(set) var height = 0
    private var handle: tjhandle?
    private var pixelBuffer = GrowableBuffer()
    private var fileBuffer = GrowableBuffer()
    private var cmykBuffer = GrowableBuffer()

    public init() {}

    deinit {
        if let handle { tjDestroy(handle) }
        pixelBuffer.free(); fileBuffer.free(); cmykBuffer.free()
    }

    /// The last image's RGB bytes, row-major; valid until the next `decode`.
    public var pixels: UnsafePointer<UInt8> { UnsafePointer(pixelBuffer.bytes) }

    /// A copy of the last image.
    public var image: RGBImage {
        RGBImage(width: width, height: height, pixels: Array(UnsafeBufferPointer(start: pixels, count: width * height * 3)))
    }

    /// Reads and decodes a file; errors name the file.
    public func decode(contentsOf url: URL, maxPixels: Int = ImageDecoder.defaultMaxPixels) throws {
        let count = try readFile(url)
        try decode(UnsafeRawBufferPointer(start: fileBuffer.bytes, count: count), name: url.path, maxPixels: maxPixels)
    }

    public func decode(_ raw: UnsafeRawBufferPointer, name: String, maxPixels: Int = ImageDecoder.defaultMaxPixels) throws {
        width = 0; height = 0
        if raw.isEmpty { throw CriaError("\(name): empty file (0 bytes), not an image") }
        guard let format = ImageFormat.sniff(raw) else {
            throw CriaError("\(name): not a JPEG, PNG, GIF or BMP image (unrecognised header bytes)")
        }
        switch format {
        case .jpeg: try decodeJPEG(raw, name: name, maxPixels: maxPixels)
        case .png: try decodePNG(raw, name: name, maxPixels: maxPixels)
        case .bmp: store(try BMPDecoder.decode(raw, name: name, maxPixels: maxPixels))
        case .gif: throw CriaError("\(name): GIF images are not supported by Cria; convert to PNG or JPEG")
        }
    }

    // MARK: Files

    /// The whole file into `fileBuffer` with POSIX reads (no per-file allocation).
    private func readFile(_ url: URL) throws -> Int {
        let descriptor = open(url.path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw CriaError("\(url.path): cannot read: \(String(cString: strerror(errno)))") }
        defer { close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else { throw CriaError("\(url.path): cannot read: \(String(cString: strerror(errno)))") }
        if (status.st_mode & S_IFMT) == S_IFDIR { throw CriaError("\(url.path): cannot read: is a directory") }
        let size = Int(status.st_size)
        fileBuffer.reserve(max(size, 1))
        var done = 0
        while done < size {
            let got = read(descriptor, fileBuffer.bytes + done, size - done)
            if got < 0 {
                if errno == EINTR { continue }
                throw CriaError("\(url.path): cannot read: \(String(cString: strerror(errno)))")
            }
            if got == 0 { break }  // the file shrank while being read: decode what is there
            done += got
        }
        return done
    }

    // MARK: Formats

    /// TensorFlow's settings (see `ImageDecoder`): JDCT_IFAST, fancy upsampling, scale 1/1,
    /// truncation fatal, other libjpeg warnings ignored, CMYK converted with TF's formula.
    private func decodeJPEG(_ raw: UnsafeRawBufferPointer, name: String, maxPixels: Int) throws {
        if handle == nil { handle = tjInitDecompress() }
        guard let handle else { throw CriaError("\(name): cannot initialise TurboJPEG") }
        let source = raw.bindMemory(to: UInt8.self).baseAddress!
        var width: Int32 = 0, height: Int32 = 0, subsampling: Int32 = 0, colorspace: Int32 = 0
        if tjDecompressHeader3(handle, source, UInt(raw.count), &width, &height, &subsampling, &colorspace) != 0 {
            throw CriaError("\(name): invalid JPEG: \(String(cString: tjGetErrorStr2(handle)))")
        }
        try ImageDecoder.checkSize(width: Int(width), height: Int(height), maxPixels: maxPixels, name: name)
        let cmyk = colorspace == Int32(TJCS_CMYK.rawValue) || colorspace == Int32(TJCS_YCCK.rawValue)
        let pixelCount = Int(width) * Int(height)
        let target: UnsafeMutablePointer<UInt8>
        if cmyk { cmykBuffer.reserve(pixelCount * 4); target = cmykBuffer.bytes } else { pixelBuffer.reserve(pixelCount * 3); target = pixelBuffer.bytes }
        let status = tjDecompress2(handle, source, UInt(raw.count), target, width, 0, height,
                                   cmyk ? Int32(TJPF_CMYK.rawValue) : Int32(TJPF_RGB.rawValue), TJFLAG_FASTDCT)
        if status != 0 {
            let message = String(cString: tjGetErrorStr2(handle))
            // Warnings (corrupt-but-decodable data) pass, as in TensorFlow; a premature
            // end of data is fatal there because try_recover_truncated defaults to false.
            let fatal = tjGetErrorCode(handle) == Int32(TJERR_FATAL.rawValue) || message.contains("Premature end")
            if fatal { throw CriaError("\(name): invalid or truncated JPEG: \(message)") }
        }
        if cmyk {
            pixelBuffer.reserve(pixelCount * 3)
            ImageDecoder.cmykToRGB(cmykBuffer.bytes, pixelBuffer.bytes, count: pixelCount, adobe: ImageDecoder.hasAdobeMarker(raw))
        }
        self.width = Int(width); self.height = Int(height)
    }

    private func decodePNG(_ raw: UnsafeRawBufferPointer, name: String, maxPixels: Int) throws {
        let source = raw.bindMemory(to: UInt8.self).baseAddress!
        var message = [CChar](repeating: 0, count: 256)
        var width: UInt32 = 0, height: UInt32 = 0
        if cria_png_header(source, raw.count, &width, &height, &message, message.count) != 0 {
            throw CriaError("\(name): invalid PNG: \(String(cString: message))")
        }
        try ImageDecoder.checkSize(width: Int(width), height: Int(height), maxPixels: maxPixels, name: name)
        let count = Int(width) * Int(height) * 3
        pixelBuffer.reserve(count)
        if cria_png_decode_rgb8(source, raw.count, pixelBuffer.bytes, count, &message, message.count) != 0 {
            throw CriaError("\(name): invalid or corrupt PNG: \(String(cString: message))")
        }
        self.width = Int(width); self.height = Int(height)
    }

    private func store(_ image: RGBImage) {
        pixelBuffer.reserve(image.pixels.count)
        image.pixels.withUnsafeBufferPointer { pixelBuffer.bytes.update(from: $0.baseAddress!, count: $0.count) }
        width = image.width; height = image.height
    }
}

/// Manually managed bytes that only grow: contents are not preserved across `reserve`.
private struct GrowableBuffer {
    private(set) var bytes = UnsafeMutablePointer<UInt8>.allocate(capacity: 1)
    private(set) var capacity = 1

    mutating func reserve(_ count: Int) {
        guard count > capacity else { return }
        bytes.deallocate()
        bytes = .allocate(capacity: count)
        capacity = count
    }

    func free() { bytes.deallocate() }
}
