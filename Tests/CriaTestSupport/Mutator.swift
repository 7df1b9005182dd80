import CriaCore
import Foundation


/// A deterministic file mutator: the corruptions a disk, a download or an editor produce.
///
/// Each case is a pure function of (input, seed): changed random bytes, a zeroed run,
/// a truncation, or a mix. The description says what was done, for the failure message.
public enum Mutator {
    public static func mutate(_ input: Data, seed: UInt64) -> (data: Data, description: String) {
        var rng = SplitMix64(seed: seed)
        var bytes = [UInt8](input)
        guard !bytes.isEmpty else { return (input, "empty input") }
        var done: [String] = []
        let operations = 1 + Int(rng.next() % 3)
        for _ in 0..<operations where !bytes.isEmpty {
            switch rng.next() % 8 {
            case 0, 1, 2:  // a few random bytes anywhere
                let count = 1 + Int(rng.next() % 4)
                for _ in 0..<count {
                    let offset = Int(rng.next() % UInt64(bytes.count))
                    bytes[offset] = UInt8(truncatingIfNeeded: rng.next())
                }
                done.append("\(count) random byte(s)")
            case 3, 4:  // one flipped bit: the smallest corruption
                let offset = Int(rng.next() % UInt64(bytes.count))
                let bit = Int(rng.next() % 8)
                bytes[offset] ^= 1 << bit
                done.append("bit \(bit) flipped at \(offset)")
            case 5, 6:  // a zeroed run (a lost disk block, a sparse download)
                let offset = Int(rng.next() % UInt64(bytes.count))
                let length = min(bytes.count - offset, 1 + Int(rng.next() % 512))
                for index in offset..<offset + length { bytes[index] = 0 }
                done.append("\(length) bytes zeroed at \(offset)")
            default:  // truncation at a random point
                let length = Int(rng.next() % UInt64(bytes.count))
                bytes.removeSubrange(length...)
                done.append("truncated to \(length) bytes")
            }
        }
        return (Data(bytes), done.joined(separator: ", "))
    }
}

/// Runs the `cria` binary with a time limit, for fuzzing: a hang is a failure, not a stuck test.
public enum BoundedRun {
    public enum Outcome: CustomStringConvertible {
        case exited(status: Int32, stdout: String, stderr: String)
        case signalled(Int32, stderr: String)
        case timedOut(seconds: Double)

        public var description: String {
            switch self {
            case let .exited(status, _, stderr): return "exit \(status), stderr: \(stderr.prefix(400))"
            case let .signalled(signal, stderr): return "killed by signal \(signal), stderr: \(stderr.prefix(400))"
            case let .timedOut(seconds): return "hang: no exit within \(seconds) s"
            }
        }
    }

    public static func run(_ binary: URL, _ arguments: [String], directory: URL, timeout: Double) throws -> Outcome {
        let process = Process()
        process.executableURL = binary
        process.arguments = arguments
        process.currentDirectoryURL = directory
        // Output goes to files, not pipes, so a killed child cannot leave a reader blocked.
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("cria-run-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        let outURL = scratch.appendingPathComponent("out"), errURL = scratch.appendingPathComponent("err")
        FileManager.default.createFile(atPath: outURL.path, contents: nil)
        FileManager.default.createFile(atPath: errURL.path, contents: nil)
        let out = try FileHandle(forWritingTo: outURL), err = try FileHandle(forWritingTo: errURL)
        defer { try? out.close(); try? err.close() }
        process.standardOutput = out
        process.standardError = err
        let finished = DispatchSemaphore(value: 0)
        process.terminationHandler = { _ in finished.signal() }
        try process.run()
        if finished.wait(timeout: .now() + timeout) == .timedOut {
            kill(process.processIdentifier, SIGKILL)
            finished.wait()
            return .timedOut(seconds: timeout)
        }
        let stdout = String(decoding: (try? Data(contentsOf: outURL)) ?? Data(), as: UTF8.self)
        let stderr = String(decoding: (try? Data(contentsOf: errURL)) ?? Data(), as: UTF8.self)
        if process.terminationReason == .uncaughtSignal {
            return .signalled(process.terminationStatus, stderr: stderr)
        }
        return .exited(status: process.terminationStatus, stdout: stdout, stderr: stderr)
    }
}
