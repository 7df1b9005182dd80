#include "CDepthwise.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* The AVX-512 path: the same sums as the AVX one, sixteen channels to a register.
   Every lane still adds the bias, then its taps in (ky, kx) order, multiply and add
   rounded separately, so a value does not depend on the register width. Channel
   counts are multiples of 8: a last block of 8 runs with the upper half masked off
   (masked loads do not touch the masked lanes' memory). */
#define AVX512 __attribute__((target("avx512f")))

AVX512 static inline __m512 clamp16(__m512 v, __m512 lower, __m512 upper) {
    return _mm512_min_ps(upper, _mm512_max_ps(lower, v));
}

#define MADD16(acc, x, w) _mm512_add_ps(acc, _mm512_mul_ps(x, w))
#define LOAD16(p) _mm512_maskz_loadu_ps(m, (p))
#define INPUT16(i) (clamps_input ? clamp16(LOAD16(x + (i) * C), lo, hi) : LOAD16(x + (i) * C))

/* One block of sixteen (or, masked, eight) channels of the four pixels. */
AVX512 __attribute__((always_inline)) static inline void
four_block512(const float *origin, const float *kernel, const float *bias, float *output, long C, long row_stride,
              long ky_low, long ky_high, long stride, const int clamps_input, __m512 lo, __m512 hi, __m512 olo,
              __m512 ohi, long c, const __mmask16 m) {
    __m512 b = bias ? LOAD16(bias + c) : _mm512_setzero_ps();
    __m512 a0 = b, a1 = b, a2 = b, a3 = b;
    const float *x = origin + ky_low * row_stride + c;
    const float *t = kernel + ky_low * 3 * C + c;
    for (long ky = ky_low; ky < ky_high; ky++, x += row_stride, t += 3 * C) {
        const __m512 w0 = LOAD16(t), w1 = LOAD16(t + C), w2 = LOAD16(t + 2 * C);
        const __m512 x0 = INPUT16(0), x1 = INPUT16(1), x2 = INPUT16(2);
        a0 = MADD16(MADD16(MADD16(a0, x0, w0), x1, w1), x2, w2);
        if (stride == 1) {
            const __m512 x3 = INPUT16(3);
            a1 = MADD16(MADD16(MADD16(a1, x1, w0), x2, w1), x3, w2);
            const __m512 x4 = INPUT16(4);
            a2 = MADD16(MADD16(MADD16(a2, x2, w0), x3, w1), x4, w2);
            const __m512 x5 = INPUT16(5);
            a3 = MADD16(MADD16(MADD16(a3, x3, w0), x4, w1), x5, w2);
        } else {
            const __m512 x3 = INPUT16(3), x4 = INPUT16(4);
            a1 = MADD16(MADD16(MADD16(a1, x2, w0), x3, w1), x4, w2);
            const __m512 x5 = INPUT16(5), x6 = INPUT16(6);
            a2 = MADD16(MADD16(MADD16(a2, x4, w0), x5, w1), x6, w2);
            const __m512 x7 = INPUT16(7), x8 = INPUT16(8);
            a3 = MADD16(MADD16(MADD16(a3, x6, w0), x7, w1), x8, w2);
        }
    }
    _mm512_mask_storeu_ps(output + c, m, clamp16(a0, olo, ohi));
    _mm512_mask_storeu_ps(output + C + c, m, clamp16(a1, olo, ohi));
    _mm512_mask_storeu_ps(output + 2 * C + c, m, clamp16(a2, olo, ohi));
    _mm512_mask_storeu_ps(output + 3 * C + c, m, clamp16(a3, olo, ohi));
}

AVX512 __attribute__((always_inline)) static inline void
four_body512(const float *origin, const float *kernel, const float *bias, float *output, long C, long row_stride,
             long ky_low, long ky_high, long vector_end, long stride, const int clamps_input, __m512 lo, __m512 hi,
             __m512 olo, __m512 ohi) {
    long c = 0;
    for (; c + 16 <= vector_end; c += 16) {
        four_block512(origin, kernel, bias, output, C, row_stride, ky_low, ky_high, stride, clamps_input, lo, hi,
                      olo, ohi, c, (__mmask16)0xFFFF);
    }
    if (c < vector_end) {
        four_block512(origin, kernel, bias, output, C, row_stride, ky_low, ky_high, stride, clamps_input, lo, hi,
                      olo, ohi, c, (__mmask16)0x00FF);
    }
}

AVX512 static void four_avx512(const float *origin, const float *kernel, const float *bias, float *output, long C,
                               long row_stride, long ky_low, long ky_high, long vector_end, long stride,
                               int clamps_input, float in_lower, float in_upper, float out_lower, float out_upper) {
    const __m512 lo = _mm512_set1_ps(in_lower), hi = _mm512_set1_ps(in_upper);
    const __m512 olo = _mm512_set1_ps(out_lower), ohi = _mm512_set1_ps(out_upper);
    if (clamps_input) {
        four_body512(origin, kernel, bias, output, C, row_stride, ky_low, ky_high, vector_end, stride, 1, lo, hi,
                     olo, ohi);
    } else {
        four_body512(origin, kernel, bias, output, C, row_stride, ky_low, ky_high, vector_end, stride, 0, lo, hi,
                     olo, ohi);
    }
}

#define PIXEL_TAP16(acc, offset)                                                           \
    do {                                                                                   \
        __m512 v = LOAD16(x + (offset));                                                   \
        if (clamps_input) v = clamp16(v, lo, hi);                                          \
        acc = MADD16(acc, v, LOAD16(t + (offset)));                                        \
    } while (0)

AVX512 static void pixel_avx512(const float *top, long origin_x, const float *kernel, const float *bias,
                                float *output, long C, long row_stride, long ky_low, long ky_high, long kx_low,
                                long kx_high, long kernel_width, long vector_end, int clamps_input, float in_lower,
                                float in_upper, float out_lower, float out_upper) {
    const __m512 lo = _mm512_set1_ps(in_lower), hi = _mm512_set1_ps(in_upper);
    const __m512 olo = _mm512_set1_ps(out_lower), ohi = _mm512_set1_ps(out_upper);
    long c = 0;
    {
        /* Four blocks of sixteen at a time: four independent sums keep the adder busy. */
        const __mmask16 m = 0xFFFF;
        for (; c + 64 <= vector_end; c += 64) {
            __m512 a0, a1, a2, a3;
            if (bias) {
                a0 = LOAD16(bias + c); a1 = LOAD16(bias + c + 16);
                a2 = LOAD16(bias + c + 32); a3 = LOAD16(bias + c + 48);
            } else {
                a0 = a1 = a2 = a3 = _mm512_setzero_ps();
            }
            for (long ky = ky_low; ky < ky_high; ky++) {
                for (long kx = kx_low; kx < kx_high; kx++) {
                    const float *x = top + ky * row_stride + (origin_x + kx) * C + c;
                    const float *t = kernel + (ky * kernel_width + kx) * C + c;
                    PIXEL_TAP16(a0, 0); PIXEL_TAP16(a1, 16); PIXEL_TAP16(a2, 32); PIXEL_TAP16(a3, 48);
                }
            }
            _mm512_storeu_ps(output + c, clamp16(a0, olo, ohi));
            _mm512_storeu_ps(output + c + 16, clamp16(a1, olo, ohi));
            _mm512_storeu_ps(output + c + 32, clamp16(a2, olo, ohi));
            _mm512_storeu_ps(output + c + 48, clamp16(a3, olo, ohi));
        }
    }
    for (; c < vector_end; c += 16) {
        const __mmask16 m = vector_end - c >= 16 ? (__mmask16)0xFFFF : (__mmask16)0x00FF;
        __m512 a0 = bias ? LOAD16(bias + c) : _mm512_setzero_ps();
        for (long ky = ky_low; ky < ky_high; ky++) {
            for (long kx = kx_low; kx < kx_high; kx++) {
                const float *x = top + ky * row_stride + (origin_x + kx) * C + c;
                const float *t = kernel + (ky * kernel_width + kx) * C + c;
                PIXEL_TAP16(a0, 0);
            }
        }
        _mm512_mask_storeu_ps(output + c, m, clamp16(a0, olo, ohi));
    }
}

/* The weight gradient's row kernel (see the header), eight and sixteen lanes. */
__attribute__((target("avx"))) static void kernel_row_avx(const float *gradient, const float *input, float *sums,
                                                          long lanes, long C, long row_stride, long step,
                                                          long pixels, long vector_end) {
    for (long i = 0; i < vector_end; i += 8) {
        float *s = sums + i;
        __m256 a0 = _mm256_loadu_ps(s), a1 = _mm256_loadu_ps(s + lanes), a2 = _mm256_loadu_ps(s + 2 * lanes);
        __m256 a3 = _mm256_loadu_ps(s + 3 * lanes), a4 = _mm256_loadu_ps(s + 4 * lanes);
        __m256 a5 = _mm256_loadu_ps(s + 5 * lanes), a6 = _mm256_loadu_ps(s + 6 * lanes);
        __m256 a7 = _mm256_loadu_ps(s + 7 * lanes), a8 = _mm256_loadu_ps(s + 8 * lanes);
        __m256 ab = _mm256_loadu_ps(s + 9 * lanes);
        const float *d = gradient + i, *p = input + i;
        for (long px = 0; px < pixels; px++, d += C, p += step) {
            const __m256 g = _mm256_loadu_ps(d);
            const float *q = p + row_stride, *r = q + row_stride;
            ab = _mm256_add_ps(ab, g);
            a0 = MADD(a0, g, _mm256_loadu_ps(p)); a1 = MADD(a1, g, _mm256_loadu_ps(p + C));
            a2 = MADD(a2, g, _mm256_loadu_ps(p + 2 * C));
            a3 = MADD(a3, g, _mm256_loadu_ps(q)); a4 = MADD(a4, g, _mm256_loadu_ps(q + C));
            a5 = MADD(a5, g, _mm256_loadu_ps(q + 2 * C));
            a6 = MADD(a6, g, _mm256_loadu_ps(r)); a7 = MADD(a7, g, _mm256_loadu_ps(r + C));
            a8 = MADD(a8, g, _mm256_loadu_ps(r + 2 * C));
        }
        _mm256_storeu_ps(s, a0); _mm256_storeu_ps(s + lanes, a1); _mm256_storeu_ps(s + 2 * lanes, a2);
        _mm256_storeu_ps(s + 3 * lanes, a3); _mm256_storeu_ps(s + 4 * lanes, a4);
        _mm256_storeu_ps(s + 5 * lanes, a5); _mm256_storeu_ps(s + 6 * lanes, a6);
        _mm256_storeu_ps(s + 7 * lanes, a7); _mm256_storeu_ps(s + 8 * lanes, a8);
        _mm256_storeu_ps(s + 9 * lanes, ab);
    }
}

AVX512 __attribute__((always_inline)) static inline void
kernel_row_block512(const float *gradient, const float *input, float *sums, long lanes, long C, long row_stride,
                    long step, long pixels, long i, const __mmask16 m) {
    float *s = sums + i;
    __m512 a0 = LOAD16(s), a1 = LOAD16(s + lanes), a2 = LOAD16(s + 2 * lanes), a3 = LOAD16(s + 3 * lanes);
    __m512 a4 = LOAD16(s + 4 * lanes), a5 = LOAD16(s + 5 * lanes), a6 = LOAD16(s + 6 * lanes);
    __m512 a7 = LOAD16(s + 7 * lanes), a8 = LOAD16(s + 8 * lanes), ab = LOAD16(s + 9 * lanes);
    const float *d = gradient + i, *p = input + i;
    for (long px = 0; px < pixels; px++, d += C, p += step) {
        const __m512 g = LOAD16(d);
        const float *q = p + row_stride, *r = q + row_stride;
        ab = _mm512_add_ps(ab, g);
        a0 = MADD16(a0, g, LOAD16(p)); a1 = MADD16(a1, g, LOAD16(p + C)); a2 = MADD16(a2, g, LOAD16(p + 2 * C));
        a3 = MADD16(a3, g, LOAD16(q)); a4 = MADD16(a4, g, LOAD16(q + C)); a5 = MADD16(a5, g, LOAD16(q + 2 * C));
        a6 = MADD16(a6, g, LOAD16(r)); a7 = MADD16(a7, g, LOAD16(r + C)); a8 = MADD16(a8, g, LOAD16(r + 2 * C));
    }
    _mm512_mask_storeu_ps(s, m, a0); _mm512_mask_storeu_ps(s + lanes, m, a1);
    _mm512_mask_storeu_ps(s + 2 * lanes, m, a2); _mm512_mask_storeu_ps(s + 3 * lanes, m, a3);
    _mm512_mask_storeu_ps(s + 4 * lanes, m, a4); _mm512_mask_storeu_ps(s + 5 * lanes, m, a5);
    _mm512_mask_storeu_ps(s + 6 * lanes, m, a6); _mm512_mask_storeu_ps(s + 7 * lanes, m, a7);
    _mm512_mask_storeu_ps(s + 8 * lanes, m, a8); _mm512_mask_storeu_ps(s + 9 * lanes, m, ab);
}

AVX512 static void kernel_row_avx512(const float *gradient, const float *input, float *sums, long lanes, long C,
                                     long row_stride, long step, long pixels, long vector_end) {
    long i = 0;
    for (; i + 16 <= vector_end; i += 16) {
        kernel_row_block512(gradient, input, sums, lanes, C, row_stride, step, pixels, i, (__mmask16)0xFFFF);
    }
    if (i < vector_end) {
        kernel_row_block512(gradient, input, sums, lanes, C, row_stride, step, pixels, i, (__mmask16)0x00FF);
    }
}

#endif

/* The path every entry point takes: chosen once, from CPUID and CRIA_DEPTHWISE_ISA. */
static int selected_isa = -1;

static int best_isa = -1;

int cria_depthwise_best_isa(void) {
    int isa = __atomic_load_n(&best_isa, __ATOMIC_RELAXED);
    if (isa >= 0) return isa;
    isa = CRIA_ISA_PORTABLE;
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) {
        isa = CRIA_ISA_AVX512;
    } else if (__builtin_cpu_supports("avx")) {
        isa = CRIA_ISA_AVX;
    }
#endif
    __atomic_store_n(&best_isa, isa, __ATOMIC_RELAXED);
    return isa;
}

