import CriaCore
import Foundation

/// Reads the entries of a ZIP archive, enough for Keras 3 `.keras` files.
///
/// Keras writes `.keras` archives with `zipfile.ZIP_STORED`, so entries are
/// read without decompression; a deflated entry is reported clearly rather
/// than misread.
public struct ZipArchive {
    public struct Entry {
        public let name: String
        let method: UInt16
        let compressedSize: Int
        let uncompressedSize: Int
        let localHeaderOffset: Int
    }

    public let source: String
    public let entries: [Entry]
    private let bytes: [UInt8]

    public init(data: Data, source: String) throws {
        self.source = source
        bytes = [UInt8](data)
        entries = try ZipArchive.readCentralDirectory(bytes, source: source)
    }

    public static func isZip(_ data: Data) -> Bool {
        data.count >= 4 && data.prefix(4) == Data([0x50, 0x4b, 0x03, 0x04])
    }

    public func data(for name: String) throws -> Data {
        guard let entry = entries.first(where: { $0.name == name }) else {
            throw CriaError("\(source): archive has no \(name) (entries: \(entries.map(\.name).joined(separator: ", ")))")
        }
        guard entry.method == 0 else {
            throw CriaError("\(source): \(name) is compressed (method \(entry.method)); Keras writes .keras entries stored, so re-save it with Keras")
        }
        let offset = entry.localHeaderOffset
        guard offset + 30 <= bytes.count, ZipArchive.u32(bytes, offset) == 0x0403_4b50 else {
            throw CriaError("\(source): corrupt local header for \(name)")
        }
        let start = offset + 30 + Int(ZipArchive.u16(bytes, offset + 26)) + Int(ZipArchive.u16(bytes, offset + 28))
        guard start + entry.compressedSize <= bytes.count else {
            throw CriaError("\(source): \(name) is truncated (archive ends early)")
        }
        return Data(bytes[start ..< start + entry.compressedSize])
    }

    private static func readCentralDirectory(_ bytes: [UInt8], source: String) throws -> [Entry] {
        // The end-of-central-directory record sits in the last 22 + 65535 bytes (its comment may follow it).
        guard bytes.count >= 22 else { throw CriaError("\(source): truncated ZIP archive") }
        var end = bytes.count - 22
        let lowest = max(0, bytes.count - 22 - 65535)
        while end >= lowest && u32(bytes, end) != 0x0605_4b50 { end -= 1 }
        guard end >= lowest else { throw CriaError("\(source): truncated ZIP archive (no end-of-central-directory record)") }
        let count = Int(u16(bytes, end + 10))
        var offset = Int(u32(bytes, end + 16))
        var entries: [Entry] = []
        for _ in 0..<count {
            guard offset + 46 <= bytes.count, u32(bytes, offset) == 0x0201_4b50 else {
                throw CriaError("\(source): corrupt ZIP central directory")
            }
            let nameLength = Int(u16(bytes, offset + 28))
            let extraLength = Int(u16(bytes, offset + 30))
            let commentLength = Int(u16(bytes, offset + 32))
            guard offset + 46 + nameLength <= bytes.count else { throw CriaError("\(source): corrupt ZIP central directory") }
            let name = String(decoding: bytes[offset + 46 ..< offset + 46 + nameLength], as: UTF8.self)
            entries.append(Entry(name: name, method: u16(bytes, offset + 10),
                                 compressedSize: Int(u32(bytes, offset + 20)), uncompressedSize: Int(u32(bytes, offset + 24)),
                                 localHeaderOffset: Int(u32(bytes, offset + 42))))
            offset += 46 + nameLength + extraLength + commentLength
        }
        return entries
    }

    static func u16(_ bytes: [UInt8], _ offset: Int) -> UInt16 {
        UInt16(bytes[offset]) | UInt16(bytes[offset + 1]) << 8
    }

    static func u32(_ bytes: [UInt8], _ offset: Int) -> UInt32 {
        UInt32(bytes[offset]) | UInt32(bytes[offset + 1]) << 8 | UInt32(bytes[offset + 2]) << 16 | UInt32(bytes[offset + 3]) << 24
    }
}
