//! The AVX-512 tile of `packed_gemm`: 14 activation rows × 32 output columns in 28 zmm
//! accumulators; each step of k loads two vectors of the panel and broadcasts 14 values of
//! `a` straight into the fused multiply-adds. Weight rows are packed through 16 × 16
//! register transposes.
use std::arch::x86_64::*;

use super::{Isa, Tile};
use crate::kernels::simd_x86::mask16;

/// AVX-512F (x86_64).
pub struct Avx512;

const MR: usize = 14;
const NR: usize = 32;

// SAFETY: only used where the CPU has AVX-512F (`gemm::packed_product`).
unsafe impl Isa for Avx512 {
    const MR: usize = MR;
    const NR: usize = NR;

    unsafe fn tile(rows: usize, t: Tile) {
        match rows {
            14 => tile::<14>(t),
            13 => tile::<13>(t),
            12 => tile::<12>(t),
            11 => tile::<11>(t),
            10 => tile::<10>(t),
            9 => tile::<9>(t),
            8 => tile::<8>(t),
            7 => tile::<7>(t),
            6 => tile::<6>(t),
            5 => tile::<5>(t),
            4 => tile::<4>(t),
            3 => tile::<3>(t),
            2 => tile::<2>(t),
            _ => tile::<1>(t),
        }
    }

    unsafe fn pack_a(a: &[f32], k: usize, rows: (usize, usize), dst: &mut [f32]) {
        pack_activations(a, k, rows, dst)
    }

    unsafe fn pack_b_rows(
        b: &[f32],
        k: usize,
        cols: (usize, usize),
        ks: (usize, usize),
        dst: &mut [f32],
    ) {
        pack_rows(b, k, cols, ks, dst)
    }

    unsafe fn pack_b_columns(
        b: &[f32],
        n: usize,
        cols: (usize, usize),
        ks: (usize, usize),
        dst: &mut [f32],
    ) {
        pack_columns(b, n, cols, ks, dst)
    }
}

#[target_feature(enable = "avx512f")]
unsafe fn tile<const ROWS: usize>(t: Tile) {
    let masks = column_masks(t.cols);
    let mut acc = [[_mm512_setzero_ps(); 2]; ROWS];
    if t.accumulate {
        for (r, row) in acc.iter_mut().enumerate() {
            let c = t.out.add(r * t.out_stride);
            row[0] = _mm512_maskz_loadu_ps(masks[0], c);
            row[1] = _mm512_maskz_loadu_ps(masks[1], c.add(16));
        }
    }
    for kk in 0..t.kc {
        let b0 = _mm512_loadu_ps(t.b.add(kk * NR));
        let b1 = _mm512_loadu_ps(t.b.add(kk * NR + 16));
        let a_k = t.a.add(kk * MR);
        for (r, row) in acc.iter_mut().enumerate() {
            let av = _mm512_set1_ps(*a_k.add(r));
            row[0] = _mm512_fmadd_ps(av, b0, row[0]);
            row[1] = _mm512_fmadd_ps(av, b1, row[1]);
        }
    }
    for (r, row) in acc.iter().enumerate() {
        let c = t.out.add(r * t.out_stride);
        _mm512_mask_storeu_ps(c, masks[0], row[0]);
        _mm512_mask_storeu_ps(c.add(16), masks[1], row[1]);
    }
}

/// The lanes of a panel's two vectors that hold one of its `cols` columns.
fn column_masks(cols: usize) -> [__mmask16; 2] {
    let lanes = |from: usize| -> __mmask16 {
        let count = cols.saturating_sub(from).min(16);
        ((1u32 << count) - 1) as __mmask16
    };
    [lanes(0), lanes(16)]
}

/// Rows `first..first + rows` of an m×k `a` into `dst[k][MR]`: 16 × 16 blocks (the rows
/// past the tile's read as zero) transposed in registers, 14 lanes of each stored.
#[target_feature(enable = "avx512f")]
unsafe fn pack_activations(a: &[f32], k: usize, (first, rows): (usize, usize), dst: &mut [f32]) {
    const TILE_LANES: __mmask16 = (1 << MR) - 1;
    for kk in (0..k).step_by(16) {
        let width = (k - kk).min(16);
        let steps = transposed_block(a.as_ptr().add(first * k + kk), k, rows, mask16(k, kk));
        for (i, v) in steps.iter().enumerate().take(width) {
            _mm512_mask_storeu_ps(dst.as_mut_ptr().add((kk + i) * MR), TILE_LANES, *v);
        }
    }
}