static const char *const isa_names[] = {"portable", "avx", "avx512"};

const char *cria_depthwise_isa_name(int isa) {
    return isa >= CRIA_ISA_PORTABLE && isa <= CRIA_ISA_AVX512 ? isa_names[isa] : "unknown";
}

/* The best path, or the one CRIA_DEPTHWISE_ISA names when this CPU has it. A value that
   names no path, or one the CPU lacks, gets one line on stderr and the best path. */
static int isa_from_environment(void) {
    const int best = cria_depthwise_best_isa();
    const char *wanted = getenv("CRIA_DEPTHWISE_ISA");
    if (wanted == NULL || wanted[0] == '\0') return best;
    for (int isa = CRIA_ISA_PORTABLE; isa <= CRIA_ISA_AVX512; isa++) {
        if (strcmp(wanted, isa_names[isa]) == 0) {
            if (isa <= best) return isa;
            fprintf(stderr, "cria: CRIA_DEPTHWISE_ISA=%s: this CPU lacks it; using %s\n", wanted, isa_names[best]);
            return best;
        }
    }
    fprintf(stderr, "cria: CRIA_DEPTHWISE_ISA=%s: expected portable, avx or avx512; using %s\n", wanted,
            isa_names[best]);
    return best;
}

int cria_depthwise_isa(void) {
    int isa = __atomic_load_n(&selected_isa, __ATOMIC_RELAXED);
    if (isa < 0) {
        /* Two threads arriving first compute the same value. */
        isa = isa_from_environment();
        __atomic_store_n(&selected_isa, isa, __ATOMIC_RELAXED);
    }
    return isa;
}

