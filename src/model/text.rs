//! Qwen3 text decoder of Qwen3-VL: pre-norm blocks with per-head q/k RMSNorm,
//! grouped-query attention with interleaved M-RoPE over the KV cache, a SwiGLU MLP (or, in
//! Qwen3-VL-MoE, a mixture of SwiGLU experts),
//! DeepStack features added after the first layers at image positions, and the
//! (tied or separate) output projection.
use anyhow::{ensure, Result};

use super::config::TextConfig;
use super::kv_cache::{KvCache, KvFormat};
use super::moe::Experts;
use super::rope::{MRope, Position3, RotaryTables};
use super::weights::{Linear, Matrix, Vector, Weights};
use crate::kernels::activation::silu_mul;
use crate::kernels::attention::{attention, AttentionShape, Precision};
use crate::kernels::elementwise::add_in_place;
use crate::kernels::norm::rms_norm;
use crate::kernels::rope::apply_rotary;

struct DecoderLayer {
    /// Position of this block in the stack (its KV-cache layer).
    index: usize,
    attn_norm: Vector,
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    q_norm: Vector,
    k_norm: Vector,
    o_proj: Linear,
    ffn_norm: Vector,
    ffn: FeedForward,
}

/// A block's feed-forward: one SwiGLU MLP, or a mixture of them.
enum FeedForward {
    Dense(Box<SwiGlu>),
    Mixture(Experts),
}

/// `down(silu(gate(x)) · up(x))`.
struct SwiGlu {
    gate_proj: Linear,
    up_proj: Linear,
    down_proj: Linear,
}

impl FeedForward {
    fn load(w: &Weights, cfg: &TextConfig) -> Result<Self> {
        let h = cfg.hidden_size;
        if let Some(experts) = &cfg.experts {
            return Ok(Self::Mixture(Experts::load(w, h, experts)?));
        }
        Ok(Self::Dense(Box::new(SwiGlu {
            gate_proj: Linear::load(w, "ffn_gate", cfg.intermediate_size, h, false)?,
            up_proj: Linear::load(w, "ffn_up", cfg.intermediate_size, h, false)?,
            down_proj: Linear::load(w, "ffn_down", h, cfg.intermediate_size, false)?,
        })))
    }

    fn forward_groups(&self, x: &[f32], groups: &[usize]) -> Vec<f32> {
        match self {
            Self::Dense(mlp) => {
                let [mut gate, up] =
                    Linear::forward_groups_together([&mlp.gate_proj, &mlp.up_proj], x, groups);
                silu_mul(&mut gate, &up);
                mlp.down_proj.forward_groups(&gate, groups)
            }
            Self::Mixture(experts) => experts.forward_groups(x, groups),
        }
    }
}

/// DeepStack features for one forward pass: `rows[i]` is the batch row of image token
/// `i`, and `features[l]` holds one `hidden`-wide row per image token for layer `l`.
pub struct DeepstackInput<'a> {
    pub rows: &'a [usize],
    pub features: &'a [Vec<f32>],
}

pub struct TextModel {
    cfg: TextConfig,
    embed_tokens: Matrix,
    layers: Vec<DecoderLayer>,
    final_norm: Vector,
    lm_head: Option<Matrix>,
    rope: MRope,
    /// Prompt rows per part (`WeightMatrix::prompt_chunk_rows` of the layers' weights).
    chunk: usize,
    /// `WeightMatrix::efficient_rows` of the layers' weights.
    efficient_rows: usize,
    /// The attention arithmetic beside these weights, chosen once at load.
    precision: Precision,
    /// Element type of the KV caches this model makes.
    kv_format: KvFormat,
}

