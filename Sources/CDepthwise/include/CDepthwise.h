#ifndef CRIA_CDEPTHWISE_H
#define CRIA_CDEPTHWISE_H

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

/// `cria_depthwise_pixel` without SIMD (tested against it for equal bits).
void cria_depthwise_pixel_portable(const float *top, long origin_x, const float *kernel, const float *bias,
                                   float *output, long pixel_stride, long row_stride, long ky_low, long ky_high,
                                   long kx_low, long kx_high, long kernel_width, long vector_end,
                                   int clamps_input, float in_lower, float in_upper, float out_lower,
                                   float out_upper);

#endif
