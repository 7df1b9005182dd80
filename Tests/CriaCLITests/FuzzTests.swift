import CriaTestSupport
import Foundation
import XCTest

/// A deterministic mutation fuzzer over every file `cria` reads: the five Keras layouts,
/// JPEG, PNG and BMP images, YAML configs, `--set` values and `.npy` inputs.
///
/// Each case mutates a small fixture with a seed (changed bytes, zeroed runs, truncations),
/// runs the real `cria` binary on it in a child process with a time limit, and accepts only
/// two outcomes: exit 0, or exit 1 with one error line naming the file. A signal, a hang,
/// any other status, HDF5's error stack or a multi-line error fails, with the seed and the
/// mutated file kept under `.build/fuzz-failures/` for replay.
///
/// `make test` runs a few hundred cases in all; `make fuzz` sets CRIA_FUZZ_CASES for more.
/// CRIA_FUZZ_SEED changes the base seed (default fixed, so CI is reproducible).
final class FuzzTests: XCTestCase {
    /// How a command's output must name the broken file.
    enum Reporting {
        /// One line on stderr, containing the path (predict, inspect, validate).
        case errorLine
        /// `cria data check`: exit 1 with the file listed among the unreadable ones on stdout.
        case unreadableList
        /// Config validation: one `error: <file>: invalid config:` line, then one indented line per
        /// problem (key path and line), which is the validator's documented format.
        case configErrors
    }

    struct Target {
        let name: String
        let fixture: URL
        let cases: Int
        let reporting: Reporting
        /// Where the mutated file goes inside the case directory (images need a class folder).
        let relativePath: String
        /// The command line for a case directory and the mutated file in it.
        let arguments: (_ directory: URL, _ file: URL) -> [String]
    }

    static var caseScale: Double {
        ProcessInfo.processInfo.environment["CRIA_FUZZ_CASES"].flatMap(Double.init).map { $0 / 100 } ?? 1
    }
    static var baseSeed: UInt64 {
        ProcessInfo.processInfo.environment["CRIA_FUZZ_SEED"].flatMap { UInt64($0) } ?? 0xC41A
    }
    /// A parse of the 0.35/96 fixtures takes well under a second; a case that runs this long has hung.
    static let timeout = 30.0

    private let keras = "keras/m035_96/"
    private let flags = ["--alpha", "0.35", "--size", "96"]

    func testKerasFilesNeverCrashOrHang() throws {
        let inspect: (Bool) -> (URL, URL) -> [String] = { needsFlags in
            { _, file in ["inspect", file.path] + (needsFlags ? ["--alpha", "0.35", "--size", "96"] : []) }
        }
        try fuzz([
            Target(name: "k2_full.h5", fixture: Fixtures.url(keras + "k2_full.h5"), cases: 60, reporting: .errorLine,
                   relativePath: "k2_full.h5", arguments: inspect(false)),
            Target(name: "k2_weights.h5", fixture: Fixtures.url(keras + "k2_weights.h5"), cases: 60, reporting: .errorLine,
                   relativePath: "k2_weights.h5", arguments: inspect(true)),
            Target(name: "k3_legacy_full.h5", fixture: Fixtures.url(keras + "k3_legacy_full.h5"), cases: 60, reporting: .errorLine,
                   relativePath: "k3_legacy_full.h5", arguments: inspect(false)),
            Target(name: "k3.weights.h5", fixture: Fixtures.url(keras + "k3.weights.h5"), cases: 60, reporting: .errorLine,
                   relativePath: "k3.weights.h5", arguments: inspect(true)),
            Target(name: "k3.keras", fixture: Fixtures.url(keras + "k3.keras"), cases: 60, reporting: .errorLine,
                   relativePath: "k3.keras", arguments: inspect(false)),
        ])
    }

    func testImagesNeverCrashOrHang() throws {
        let check: (URL, URL) -> [String] = { directory, _ in ["data", "check", directory.path] }
        try fuzz(["jpeg_420.jpg", "png_rgb8.png", "png_palette_trns.png", "bmp_24.bmp"].map { name in
            Target(name: name, fixture: Fixtures.url("data/decode/" + name), cases: 30, reporting: .unreadableList,
                   relativePath: "class_a/" + name, arguments: check)
        })
    }

    func testConfigsNeverCrashOrHang() throws {
        try fuzz([Target(name: "smoke.yaml", fixture: Fixtures.repositoryRoot.appendingPathComponent("Experiments/smoke.yaml"),
                         cases: 40, reporting: .configErrors, relativePath: "smoke.yaml",
                         arguments: { _, file in ["validate", file.path] }),
                  Target(name: "alpaca-sweep.yaml", fixture: Fixtures.repositoryRoot.appendingPathComponent("Experiments/alpaca-sweep.yaml"),
                         cases: 30, reporting: .configErrors, relativePath: "alpaca-sweep.yaml",
                         arguments: { _, file in ["validate", file.path] })])
    }