impl DecoderLayer {
    fn load(w: &Weights, index: usize, cfg: &TextConfig) -> Result<Self> {
        let (h, hd) = (cfg.hidden_size, cfg.head_dim);
        let (q_width, kv_width) = (cfg.num_heads * hd, cfg.num_kv_heads * hd);
        Ok(Self {
            index,
            attn_norm: w.vector("attn_norm.weight", h)?,
            q_proj: Linear::load(w, "attn_q", q_width, h, false)?,
            k_proj: Linear::load(w, "attn_k", kv_width, h, false)?,
            v_proj: Linear::load(w, "attn_v", kv_width, h, false)?,
            q_norm: w.vector("attn_q_norm.weight", hd)?,
            k_norm: w.vector("attn_k_norm.weight", hd)?,
            o_proj: Linear::load(w, "attn_output", h, q_width, false)?,
            ffn_norm: w.vector("ffn_norm.weight", h)?,
            ffn: FeedForward::load(w, cfg)?,
        })
    }

    /// One block over a batch of sequences' new rows (`parts`, see `Part`); their keys and
    /// values are appended to each sequence's cache.
    fn forward(
        &self,
        x: &mut [f32],
        parts: &[Part],
        segments: &mut [Segment],
        cfg: &TextConfig,
        rope: &RotaryTables,
        precision: Precision,
    ) {
        let (index, cos, sin) = (self.index, &rope.cos, &rope.sin);
        let (hd, eps) = (cfg.head_dim, cfg.rms_norm_eps);
        let groups: Vec<usize> = parts.iter().map(|p| p.rows.len()).collect();
        let mut normed = x.to_vec();
        rms_norm(&mut normed, self.attn_norm.as_slice(), eps);
        let [mut q, mut k, v] = Linear::forward_groups_together(
            [&self.q_proj, &self.k_proj, &self.v_proj],
            &normed,
            &groups,
        );
        rms_norm(&mut q, self.q_norm.as_slice(), eps);
        rms_norm(&mut k, self.k_norm.as_slice(), eps);
        let pairs = hd / 2;
        let (q_width, kv_width) = (cfg.num_heads * hd, cfg.num_kv_heads * hd);
        for (t, (q_row, k_row)) in q
            .chunks_exact_mut(q_width)
            .zip(k.chunks_exact_mut(kv_width))
            .enumerate()
        {
            let (c, s) = (
                &cos[t * pairs..(t + 1) * pairs],
                &sin[t * pairs..(t + 1) * pairs],
            );
            q_row
                .chunks_exact_mut(hd)
                .chain(k_row.chunks_exact_mut(hd))
                .for_each(|head| apply_rotary(head, c, s));
        }
        let mut attended = vec![0.0f32; q.len()];
        for part in parts {
            let (rows, n) = (part.rows.clone(), part.rows.len());
            let cache = &mut *segments[part.segment].cache;
            let past = cache.len() + part.offset;
            cache.write(
                index,
                part.offset,
                &k[rows.start * kv_width..rows.end * kv_width],
                &v[rows.start * kv_width..rows.end * kv_width],
                n,
            );
            let q_heads = to_head_major(
                &q[rows.start * q_width..rows.end * q_width],
                n,
                cfg.num_heads,
                hd,
            );
            let shape = AttentionShape {
                n_heads: cfg.num_heads,
                n_kv_heads: cfg.num_kv_heads,
                head_dim: hd,
                n_queries: n,
                n_keys: past + n,
                kv_stride: cache.capacity(),
            };
            attended[rows.start * q_width..rows.end * q_width].copy_from_slice(&attention(
                &q_heads,
                cache.layer(index),
                shape,
                (hd as f32).powf(-0.5),
                Some(past),
                precision,
            ));
        }
        add_in_place(x, &self.o_proj.forward_groups(&attended, &groups));

        let mut normed = x.to_vec();
        rms_norm(&mut normed, self.ffn_norm.as_slice(), eps);
        add_in_place(x, &self.ffn.forward_groups(&normed, &groups));
    }
}

/// One sequence's new rows in a batched decoder pass: `positions.len()` consecutive rows
/// of the batch, whose keys and values extend `cache`.
pub struct Segment<'a> {
    pub positions: &'a [Position3],
    pub cache: &'a mut KvCache,
}

