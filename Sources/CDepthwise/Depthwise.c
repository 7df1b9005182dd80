#include "CDepthwise.h"

#if defined(__x86_64__)
#include <immintrin.h>

/* max(lower, v) then min(upper, r), operands in this order: the x86
   instructions return their second operand when the comparison is false or
   unordered, which is exactly `v < lower ? lower : v` and then
   `r > upper ? upper : r`, NaN and signed zeros included. */
__attribute__((target("avx"))) static inline __m256 clamp8(__m256 v, __m256 lower, __m256 upper) {
    return _mm256_min_ps(upper, _mm256_max_ps(lower, v));
}

#define MADD(acc, x, w) _mm256_add_ps(acc, _mm256_mul_ps(x, w))

/* Input vector i of the current kernel row, clamped when the caller asked for it. */
#define INPUT(i) (clamps_input ? clamp8(_mm256_loadu_ps(x + (i) * C), lo, hi) : _mm256_loadu_ps(x + (i) * C))

/* Inlined twice by four_avx, with clamps_input a constant each time, so that
   the unclamped kernel carries no clamp instructions. */
__attribute__((target("avx"), always_inline)) static inline void
four_body(const float *origin, const float *kernel, const float *bias, float *output, long C, long row_stride,
          long ky_low, long ky_high, long vector_end, long stride, const int clamps_input, __m256 lo, __m256 hi,
          __m256 olo, __m256 ohi) {
    for (long c = 0; c < vector_end; c += 8) {
        __m256 b = bias ? _mm256_loadu_ps(bias + c) : _mm256_setzero_ps();
        __m256 a0 = b, a1 = b, a2 = b, a3 = b;
        const float *x = origin + ky_low * row_stride + c;
        const float *t = kernel + ky_low * 3 * C + c;
        for (long ky = ky_low; ky < ky_high; ky++, x += row_stride, t += 3 * C) {
            const __m256 w0 = _mm256_loadu_ps(t), w1 = _mm256_loadu_ps(t + C), w2 = _mm256_loadu_ps(t + 2 * C);
            const __m256 x0 = INPUT(0), x1 = INPUT(1), x2 = INPUT(2);
            a0 = MADD(MADD(MADD(a0, x0, w0), x1, w1), x2, w2);
            if (stride == 1) {
                const __m256 x3 = INPUT(3);
                a1 = MADD(MADD(MADD(a1, x1, w0), x2, w1), x3, w2);
                const __m256 x4 = INPUT(4);
                a2 = MADD(MADD(MADD(a2, x2, w0), x3, w1), x4, w2);
                const __m256 x5 = INPUT(5);
                a3 = MADD(MADD(MADD(a3, x3, w0), x4, w1), x5, w2);
            } else {
                const __m256 x3 = INPUT(3), x4 = INPUT(4);
                a1 = MADD(MADD(MADD(a1, x2, w0), x3, w1), x4, w2);
                const __m256 x5 = INPUT(5), x6 = INPUT(6);
                a2 = MADD(MADD(MADD(a2, x4, w0), x5, w1), x6, w2);
                const __m256 x7 = INPUT(7), x8 = INPUT(8);
                a3 = MADD(MADD(MADD(a3, x6, w0), x7, w1), x8, w2);
            }
        }
        _mm256_storeu_ps(output + c, clamp8(a0, olo, ohi));
        _mm256_storeu_ps(output + C + c, clamp8(a1, olo, ohi));
        _mm256_storeu_ps(output + 2 * C + c, clamp8(a2, olo, ohi));
        _mm256_storeu_ps(output + 3 * C + c, clamp8(a3, olo, ohi));
    }
}

__attribute__((target("avx"))) static void four_avx(const float *origin, const float *kernel, const float *bias,
                                                    float *output, long C, long row_stride, long ky_low,
                                                    long ky_high, long vector_end, long stride, int clamps_input,
                                                    float in_lower, float in_upper, float out_lower,
                                                    float out_upper) {
    const __m256 lo = _mm256_set1_ps(in_lower), hi = _mm256_set1_ps(in_upper);
    const __m256 olo = _mm256_set1_ps(out_lower), ohi = _mm256_set1_ps(out_upper);
    if (clamps_input) {
        four_body(origin, kernel, bias, output, C, row_stride, ky_low, ky_high, vector_end, stride, 1, lo, hi,
                  olo, ohi);
    } else {
        four_body(origin, kernel, bias, output, C, row_stride, ky_low, ky_high, vector_end, stride, 0, lo, hi,
                  olo, ohi);
    }
}

/* One tap of four channel blocks: the loads, the optional clamp, the sums. */
#define PIXEL_TAP(acc, offset)                                                             \
    do {                                                                                   \
        __m256 v = _mm256_loadu_ps(x + (offset));                                          \
        if (clamps_input) v = clamp8(v, lo, hi);                                           \
        acc = MADD(acc, v, _mm256_loadu_ps(t + (offset)));                                 \
    } while (0)

