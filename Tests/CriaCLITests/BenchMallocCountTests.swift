import CriaTestSupport
import Foundation
import XCTest

/// Steady-state inference batches and training steps call malloc not at all, counted
/// as `cria bench` counts them: `Benchmarks/probes/malloc_count.c` preloaded into the
/// real binary, which wraps every malloc-family call of every thread.
///
/// At one thread the count is exact and must be zero. With more, OpenBLAS's threaded
/// GEMM driver and Swift's escape check of each `SpinTeam` region still allocate
/// (docs/training-engine.md), so this test pins the single-thread path, where every
/// allocation would be Cria's own.
final class BenchMallocCountTests: XCTestCase {
    /// A C compiler: the Swift toolchain's own clang, which is there wherever `swift` is.
    private func compiler() throws -> String {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin"
        for directory in path.split(separator: ":") {
            for name in ["clang", "cc"] {
                let candidate = "\(directory)/\(name)"
                if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            }
        }
        throw Skip.missing("a C compiler (clang from the Swift toolchain, or cc) to build the malloc counter")
    }

    private func mallocCounter() throws -> URL {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("cria-malloc-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: directory) }
        let library = directory.appendingPathComponent("malloc_count.so")
        let source = Fixtures.repositoryRoot.appendingPathComponent("Benchmarks/probes/malloc_count.c")
        let result = try Python.execute(try compiler(), ["-O2", "-shared", "-fPIC", "-o", library.path, source.path])
        XCTAssertEqual(result.status, 0, "compiling \(source.path): \(result.stderr)")
        return library
    }

    func testSteadyStateBatchesAndStepsCallMallocNeverAtOneThread() throws {
        let library = try mallocCounter()
        let result = try CLI.run(["bench", "--threads", "1", "--alpha", "0.35", "--size", "32", "--batch", "4",
                                  "--repetitions", "1", "--training-steps", "1", "--steady-batches", "30", "--json"],
                                 environment: ["LD_PRELOAD": library.path])
        XCTAssertEqual(result.status, 0, result.stderr)
        let report = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any], result.stdout)
        // Present only when the counter was loaded: a report without them means the probe did not run.
        let keys = ["steady_malloc_calls", "train_steady_malloc_calls_per_step", "train_steady_bn_train_malloc_calls_per_step"]
        for key in keys {
            let calls = try XCTUnwrap(report[key] as? Double, "\(key) missing: was the counter preloaded?")
            XCTAssertEqual(calls, 0, "\(key): steady-state work called malloc")
        }
        for key in ["train_steady_steps", "train_steady_bn_train_steps", "steady_batches"] {
            XCTAssertEqual(report[key] as? Double, 30, key)
        }
        for key in ["steady_arena_allocations_delta", "train_steady_buffer_allocations_delta", "train_steady_bn_train_buffer_allocations_delta"] {
            XCTAssertEqual(report[key] as? Double, 0, key)
        }
    }
}
