//! f32 or f16 weight rows times one f32 activation row: the decode product of the f32 and
//! f16 profiles. Decode reads every weight once per token, so this kernel streams rows
//! (several at a time, sharing each activation load) with FMA accumulators: AVX-512 or
//! AVX2 (+F16C) on x86_64, NEON for f32 on aarch64, portable code elsewhere. The row
//! splitting over threads is `matvec::packed_matvec`'s.
use half::f16;

use crate::kernels::simd::{simd_path, SimdPath};

/// A dense weight element: f32 as stored, or f16 widened to f32 as it is loaded.
pub trait DenseElement: Copy + Send + Sync + bytemuck::Pod {
    fn widen(self) -> f32;
}

impl DenseElement for f32 {
    #[inline(always)]
    fn widen(self) -> f32 {
        self
    }
}

impl DenseElement for f16 {
    #[inline(always)]
    fn widen(self) -> f32 {
        self.to_f32()
    }
}

/// `out[r] = w[r] · x` for the `out.len()` consecutive rows of width `x.len()` in `w`.
pub fn dot_rows<W: DenseElement + SimdLoads>(w: &[W], x: &[f32], out: &mut [f32]) {
    dot_rows_with(simd_path(), w, x, out)
}

/// `dot_rows` on a given SIMD path (tests compare the paths).
pub fn dot_rows_with<W: DenseElement + SimdLoads>(
    path: SimdPath,
    w: &[W],
    x: &[f32],
    out: &mut [f32],
) {
    assert_eq!(w.len(), x.len() * out.len(), "dense dot_rows: row sizes");
    if x.is_empty() {
        out.fill(0.0);
        return;
    }
    match path {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: these paths are only chosen when the CPU reports their features
        // (`simd::hardware_path`); slice lengths were checked above.
        SimdPath::Avx512 => unsafe { x86::dot_rows_avx512(w, x, out) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        SimdPath::Avx2 => unsafe { x86::dot_rows_avx2(w, x, out) },
        #[cfg(target_arch = "aarch64")]
        // SAFETY: NEON is only chosen when the CPU reports it; lengths checked above.
        SimdPath::Neon if W::NEON => unsafe { neon::dot_rows(bytemuck::cast_slice(w), x, out) },
        _ => {
            for (o, row) in out.iter_mut().zip(w.chunks_exact(x.len())) {
                *o = dot_scalar(row, x);
            }
        }
    }
}

/// Whether f16 rows take a SIMD kernel here (x86_64 with AVX2/F16C or AVX-512); elsewhere
/// they are widened in panels for the dense product, which converts whole slices faster
/// than the portable dot widens values one by one.
pub fn widens_f16() -> bool {
    matches!(simd_path(), SimdPath::Avx2 | SimdPath::Avx512)
}

/// Partial sums kept by the portable dot (the compiler turns them into vector lanes).
const LANES: usize = 8;

fn dot_scalar<W: DenseElement>(w: &[W], x: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let (w_chunks, x_chunks) = (w.chunks_exact(LANES), x.chunks_exact(LANES));
    let tail: f32 = w_chunks
        .remainder()
        .iter()
        .zip(x_chunks.remainder())
        .map(|(a, b)| a.widen() * b)
        .sum();
    for (a, b) in w_chunks.zip(x_chunks) {
        for l in 0..LANES {
            acc[l] = a[l].widen().mul_add(b[l], acc[l]);
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// How each SIMD path loads `W` values as f32 lanes.
pub trait SimdLoads: Sized {
    /// Whether the NEON kernel takes this element type (it is f32-only; f16 weights take
    /// the portable path there).
    const NEON: bool;
    /// Eight values at `p`, widened.
    ///
    /// # Safety
    /// `p` points to eight readable values; the CPU has AVX2 and F16C.
    #[cfg(target_arch = "x86_64")]
    unsafe fn load8(p: *const Self) -> std::arch::x86_64::__m256;
    /// The values at `p` selected by `mask` (of sixteen), widened; the others are zero.
    ///
    /// # Safety
    /// The selected values at `p` are readable; the CPU has AVX-512 F/BW/VL.
    #[cfg(target_arch = "x86_64")]
    unsafe fn load16_masked(mask: u16, p: *const Self) -> std::arch::x86_64::__m512;
}

impl SimdLoads for f32 {
    const NEON: bool = true;
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn load8(p: *const f32) -> std::arch::x86_64::__m256 {
        std::arch::x86_64::_mm256_loadu_ps(p)
    }
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn load16_masked(mask: u16, p: *const f32) -> std::arch::x86_64::__m512 {
        std::arch::x86_64::_mm512_maskz_loadu_ps(mask, p)
    }
}

impl SimdLoads for f16 {
    const NEON: bool = false;
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn load8(p: *const f16) -> std::arch::x86_64::__m256 {
        use std::arch::x86_64::*;
        _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i))
    }
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn load16_masked(mask: u16, p: *const f16) -> std::arch::x86_64::__m512 {
        use std::arch::x86_64::*;
        _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, p as *const i16))
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{dot_scalar, DenseElement, SimdLoads};
    use crate::kernels::simd_x86::{hsum_ps, mask16, prefetch_ahead};

    /// Rows streamed together: each is its own memory stream and accumulator chain, and
    /// they share every activation load.
    const ROWS: usize = 4;
    /// The same on the AVX-512 path, which has the registers for twice as many streams
    /// (Zen 4, one 49152 × 2048 f32 matrix from memory, six alternating runs: 4 rows
    /// 31.0 GB/s median / 33.8 best, 1 row 30.4 / 31.4, 8 rows 33.3 / 44.7).
    const ROWS_AVX512: usize = 8;

    /// Four rows at a time, 16 values (one cache line) per row and step in two
    /// accumulators; the last values of a row that fill no whole vector are summed plainly.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_rows_avx2<W: DenseElement + SimdLoads>(w: &[W], x: &[f32], out: &mut [f32]) {
        let k = x.len();
        let (wp, xp) = (w.as_ptr(), x.as_ptr());
        let lines = k / 16 * 16;
        let vectors = k / 8 * 8;
        let mut row = 0;
        while row < out.len() {
            let group = ROWS.min(out.len() - row);
            let r: [*const W; ROWS] = std::array::from_fn(|i| wp.add((row + i.min(group - 1)) * k));
            let mut lo = [_mm256_setzero_ps(); ROWS];
            let mut hi = [_mm256_setzero_ps(); ROWS];
            let mut j = 0;
            while j < lines {
                let (x0, x1) = (_mm256_loadu_ps(xp.add(j)), _mm256_loadu_ps(xp.add(j + 8)));
                for i in 0..ROWS {
                    let p = r[i].add(j);
                    prefetch_ahead(p as *const u8, 16 * size_of::<W>());
                    lo[i] = _mm256_fmadd_ps(W::load8(p), x0, lo[i]);
                    hi[i] = _mm256_fmadd_ps(W::load8(p.add(8)), x1, hi[i]);
                }
                j += 16;
            }
            if j < vectors {
                let x0 = _mm256_loadu_ps(xp.add(j));
                for i in 0..ROWS {
                    lo[i] = _mm256_fmadd_ps(W::load8(r[i].add(j)), x0, lo[i]);
                }
            }
            for i in 0..group {
                let tail = std::slice::from_raw_parts(r[i].add(vectors), k - vectors);
                out[row + i] =
                    hsum_ps(_mm256_add_ps(lo[i], hi[i])) + dot_scalar(tail, &x[vectors..]);
            }
            row += group;
        }
    }

    /// Eight rows at a time, 32 values per row and step in two accumulators; the row's end
    /// is read with masked loads. No software prefetch: on Zen 4 the hardware prefetcher
    /// alone streams faster (2B f32 decode 4.3 tok/s with the AVX2 kernel's 512-byte
    /// look-ahead, 4.9–5.9 without; `BENCH_FROM_MEMORY=1` f32 one token 23–30 GB/s with
    /// 0.5–4 KiB look-ahead, 33–40 without). Not measured on Intel AVX-512 hosts.
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl")]
    pub unsafe fn dot_rows_avx512<W: DenseElement + SimdLoads>(
        w: &[W],
        x: &[f32],
        out: &mut [f32],
    ) {
        let k = x.len();
        let (wp, xp) = (w.as_ptr(), x.as_ptr());
        let pairs = k / 32 * 32;
        let mut row = 0;
        while row < out.len() {
            let group = ROWS_AVX512.min(out.len() - row);
            let r: [*const W; ROWS_AVX512] =
                std::array::from_fn(|i| wp.add((row + i.min(group - 1)) * k));
            let mut lo = [_mm512_setzero_ps(); ROWS_AVX512];
            let mut hi = [_mm512_setzero_ps(); ROWS_AVX512];
            let mut j = 0;
            while j < pairs {
                let (x0, x1) = (_mm512_loadu_ps(xp.add(j)), _mm512_loadu_ps(xp.add(j + 16)));
                for i in 0..ROWS_AVX512 {
                    let p = r[i].add(j);
                    lo[i] = _mm512_fmadd_ps(W::load16_masked(0xffff, p), x0, lo[i]);
                    hi[i] = _mm512_fmadd_ps(W::load16_masked(0xffff, p.add(16)), x1, hi[i]);
                }
                j += 32;
            }
            while j < k {
                let mask = mask16(k, j);
                let xv = _mm512_maskz_loadu_ps(mask, xp.add(j));
                for i in 0..ROWS_AVX512 {
                    let wv = W::load16_masked(mask, r[i].add(j));
                    lo[i] = _mm512_fmadd_ps(wv, xv, lo[i]);
                }
                j += 16;
            }
            for i in 0..group {
                out[row + i] = _mm512_reduce_add_ps(_mm512_add_ps(lo[i], hi[i]));
            }
            row += group;
        }
    }
}