__attribute__((target("avx"))) static void pixel_avx(const float *top, long origin_x, const float *kernel,
                                                     const float *bias, float *output, long C, long row_stride,
                                                     long ky_low, long ky_high, long kx_low, long kx_high,
                                                     long kernel_width, long vector_end, int clamps_input,
                                                     float in_lower, float in_upper, float out_lower,
                                                     float out_upper) {
    const __m256 lo = _mm256_set1_ps(in_lower), hi = _mm256_set1_ps(in_upper);
    const __m256 olo = _mm256_set1_ps(out_lower), ohi = _mm256_set1_ps(out_upper);
    long c = 0;
    /* Four channel blocks at a time: four independent sums keep the adder busy. */
    for (; c + 32 <= vector_end; c += 32) {
        __m256 a0, a1, a2, a3;
        if (bias) {
            a0 = _mm256_loadu_ps(bias + c); a1 = _mm256_loadu_ps(bias + c + 8);
            a2 = _mm256_loadu_ps(bias + c + 16); a3 = _mm256_loadu_ps(bias + c + 24);
        } else {
            a0 = a1 = a2 = a3 = _mm256_setzero_ps();
        }
        for (long ky = ky_low; ky < ky_high; ky++) {
            for (long kx = kx_low; kx < kx_high; kx++) {
                const float *x = top + ky * row_stride + (origin_x + kx) * C + c;
                const float *t = kernel + (ky * kernel_width + kx) * C + c;
                PIXEL_TAP(a0, 0); PIXEL_TAP(a1, 8); PIXEL_TAP(a2, 16); PIXEL_TAP(a3, 24);
            }
        }
        _mm256_storeu_ps(output + c, clamp8(a0, olo, ohi));
        _mm256_storeu_ps(output + c + 8, clamp8(a1, olo, ohi));
        _mm256_storeu_ps(output + c + 16, clamp8(a2, olo, ohi));
        _mm256_storeu_ps(output + c + 24, clamp8(a3, olo, ohi));
    }
    for (; c < vector_end; c += 8) {
        __m256 a0 = bias ? _mm256_loadu_ps(bias + c) : _mm256_setzero_ps();
        for (long ky = ky_low; ky < ky_high; ky++) {
            for (long kx = kx_low; kx < kx_high; kx++) {
                const float *x = top + ky * row_stride + (origin_x + kx) * C + c;
                const float *t = kernel + (ky * kernel_width + kx) * C + c;
                PIXEL_TAP(a0, 0);
            }
        }
        _mm256_storeu_ps(output + c, clamp8(a0, olo, ohi));
    }
}
#endif

static inline float clamp1(float v, float lower, float upper) {
    float r = v < lower ? lower : v;
    return r > upper ? upper : r;
}

/* Any machine: the same sums, one lane at a time. */
void cria_depthwise_four_portable(const float *origin, const float *kernel, const float *bias, float *output,
                                  long C, long row_stride, long ky_low, long ky_high, long vector_end, long stride,
                                  int clamps_input, float in_lower, float in_upper, float out_lower,
                                  float out_upper) {
    for (long c = 0; c < vector_end; c++) {
        for (long p = 0; p < 4; p++) {
            float acc = bias ? bias[c] : 0.0f;
            for (long ky = ky_low; ky < ky_high; ky++) {
                const float *x = origin + ky * row_stride + p * stride * C + c;
                const float *t = kernel + ky * 3 * C + c;
                for (long kx = 0; kx < 3; kx++) {
                    float v = x[kx * C];
                    if (clamps_input) v = clamp1(v, in_lower, in_upper);
                    float product = v * t[kx * C];
                    acc = acc + product;
                }
            }
            output[p * C + c] = clamp1(acc, out_lower, out_upper);
        }
    }
}

void cria_depthwise_four(const float *origin, const float *kernel, const float *bias, float *output,
                         long pixel_stride, long row_stride, long ky_low, long ky_high, long vector_end, long stride,
                         int clamps_input, float in_lower, float in_upper, float out_lower, float out_upper) {
#if defined(__x86_64__)
    if (__builtin_cpu_supports("avx")) {
        four_avx(origin, kernel, bias, output, pixel_stride, row_stride, ky_low, ky_high, vector_end, stride,
                 clamps_input, in_lower, in_upper, out_lower, out_upper);
        return;
    }
#endif
    cria_depthwise_four_portable(origin, kernel, bias, output, pixel_stride, row_stride, ky_low, ky_high,
                                 vector_end, stride, clamps_input, in_lower, in_upper, out_lower, out_upper);
}

void cria_depthwise_pixel_portable(const float *top, long origin_x, const float *kernel, const float *bias,
                                   float *output, long C, long row_stride, long ky_low, long ky_high,
                                   long kx_low, long kx_high, long kernel_width, long vector_end,
                                   int clamps_input, float in_lower, float in_upper, float out_lower,
                                   float out_upper) {
    for (long c = 0; c < vector_end; c++) {
        float acc = bias ? bias[c] : 0.0f;
        for (long ky = ky_low; ky < ky_high; ky++) {
            for (long kx = kx_low; kx < kx_high; kx++) {
                float v = top[ky * row_stride + (origin_x + kx) * C + c];
                if (clamps_input) v = clamp1(v, in_lower, in_upper);
                float product = v * kernel[(ky * kernel_width + kx) * C + c];
                acc = acc + product;
            }
        }
        output[c] = clamp1(acc, out_lower, out_upper);
    }
}

void cria_depthwise_pixel(const float *top, long origin_x, const float *kernel, const float *bias, float *output,
                          long pixel_stride, long row_stride, long ky_low, long ky_high, long kx_low,
                          long kx_high, long kernel_width, long vector_end, int clamps_input, float in_lower,
                          float in_upper, float out_lower, float out_upper) {
#if defined(__x86_64__)
    if (__builtin_cpu_supports("avx")) {
        pixel_avx(top, origin_x, kernel, bias, output, pixel_stride, row_stride, ky_low, ky_high, kx_low,
                  kx_high, kernel_width, vector_end, clamps_input, in_lower, in_upper, out_lower, out_upper);
        return;
    }
#endif
    cria_depthwise_pixel_portable(top, origin_x, kernel, bias, output, pixel_stride, row_stride, ky_low,
                                  ky_high, kx_low, kx_high, kernel_width, vector_end, clamps_input, in_lower,
                                  in_upper, out_lower, out_upper);
}
