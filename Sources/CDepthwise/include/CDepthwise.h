#ifndef CRIA_CDEPTHWISE_H
#define CRIA_CDEPTHWISE_H

/// The instruction sets the kernels have a path for. Every path adds the same
/// terms in the same order in each lane, with multiply and add rounded
/// separately, so all of them give the same bits (tested).
enum {
    CRIA_ISA_PORTABLE = 0, ///< plain C, one lane at a time (any machine)
    CRIA_ISA_AVX = 1,      ///< 256-bit registers, eight channels each
    CRIA_ISA_AVX512 = 2,   ///< 512-bit registers, sixteen channels each (AVX-512F)
};

/// The widest path this CPU runs, from CPUID.
int cria_depthwise_best_isa(void);

/// The path the entry points without `_isa` take: the best one, unless the
/// environment variable CRIA_DEPTHWISE_ISA names a narrower one ("portable",
/// "avx" or "avx512"; a name this CPU lacks, or no path's name, gets one line
/// on stderr and the best path). Chosen at first use.
int cria_depthwise_isa(void);

/// Makes `isa` (capped at the best this CPU runs) the path for the whole
/// process, and returns the one now in effect: for tests and benchmarks.
int cria_depthwise_select_isa(int isa);

/// "portable", "avx", "avx512" (or "unknown").
const char *cria_depthwise_isa_name(int isa);

/// Four neighbouring interior output pixels of a 3x3 depthwise convolution,
/// channels [0, vector_end) in steps of 8. Pixel p's window starts at
/// origin + p * stride * pixel_stride (stride 1 or 2). When clamps_input is
/// nonzero, input values are clamped to [in_lower, in_upper] as they are read
/// (a ReLU6 fused from the layer before); each distinct input vector of a
/// kernel row is read (and clamped) once for the pixels that share it. Sums
/// are bias, then the taps in (ky, kx) order, with multiply and add rounded
/// separately (no fused multiply-add), as Cria's Swift kernels do.
///
/// Written in C because Swift's SIMD comparisons on this toolchain turn a
/// clamp inside a long kernel into per-lane shuffles; here it is two
/// instructions (vmaxps, vminps).
void cria_depthwise_four(const float *origin, const float *kernel, const float *bias, float *output,
                         long pixel_stride, long row_stride, long ky_low, long ky_high, long vector_end, long stride,
                         int clamps_input, float in_lower, float in_upper, float out_lower, float out_upper);

/// `cria_depthwise_four` on a given path (one the CPU lacks falls back to the
/// widest it has), for the tests that compare the paths' bits.
void cria_depthwise_four_isa(int isa, const float *origin, const float *kernel, const float *bias, float *output,
                             long pixel_stride, long row_stride, long ky_low, long ky_high, long vector_end,
                             long stride, int clamps_input, float in_lower, float in_upper, float out_lower,
                             float out_upper);

/// The same kernel without SIMD, used where AVX is missing (and tested
/// against the AVX one for equal bits).
void cria_depthwise_four_portable(const float *origin, const float *kernel, const float *bias, float *output,
                                  long pixel_stride, long row_stride, long ky_low, long ky_high, long vector_end,
                                  long stride, int clamps_input, float in_lower, float in_upper, float out_lower,
                                  float out_upper);

/// One output pixel of a depthwise convolution of any kernel size, channels
/// [0, vector_end) (a multiple of 8): the taps ky in [ky_low, ky_high), kx in
/// [kx_low, kx_high) of the window whose top-left input is column origin_x of
/// the row at `top` (taps outside the image are skipped, not added as zeros).
/// Inputs are clamped to [in_lower, in_upper] when clamps_input is nonzero.
/// The same sums, in the same order, as the four-pixel kernel: the image
/// borders, the leftovers of four-pixel runs and images narrower than six
/// pixels (5x5, where no run fits) take this path.
void cria_depthwise_pixel(const float *top, long origin_x, const float *kernel, const float *bias, float *output,
                          long pixel_stride, long row_stride, long ky_low, long ky_high, long kx_low,
                          long kx_high, long kernel_width, long vector_end, int clamps_input, float in_lower,
                          float in_upper, float out_lower, float out_upper);

/// `cria_depthwise_pixel` on a given path, as `cria_depthwise_four_isa`.
void cria_depthwise_pixel_isa(int isa, const float *top, long origin_x, const float *kernel, const float *bias,
                              float *output, long pixel_stride, long row_stride, long ky_low, long ky_high,
                              long kx_low, long kx_high, long kernel_width, long vector_end, int clamps_input,
                              float in_lower, float in_upper, float out_lower, float out_upper);

/// `cria_depthwise_pixel` without SIMD (tested against it for equal bits).
void cria_depthwise_pixel_portable(const float *top, long origin_x, const float *kernel, const float *bias,
                                   float *output, long pixel_stride, long row_stride, long ky_low, long ky_high,
                                   long kx_low, long kx_high, long kernel_width, long vector_end,
                                   int clamps_input, float in_lower, float in_upper, float out_lower,
                                   float out_upper);

/// The weight gradient of a 3x3 depthwise convolution over `pixels` interior
/// output pixels of one row, channels [0, vector_end) (a multiple of 8): for
/// each pixel in order, sums[9 * lanes + i] += g[i] (the bias row) and
/// sums[(ky * 3 + kx) * lanes + i] += g[i] * x[i] for the nine taps, where g is
/// the pixel's output gradient (`gradient`, then one pixel_stride on per pixel)
/// and x the input at the tap (window rows `row_stride` apart, taps
/// `pixel_stride` apart, windows `step` apart from `input`). The ten sums stay
/// in registers across the row.
void cria_depthwise_kernel_row(const float *gradient, const float *input, float *sums, long lanes,
                               long pixel_stride, long row_stride, long step, long pixels, long vector_end);

/// `cria_depthwise_kernel_row` on a given path, as `cria_depthwise_four_isa`.
void cria_depthwise_kernel_row_isa(int isa, const float *gradient, const float *input, float *sums, long lanes,
                                   long pixel_stride, long row_stride, long step, long pixels, long vector_end);

#endif
