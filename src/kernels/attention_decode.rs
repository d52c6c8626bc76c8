//! Attention for a few queries (decode steps) over a long key/value cache: one task per
//! key/value head computes the scores of every query head of its group in one pass over
//! the keys, then the weighted sum in one pass over the values, so each cache row is
//! read once per step instead of once per query head, and no matrix-product set-up is
//! paid for one-row products. Plain loops compiled once more with AVX-512 / AVX2. The
//! cache rows are f32 or f16 (`CacheElement`): the x86 paths widen f16 values inside the
//! dots, the portable one a piece at a time into a buffer that stays in L1; the f32
//! arithmetic is the same either way.
use rayon::prelude::*;

use super::attention::{softmax_prefix, token_major, AttentionShape, CacheElement};
use super::simd::{simd_path, SimdPath};

/// Up to this many queries take this path.
pub const MAX_QUERIES: usize = 4;

/// Same contract as `attention::attention` (exact f32 arithmetic on the cache's values).
pub fn attention_few_queries<E: CacheElement>(
    q: &[f32],
    k: &[E],
    v: &[E],
    shape: AttentionShape,
    scale: f32,
    causal_offset: Option<usize>,
) -> Vec<f32> {
    attention_few_queries_on(simd_path(), q, k, v, shape, scale, causal_offset)
}

/// `attention_few_queries` on a given SIMD path (tests compare the paths).
fn attention_few_queries_on<E: CacheElement>(
    path: SimdPath,
    q: &[f32],
    k: &[E],
    v: &[E],
    shape: AttentionShape,
    scale: f32,
    causal_offset: Option<usize>,
) -> Vec<f32> {
    let AttentionShape {
        n_heads,
        n_kv_heads,
        head_dim: d,
        n_queries,
        n_keys,
        kv_stride,
    } = shape;
    shape.check_inputs(q, k.len(), v.len());
    assert!(n_keys <= kv_stride, "attention: keys past the cache stride");
    let group = shape.group();
    let blocks: Vec<(usize, usize, Vec<f32>)> = (0..n_kv_heads)
        .into_par_iter()
        .flat_map_iter(|kv_head| {
            let base = kv_head * kv_stride * d;
            let keys = &k[base..base + n_keys * d];
            let values = &v[base..base + n_keys * d];
            let heads = kv_head * group..(kv_head + 1) * group;
            let queries = &q[heads.start * n_queries * d..heads.end * n_queries * d];
            let mut scores = vec![0.0f32; group * n_queries * n_keys];
            let mut out = vec![0.0f32; group * n_queries * d];
            let head = HeadWork {
                queries,
                keys,
                values,
                d,
                n_queries,
                causal_offset,
                scale,
            };
            head.run(path, &mut scores, &mut out);
            out.chunks_exact(n_queries * d)
                .enumerate()
                .map(|(g, head_out)| (heads.start + g, 0, head_out.to_vec()))
                .collect::<Vec<_>>()
        })
        .collect();
    token_major(blocks, n_queries, n_heads, d)
}

/// One key/value head's share of a step: its query heads, keys and values.
struct HeadWork<'a, E> {
    queries: &'a [f32],
    keys: &'a [E],
    values: &'a [E],
    d: usize,
    n_queries: usize,
    causal_offset: Option<usize>,
    scale: f32,
}

