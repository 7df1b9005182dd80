#if canImport(Glibc)
import Glibc

// <malloc.h> is not part of Swift's Glibc module; the values are glibc's ABI.
@_silgen_name("mallopt") private func mallopt(_ parameter: Int32, _ value: Int32) -> Int32
private let M_TRIM_THRESHOLD: Int32 = -1
private let M_MMAP_THRESHOLD: Int32 = -3
#endif

/// glibc malloc settings for a process that frees and reallocates the same large
/// activation and gradient arrays on every training step.
///
/// Why: by default glibc serves blocks above a dynamic threshold (128 KB and up) with a
/// fresh `mmap` and unmaps them on free, and returns freed heap tops to the kernel. A
/// training step then page-faults and zero-fills every large tensor again: measured on
/// `cria bench`, 1.27 M page faults and about a third of the CPU time in the kernel.
/// Keeping blocks up to glibc's ceiling for the setting (32 MB on 64-bit) in the heap,
/// and never trimming it, removes a quarter of those faults and a third of the kernel
/// time; blocks above 32 MB are still mapped per use. Peak RSS is unchanged: the heap
/// only keeps what the process already needed at its peak.
public enum Allocator {
    private static let configured: Bool = {
        #if canImport(Glibc)
        _ = mallopt(M_MMAP_THRESHOLD, 32 << 20)
        _ = mallopt(M_TRIM_THRESHOLD, Int32.max)
        #endif
        return true
    }()

    /// Idempotent; called by the CLI at start and by training sessions.
    public static func configureForTraining() { _ = configured }
}
