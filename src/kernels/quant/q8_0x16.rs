//! Q8_0 weights repacked at load for AVX-512 VNNI: 16 consecutive rows interleaved so
//! one 64-byte vector holds four consecutive values of each of the 16 rows, the operand
//! layout of `vpdpbusd` with one row per i32 lane. Per group of 16 rows and per block of
//! 32 values: the 16 f16 scales (32 bytes), then 8 vectors of 16 rows × 4 values (512
//! bytes). Values are stored with the sign bit flipped (q + 128, unsigned) because
//! `vpdpbusd` multiplies unsigned by signed bytes: the activations stay signed and the
//! extra 128·Σx of each block is taken off once (it depends on the activations only).
//! The size equals the file layout's when the rows are a multiple of 16; a last partial
//! group is padded with zero-scale rows.
use half::f16;
use rayon::prelude::*;

use super::q8_0::{BLOCK, BLOCK_BYTES};
use super::q8_blocks::Q8Blocks;
use crate::kernels::interleaved::{interleaved_matmul, TileKernels, TileOut, GROUP_ROWS};
use crate::kernels::simd::{simd_path, SimdPath};

/// Bytes of one block (32 values) of one group: 16 scales and 16 × 32 values.
pub const GROUP_BLOCK_BYTES: usize = GROUP_ROWS * BLOCK_BYTES;
const SCALES_BYTES: usize = 2 * GROUP_ROWS;
/// Bytes of one vector: four values of each of the 16 rows.
const QUAD_BYTES: usize = 4 * GROUP_ROWS;

/// Bytes of a repacked `rows × cols` matrix.
pub fn packed_bytes(rows: usize, cols: usize) -> usize {
    rows.div_ceil(GROUP_ROWS) * (cols / BLOCK) * GROUP_BLOCK_BYTES
}

/// Repacks `rows` file-layout Q8_0 rows of `cols` values into `out`
/// (`packed_bytes(rows, cols)` long).
pub fn pack(file_rows: &[u8], rows: usize, cols: usize, out: &mut [u8]) {
    let row_bytes = cols / BLOCK * BLOCK_BYTES;
    assert!(
        cols.is_multiple_of(BLOCK)
            && file_rows.len() == rows * row_bytes
            && out.len() == packed_bytes(rows, cols),
        "q8_0x16 pack: sizes"
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
                    for (quad, four) in src[2..].chunks_exact(4).enumerate() {
                        let at = SCALES_BYTES + quad * QUAD_BYTES + lane * 4;
                        let flipped =
                            u32::from_le_bytes([four[0], four[1], four[2], four[3]]) ^ 0x8080_8080;
                        dst[at..at + 4].copy_from_slice(&flipped.to_le_bytes());
                    }
                }
            }
        });
}

