#ifndef CRIA_COPENBLASCORE_H
#define CRIA_COPENBLASCORE_H

/// OpenBLAS chooses its kernels at load time from the CPU's family and model
/// (builds with DYNAMIC_ARCH, as Debian's are). Up to 0.3.24 an Intel family-6
/// model it does not know falls through to its Prescott (SSE3) kernels: on an
/// Emerald Rapids Xeon, Debian 12's OpenBLAS 0.3.21 runs sgemm at about 16
/// GFLOP/s a core instead of 140 (OpenBLAS issue 4267, fixed in 0.3.25).
///
/// When OpenBLAS runs its Prescott kernels on a CPU that has AVX and the user
/// has not named a core (OPENBLAS_CORETYPE), this runs OpenBLAS's selection
/// again with OPENBLAS_CORETYPE naming the kernels the CPU's features allow:
/// SkylakeX with AVX-512 (F, BW, DQ, VL), Haswell with AVX2 and FMA,
/// Sandybridge with AVX. The variable is removed again afterwards. Call once,
/// before any BLAS call. Returns 1 when it switched, else 0 (nothing to do, or
/// an OpenBLAS without run-time selection).
int cria_openblas_match_cpu(void);

/// The kernels OpenBLAS runs ("SkylakeX", "Haswell", "Zen", ...), or "unknown".
const char *cria_openblas_core(void);

#endif
