import ArgumentParser
import Cria
import Foundation

struct SystemCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "system",
        abstract: "Show what Cria computes with here: CPU, threads, OpenBLAS's kernels, the depthwise kernels' instruction set.",
        discussion: """
            OPENBLAS_CORETYPE names OpenBLAS's kernels (Cria corrects OpenBLAS's fallback to its SSE3 \
            kernels only when it is unset); CRIA_DEPTHWISE_ISA (portable, avx, avx512) picks a narrower \
            depthwise path than the CPU's widest; CRIA_THREADS sets the thread budget.
            """)

    @Flag(help: "Print one JSON object instead of lines.")
    var json = false

    func run() throws {
        let system = SystemInfo.current()
        print(json ? system.json.serialized(pretty: false) : system.lines.joined(separator: "\n"))
    }
}
