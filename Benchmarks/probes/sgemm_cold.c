/* One thread's cblas_sgemm on a batch-1 shape (rows = pixels, K, N, ldb),
   with the weights hot, pushed out of L2 only (2 MB touched in between), and
   pushed out of every cache (96 MB touched). OpenBLAS packs each call's
   weights before it multiplies, so a weight read from DRAM is not overlapped
   with arithmetic. Usage: sgemm_cold ROWS K N [LDB] */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    if (argc < 4) { fprintf(stderr, "usage: %s ROWS K N [LDB]\n", argv[0]); return 2; }
    int m = atoi(argv[1]), k = atoi(argv[2]), n = atoi(argv[3]), ldb = argc > 4 ? atoi(argv[4]) : n;
    openblas_set_num_threads(1);
    const size_t evict[3] = {0, 2u << 20, 96u << 20};
    const char *names[3] = {"weights hot", "out of L2 (2 MB touched)", "out of cache (96 MB touched)"};
    float *a = malloc(sizeof(float) * m * k), *b = malloc(sizeof(float) * k * ldb), *c = malloc(sizeof(float) * m * n);
    for (long i = 0; i < (long)m * k; i++) a[i] = (i % 7) * 0.1f;
    for (long i = 0; i < (long)k * ldb; i++) b[i] = (i % 5) * 0.1f;
    char *other = malloc(96u << 20);
    memset(other, 1, 96u << 20);
    for (int mode = 0; mode < 3; mode++) {
        double best = 1e9;
        for (int round = 0; round < 200; round++) {
            for (size_t i = 0; i < evict[mode]; i += 64) other[i]++;
            double start = now();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1, a, k, b, ldb, 0, c, n);
            double elapsed = now() - start;
            if (elapsed < best) best = elapsed;
        }
        printf("%-30s %d x %d x %d: best %6.1f us, %5.1f GFLOP/s\n", names[mode], m, k, n, best * 1e6,
               2.0 * m * n * k / best * 1e-9);
    }
    return 0;
}
