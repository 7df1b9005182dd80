import Foundation

/// NumPy `.npy` files: the exchange format for every parity check against Keras.
///
/// Reading accepts little-endian float32, float64, uint8, int32 and int64 in C
/// order and converts to float32; writing always produces `<f4`.
public enum NPY {
    public static func read(_ url: URL) throws -> Tensor {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw CriaError("\(url.path): cannot read: \(error.localizedDescription)")
        }
        return try decode(data, name: url.path)
    }

    public static func decode(_ data: Data, name: String) throws -> Tensor {
        let bytes = [UInt8](data)
        guard bytes.count >= 10, bytes[0] == 0x93, Array(bytes[1...5]) == Array("NUMPY".utf8) else {
            throw CriaError("\(name): not a .npy file (missing \\x93NUMPY magic)")
        }
        let major = bytes[6]
        let headerLength: Int
        let headerStart: Int
        if major == 1 {
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
            headerStart = 10
        } else {
            guard bytes.count >= 12 else { throw CriaError("\(name): truncated .npy header") }
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8 | Int(bytes[10]) << 16 | Int(bytes[11]) << 24
            headerStart = 12
        }
        guard bytes.count >= headerStart + headerLength,
              let header = String(bytes: bytes[headerStart ..< headerStart + headerLength], encoding: .ascii) else {
            throw CriaError("\(name): truncated .npy header")
        }
        let descr = try field("descr", in: header, name: name)
        let fortran = try field("fortran_order", in: header, name: name)
        guard fortran.hasPrefix("False") else {
            throw CriaError("\(name): Fortran-ordered arrays are not supported; save with np.ascontiguousarray")
        }
        let shape = try parseShape(try field("shape", in: header, name: name), name: name)
        let count = shape.reduce(1, *)
        let body = bytes[(headerStart + headerLength)...]
        let dtype = descr.split(separator: "'", omittingEmptySubsequences: true).first.map(String.init) ?? descr
        let itemSize: Int
        switch dtype {
        case "<f4", "<i4": itemSize = 4
        case "<f8", "<i8": itemSize = 8
        case "|u1", "<u1": itemSize = 1
        default: throw CriaError("\(name): unsupported dtype \(dtype); use float32, float64, uint8, int32 or int64")
        }
        guard body.count >= count * itemSize else {
            throw CriaError("\(name): truncated: shape \(describeShape(shape)) needs \(count * itemSize) bytes, found \(body.count)")
        }
        var scalars = [Float](repeating: 0, count: count)
        body.withUnsafeBytes { raw in
            switch dtype {
            case "<f4": for i in 0..<count { scalars[i] = Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self))) }
            case "<i4": for i in 0..<count { scalars[i] = Float(Int32(littleEndian: raw.loadUnaligned(fromByteOffset: i * 4, as: Int32.self))) }
            case "<f8": for i in 0..<count { scalars[i] = Float(Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self)))) }
            case "<i8": for i in 0..<count { scalars[i] = Float(Int64(littleEndian: raw.loadUnaligned(fromByteOffset: i * 8, as: Int64.self))) }
            default: for i in 0..<count { scalars[i] = Float(raw[i]) }
            }
        }
        return Tensor(shape: shape, scalars: scalars)
    }

    public static func encode(_ tensor: Tensor) -> Data {
        let shapeText = tensor.shape.isEmpty ? "()" : describeShape(tensor.shape)
        var header = "{'descr': '<f4', 'fortran_order': False, 'shape': \(shapeText), }"
        // The header plus the 10-byte preamble is padded to a multiple of 64, ending in a newline.
        let unpadded = 10 + header.utf8.count + 1
        header += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
        var data = Data([0x93] + Array("NUMPY".utf8) + [1, 0])
        let length = UInt16(header.utf8.count)
        data.append(contentsOf: [UInt8(length & 0xff), UInt8(length >> 8)])
        data.append(contentsOf: Array(header.utf8))
        tensor.scalars.withUnsafeBufferPointer { data.append(UnsafeBufferPointer(start: UnsafeRawPointer($0.baseAddress!).assumingMemoryBound(to: UInt8.self), count: $0.count * 4)) }
        return data
    }

    public static func write(_ tensor: Tensor, to url: URL) throws {
        try AtomicFile.write(encode(tensor), to: url)
    }

    private static func field(_ key: String, in header: String, name: String) throws -> String {
        guard let range = header.range(of: "'\(key)':") else {
            throw CriaError("\(name): .npy header has no '\(key)'")
        }
        return String(header[range.upperBound...]).trimmingCharacters(in: .whitespaces)
    }

    private static func parseShape(_ text: String, name: String) throws -> [Int] {
        guard let open = text.firstIndex(of: "("), let close = text.firstIndex(of: ")") else {
            throw CriaError("\(name): malformed shape in .npy header")
        }
        let inner = text[text.index(after: open)..<close]
        return try inner.split(separator: ",").compactMap { part in
            let trimmed = part.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty { return nil }
            guard let value = Int(trimmed) else { throw CriaError("\(name): malformed shape in .npy header") }
            return value
        }
    }
}
