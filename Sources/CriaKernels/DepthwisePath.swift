import CDepthwise

/// Which instruction set the depthwise kernels run on (the C kernels in `CDepthwise`).
///
/// The widest the CPU has is chosen at first use, from CPUID: AVX-512 where the CPU
/// has AVX-512F, else AVX, else plain C. Every path adds the same terms in the same
/// order in each lane, so all of them give the same bits; the variable
/// `CRIA_DEPTHWISE_ISA` (`portable`, `avx`, `avx512`) picks a narrower one, for
/// measuring one path against another in the same build.
public enum DepthwisePath: Int32, CaseIterable, Sendable, CustomStringConvertible {
    case portable = 0
    case avx = 1
    case avx512 = 2

    /// The widest path this CPU runs.
    public static var best: DepthwisePath { DepthwisePath(rawValue: cria_depthwise_best_isa()) ?? .portable }

    /// The path the kernels take now.
    public static var current: DepthwisePath { DepthwisePath(rawValue: cria_depthwise_isa()) ?? .portable }

    /// Makes `path` (or, where the CPU lacks it, the widest it has) the path for the whole
    /// process; returns the one now in effect. For tests and benchmarks.
    @discardableResult
    public static func select(_ path: DepthwisePath) -> DepthwisePath {
        DepthwisePath(rawValue: cria_depthwise_select_isa(path.rawValue)) ?? .portable
    }

    /// The name `CRIA_DEPTHWISE_ISA` takes: "portable", "avx" or "avx512".
    public var description: String { String(cString: cria_depthwise_isa_name(rawValue)) }
}
