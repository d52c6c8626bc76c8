//! Attention for a few queries (decode steps) over a long key/value cache: one task per
//! key/value head computes the scores of every query head of its group in one pass over
//! the keys, then the weighted sum in one pass over the values, so each cache row is
//! read once per step instead of once per query head, and no matrix-product set-up is
//! paid for one-row products. Plain loops compiled once more with AVX-512 / AVX2.
use rayon::prelude::*;

use super::attention::{softmax_prefix, token_major, AttentionShape};
use super::simd::simd_path;
#[cfg(target_arch = "x86_64")]
use super::simd::SimdPath;

/// Up to this many queries take this path.
pub const MAX_QUERIES: usize = 4;

/// Same contract as `attention::attention` (exact f32 arithmetic).
pub fn attention_few_queries(
    q: &[f32],
    k: &[f32],
    v: &[f32],
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
    shape.check_inputs(q, k, v);
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
            head.run(&mut scores, &mut out);
            out.chunks_exact(n_queries * d)
                .enumerate()
                .map(|(g, head_out)| (heads.start + g, 0, head_out.to_vec()))
                .collect::<Vec<_>>()
        })
        .collect();
    token_major(blocks, n_queries, n_heads, d)
}

/// One key/value head's share of a step: its query heads, keys and values.
struct HeadWork<'a> {
    queries: &'a [f32],
    keys: &'a [f32],
    values: &'a [f32],
    d: usize,
    n_queries: usize,
    causal_offset: Option<usize>,
    scale: f32,
}

impl HeadWork<'_> {
    /// Scores, softmax and weighted sums, compiled for the widest SIMD path of this CPU.
    fn run(&self, scores: &mut [f32], out: &mut [f32]) {
        match simd_path() {
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
        self.compute(scores, out)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn run_avx2(&self, scores: &mut [f32], out: &mut [f32]) {
        self.compute(scores, out)
    }

    #[inline(always)]
    fn compute(&self, scores: &mut [f32], out: &mut [f32]) {
        let n_keys = self.keys.len() / self.d;
        score_rows(self.queries, self.keys, self.d, scores);
        for (row, scores) in scores.chunks_exact_mut(n_keys).enumerate() {
            let i = row % self.n_queries;
            let limit = self
                .causal_offset
                .map_or(n_keys, |p| (p + i + 1).min(n_keys));
            softmax_prefix(scores, limit, self.scale);
        }
        weighted_sums(scores, self.values, self.d, out);
    }
}

/// Lanes of the dot-product accumulators (one AVX-512 register).
const LANES: usize = 16;

/// `scores[r][j] = queries[r] · keys[j]` for every query row `r` (width `d`).
#[inline(always)]
fn score_rows(queries: &[f32], keys: &[f32], d: usize, scores: &mut [f32]) {
    let rows = queries.len() / d;
    let n_keys = keys.len() / d;
    for (j, key) in keys.chunks_exact(d).enumerate() {
        for r in 0..rows {
            scores[r * n_keys + j] = dot(&queries[r * d..(r + 1) * d], key);
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

/// `out[r] = Σⱼ scores[r][j] · values[j]` for every score row `r`.
#[inline(always)]
fn weighted_sums(scores: &[f32], values: &[f32], d: usize, out: &mut [f32]) {
    let n_keys = values.len() / d;
    for (j, value) in values.chunks_exact(d).enumerate() {
        for (r, row) in out.chunks_exact_mut(d).enumerate() {
            let p = scores[r * n_keys + j];
            if p != 0.0 {
                for (o, v) in row.iter_mut().zip(value) {
                    *o = p.mul_add(*v, *o);
                }
            }
        }
    }
}
