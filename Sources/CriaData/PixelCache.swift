import CriaCore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The resize settings cached pixels depend on; part of every image's key.
public struct PixelCacheSettings: Sendable, Equatable {
    public var height: Int
    public var width: Int
    public var interpolation: Interpolation
    public var cropToAspectRatio: Bool
    public var maxPixels: Int

    public init(height: Int, width: Int, interpolation: Interpolation, cropToAspectRatio: Bool,
                maxPixels: Int = ImageDecoder.defaultMaxPixels) {
        self.height = height
        self.width = width
        self.interpolation = interpolation
        self.cropToAspectRatio = cropToAspectRatio
        self.maxPixels = maxPixels
    }

    /// Bump `format` whenever decoding or resizing changes its output, so old caches are not reused.
    var text: String { "format=1,h=\(height),w=\(width),interp=\(interpolation.rawValue),crop=\(cropToAspectRatio),max=\(maxPixels)" }
}

/// One opened cache file: every listed image's resized float32 pixels, memory-mapped
/// read-only, so the pages belong to the file (the kernel may drop and re-read them) and
/// not to the process's anonymous memory.
public final class PixelCacheFile: PixelSource, @unchecked Sendable {
    /// The file; nil for a temporary file already unlinked.
    public let url: URL?
    public let count: Int
    /// Files that did not decode, by absolute path: the decoder's reason.
    public let failures: [String: String]
    /// Whether opening it decoded anything (false: every image came from the file).
    public let decoded: Int
    private let base: UnsafeRawPointer
    private let length: Int
    private let dataOffset: Int
    private let imageBytes: Int
    private let slots: [String: Int]

    init(url: URL?, base: UnsafeRawPointer, length: Int, dataOffset: Int, imageBytes: Int, paths: [String],
         failures: [String: String], decoded: Int) {
        self.url = url
        self.base = base
        self.length = length
        self.dataOffset = dataOffset
        self.imageBytes = imageBytes
        self.count = paths.count
        self.failures = failures
        self.decoded = decoded
        slots = Dictionary(uniqueKeysWithValues: paths.enumerated().map { ($1, $0) })
    }

    deinit { munmap(UnsafeMutableRawPointer(mutating: base), length) }

    /// The slot of an absolute path, nil when it is not in this file.
    public func slot(_ path: String) -> Int? { slots[path] }

    public func render(_ slot: Int, into destination: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(destination).copyMemory(from: base + dataOffset + slot * imageBytes, byteCount: imageBytes)
    }
}

/// `tf.data.Dataset.cache(filename)`, keyed by content: a directory of files, one per list of
/// images and resize settings, each holding every image's resized float32 pixels once.
///
/// - The file name comes from the resize settings and the sorted absolute paths, so a
///   training/validation split, another split seed, a sweep shard or a fold of the same
///   images opens the same file.
/// - Each image's key is (path, size, mtime, resize settings): an edited image no longer
///   matches and is decoded again; the others are copied over.
/// - A header checksum, a table checksum and one checksum per image catch a truncated file,
///   a killed writer or flipped bits; the damage is reported in one line and the affected
///   images (or the whole file) are decoded again, never used.
/// - Writers fill a temporary file and rename it into place, so readers (other shards)
///   never see a half-written file; two shards building at once both succeed.
///
/// Layout: a 64-byte header, a table of (key, checksum, status) per image, then the pixels
/// at a page boundary, image after image, H × W × 3 float32 each.
public enum PixelCache {
    static let magic: UInt64 = 0x3158_4950_4149_5243  // "CRIAPIX1", little-endian
    static let headerBytes = 64
    static let entryBytes = 24

    struct Entry { var key: UInt64; var checksum: UInt64; var status: UInt64 }  // status 1 = pixels, 2 = did not decode

    /// The cache file's name for these images: stable across orders and splits of the same list.
    public static func fileName(paths: [String], settings: PixelCacheSettings) -> String {
        let sorted = Array(Set(paths)).sorted()
        let hash = PixelChecksum.of(settings.text + "\n" + sorted.joined(separator: "\n"))
        return "pixels-" + String(format: "%016llx", hash) + ".bin"
    }

