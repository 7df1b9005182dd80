import CriaCore
import Foundation

/// TensorBoard event files, written without TensorFlow or a protobuf library.
///
/// A file is a sequence of TFRecords:
///   uint64 length (little-endian) · uint32 masked CRC32C(length) · data · uint32 masked CRC32C(data)
/// where each `data` is a serialised `tensorflow.Event`. Only the fields
/// TensorBoard needs for scalars, text and plugin records are encoded, by hand
/// (ProtobufMessage):
///   Event   { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5; }
///   Summary { repeated Value value = 1; }
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

    /// One `Summary.Value`: a scalar, a text, or a plugin's tensor.
    ///   Value { string tag = 1; float simple_value = 2; SummaryMetadata metadata = 9; TensorProto tensor = 8; }
    ///   SummaryMetadata { PluginData plugin_data = 1; DataClass data_class = 4; }
    ///   PluginData { string plugin_name = 1; bytes content = 2; }
    public enum SummaryValue: Equatable, Sendable {
        /// `simple_value`, as TensorFlow 1 and `tf.summary.scalar` readers both accept.
        case scalar(tag: String, value: Float)
        /// The text plugin's record (`tf.summary.text`): a scalar DT_STRING tensor, rendered as Markdown.
        case text(tag: String, text: String)
        /// A plugin's metadata-only record (the hparams plugin's): `content` in the plugin data, an empty float tensor.
        case pluginData(tag: String, plugin: String, content: [UInt8])
    }

    /// TensorFlow's `DataType` and TensorBoard's `DataClass` values used here.
    static let dtFloat: UInt64 = 1, dtString: UInt64 = 7, dataClassTensor: UInt64 = 2

    public static func fileVersionEvent(wallTime: Double) -> [UInt8] {
        ProtobufMessage { event in
            event.double(1, wallTime)
            event.string(3, fileVersion)
        }.bytes
    }

    public static func scalarEvent(wallTime: Double, step: Int64, tag: String, value: Float) -> [UInt8] {
        summaryEvent(wallTime: wallTime, step: step, values: [.scalar(tag: tag, value: value)])
    }

    public static func summaryEvent(wallTime: Double, step: Int64, values: [SummaryValue]) -> [UInt8] {
        var summary = ProtobufMessage()
        for value in values { summary.message(1, encode(value)) }
        return ProtobufMessage { event in
            event.double(1, wallTime)
            event.int(2, step)
            event.message(5, summary)
        }.bytes
    }

    static func encode(_ value: SummaryValue) -> ProtobufMessage {
        func metadata(plugin: String, content: [UInt8]) -> ProtobufMessage {
            ProtobufMessage { metadata in
                metadata.message(1, ProtobufMessage { data in
                    data.string(1, plugin)
                    if !content.isEmpty { data.bytes(2, content) }
                })
                metadata.varint(4, dataClassTensor)
            }
        }
        return ProtobufMessage { out in
            switch value {
            case .scalar(let tag, let number):
                out.string(1, tag)
                out.float(2, number)
            case .text(let tag, let text):
                out.string(1, tag)
                out.message(9, metadata(plugin: "text", content: []))
                // TensorProto { DataType dtype = 1; TensorShapeProto tensor_shape = 2; repeated bytes string_val = 8; }; shape {} is a scalar.
                out.message(8, ProtobufMessage { tensor in
                    tensor.varint(1, dtString)
                    tensor.message(2, ProtobufMessage())
                    tensor.string(8, text)
                })
            case .pluginData(let tag, let plugin, let content):
                out.string(1, tag)
                out.message(9, metadata(plugin: plugin, content: content))
                // The hparams plugin's NULL_TENSOR: float, shape [0] (TensorShapeProto { Dim dim = 2 } with Dim { size = 1 } left 0).
                out.message(8, ProtobufMessage { tensor in
                    tensor.varint(1, dtFloat)
                    tensor.message(2, ProtobufMessage { shape in shape.message(2, ProtobufMessage()) })
                })
            }
        }
    }

    /// A summary value as read back: its tag, and whichever of the forms above it holds.
    public struct SummaryRecord: Equatable, Sendable {
        public var wallTime: Double
        public var step: Int64
        public var tag: String
        public var simpleValue: Float?
        public var pluginName: String?
        public var pluginContent: [UInt8]
        /// A tensor's `string_val` entries (a text summary's text).
        public var strings: [String]
    }

    /// Reads every scalar in an event file (simple_value summaries only), checking the framing.
    public static func readScalars(_ url: URL) throws -> [Scalar] {
        try readSummaries(url).compactMap { record in
            record.simpleValue.map { Scalar(wallTime: record.wallTime, step: record.step, tag: record.tag, value: $0) }
        }
    }

    /// Reads every summary value in an event file, checking the framing.
    public static func readSummaries(_ url: URL) throws -> [SummaryRecord] {
        let bytes = [UInt8](try Data(contentsOf: url))
        var result = [SummaryRecord]()
        for data in try records(bytes, source: url.path) {
            var wallTime = 0.0, step: Int64 = 0
            var values = [SummaryRecord]()
            try forEachField(data) { field, payload in
                switch (field, payload) {
                case (1, .fixed64(let bits)): wallTime = Double(bitPattern: bits)
                case (2, .varint(let raw)): step = Int64(bitPattern: raw)
                case (5, .bytes(let summary)):
                    try forEachField(summary) { field, payload in
                        guard field == 1, case .bytes(let value) = payload else { return }
                        values.append(try summaryRecord(value))
                    }
                default: break
                }
            }
            for var value in values {
                value.wallTime = wallTime
                value.step = step
                result.append(value)
            }
        }
        return result
    }

    private static func summaryRecord(_ bytes: [UInt8]) throws -> SummaryRecord {
        var record = SummaryRecord(wallTime: 0, step: 0, tag: "", simpleValue: nil, pluginName: nil, pluginContent: [], strings: [])
        try forEachField(bytes) { field, payload in
            switch (field, payload) {
            case (1, .bytes(let text)): record.tag = String(decoding: text, as: UTF8.self)
            case (2, .fixed32(let bits)): record.simpleValue = Float(bitPattern: bits)
            case (9, .bytes(let metadata)):
                try forEachField(metadata) { field, payload in
                    guard field == 1, case .bytes(let pluginData) = payload else { return }
                    try forEachField(pluginData) { field, payload in
                        if field == 1, case .bytes(let name) = payload { record.pluginName = String(decoding: name, as: UTF8.self) }
                        if field == 2, case .bytes(let content) = payload { record.pluginContent = content }
                    }
                }
            case (8, .bytes(let tensor)):
                try forEachField(tensor) { field, payload in
                    if field == 8, case .bytes(let text) = payload { record.strings.append(String(decoding: text, as: UTF8.self)) }
                }
            default: break
            }
        }
        return record
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

    static func littleEndian<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
        withUnsafeBytes(of: value.littleEndian) { Array($0) }
    }

    static func readLittleEndian<T: FixedWidthInteger>(_ bytes: [UInt8], as: T.Type) -> T {
        var value: T = 0
        for (index, byte) in bytes.prefix(MemoryLayout<T>.size).enumerated() { value |= T(byte) << (8 * index) }
        return value
    }
}

