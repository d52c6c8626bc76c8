//! Activations quantized once per product for the interleaved weight kernels: each run
//! of 32 values becomes 32 signed bytes with an f32 scale (`d = max|x| / 127`,
//! `q = round-half-even(x / d)`) and the run's integer sum `Σq` as i16 (|Σq| ≤ 4064; the
//! q4_K minimums and the unsigned-weight correction of Q8_0x16 need it). Q8_0 weights
//! take one scale per run (`quantize`); Q4_K weights one per super-block of 256 values
//! (`quantize_super_blocks`, ggml's Q8_K scale), so their kernels sum a super-block's
//! eight runs in integers and take one float step per super-block. The scale is stored
//! per run either way (repeated over a super-block). Values, scales and sums live in
//! three arrays so a kernel can broadcast four bytes of a token straight from memory.
use rayon::prelude::*;

use crate::kernels::simd::{simd_path, SimdPath};

pub const RUN: usize = 32;
/// Runs of one Q4_K super-block, which share a scale in `quantize_super_blocks`.
pub const SUPER_BLOCK_RUNS: usize = 8;

/// `rows` tokens of `cols` values each (`cols` a multiple of 32).
pub struct Q8Blocks {
    pub quants: Vec<i8>,
    pub scales: Vec<f32>,
    pub sums: Vec<i16>,
    pub rows: usize,
    pub cols: usize,
    /// Consecutive runs sharing one scale: 1, or `SUPER_BLOCK_RUNS`.
    pub runs_per_scale: usize,
}

/// One task's share: values, and the quantized values, scales and sums they become.
type TokenParts<'a> = (((&'a [f32], &'a mut [i8]), &'a mut [f32]), &'a mut [i16]);

/// Tokens per parallel task when quantizing a long batch.
const TOKENS_PER_TASK: usize = 16;

impl Q8Blocks {
    /// Quantizes the `x.len() / cols` rows of `x`, one scale per run of 32.
    pub fn quantize(x: &[f32], cols: usize) -> Q8Blocks {
        Self::quantize_with(simd_path(), x, cols, 1)
    }

    /// Quantizes the `x.len() / cols` rows of `x`, one scale per super-block of 256
    /// values (`cols` a multiple of 256).
    pub fn quantize_super_blocks(x: &[f32], cols: usize) -> Q8Blocks {
        Self::quantize_with(simd_path(), x, cols, SUPER_BLOCK_RUNS)
    }

    /// `quantize` (`runs_per_scale` 1) or `quantize_super_blocks` (`SUPER_BLOCK_RUNS`) on
    /// a given SIMD path (tests compare the paths).
    pub fn quantize_with(
        path: SimdPath,
        x: &[f32],
        cols: usize,
        runs_per_scale: usize,
    ) -> Q8Blocks {
        assert!(
            cols.is_multiple_of(RUN * runs_per_scale) && x.len().is_multiple_of(cols),
            "q8 blocks: width"
        );
        let rows = x.len() / cols;
        let runs = cols / RUN;
        let mut blocks = Q8Blocks {
            quants: vec![0; x.len()],
            scales: vec![0.0; rows * runs],
            sums: vec![0; rows * runs],
            rows,
            cols,
            runs_per_scale,
        };
        let quantize_token =
            |(((x, q), d), s): TokenParts| quantize_runs(path, x, q, d, s, runs_per_scale);
        let (tokens, runs_per_task) = (cols * TOKENS_PER_TASK, runs * TOKENS_PER_TASK);
        if rows > TOKENS_PER_TASK {
            x.par_chunks(tokens)
                .zip(blocks.quants.par_chunks_mut(tokens))
                .zip(blocks.scales.par_chunks_mut(runs_per_task))
                .zip(blocks.sums.par_chunks_mut(runs_per_task))
                .for_each(quantize_token);
        } else {
            quantize_token((
                ((x, &mut blocks.quants[..]), &mut blocks.scales[..]),
                &mut blocks.sums[..],
            ));
        }
        blocks
    }

