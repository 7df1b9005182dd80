import Foundation
import XCTest

/// Runs real Python clients (pandas, TensorBoard, nbformat, Jupyter) against files Cria wrote.
///
/// The interpreter is `$CRIA_PYTHON` when set (`make test` sets it to the virtual
/// environment that `scripts/python-env.sh` builds), else the first `python3` on PATH.
/// A missing interpreter or module is `Skip.missing`: a skip on a developer's machine,
/// a failure in CI.
public enum Python {
    public static var interpreter: String? {
        let environment = ProcessInfo.processInfo.environment
        if let configured = environment["CRIA_PYTHON"], !configured.isEmpty {
            return FileManager.default.isExecutableFile(atPath: configured) ? configured : nil
        }
        let path = environment["PATH"] ?? "/usr/bin:/bin"
        return path.split(separator: ":").map { "\($0)/python3" }
            .first(where: { FileManager.default.isExecutableFile(atPath: $0) })
    }

    /// The interpreter, after checking that it imports every module named.
    public static func require(_ modules: [String], file: StaticString = #filePath, line: UInt = #line) throws -> String {
        guard let python = interpreter else {
            throw Skip.missing("python3 (or $CRIA_PYTHON)", file: file, line: line)
        }
        let probe = try execute(python, ["-c", modules.map { "import \($0)" }.joined(separator: "; ")])
        if probe.status != 0 {
            throw Skip.missing("the Python modules \(modules.joined(separator: ", ")) in \(python) (make test installs them into .venv)",
                               file: file, line: line)
        }
        return python
    }

    /// Runs `script` with `arguments`; fails the test with Python's stderr when it exits non-zero.
    @discardableResult
    public static func run(_ script: String, arguments: [String] = [], requiring modules: [String],
                           file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let python = try require(modules, file: file, line: line)
        let result = try execute(python, ["-c", script] + arguments)
        if result.status != 0 { XCTFail("python failed (\(result.status)): \(result.stderr)", file: file, line: line) }
        return result.stdout
    }

    public static func execute(_ executable: String, _ arguments: [String], environment: [String: String]? = nil)
        throws -> (status: Int32, stdout: String, stderr: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let environment { process.environment = environment }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        // Drain stderr on another thread so a chatty child cannot block on a full pipe.
        var stderrData = Data()
        let group = DispatchGroup()
        group.enter()
        DispatchQueue.global().async { stderrData = err.fileHandleForReading.readDataToEndOfFile(); group.leave() }
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: stdout, as: UTF8.self), String(decoding: stderrData, as: UTF8.self))
    }
}
