import CriaCore
import CriaExperiments
import CriaTestSupport
import Foundation
import XCTest

/// Disk trouble during a run: `RLIMIT_FSIZE` makes every write past the limit fail with
/// EFBIG (SIGXFSZ is ignored, as a full disk's ENOSPC would be), which is what a full
/// disk looks like to the writer. The run must stop with one line naming the file, the
/// finished trial must stay as it was, and the same command without the limit resumes.
final class DiskFullTests: XCTestCase {
    func testWriteErrorStopsTheTrialCleanlyAndARerunResumes() throws {
        guard let binary = CLI.binary else { throw XCTSkip("the cria binary is not built next to the tests") }
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("cria-diskfull-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        try SyntheticImages.write(to: root.appendingPathComponent("images"), perClass: 8)
        let config = root.appendingPathComponent("disk.yaml")
        try """
        experiment: {name: disk, runs_dir: \(root.appendingPathComponent("runs").path)}
        data: {directory: \(root.appendingPathComponent("images").path), image_size: [32, 32], batch_size: 8, validation_split: 0.25, seed: 42}
        model:
          weights: \(Fixtures.url("keras/m035_96/k2_weights.h5").path)
          alpha: 0.35
          head: {dropout: 0.2, classes: 1}
        threads: 1
        repeats: 2
        phases:
          - {name: frozen, epochs: 1, trainable: none, lr: 1e-3}
        """.write(to: config, atomically: true, encoding: .utf8)

        // Trial 1 of 2 finishes normally.
        let first = try BoundedRun.run(binary, ["sweep", config.path, "--stamp", "s", "--limit", "1", "-q"],
                                       directory: Fixtures.repositoryRoot, timeout: 300)
        guard case .exited(0, _, _) = first else { return XCTFail("first run: \(first)") }
        let experiment = root.appendingPathComponent("runs/disk/s")
        func trialDirectories() throws -> [String] {
            try FileManager.default.contentsOfDirectory(atPath: experiment.path).filter { name in
                var isDirectory: ObjCBool = false
                return !name.hasPrefix(".") && FileManager.default.fileExists(atPath: experiment.appendingPathComponent(name).path, isDirectory: &isDirectory)
                    && isDirectory.boolValue
            }
        }
        let trials = try trialDirectories()
        XCTAssertEqual(trials.count, 1, "\(trials)")
        let finished = experiment.appendingPathComponent(trials[0])
        XCTAssertTrue(ExperimentRunner.isFinished(finished))
        func snapshot() throws -> [String: Data] {
            var files: [String: Data] = [:]
            // Every file of the trial, TensorBoard's train/ and validation/ runs included.
            let enumerator = FileManager.default.enumerator(at: finished, includingPropertiesForKeys: [.isRegularFileKey])
            while let url = enumerator?.nextObject() as? URL {
                guard try url.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile == true else { continue }
                files[String(url.path.dropFirst(finished.path.count + 1))] = try Data(contentsOf: url)
            }
            return files
        }
        let before = try snapshot()
        XCTAssertNotNil(before["model.h5"])

        // Trial 2 under a 200 KB file-size limit: metrics.csv fits, model.h5 (1.7 MB at alpha 0.35) does not.
        // `trap '' XFSZ` is inherited through exec, so the write fails with EFBIG instead of killing the process.
        let limited = try BoundedRun.run(URL(fileURLWithPath: "/bin/sh"),
                                         ["-c", "trap '' XFSZ; ulimit -f 400; exec \"$0\" \"$@\"", binary.path,
                                          "sweep", config.path, "--stamp", "s", "-q"],
                                         directory: Fixtures.repositoryRoot, timeout: 300)
        guard case let .exited(status, _, stderr) = limited else { return XCTFail("limited run: \(limited)") }
        XCTAssertEqual(status, 1, stderr)
        let errorLines = stderr.split(separator: "\n").filter { $0.hasPrefix("error: ") }
        XCTAssertEqual(errorLines.count, 1, stderr)
        XCTAssertTrue(errorLines.first?.contains("model.h5") ?? false, stderr)
        XCTAssertFalse(stderr.contains("HDF5-DIAG"), stderr)
        XCTAssertEqual(try snapshot(), before, "the finished trial must stay byte for byte as it was")
        let unfinished = try trialDirectories().filter { $0 != trials[0] }
        XCTAssertEqual(unfinished.count, 1)
        XCTAssertFalse(ExperimentRunner.isFinished(experiment.appendingPathComponent(unfinished[0])))
        // No half-written model.h5 is left where a reader would take it for a model.
        XCTAssertFalse(FileManager.default.fileExists(atPath: experiment.appendingPathComponent(unfinished[0] + "/model.h5").path))

        // The same command without the limit resumes: the second trial finishes, the first is untouched.
        let again = try BoundedRun.run(binary, ["sweep", config.path, "--stamp", "s", "-q"], directory: Fixtures.repositoryRoot, timeout: 300)
        guard case .exited(0, _, _) = again else { return XCTFail("rerun: \(again)") }
        XCTAssertTrue(ExperimentRunner.isFinished(experiment.appendingPathComponent(unfinished[0])))
        XCTAssertEqual(try snapshot(), before)
    }
}