    /// `--set KEY=VALUE` with mutated keys and values: the error names the override, not a file.
    func testSetValuesNeverCrashOrHang() throws {
        let config = Fixtures.repositoryRoot.appendingPathComponent("Experiments/smoke.yaml").path
        let overrides = ["phases[1].fine_tune_at=120", "data.image_size=[160, 160]", "data.validation_split=0.2",
                         "phases[0].lr=1.0e-3", "augment=flip+rotation", "model.head.dropout=0.2", "data.batch_size=16"]
        var failures: [String] = []
        let cases = max(1, Int(Double(60) * FuzzTests.caseScale))
        for index in 0..<cases {
            let seed = FuzzTests.baseSeed &+ 0x5E7 &* UInt64(index + 1)
            let original = overrides[index % overrides.count]
            let mutated = String(decoding: Mutator.mutate(Data(original.utf8), seed: seed).data, as: UTF8.self)
            let outcome = try BoundedRun.run(try binary(), ["validate", config, "--set", mutated],
                                             directory: Fixtures.repositoryRoot, timeout: FuzzTests.timeout)
            if case let .exited(status, _, stderr) = outcome {
                let lines = stderr.split(separator: "\n")
                // One error line, or the validator's format: a header line, then one indented line per problem.
                if status == 0 || (status == 1 && stderr.hasPrefix("error: ") && lines.dropFirst().allSatisfy { $0.hasPrefix("  ") }) { continue }
                // ArgumentParser's own usage errors (an option-like value) exit 64 with a usage block: not a crash.
                if status == 64 { continue }
            }
            failures.append("--set seed \(seed) \(mutated.debugDescription): \(outcome)")
        }
        XCTAssertTrue(failures.isEmpty, "\(failures.count) of \(cases) --set cases failed:\n" + failures.joined(separator: "\n"))
    }

    func testNpyInputsNeverCrashOrHang() throws {
        let model = Fixtures.url(keras + "k3_legacy_full.h5").path
        try fuzz([Target(name: "k3_legacy_full_input.npy", fixture: Fixtures.url(keras + "k3_legacy_full_input.npy"), cases: 30,
                         reporting: .errorLine, relativePath: "input.npy",
                         arguments: { directory, file in
                             ["predict", "--model", model, "--input", file.path, "--output", directory.appendingPathComponent("out.npy").path]
                         })])
    }

    // MARK: The harness

    private func binary() throws -> URL {
        guard let binary = CLI.binary else { throw XCTSkip("the cria binary is not built next to the tests; run `swift build --build-tests`") }
        return binary
    }

    private func fuzz(_ targets: [Target]) throws {
        let binary = try binary()
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("cria-fuzz-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let keep = Fixtures.repositoryRoot.appendingPathComponent(".build/fuzz-failures")
        var report: [String] = []
        for target in targets {
            let original = try Data(contentsOf: target.fixture)
            let cases = max(1, Int(Double(target.cases) * FuzzTests.caseScale))
            var failures: [String] = []
            var accepted = 0
            let started = Date()
            for index in 0..<cases {
                let seed = FuzzTests.baseSeed &+ FuzzTests.stableHash(target.name) &+ UInt64(index)
                let (data, description) = Mutator.mutate(original, seed: seed)
                let directory = scratch.appendingPathComponent("\(target.name)-\(index)")
                let file = directory.appendingPathComponent(target.relativePath)
                try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
                try data.write(to: file)
                if target.reporting == .unreadableList {
                    // `data check` needs two class folders: the second holds an intact copy.
                    let intact = directory.appendingPathComponent("class_b/intact." + target.fixture.pathExtension)
                    try FileManager.default.createDirectory(at: intact.deletingLastPathComponent(), withIntermediateDirectories: true)
                    try original.write(to: intact)
                }
                let outcome = try BoundedRun.run(binary, target.arguments(directory, file), directory: Fixtures.repositoryRoot,
                                                 timeout: FuzzTests.timeout)
                if FuzzTests.acceptable(outcome, file: file, reporting: target.reporting) {
                    if case .exited(0, _, _) = outcome { accepted += 1 }
                } else {
                    try? FileManager.default.createDirectory(at: keep, withIntermediateDirectories: true)
                    let kept = keep.appendingPathComponent("\(seed)-\(target.name)")
                    try? FileManager.default.removeItem(at: kept)
                    try? data.write(to: kept)
                    failures.append("\(target.name) seed \(seed) (\(description)), kept as \(kept.path): \(outcome)")
                }
                try? FileManager.default.removeItem(at: directory)
            }
            let seconds = Date().timeIntervalSince(started)
            report.append(String(format: "%@: %d cases, %d failures, %d loaded, %.2f s/case", target.name, cases, failures.count,
                                 accepted, seconds / Double(cases)))
            XCTAssertTrue(failures.isEmpty, "\(failures.count) of \(cases) \(target.name) cases failed:\n" + failures.joined(separator: "\n"))
        }
        print("fuzz: " + report.joined(separator: "; "))
    }

    static func acceptable(_ outcome: BoundedRun.Outcome, file: URL, reporting: Reporting) -> Bool {
        guard case let .exited(status, stdout, stderr) = outcome else { return false }
        if stderr.contains("HDF5-DIAG") { return false }
        if status == 0 { return true }
        guard status == 1 else { return false }
        switch reporting {
        case .errorLine:
            let lines = stderr.split(separator: "\n")
            return lines.count == 1 && stderr.hasPrefix("error: ") && stderr.contains(file.lastPathComponent)
        case .configErrors:
            let lines = stderr.split(separator: "\n")
            return lines.first.map { $0.hasPrefix("error: ") && $0.contains(file.lastPathComponent) } == true
                && lines.dropFirst().allSatisfy { $0.hasPrefix("  ") }
        case .unreadableList:
            // stderr carries only the progress bar; the verdict is the list on stdout.
            return !stderr.contains("error") && !stderr.contains("Fatal") && stdout.contains("unreadable")
                && stdout.contains(file.lastPathComponent)
        }
    }

    /// FNV-1a, so that each target's seeds do not depend on Swift's per-process hash seed.
    static func stableHash(_ text: String) -> UInt64 {
        text.utf8.reduce(0xCBF2_9CE4_8422_2325) { ($0 ^ UInt64($1)) &* 0x100_0000_01B3 }
    }
}