/// A piece of a segment that gets its own products and attention call: segments are cut
/// where the cache position is a multiple of the prompt chunk, so a sequence's results
/// do not depend on how its prompt was split into passes (at multiples of the chunk) nor
/// on which other sequences share the pass.
struct Part {
    segment: usize,
    /// Rows of the batch.
    rows: std::ops::Range<usize>,
    /// Rows of the segment before this part.
    offset: usize,
}

/// Cuts `segments` into parts at cache positions that are multiples of `chunk`.
fn parts_of(segments: &[Segment], chunk: usize) -> Vec<Part> {
    let mut parts = Vec::new();
    let mut row = 0;
    for (segment, s) in segments.iter().enumerate() {
        let (len, mut offset) = (s.positions.len(), 0);
        while offset < len {
            let position = s.cache.len() + offset;
            let n = (chunk - position % chunk).min(len - offset);
            parts.push(Part {
                segment,
                rows: row..row + n,
                offset,
            });
            offset += n;
            row += n;
        }
    }
    parts
}

impl TextModel {
    pub fn load(cfg: &TextConfig, w: &Weights) -> Result<Self> {
        let (h, vocab) = (cfg.hidden_size, cfg.vocab_size);
        let layers = (0..cfg.num_layers)
            .map(|i| DecoderLayer::load(&w.pp(format!("blk.{i}")), i, cfg))
            .collect::<Result<Vec<_>>>()?;
        let lm_head = if cfg.tied_embeddings {
            None
        } else {
            Some(w.vocabulary_matrix("output.weight", vocab, h)?)
        };
        // GLIMPSE_PROMPT_CHUNK overrides the kernels' choice of both (tests cut short
        // prompts into several passes).
        let chunk_override = std::env::var("GLIMPSE_PROMPT_CHUNK")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|&n| n > 0);
        let weight = layers.first().map(|l| l.q_proj.weight.view());
        let chunk = chunk_override
            .or_else(|| weight.map(|w| w.prompt_chunk_rows()))
            .unwrap_or(1);
        let efficient_rows = chunk_override
            .or_else(|| weight.map(|w| w.efficient_rows()))
            .unwrap_or(1);
        let precision = layers
            .first()
            .map_or(Precision::F32, |l| l.q_proj.weight.attention_precision());
        Ok(Self {
            embed_tokens: w.vocabulary_matrix("token_embd.weight", vocab, h)?,
            chunk,
            efficient_rows,
            layers,
            final_norm: w.vector("output_norm.weight", h)?,
            lm_head,
            rope: MRope::new(cfg.head_dim, cfg.rope_theta, cfg.mrope_section),
            cfg: cfg.clone(),
            precision,
            kv_format: KvFormat::beside(precision)?,
        })
    }

    pub fn config(&self) -> &TextConfig {
        &self.cfg
    }

    pub fn new_cache(&self) -> KvCache {
        KvCache::new(
            self.cfg.num_layers,
            self.cfg.num_kv_heads,
            self.cfg.head_dim,
            self.kv_format,
        )
    }

    /// Embedding rows of `ids`, `ids.len() × hidden`.
    pub fn embed(&self, ids: &[u32]) -> Result<Vec<f32>> {
        let h = self.cfg.hidden_size;
        let mut out = vec![0.0; ids.len() * h];
        for (row, &id) in out.chunks_exact_mut(h).zip(ids) {
            ensure!(
                (id as usize) < self.cfg.vocab_size,
                "token id {id} is outside the vocabulary ({})",
                self.cfg.vocab_size
            );
            self.embed_tokens.view().rows_into(id as usize, row);
        }
        Ok(out)
    }

    /// Prompt tokens that are computed together (see `Segment`): a prompt split into
    /// passes at multiples of this gives the same results as in one pass.
    pub fn prompt_chunk(&self) -> usize {
        self.chunk
    }

    /// Prompt tokens a pass should carry at least for the products to run at speed
    /// (`WeightMatrix::efficient_rows` of the layers' weights).
    pub fn efficient_prompt_rows(&self) -> usize {
        self.efficient_rows
    }

    /// Runs the decoder over `x` (`positions.len() × hidden` input embeddings) appended
    /// after the cached positions; `x` becomes the last layer's output (before the final norm).
    pub fn forward(
        &self,
        x: &mut [f32],
        positions: &[Position3],
        cache: &mut KvCache,
        deepstack: Option<&DeepstackInput>,
    ) -> Result<()> {
        self.forward_batch(x, &mut [Segment { positions, cache }], deepstack)
    }

    /// Runs the decoder over several sequences at once: `x` holds each segment's input
    /// embeddings in turn, and becomes the last layer's output. Every weight is read once
    /// for all of them; each sequence gets the result it would get alone.
    pub fn forward_batch(
        &self,
        x: &mut [f32],
        segments: &mut [Segment],
        deepstack: Option<&DeepstackInput>,
    ) -> Result<()> {
        let h = self.cfg.hidden_size;
        let n: usize = segments.iter().map(|s| s.positions.len()).sum();
        ensure!(
            x.len() == n * h,
            "decoder input has {} values for {n} positions of width {h}",
            x.len()
        );
        if let Some(ds) = deepstack {
            ensure!(
                ds.features.len() <= self.layers.len(),
                "more DeepStack feature sets than decoder layers"
            );
            for f in ds.features {
                ensure!(
                    f.len() == ds.rows.len() * h,
                    "DeepStack features do not match the image token count"
                );
            }
            ensure!(
                ds.rows.iter().all(|&r| r < n),
                "DeepStack row outside the batch"
            );
        }
        let positions: Vec<Position3> = segments
            .iter()
            .flat_map(|s| s.positions.iter().copied())
            .collect();
        let rope = self.rope.tables(&positions);
        for segment in segments.iter_mut() {
            segment.cache.reserve(segment.positions.len());
        }
        let parts = parts_of(segments, self.chunk);
        for (i, layer) in self.layers.iter().enumerate() {
            layer.forward(x, &parts, segments, &self.cfg, &rope, self.precision);
            if let Some(features) =
                deepstack.and_then(|ds| ds.features.get(i).map(|f| (ds.rows, f)))
            {
                for (&row, feature) in features.0.iter().zip(features.1.chunks_exact(h)) {
                    add_in_place(&mut x[row * h..(row + 1) * h], feature);
                }
            }
        }
        for segment in segments.iter_mut() {
            segment.cache.advance(segment.positions.len());
        }
        Ok(())
    }

    /// Logits over the vocabulary for one hidden state (final norm + output projection).
    pub fn logits(&self, hidden: &[f32]) -> Vec<f32> {
        self.logits_rows(hidden)
    }

    /// Logits for each of several hidden states (one per sequence), `rows × vocab`: the
    /// output projection is read once for all, each row gets the result it gets alone.
    pub fn logits_rows(&self, hidden: &[f32]) -> Vec<f32> {
        let mut normed = hidden.to_vec();
        rms_norm(
            &mut normed,
            self.final_norm.as_slice(),
            self.cfg.rms_norm_eps,
        );
        let singles = vec![1; hidden.len() / self.cfg.hidden_size];
        self.lm_head
            .as_ref()
            .unwrap_or(&self.embed_tokens)
            .forward_groups(&normed, &singles)
    }
}

/// `[n][heads][d]` → `[heads][n][d]`.
fn to_head_major(x: &[f32], n: usize, heads: usize, d: usize) -> Vec<f32> {
    let mut out = vec![0.0; x.len()];
    for t in 0..n {
        for head in 0..heads {
            out[(head * n + t) * d..][..d].copy_from_slice(&x[(t * heads + head) * d..][..d]);
        }
    }
    out
}
