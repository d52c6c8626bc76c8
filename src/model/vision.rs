//! Qwen3-VL vision encoder: Conv3d patch embedding (as one matrix product), learned
//! position embeddings resampled bilinearly to the image's grid, pre-norm ViT blocks
//! with 2-D rotary attention, the final 2×2 patch merger and the DeepStack mergers.
//! One image is encoded at a time (images never attend to each other), in one call or a
//! block at a time (`start`, `advance`, `finish`).
use anyhow::{ensure, Result};

use super::config::VisionConfig;
use super::rope::{patch_coordinates, vision_rope_tables, RotaryTables};
use super::weights::{Linear, Vector, Weights};
use crate::kernels::activation::{gelu_erf, gelu_tanh_in_place};
use crate::kernels::attention::{attention, AttentionShape, KeysValues};
use crate::kernels::elementwise::add_in_place;
use crate::kernels::norm::layer_norm;
use crate::kernels::rope::apply_rotary;

/// Merged image tokens for the text decoder, plus one DeepStack feature set per
/// DeepStack layer, each `tokens × out_hidden_size`.
#[derive(Clone, Debug, Default)]
pub struct VisionOutput {
    pub embeddings: Vec<f32>,
    pub deepstack: Vec<Vec<f32>>,
    pub tokens: usize,
}

struct LayerNorm {
    weight: Vector,
    bias: Vector,
    eps: f32,
}

impl LayerNorm {
    fn load(w: &Weights, name: &str, width: usize, eps: f32) -> Result<Self> {
        Ok(Self {
            weight: w.vector(&format!("{name}.weight"), width)?,
            bias: w.vector(&format!("{name}.bias"), width)?,
            eps,
        })
    }

    fn forward(&self, x: &[f32]) -> Vec<f32> {
        let mut out = vec![0.0; x.len()];
        layer_norm(
            x,
            self.weight.as_slice(),
            self.bias.as_slice(),
            self.eps,
            &mut out,
        );
        out
    }
}

/// An image part-way through the encoder (`VisionEncoder::start`).
pub struct VisionProgress {
    x: Vec<f32>,
    patches: usize,
    rope: RotaryTables,
    next_block: usize,
    deepstack: Vec<Vec<f32>>,
}

impl VisionProgress {
    /// Blocks run so far.
    pub fn blocks_done(&self) -> usize {
        self.next_block
    }

    fn tokens(&self, cfg: &VisionConfig) -> usize {
        self.patches / (cfg.spatial_merge_size * cfg.spatial_merge_size)
    }
}

struct VisionBlock {
    norm1: LayerNorm,
    qkv: Linear,
    proj: Linear,
    norm2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
}

/// LayerNorm → fc1 → erf GELU → fc2, normalizing before (`merger`) or after
/// (`deepstack`) the 2×2 concatenation.
struct PatchMerger {
    norm: LayerNorm,
    fc1: Linear,
    fc2: Linear,
}

pub struct VisionEncoder {
    cfg: VisionConfig,
    /// Conv3d kernel flattened to `hidden × (C·T·p·p)` in the pixel_values layout.
    patch_weight: Vec<f32>,
    patch_bias: Vector,
    position_table: Vec<f32>,
    blocks: Vec<VisionBlock>,
    merger: PatchMerger,
    deepstack: Vec<PatchMerger>,
}

impl VisionBlock {
    fn load(w: &Weights, cfg: &VisionConfig) -> Result<Self> {
        let (h, eps) = (cfg.hidden_size, cfg.layer_norm_eps);
        Ok(Self {
            norm1: LayerNorm::load(w, "ln1", h, eps)?,
            qkv: Linear::load(w, "attn_qkv", 3 * h, h, true)?,
            proj: Linear::load(w, "attn_out", h, h, true)?,
            norm2: LayerNorm::load(w, "ln2", h, eps)?,
            fc1: Linear::load(w, "ffn_up", cfg.intermediate_size, h, true)?,
            fc2: Linear::load(w, "ffn_down", h, cfg.intermediate_size, true)?,
        })
    }

    fn forward(&self, x: &mut [f32], n: usize, cfg: &VisionConfig, rope: &RotaryTables) {
        let (cos, sin) = (&rope.cos, &rope.sin);
        let (h, heads, d) = (cfg.hidden_size, cfg.num_heads, cfg.head_dim());
        let qkv = self.qkv.forward(&self.norm1.forward(x), n);
        // Split into head-major q, k, v and rotate q and k.
        let mut split = vec![vec![0.0f32; heads * n * d]; 3];
        for (t, row) in qkv.chunks_exact(3 * h).enumerate() {
            for (part, dst) in split.iter_mut().enumerate() {
                for head in 0..heads {
                    let src = &row[part * h + head * d..part * h + (head + 1) * d];
                    let out = &mut dst[(head * n + t) * d..(head * n + t + 1) * d];
                    out.copy_from_slice(src);
                    if part < 2 {
                        apply_rotary(
                            out,
                            &cos[t * d / 2..(t + 1) * d / 2],
                            &sin[t * d / 2..(t + 1) * d / 2],
                        );
                    }
                }
            }
        }
        let shape = AttentionShape {
            n_heads: heads,
            n_kv_heads: heads,
            head_dim: d,
            n_queries: n,
            n_keys: n,
            kv_stride: n,
        };
        let attended = attention(
            &split[0],
            KeysValues::F32(&split[1], &split[2]),
            shape,
            (d as f32).powf(-0.5),
            None,
            self.qkv.weight.attention_precision(),
        );
        add_in_place(x, &self.proj.forward(&attended, n));
        let mut hidden = self.fc1.forward(&self.norm2.forward(x), n);
        gelu_tanh_in_place(&mut hidden);
        add_in_place(x, &self.fc2.forward(&hidden, n));
    }
}