/// Dequantizes rows `first..first + out.len() / cols` of a repacked matrix into `out`.
pub fn dequantize_rows(packed: &[u8], cols: usize, first: usize, out: &mut [f32]) {
    let blocks = cols / BLOCK;
    let group_bytes = blocks * GROUP_BLOCK_BYTES;
    for (i, row) in out.chunks_exact_mut(cols).enumerate() {
        let (group, lane) = ((first + i) / GROUP_ROWS, (first + i) % GROUP_ROWS);
        let data = &packed[group * group_bytes..][..group_bytes];
        for (block, values) in data
            .chunks_exact(GROUP_BLOCK_BYTES)
            .zip(row.chunks_exact_mut(BLOCK))
        {
            let d = f16::from_le_bytes([block[2 * lane], block[2 * lane + 1]]).to_f32();
            for (quad, v) in values.chunks_exact_mut(4).enumerate() {
                let at = SCALES_BYTES + quad * QUAD_BYTES + lane * 4;
                for (p, v) in v.iter_mut().enumerate() {
                    *v = d * (block[at + p] ^ 0x80) as i8 as f32;
                }
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
    assert_eq!(
        x.runs_per_scale, 1,
        "q8_0x16 product: one activation scale per run"
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

/// # Safety
/// `tile` addresses `tokens` rows of at least `tile.valid` writable floats.
unsafe fn tile_scalar(weights: &[u8], x: &Q8Blocks, t0: usize, tokens: usize, tile: TileOut) {
    let runs = x.runs();
    for t in 0..tokens {
        let token = t0 + t;
        let xq = &x.quants[token * x.cols..][..x.cols];
        let mut acc = [0.0f32; GROUP_ROWS];
        for (b, block) in weights.chunks_exact(GROUP_BLOCK_BYTES).enumerate() {
            let (dx, correction) = (
                x.scales[token * runs + b],
                -128 * x.sums[token * runs + b] as i32,
            );
            for (lane, acc) in acc.iter_mut().enumerate() {
                let mut sum = correction;
                for quad in 0..BLOCK / 4 {
                    let at = SCALES_BYTES + quad * QUAD_BYTES + lane * 4;
                    for p in 0..4 {
                        sum += block[at + p] as i32 * xq[b * BLOCK + quad * 4 + p] as i32;
                    }
                }
                let dw = f16::from_le_bytes([block[2 * lane], block[2 * lane + 1]]).to_f32();
                *acc = (sum as f32).mul_add(dw * dx, *acc);
            }
        }
        tile.store(t, &acc);
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{Q8Blocks, TileOut, GROUP_BLOCK_BYTES, GROUP_ROWS, QUAD_BYTES, SCALES_BYTES};
    use crate::kernels::amx_int8::{RunSums, RunTiles, TILE_TOKENS as AMX_TOKENS};
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

    /// One token against one group on AVX2, both halves of the group in one pass per
    /// block: decode streams the group from memory once, with no second pass from L2.
    /// Same integer sums and float steps as `tile_avx2_n`, so the same bits; the look-ahead
    /// is `prefetch_token_stream`'s.
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn token_avx2(weights: &[u8], x: &Q8Blocks, t0: usize, out: TileOut) {
        const HALF: usize = GROUP_ROWS / 2;
        let blocks = weights.len() / GROUP_BLOCK_BYTES;
        let TokenPointers {
            quants: [xq],
            scales: [xd],
            ..
        } = x.token_pointers::<1>(t0);
        let (flip, ones) = (_mm256_set1_epi8(-128), _mm256_set1_epi16(1));
        let mut acc = [_mm256_setzero_ps(); 2];
        for b in 0..blocks {
            let block = weights.as_ptr().add(b * GROUP_BLOCK_BYTES);
            prefetch_token_stream(block, GROUP_BLOCK_BYTES);
            let xb = xq.add(b * 32);
            let mut sum = [_mm256_setzero_si256(); 2];
            for quad in 0..8 {
                let four = broadcast_four_bytes(xb.add(quad * 4) as *const u8);
                for (half, sum) in sum.iter_mut().enumerate() {
                    let at = block.add(SCALES_BYTES + quad * QUAD_BYTES + 4 * HALF * half);
                    let q = _mm256_xor_si256(_mm256_loadu_si256(at as *const __m256i), flip);
                    let pairs = _mm256_maddubs_epi16(_mm256_abs_epi8(q), _mm256_sign_epi8(four, q));
                    *sum = _mm256_add_epi32(*sum, _mm256_madd_epi16(pairs, ones));
                }
            }
            let dx = _mm256_broadcast_ss(&*xd.add(b));
            for (half, acc) in acc.iter_mut().enumerate() {
                let dw =
                    _mm256_cvtph_ps(_mm_loadu_si128(block.add(2 * HALF * half) as *const __m128i));
                *acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum[half]), _mm256_mul_ps(dw, dx), *acc);
            }
        }
        out.store_half(0, 0, acc[0]);
        out.store_half(0, 1, acc[1]);
    }

    /// `T` tokens against one group on AVX2 (no `vpdpbusd`), one half of the group (8 rows,
    /// one per i32 lane) after the other. `maddubs` multiplies unsigned by signed bytes,
    /// and the stored values `q + 128` times an activation could overflow its i16 pairs,
    /// so the values are turned back into `q` once per block and the sign moves onto the
    /// activations (`|q| · sign(x, q)`, pairs at most 2 · 127 · 127). The integer sum is
    /// exact, the float step the scalar twin's: the bits are its bits.
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn tile_avx2_n<const T: usize>(weights: &[u8], x: &Q8Blocks, t0: usize, out: TileOut) {
        const HALF: usize = GROUP_ROWS / 2;
        let blocks = weights.len() / GROUP_BLOCK_BYTES;
        let TokenPointers {
            quants: xq,
            scales: xd,
            ..
        } = x.token_pointers::<T>(t0);
        let (flip, ones) = (_mm256_set1_epi8(-128), _mm256_set1_epi16(1));
        for half in 0..2 {
            let rows = HALF * half;
            let mut acc = [_mm256_setzero_ps(); T];
            for b in 0..blocks {
                let block = weights.as_ptr().add(b * GROUP_BLOCK_BYTES);
                // The second half reads the group again from L2.
                if half == 0 {
                    prefetch_stream(block, GROUP_BLOCK_BYTES);
                }
                let dw = _mm256_cvtph_ps(_mm_loadu_si128(block.add(2 * rows) as *const __m128i));
                let q: [__m256i; 8] = std::array::from_fn(|quad| {
                    let at = block.add(SCALES_BYTES + quad * QUAD_BYTES + 4 * rows);
                    _mm256_xor_si256(_mm256_loadu_si256(at as *const __m256i), flip)
                });
                let magnitude = q.map(|q| _mm256_abs_epi8(q));
                for t in 0..T {
                    let xb = xq[t].add(b * 32);
                    let mut sum = _mm256_setzero_si256();
                    for quad in 0..8 {
                        let four = broadcast_four_bytes(xb.add(quad * 4) as *const u8);
                        let signed = _mm256_sign_epi8(four, q[quad]);
                        let pairs = _mm256_maddubs_epi16(magnitude[quad], signed);
                        sum = _mm256_add_epi32(sum, _mm256_madd_epi16(pairs, ones));
                    }
                    let scale = _mm256_mul_ps(dw, _mm256_broadcast_ss(&*xd[t].add(b)));
                    acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum), scale, acc[t]);
                }
            }
            for (t, acc) in acc.iter().enumerate() {
                out.store_half(t, half, *acc);
            }
        }
    }

    /// `T` tokens against one group: per block, the eight weight vectors are loaded once
    /// and each token's four-byte runs are broadcast straight from memory.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,f16c")]
    unsafe fn tile_n<const T: usize>(weights: &[u8], x: &Q8Blocks, t0: usize, out: TileOut) {
        let blocks = weights.len() / GROUP_BLOCK_BYTES;
        let TokenPointers {
            quants: xq,
            scales: xd,
            sums: xs,
        } = x.token_pointers::<T>(t0);
        let mut acc = [_mm512_setzero_ps(); T];
        for b in 0..blocks {
            let block = weights.as_ptr().add(b * GROUP_BLOCK_BYTES);
            prefetch_stream_tile::<T>(block, GROUP_BLOCK_BYTES);
            let dw = _mm512_cvtph_ps(_mm256_loadu_si256(block as *const __m256i));
            let w: [__m512i; 8] = std::array::from_fn(|quad| {
                _mm512_loadu_si512(block.add(SCALES_BYTES + quad * QUAD_BYTES) as *const _)
            });
            for t in 0..T {
                let xb = xq[t].add(b * 32);
                let sum = dpbusd_run::<T>(_mm512_set1_epi32(-128 * *xs[t].add(b) as i32), &w, xb);
                let scale = _mm512_mul_ps(dw, _mm512_set1_ps(*xd[t].add(b)));
                acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), scale, acc[t]);
            }
        }
        for (t, acc) in acc.iter().enumerate() {
            out.store_avx512(t, *acc);
        }
    }

    /// 16 tokens against one group on the tile unit: per block, one tile product gives
    /// the 16 × 16 integer sums of the stored `q + 128` values, and the float steps are
    /// `tile_n`'s (the correction `-128·Σx` added to the integer sum first), so the bits
    /// are the scalar twin's.
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
        let mut sums = [RunSums::zeroed(), RunSums::zeroed()];
        let mut acc = [_mm512_setzero_ps(); AMX_TOKENS];
        for b in 0..blocks {
            let block = weights.as_ptr().add(b * GROUP_BLOCK_BYTES);
            let slot = b % 2;
            let run_sums = &mut sums[slot];
            tiles.run_product(
                slot,
                xq[0].add(b * 32),
                x.cols,
                block.add(SCALES_BYTES),
                run_sums,
            );
            let dw = _mm512_cvtph_ps(_mm256_loadu_si256(block as *const __m256i));
            for (t, acc) in acc.iter_mut().enumerate() {
                let sum = _mm512_add_epi32(
                    _mm512_load_si512(run_sums.0[t].as_ptr() as *const _),
                    _mm512_set1_epi32(-128 * *xs[t].add(b) as i32),
                );
                let scale = _mm512_mul_ps(dw, _mm512_set1_ps(*xd[t].add(b)));
                *acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), scale, *acc);
            }
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
    use crate::kernels::quant::q8_0;
    use crate::kernels::test_data::values;

    fn file_rows(rows: usize, cols: usize) -> Vec<u8> {
        let bytes = q8_0::row_bytes(cols);
        let mut q = vec![0u8; rows * bytes];
        for (r, dst) in values(rows * cols, 1)
            .chunks_exact(cols)
            .zip(q.chunks_exact_mut(bytes))
        {
            q8_0::quantize_row(r, dst);
        }
        q
    }

    #[test]
    fn repacked_rows_dequantize_like_the_file_rows() {
        let (rows, cols) = (37, 96);
        let file = file_rows(rows, cols);
        let mut packed = vec![0u8; packed_bytes(rows, cols)];
        pack(&file, rows, cols, &mut packed);
        let (mut want, mut got) = (vec![0.0; rows * cols], vec![0.0; (rows - 5) * cols]);
        q8_0::dequantize_row(&file, &mut want);
        dequantize_rows(&packed, cols, 5, &mut got);
        assert_eq!(got, want[5 * cols..]);
    }

    /// Every path and token count (tiles of 1..8 and a partial last group) agrees with
    /// the f32 product over the dequantized weights and the dequantized activations.
    #[test]
    fn every_path_equals_the_dequantized_product() {
        let (rows, cols) = (37, 128);
        let file = file_rows(rows, cols);
        let mut packed = vec![0u8; packed_bytes(rows, cols)];
        pack(&file, rows, cols, &mut packed);
        let mut w = vec![0.0; rows * cols];
        q8_0::dequantize_row(&file, &mut w);
        for m in [1, 3, 8, 13, 16, 21] {
            let x = Q8Blocks::quantize(&values(m * cols, 9), cols);
            check_every_path(&packed, &w, rows, &x, 1e-4, matmul_with);
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
            let x = Q8Blocks::quantize(&xf, cols);
            check_amx_on_emulated_tiles(&packed, rows, &x, &KERNELS, x86::tile_amx);
        }
    }
}
