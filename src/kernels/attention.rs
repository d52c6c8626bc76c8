//! Scaled dot-product attention over head-major Q/K/V, with grouped-query heads and
//! an optional causal mask. Work is split over (head, block of queries) on the rayon
//! pool; each block holds its score rows only, so memory stays O(block × keys).
use rayon::prelude::*;

use super::attention_amx;
use super::attention_decode::{attention_few_queries, MAX_QUERIES};
use super::fast_math::{exp, map_in_place};
use super::gemm::{matmul_a_b, matmul_a_bt, Threads};

/// Queries handled together by one task.
const QUERY_BLOCK: usize = 64;
/// From this many queries on, the bf16 tile path pays for its packing.
const BF16_FROM_QUERIES: usize = 32;

/// Arithmetic of the two attention products: exact f32, or bf16 inputs with f32
/// accumulation on AMX tiles (used with quantized weights, whose error is far larger).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    F32,
    Bf16,
}

/// Sizes of one attention call. K/V rows for head `h` start at `h * kv_stride * head_dim`.
#[derive(Clone, Copy, Debug)]
pub struct AttentionShape {
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    pub n_queries: usize,
    pub n_keys: usize,
    pub kv_stride: usize,
}

impl AttentionShape {
    /// Query heads per key/value head (grouped-query attention).
    pub fn group(&self) -> usize {
        assert!(
            self.n_kv_heads > 0 && self.n_heads.is_multiple_of(self.n_kv_heads),
            "attention: head grouping"
        );
        self.n_heads / self.n_kv_heads
    }

    /// Panics unless `q`, `k` and `v` hold the rows this shape reads.
    pub(crate) fn check_inputs(&self, q: &[f32], k: &[f32], v: &[f32]) {
        let d = self.head_dim;
        assert!(
            q.len() >= self.n_heads * self.n_queries * d,
            "attention: q too short"
        );
        let kv = self.n_kv_heads * self.kv_stride * d;
        assert!(k.len() >= kv && v.len() >= kv, "attention: k / v too short");
    }
}

/// `q`: [n_heads][n_queries][head_dim]; `k`, `v`: [n_kv_heads][kv_stride][head_dim] (first
/// `n_keys` rows used). `causal_offset = Some(p)`: query `i` sees keys `0..=p+i`.
/// Returns [n_queries][n_heads][head_dim] (token-major, ready for the output projection).
pub fn attention(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    shape: AttentionShape,
    scale: f32,
    causal_offset: Option<usize>,
    precision: Precision,
) -> Vec<f32> {
    if precision == Precision::Bf16
        && shape.n_queries >= BF16_FROM_QUERIES
        && attention_amx::supports(shape.head_dim)
    {
        return attention_amx::attention_tiles(q, k, v, shape, scale, causal_offset);
    }
    if shape.n_queries <= MAX_QUERIES {
        return attention_few_queries(q, k, v, shape, scale, causal_offset);
    }
    let AttentionShape {
        n_heads,
        head_dim: d,
        n_queries,
        n_keys,
        kv_stride,
        ..
    } = shape;
    shape.check_inputs(q, k, v);
    let group = shape.group();
    let blocks_per_head = n_queries.div_ceil(QUERY_BLOCK);
    let results: Vec<(usize, usize, Vec<f32>)> = (0..n_heads * blocks_per_head)
        .into_par_iter()
        .map(|task| {
            let (head, block) = (task / blocks_per_head, task % blocks_per_head);
            let q0 = block * QUERY_BLOCK;
            let rows = QUERY_BLOCK.min(n_queries - q0);
            let visible = match causal_offset {
                Some(p) => (p + q0 + rows).min(n_keys),
                None => n_keys,
            };
            let kv_base = (head / group) * kv_stride * d;
            let q_block = &q[(head * n_queries + q0) * d..(head * n_queries + q0 + rows) * d];
            let mut scores = vec![0.0f32; rows * visible];
            let keys = &k[kv_base..kv_base + visible * d];
            matmul_a_bt(
                q_block,
                keys,
                &mut scores,
                (rows, d, visible),
                visible,
                Threads::Single,
            );
            for (i, row) in scores.chunks_exact_mut(visible).enumerate() {
                let limit = causal_offset.map_or(visible, |p| (p + q0 + i + 1).min(visible));
                softmax_prefix(row, limit, scale);
            }
            let mut out = vec![0.0f32; rows * d];
            let values = &v[kv_base..kv_base + visible * d];
            matmul_a_b(
                &scores,
                values,
                &mut out,
                (rows, visible, d),
                Threads::Single,
            );
            (head, q0, out)
        })
        .collect();
    token_major(results, n_queries, n_heads, d)
}

/// Per-(head, first query) blocks of `[query][d]` rows gathered into the token-major
/// `[query][head][d]` layout the output projection reads.
pub(crate) fn token_major(
    blocks: Vec<(usize, usize, Vec<f32>)>,
    n_queries: usize,
    n_heads: usize,
    d: usize,
) -> Vec<f32> {
    let mut out = vec![0.0f32; n_queries * n_heads * d];
    for (head, q0, block) in blocks {
        for (i, row) in block.chunks_exact(d).enumerate() {
            let dst = ((q0 + i) * n_heads + head) * d;
            out[dst..dst + d].copy_from_slice(row);
        }
    }
    out
}

