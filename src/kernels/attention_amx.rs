//! Attention on AMX tiles (bf16 inputs, f32 accumulation), flash-style per block of 32
//! queries: each head's keys and transposed values are packed once into the tiles' pair
//! layout, then every (head, query block) task computes its score rows, the masked
//! softmax and the product with the values while they stay in cache.
use rayon::prelude::*;

use super::amx::{TileOperands, Tiles, K_STEP, TILE};
use super::attention::{softmax_prefix, token_major, AttentionShape, CacheElement};
use super::dense_bf16::{pack_pairs, to_bf16};
use super::scratch::Scratch;

/// Queries (and keys) per tile pair.
const BLOCK: usize = 2 * TILE;

/// Whether `attention_tiles` handles this head size.
pub fn supports(head_dim: usize) -> bool {
    head_dim.is_multiple_of(BLOCK) && super::amx::amx_available()
}

/// Same contract as `attention::attention` (q head-major, k/v `[kv_head][kv_stride][d]`,
/// output token-major); requires `supports(head_dim)`.
pub fn attention_tiles<E: CacheElement>(
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
    assert!(supports(d), "attention_tiles: head size or CPU");
    let group = shape.group();
    let keys_padded = n_keys.div_ceil(BLOCK) * BLOCK;
    let key_panels = keys_padded / BLOCK;
    // Per KV head: keys as B panels over d, and values transposed as B panels over keys.
    let (key_words, value_words) = (keys_padded * d / 2, d * keys_padded / 2);
    let packed: Vec<(Vec<u32>, Vec<u32>)> = (0..n_kv_heads)
        .into_par_iter()
        .map(|h| {
            let base = h * kv_stride * d;
            let mut rows = vec![0u16; keys_padded * d];
            let mut buffer = Scratch::<f32>::new(E::scratch_len(n_keys * d));
            let head_keys = E::as_f32(&k[base..base + n_keys * d], &mut buffer);
            to_bf16(head_keys, &mut rows[..n_keys * d]);
            let mut keys = vec![0u32; key_words];
            for (panel, dst) in rows
                .chunks_exact(BLOCK * d)
                .zip(keys.chunks_exact_mut(BLOCK * d / 2))
            {
                pack_pairs(panel, d, dst);
            }
            let mut transposed = vec![0.0f32; d * keys_padded];
            let head_values = E::as_f32(&v[base..base + n_keys * d], &mut buffer);
            for (j, row) in head_values.chunks_exact(d).enumerate() {
                for (t, &x) in row.iter().enumerate() {
                    transposed[t * keys_padded + j] = x;
                }
            }
            let mut rows = vec![0u16; d * keys_padded];
            to_bf16(&transposed, &mut rows);
            let mut values = vec![0u32; value_words];
            for (panel, dst) in rows
                .chunks_exact(BLOCK * keys_padded)
                .zip(values.chunks_exact_mut(BLOCK * keys_padded / 2))
            {
                pack_pairs(panel, keys_padded, dst);
            }
            (keys, values)
        })
        .collect();
    let query_blocks = n_queries.div_ceil(BLOCK);
    let blocks: Vec<(usize, usize, Vec<f32>)> = (0..n_heads * query_blocks)
        .into_par_iter()
        .map(|task| {
            let (head, block) = (task / query_blocks, task % query_blocks);
            let (keys, values) = &packed[head / group];
            let q0 = block * BLOCK;
            let rows = BLOCK.min(n_queries - q0);
            let mut q_bf16 = Scratch::<u16>::new(BLOCK * d);
            q_bf16.fill(0);
            to_bf16(
                &q[(head * n_queries + q0) * d..(head * n_queries + q0 + rows) * d],
                &mut q_bf16[..rows * d],
            );
            let mut scores = Scratch::<f32>::new(BLOCK * keys_padded);
            let mut probs = Scratch::<u16>::new(BLOCK * keys_padded);
            let mut out = vec![0.0f32; BLOCK * d];
            // SAFETY: AMX is available (`supports`).
            let tiles = unsafe { Tiles::configure() };
            let visible = causal_offset.map_or(n_keys, |p| (p + q0 + rows).min(n_keys));
            for panel in 0..visible.div_ceil(BLOCK).min(key_panels) {
                let base = panel * BLOCK * d / 2;
                let op = TileOperands {
                    a: q_bf16.as_ptr() as *const u8,
                    a_stride: d * 2,
                    b: [
                        keys[base..].as_ptr() as *const u8,
                        keys[base + (d / K_STEP) * TILE * TILE..].as_ptr() as *const u8,
                    ],
                    k_steps: d / K_STEP,
                    c: scores[panel * BLOCK..].as_mut_ptr() as *mut u8,
                    c_stride: keys_padded * 4,
                    accumulate: false,
                };
                // SAFETY: A is 32 rows of d bf16, each B block d/32 tiles of 1 KiB, and C
                // 32 rows × 32 f32 inside `scores` (row stride keys_padded).
                unsafe { tiles.product_2x2(&op) };
            }
            let visible_padded = visible.div_ceil(BLOCK) * BLOCK;
            for (i, (s, p)) in scores
                .chunks_exact_mut(keys_padded)
                .zip(probs.chunks_exact_mut(keys_padded))
                .enumerate()
            {
                let limit = causal_offset.map_or(n_keys, |past| (past + q0 + i + 1).min(n_keys));
                softmax_prefix(&mut s[..visible], limit.min(visible), scale);
                s[visible..visible_padded].fill(0.0);
                to_bf16(&s[..visible_padded], &mut p[..visible_padded]);
            }
            let steps = keys_padded / K_STEP;
            let op = TileOperands {
                a: probs.as_ptr() as *const u8,
                a_stride: keys_padded * 2,
                b: [std::ptr::null(); 2],
                k_steps: visible_padded / K_STEP,
                c: std::ptr::null_mut(),
                c_stride: d * 4,
                accumulate: false,
            };
            for panel in 0..d / BLOCK {
                let base = panel * BLOCK * keys_padded / 2;
                let op = TileOperands {
                    b: [
                        values[base..].as_ptr() as *const u8,
                        values[base + steps * TILE * TILE..].as_ptr() as *const u8,
                    ],
                    c: out[panel * BLOCK..].as_mut_ptr() as *mut u8,
                    ..op
                };
                // SAFETY: A is 32 rows of keys_padded bf16 of which the first
                // visible_padded are read, each B block holds `steps` tiles, and C is
                // 32 rows × 32 f32 of `out` (row stride d).
                unsafe { tiles.product_2x2(&op) };
            }
            out.truncate(rows * d);
            (head, q0, out)
        })
        .collect();
    token_major(blocks, n_queries, n_heads, d)
}
