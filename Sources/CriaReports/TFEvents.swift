import CriaCore
import Foundation

/// TensorBoard event files, written without TensorFlow or a protobuf library.
///
/// A file is a sequence of TFRecords:
///   uint64 length (little-endian) · uint32 masked CRC32C(length) · data · uint32 masked CRC32C(data)
/// where each `data` is a serialised `tensorflow.Event`. Only the fields
/// TensorBoard needs for scalars are encoded, by hand:
///   Event   { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5; }
///   Summary { repeated Value value = 1; }
///   Value   { string tag = 1; float simple_value = 2; }
/// The first record is `file_version: "brain.Event:2"`, as TensorFlow writes it.
public enum TFEvents {
    /// A scalar as read back from an event file.
    public struct Scalar: Equatable, Sendable {
        public var wallTime: Double
        public var step: Int64
        public var tag: String
        public var value: Float
    }

    public static let fileVersion = "brain.Event:2"

    /// TensorFlow's name pattern, so TensorBoard's directory scan finds the file.
    public static func fileName(wallTime: Double = Date().timeIntervalSince1970) -> String {
        let host = ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? "localhost"
        return "events.out.tfevents.\(Int(wallTime)).\(host).\(getpid()).0.v2"
    }

    // MARK: Records

    /// One framed TFRecord around `data`.
    public static func record(_ data: [UInt8]) -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(data.count + 16)
        let length = littleEndian(UInt64(data.count))
        out += length
        out += littleEndian(maskedCRC32C(length))
        out += data
        out += littleEndian(maskedCRC32C(data))
        return out
    }

    /// The payloads of every record in `bytes`, checking both CRCs; a truncated tail is an error.
    public static func records(_ bytes: [UInt8], source: String) throws -> [[UInt8]] {
        var result = [[UInt8]]()
        var offset = 0
        while offset < bytes.count {
            guard offset + 12 <= bytes.count else { throw CriaError("\(source): truncated record header at byte \(offset)") }
            let lengthBytes = Array(bytes[offset ..< offset + 8])
            let length = Int(readLittleEndian(lengthBytes, as: UInt64.self))
            guard readLittleEndian(Array(bytes[offset + 8 ..< offset + 12]), as: UInt32.self) == maskedCRC32C(lengthBytes) else {
                throw CriaError("\(source): bad length CRC at byte \(offset)")
            }
            let start = offset + 12
            guard length >= 0, start + length + 4 <= bytes.count else { throw CriaError("\(source): truncated record at byte \(offset)") }
            let data = Array(bytes[start ..< start + length])
            guard readLittleEndian(Array(bytes[start + length ..< start + length + 4]), as: UInt32.self) == maskedCRC32C(data) else {
                throw CriaError("\(source): bad data CRC at byte \(offset)")
            }
            result.append(data)
            offset = start + length + 4
        }
        return result
    }

    // MARK: Events

    public static func fileVersionEvent(wallTime: Double) -> [UInt8] {
        var event = [UInt8]()
        appendDouble(field: 1, wallTime, to: &event)
        appendBytes(field: 3, Array(fileVersion.utf8), to: &event)
        return event
    }

    public static func scalarEvent(wallTime: Double, step: Int64, tag: String, value: Float) -> [UInt8] {
        var summaryValue = [UInt8]()
        appendBytes(field: 1, Array(tag.utf8), to: &summaryValue)
        appendTag(field: 2, wireType: 5, to: &summaryValue)
        summaryValue += littleEndian(value.bitPattern)
        var summary = [UInt8]()
        appendBytes(field: 1, summaryValue, to: &summary)
        var event = [UInt8]()
        appendDouble(field: 1, wallTime, to: &event)
        appendTag(field: 2, wireType: 0, to: &event)
        appendVarint(UInt64(bitPattern: step), to: &event)
        appendBytes(field: 5, summary, to: &event)
        return event
    }

    /// Reads every scalar in an event file (simple_value summaries only), checking the framing.
    public static func readScalars(_ url: URL) throws -> [Scalar] {
        let bytes = [UInt8](try Data(contentsOf: url))
        var scalars = [Scalar]()
        for data in try records(bytes, source: url.path) {
            var wallTime = 0.0, step: Int64 = 0
            var values = [(String, Float)]()
            try forEachField(data) { field, payload in
                switch (field, payload) {
                case (1, .fixed64(let bits)): wallTime = Double(bitPattern: bits)
                case (2, .varint(let raw)): step = Int64(bitPattern: raw)
                case (5, .bytes(let summary)):
                    try forEachField(summary) { field, payload in
                        guard field == 1, case .bytes(let value) = payload else { return }
                        var tag = "", number: Float?
                        try forEachField(value) { field, payload in
                            if field == 1, case .bytes(let text) = payload { tag = String(decoding: text, as: UTF8.self) }
                            if field == 2, case .fixed32(let bits) = payload { number = Float(bitPattern: bits) }
                        }
                        if let number { values.append((tag, number)) }
                    }
                default: break
                }
            }
            for (tag, value) in values { scalars.append(Scalar(wallTime: wallTime, step: step, tag: tag, value: value)) }
        }
        return scalars
    }

    // MARK: CRC32C (Castagnoli), as TFRecord uses it

    private static let crcTable: [UInt32] = (0 ..< 256).map { index -> UInt32 in
        var crc = UInt32(index)
        for _ in 0 ..< 8 { crc = crc & 1 != 0 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
        return crc
    }

    public static func crc32c(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes { crc = crcTable[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8) }
        return crc ^ 0xFFFF_FFFF
    }

    /// TFRecord stores CRCs rotated and offset, because a CRC of data that itself holds CRCs is weak.
    public static func maskedCRC32C(_ bytes: [UInt8]) -> UInt32 {
        let crc = crc32c(bytes)
        return ((crc >> 15) | (crc << 17)) &+ 0xA282_EAD8
    }

    // MARK: Protobuf wire format (the subset used here)

    enum Payload { case varint(UInt64), fixed64(UInt64), bytes([UInt8]), fixed32(UInt32) }

    static func forEachField(_ bytes: [UInt8], _ body: (Int, Payload) throws -> Void) throws {
        var offset = 0
        func varint() throws -> UInt64 {
            var result: UInt64 = 0, shift: UInt64 = 0
            while true {
                guard offset < bytes.count, shift < 64 else { throw CriaError("malformed protobuf varint") }
                let byte = bytes[offset]
                offset += 1
                result |= UInt64(byte & 0x7F) << shift
                if byte & 0x80 == 0 { return result }
                shift += 7
            }
        }
        func take(_ count: Int) throws -> [UInt8] {
            guard count >= 0, offset + count <= bytes.count else { throw CriaError("truncated protobuf field") }
            defer { offset += count }
            return Array(bytes[offset ..< offset + count])
        }
        while offset < bytes.count {
            let key = try varint()
            let field = Int(key >> 3)
            switch key & 7 {
            case 0: try body(field, .varint(try varint()))
            case 1: try body(field, .fixed64(readLittleEndian(try take(8), as: UInt64.self)))
            case 2: try body(field, .bytes(try take(Int(try varint()))))
            case 5: try body(field, .fixed32(readLittleEndian(try take(4), as: UInt32.self)))
            default: throw CriaError("unsupported protobuf wire type \(key & 7)")
            }
        }
    }

    private static func appendTag(field: Int, wireType: UInt64, to out: inout [UInt8]) {
        appendVarint(UInt64(field) << 3 | wireType, to: &out)
    }

    private static func appendVarint(_ value: UInt64, to out: inout [UInt8]) {
        var value = value
        while value >= 0x80 {
            out.append(UInt8(value & 0x7F) | 0x80)
            value >>= 7
        }
        out.append(UInt8(value))
    }

    private static func appendDouble(field: Int, _ value: Double, to out: inout [UInt8]) {
        appendTag(field: field, wireType: 1, to: &out)
        out += littleEndian(value.bitPattern)
    }

    private static func appendBytes(field: Int, _ bytes: [UInt8], to out: inout [UInt8]) {
        appendTag(field: field, wireType: 2, to: &out)
        appendVarint(UInt64(bytes.count), to: &out)
        out += bytes
    }

    static func littleEndian<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
        withUnsafeBytes(of: value.littleEndian) { Array($0) }
    }

    static func readLittleEndian<T: FixedWidthInteger>(_ bytes: [UInt8], as: T.Type) -> T {
        var value: T = 0
        for (index, byte) in bytes.prefix(MemoryLayout<T>.size).enumerated() { value |= T(byte) << (8 * index) }
        return value
    }
}
