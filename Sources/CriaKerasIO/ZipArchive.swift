import CZlib
import CriaCore
import Foundation

/// Reads the entries of a ZIP archive, enough for Keras 3 `.keras` files.
///
/// Keras writes `.keras` archives with `zipfile.ZIP_STORED`, so entries are
/// read without decompression; a deflated entry is reported clearly rather
/// than misread.
///
/// Every entry read is checked as Python's zipfile checks it: its stored size against
/// the central directory, and its CRC-32. A `.keras` file with a flipped byte is an
/// error naming the entry, never weights computed from corrupted bytes.
public struct ZipArchive {
    public struct Entry {
        public let name: String
        let method: UInt16
        let compressedSize: Int
        let uncompressedSize: Int
        let crc32: UInt32
        let localHeaderOffset: Int
        /// Central-directory bytes 6..<28 (version needed, flags, method, time, date, CRC-32, sizes),
        /// which the local header repeats at 4..<26.
        let sharedFields: [UInt8]
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
        guard entry.compressedSize == entry.uncompressedSize else {
            throw CriaError("\(source): \(name) is corrupt: stored entry's sizes differ (\(entry.compressedSize) vs \(entry.uncompressedSize) bytes)")
        }
        let offset = entry.localHeaderOffset
        guard offset + 30 <= bytes.count, ZipArchive.u32(bytes, offset) == 0x0403_4b50 else {
            throw CriaError("\(source): corrupt local header for \(name)")
        }
        // The local header repeats the central directory's fields; with flag bit 3 (a data
        // descriptor follows the data) its CRC and sizes may be zero, so only the first 10 bytes must agree.
        let compared = entry.sharedFields[2] & 0x08 != 0 ? 10 : 22
        guard Array(bytes[offset + 4 ..< offset + 4 + compared]) == Array(entry.sharedFields.prefix(compared)) else {
            throw CriaError("\(source): \(name) is corrupt: its local header disagrees with the central directory")
        }
        let localNameLength = Int(ZipArchive.u16(bytes, offset + 26))
        guard offset + 30 + localNameLength <= bytes.count,
              Array(bytes[offset + 30 ..< offset + 30 + localNameLength]) == Array(name.utf8) else {
            throw CriaError("\(source): corrupt local header for \(name) (its name differs from the central directory's)")
        }
        let start = offset + 30 + localNameLength + Int(ZipArchive.u16(bytes, offset + 28))
        guard start + entry.compressedSize <= bytes.count else {
            throw CriaError("\(source): \(name) is truncated (archive ends early)")
        }
        let crc = bytes.withUnsafeBufferPointer { buffer -> UInt32 in
            // zlib's crc32 takes a 32-bit length: feed it in chunks.
            var crc = CZlib.crc32(0, nil, 0)
            var position = start
            while position < start + entry.compressedSize {
                let length = min(1 << 30, start + entry.compressedSize - position)
                crc = CZlib.crc32(crc, buffer.baseAddress! + position, UInt32(length))
                position += length
            }
            return UInt32(truncatingIfNeeded: crc)
        }
        guard crc == entry.crc32 else {
            throw CriaError("\(source): \(name) is corrupt: CRC-32 \(String(format: "%08x", crc)) does not match the archive's \(String(format: "%08x", entry.crc32))")
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
        // A single-disk archive (Keras writes no other): both entry counts agree, and the central
        // directory ends exactly where the end record begins.
        guard u16(bytes, end + 4) == 0, u16(bytes, end + 6) == 0, Int(u16(bytes, end + 8)) == count,
              offset <= end, offset + Int(u32(bytes, end + 12)) == end else {
            throw CriaError("\(source): corrupt ZIP end-of-central-directory record")
        }
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
                                 crc32: u32(bytes, offset + 16),
                                 localHeaderOffset: Int(u32(bytes, offset + 42)), sharedFields: Array(bytes[offset + 6 ..< offset + 28])))
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
