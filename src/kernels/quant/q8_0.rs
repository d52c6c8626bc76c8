//! Q8_0: blocks of 32 values stored as an f16 scale followed by 32 signed bytes
//! (34 bytes). Activations are quantized to the same format once per product and the
//! dot products run on integers: AVX-512 VNNI or AVX2 on x86_64, NEON on aarch64, scalar
//! elsewhere. Eight weight rows share each activation load.
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

/// Dequantizes one row (or several consecutive rows into as many values).
pub fn dequantize_row(row: &[u8], out: &mut [f32]) {
    assert_eq!(
        row.len() / BLOCK_BYTES * BLOCK,
        out.len(),
        "q8_0 dequantize: sizes"
    );
    #[cfg(target_arch = "x86_64")]
    if simd_path() == SimdPath::Avx512 {
        // SAFETY: AVX-512 was detected; sizes were checked above.
        return unsafe { x86::dequantize_avx512(row, out) };
    }
    dequantize_scalar(row, out)
}

fn dequantize_scalar(row: &[u8], out: &mut [f32]) {
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
    let mut out = [0.0];
    dot_rows(w, x, &mut out);
    out[0]
}

/// `out[i] = Σ w_i·x` for the `out.len()` consecutive Q8_0 rows in `w` (each as long as `x`).
pub fn dot_rows(w: &[u8], x: &[u8], out: &mut [f32]) {
    dot_rows_with(simd_path(), w, x, out)
}

/// `dot_rows` on a given SIMD path (tests compare the paths).
pub fn dot_rows_with(path: SimdPath, w: &[u8], x: &[u8], out: &mut [f32]) {
    let bytes = x.len();
    assert!(
        bytes.is_multiple_of(BLOCK_BYTES) && w.len() == bytes * out.len(),
        "q8_0 dot_rows: row sizes"
    );
    match path {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: these paths are only chosen when the CPU reports their features
        // (`simd::hardware_path`); slice lengths were checked above.
        SimdPath::Avx512 => unsafe { x86::dot_rows::<true>(w, x, out) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        SimdPath::Avx2 => unsafe { x86::dot_rows::<false>(w, x, out) },
        #[cfg(target_arch = "aarch64")]
        // SAFETY: NEON is only chosen when the CPU reports it; lengths checked above.
        SimdPath::Neon => unsafe { neon::dot_rows(w, x, out) },
        _ => {
            for (o, row) in out.iter_mut().zip(w.chunks_exact(bytes)) {
                *o = dot_scalar(row, x);
            }
        }
    }
}

fn dot_scalar(w: &[u8], x: &[u8]) -> f32 {
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
pub(super) mod x86 {
    use std::arch::x86_64::*;

    use super::BLOCK_BYTES;
    use crate::kernels::simd_x86::{hsum_ps, i8_dot_i32, prefetch_ahead};

    /// `ROWS` rows at a time (then one at a time), one f32 accumulator per row; each
    /// block's integer dot is scaled by `dw·dx` (the two f16 scales) and summed.
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    unsafe fn dot_rows_vnni(w: &[u8], x: &[u8], out: &mut [f32]) {
        rows_impl::<true>(w, x, out)
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn dot_rows_avx2(w: &[u8], x: &[u8], out: &mut [f32]) {
        rows_impl::<false>(w, x, out)
    }

    #[target_feature(enable = "avx512f,avx512bw,f16c")]
    pub unsafe fn dequantize_avx512(row: &[u8], out: &mut [f32]) {
        for b in 0..row.len() / BLOCK_BYTES {
            let block = row.as_ptr().add(b * BLOCK_BYTES);
            let d = _mm512_set1_ps(scale(block));
            let q = _mm256_loadu_si256(block.add(2) as *const __m256i);
            let lo = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_castsi256_si128(q)));
            let hi = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_extracti128_si256(q, 1)));
            let dst = out.as_mut_ptr().add(b * 32);
            _mm512_storeu_ps(dst, _mm512_mul_ps(d, lo));
            _mm512_storeu_ps(dst.add(16), _mm512_mul_ps(d, hi));
        }
    }

    pub unsafe fn dot_rows<const VNNI: bool>(w: &[u8], x: &[u8], out: &mut [f32]) {
        if VNNI {
            dot_rows_vnni(w, x, out)
        } else {
            dot_rows_avx2(w, x, out)
        }
    }

    /// The f16 scale at the start of a block.
    #[inline(always)]
    pub(in crate::kernels::quant) unsafe fn scale(p: *const u8) -> f32 {
        _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(
            u16::from_le_bytes([*p, *p.add(1)]) as i32,
        )))
    }

    /// Rows streamed together: each is a separate memory stream, and the loads of
    /// several streams overlap their latency.
    const ROWS: usize = 16;

    #[inline(always)]
    unsafe fn rows_impl<const VNNI: bool>(w: &[u8], x: &[u8], out: &mut [f32]) {
        let bytes = x.len();
        let blocks = bytes / BLOCK_BYTES;
        let (xp, wp) = (x.as_ptr(), w.as_ptr());
        let mut row = 0;
        while row + ROWS <= out.len() {
            let r: [*const u8; ROWS] = std::array::from_fn(|i| wp.add((row + i) * bytes));
            let mut acc = [_mm256_setzero_ps(); ROWS];
            for b in 0..blocks {
                let xb = xp.add(b * BLOCK_BYTES);
                let dx = scale(xb);
                let xv = _mm256_loadu_si256(xb.add(2) as *const __m256i);
                for i in 0..ROWS {
                    let wb = r[i].add(b * BLOCK_BYTES);
                    prefetch_ahead(wb, BLOCK_BYTES);
                    let wv = _mm256_loadu_si256(wb.add(2) as *const __m256i);
                    let sums = _mm256_cvtepi32_ps(i8_dot_i32::<VNNI>(wv, xv));
                    acc[i] = _mm256_fmadd_ps(_mm256_set1_ps(scale(wb) * dx), sums, acc[i]);
                }
            }
            for i in 0..ROWS {
                out[row + i] = hsum_ps(acc[i]);
            }
            row += ROWS;
        }
        while row < out.len() {
            let wr = wp.add(row * bytes);
            let mut acc = _mm256_setzero_ps();
            for b in 0..blocks {
                let (xb, wb) = (xp.add(b * BLOCK_BYTES), wr.add(b * BLOCK_BYTES));
                prefetch_ahead(wb, BLOCK_BYTES);
                let xv = _mm256_loadu_si256(xb.add(2) as *const __m256i);
                let wv = _mm256_loadu_si256(wb.add(2) as *const __m256i);
                let sums = _mm256_cvtepi32_ps(i8_dot_i32::<VNNI>(wv, xv));
                acc = _mm256_fmadd_ps(_mm256_set1_ps(scale(wb) * scale(xb)), sums, acc);
            }
            out[row] = hsum_ps(acc);
            row += 1;
        }
    }
}

