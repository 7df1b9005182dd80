import CriaTraining
import Foundation
import XCTest

/// Synthetic records and trial directories for the report tests.
enum ReportFixtures {
    static func record(epoch: Int, phase: String, valAccuracy: Double?) -> EpochRecord {
        EpochRecord(epoch: epoch, phase: phase, loss: 0.6931471805599453, accuracy: 0.5, kerasAccuracy: 0.25,
                    valLoss: valAccuracy == nil ? nil : 0.6, valAccuracy: valAccuracy, valKerasAccuracy: valAccuracy == nil ? nil : 0.5,
                    learningRate: 0.001, seconds: 1.5)
    }
}

extension XCTestCase {
    /// A fresh directory under the system temporary directory, removed when the test ends.
    func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("cria-reports-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }
}

/// Runs a Python snippet for the optional interoperability checks, skipping when Python or a module is absent.
enum Python {
    static func run(_ script: String, arguments: [String], requiring module: String) throws -> String {
        // The first python3 on PATH, as a user's shell would pick it (pyenv, venv or system).
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        guard let python = path.split(separator: ":").map({ "\($0)/python3" })
            .first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw XCTSkip("python3 is not installed")
        }
        let probe = try execute(python, ["-c", "import \(module)"])
        if probe.status != 0 { throw XCTSkip("python3 cannot import \(module) (pip install \(module) to run this check)") }
        let result = try execute(python, ["-c", script] + arguments)
        if result.status != 0 { XCTFail("python failed: \(result.stderr)") }
        return result.stdout
    }

    private static func execute(_ executable: String, _ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: stdout, as: UTF8.self), String(decoding: stderr, as: UTF8.self))
    }
}