impl<E: CacheElement> HeadWork<'_, E> {
    /// Scores, softmax and weighted sums, compiled for the widest SIMD path of this CPU.
    fn run(&self, path: SimdPath, scores: &mut [f32], out: &mut [f32]) {
        match path {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the path is only chosen when the CPU has these features.
            SimdPath::Avx512 => unsafe { self.run_avx512(scores, out) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above.
            SimdPath::Avx2 => unsafe { self.run_avx2(scores, out) },
            _ => self.compute(scores, out),
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma,avx512f,avx512bw,avx512vl,avx512dq")]
    unsafe fn run_avx512(&self, scores: &mut [f32], out: &mut [f32]) {
        if E::FUSED {
            self.fused::<x86::Avx512>(scores, out)
        } else {
            self.compute(scores, out)
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn run_avx2(&self, scores: &mut [f32], out: &mut [f32]) {
        if E::FUSED {
            self.fused::<x86::Avx2>(scores, out)
        } else {
            self.compute(scores, out)
        }
    }

    /// `compute` with the cache rows read through the SIMD path `L`'s loads.
    ///
    /// # Safety
    /// The CPU has `L`'s features, and this is inlined into a function that enables them.
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn fused<L: x86::Lanes>(&self, scores: &mut [f32], out: &mut [f32]) {
        let (d, n_keys) = (self.d, self.keys.len() / self.d);
        let rows = self.queries.len() / d;
        for j in 0..n_keys {
            let key = &self.keys[j * d..(j + 1) * d];
            for r in 0..rows {
                scores[r * n_keys + j] = L::dot(&self.queries[r * d..(r + 1) * d], key);
            }
        }
        self.softmax_rows(scores, n_keys);
        for j in 0..n_keys {
            let value = &self.values[j * d..(j + 1) * d];
            for (r, row) in out.chunks_exact_mut(d).enumerate() {
                let p = scores[r * n_keys + j];
                if p != 0.0 {
                    L::add_scaled(row, p, value);
                }
            }
        }
    }

    /// Each score row's masked softmax.
    #[inline(always)]
    fn softmax_rows(&self, scores: &mut [f32], n_keys: usize) {
        for (row, scores) in scores.chunks_exact_mut(n_keys).enumerate() {
            let i = row % self.n_queries;
            let limit = self
                .causal_offset
                .map_or(n_keys, |p| (p + i + 1).min(n_keys));
            softmax_prefix(scores, limit, self.scale);
        }
    }

    #[inline(always)]
    fn compute(&self, scores: &mut [f32], out: &mut [f32]) {
        let (d, n_keys) = (self.d, self.keys.len() / self.d);
        let piece = E::piece_rows(d).min(n_keys).max(1);
        let mut buffer = vec![0.0f32; E::scratch_len(piece * d)];
        for first in (0..n_keys).step_by(piece) {
            let rows = first * d..(first + piece).min(n_keys) * d;
            let keys = E::as_f32(&self.keys[rows], &mut buffer);
            score_rows(self.queries, keys, d, scores, n_keys, first);
        }
        self.softmax_rows(scores, n_keys);
        for first in (0..n_keys).step_by(piece) {
            let rows = first * d..(first + piece).min(n_keys) * d;
            let values = E::as_f32(&self.values[rows], &mut buffer);
            weighted_sums(scores, values, d, out, n_keys, first);
        }
    }
}

/// Lanes of the dot-product accumulators (one AVX-512 register).
const LANES: usize = 16;

/// `scores[r][first + j] = queries[r] · keys[j]` for every query row `r` (width `d`);
/// score rows are `n_keys` long.
#[inline(always)]
fn score_rows(
    queries: &[f32],
    keys: &[f32],
    d: usize,
    scores: &mut [f32],
    n_keys: usize,
    first: usize,
) {
    let rows = queries.len() / d;
    for (j, key) in keys.chunks_exact(d).enumerate() {
        for r in 0..rows {
            scores[r * n_keys + first + j] = dot(&queries[r * d..(r + 1) * d], key);
        }
    }
}

#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let (a_chunks, b_chunks) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = a_chunks
        .remainder()
        .iter()
        .zip(b_chunks.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in a_chunks.zip(b_chunks) {
        for l in 0..LANES {
            acc[l] = x[l].mul_add(y[l], acc[l]);
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// `out[r] += Σⱼ scores[r][first + j] · values[j]` for every score row `r` (`n_keys` long).
#[inline(always)]
fn weighted_sums(
    scores: &[f32],
    values: &[f32],
    d: usize,
    out: &mut [f32],
    n_keys: usize,
    first: usize,
) {
    for (j, value) in values.chunks_exact(d).enumerate() {
        for (r, row) in out.chunks_exact_mut(d).enumerate() {
            let p = scores[r * n_keys + first + j];
            if p != 0.0 {
                for (o, v) in row.iter_mut().zip(value) {
                    *o = p.mul_add(*v, *o);
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::CacheElement;
    use crate::kernels::simd_x86::{hsum_ps, mask16};

    /// One SIMD path's dot product and scaled add over a cache row of `E`. Always inlined
    /// into a function that enables the path's features.
    pub trait Lanes {
        unsafe fn dot<E: CacheElement>(q: &[f32], k: &[E]) -> f32;
        /// `out += p · v`.
        unsafe fn add_scaled<E: CacheElement>(out: &mut [f32], p: f32, v: &[E]);
    }

    /// AVX-512: 16 values per step, the row's end with masked loads.
    pub struct Avx512;

    impl Lanes for Avx512 {
        #[inline(always)]
        unsafe fn dot<E: CacheElement>(q: &[f32], k: &[E]) -> f32 {
            let (d, (qp, kp)) = (q.len().min(k.len()), (q.as_ptr(), k.as_ptr()));
            let mut acc = [_mm512_setzero_ps(); 2];
            let mut i = 0;
            while i < d {
                let m = mask16(d, i);
                let chain = &mut acc[(i / 16) % 2];
                *chain = _mm512_fmadd_ps(
                    _mm512_maskz_loadu_ps(m, qp.add(i)),
                    E::load16_masked(m, kp.add(i)),
                    *chain,
                );
                i += 16;
            }
            _mm512_reduce_add_ps(_mm512_add_ps(acc[0], acc[1]))
        }

        #[inline(always)]
        unsafe fn add_scaled<E: CacheElement>(out: &mut [f32], p: f32, v: &[E]) {
            let (d, (op, vp)) = (out.len().min(v.len()), (out.as_mut_ptr(), v.as_ptr()));
            let p = _mm512_set1_ps(p);
            let mut i = 0;
            while i < d {
                let m = mask16(d, i);
                let sum = _mm512_fmadd_ps(
                    p,
                    E::load16_masked(m, vp.add(i)),
                    _mm512_maskz_loadu_ps(m, op.add(i)),
                );
                _mm512_mask_storeu_ps(op.add(i), m, sum);
                i += 16;
            }
        }
    }

    /// AVX2 + F16C: 8 values per step, the row's last values (fewer than 8) plainly.
    pub struct Avx2;

    impl Lanes for Avx2 {
        #[inline(always)]
        unsafe fn dot<E: CacheElement>(q: &[f32], k: &[E]) -> f32 {
            let d = q.len().min(k.len());
            let (vectors, (qp, kp)) = (d / 8 * 8, (q.as_ptr(), k.as_ptr()));
            let mut acc = [_mm256_setzero_ps(); 2];
            for (step, i) in (0..vectors).step_by(8).enumerate() {
                acc[step % 2] = _mm256_fmadd_ps(
                    _mm256_loadu_ps(qp.add(i)),
                    E::load8(kp.add(i)),
                    acc[step % 2],
                );
            }
            let tail: f32 = (vectors..d).map(|i| q[i] * k[i].widen()).sum();
            hsum_ps(_mm256_add_ps(acc[0], acc[1])) + tail
        }

        #[inline(always)]
        unsafe fn add_scaled<E: CacheElement>(out: &mut [f32], p: f32, v: &[E]) {
            let d = out.len().min(v.len());
            let (vectors, (op, vp)) = (d / 8 * 8, (out.as_mut_ptr(), v.as_ptr()));
            let pv = _mm256_set1_ps(p);
            for i in (0..vectors).step_by(8) {
                let sum = _mm256_fmadd_ps(pv, E::load8(vp.add(i)), _mm256_loadu_ps(op.add(i)));
                _mm256_storeu_ps(op.add(i), sum);
            }
            for i in vectors..d {
                out[i] = p.mul_add(v[i].widen(), out[i]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use half::f16;

    use super::*;
    use crate::kernels::simd::available_paths;
    use crate::kernels::test_data::values;

    #[test]
    fn every_path_reads_f16_rows_as_the_portable_pieces_do() {
        // Head size 72: a whole AVX-512 vector and a masked end, an AVX2 tail of 0.
        for (n_queries, d) in [(1, 128), (4, 72), (2, 20)] {
            let shape = AttentionShape {
                n_heads: 4,
                n_kv_heads: 2,
                head_dim: d,
                n_queries,
                n_keys: 9000 / d + 3,
                kv_stride: 9000 / d + 5,
            };
            let kv_len = shape.n_kv_heads * shape.kv_stride * d;
            let half_rows = |seed| {
                values(kv_len, seed)
                    .iter()
                    .map(|&x| f16::from_f32(x))
                    .collect::<Vec<_>>()
            };
            let (q, k, v) = (values(4 * n_queries * d, 1), half_rows(2), half_rows(3));
            let offset = Some(shape.n_keys - n_queries);
            let want = attention_few_queries_on(SimdPath::Scalar, &q, &k, &v, shape, 0.1, offset);
            for path in available_paths() {
                let got = attention_few_queries_on(path, &q, &k, &v, shape, 0.1, offset);
                for (g, w) in got.iter().zip(&want) {
                    assert!((g - w).abs() <= 1e-5, "{path:?}, d {d}: {g} vs {w}");
                }
            }
        }
    }
}