#[cfg(target_arch = "aarch64")]
mod neon {
    use std::arch::aarch64::*;

    use super::BLOCK_BYTES;
    use half::f16;

    #[target_feature(enable = "neon")]
    pub unsafe fn dot_rows(w: &[u8], x: &[u8], out: &mut [f32]) {
        let bytes = x.len();
        let blocks = bytes / BLOCK_BYTES;
        for (row, o) in out.iter_mut().enumerate() {
            let wr = w.as_ptr().add(row * bytes);
            let mut acc = vdupq_n_f32(0.0);
            for b in 0..blocks {
                let (xb, wb) = (x.as_ptr().add(b * BLOCK_BYTES), wr.add(b * BLOCK_BYTES));
                let mut sum = vdupq_n_s32(0);
                for half in 0..2 {
                    let wv = vld1q_s8(wb.add(2 + 16 * half) as *const i8);
                    let xv = vld1q_s8(xb.add(2 + 16 * half) as *const i8);
                    let lo = vmull_s8(vget_low_s8(wv), vget_low_s8(xv));
                    let hi = vmull_s8(vget_high_s8(wv), vget_high_s8(xv));
                    sum = vpadalq_s16(vpadalq_s16(sum, lo), hi);
                }
                let d = f16::from_le_bytes([*wb, *wb.add(1)]).to_f32()
                    * f16::from_le_bytes([*xb, *xb.add(1)]).to_f32();
                acc = vfmaq_n_f32(acc, vcvtq_f32_s32(sum), d);
            }
            *o = vaddvq_f32(acc);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::quant::dot_checks::assert_paths_match_scalar;
    use crate::kernels::test_data::values;

    #[test]
    fn every_simd_path_equals_the_scalar_dot() {
        let (rows, cols) = (37, 4096);
        let (w, x) = (values(rows * cols, 1), values(cols, 7));
        let (mut wq, mut xq) = (
            vec![0u8; rows * row_bytes(cols)],
            vec![0u8; row_bytes(cols)],
        );
        for (r, q) in w
            .chunks_exact(cols)
            .zip(wq.chunks_exact_mut(row_bytes(cols)))
        {
            quantize_row(r, q);
        }
        quantize_row(&x, &mut xq);
        #[cfg(target_arch = "aarch64")]
        assert!(
            crate::kernels::simd::available_paths().contains(&SimdPath::Neon),
            "NEON not detected"
        );
        assert_paths_match_scalar(dot_rows_with, &wq, &xq, rows);
    }

    #[test]
    fn simd_dequantization_equals_scalar() {
        let cols = 320;
        let mut q = vec![0u8; row_bytes(cols)];
        quantize_row(&values(cols, 2), &mut q);
        let (mut simd, mut scalar) = (vec![0.0; cols], vec![0.0; cols]);
        dequantize_row(&q, &mut simd);
        dequantize_scalar(&q, &mut scalar);
        assert_eq!(simd, scalar);
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
