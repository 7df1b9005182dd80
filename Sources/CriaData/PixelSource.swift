import CriaCore
import Foundation

/// Where a dataset's resized pixels come from when they are not held in memory:
/// a memory-mapped cache file, or a renderer that recomputes an image on demand.
/// Every source writes exactly the float32 values the in-memory path would hold,
/// so a dataset gives the same pixels whichever source backs it.
public protocol PixelSource: Sendable {
    /// Writes image `slot` as H × W × 3 float32 in [0, 255] to `destination`.
    func render(_ slot: Int, into destination: UnsafeMutablePointer<Float>)
}

/// The memory a dataset's decoded pixels may take before Cria streams them instead.
public enum MemoryBudget {
    /// The default budget's share of physical memory: a quarter leaves room for the
    /// model, the frozen-prefix cache, the optimiser state and other processes.
    public static let defaultFraction = 0.25

    public static var physicalMemory: Int { Int(clamping: ProcessInfo.processInfo.physicalMemory) }

    /// `data.memory_limit`, or the default fraction of physical memory.
    public static func limit(_ configured: Int?) -> Int {
        configured ?? Int(Double(physicalMemory) * defaultFraction)
    }

    /// Bytes `count` decoded images of `height × width × 3` take in memory under `storage`.
    public static func bytes(count: Int, height: Int, width: Int, storage: PixelStorage) -> Int {
        count * height * width * 3 * (storage == .uint8 ? 1 : 4)
    }

    /// "1.5 GB", for messages.
    public static func describe(_ bytes: Int) -> String {
        let value = Double(bytes)
        if value >= 1e9 { return String(format: "%.1f GB", value / 1e9) }
        if value >= 1e6 { return String(format: "%.0f MB", value / 1e6) }
        return String(format: "%.0f KB", value / 1e3)
    }

    /// Parses `data.memory_limit`: bytes as an integer, or a number with KB, MB, GB, KiB, MiB, GiB.
    public static func parse(_ text: String) -> Int? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let units: [(String, Double)] = [("KiB", 1024), ("MiB", 1_048_576), ("GiB", 1_073_741_824), ("TiB", 1_099_511_627_776),
                                         ("KB", 1e3), ("MB", 1e6), ("GB", 1e9), ("TB", 1e12), ("B", 1)]
        for (suffix, scale) in units where trimmed.uppercased().hasSuffix(suffix.uppercased()) {
            let number = trimmed.dropLast(suffix.count).trimmingCharacters(in: .whitespaces)
            guard let value = Double(number), value > 0, value * scale < 9e18 else { return nil }
            return Int(value * scale)
        }
        guard let value = Int(trimmed), value > 0 else { return nil }
        return value
    }
}

/// A 64-bit checksum over raw bytes, word at a time (not cryptographic: it detects torn
/// writes and flipped bits in cache files, at memory speed).
public enum PixelChecksum {
    public static func of(_ pointer: UnsafeRawPointer, count: Int) -> UInt64 {
        var a: UInt64 = 0x9E37_79B9_7F4A_7C15 ^ UInt64(count), b: UInt64 = 0xC2B2_AE3D_27D4_EB4F
        let words = count / 8
        var i = 0
        // Two independent lanes keep the multiply latency off the critical path.
        while i + 1 < words {
            a = (a ^ pointer.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self)) &* 0x0000_0100_0000_01B3
            b = (b ^ pointer.loadUnaligned(fromByteOffset: i * 8 + 8, as: UInt64.self)) &* 0xFF51_AFD7_ED55_8CCD
            a ^= a >> 29
            b ^= b >> 31
            i += 2
        }
        var tail: UInt64 = 0
        for byte in (i * 8)..<count { tail = tail << 8 | UInt64(pointer.load(fromByteOffset: byte, as: UInt8.self)) }
        return mix(a ^ mix(b) ^ tail)
    }

    /// FNV-1a of a string's UTF-8, for cache keys and names.
    public static func of(_ text: String) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3 }
        return mix(hash)
    }

    static func mix(_ value: UInt64) -> UInt64 {
        var z = value &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
