// Streaming memory read bandwidth: N threads sum a 2 GiB float array (each thread its own
// contiguous part, first-touched by that thread), best of R runs. Prints one JSON line.
//
//   gcc -O3 -march=native -ffast-math -fopenmp scripts/membw.c -o membw
//   ./membw THREADS [RUNS=10] [GIB=2]
//
// Used by scripts/bench_vs_llamacpp.sh for the decode bandwidth-utilisation figures.
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    int runs = argc > 2 ? atoi(argv[2]) : 10;
    double gib = argc > 3 ? atof(argv[3]) : 2.0;
    if (threads < 1 || runs < 1 || gib <= 0) {
        fprintf(stderr, "usage: %s THREADS [RUNS] [GIB]\n", argv[0]);
        return 2;
    }
    size_t n = (size_t)(gib * (1ull << 30)) / sizeof(float);
    n -= n % (64 * (size_t)threads);
    float *a = aligned_alloc(64, n * sizeof(float));
    if (!a) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    omp_set_num_threads(threads);
    size_t per = n / threads;
#pragma omp parallel
    {
        size_t t = omp_get_thread_num();
        float *p = a + t * per;
        for (size_t i = 0; i < per; i++) p[i] = (float)((i + t) & 7);
    }
    double best = 1e30, total = 0;
    for (int r = 0; r < runs + 1; r++) {  // first run is a warm-up, not counted
        double sum = 0;
        double t0 = now();
#pragma omp parallel reduction(+ : sum)
        {
            size_t t = omp_get_thread_num();
            const float *p = a + t * per;
            float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
            for (size_t i = 0; i < per; i += 64) {
                for (int j = 0; j < 16; j++) {
                    s0 += p[i + j];
                    s1 += p[i + 16 + j];
                    s2 += p[i + 32 + j];
                    s3 += p[i + 48 + j];
                }
            }
            sum += (double)s0 + s1 + s2 + s3;
        }
        double dt = now() - t0;
        total += sum;
        if (r > 0 && dt < best) best = dt;
    }
    double bytes = (double)n * sizeof(float);
    printf("{\"threads\": %d, \"bytes\": %.0f, \"runs\": %d, \"best_s\": %.6f, \"gb_s\": %.2f, \"checksum\": %.0f}\n",
           threads, bytes, runs, best, bytes / best / 1e9, total);
    free(a);
    return 0;
}
