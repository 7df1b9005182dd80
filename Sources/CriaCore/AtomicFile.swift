import Foundation

/// Writes that either complete or leave the previous file untouched.
///
/// A temporary file in the same directory is written and then renamed over
/// the destination, so a reader never sees a half-written metrics log, model
/// or array, even if the process is killed mid-write.
public enum AtomicFile {
    public static func write(_ data: Data, to url: URL) throws {
        let directory = url.deletingLastPathComponent()
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let temporary = directory.appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())-\(UInt32.random(in: 0 ... .max))")
        do {
            try data.write(to: temporary)
            try replace(url, with: temporary)
        } catch {
            try? FileManager.default.removeItem(at: temporary)
            throw CriaError("\(url.path): cannot write: \(error.localizedDescription)")
        }
    }

    public static func write(_ text: String, to url: URL) throws {
        try write(Data(text.utf8), to: url)
    }

    /// Moves a finished temporary file into place with rename(2), which is atomic on POSIX file systems.
    public static func replace(_ destination: URL, with temporary: URL) throws {
        if rename(temporary.path, destination.path) != 0 {
            throw CriaError("\(destination.path): cannot rename into place: \(String(cString: strerror(errno)))")
        }
    }

    /// A temporary path beside `url` for writers (such as libhdf5) that need a file name.
    public static func temporaryURL(beside url: URL) -> URL {
        url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())-\(UInt32.random(in: 0 ... .max))")
    }
}