int cria_depthwise_select_isa(int isa) {
    const int best = cria_depthwise_best_isa();
    if (isa < CRIA_ISA_PORTABLE) isa = CRIA_ISA_PORTABLE;
    if (isa > best) isa = best;
    (void)cria_depthwise_isa(); /* reports a bad CRIA_DEPTHWISE_ISA once, before it is overridden */
    __atomic_store_n(&selected_isa, isa, __ATOMIC_RELAXED);
    return isa;
}

/* `isa` capped at what this CPU runs: the path an `_isa` entry point takes. */
static inline int runnable(int isa) {
    const int best = cria_depthwise_best_isa();
    return isa < best ? isa : best;
}

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

void cria_depthwise_four_isa(int isa, const float *origin, const float *kernel, const float *bias, float *output,
                             long pixel_stride, long row_stride, long ky_low, long ky_high, long vector_end,
                             long stride, int clamps_input, float in_lower, float in_upper, float out_lower,
                             float out_upper) {
#if defined(__x86_64__)
    isa = runnable(isa);
    if (isa == CRIA_ISA_AVX512) {
        four_avx512(origin, kernel, bias, output, pixel_stride, row_stride, ky_low, ky_high, vector_end, stride,
                    clamps_input, in_lower, in_upper, out_lower, out_upper);
        return;
    }
    if (isa == CRIA_ISA_AVX) {
        four_avx(origin, kernel, bias, output, pixel_stride, row_stride, ky_low, ky_high, vector_end, stride,
                 clamps_input, in_lower, in_upper, out_lower, out_upper);
        return;
    }
#endif
    (void)isa;
    cria_depthwise_four_portable(origin, kernel, bias, output, pixel_stride, row_stride, ky_low, ky_high,
                                 vector_end, stride, clamps_input, in_lower, in_upper, out_lower, out_upper);
}

