//! Q4_K weights repacked at load for AVX-512 VNNI, 16 rows interleaved like Q8_0x16 (one
//! row per i32 lane of `vpdpbusd`; 4-bit values are already unsigned). Per group of 16
//! rows and per super-block of 256 values (2368 bytes, 2.8 % more than the file's 16 ×
//! 144): `d` and `dmin` of the 16 rows as f16 (2 × 32 bytes), the unpacked 6-bit scales
//! and minimums as bytes, `[run][row]` (2 × 128 bytes), then for each run of 32 values
//! four 64-byte vectors: vector `v` holds, for each row, values `8v..8v+4` of the run in
//! its low nibbles and `8v+4..8v+8` in its high nibbles. Against activations quantized
//! with one scale `dx` per super-block (`Q8Blocks::quantize_super_blocks`, ggml's Q8_K
//! scale) a super-block contributes `dx·(d·I − dmin·M)` with the integers
//! `I = Σ_run sc·Σq·x` and `M = Σ_run m·Σx` (|I| < 2³¹: 8 · 63 · 32 · 15 · 127): the
//! kernels sum the eight runs in integers and take one float step per super-block.
use half::f16;
use rayon::prelude::*;

use super::q4_k::{scales_and_mins, BLOCK, BLOCK_BYTES};
use super::q8_blocks::{Q8Blocks, SUPER_BLOCK_RUNS};
use crate::kernels::interleaved::{interleaved_matmul, TileKernels, TileOut, GROUP_ROWS};
use crate::kernels::simd::{simd_path, SimdPath};

const RUNS: usize = BLOCK / 32;
const DMIN: usize = 2 * GROUP_ROWS;
const SCALES: usize = 4 * GROUP_ROWS;
const MINS: usize = SCALES + RUNS * GROUP_ROWS;
const QUANTS: usize = MINS + RUNS * GROUP_ROWS;
/// Bytes of the quantized values of one run of one group (16 rows × 32 nibbles).
const RUN_BYTES: usize = GROUP_ROWS * 16;
/// Bytes of one super-block of one group.
pub const GROUP_BLOCK_BYTES: usize = QUANTS + RUNS * RUN_BYTES;

/// Bytes of a repacked `rows × cols` matrix.
pub fn packed_bytes(rows: usize, cols: usize) -> usize {
    rows.div_ceil(GROUP_ROWS) * (cols / BLOCK) * GROUP_BLOCK_BYTES
}

/// Byte offset (inside a group super-block) and nibble shift of value `k` of row `lane`.
fn packed_position(lane: usize, k: usize) -> (usize, u32) {
    let (run, within) = (k / 32, k % 32);
    let (vector, high, p) = (within / 8, (within % 8) / 4, within % 4);
    (
        QUANTS + run * RUN_BYTES + vector * 64 + lane * 4 + p,
        4 * high as u32,
    )
}

