//! Q8_0: blocks of 32 values stored as an f16 scale followed by 32 signed bytes
//! (34 bytes). Activations are quantized to the same format once per product, and the
//! dot product runs on integers: AVX2 (`maddubs`) on x86_64, scalar elsewhere.
use half::f16;

use crate::kernels::simd::{simd_path, SimdPath};

pub const BLOCK: usize = 32;
pub const BLOCK_BYTES: usize = 34;

/// Bytes of a row of `cols` values (`cols` is a multiple of `BLOCK`).
pub fn row_bytes(cols: usize) -> usize {
    cols / BLOCK * BLOCK_BYTES
}

/// Quantizes `x` (a multiple of 32 values) like ggml's `quantize_row_q8_0`:
/// `d = max|x| / 127`, `q = round(x / d)`.
pub fn quantize_row(x: &[f32], out: &mut [u8]) {
    debug_assert_eq!(out.len(), row_bytes(x.len()));
    for (values, block) in x.chunks_exact(BLOCK).zip(out.chunks_exact_mut(BLOCK_BYTES)) {
        let amax = values.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let inv = if d != 0.0 { 1.0 / d } else { 0.0 };
        block[..2].copy_from_slice(&f16::from_f32(d).to_le_bytes());
        for (q, v) in block[2..].iter_mut().zip(values) {
            *q = (v * inv).round() as i8 as u8;
        }
    }
}

/// Dequantizes one row (reference and tests).
pub fn dequantize_row(row: &[u8], out: &mut [f32]) {
    for (block, values) in row
        .chunks_exact(BLOCK_BYTES)
        .zip(out.chunks_exact_mut(BLOCK))
    {
        let d = f16::from_le_bytes([block[0], block[1]]).to_f32();
        for (v, &q) in values.iter_mut().zip(&block[2..]) {
            *v = d * q as i8 as f32;
        }
    }
}

/// `Σ w·x` over two Q8_0 rows of equal length.
pub fn dot(w: &[u8], x: &[u8]) -> f32 {
    debug_assert_eq!(w.len(), x.len());
    match simd_path() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the AVX2 path is only selected when the CPU reports avx2 and fma.
        SimdPath::Avx2 => unsafe { dot_avx2(w, x) },
        _ => dot_scalar(w, x),
    }
}

pub fn dot_scalar(w: &[u8], x: &[u8]) -> f32 {
    let mut sum = 0.0f32;
    for (wb, xb) in w.chunks_exact(BLOCK_BYTES).zip(x.chunks_exact(BLOCK_BYTES)) {
        let dw = f16::from_le_bytes([wb[0], wb[1]]).to_f32();
        let dx = f16::from_le_bytes([xb[0], xb[1]]).to_f32();
        let int: i32 = wb[2..]
            .iter()
            .zip(&xb[2..])
            .map(|(&a, &b)| a as i8 as i32 * b as i8 as i32)
            .sum();
        sum += dw * dx * int as f32;
    }
    sum
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_avx2(w: &[u8], x: &[u8]) -> f32 {
    use std::arch::x86_64::*;
    let blocks = w.len() / BLOCK_BYTES;
    let ones = _mm256_set1_epi16(1);
    let mut acc = _mm256_setzero_ps();
    for b in 0..blocks {
        let (wb, xb) = (
            w.as_ptr().add(b * BLOCK_BYTES),
            x.as_ptr().add(b * BLOCK_BYTES),
        );
        let scale = f16::from_bits(u16::from_le_bytes([*wb, *wb.add(1)])).to_f32()
            * f16::from_bits(u16::from_le_bytes([*xb, *xb.add(1)])).to_f32();
        let wv = _mm256_loadu_si256(wb.add(2) as *const __m256i);
        let xv = _mm256_loadu_si256(xb.add(2) as *const __m256i);
        // maddubs needs an unsigned left operand: move w's sign onto x.
        let products = _mm256_maddubs_epi16(_mm256_sign_epi8(wv, wv), _mm256_sign_epi8(xv, wv));
        let sums = _mm256_cvtepi32_ps(_mm256_madd_epi16(products, ones));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(scale), sums, acc);
    }
    let half = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
    let quad = _mm_add_ps(half, _mm_movehl_ps(half, half));
    _mm_cvtss_f32(_mm_add_ss(quad, _mm_shuffle_ps(quad, quad, 1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| {
                ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) % 2001) as f32 / 1000.0
                    - 1.0
            })
            .collect()
    }

    #[test]
    fn simd_dot_equals_scalar_dot() {
        let (w, x) = (values(4096, 1), values(4096, 7));
        let (mut wq, mut xq) = (vec![0u8; row_bytes(4096)], vec![0u8; row_bytes(4096)]);
        quantize_row(&w, &mut wq);
        quantize_row(&x, &mut xq);
        let (simd, scalar) = (dot(&wq, &xq), dot_scalar(&wq, &xq));
        assert!(
            (simd - scalar).abs() <= 1e-3 * scalar.abs().max(1.0),
            "{simd} vs {scalar}"
        );
    }

    #[test]
    fn quantized_dot_is_close_to_the_float_dot() {
        let (w, x) = (values(1024, 3), values(1024, 5));
        let exact: f32 = w.iter().zip(&x).map(|(a, b)| a * b).sum();
        let (mut wq, mut xq) = (vec![0u8; row_bytes(1024)], vec![0u8; row_bytes(1024)]);
        quantize_row(&w, &mut wq);
        quantize_row(&x, &mut xq);
        assert!(
            (dot(&wq, &xq) - exact).abs() < 0.05 * (1.0 + exact.abs()),
            "{} vs {exact}",
            dot(&wq, &xq)
        );
        let mut back = vec![0.0; 1024];
        dequantize_row(&wq, &mut back);
        assert!(w
            .iter()
            .zip(&back)
            .all(|(a, b)| (a - b).abs() <= 1.0 / 127.0 + 1e-3));
    }
}