void cria_depthwise_four(const float *origin, const float *kernel, const float *bias, float *output,
                         long pixel_stride, long row_stride, long ky_low, long ky_high, long vector_end, long stride,
                         int clamps_input, float in_lower, float in_upper, float out_lower, float out_upper) {
    cria_depthwise_four_isa(cria_depthwise_isa(), origin, kernel, bias, output, pixel_stride, row_stride, ky_low,
                            ky_high, vector_end, stride, clamps_input, in_lower, in_upper, out_lower, out_upper);
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

void cria_depthwise_pixel_isa(int isa, const float *top, long origin_x, const float *kernel, const float *bias,
                              float *output, long pixel_stride, long row_stride, long ky_low, long ky_high,
                              long kx_low, long kx_high, long kernel_width, long vector_end, int clamps_input,
                              float in_lower, float in_upper, float out_lower, float out_upper) {
#if defined(__x86_64__)
    isa = runnable(isa);
    if (isa == CRIA_ISA_AVX512) {
        pixel_avx512(top, origin_x, kernel, bias, output, pixel_stride, row_stride, ky_low, ky_high, kx_low,
                     kx_high, kernel_width, vector_end, clamps_input, in_lower, in_upper, out_lower, out_upper);
        return;
    }
    if (isa == CRIA_ISA_AVX) {
        pixel_avx(top, origin_x, kernel, bias, output, pixel_stride, row_stride, ky_low, ky_high, kx_low,
                  kx_high, kernel_width, vector_end, clamps_input, in_lower, in_upper, out_lower, out_upper);
        return;
    }
#endif
    (void)isa;
    cria_depthwise_pixel_portable(top, origin_x, kernel, bias, output, pixel_stride, row_stride, ky_low,
                                  ky_high, kx_low, kx_high, kernel_width, vector_end, clamps_input, in_lower,
                                  in_upper, out_lower, out_upper);
}

void cria_depthwise_pixel(const float *top, long origin_x, const float *kernel, const float *bias, float *output,
                          long pixel_stride, long row_stride, long ky_low, long ky_high, long kx_low,
                          long kx_high, long kernel_width, long vector_end, int clamps_input, float in_lower,
                          float in_upper, float out_lower, float out_upper) {
    cria_depthwise_pixel_isa(cria_depthwise_isa(), top, origin_x, kernel, bias, output, pixel_stride, row_stride,
                             ky_low, ky_high, kx_low, kx_high, kernel_width, vector_end, clamps_input, in_lower,
                             in_upper, out_lower, out_upper);
}

static void kernel_row_portable(const float *gradient, const float *input, float *sums, long lanes, long C,
                                long row_stride, long step, long pixels, long vector_end) {
    for (long i = 0; i < vector_end; i++) {
        const float *d = gradient + i, *p = input + i;
        for (long px = 0; px < pixels; px++, d += C, p += step) {
            const float g = *d;
            sums[9 * lanes + i] = sums[9 * lanes + i] + g;
            for (long ky = 0; ky < 3; ky++) {
                for (long kx = 0; kx < 3; kx++) {
                    float *s = sums + (ky * 3 + kx) * lanes + i;
                    float product = g * p[ky * row_stride + kx * C];
                    *s = *s + product;
                }
            }
        }
    }
}

void cria_depthwise_kernel_row_isa(int isa, const float *gradient, const float *input, float *sums, long lanes,
                                   long pixel_stride, long row_stride, long step, long pixels, long vector_end) {
#if defined(__x86_64__)
    isa = runnable(isa);
    if (isa == CRIA_ISA_AVX512) {
        kernel_row_avx512(gradient, input, sums, lanes, pixel_stride, row_stride, step, pixels, vector_end);
        return;
    }
    if (isa == CRIA_ISA_AVX) {
        kernel_row_avx(gradient, input, sums, lanes, pixel_stride, row_stride, step, pixels, vector_end);
        return;
    }
#endif
    (void)isa;
    kernel_row_portable(gradient, input, sums, lanes, pixel_stride, row_stride, step, pixels, vector_end);
}

void cria_depthwise_kernel_row(const float *gradient, const float *input, float *sums, long lanes,
                               long pixel_stride, long row_stride, long step, long pixels, long vector_end) {
    cria_depthwise_kernel_row_isa(cria_depthwise_isa(), gradient, input, sums, lanes, pixel_stride, row_stride,
                                  step, pixels, vector_end);
}
