//! Small x86_64 SIMD building blocks shared by the kernels (horizontal sums, signed
//! byte dot products). Always inlined into a caller that enables the features they use.
use std::arch::x86_64::*;

/// The lanes of the 16 values from `i` on that lie inside a run of `len` (`i < len`):
/// the mask of a 512-bit f32 (or 256-bit i16) load or store at the run's end.
#[inline(always)]
pub fn mask16(len: usize, i: usize) -> u16 {
    if len - i >= 16 {
        0xffff
    } else {
        (1u16 << (len - i)) - 1
    }
}

/// Sum of the eight lanes.
#[inline(always)]
pub unsafe fn hsum_ps(v: __m256) -> f32 {
    let half = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let quad = _mm_add_ps(half, _mm_movehl_ps(half, half));
    _mm_cvtss_f32(_mm_add_ss(quad, _mm_shuffle_ps(quad, quad, 1)))
}

/// Signed bytes `w`·`x` summed in groups of four into eight i32 lanes. The unsigned
/// operand that `maddubs` / `vpdpbusd` need is `|w|`, with w's sign moved onto x
/// (exact: Q8 values never hold -128).
#[inline(always)]
pub unsafe fn i8_dot_i32<const VNNI: bool>(w: __m256i, x: __m256i) -> __m256i {
    let (unsigned, signed) = (_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w));
    if VNNI {
        _mm256_dpbusd_epi32(_mm256_setzero_si256(), unsigned, signed)
    } else {
        _mm256_madd_epi16(_mm256_maddubs_epi16(unsigned, signed), _mm256_set1_epi16(1))
    }
}

/// Unsigned bytes `u` times signed bytes `s`, pairs summed to i16 then multiplied by
/// the i16 `scale` lanes and summed in pairs into `acc` (i32 lanes).
#[inline(always)]
pub unsafe fn u8_i8_dot_scaled<const VNNI: bool>(
    acc: __m256i,
    u: __m256i,
    s: __m256i,
    scale: __m256i,
) -> __m256i {
    scaled_pairs_acc::<VNNI>(acc, _mm256_maddubs_epi16(u, s), scale)
}

/// `acc` plus the i16 `pairs` times the i16 `scale` lanes, summed in pairs (i32 lanes).
#[inline(always)]
pub unsafe fn scaled_pairs_acc<const VNNI: bool>(
    acc: __m256i,
    pairs: __m256i,
    scale: __m256i,
) -> __m256i {
    if VNNI {
        _mm256_dpwssd_epi32(acc, pairs, scale)
    } else {
        _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, scale))
    }
}

/// How far ahead of the current weight block the streaming kernels prefetch. Weights are
/// file-backed 4 KiB pages, where the hardware prefetcher stops at every page boundary.
pub const PREFETCH_DISTANCE: usize = 512;

/// The four bytes at `p` repeated over a 256-bit vector, loaded as one broadcast from
/// memory (`vbroadcastss`; `set1` of a loaded integer becomes a load plus a shuffle).
#[inline(always)]
pub unsafe fn broadcast_four_bytes(p: *const u8) -> __m256i {
    _mm256_castps_si256(_mm256_broadcast_ss(&*(p as *const f32)))
}

/// `init + Σ_quad vpdpbusd(w[quad], the four bytes at xb + 4·quad broadcast)`: one run of
/// 32 activation bytes against eight vectors of interleaved weights, for one token of a
/// tile of `TILE` tokens. In tiles of up to four tokens the eight products form two chains
/// of four, so they are not bound by the `vpdpbusd` latency (Zen 4, `cargo bench --bench
/// kernels`, q4Kx16 one token: 214 → 292–302 GFLOP/s, four tokens 515 → 542); wider tiles
/// have chains enough and keep their registers. The sums are integers: the order does not
/// change the result.
///
/// # Safety
/// AVX-512 F and VNNI present (inlined into a caller that enables them); `xb` addresses
/// 32 readable bytes.
#[inline(always)]
pub unsafe fn dpbusd_run<const TILE: usize>(
    init: __m512i,
    w: &[__m512i; 8],
    xb: *const i8,
) -> __m512i {
    let split = TILE <= 4;
    let mut sums = [init, _mm512_setzero_si512()];
    for (quad, w) in w.iter().enumerate() {
        let four = (xb.add(quad * 4) as *const i32).read_unaligned();
        let chain = if split { quad % 2 } else { 0 };
        sums[chain] = _mm512_dpbusd_epi32(sums[chain], *w, _mm512_set1_epi32(four));
    }
    if split {
        _mm512_add_epi32(sums[0], sums[1])
    } else {
        sums[0]
    }
}

/// Prefetches the cache lines of the `len` bytes `PREFETCH_DISTANCE` past `p`.
#[inline(always)]
pub unsafe fn prefetch_ahead(p: *const u8, len: usize) {
    prefetch_lines(p.wrapping_add(PREFETCH_DISTANCE), len)
}

