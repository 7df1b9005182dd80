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

    /// At one thread, nothing in Cria's steady-state batches and steps calls malloc. The one
    /// exception is OpenBLAS's own AVX-512 small-matrix sgemm (its SkylakeX and Cooperlake
    /// kernels), which mallocs a buffer in every call whose M leaves a tail of 1 to 8 rows:
    /// the probe counts those apart, and they must be 0 with any other kernels. Where the CPU
    /// has AVX2, a second run names OpenBLAS's Haswell kernels, where every count must be 0.
    func testSteadyStateBatchesAndStepsCallMallocNeverAtOneThread() throws {
        let library = try mallocCounter()
        func check(_ environment: [String: String]) throws -> String {
            let result = try CLI.run(["bench", "--threads", "1", "--alpha", "0.35", "--size", "32", "--batch", "4",
                                      "--repetitions", "1", "--training-steps", "1", "--steady-batches", "30", "--json"],
                                     environment: environment.merging(["LD_PRELOAD": library.path]) { a, _ in a })
            XCTAssertEqual(result.status, 0, result.stderr)
            let report = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any], result.stdout)
            let core = try XCTUnwrap((report["system"] as? [String: Any])?["openblas_core"] as? String, result.stdout)
            let smallMatrixKernels = ["SkylakeX", "Cooperlake"].contains(core)
            // Present only when the counter was loaded: a report without them means the probe did not run.
            for stem in ["steady_", "train_steady_", "train_steady_bn_train_"] {
                let suffix = stem == "steady_" ? "malloc_calls" : "malloc_calls_per_step"
                let total = try XCTUnwrap(report[stem + suffix] as? Double, "\(stem + suffix) missing: was the counter preloaded?")
                let openBLAS = try XCTUnwrap(report[stem + "openblas_" + suffix] as? Double, "\(stem)openblas_\(suffix) missing")
                XCTAssertEqual(total - openBLAS, 0, "\(stem + suffix): steady-state work outside OpenBLAS called malloc (\(core))")
                if !smallMatrixKernels {
                    XCTAssertEqual(openBLAS, 0, "\(stem)openblas_\(suffix): OpenBLAS's \(core) kernels called malloc")
                }
            }
            for key in ["train_steady_steps", "train_steady_bn_train_steps", "steady_batches"] {
                XCTAssertEqual(report[key] as? Double, 30, key)
            }
            for key in ["steady_arena_allocations_delta", "train_steady_buffer_allocations_delta", "train_steady_bn_train_buffer_allocations_delta"] {
                XCTAssertEqual(report[key] as? Double, 0, key)
            }
            return core
        }
        let core = try check([:])
        if ["SkylakeX", "Cooperlake"].contains(core) {
            XCTAssertEqual(try check(["OPENBLAS_CORETYPE": "Haswell"]), "Haswell")
        }
    }
}