    pub fn runs(&self) -> usize {
        self.cols / RUN
    }

    /// Where the values, scales and sums of the `T` tokens from `first` on start (for
    /// kernels that broadcast straight from memory; dereferencing is theirs to justify).
    pub fn token_pointers<const T: usize>(&self, first: usize) -> TokenPointers<T> {
        let (cols, runs) = (self.cols, self.runs());
        TokenPointers {
            quants: std::array::from_fn(|t| self.quants.as_ptr().wrapping_add((first + t) * cols)),
            scales: std::array::from_fn(|t| self.scales.as_ptr().wrapping_add((first + t) * runs)),
            sums: std::array::from_fn(|t| self.sums.as_ptr().wrapping_add((first + t) * runs)),
        }
    }
}

/// `Q8Blocks::token_pointers`: the first value, scale and sum of each of `T` tokens.
pub struct TokenPointers<const T: usize> {
    pub quants: [*const i8; T],
    pub scales: [*const f32; T],
    pub sums: [*const i16; T],
}

/// Quantizes the runs of `x` into `q`, `d` and `s`, `group` consecutive runs sharing the
/// scale of their largest magnitude.
fn quantize_runs(
    path: SimdPath,
    x: &[f32],
    q: &mut [i8],
    d: &mut [f32],
    s: &mut [i16],
    group: usize,
) {
    #[cfg(target_arch = "x86_64")]
    if path == SimdPath::Avx512 {
        // SAFETY: AVX-512 is only chosen when the CPU reports it; the slices hold
        // `d.len()` runs of 32, a multiple of `group` (checked by the caller's chunking).
        return unsafe { x86::quantize_runs(x, q, d, s, group) };
    }
    #[cfg(target_arch = "x86_64")]
    if path == SimdPath::Avx2 {
        // SAFETY: as above, for AVX2.
        return unsafe { x86::quantize_runs_avx2(x, q, d, s, group) };
    }
    let _ = path;
    for (((values, q), d), s) in x
        .chunks_exact(RUN * group)
        .zip(q.chunks_exact_mut(RUN * group))
        .zip(d.chunks_exact_mut(group))
        .zip(s.chunks_exact_mut(group))
    {
        let amax = values.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        d.fill(amax / 127.0);
        let inv = if amax != 0.0 { 127.0 / amax } else { 0.0 };
        for ((values, q), s) in values
            .chunks_exact(RUN)
            .zip(q.chunks_exact_mut(RUN))
            .zip(s.iter_mut())
        {
            let mut sum = 0;
            for (q, v) in q.iter_mut().zip(values) {
                *q = (v * inv).round_ties_even() as i8;
                sum += *q as i16;
            }
            *s = sum;
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::RUN;

    /// The largest magnitude of the `8·n` values at `p`.
    #[inline(always)]
    unsafe fn amax_avx2(p: *const f32, n: usize) -> f32 {
        let sign = _mm256_set1_ps(-0.0);
        let mut m = _mm256_setzero_ps();
        for i in 0..n {
            m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(p.add(8 * i))));
        }
        let m = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
        _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)))
    }

    #[target_feature(enable = "avx2")]
    pub unsafe fn quantize_runs_avx2(
        x: &[f32],
        q: &mut [i8],
        d: &mut [f32],
        s: &mut [i16],
        group: usize,
    ) {
        for first in (0..d.len()).step_by(group) {
            let amax = amax_avx2(x.as_ptr().add(first * RUN), group * RUN / 8);
            let inv = _mm256_set1_ps(if amax != 0.0 { 127.0 / amax } else { 0.0 });
            for r in first..first + group {
                let p = x.as_ptr().add(r * RUN);
                d[r] = amax / 127.0;
                // Round to nearest even (the default MXCSR mode), as the scalar path does.
                let qi: [__m256i; 4] = std::array::from_fn(|i| {
                    _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(p.add(8 * i)), inv))
                });
                let total = _mm256_add_epi32(
                    _mm256_add_epi32(qi[0], qi[1]),
                    _mm256_add_epi32(qi[2], qi[3]),
                );
                let total = _mm_add_epi32(
                    _mm256_castsi256_si128(total),
                    _mm256_extracti128_si256(total, 1),
                );
                let total = _mm_hadd_epi32(total, total);
                s[r] = _mm_cvtsi128_si32(_mm_hadd_epi32(total, total)) as i16;
                // i32 → i16 → i8 with saturation (the values are within ±127); packs work
                // per 128-bit lane, so the lanes are put back in order afterwards.
                let words = [
                    _mm256_packs_epi32(qi[0], qi[1]),
                    _mm256_packs_epi32(qi[2], qi[3]),
                ];
                let bytes = _mm256_packs_epi16(words[0], words[1]);
                let ordered =
                    _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
                _mm256_storeu_si256(q.as_mut_ptr().add(r * RUN) as *mut __m256i, ordered);
            }
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub unsafe fn quantize_runs(
        x: &[f32],
        q: &mut [i8],
        d: &mut [f32],
        s: &mut [i16],
        group: usize,
    ) {
        let sign = _mm512_set1_ps(-0.0);
        for first in (0..d.len()).step_by(group) {
            let p = x.as_ptr().add(first * RUN);
            let mut m = _mm512_setzero_ps();
            for i in 0..group * RUN / 16 {
                m = _mm512_max_ps(m, _mm512_andnot_ps(sign, _mm512_loadu_ps(p.add(16 * i))));
            }
            let amax = _mm512_reduce_max_ps(m);
            let inv = _mm512_set1_ps(if amax != 0.0 { 127.0 / amax } else { 0.0 });
            for r in first..first + group {
                let p = x.as_ptr().add(r * RUN);
                d[r] = amax / 127.0;
                // Round to nearest even (the default MXCSR mode), as the scalar path does.
                let qa = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(p), inv));
                let qb = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(p.add(16)), inv));
                s[r] = _mm512_reduce_add_epi32(_mm512_add_epi32(qa, qb)) as i16;
                let out = q.as_mut_ptr().add(r * RUN) as *mut __m128i;
                _mm_storeu_si128(out, _mm512_cvtepi32_epi8(qa));
                _mm_storeu_si128(out.add(1), _mm512_cvtepi32_epi8(qb));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::simd::available_paths;

    #[test]
    fn every_path_quantizes_like_scalar_and_the_sums_add_up() {
        for (cols, group) in [(96, 1), (512, SUPER_BLOCK_RUNS)] {
            let x: Vec<f32> = (0..cols * 40)
                .map(|i| ((i * 7919) % 1013) as f32 / 97.0 - 5.0)
                .collect();
            let want = Q8Blocks::quantize_with(SimdPath::Scalar, &x, cols, group);
            for run in 0..want.scales.len() {
                let q = &want.quants[run * RUN..(run + 1) * RUN];
                assert_eq!(
                    want.sums[run] as i32,
                    q.iter().map(|&v| v as i32).sum::<i32>()
                );
                let back: Vec<f32> = q.iter().map(|&v| v as f32 * want.scales[run]).collect();
                for (b, v) in back.iter().zip(&x[run * RUN..]) {
                    assert!((b - v).abs() <= want.scales[run] * 0.5 + 1e-6);
                }
                // One scale per group of runs: that of the group's largest magnitude.
                let first = run / group * group;
                let amax = x[first * RUN..(first + group) * RUN]
                    .iter()
                    .fold(0.0f32, |m, v| m.max(v.abs()));
                assert_eq!(want.scales[run], amax / 127.0);
            }
            for path in available_paths() {
                let got = Q8Blocks::quantize_with(path, &x, cols, group);
                assert_eq!(got.quants, want.quants, "{path:?}");
                assert_eq!(got.scales, want.scales, "{path:?}");
                assert_eq!(got.sums, want.sums, "{path:?}");
            }
        }
    }
}
