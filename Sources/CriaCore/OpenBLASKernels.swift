import COpenBLASCore

/// Which of OpenBLAS's kernel sets Cria's GEMMs run on.
///
/// OpenBLAS picks them when it loads, from the CPU's model. Debian 12's 0.3.21 sends
/// Intel models it does not know (Emerald Rapids among them) to its SSE3 "Prescott"
/// kernels, about a ninth of the speed the CPU's AVX-512 kernels reach. Before its first
/// GEMM (from `Threads`), Cria has OpenBLAS choose again by the CPU's features in that
/// case (`cria_openblas_match_cpu`); a core named in `OPENBLAS_CORETYPE` is left alone.
public enum OpenBLASKernels {
    /// True when Cria switched OpenBLAS away from its SSE3 fallback. Evaluated once.
    public static let corrected: Bool = cria_openblas_match_cpu() != 0

    /// The kernel set in use: "SkylakeX", "Haswell", "Zen", ... ("unknown" when OpenBLAS
    /// does not say).
    public static var core: String { String(cString: cria_openblas_core()) }
}