    /// Opens (building or repairing as needed) the cache of `paths` (absolute) in `directory`;
    /// nil `directory` builds a temporary file that is unlinked at once (streaming without a cache).
    public static func open(paths: [String], directory: URL?, settings: PixelCacheSettings, showProgress: Bool,
                            verbose: Bool, log: @Sendable (String) -> Void) throws -> PixelCacheFile {
        let started = Date()
        let paths = Array(Set(paths)).sorted()
        let keys = paths.map { key($0, settings) }
        let imageBytes = settings.height * settings.width * 3 * 4
        let dataOffset = (headerBytes + entryBytes * paths.count + 4095) / 4096 * 4096
        let length = dataOffset + paths.count * imageBytes
        let name = fileName(paths: paths, settings: settings)
        let url = directory?.appendingPathComponent(name)

        var old: (base: UnsafeRawPointer, length: Int, entries: [Entry])?
        if let url, FileManager.default.fileExists(atPath: url.path) {
            switch validate(url, count: paths.count, settings: settings, dataOffset: dataOffset, length: length) {
            case .success(let mapped): old = mapped
            case .failure(let damage): log("cache: \(url.path): \(damage.reason); rebuilding it")
            }
        }
        defer { if let old { munmap(UnsafeMutableRawPointer(mutating: old.base), old.length) } }

        // Which images the old file still serves: same key, pixels intact.
        var reuse = [Bool](repeating: false, count: paths.count)
        var knownFailures: [Int] = []
        if let old {
            var intact = [Bool](repeating: false, count: paths.count)
            intact.withUnsafeMutableBufferPointer { buffer in
                let out = SendableBuffer(buffer)
                Threads.parallelFor(paths.count) { range in
                    for i in range where old.entries[i].key == keys[i] && old.entries[i].status == 1 {
                        let sum = PixelChecksum.of(old.base + dataOffset + i * imageBytes, count: imageBytes)
                        out.buffer[i] = sum == old.entries[i].checksum
                    }
                }
            }
            let damaged = (0..<paths.count).filter { old.entries[$0].key == keys[$0] && old.entries[$0].status == 1 && !intact[$0] }
            if !damaged.isEmpty {
                log("cache: \(url!.path): " + (damaged.count == 1 ? "1 image fails its checksum" : "\(damaged.count) images fail their checksums")
                    + "; decoding \(damaged.count == 1 ? "it" : "them") again")
            }
            reuse = intact
            knownFailures = (0..<paths.count).filter { old.entries[$0].key == keys[$0] && old.entries[$0].status == 2 }
        }
        let missing = (0..<paths.count).filter { !reuse[$0] }

        // Nothing to write when every image is served or is a known failure that still fails.
        if let previous = old, let url, Set(missing) == Set(knownFailures) {
            var failures: [String: String] = [:]
            var stillFailing = true
            let workspace = DecodeWorkspace()
            for i in knownFailures {
                do {
                    try workspace.decode(contentsOf: URL(fileURLWithPath: paths[i]), maxPixels: settings.maxPixels)
                    stillFailing = false
                    break
                } catch {
                    failures[paths[i]] = "\(error)"
                }
            }
            if stillFailing {
                let mapped = previous
                old = nil  // ownership passes to the file object
                if verbose {
                    log(String(format: "cache: %d images from %@ (%@), opened in %.2f s", paths.count - knownFailures.count, url.path,
                               MemoryBudget.describe(length), Date().timeIntervalSince(started)))
                }
                return PixelCacheFile(url: url, base: mapped.base, length: mapped.length, dataOffset: dataOffset, imageBytes: imageBytes,
                                      paths: paths, failures: failures, decoded: 0)
            }
        }

        // Write a new file: reused images copied, the rest decoded, then renamed into place.
        let target = directory ?? URL(fileURLWithPath: NSTemporaryDirectory())
        try FileManager.default.createDirectory(at: target, withIntermediateDirectories: true)
        let temporary = target.appendingPathComponent(".\(name).\(getpid()).\(UUID().uuidString.prefix(8)).tmp")
        let fd = Glibc.open(temporary.path, O_RDWR | O_CREAT | O_EXCL, 0o644)
        guard fd >= 0 else { throw CriaError("data.cache: cannot create \(temporary.path): \(String(cString: strerror(errno)))") }
        var closed = false
        defer { if !closed { close(fd); unlink(temporary.path) } }
        guard ftruncate(fd, off_t(length)) == 0 else {
            throw CriaError("data.cache: cannot size \(temporary.path) to \(MemoryBudget.describe(length)): \(String(cString: strerror(errno)))")
        }
        guard let raw = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), raw != MAP_FAILED else {
            throw CriaError("data.cache: cannot map \(temporary.path): \(String(cString: strerror(errno)))")
        }
        let file = UnsafeMutableRawPointer(raw)
        var entries = [Entry](repeating: Entry(key: 0, checksum: 0, status: 0), count: paths.count)
        var failures = [String?](repeating: nil, count: paths.count)
        let progress = showProgress && !missing.isEmpty ? ProgressBar(total: missing.count, label: "decoding") : nil
        entries.withUnsafeMutableBufferPointer { entryBuffer in
            failures.withUnsafeMutableBufferPointer { failureBuffer in
                let table = SendableBuffer(entryBuffer), errors = SendableBuffer(failureBuffer)
                let destination = SendablePointer(file)
                if let old {
                    let source = SendablePointer(UnsafeMutableRawPointer(mutating: old.base))
                    let reused = (0..<paths.count).filter { reuse[$0] }
                    Threads.parallelFor(reused.count) { range in
                        for i in range.map({ reused[$0] }) {
                            (destination.pointer + dataOffset + i * imageBytes)
                                .copyMemory(from: source.pointer + dataOffset + i * imageBytes, byteCount: imageBytes)
                            table.buffer[i] = Entry(key: keys[i], checksum: old.entries[i].checksum, status: 1)
                        }
                    }
                }
                // Workers take the next image when free; each writes only its own slot.
                Threads.forEachItem(missing.count, makeState: { DecodeWorkspace() }) { workspace, item in
                    let i = missing[item]
                    let slot = destination.pointer + dataOffset + i * imageBytes
                    do {
                        try workspace.decode(contentsOf: URL(fileURLWithPath: paths[i]), maxPixels: settings.maxPixels)
                        Resize.resize(pixels: workspace.pixels, imageHeight: workspace.height, imageWidth: workspace.width,
                                      into: slot.assumingMemoryBound(to: Float.self), height: settings.height, width: settings.width,
                                      method: settings.interpolation, cropToAspectRatio: settings.cropToAspectRatio)
                        table.buffer[i] = Entry(key: keys[i], checksum: PixelChecksum.of(slot, count: imageBytes), status: 1)
                    } catch {
                        errors.buffer[i] = "\(error)"
                        table.buffer[i] = Entry(key: keys[i], checksum: 0, status: 2)
                    }
                    progress?.advance()
                }
            }
        }
        progress?.finish()
        writeTable(file, entries: entries, settings: settings, dataOffset: dataOffset)
        msync(file, length, MS_SYNC)
        munmap(file, length)
        if let url {
            fsync(fd)
            close(fd)
            closed = true
            guard rename(temporary.path, url.path) == 0 else {
                unlink(temporary.path)
                throw CriaError("data.cache: cannot rename \(temporary.path) to \(url.path): \(String(cString: strerror(errno)))")
            }
        }
        // Map the finished file read-only; a temporary one is unlinked now and lives as long as the mapping.
        let readFD = url.map { Glibc.open($0.path, O_RDONLY) } ?? fd
        guard readFD >= 0, let mapped = mmap(nil, length, PROT_READ, MAP_SHARED, readFD, 0), mapped != MAP_FAILED else {
            throw CriaError("data.cache: cannot map \(url?.path ?? temporary.path): \(String(cString: strerror(errno)))")
        }
        if url != nil { close(readFD) }
        if url == nil { close(fd); closed = true; unlink(temporary.path) }
        if verbose {
            log(String(format: "cache: decoded %d of %d images into %@ (%@) in %.2f s", missing.count, paths.count,
                       url?.path ?? "a temporary file", MemoryBudget.describe(length), Date().timeIntervalSince(started)))
        }
        var failureMap: [String: String] = [:]
        for (i, reason) in failures.enumerated() { if let reason { failureMap[paths[i]] = reason } }
        return PixelCacheFile(url: url, base: UnsafeRawPointer(mapped), length: length, dataOffset: dataOffset, imageBytes: imageBytes,
                              paths: paths, failures: failureMap, decoded: missing.count)
    }

    /// (path, size, mtime, resize settings).
    static func key(_ path: String, _ settings: PixelCacheSettings) -> UInt64 {
        var info = stat()
        guard stat(path, &info) == 0 else { return PixelChecksum.of("missing\0\(path)\0\(settings.text)") }
        return PixelChecksum.of("\(path)\0\(info.st_size)\0\(info.st_mtim.tv_sec).\(info.st_mtim.tv_nsec)\0\(settings.text)")
    }

    struct Damage: Error { let reason: String }

    /// Maps an existing file and checks its header and table; pixel checksums are checked by the caller.
    static func validate(_ url: URL, count: Int, settings: PixelCacheSettings, dataOffset: Int,
                         length: Int) -> Result<(base: UnsafeRawPointer, length: Int, entries: [Entry]), Damage> {
        let fd = Glibc.open(url.path, O_RDONLY)
        guard fd >= 0 else { return .failure(Damage(reason: "cannot open: \(String(cString: strerror(errno)))")) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { return .failure(Damage(reason: "cannot stat")) }
        guard Int(info.st_size) == length else {
            return .failure(Damage(reason: "truncated or torn (\(info.st_size) bytes, expected \(length))"))
        }
        guard let raw = mmap(nil, length, PROT_READ, MAP_SHARED, fd, 0), raw != MAP_FAILED else {
            return .failure(Damage(reason: "cannot map: \(String(cString: strerror(errno)))"))
        }
        let base = UnsafeRawPointer(raw)
        func fail(_ reason: String) -> Result<(base: UnsafeRawPointer, length: Int, entries: [Entry]), Damage> {
            munmap(raw, length)
            return .failure(Damage(reason: reason))
        }
        func word(_ offset: Int) -> UInt64 { base.loadUnaligned(fromByteOffset: offset, as: UInt64.self) }
        guard word(0) == magic else { return fail("not a Cria pixel cache (bad magic)") }
        guard word(56) == PixelChecksum.of(base, count: 56) else { return fail("header checksum mismatch") }
        guard word(8) == 1, Int(word(16)) == settings.height, Int(word(24)) == settings.width, Int(word(32)) == count,
              word(40) == PixelChecksum.of(settings.text) else {
            return fail("written for other settings or images")
        }
        let tableBytes = entryBytes * count
        guard word(48) == PixelChecksum.of(base + headerBytes, count: tableBytes) else { return fail("table checksum mismatch") }
        let entries = (0..<count).map { i in
            Entry(key: word(headerBytes + i * entryBytes), checksum: word(headerBytes + i * entryBytes + 8),
                  status: word(headerBytes + i * entryBytes + 16))
        }
        return .success((base, length, entries))
    }

    static func writeTable(_ file: UnsafeMutableRawPointer, entries: [Entry], settings: PixelCacheSettings, dataOffset: Int) {
        for (i, entry) in entries.enumerated() {
            let offset = headerBytes + i * entryBytes
            file.storeBytes(of: entry.key, toByteOffset: offset, as: UInt64.self)
            file.storeBytes(of: entry.checksum, toByteOffset: offset + 8, as: UInt64.self)
            file.storeBytes(of: entry.status, toByteOffset: offset + 16, as: UInt64.self)
        }
        // The header goes last: a file is valid only once every checksum in it is.
        let header: [UInt64] = [magic, 1, UInt64(settings.height), UInt64(settings.width), UInt64(entries.count),
                                PixelChecksum.of(settings.text), PixelChecksum.of(file + headerBytes, count: entryBytes * entries.count)]
        for (i, value) in header.enumerated() { file.storeBytes(of: value, toByteOffset: i * 8, as: UInt64.self) }
        file.storeBytes(of: PixelChecksum.of(file, count: 56), toByteOffset: 56, as: UInt64.self)
    }
}

/// Lets parallel workers write disjoint parts of one mapping.
struct SendablePointer: @unchecked Sendable {
    let pointer: UnsafeMutableRawPointer
    init(_ pointer: UnsafeMutableRawPointer) { self.pointer = pointer }
}
