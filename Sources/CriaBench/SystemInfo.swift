import CBLAS
import CriaCore
import CriaKernels
import Foundation

/// What Cria computes with on this machine: the CPU, the thread budget, OpenBLAS's kernel
/// set and the depthwise kernels' instruction set. `cria system` prints it, and every
/// benchmark report carries it, since each changes the speed (and the GEMMs' bits).
public struct SystemInfo: Sendable {
    /// The CPU's model name (Linux: /proc/cpuinfo), or "unknown".
    public var cpu: String
    public var threads: Int
    /// OpenBLAS's build (`openblas_get_config`), e.g. "OpenBLAS 0.3.21 DYNAMIC_ARCH ...".
    public var openBLASConfig: String
    /// The kernel set OpenBLAS runs (`OpenBLASKernels.core`).
    public var openBLASCore: String
    /// True when Cria moved OpenBLAS off its SSE3 fallback (`OpenBLASKernels.corrected`).
    public var openBLASCoreCorrected: Bool
    public var depthwisePath: DepthwisePath
    public var bestDepthwisePath: DepthwisePath

    /// The state now. Touches `Threads` first, which settles OpenBLAS's kernels.
    public static func current() -> SystemInfo {
        let threads = Threads.count
        return SystemInfo(cpu: cpuModel(), threads: threads,
                          openBLASConfig: openblas_get_config().map { String(cString: $0) } ?? "unknown",
                          openBLASCore: OpenBLASKernels.core, openBLASCoreCorrected: OpenBLASKernels.corrected,
                          depthwisePath: .current, bestDepthwisePath: .best)
    }

    static func cpuModel() -> String {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return "unknown" }
        for line in text.split(separator: "\n") where line.hasPrefix("model name") {
            if let colon = line.firstIndex(of: ":") {
                return line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            }
        }
        return "unknown"
    }

    public var json: JSONValue {
        .object(["cpu": .string(cpu), "threads": .number(Double(threads)), "openblas_config": .string(openBLASConfig),
                 "openblas_core": .string(openBLASCore), "openblas_core_corrected": .bool(openBLASCoreCorrected),
                 "depthwise_path": .string(depthwisePath.description),
                 "depthwise_best_path": .string(bestDepthwisePath.description)])
    }

    /// Aligned "label: value" lines.
    public var lines: [String] {
        ["CPU: \(cpu)",
         "threads: \(threads) (CRIA_THREADS; OpenBLAS and Cria's own loops share them)",
         "OpenBLAS: \(openBLASConfig)",
         "OpenBLAS kernels: \(openBLASCore)"
             + (openBLASCoreCorrected ? " (chosen by Cria: OpenBLAS's detection had fallen back to Prescott)" : ""),
         "depthwise kernels: \(depthwisePath)"
             + (depthwisePath == bestDepthwisePath ? "" : " (CRIA_DEPTHWISE_ISA; this CPU's widest: \(bestDepthwisePath))")]
    }
}