#[cfg(target_arch = "aarch64")]
mod neon {
    use std::arch::aarch64::*;

    use super::dot_scalar;

    const ROWS: usize = 4;

    /// Four rows at a time, 8 values per row and step in two accumulators; the last
    /// values of a row that fill no whole pair of vectors are summed plainly.
    #[target_feature(enable = "neon")]
    pub unsafe fn dot_rows(w: &[f32], x: &[f32], out: &mut [f32]) {
        let k = x.len();
        let (wp, xp) = (w.as_ptr(), x.as_ptr());
        let steps = k / 8 * 8;
        let mut row = 0;
        while row < out.len() {
            let group = ROWS.min(out.len() - row);
            let r: [*const f32; ROWS] =
                std::array::from_fn(|i| wp.add((row + i.min(group - 1)) * k));
            let mut lo = [vdupq_n_f32(0.0); ROWS];
            let mut hi = [vdupq_n_f32(0.0); ROWS];
            let mut j = 0;
            while j < steps {
                let (x0, x1) = (vld1q_f32(xp.add(j)), vld1q_f32(xp.add(j + 4)));
                for i in 0..ROWS {
                    lo[i] = vfmaq_f32(lo[i], vld1q_f32(r[i].add(j)), x0);
                    hi[i] = vfmaq_f32(hi[i], vld1q_f32(r[i].add(j + 4)), x1);
                }
                j += 8;
            }
            for i in 0..group {
                let tail = std::slice::from_raw_parts(r[i].add(steps), k - steps);
                out[row + i] = vaddvq_f32(vaddq_f32(lo[i], hi[i])) + dot_scalar(tail, &x[steps..]);
            }
            row += group;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::simd::available_paths;
    use crate::kernels::test_data::values;

    #[test]
    fn every_simd_path_and_the_scalar_twin_give_the_exact_dot_for_any_shape() {
        #[cfg(target_arch = "aarch64")]
        assert!(
            available_paths().contains(&SimdPath::Neon),
            "NEON not detected"
        );
        for (rows, cols) in [
            (1, 1),
            (3, 7),
            (5, 8),
            (9, 15),
            (4, 16),
            (7, 17),
            (6, 31),
            (13, 33),
            (2, 48),
            (11, 100),
            (37, 2048),
            (5, 2053),
        ] {
            let (w, x) = (values(rows * cols, 1), values(cols, 7));
            let w16: Vec<f16> = w.iter().map(|&v| f16::from_f32(v)).collect();
            check_every_path(&w, &x, rows);
            check_every_path(&w16, &x, rows);
        }
    }

    /// Each path's dot against the exact (f64) sum of the widened products.
    fn check_every_path<W: DenseElement + SimdLoads + std::fmt::Debug>(
        w: &[W],
        x: &[f32],
        rows: usize,
    ) {
        let cols = x.len();
        let products = |r: usize| {
            w[r * cols..(r + 1) * cols]
                .iter()
                .zip(x)
                .map(|(a, b)| a.widen() as f64 * *b as f64)
        };
        for path in available_paths() {
            let mut got = vec![f32::NAN; rows];
            dot_rows_with(path, w, x, &mut got);
            for (r, g) in got.iter().enumerate() {
                let exact: f64 = products(r).sum();
                let magnitude: f64 = products(r).map(f64::abs).sum();
                assert!(
                    (*g as f64 - exact).abs() <= 1e-6 * magnitude.max(1.0),
                    "{path:?} {} {rows}x{cols} row {r}: {g} vs {exact}",
                    std::any::type_name::<W>()
                );
            }
        }
    }

    #[test]
    fn an_empty_row_width_gives_zeros() {
        let mut out = vec![f32::NAN; 3];
        dot_rows::<f32>(&[], &[], &mut out);
        assert_eq!(out, [0.0; 3]);
    }
}