/// The event file of one TensorBoard run directory, appended to as TensorFlow's
/// `EventFileWriter` does: created with its `file_version` record, then one
/// `write(2)` per batch of events, so a reader sees whole records at once.
/// Reopening a directory appends to its existing event file.
public final class EventFileWriter {
    public let url: URL
    private let handle: FileHandle

    public init(directory: URL) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let existing = (try? FileManager.default.contentsOfDirectory(atPath: directory.path))?
            .filter { $0.hasPrefix("events.out.tfevents.") }.sorted().first
        if let existing {
            url = directory.appendingPathComponent(existing)
        } else {
            let now = Date().timeIntervalSince1970
            url = directory.appendingPathComponent(TFEvents.fileName(wallTime: now))
            guard FileManager.default.createFile(atPath: url.path, contents: Data(TFEvents.record(TFEvents.fileVersionEvent(wallTime: now)))) else {
                throw CriaError("\(url.path): cannot create the event file")
            }
        }
        do {
            handle = try FileHandle(forWritingTo: url)
            handle.seekToEndOfFile()
        } catch {
            throw CriaError("\(url.path): cannot open for appending: \(error.localizedDescription)")
        }
    }

    deinit { try? handle.close() }

    /// Appends `events` (serialised `Event`s), framed, in one write.
    public func append(_ events: [[UInt8]]) throws {
        guard !events.isEmpty else { return }
        // FileHandle does not buffer: the bytes reach the kernel now, so TensorBoard sees them at once.
        do {
            try handle.write(contentsOf: Data(events.flatMap(TFEvents.record)))
        } catch {
            throw CriaError("\(url.path): cannot append: \(error.localizedDescription)")
        }
    }
}