/// Repacks `rows` file-layout Q4_K rows of `cols` values into `out`
/// (`packed_bytes(rows, cols)` long).
pub fn pack(file_rows: &[u8], rows: usize, cols: usize, out: &mut [u8]) {
    let row_bytes = cols / BLOCK * BLOCK_BYTES;
    assert!(
        cols.is_multiple_of(BLOCK)
            && file_rows.len() == rows * row_bytes
            && out.len() == packed_bytes(rows, cols),
        "q4_Kx16 pack: sizes"
    );
    let group_bytes = cols / BLOCK * GROUP_BLOCK_BYTES;
    if group_bytes == 0 {
        return;
    }
    out.par_chunks_mut(group_bytes)
        .enumerate()
        .for_each(|(group, packed)| {
            let first = group * GROUP_ROWS;
            for (b, dst) in packed.chunks_exact_mut(GROUP_BLOCK_BYTES).enumerate() {
                dst.fill(0);
                for lane in 0..GROUP_ROWS.min(rows - first) {
                    let src =
                        &file_rows[(first + lane) * row_bytes + b * BLOCK_BYTES..][..BLOCK_BYTES];
                    dst[2 * lane..2 * lane + 2].copy_from_slice(&src[..2]);
                    dst[DMIN + 2 * lane..DMIN + 2 * lane + 2].copy_from_slice(&src[2..4]);
                    let (sc, m) = scales_and_mins(&src[4..16]);
                    for run in 0..RUNS {
                        dst[SCALES + run * GROUP_ROWS + lane] = sc[run];
                        dst[MINS + run * GROUP_ROWS + lane] = m[run];
                    }
                    for run in 0..RUNS {
                        // The run's 32 nibbles: low or high halves of 32 file bytes.
                        let bytes = &src[16 + 32 * (run / 2)..][..32];
                        let shift = 4 * (run % 2);
                        let nibbles = |i: usize| {
                            let word = u32::from_le_bytes([
                                bytes[i],
                                bytes[i + 1],
                                bytes[i + 2],
                                bytes[i + 3],
                            ]);
                            (word >> shift) & 0x0f0f_0f0f
                        };
                        for vector in 0..4 {
                            let at = QUANTS + run * RUN_BYTES + vector * 64 + lane * 4;
                            let word = nibbles(8 * vector) | nibbles(8 * vector + 4) << 4;
                            dst[at..at + 4].copy_from_slice(&word.to_le_bytes());
                        }
                    }
                }
            }
        });
}

fn half_at(block: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([block[at], block[at + 1]]).to_f32()
}

/// Dequantizes rows `first..first + out.len() / cols` of a repacked matrix into `out`.
pub fn dequantize_rows(packed: &[u8], cols: usize, first: usize, out: &mut [f32]) {
    let group_bytes = cols / BLOCK * GROUP_BLOCK_BYTES;
    for (i, row) in out.chunks_exact_mut(cols).enumerate() {
        let (group, lane) = ((first + i) / GROUP_ROWS, (first + i) % GROUP_ROWS);
        let data = &packed[group * group_bytes..][..group_bytes];
        for (block, values) in data
            .chunks_exact(GROUP_BLOCK_BYTES)
            .zip(row.chunks_exact_mut(BLOCK))
        {
            let (d, dmin) = (half_at(block, 2 * lane), half_at(block, DMIN + 2 * lane));
            for (k, v) in values.iter_mut().enumerate() {
                let run = k / 32;
                let (sc, m) = (
                    block[SCALES + run * GROUP_ROWS + lane],
                    block[MINS + run * GROUP_ROWS + lane],
                );
                let (at, shift) = packed_position(lane, k);
                let q = (block[at] >> shift) & 0x0f;
                *v = d * sc as f32 * q as f32 - dmin * m as f32;
            }
        }
    }
}

/// `out[t·rows + r] = Σ W[r]·x[t]` for every token of `x` (`x.cols == cols`).
pub fn matmul(packed: &[u8], rows: usize, x: &Q8Blocks, out: &mut [f32]) {
    matmul_with(simd_path(), packed, rows, x, out)
}

/// `matmul` on a given SIMD path (tests compare the paths).
pub fn matmul_with(path: SimdPath, packed: &[u8], rows: usize, x: &Q8Blocks, out: &mut [f32]) {
    assert!(
        x.cols.is_multiple_of(BLOCK) && x.runs_per_scale == SUPER_BLOCK_RUNS,
        "q4_Kx16 product: activations of whole super-blocks, one scale each"
    );
    let group_bytes = x.cols / BLOCK * GROUP_BLOCK_BYTES;
    interleaved_matmul(path, packed, group_bytes, rows, x, out, &KERNELS);
}

const KERNELS: TileKernels = TileKernels {
    scalar: tile_scalar,
    #[cfg(target_arch = "x86_64")]
    avx2: x86::tile_avx2,
    #[cfg(target_arch = "x86_64")]
    avx512: x86::tile,
    #[cfg(target_arch = "x86_64")]
    amx: x86::tile_amx,
};