/// Softmax of `row[..limit] * scale`; entries from `limit` on are masked to zero.
pub(crate) fn softmax_prefix(row: &mut [f32], limit: usize, scale: f32) {
    let (live, masked) = row.split_at_mut(limit);
    masked.fill(0.0);
    let max = live
        .iter()
        .fold(f32::NEG_INFINITY, |m, &s| m.max(s * scale));
    map_in_place(live, |s| exp(s * scale - max));
    let inv = 1.0 / live.iter().sum::<f32>();
    map_in_place(live, |s| s * inv);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct per-query evaluation of the same formula, for comparison.
    fn reference(
        q: &[f32],
        k: &[f32],
        v: &[f32],
        s: AttentionShape,
        scale: f32,
        causal: Option<usize>,
    ) -> Vec<f32> {
        let d = s.head_dim;
        let mut out = vec![0.0; s.n_queries * s.n_heads * d];
        for h in 0..s.n_heads {
            let kvh = h / (s.n_heads / s.n_kv_heads);
            for i in 0..s.n_queries {
                let n = causal.map_or(s.n_keys, |p| (p + i + 1).min(s.n_keys));
                let qi = &q[(h * s.n_queries + i) * d..][..d];
                let logits: Vec<f32> = (0..n)
                    .map(|j| {
                        qi.iter()
                            .zip(&k[(kvh * s.kv_stride + j) * d..][..d])
                            .map(|(a, b)| a * b)
                            .sum::<f32>()
                            * scale
                    })
                    .collect();
                let max = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
                let w: Vec<f32> = logits.iter().map(|l| (l - max).exp()).collect();
                let total: f32 = w.iter().sum();
                for j in 0..n {
                    for t in 0..d {
                        out[(i * s.n_heads + h) * d + t] +=
                            w[j] / total * v[(kvh * s.kv_stride + j) * d + t];
                    }
                }
            }
        }
        out
    }

    fn data(len: usize, seed: usize) -> Vec<f32> {
        (0..len)
            .map(|i| (((i * 7919 + seed * 104729) % 1000) as f32 / 500.0) - 1.0)
            .collect()
    }

    #[test]
    fn grouped_causal_attention_with_cache_offset_matches_reference() {
        let s = AttentionShape {
            n_heads: 4,
            n_kv_heads: 2,
            head_dim: 8,
            n_queries: 70,
            n_keys: 75,
            kv_stride: 80,
        };
        let q = data(s.n_heads * s.n_queries * 8, 1);
        let k = data(s.n_kv_heads * s.kv_stride * 8, 2);
        let v = data(s.n_kv_heads * s.kv_stride * 8, 3);
        let got = attention(&q, &k, &v, s, 0.3, Some(5), Precision::F32);
        let want = reference(&q, &k, &v, s, 0.3, Some(5));
        assert!(got.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-5));
    }

    #[test]
    fn bf16_attention_stays_close_to_the_reference() {
        let s = AttentionShape {
            n_heads: 4,
            n_kv_heads: 2,
            head_dim: 32,
            n_queries: 40,
            n_keys: 47,
            kv_stride: 50,
        };
        let q = data(s.n_heads * s.n_queries * 32, 7);
        let k = data(s.n_kv_heads * s.kv_stride * 32, 8);
        let v = data(s.n_kv_heads * s.kv_stride * 32, 9);
        let want = reference(&q, &k, &v, s, 0.2, Some(7));
        let got = attention(&q, &k, &v, s, 0.2, Some(7), Precision::Bf16);
        assert!(
            got.iter().zip(&want).all(|(a, b)| (a - b).abs() < 2e-2),
            "bf16 attention drifted"
        );
    }

    #[test]
    fn decode_steps_over_a_long_cache_match_reference() {
        for n_queries in 1..=MAX_QUERIES {
            let s = AttentionShape {
                n_heads: 8,
                n_kv_heads: 2,
                head_dim: 40,
                n_queries,
                n_keys: 300,
                kv_stride: 310,
            };
            let q = data(s.n_heads * n_queries * 40, 11);
            let k = data(s.n_kv_heads * s.kv_stride * 40, 12);
            let v = data(s.n_kv_heads * s.kv_stride * 40, 13);
            let offset = Some(300 - n_queries);
            let got = attention(&q, &k, &v, s, 0.15, offset, Precision::F32);
            let want = reference(&q, &k, &v, s, 0.15, offset);
            assert!(got.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-5));
        }
    }

    #[test]
    fn bidirectional_attention_matches_reference() {
        let s = AttentionShape {
            n_heads: 2,
            n_kv_heads: 2,
            head_dim: 4,
            n_queries: 130,
            n_keys: 130,
            kv_stride: 130,
        };
        let q = data(2 * 130 * 4, 4);
        let k = data(2 * 130 * 4, 5);
        let v = data(2 * 130 * 4, 6);
        let got = attention(&q, &k, &v, s, 0.5, None, Precision::F32);
        let want = reference(&q, &k, &v, s, 0.5, None);
        assert!(got.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-5));
    }
}