/// The row loop of the file-layout row kernels: the `out.len()` weight rows of `w`, each
/// `blocks` blocks of `block_bytes` (`(blocks, block_bytes)`), against one activation row, `ROWS` rows streamed together —
/// block `b` of each in turn, the next rows' range prefetched at that pace
/// (`prefetch_next_rows`). `activations(b)` prepares block `b` of the activations once for the
/// rows streamed together, `block(weights, &prepared, &mut acc)` adds one row's block to its
/// accumulator (from `zero`), and `total(&acc)` is the row's dot.
///
/// # Safety
/// `w` holds `out.len()` rows of `blocks · block_bytes` bytes; the closures are the caller's
/// (inlined into it with its target features).
#[inline(always)]
pub unsafe fn stream_rows<const ROWS: usize, Acc: Copy, X>(
    w: &[u8],
    (blocks, block_bytes): (usize, usize),
    out: &mut [f32],
    zero: Acc,
    activations: impl Fn(usize) -> X,
    block: impl Fn(*const u8, &X, &mut Acc),
    total: impl Fn(&Acc) -> f32,
) {
    let row_bytes = blocks * block_bytes;
    let mut row = 0;
    while row < out.len() {
        let count = ROWS.min(out.len() - row);
        let mut acc = [zero; ROWS];
        let rows_end = w.as_ptr().wrapping_add((row + count) * row_bytes);
        for b in 0..blocks {
            prefetch_next_rows(rows_end, b, count * block_bytes);
            let x = activations(b);
            for (i, acc) in acc.iter_mut().enumerate().take(count) {
                block(
                    w.as_ptr().add((row + i) * row_bytes + b * block_bytes),
                    &x,
                    acc,
                );
            }
        }
        for (i, acc) in acc.iter().enumerate().take(count) {
            out[row + i] = total(acc);
        }
        row += count;
    }
}

/// For kernels that stream a few consecutive weight rows together, one block of each row
/// per step: prefetches step `step`'s share (`step_bytes`) of the next rows, which start at
/// `rows_end`, so the next range arrives at the pace the current one is read (a row's own
/// look-ahead runs into the rows already in flight and leaves the next range cold: Zen 4,
/// one 2048-wide row from memory, q6_K 21 → 44 GB/s).
#[inline(always)]
pub unsafe fn prefetch_next_rows(rows_end: *const u8, step: usize, step_bytes: usize) {
    prefetch_lines(rows_end.wrapping_add(step * step_bytes), step_bytes)
}

/// Prefetches the cache lines of the `len` bytes at `p`. Only a hint: addresses past
/// the end of the data are never dereferenced.
#[inline(always)]
unsafe fn prefetch_lines(p: *const u8, len: usize) {
    let mut offset = 0;
    while offset < len {
        _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(offset) as *const i8);
        offset += 64;
    }
}

/// How far ahead the interleaved kernels prefetch: each task streams one contiguous
/// run of groups, and a few blocks of look-ahead keep the loads in flight (measured on
/// the 2B model's decode: none 9.0 tok/s, 2–8 KiB 11.5–13 tok/s, 16–32 KiB no better).
pub const STREAM_PREFETCH_DISTANCE: usize = 4096;

/// Prefetches the cache lines of the `len` bytes `STREAM_PREFETCH_DISTANCE` past `p`.
#[inline(always)]
pub unsafe fn prefetch_stream(p: *const u8, len: usize) {
    prefetch_lines(p.wrapping_add(STREAM_PREFETCH_DISTANCE), len)
}

/// How far ahead the one-token (decode) kernels prefetch: further than the wider tiles,
/// whose blocks take longer each. Zen 4 (`BENCH_FROM_MEMORY=1`, one token, six alternating
/// rounds each, medians): AVX2 q4_Kx16 none 37–39, 4 KiB 47–48, 8 KiB 56, 16 KiB 63 GB/s,
/// q8_0x16 39 / 43–44 / 45–49 / 49; AVX-512 none against 16 KiB q4_Kx16 43 → 63, q8_0x16
/// 43 → 45. 2B decode, alternating pairs: AVX-512 q4_k 27.9 → 34.0 tok/s, q8_0 19.3 → 20.6;
/// AVX2 q4_k none → 4 KiB 30.9 → 34.5, 4 → 16 KiB 33.5 → 36.3; q8_0 none → 4 KiB 19.7 → 22.0.
/// (An earlier measurement, at 4 KiB, had the AVX-512 one-token kernels better without.)
pub const TOKEN_PREFETCH_DISTANCE: usize = 16384;

/// Prefetches the cache lines of the `len` bytes `TOKEN_PREFETCH_DISTANCE` past `p`.
#[inline(always)]
pub unsafe fn prefetch_token_stream(p: *const u8, len: usize) {
    prefetch_lines(p.wrapping_add(TOKEN_PREFETCH_DISTANCE), len)
}

/// `prefetch_stream` in a kernel for tiles of `T` tokens, `prefetch_token_stream` for a
/// one-token tile (decode).
#[inline(always)]
pub unsafe fn prefetch_stream_tile<const T: usize>(p: *const u8, len: usize) {
    if T > 1 {
        prefetch_stream(p, len)
    } else {
        prefetch_token_stream(p, len)
    }
}