/// The float step of one super-block, shared by every path so they give the same bits:
/// `acc + dx·(d·I − dmin·M)`, rounded as `fma(fma(−dmin, M, I·d), dx, acc)`.
#[inline(always)]
fn super_block_step(i: i32, m: i32, d: f32, dmin: f32, dx: f32, acc: f32) -> f32 {
    (-dmin).mul_add(m as f32, i as f32 * d).mul_add(dx, acc)
}

/// # Safety
/// `tile` addresses `tokens` rows of at least `tile.valid` writable floats.
unsafe fn tile_scalar(weights: &[u8], x: &Q8Blocks, t0: usize, tokens: usize, tile: TileOut) {
    let runs = x.runs();
    for t in 0..tokens {
        let token = t0 + t;
        let xq = &x.quants[token * x.cols..][..x.cols];
        let mut acc = [0.0f32; GROUP_ROWS];
        for (b, block) in weights.chunks_exact(GROUP_BLOCK_BYTES).enumerate() {
            for (lane, acc) in acc.iter_mut().enumerate() {
                let (mut i, mut m) = (0i32, 0i32);
                for run in 0..RUNS {
                    let r = b * RUNS + run;
                    let mut sum = 0i32;
                    for k in 0..32 {
                        let (at, shift) = packed_position(lane, run * 32 + k);
                        let q = (block[at] >> shift) & 0x0f;
                        sum += q as i32 * xq[r * 32 + k] as i32;
                    }
                    i += block[SCALES + run * GROUP_ROWS + lane] as i32 * sum;
                    m += block[MINS + run * GROUP_ROWS + lane] as i32
                        * x.sums[token * runs + r] as i32;
                }
                let (d, dmin) = (half_at(block, 2 * lane), half_at(block, DMIN + 2 * lane));
                *acc = super_block_step(i, m, d, dmin, x.scales[token * runs + b * RUNS], *acc);
            }
        }
        tile.store(t, &acc);
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::GROUP_ROWS;
    use super::{
        Q8Blocks, TileOut, DMIN, GROUP_BLOCK_BYTES, MINS, QUANTS, RUNS, RUN_BYTES, SCALES,
    };
    use crate::kernels::amx_int8::{RunSums, RunTiles, RunValues, TILE_TOKENS as AMX_TOKENS};
    use crate::kernels::interleaved::{for_avx2_tile, for_token_count, TILE_TOKENS};
    use crate::kernels::quant::q8_blocks::TokenPointers;
    use crate::kernels::simd_x86::{
        broadcast_four_bytes, dpbusd_run, prefetch_stream, prefetch_stream_tile,
        prefetch_token_stream,
    };

    /// # Safety
    /// AVX-512 F/BW/VNNI present; `tile` addresses `tokens` (1..=8) rows of at least
    /// `tile.valid` writable floats; `weights` is one whole group.
    pub unsafe fn tile(weights: &[u8], x: &Q8Blocks, t0: usize, tokens: usize, out: TileOut) {
        debug_assert!((1..=TILE_TOKENS).contains(&tokens));
        for_token_count!(tokens, tile_n(weights, x, t0, out))
    }

    /// # Safety
    /// AVX2, FMA and F16C present; as for `tile`.
    pub unsafe fn tile_avx2(weights: &[u8], x: &Q8Blocks, t0: usize, tokens: usize, out: TileOut) {
        if tokens == 1 {
            return token_avx2(weights, x, t0, out);
        }
        for_avx2_tile!(tokens, tile_avx2_n(weights, x, t0, out))
    }

    /// Eight rows' byte (scale or minimum) at `p` in both i16 halves of their i32 lane:
    /// `madd` with a run's eight-row i16 pair sums gives `byte · Σq·x` per row.
    #[inline(always)]
    unsafe fn bytes_as_pairs_avx2(p: *const u8) -> __m256i {
        let v = _mm256_cvtepu8_epi32(_mm_loadl_epi64(p as *const __m128i));
        _mm256_or_si256(v, _mm256_slli_epi32(v, 16))
    }

    /// The minimums of runs `2p` and `2p + 1` of eight rows from `rows` on as i16 pairs
    /// per row lane: `madd` with a token's run sums `(Σx₂ₚ, Σx₂ₚ₊₁)` gives that pair's
    /// part of `M`.
    #[inline(always)]
    unsafe fn min_pairs_avx2(block: *const u8, rows: usize) -> [__m256i; RUNS / 2] {
        std::array::from_fn(|p| {
            let at = |run: usize| block.add(MINS + run * GROUP_ROWS + rows) as *const __m128i;
            let (even, odd) = (
                _mm256_cvtepu8_epi32(_mm_loadl_epi64(at(2 * p))),
                _mm256_cvtepu8_epi32(_mm_loadl_epi64(at(2 * p + 1))),
            );
            _mm256_or_si256(even, _mm256_slli_epi32(odd, 16))
        })
    }

    /// `M = Σ_run m·Σx` of eight rows for the token whose super-block run sums are at `xs`.
    #[inline(always)]
    unsafe fn min_term_avx2(pairs: &[__m256i; RUNS / 2], xs: *const i16) -> __m256i {
        let part = |p: usize| {
            _mm256_madd_epi16(pairs[p], broadcast_four_bytes(xs.add(2 * p) as *const u8))
        };
        _mm256_add_epi32(
            _mm256_add_epi32(part(0), part(1)),
            _mm256_add_epi32(part(2), part(3)),
        )
    }

    /// The scalar twin's `super_block_step` on eight rows.
    #[inline(always)]
    unsafe fn super_block_step_avx2(
        i: __m256i,
        m: __m256i,
        (d, dmin): (__m256, __m256),
        dx: *const f32,
        acc: __m256,
    ) -> __m256 {
        let part = _mm256_fnmadd_ps(
            dmin,
            _mm256_cvtepi32_ps(m),
            _mm256_mul_ps(_mm256_cvtepi32_ps(i), d),
        );
        _mm256_fmadd_ps(part, _mm256_broadcast_ss(&*dx), acc)
    }

    /// `d` and `dmin` of eight rows from `rows` on.
    #[inline(always)]
    unsafe fn block_scales_avx2(block: *const u8, rows: usize) -> (__m256, __m256) {
        let at = |offset: usize| block.add(offset + 2 * rows) as *const __m128i;
        (
            _mm256_cvtph_ps(_mm_loadu_si128(at(0))),
            _mm256_cvtph_ps(_mm_loadu_si128(at(DMIN))),
        )
    }

    /// One token against one group on AVX2, both halves of the group in one pass per run:
    /// decode streams the group from memory once, with no second pass from L2. Same
    /// integer sums and float steps as `tile_avx2_n`, so the same bits; the look-ahead is
    /// `prefetch_token_stream`'s.
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn token_avx2(weights: &[u8], x: &Q8Blocks, t0: usize, out: TileOut) {
        const HALF: usize = GROUP_ROWS / 2;
        let blocks = weights.len() / GROUP_BLOCK_BYTES;
        let TokenPointers {
            quants: [xq],
            scales: [xd],
            sums: [xs],
        } = x.token_pointers::<1>(t0);
        let low = _mm256_set1_epi8(0x0f);
        let mut acc = [_mm256_setzero_ps(); 2];
        for b in 0..blocks {
            let block = weights.as_ptr().add(b * GROUP_BLOCK_BYTES);
            prefetch_token_stream(block, QUANTS);
            let mut i = [_mm256_setzero_si256(); 2];
            for run in 0..RUNS {
                let xb = xq.add((b * RUNS + run) * 32);
                let q = block.add(QUANTS + run * RUN_BYTES);
                prefetch_token_stream(q, RUN_BYTES);
                let mut sum16 = [_mm256_setzero_si256(); 2];
                for v in 0..4 {
                    let lo = broadcast_four_bytes(xb.add(8 * v) as *const u8);
                    let hi = broadcast_four_bytes(xb.add(8 * v + 4) as *const u8);
                    for (half, sum16) in sum16.iter_mut().enumerate() {
                        let at = q.add(64 * v + 4 * HALF * half) as *const __m256i;
                        let packed = _mm256_loadu_si256(at);
                        let (wl, wh) = (
                            _mm256_and_si256(packed, low),
                            _mm256_and_si256(_mm256_srli_epi16(packed, 4), low),
                        );
                        *sum16 = _mm256_add_epi16(*sum16, _mm256_maddubs_epi16(wl, lo));
                        *sum16 = _mm256_add_epi16(*sum16, _mm256_maddubs_epi16(wh, hi));
                    }
                }
                for (half, i) in i.iter_mut().enumerate() {
                    let sc =
                        bytes_as_pairs_avx2(block.add(SCALES + run * GROUP_ROWS + HALF * half));
                    *i = _mm256_add_epi32(*i, _mm256_madd_epi16(sum16[half], sc));
                }
            }
            let (xs, dx) = (xs.add(b * RUNS), xd.add(b * RUNS));
            for (half, acc) in acc.iter_mut().enumerate() {
                let m = min_term_avx2(&min_pairs_avx2(block, HALF * half), xs);
                let scales = block_scales_avx2(block, HALF * half);
                *acc = super_block_step_avx2(i[half], m, scales, dx, *acc);
            }
        }
        out.store_half(0, 0, acc[0]);
        out.store_half(0, 1, acc[1]);
    }

    /// The 16 bytes at `p` (one per row) as i32 lanes.
    #[inline(always)]
    unsafe fn bytes_as_i32(p: *const u8) -> __m512i {
        _mm512_cvtepu8_epi32(_mm_loadu_si128(p as *const __m128i))
    }

    /// `T` tokens against one group on AVX2 (no `vpdpbusd`), one half of the group (8 rows,
    /// one per i32 lane of a 256-bit vector) after the other. Per run, the eight nibble
    /// vectors are unpacked once; per token, the eight `maddubs` products of a run add up
    /// in i16 (each pair at most 2 · 15 · 127, eight of them 30,480 < 2¹⁵) and one `madd`
    /// with the run's scales adds them to `I`. The float step is the scalar twin's, once
    /// per super-block, so the bits are its bits.
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn tile_avx2_n<const T: usize>(weights: &[u8], x: &Q8Blocks, t0: usize, out: TileOut) {
        const HALF: usize = GROUP_ROWS / 2;
        let blocks = weights.len() / GROUP_BLOCK_BYTES;
        let TokenPointers {
            quants: xq,
            scales: xd,
            sums: xs,
        } = x.token_pointers::<T>(t0);
        let low = _mm256_set1_epi8(0x0f);
        for half in 0..2 {
            let rows = HALF * half;
            let mut acc = [_mm256_setzero_ps(); T];
            for b in 0..blocks {
                let block = weights.as_ptr().add(b * GROUP_BLOCK_BYTES);
                // The second half reads the group again from L2; the first spreads its
                // look-ahead over the block as the AVX-512 kernel does.
                let streaming = half == 0;
                if streaming {
                    prefetch_stream(block, QUANTS);
                }
                let mut i = [_mm256_setzero_si256(); T];
                for run in 0..RUNS {
                    let sc = bytes_as_pairs_avx2(block.add(SCALES + run * GROUP_ROWS + rows));
                    if streaming {
                        prefetch_stream(block.add(QUANTS + run * RUN_BYTES), RUN_BYTES);
                    }
                    let q = block.add(QUANTS + run * RUN_BYTES + 4 * rows);
                    let mut w = [_mm256_setzero_si256(); 8];
                    for v in 0..4 {
                        let packed = _mm256_loadu_si256(q.add(64 * v) as *const __m256i);
                        w[2 * v] = _mm256_and_si256(packed, low);
                        w[2 * v + 1] = _mm256_and_si256(_mm256_srli_epi16(packed, 4), low);
                    }
                    let r = b * RUNS + run;
                    for (t, i) in i.iter_mut().enumerate() {
                        let xb = xq[t].add(r * 32);
                        let mut sum16 = _mm256_setzero_si256();
                        for (quad, w) in w.iter().enumerate() {
                            let four = broadcast_four_bytes(xb.add(quad * 4) as *const u8);
                            sum16 = _mm256_add_epi16(sum16, _mm256_maddubs_epi16(*w, four));
                        }
                        *i = _mm256_add_epi32(*i, _mm256_madd_epi16(sum16, sc));
                    }
                }
                let pairs = min_pairs_avx2(block, rows);
                let scales = block_scales_avx2(block, rows);
                for t in 0..T {
                    let m = min_term_avx2(&pairs, xs[t].add(b * RUNS));
                    acc[t] = super_block_step_avx2(i[t], m, scales, xd[t].add(b * RUNS), acc[t]);
                }
            }
            for (t, acc) in acc.iter().enumerate() {
                out.store_half(t, half, *acc);
            }
        }
    }

    /// The minimums of runs `2p` and `2p + 1` of the 16 rows as i16 pairs per row lane
    /// (`min_pairs_avx2` for 16 rows).
    #[inline(always)]
    unsafe fn min_pairs(block: *const u8) -> [__m512i; RUNS / 2] {
        std::array::from_fn(|p| {
            let at = |run: usize| block.add(MINS + run * GROUP_ROWS);
            let (even, odd) = (bytes_as_i32(at(2 * p)), bytes_as_i32(at(2 * p + 1)));
            _mm512_or_si512(even, _mm512_slli_epi32(odd, 16))
        })
    }

    /// The float step of one super-block for `T` tokens of 16 rows: `M` from the run
    /// sums, then the scalar twin's `super_block_step`.
    #[inline(always)]
    unsafe fn super_block_steps<const T: usize>(
        block: *const u8,
        i: &[__m512i; T],
        xs: &[*const i16; T],
        xd: &[*const f32; T],
        b: usize,
        acc: &mut [__m512; T],
    ) {
        let pairs = min_pairs(block);
        let d = _mm512_cvtph_ps(_mm256_loadu_si256(block as *const __m256i));
        let dmin = _mm512_cvtph_ps(_mm256_loadu_si256(block.add(DMIN) as *const __m256i));
        for t in 0..T {
            let sums = xs[t].add(b * RUNS) as *const i32;
            let mut m = _mm512_setzero_si512();
            for (p, pair) in pairs.iter().enumerate() {
                m = _mm512_dpwssd_epi32(m, *pair, _mm512_set1_epi32(sums.add(p).read_unaligned()));
            }
            let part = _mm512_fnmadd_ps(
                dmin,
                _mm512_cvtepi32_ps(m),
                _mm512_mul_ps(_mm512_cvtepi32_ps(i[t]), d),
            );
            acc[t] = _mm512_fmadd_ps(part, _mm512_set1_ps(*xd[t].add(b * RUNS)), acc[t]);
        }
    }

    /// `T` tokens against one group: per run, the eight nibble vectors are unpacked once
    /// and each token's four-byte runs are broadcast straight from memory; the run's
    /// integer sums times its scales add to `I`, and the float step is once per super-block.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,f16c")]
    unsafe fn tile_n<const T: usize>(weights: &[u8], x: &Q8Blocks, t0: usize, out: TileOut) {
        let blocks = weights.len() / GROUP_BLOCK_BYTES;
        let TokenPointers {
            quants: xq,
            scales: xd,
            sums: xs,
        } = x.token_pointers::<T>(t0);
        let low = _mm512_set1_epi8(0x0f);
        let mut acc = [_mm512_setzero_ps(); T];
        for b in 0..blocks {
            let block = weights.as_ptr().add(b * GROUP_BLOCK_BYTES);
            // The look-ahead is spread over the block (its header here, each run's
            // values below): the block's 37 lines asked at once left decode from memory
            // at 22 GB/s, spread 37–44 (Zen 4, `BENCH_FROM_MEMORY=1`, membw 47–54).
            prefetch_stream_tile::<T>(block, QUANTS);
            let mut i = [_mm512_setzero_si512(); T];
            for run in 0..RUNS {
                let sc = bytes_as_i32(block.add(SCALES + run * GROUP_ROWS));
                let q = block.add(QUANTS + run * RUN_BYTES);
                prefetch_stream_tile::<T>(q, RUN_BYTES);
                let mut w = [_mm512_setzero_si512(); 8];
                for v in 0..4 {
                    let packed = _mm512_loadu_si512(q.add(64 * v) as *const _);
                    w[2 * v] = _mm512_and_si512(packed, low);
                    w[2 * v + 1] = _mm512_and_si512(_mm512_srli_epi16(packed, 4), low);
                }
                let r = b * RUNS + run;
                for (t, i) in i.iter_mut().enumerate() {
                    let sum = dpbusd_run::<T>(_mm512_setzero_si512(), &w, xq[t].add(r * 32));
                    *i = _mm512_add_epi32(*i, _mm512_mullo_epi32(sum, sc));
                }
            }
            super_block_steps(block, &i, &xs, &xd, b, &mut acc);
        }
        for (t, acc) in acc.iter().enumerate() {
            out.store_avx512(t, *acc);
        }
    }

    /// 16 tokens against one group on the tile unit: per run, the four nibble vectors
    /// are unpacked once into the tile's B operand (line `2v` the low nibbles of vector
    /// `v`, line `2v + 1` the high ones: values `8v..8v + 4` and `8v + 4..8v + 8`), one
    /// tile product gives the 16 × 16 integer sums, which times the run's scales add to
    /// `I`; the float steps are `tile_n`'s, so the bits are the scalar twin's.
    ///
    /// # Safety
    /// As for `tile`, with 16 tokens; `tiles` ready on this thread.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,f16c")]
    pub unsafe fn tile_amx<U: RunTiles>(
        tiles: &mut U,
        weights: &[u8],
        x: &Q8Blocks,
        t0: usize,
        out: TileOut,
    ) {
        let blocks = weights.len() / GROUP_BLOCK_BYTES;
        let TokenPointers {
            quants: xq,
            scales: xd,
            sums: xs,
        } = x.token_pointers::<AMX_TOKENS>(t0);
        let low = _mm512_set1_epi8(0x0f);
        let mut values = [RunValues::zeroed(), RunValues::zeroed()];
        let mut sums = [RunSums::zeroed(), RunSums::zeroed()];
        let mut acc = [_mm512_setzero_ps(); AMX_TOKENS];
        for b in 0..blocks {
            let block = weights.as_ptr().add(b * GROUP_BLOCK_BYTES);
            let mut i = [_mm512_setzero_si512(); AMX_TOKENS];
            for run in 0..RUNS {
                let r = b * RUNS + run;
                let slot = r % 2;
                let q = block.add(QUANTS + run * RUN_BYTES);
                let lines = values[slot].0.as_mut_ptr();
                for v in 0..4 {
                    let packed = _mm512_loadu_si512(q.add(64 * v) as *const _);
                    let high = _mm512_and_si512(_mm512_srli_epi16(packed, 4), low);
                    _mm512_store_si512(lines.add(128 * v) as *mut _, _mm512_and_si512(packed, low));
                    _mm512_store_si512(lines.add(128 * v + 64) as *mut _, high);
                }
                let run_sums = &mut sums[slot];
                tiles.run_product(slot, xq[0].add(r * 32), x.cols, lines, run_sums);
                let sc = bytes_as_i32(block.add(SCALES + run * GROUP_ROWS));
                for (t, i) in i.iter_mut().enumerate() {
                    let sum = _mm512_load_si512(run_sums.0[t].as_ptr() as *const _);
                    *i = _mm512_add_epi32(*i, _mm512_mullo_epi32(sum, sc));
                }
            }
            super_block_steps(block, &i, &xs, &xd, b, &mut acc);
        }
        for (t, acc) in acc.iter().enumerate() {
            out.store_avx512(t, *acc);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::interleaved::test_support::check_every_path;
    use crate::kernels::quant::q4_k;

    fn file_rows(rows: usize, cols: usize) -> Vec<u8> {
        let mut wq: Vec<u8> = (0..rows * q4_k::row_bytes(cols))
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
            .collect();
        for (i, block) in wq.chunks_exact_mut(BLOCK_BYTES).enumerate() {
            block[..2].copy_from_slice(&f16::from_f32(0.01 + 0.001 * (i % 7) as f32).to_le_bytes());
            block[2..4].copy_from_slice(&f16::from_f32(0.02).to_le_bytes());
        }
        wq
    }

    #[test]
    fn repacked_rows_dequantize_like_the_file_rows() {
        let (rows, cols) = (21, 512);
        let file = file_rows(rows, cols);
        let mut packed = vec![0u8; packed_bytes(rows, cols)];
        pack(&file, rows, cols, &mut packed);
        let (mut want, mut got) = (vec![0.0; rows * cols], vec![0.0; (rows - 3) * cols]);
        q4_k::dequantize_row(&file, &mut want);
        dequantize_rows(&packed, cols, 3, &mut got);
        for (g, w) in got.iter().zip(&want[3 * cols..]) {
            assert!((g - w).abs() <= 1e-6 * w.abs().max(1.0), "{g} vs {w}");
        }
    }

    /// Every path and token count (tiles of 1..8 and a partial last group) agrees with
    /// the f32 product over the dequantized weights and the dequantized activations.
    #[test]
    fn every_path_equals_the_dequantized_product() {
        let (rows, cols) = (21, 512);
        let file = file_rows(rows, cols);
        let mut packed = vec![0u8; packed_bytes(rows, cols)];
        pack(&file, rows, cols, &mut packed);
        let mut w = vec![0.0; rows * cols];
        q4_k::dequantize_row(&file, &mut w);
        for m in [1, 2, 8, 11, 16, 21] {
            let xf: Vec<f32> = (0..m * cols)
                .map(|i| ((i * 7919) % 2001) as f32 / 1000.0 - 1.0)
                .collect();
            let x = Q8Blocks::quantize_super_blocks(&xf, cols);
            check_every_path(&packed, &w, rows, &x, 1e-3, matmul_with);
        }
    }

    /// The AMX-INT8 kernel (tile unit emulated, float steps real) gives the scalar twin's
    /// bits for whole tiles of 16 tokens and a VNNI remainder.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn amx_kernel_on_emulated_tiles_matches_the_scalar_twin() {
        use crate::kernels::interleaved::test_support::check_amx_on_emulated_tiles;
        let (rows, cols) = (37, 512);
        let file = file_rows(rows, cols);
        let mut packed = vec![0u8; packed_bytes(rows, cols)];
        pack(&file, rows, cols, &mut packed);
        for m in [16, 21, 32, 45] {
            let xf: Vec<f32> = (0..m * cols)
                .map(|i| ((i * 7919) % 2001) as f32 / 1000.0 - 1.0)
                .collect();
            let x = Q8Blocks::quantize_super_blocks(&xf, cols);
            check_amx_on_emulated_tiles(&packed, rows, &x, &KERNELS, x86::tile_amx);
        }
    }
}
