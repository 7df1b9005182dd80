/* How much last-level cache this process really gets: reads a buffer of
   1..48 MB one cache line at a time, again and again, and prints the rate.
   Where the rate falls to DRAM speed is the effective cache size (on the
   project's shared VM, about 12 MB of the 32 MB L3). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(void) {
    static const size_t sizes[] = {1, 2, 4, 8, 10, 12, 14, 16, 20, 24, 32, 48};
    volatile long sink = 0;
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        size_t bytes = sizes[s] << 20;
        char *buffer = malloc(bytes);
        memset(buffer, 1, bytes);
        double best = 1e9;
        for (int round = 0; round < 15; round++) {
            double start = now();
            long sum = 0;
            for (size_t i = 0; i < bytes; i += 64) sum += buffer[i];
            sink += sum;
            double elapsed = now() - start;
            if (round > 2 && elapsed < best) best = elapsed;
        }
        printf("%3zu MB: %5.2f ns per line, %5.1f GB/s\n", sizes[s], best / (bytes / 64) * 1e9, bytes / best / 1e9);
        free(buffer);
    }
    return 0;
}
