import CriaCore
import Foundation

/// The process's peak resident set over one stretch of work.
///
/// Linux resets the peak (`VmHWM`) when "5" is written to /proc/self/clear_refs;
/// freed heap pages are first returned with `malloc_trim(0)` so that the next
/// stretch starts from what is really live. Where either is unavailable,
/// `reset()` returns false and the peak is the process's since its start.
enum PeakMemory {
    @discardableResult
    static func reset() -> Bool {
        #if os(Linux)
        typealias Trim = @convention(c) (Int) -> Int32
        if let library = dlopen(nil, RTLD_NOW), let symbol = dlsym(library, "malloc_trim") {
            _ = unsafeBitCast(symbol, to: Trim.self)(0)
        }
        guard let handle = FileHandle(forWritingAtPath: "/proc/self/clear_refs") else { return false }
        defer { try? handle.close() }
        return (try? handle.write(contentsOf: Data("5".utf8))) != nil
        #else
        return false
        #endif
    }

    /// Peak resident set in MB since the last `reset()` (`VmHWM`), or the process's peak.
    static var peakMegabytes: Double {
        if let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
           let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
           let kilobytes = line.split(separator: " ").dropFirst().first.flatMap({ Double($0) }) {
            return kilobytes / 1024
        }
        return ProcessUsage.peakResidentMegabytes
    }
}
