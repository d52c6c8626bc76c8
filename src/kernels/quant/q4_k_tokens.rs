//! Q4_K weight rows times several Q8K activation rows at once (short prompts and prefill on
//! AVX2 CPUs, which have no VNNI for the interleaved layout): each weight run is unpacked once
//! and used for up to four tokens, two rows at a time (`token_tiles`), where the one-token dot
//! streams the weights once per token. The integer sums of a super-block are exact; the float
//! step after each super-block is `q4_k`'s, so every (row, token) result has the bits of the
//! one-token dot on the scalar path.
use super::{q4_k, q8_k};
use crate::kernels::simd::SimdPath;

/// `out[r·m + t] = Σ w_r·x_t` for the consecutive Q4_K rows in `w` and the `m` Q8K rows of
/// `x` (row-major by weight row).
pub fn dot_tokens_with(path: SimdPath, w: &[u8], x: &[u8], m: usize, out: &mut [f32]) {
    assert!(
        m > 0 && x.len().is_multiple_of(m),
        "q4_K dot_tokens: token count"
    );
    let x_bytes = x.len() / m;
    let blocks = x_bytes / q8_k::BLOCK_BYTES;
    let rows = out.len() / m;
    assert!(
        x_bytes.is_multiple_of(q8_k::BLOCK_BYTES)
            && out.len() == rows * m
            && w.len() == rows * blocks * q4_k::BLOCK_BYTES,
        "q4_K dot_tokens: sizes"
    );
    match path {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AVX2 is part of both x86 paths, chosen only when the CPU reports it
        // (`simd::hardware_path`); sizes were checked above.
        SimdPath::Avx2 | SimdPath::Avx512 => unsafe { x86::dot_tokens_avx2(w, x, m, out) },
        _ => dot_tokens_scalar(w, x, m, out),
    }
}

