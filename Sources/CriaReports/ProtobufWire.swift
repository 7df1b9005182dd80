import Foundation

/// A protocol-buffer message being encoded, field by field, in the wire format
/// (https://protobuf.dev/programming-guides/encoding/): the subset TensorBoard's
/// records use. Cria has no protobuf dependency; the messages it writes are few
/// and small, and their field numbers are spelled out next to each encoder.
///
/// Fields are written in the order the calls make them; a parser accepts any order.
/// Proto3 omits default values, but writing them is legal, and a `oneof` member
/// must be written even when it holds the default (that is what marks it as set).
struct ProtobufMessage {
    private(set) var bytes: [UInt8] = []

    init() {}

    init(_ build: (inout ProtobufMessage) -> Void) { build(&self) }

    /// Wire type 0: int32, int64, uint64, bool, enum.
    mutating func varint(_ field: Int, _ value: UInt64) {
        key(field, wireType: 0)
        Self.appendVarint(value, to: &bytes)
    }

    mutating func int(_ field: Int, _ value: Int64) { varint(field, UInt64(bitPattern: value)) }
    mutating func bool(_ field: Int, _ value: Bool) { varint(field, value ? 1 : 0) }

    /// Wire type 1.
    mutating func double(_ field: Int, _ value: Double) {
        key(field, wireType: 1)
        bytes += TFEvents.littleEndian(value.bitPattern)
    }

    /// A proto3 field outside any `oneof`: its default (+0.0) is left out, as protobuf's own encoders do,
    /// so the bytes are the canonical ones.
    mutating func doubleField(_ field: Int, _ value: Double) {
        if value.bitPattern != 0 { double(field, value) }
    }

    /// Wire type 5.
    mutating func float(_ field: Int, _ value: Float) {
        key(field, wireType: 5)
        bytes += TFEvents.littleEndian(value.bitPattern)
    }

    /// Wire type 2: bytes, string, embedded message, packed repeated.
    mutating func bytes(_ field: Int, _ value: [UInt8]) {
        key(field, wireType: 2)
        Self.appendVarint(UInt64(value.count), to: &bytes)
        bytes += value
    }

    mutating func string(_ field: Int, _ value: String) { bytes(field, Array(value.utf8)) }
    mutating func message(_ field: Int, _ value: ProtobufMessage) { bytes(field, value.bytes) }

    private mutating func key(_ field: Int, wireType: UInt64) {
        Self.appendVarint(UInt64(field) << 3 | wireType, to: &bytes)
    }

    static func appendVarint(_ value: UInt64, to out: inout [UInt8]) {
        var value = value
        while value >= 0x80 {
            out.append(UInt8(value & 0x7F) | 0x80)
            value >>= 7
        }
        out.append(UInt8(value))
    }
}
