//! Scaled dot-product attention over head-major Q/K/V, with grouped-query heads and
//! an optional causal mask. Work is split over (head, block of queries) on the rayon
//! pool; each block holds its score rows only, so memory stays O(block × keys). Keys and
//! values come as f32 or f16 (`KeysValues`, `CacheElement`): the decode kernel reads f16
//! rows as they are, the prompt paths widen each task's rows into a scratch buffer.
use half::f16;
use rayon::prelude::*;

use super::attention_amx;
use super::attention_decode::{attention_few_queries, MAX_QUERIES};
use super::dense_dot::{DenseElement, SimdLoads};
use super::f16_convert::widen;
use super::fast_math::{exp, map_in_place};
use super::gemm::{matmul_a_b, matmul_a_bt, Threads};
use super::scratch::Scratch;

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

    /// Panics unless `q` and keys / values of these lengths hold the rows this shape reads.
    pub(crate) fn check_inputs(&self, q: &[f32], k_len: usize, v_len: usize) {
        let d = self.head_dim;
        assert!(
            q.len() >= self.n_heads * self.n_queries * d,
            "attention: q too short"
        );
        let kv = self.n_kv_heads * self.kv_stride * d;
        assert!(k_len >= kv && v_len >= kv, "attention: k / v too short");
    }
}

/// Keys and values, `[n_kv_heads][kv_stride][head_dim]` each, in the element type they are
/// stored in (a KV cache holds f16 beside block-quantized weights).
#[derive(Clone, Copy, Debug)]
pub enum KeysValues<'a> {
    F32(&'a [f32], &'a [f32]),
    F16(&'a [f16], &'a [f16]),
}

/// How the attention kernels read a key / value element: f32 as stored, f16 widened
/// (plain functions, no closures, so they compile inside the kernels' SIMD features).
pub trait CacheElement: DenseElement + SimdLoads {
    /// Whether the x86 decode paths read these values through `SimdLoads` inside the dots
    /// (f16); f32 rows take the plain loops, compiled with the path's features.
    const FUSED: bool;
    /// Rows of `d` values the portable decode path reads as one piece.
    fn piece_rows(d: usize) -> usize;
    /// Scratch values `as_f32` needs for `values` values.
    fn scratch_len(values: usize) -> usize;
    /// `rows` as f32: the rows themselves, or widened into `buffer` (`scratch_len` long).
    fn as_f32<'a>(rows: &'a [Self], buffer: &'a mut [f32]) -> &'a [f32];
}

impl CacheElement for f32 {
    const FUSED: bool = false;
    #[inline(always)]
    fn piece_rows(_d: usize) -> usize {
        usize::MAX
    }
    #[inline(always)]
    fn scratch_len(_values: usize) -> usize {
        0
    }
    #[inline(always)]
    fn as_f32<'a>(rows: &'a [f32], _buffer: &'a mut [f32]) -> &'a [f32] {
        rows
    }
}

/// f16 values widened per piece on the portable decode path: 8 K values (32 KiB of f32),
/// still in L1 when the dots read them.
const F16_PIECE_VALUES: usize = 8192;

impl CacheElement for f16 {
    const FUSED: bool = true;
    #[inline(always)]
    fn piece_rows(d: usize) -> usize {
        (F16_PIECE_VALUES / d.max(1)).max(1)
    }
    #[inline(always)]
    fn scratch_len(values: usize) -> usize {
        values
    }
    #[inline(always)]
    fn as_f32<'a>(rows: &'a [f16], buffer: &'a mut [f32]) -> &'a [f32] {
        let buffer = &mut buffer[..rows.len()];
        widen(rows, buffer);
        buffer
    }
}

/// `q`: [n_heads][n_queries][head_dim]; keys and values: [n_kv_heads][kv_stride][head_dim]
/// (first `n_keys` rows used). `causal_offset = Some(p)`: query `i` sees keys `0..=p+i`.
/// Returns [n_queries][n_heads][head_dim] (token-major, ready for the output projection).
pub fn attention(
    q: &[f32],
    kv: KeysValues,
    shape: AttentionShape,
    scale: f32,
    causal_offset: Option<usize>,
    precision: Precision,
) -> Vec<f32> {
    match kv {
        KeysValues::F32(k, v) => attention_over(q, k, v, shape, scale, causal_offset, precision),
        KeysValues::F16(k, v) => attention_over(q, k, v, shape, scale, causal_offset, precision),
    }
}

/// Whether the bf16 tile kernel takes this call.
fn uses_tiles(shape: AttentionShape, precision: Precision) -> bool {
    precision == Precision::Bf16
        && shape.n_queries >= BF16_FROM_QUERIES
        && attention_amx::supports(shape.head_dim)
}

/// `attention` over keys and values of one element type.
fn attention_over<E: CacheElement>(
    q: &[f32],
    k: &[E],
    v: &[E],
    shape: AttentionShape,
    scale: f32,
    causal_offset: Option<usize>,
    precision: Precision,
) -> Vec<f32> {
    if uses_tiles(shape, precision) {
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
    shape.check_inputs(q, k.len(), v.len());
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
            let mut buffer = Scratch::<f32>::new(E::scratch_len(visible * d));
            let keys = E::as_f32(&k[kv_base..kv_base + visible * d], &mut buffer);
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
            let values = E::as_f32(&v[kv_base..kv_base + visible * d], &mut buffer);
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
        let got = attention(&q, KeysValues::F32(&k, &v), s, 0.3, Some(5), Precision::F32);
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
        let got = attention(
            &q,
            KeysValues::F32(&k, &v),
            s,
            0.2,
            Some(7),
            Precision::Bf16,
        );
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
            let got = attention(&q, KeysValues::F32(&k, &v), s, 0.15, offset, Precision::F32);
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
        let got = attention(&q, KeysValues::F32(&k, &v), s, 0.5, None, Precision::F32);
        let want = reference(&q, &k, &v, s, 0.5, None);
        assert!(got.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-5));
    }

    #[test]
    fn f16_keys_and_values_give_the_results_of_their_widened_values() {
        let widen = |x: &[f16]| x.iter().map(|v| v.to_f32()).collect::<Vec<f32>>();
        // Decode steps (read as stored) and a prompt block (widened once), f32 and bf16
        // arithmetic; a stride past the keys, as in a cache.
        for (n_queries, precision) in [
            (1, Precision::F32),
            (3, Precision::Bf16),
            (40, Precision::F32),
            (40, Precision::Bf16),
        ] {
            let s = AttentionShape {
                n_heads: 4,
                n_kv_heads: 2,
                head_dim: 64,
                n_queries,
                n_keys: 300,
                kv_stride: 320,
            };
            let q = data(s.n_heads * n_queries * 64, 21);
            let half_rows = |seed| {
                data(s.n_kv_heads * s.kv_stride * 64, seed)
                    .iter()
                    .map(|&v| f16::from_f32(v))
                    .collect::<Vec<f16>>()
            };
            let (k, v) = (half_rows(22), half_rows(23));
            let offset = Some(300 - n_queries);
            let got = attention(&q, KeysValues::F16(&k, &v), s, 0.125, offset, precision);
            let (k32, v32) = (widen(&k), widen(&v));
            let want = attention(&q, KeysValues::F32(&k32, &v32), s, 0.125, offset, precision);
            assert_eq!(got.len(), want.len());
            let worst = got
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(
                worst <= 1e-6,
                "{n_queries} queries, {precision:?}: off by {worst}"
            );
        }
    }
}