/// Columns `j0..j0 + cols` of a k×n `b` into `dst[kc][NR]`: row pieces copied.
#[target_feature(enable = "avx512f")]
unsafe fn pack_columns(
    b: &[f32],
    n: usize,
    (j0, cols): (usize, usize),
    (p0, kc): (usize, usize),
    dst: &mut [f32],
) {
    let masks = column_masks(cols);
    for kk in 0..kc {
        let src = b.as_ptr().add((p0 + kk) * n + j0);
        let to = dst.as_mut_ptr().add(kk * NR);
        _mm512_storeu_ps(to, _mm512_maskz_loadu_ps(masks[0], src));
        _mm512_storeu_ps(to.add(16), _mm512_maskz_loadu_ps(masks[1], src.add(16)));
    }
}

/// Rows `j0..j0 + cols` of an n×k `b` into `dst[kc][NR]`: 16 × 16 blocks transposed in
/// registers.
#[target_feature(enable = "avx512f")]
unsafe fn pack_rows(
    b: &[f32],
    k: usize,
    (j0, cols): (usize, usize),
    (p0, kc): (usize, usize),
    dst: &mut [f32],
) {
    for half in 0..2 {
        let r0 = half * 16;
        let rows = cols.saturating_sub(r0).min(16);
        for kk in (0..kc).step_by(16) {
            let width = (kc - kk).min(16);
            let first = b.as_ptr().add((j0 + r0) * k + p0 + kk);
            let columns = transposed_block(first, k, rows, mask16(kc, kk));
            for (i, v) in columns.iter().enumerate().take(width) {
                _mm512_storeu_ps(dst.as_mut_ptr().add((kk + i) * NR + r0), *v);
            }
        }
    }
}

/// The transpose of the 16 × 16 block at `first` (row stride `stride`): `rows` rows (≤ 16,
/// the others read as zero), of each the values `mask` selects (the others zero).
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn transposed_block(
    first: *const f32,
    stride: usize,
    rows: usize,
    mask: __mmask16,
) -> [__m512; 16] {
    let block = std::array::from_fn(|r| {
        if r < rows {
            _mm512_maskz_loadu_ps(mask, first.add(r * stride))
        } else {
            _mm512_setzero_ps()
        }
    });
    transpose16(&block)
}

/// The 16 × 16 transpose of `rows`: element j of result i is element i of row j.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn transpose16(rows: &[__m512; 16]) -> [__m512; 16] {
    // 32-bit interleaves of row pairs, then 64-bit interleaves: u[4g + c] holds, in
    // 128-bit lane l, rows 4g..4g+3 of column 4l + c.
    let mut t = [_mm512_setzero_ps(); 16];
    for i in 0..8 {
        t[2 * i] = _mm512_unpacklo_ps(rows[2 * i], rows[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(rows[2 * i], rows[2 * i + 1]);
    }
    let pd = _mm512_castps_pd;
    let mut u = [_mm512_setzero_ps(); 16];
    for g in 0..4 {
        let (lo, hi) = (pd(t[4 * g]), pd(t[4 * g + 2]));
        let (lo2, hi2) = (pd(t[4 * g + 1]), pd(t[4 * g + 3]));
        u[4 * g] = _mm512_castpd_ps(_mm512_unpacklo_pd(lo, hi));
        u[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(lo, hi));
        u[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(lo2, hi2));
        u[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(lo2, hi2));
    }
    // A 4 × 4 transpose of 128-bit lanes among u[c], u[4 + c], u[8 + c], u[12 + c].
    let mut out = [_mm512_setzero_ps(); 16];
    for c in 0..4 {
        let v0 = _mm512_shuffle_f32x4::<0x44>(u[c], u[4 + c]);
        let v1 = _mm512_shuffle_f32x4::<0xEE>(u[c], u[4 + c]);
        let v2 = _mm512_shuffle_f32x4::<0x44>(u[8 + c], u[12 + c]);
        let v3 = _mm512_shuffle_f32x4::<0xEE>(u[8 + c], u[12 + c]);
        out[c] = _mm512_shuffle_f32x4::<0x88>(v0, v2);
        out[4 + c] = _mm512_shuffle_f32x4::<0xDD>(v0, v2);
        out[8 + c] = _mm512_shuffle_f32x4::<0x88>(v1, v3);
        out[12 + c] = _mm512_shuffle_f32x4::<0xDD>(v1, v3);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose16_swaps_rows_and_columns() {
        if !is_x86_feature_detected!("avx512f") {
            eprintln!("not run: this CPU has no AVX-512F");
            return;
        }
        let input: Vec<f32> = (0..256).map(|i| i as f32).collect();
        // SAFETY: AVX-512F checked above; every load and store is 16 floats in bounds.
        unsafe {
            let rows: [__m512; 16] =
                std::array::from_fn(|r| _mm512_loadu_ps(input.as_ptr().add(r * 16)));
            let cols = transpose16(&rows);
            let mut got = vec![0.0f32; 256];
            for (i, v) in cols.iter().enumerate() {
                _mm512_storeu_ps(got.as_mut_ptr().add(i * 16), *v);
            }
            for i in 0..16 {
                for j in 0..16 {
                    assert_eq!(got[i * 16 + j], input[j * 16 + i]);
                }
            }
        }
    }
}
