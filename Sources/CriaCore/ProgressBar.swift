import Foundation

/// A Keras-style progress line on stderr: `12/262 [==>...........] - ETA: 3s`.
///
/// On a terminal the line redraws in place (at most ten times a second); when stderr
/// is a file or pipe, only the final line is written, so logs stay one line per task.
/// `advance` is safe to call from several threads at once.
public final class ProgressBar: @unchecked Sendable {
    public let total: Int
    public let label: String
    private let width: Int
    private let interactive: Bool
    private let output: (String) -> Void
    private let lock = NSLock()
    private var done = 0
    private let start = Date()
    private var lastDraw = Date.distantPast
    private var finished = false

    public init(total: Int, label: String = "", width: Int = 30, interactive: Bool? = nil,
                output: ((String) -> Void)? = nil) {
        self.total = max(0, total)
        self.label = label
        self.width = width
        self.interactive = interactive ?? (isatty(STDERR_FILENO) != 0)
        self.output = output ?? { FileHandle.standardError.write(Data($0.utf8)) }
    }

    public func advance(by count: Int = 1) {
        lock.lock(); defer { lock.unlock() }
        done = min(total, done + count)
        guard interactive, !finished else { return }
        let now = Date()
        if done < total, now.timeIntervalSince(lastDraw) < 0.1 { return }
        lastDraw = now
        // ESC[K clears what a longer previous line left behind.
        output("\r" + line(elapsed: now.timeIntervalSince(start)) + "\u{1B}[K")
    }

    /// Writes the final line (elapsed time instead of ETA). Idempotent.
    public func finish() {
        lock.lock(); defer { lock.unlock() }
        guard !finished else { return }
        finished = true
        output(interactive ? "\r" + line(elapsed: Date().timeIntervalSince(start)) + "\u{1B}[K\n"
                           : line(elapsed: Date().timeIntervalSince(start)) + "\n")
    }

    /// The text of the bar for `done` of `total` after `elapsed` seconds.
    public func line(elapsed: TimeInterval) -> String {
        let prefix = label.isEmpty ? "" : label + " "
        let digits = String(total).count
        let count = String(repeating: " ", count: max(0, digits - String(done).count)) + "\(done)/\(total)"
        let fraction = total == 0 ? 1 : Double(done) / Double(total)
        let filled = Int(fraction * Double(width))
        var bar = String(repeating: "=", count: max(0, filled - (done < total ? 1 : 0)))
        if done < total { bar += filled > 0 ? ">" : "" }
        bar += String(repeating: ".", count: max(0, width - bar.count))
        if done >= total { return "\(prefix)\(count) [\(bar)] - \(Self.seconds(elapsed))" }
        let eta = done == 0 ? "?" : Self.seconds(elapsed / Double(done) * Double(total - done))
        return "\(prefix)\(count) [\(bar)] - ETA: \(eta)"
    }

    static func seconds(_ value: TimeInterval) -> String {
        let s = Int(value.rounded())
        return s >= 3600 ? "\(s / 3600):\(String(format: "%02d", s / 60 % 60)):\(String(format: "%02d", s % 60))"
            : s >= 60 ? "\(s / 60):\(String(format: "%02d", s % 60))" : "\(s)s"
    }
}