impl PatchMerger {
    fn load(
        w: &Weights,
        names: [&str; 3],
        cfg: &VisionConfig,
        norm_after_merge: bool,
    ) -> Result<Self> {
        let merged = cfg.merged_dim();
        let norm_width = if norm_after_merge {
            merged
        } else {
            cfg.hidden_size
        };
        Ok(Self {
            norm: LayerNorm::load(w, names[0], norm_width, cfg.layer_norm_eps)?,
            fc1: Linear::load(w, names[1], merged, merged, true)?,
            fc2: Linear::load(w, names[2], cfg.out_hidden_size, merged, true)?,
        })
    }

    /// `x`: patches × hidden in merge-block order; returns tokens × out_hidden.
    fn forward(&self, x: &[f32], tokens: usize) -> Vec<f32> {
        // Rows of 4 consecutive patches are one merged token, so the concatenation is a
        // no-op view and the norm's width alone decides whether it acts per patch
        // (before the merge) or per merged token (after it).
        let merged = self.norm.forward(x);
        let mut hidden = self.fc1.forward(&merged, tokens);
        hidden.iter_mut().for_each(|v| *v = gelu_erf(*v));
        self.fc2.forward(&hidden, tokens)
    }
}

impl VisionEncoder {
    pub fn load(cfg: &VisionConfig, w: &Weights) -> Result<Self> {
        let v = w.pp("v");
        let (h, p, c) = (cfg.hidden_size, cfg.patch_size, cfg.in_channels);
        let halves = [
            v.copy_f32("patch_embd.weight", &[h, c, p, p])?,
            v.copy_f32("patch_embd.weight.1", &[h, c, p, p])?,
        ];
        // pixel_values columns are ordered (channel, t, y, x): interleave the two temporal kernels.
        let mut patch_weight = Vec::with_capacity(h * cfg.patch_dim());
        for o in 0..h {
            for ch in 0..c {
                for half in &halves {
                    patch_weight
                        .extend_from_slice(&half[(o * c + ch) * p * p..(o * c + ch + 1) * p * p]);
                }
            }
        }
        let side = cfg.position_grid_side;
        let blocks = (0..cfg.depth)
            .map(|i| VisionBlock::load(&v.pp(format!("blk.{i}")), cfg))
            .collect::<Result<Vec<_>>>()?;
        let deepstack = cfg
            .deepstack_indexes
            .iter()
            .map(|i| {
                PatchMerger::load(
                    &v.pp(format!("deepstack.{i}")),
                    ["norm", "fc1", "fc2"],
                    cfg,
                    true,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            patch_weight,
            patch_bias: v.vector("patch_embd.bias", h)?,
            position_table: v.copy_f32("position_embd.weight", &[side * side, h])?,
            blocks,
            merger: PatchMerger::load(w, ["v.post_ln", "mm.0", "mm.2"], cfg, false)?,
            deepstack,
            cfg: cfg.clone(),
        })
    }

    pub fn config(&self) -> &VisionConfig {
        &self.cfg
    }

    /// Encodes one image: `pixels` is `grid_h·grid_w × patch_dim` in merge-block order.
    pub fn encode(&self, pixels: &[f32], grid_h: usize, grid_w: usize) -> Result<VisionOutput> {
        let mut progress = self.start(pixels, grid_h, grid_w)?;
        while !self.advance(&mut progress) {}
        Ok(self.finish(progress))
    }

    /// Embeds an image's patches, ready for the blocks (`advance`, then `finish`): a
    /// scheduler runs an image a block at a time between other work.
    pub fn start(&self, pixels: &[f32], grid_h: usize, grid_w: usize) -> Result<VisionProgress> {
        let cfg = &self.cfg;
        let merge = cfg.spatial_merge_size;
        let n = grid_h * grid_w;
        ensure!(
            grid_h.is_multiple_of(merge) && grid_w.is_multiple_of(merge) && n > 0,
            "image grid {grid_h}x{grid_w} is not a positive multiple of the merge size {merge}"
        );
        ensure!(
            pixels.len() == n * cfg.patch_dim(),
            "pixel data has {} values, a {grid_h}x{grid_w} grid needs {}",
            pixels.len(),
            n * cfg.patch_dim()
        );
        let coords = patch_coordinates(grid_h, grid_w, merge);
        let mut x = vec![0.0f32; n * cfg.hidden_size];
        crate::kernels::gemm::matmul_a_bt(
            pixels,
            &self.patch_weight,
            &mut x,
            (n, cfg.patch_dim(), cfg.hidden_size),
            cfg.hidden_size,
            crate::kernels::gemm::Threads::Pool,
        );
        let bias = self.patch_bias.as_slice();
        let positions = self.interpolated_positions(&coords, grid_h, grid_w);
        for (row, pos) in x
            .chunks_exact_mut(cfg.hidden_size)
            .zip(positions.chunks_exact(cfg.hidden_size))
        {
            for ((v, b), p) in row.iter_mut().zip(bias).zip(pos) {
                *v = (*v + b) + p;
            }
        }
        Ok(VisionProgress {
            x,
            patches: n,
            rope: vision_rope_tables(&coords, cfg.head_dim(), cfg.rope_theta),
            next_block: 0,
            deepstack: Vec::with_capacity(self.deepstack.len()),
        })
    }

    /// Runs the image's next block (and the DeepStack merger that reads it); true once
    /// every block has run. Like the decoder's step, the block runs on a compute-pool thread.
    pub fn advance(&self, progress: &mut VisionProgress) -> bool {
        rayon::scope(|_| self.advance_on_pool(progress))
    }

    fn advance_on_pool(&self, progress: &mut VisionProgress) -> bool {
        let cfg = &self.cfg;
        let i = progress.next_block;
        if let Some(block) = self.blocks.get(i) {
            block.forward(&mut progress.x, progress.patches, cfg, &progress.rope);
            let tokens = progress.tokens(cfg);
            for (merger, _) in self
                .deepstack
                .iter()
                .zip(&cfg.deepstack_indexes)
                .filter(|(_, &layer)| layer == i)
            {
                progress.deepstack.push(merger.forward(&progress.x, tokens));
            }
            progress.next_block += 1;
        }
        progress.next_block >= self.blocks.len()
    }

    /// The merged tokens and DeepStack features of an image whose blocks have all run.
    pub fn finish(&self, progress: VisionProgress) -> VisionOutput {
        let tokens = progress.tokens(&self.cfg);
        VisionOutput {
            embeddings: self.merger.forward(&progress.x, tokens),
            deepstack: progress.deepstack,
            tokens,
        }
    }

    /// Blocks an image goes through (`advance` calls).
    pub fn depth(&self) -> usize {
        self.blocks.len()
    }

    /// Learned position embeddings resampled (bilinear, align_corners) from the square
    /// table to the image grid, one row per patch in `coords` order.
    fn interpolated_positions(
        &self,
        coords: &[(usize, usize)],
        grid_h: usize,
        grid_w: usize,
    ) -> Vec<f32> {
        let (side, h) = (self.cfg.position_grid_side, self.cfg.hidden_size);
        let rows: Vec<[(usize, f32); 2]> = (0..grid_h)
            .map(|i| bilinear_taps(i, grid_h, side))
            .collect();
        let cols: Vec<[(usize, f32); 2]> = (0..grid_w)
            .map(|i| bilinear_taps(i, grid_w, side))
            .collect();
        let mut out = vec![0.0f32; coords.len() * h];
        for (dst, &(r, c)) in out.chunks_exact_mut(h).zip(coords) {
            for (tr, wr) in rows[r] {
                for (tc, wc) in cols[c] {
                    let weight = wr * wc;
                    let src = &self.position_table[(tr * side + tc) * h..(tr * side + tc + 1) * h];
                    for (d, s) in dst.iter_mut().zip(src) {
                        *d += s * weight;
                    }
                }
            }
        }
        out
    }
}

/// The two taps and weights along one axis for output index `i` of `size`, sampling a
/// table of `side` entries with align_corners=True, in f32 as transformers does.
fn bilinear_taps(i: usize, size: usize, side: usize) -> [(usize, f32); 2] {
    let src = (i * (side - 1)) as f32 / (size.saturating_sub(1).max(1)) as f32;
    let floor = src.floor();
    let frac = src - floor;
    let last = side - 1;
    let tap0 = (floor as usize).min(last);
    let tap1 = (floor as usize + 1).min(last);
    [
        (tap0, (1.0 - frac.abs()).max(0.0)),
        (tap1, (1.0 - (frac - 1.0).abs()).max(0.0)),
    ]
}

#[cfg(test)]
mod tests {
    use super::bilinear_taps;

    #[test]
    fn bilinear_taps_match_the_spec_worked_rows() {
        assert_eq!(bilinear_taps(0, 8, 48), [(0, 1.0), (1, 0.0)]);
        let [(a, wa), (b, wb)] = bilinear_taps(1, 8, 48);
        assert_eq!((a, b), (6, 7));
        assert!((wa - 0.285_714_15).abs() < 1e-6 && (wb - 0.714_285_85).abs() < 1e-6);
        assert_eq!(bilinear_taps(7, 8, 48), [(47, 1.0), (47, 0.0)]);
    }
}
