//! Model hyperparameters read from GGUF metadata (llama.cpp's `qwen3vl.*` / `qwen3vlmoe.*`
//! and `clip.vision.*` keys), validated once at load so the forward code can index without
//! re-checking. The special token ids are the chat layer's (`chat::SpecialTokens`).
use anyhow::{ensure, Context, Result};

use super::files::ModelFiles;
use crate::gguf::keys::{text, text_key};
use crate::gguf::GgufFile;

/// The experts of a mixture-of-experts decoder (Qwen3-VL-MoE): every layer's feed-forward
/// is `count` SwiGLU experts of width `feed_forward`, `used` of them per token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExpertsConfig {
    pub count: usize,
    pub used: usize,
    pub feed_forward: usize,
}

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
    /// `Some` for the mixture-of-experts decoder.
    pub experts: Option<ExpertsConfig>,
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

fn text_config(file: &GgufFile) -> Result<TextConfig> {
    let arch = file.architecture()?;
    let key = |name: &str| text_key(arch, name);
    let hidden_size = file.get_u32(&key(text::EMBEDDING_LENGTH))? as usize;
    let num_heads = file.get_u32(&key(text::HEAD_COUNT))? as usize;
    let num_kv_heads = file.get_u32(&key(text::HEAD_COUNT_KV))? as usize;
    let head_dim = file.get_u32(&key(text::KEY_LENGTH))? as usize;
    let sections = file.get_u32_array(&key(text::ROPE_DIMENSION_SECTIONS))?;
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
        num_layers: file.get_u32(&key(text::BLOCK_COUNT))? as usize,
        num_heads,
        num_kv_heads,
        head_dim,
        intermediate_size: file.get_u32(&key(text::FEED_FORWARD_LENGTH))? as usize,
        rms_norm_eps: file.get_f32(&key(text::LAYER_NORM_RMS_EPSILON))?,
        rope_theta: file.get_f32(&key(text::ROPE_FREQ_BASE))?,
        mrope_section,
        vocab_size,
        num_deepstack_layers: file.get_u32(&key(text::N_DEEPSTACK_LAYERS))? as usize,
        tied_embeddings: file.tensor("output.weight").is_err(),
        experts: experts_config(file, arch)?,
    })
}

/// The experts' sizes when the file declares them (`{arch}.expert_count` …).
fn experts_config(file: &GgufFile, arch: &str) -> Result<Option<ExpertsConfig>> {
    let Some(count) = file.get_u32_opt(&text_key(arch, text::EXPERT_COUNT))? else {
        return Ok(None);
    };
    let count = count as usize;
    let used = file.get_u32(&text_key(arch, text::EXPERT_USED_COUNT))? as usize;
    let feed_forward = file.get_u32(&text_key(arch, text::EXPERT_FEED_FORWARD_LENGTH))? as usize;
    ensure!(
        used > 0 && used <= count && feed_forward > 0,
        "{used} experts per token of {count} (expert width {feed_forward}) is not a mixture"
    );
    Ok(Some(ExpertsConfig {
        count,
        used,
        feed_forward,
    }))
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
