import CriaCore
import CriaTestSupport
import Foundation
import XCTest

/// `cria system`, and through it the two choices of kernels Cria makes at run time.
final class SystemCommandTests: XCTestCase {
    private func system(_ environment: [String: String] = [:]) throws -> JSONValue {
        let result = try CLI.run(["system", "--json"], environment: environment)
        XCTAssertEqual(result.status, 0, result.stderr)
        return try JSONValue.parse(result.stdout, source: "cria system --json")
    }

    /// Debian 12's OpenBLAS sends CPUs it does not know (Emerald Rapids) to its SSE3
    /// kernels; on any CPU with AVX, Cria's GEMMs must not run on them.
    func testOpenBLASDoesNotRunItsSSE3KernelsOnACPUWithAVX() throws {
        guard ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] == nil else {
            throw Skip.decision("OPENBLAS_CORETYPE is set, so OpenBLAS's own choice is not what runs")
        }
        let info = try system()
        let core = try XCTUnwrap(info["openblas_core"]?.string)
        let best = try XCTUnwrap(info["depthwise_best_path"]?.string)
        if best != "portable" {
            XCTAssertNotEqual(core, "Prescott", "OpenBLAS runs its SSE3 kernels on a CPU with AVX: \(info)")
        }
    }

    /// A core the user names is left alone.
    func testANamedOpenBLASCoreIsKept() throws {
        guard try system()["depthwise_best_path"]?.string != "portable" else {
            throw Skip.decision("this CPU has no AVX, so OpenBLAS's Haswell kernels cannot be named here")
        }
        let named = try system(["OPENBLAS_CORETYPE": "Haswell"])
        XCTAssertEqual(named["openblas_core"]?.string, "Haswell")
        XCTAssertEqual(named["openblas_core_corrected"], .bool(false))
    }

    func testDepthwisePathFollowsTheVariable() throws {
        let info = try system()
        XCTAssertEqual(info["depthwise_path"], info["depthwise_best_path"])
        XCTAssertEqual(try system(["CRIA_DEPTHWISE_ISA": "portable"])["depthwise_path"]?.string, "portable")
        let lines = try CLI.run(["system"], environment: ["CRIA_DEPTHWISE_ISA": "portable"])
        XCTAssertTrue(lines.stdout.contains("depthwise kernels: portable (CRIA_DEPTHWISE_ISA"), lines.stdout)
    }
}
