//! Model hyperparameters read from GGUF metadata (llama.cpp's `qwen3vl.*` and
//! `clip.vision.*` keys), validated once at load so the forward code can index without
//! re-checking. The special token ids are the chat layer's (`chat::SpecialTokens`).
use anyhow::{ensure, Context, Result};

use super::files::ModelFiles;
use crate::gguf::GgufFile;

/// The Qwen3 text decoder.
#[derive(Clone, Debug, PartialEq)]
pub struct TextConfig {
    pub hidden_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub intermediate_size: usize,
    pub rms_norm_eps: f32,
    pub rope_theta: f32,
    /// Rotary pairs driven by the T, H and W position (interleaved layout).
    pub mrope_section: [usize; 3],
    pub vocab_size: usize,
    /// Number of decoder layers that receive DeepStack features (layers 0..n).
    pub num_deepstack_layers: usize,
    pub tied_embeddings: bool,
}

/// The ViT vision encoder and its mergers.
#[derive(Clone, Debug, PartialEq)]
pub struct VisionConfig {
    pub hidden_size: usize,
    pub depth: usize,
    pub num_heads: usize,
    pub intermediate_size: usize,
    pub patch_size: usize,
    pub temporal_patch_size: usize,
    pub spatial_merge_size: usize,
    /// Width of the merged tokens handed to the text decoder.
    pub out_hidden_size: usize,
    /// Side of the square learned position-embedding grid.
    pub position_grid_side: usize,
    /// Vision blocks (0-based) whose output feeds a DeepStack merger, ascending.
    pub deepstack_indexes: Vec<usize>,
    pub layer_norm_eps: f32,
    pub rope_theta: f32,
    pub in_channels: usize,
}

impl VisionConfig {
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_heads
    }

    /// Length of one flattened patch: channels × temporal × patch × patch.
    pub fn patch_dim(&self) -> usize {
        self.in_channels * self.temporal_patch_size * self.patch_size * self.patch_size
    }

    /// Width of the 2×2-merged patch vector fed to the mergers.
    pub fn merged_dim(&self) -> usize {
        self.hidden_size * self.spatial_merge_size * self.spatial_merge_size
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ModelConfig {
    pub text: TextConfig,
    pub vision: VisionConfig,
}

const ARCH: &str = "qwen3vl";

impl ModelConfig {
    pub fn from_gguf(files: &ModelFiles) -> Result<Self> {
        let text = text_config(&files.text).context("reading the text model hyperparameters")?;
        let vision =
            vision_config(&files.vision).context("reading the vision encoder hyperparameters")?;
        ensure!(
            vision.out_hidden_size == text.hidden_size,
            "vision projection width {} differs from the text hidden size {}",
            vision.out_hidden_size,
            text.hidden_size
        );
        ensure!(
            vision.deepstack_indexes.len() == text.num_deepstack_layers,
            "{} DeepStack vision layers but qwen3vl.n_deepstack_layers = {}",
            vision.deepstack_indexes.len(),
            text.num_deepstack_layers
        );
        Ok(Self { text, vision })
    }
}

fn key(name: &str) -> String {
    format!("{ARCH}.{name}")
}

fn text_config(file: &GgufFile) -> Result<TextConfig> {
    let hidden_size = file.get_u32(&key("embedding_length"))? as usize;
    let num_heads = file.get_u32(&key("attention.head_count"))? as usize;
    let num_kv_heads = file.get_u32(&key("attention.head_count_kv"))? as usize;
    let head_dim = file.get_u32(&key("attention.key_length"))? as usize;
    let sections = file.get_u32_array(&key("rope.dimension_sections"))?;
    ensure!(
        sections.len() >= 3,
        "rope.dimension_sections has {} entries, need 3",
        sections.len()
    );
    let mrope_section = [
        sections[0] as usize,
        sections[1] as usize,
        sections[2] as usize,
    ];
    ensure!(
        num_heads > 0 && num_kv_heads > 0 && num_heads.is_multiple_of(num_kv_heads),
        "{num_heads} attention heads cannot be grouped over {num_kv_heads} KV heads"
    );
    ensure!(
        head_dim.is_multiple_of(2) && head_dim > 0,
        "head_dim {head_dim} must be even"
    );
    ensure!(
        mrope_section.iter().sum::<usize>() * 2 == head_dim,
        "rope sections {mrope_section:?} do not cover head_dim {head_dim}"
    );
    let vocab_size = file
        .tensor("token_embd.weight")?
        .shape
        .first()
        .copied()
        .unwrap_or(0);
    Ok(TextConfig {
        hidden_size,
        num_layers: file.get_u32(&key("block_count"))? as usize,
        num_heads,
        num_kv_heads,
        head_dim,
        intermediate_size: file.get_u32(&key("feed_forward_length"))? as usize,
        rms_norm_eps: file.get_f32(&key("attention.layer_norm_rms_epsilon"))?,
        rope_theta: file.get_f32(&key("rope.freq_base"))?,
        mrope_section,
        vocab_size,
        num_deepstack_layers: file.get_u32(&key("n_deepstack_layers"))? as usize,
        tied_embeddings: file.tensor("output.weight").is_err(),
    })
}

fn vision_config(file: &GgufFile) -> Result<VisionConfig> {
    let hidden_size = file.get_u32("clip.vision.embedding_length")? as usize;
    let num_heads = file.get_u32("clip.vision.attention.head_count")? as usize;
    ensure!(
        num_heads > 0 && hidden_size.is_multiple_of(num_heads),
        "vision hidden size {hidden_size} is not divisible by {num_heads} heads"
    );
    ensure!(
        (hidden_size / num_heads).is_multiple_of(4),
        "vision head_dim {} must be a multiple of 4 for 2-D rotary",
        hidden_size / num_heads
    );
    let depth = file.get_u32("clip.vision.block_count")? as usize;
    let deepstack_flags = file.get_bool_array("clip.vision.is_deepstack_layers")?;
    ensure!(
        deepstack_flags.len() == depth,
        "clip.vision.is_deepstack_layers has {} entries for {depth} blocks",
        deepstack_flags.len()
    );
    let positions = file
        .tensor("v.position_embd.weight")?
        .shape
        .first()
        .copied()
        .unwrap_or(0);
    let position_grid_side = (positions as f64).sqrt() as usize;
    ensure!(
        position_grid_side >= 1 && position_grid_side * position_grid_side == positions,
        "v.position_embd.weight has {positions} rows, not a square grid"
    );
    let spatial_merge_size = file.get_u32("clip.vision.spatial_merge_size")? as usize;
    ensure!(
        spatial_merge_size == 2,
        "spatial_merge_size {spatial_merge_size} is not supported (Qwen3-VL uses 2)"
    );
    Ok(VisionConfig {
        hidden_size,
        depth,
        num_heads,
        intermediate_size: file.get_u32("clip.vision.feed_forward_length")? as usize,
        patch_size: file.get_u32("clip.vision.patch_size")? as usize,
        temporal_patch_size: 2,
        spatial_merge_size,
        out_hidden_size: file.get_u32("clip.vision.projection_dim")? as usize,
        position_grid_side,
        deepstack_indexes: deepstack_flags
            .iter()
            .enumerate()
            .filter(|(_, &on)| on)
            .map(|(i, _)| i)
            .collect(),
        layer_norm_eps: file.get_f32("clip.vision.attention.layer_norm_epsilon")?,
        rope_theta: 10_000.0,
        in_channels: 3,
    })
}
