//! Q8_0 weight rows times several Q8_0 activation rows at once (short prompts and batched
//! decode on AVX2 CPUs): each weight block is loaded once for up to four tokens, two rows at a
//! time (`token_tiles`), where the one-token dot streams the weights once per token. Every
//! (row, token) result is computed with the one-token kernel's steps in its order, so it has
//! the same bits.
use super::q8_0;
use crate::kernels::simd::SimdPath;

/// `out[r·m + t] = Σ w_r·x_t` for the consecutive Q8_0 rows in `w` and the `m` Q8_0 rows of
/// `x` (row-major by weight row).
pub fn dot_tokens_with(path: SimdPath, w: &[u8], x: &[u8], m: usize, out: &mut [f32]) {
    assert!(
        m > 0 && x.len().is_multiple_of(m),
        "q8_0 dot_tokens: token count"
    );
    let x_bytes = x.len() / m;
    let rows = out.len() / m;
    assert!(
        x_bytes.is_multiple_of(q8_0::BLOCK_BYTES)
            && out.len() == rows * m
            && w.len() == rows * x_bytes,
        "q8_0 dot_tokens: sizes"
    );
    match path {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AVX2 is part of both x86 paths, chosen only when the CPU reports it
        // (`simd::hardware_path`); sizes were checked above.
        SimdPath::Avx2 | SimdPath::Avx512 => unsafe { x86::dot_tokens_avx2(w, x, m, out) },
        _ => {
            for (row, values) in w.chunks_exact(x_bytes).zip(out.chunks_exact_mut(m)) {
                for (value, token) in values.iter_mut().zip(x.chunks_exact(x_bytes)) {
                    q8_0::dot_rows_with(path, row, token, std::slice::from_mut(value));
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::super::q8_0::x86::scale;
    use super::super::q8_0::BLOCK_BYTES;
    use super::super::token_tiles::{for_each_tile, Tile, TileKernel};
    use crate::kernels::simd_x86::{hsum_ps, i8_dot_i32};

    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_tokens_avx2(w: &[u8], x: &[u8], m: usize, out: &mut [f32]) {
        for_each_tile::<Q8_0Tile>(w, x.len() / m, x, m, out)
    }

    struct Q8_0Tile;

    impl TileKernel for Q8_0Tile {
        /// Per block and (row, token): the one-token kernel's integer dot
        /// (`simd_x86::i8_dot_i32`; `|w|` is the same for every token of the row, and the
        /// compiler computes it once), scaled by `dw·dx` into f32 lanes.
        #[inline(always)]
        unsafe fn tile<const R: usize, const T: usize>(tile: Tile) {
            let mut acc = [[_mm256_setzero_ps(); T]; R];
            for b in 0..tile.x_bytes / BLOCK_BYTES {
                let xb: [*const u8; T] =
                    std::array::from_fn(|k| tile.x.add(k * tile.x_bytes + b * BLOCK_BYTES));
                let xv = xb.map(|p| _mm256_loadu_si256(p.add(2).cast()));
                let dx = xb.map(|p| scale(p));
                for (i, row) in acc.iter_mut().enumerate() {
                    let wb = tile.w.add(i * tile.row_bytes + b * BLOCK_BYTES);
                    let (wv, dw) = (_mm256_loadu_si256(wb.add(2).cast()), scale(wb));
                    for ((lanes, &xv), &dx) in row.iter_mut().zip(&xv).zip(&dx) {
                        let sums = _mm256_cvtepi32_ps(i8_dot_i32::<false>(wv, xv));
                        *lanes = _mm256_fmadd_ps(_mm256_set1_ps(dw * dx), sums, *lanes);
                    }
                }
            }
            for (i, row) in acc.iter().enumerate() {
                for (k, lanes) in row.iter().enumerate() {
                    *tile.out.add(i * tile.m + k) = hsum_ps(*lanes);
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

    #[test]
    fn every_path_has_the_bits_of_its_one_token_dot() {
        for (rows, cols, m) in [
            (1, 32, 2),
            (2, 64, 5),
            (3, 512, 4),
            (7, 2048, 13),
            (5, 96, 70),
        ] {
            let bytes = q8_0::row_bytes(cols);
            let mut w = vec![0u8; rows * bytes];
            for (r, row) in w.chunks_exact_mut(bytes).enumerate() {
                q8_0::quantize_row(&values(cols, 100 + r as u32), row);
            }
            let mut xq = vec![0u8; m * bytes];
            for (t, q) in xq.chunks_exact_mut(bytes).enumerate() {
                q8_0::quantize_row(&values(cols, t as u32 + 1), q);
            }
            for path in available_paths() {
                let mut want = vec![0.0f32; rows * m];
                for (r, row) in w.chunks_exact(bytes).enumerate() {
                    for (t, token) in xq.chunks_exact(bytes).enumerate() {
                        let value = &mut want[r * m + t..r * m + t + 1];
                        q8_0::dot_rows_with(path, row, token, value);
                    }
                }
                let mut got = vec![f32::NAN; rows * m];
                dot_tokens_with(path, &w, &xq, m, &mut got);
                let case = format!("{path:?} {rows}x{cols}, {m} tokens");
                assert_same_bits(&got, &want, &case);
            }
        }
    }
}