/// The scalar twin: one-token dots, token by token.
fn dot_tokens_scalar(w: &[u8], x: &[u8], m: usize, out: &mut [f32]) {
    let x_bytes = x.len() / m;
    let row_bytes = x_bytes / q8_k::BLOCK_BYTES * q4_k::BLOCK_BYTES;
    for (row, values) in w.chunks_exact(row_bytes).zip(out.chunks_exact_mut(m)) {
        for (value, token) in values.iter_mut().zip(x.chunks_exact(x_bytes)) {
            q4_k::dot_rows_with(SimdPath::Scalar, row, token, std::slice::from_mut(value));
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::super::token_tiles::{for_each_tile, Tile, TileKernel};
    use super::super::{q4_k, q8_k};

    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_tokens_avx2(w: &[u8], x: &[u8], m: usize, out: &mut [f32]) {
        let row_bytes = x.len() / m / q8_k::BLOCK_BYTES * q4_k::BLOCK_BYTES;
        for_each_tile::<Q4kTile>(w, row_bytes, x, m, out)
    }

    struct Q4kTile;

    /// The four tokens' integer sums of one row: lane k of the result is the sum of the
    /// eight i32 lanes of `acc[k]`.
    #[inline(always)]
    unsafe fn token_sums(acc: [__m256i; 4]) -> __m128i {
        let pairs = _mm256_hadd_epi32(
            _mm256_hadd_epi32(acc[0], acc[1]),
            _mm256_hadd_epi32(acc[2], acc[3]),
        );
        _mm_add_epi32(
            _mm256_castsi256_si128(pairs),
            _mm256_extracti128_si256(pairs, 1),
        )
    }

    impl TileKernel for Q4kTile {
        /// The R × T dot products of one tile, over every super-block. Tokens beyond T are
        /// computed on zeros and not stored.
        #[inline(always)]
        unsafe fn tile<const R: usize, const T: usize>(tile: Tile) {
            let low4 = _mm256_set1_epi8(0x0f);
            let mut total = [_mm_setzero_ps(); R];
            for b in 0..tile.x_bytes / q8_k::BLOCK_BYTES {
                let weights: [&[u8]; R] = std::array::from_fn(|i| {
                    std::slice::from_raw_parts(
                        tile.w.add(i * tile.row_bytes + b * q4_k::BLOCK_BYTES),
                        q4_k::BLOCK_BYTES,
                    )
                });
                let activations: [&[u8]; T] = std::array::from_fn(|k| {
                    std::slice::from_raw_parts(
                        tile.x.add(k * tile.x_bytes + b * q8_k::BLOCK_BYTES),
                        q8_k::BLOCK_BYTES,
                    )
                });
                let scales = weights.map(|wb| q4_k::scales_and_mins(&wb[4..16]));
                let mut acc = [[_mm256_setzero_si256(); 4]; R];
                for j in 0..4 {
                    for i in 0..R {
                        let bits = _mm256_loadu_si256(weights[i][16 + 32 * j..].as_ptr().cast());
                        let lo = _mm256_and_si256(bits, low4);
                        let hi = _mm256_and_si256(_mm256_srli_epi16(bits, 4), low4);
                        let sc_lo = _mm256_set1_epi16(scales[i].0[2 * j] as i16);
                        let sc_hi = _mm256_set1_epi16(scales[i].0[2 * j + 1] as i16);
                        for k in 0..T {
                            let xq = activations[k][q8_k::VALUES + 64 * j..].as_ptr();
                            // u4 · i8 pairs: at most 2 · 15 · 127, no saturation.
                            let p_lo = _mm256_maddubs_epi16(lo, _mm256_loadu_si256(xq.cast()));
                            let p_hi =
                                _mm256_maddubs_epi16(hi, _mm256_loadu_si256(xq.add(32).cast()));
                            let runs = _mm256_add_epi32(
                                _mm256_madd_epi16(p_lo, sc_lo),
                                _mm256_madd_epi16(p_hi, sc_hi),
                            );
                            acc[i][k] = _mm256_add_epi32(acc[i][k], runs);
                        }
                    }
                }
                // Per token: its scale and its eight run sums (zero for tokens beyond T).
                let mut dx = [0.0f32; 4];
                let mut run_sums = [_mm_setzero_si128(); 4];
                for k in 0..T {
                    dx[k] = q8_k::scale(activations[k]);
                    run_sums[k] = _mm_loadu_si128(activations[k][q8_k::SUMS..].as_ptr().cast());
                }
                let dx = _mm_loadu_ps(dx.as_ptr());
                for i in 0..R {
                    let (d, dmin) = q4_k::block_scales(weights[i]);
                    let mins16 =
                        _mm_cvtepu8_epi16(_mm_loadl_epi64(scales[i].1.as_ptr().cast::<__m128i>()));
                    let m = run_sums.map(|sums| _mm_madd_epi16(mins16, sums));
                    let summ =
                        _mm_hadd_epi32(_mm_hadd_epi32(m[0], m[1]), _mm_hadd_epi32(m[2], m[3]));
                    let sumi = token_sums(acc[i]);
                    // q4_k's float step lane by lane (mul, mul, sub, mul, add: the same bits).
                    let block = _mm_sub_ps(
                        _mm_mul_ps(_mm_set1_ps(d), _mm_cvtepi32_ps(sumi)),
                        _mm_mul_ps(_mm_set1_ps(dmin), _mm_cvtepi32_ps(summ)),
                    );
                    total[i] = _mm_add_ps(total[i], _mm_mul_ps(dx, block));
                }
            }
            for (i, row) in total.iter().enumerate() {
                let mut lanes = [0.0f32; 4];
                _mm_storeu_ps(lanes.as_mut_ptr(), *row);
                for (k, value) in lanes[..T].iter().enumerate() {
                    *tile.out.add(i * tile.m + k) = *value;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::simd::available_paths;
    use crate::kernels::test_data::{assert_same_bits, values};

    /// Random Q4_K rows with sane f16 scales (random bytes are valid Q4_K data once the
    /// two scales are set).
    fn random_rows(rows: usize, cols: usize, seed: u32) -> Vec<u8> {
        let mut data: Vec<u8> = (0..rows * q4_k::row_bytes(cols))
            .map(|i| ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) >> 11) as u8)
            .collect();
        for (b, block) in data.chunks_exact_mut(q4_k::BLOCK_BYTES).enumerate() {
            let d = half::f16::from_f32(0.01 + (b % 7) as f32 * 0.003);
            let dmin = half::f16::from_f32(0.02 + (b % 5) as f32 * 0.001);
            block[..2].copy_from_slice(&d.to_le_bytes());
            block[2..4].copy_from_slice(&dmin.to_le_bytes());
        }
        data
    }

    #[test]
    fn every_path_has_the_bits_of_the_one_token_scalar_dot() {
        for (rows, cols, m) in [
            (1, 256, 2),
            (2, 256, 5),
            (3, 512, 4),
            (7, 2048, 13),
            (5, 256, 70),
        ] {
            let w = random_rows(rows, cols, rows as u32);
            let x_bytes = q8_k::row_bytes(cols);
            let mut xq = vec![0u8; m * x_bytes];
            for (t, q) in xq.chunks_exact_mut(x_bytes).enumerate() {
                q8_k::quantize_row(&values(cols, t as u32 + 1), q);
            }
            let mut want = vec![0.0f32; rows * m];
            for (r, row) in w.chunks_exact(q4_k::row_bytes(cols)).enumerate() {
                for (t, token) in xq.chunks_exact(x_bytes).enumerate() {
                    let value = &mut want[r * m + t..r * m + t + 1];
                    q4_k::dot_rows_with(SimdPath::Scalar, row, token, value);
                }
            }
            for path in available_paths() {
                let mut got = vec![f32::NAN; rows * m];
                dot_tokens_with(path, &w, &xq, m, &mut got);
                let case = format!("{path:?} {rows}x{cols}, {m} tokens");
                assert_same_bits(&got, &want, &case);
            }
        }
    }
}
