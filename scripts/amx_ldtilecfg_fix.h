/* Force-included (gcc -include) into llama.cpp's build by scripts/bench_vs_llamacpp.sh when the
 * compiler miscompiles _tile_loadconfig: GCC 12's amxtileintrin.h gives `ldtilecfg` an "m"
 * operand of only 8 bytes (*(const void **)cfg), so the stores that fill the rest of the 64-byte
 * tile configuration are dead-store-eliminated and every AMX tile instruction then raises SIGILL.
 * This replaces the intrinsic with the same instruction reading all 64 bytes. No source change. */
#ifndef GLIMPSE_BENCH_AMX_LDTILECFG_FIX_H
#define GLIMPSE_BENCH_AMX_LDTILECFG_FIX_H
#if defined(__AMX_TILE__) && defined(__GNUC__) && !defined(__clang__)
#include <immintrin.h>
static inline __attribute__((always_inline)) void glimpse_bench_ldtilecfg(const void *cfg) {
    __asm__ volatile("ldtilecfg %0" : : "m"(*(const unsigned char(*)[64])cfg));
}
#define _tile_loadconfig(cfg) glimpse_bench_ldtilecfg(cfg)
#endif
#endif
