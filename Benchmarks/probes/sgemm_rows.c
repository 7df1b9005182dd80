/* One thread's cblas_sgemm rate against the number of output rows, for the late
   inverted-residual blocks' K x N (expand 160x960 and 96x576, project 960x160 and
   576x160, Conv_1 320x1280): how many rows a worker's GEMM needs before it runs at
   OpenBLAS's plateau rate. Prints GFLOP/s per row count, the best of 7 timings.
   Build: gcc -O2 -o /tmp/sgemm_rows Benchmarks/probes/sgemm_rows.c \
          -I/usr/include/x86_64-linux-gnu/openblas-pthread -lopenblas */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(void) {
    openblas_set_num_threads(1);
    const int shapes[][2] = {{160, 960}, {960, 160}, {320, 1280}, {96, 576}, {576, 160}};
    const int rows[] = {25, 50, 100, 200, 300, 400, 512, 800, 1600};
    const int shapeCount = sizeof shapes / sizeof shapes[0], rowCount = sizeof rows / sizeof rows[0];
    float *a = malloc(sizeof(float) * 1600 * 1280), *b = malloc(sizeof(float) * 1280 * 1280),
          *c = calloc(1600 * 1280, sizeof(float));
    for (int i = 0; i < 1600 * 1280; i++) a[i] = rand() / (float)RAND_MAX;
    for (int i = 0; i < 1280 * 1280; i++) b[i] = rand() / (float)RAND_MAX;
    for (int s = 0; s < shapeCount; s++) {
        int k = shapes[s][0], n = shapes[s][1];
        printf("K=%d N=%d:", k, n);
        for (int r = 0; r < rowCount; r++) {
            int m = rows[r], calls = (int)(2e8 / (2.0 * m * k * n)) + 1;
            double best = 1e9;
            for (int repeat = 0; repeat < 7; repeat++) {
                double start = now();
                for (int i = 0; i < calls; i++)
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1, a, k, b, n, 0, c, n);
                double seconds = (now() - start) / calls;
                if (seconds < best) best = seconds;
            }
            printf(" %d:%.0f", m, 2.0 * m * k * n / best * 1e-9);
        }
        printf("\n");
    }
    free(a); free(b); free(c);
    return 0;
}
