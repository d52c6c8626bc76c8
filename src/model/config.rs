//! Model hyperparameters read from GGUF metadata (llama.cpp's `qwen3vl.*` and
//! `clip.vision.*` keys, plus glimpse's special-token keys — or, in llama.cpp's files,
//! the same ids looked up in the stored vocabulary), validated once at load so the
//! forward code can index without re-checking.
use anyhow::{anyhow, ensure, Context, Result};

use super::files::ModelFiles;
use crate::gguf::{keys, GgufFile};

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

/// Token ids the runtime treats specially.
#[derive(Clone, Debug, PartialEq)]
pub struct SpecialTokenIds {
    pub image_pad: u32,
    pub vision_start: u32,
    pub vision_end: u32,
    pub eos: Vec<u32>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ModelConfig {
    pub text: TextConfig,
    pub vision: VisionConfig,
    pub tokens: SpecialTokenIds,
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
        let tokens = special_token_ids(&files.text).context("finding the special token ids")?;
        Ok(Self {
            text,
            vision,
            tokens,
        })
    }
}

/// glimpse's files name the ids; llama.cpp's have the vocabulary, where the Qwen3-VL
/// tokens are found by their text. Generation ends at `<|im_end|>` and `<|endoftext|>`,
/// as Qwen3-VL's `generation_config.json` says, plus the file's own EOS token.
fn special_token_ids(file: &GgufFile) -> Result<SpecialTokenIds> {
    if file.contains(keys::glimpse::IMAGE_TOKEN_ID) {
        return Ok(SpecialTokenIds {
            image_pad: file.get_u32(keys::glimpse::IMAGE_TOKEN_ID)?,
            vision_start: file.get_u32(keys::glimpse::VISION_START_TOKEN_ID)?,
            vision_end: file.get_u32(keys::glimpse::VISION_END_TOKEN_ID)?,
            eos: file.get_u32_array(keys::glimpse::EOS_TOKEN_IDS)?,
        });
    }
    let vocabulary = file
        .get_str_array(keys::tokenizer::TOKENS)
        .context("the file has neither glimpse's token ids nor a vocabulary")?;
    let id_of = |text: &str| vocabulary.iter().position(|t| t == text).map(|i| i as u32);
    let required =
        |text: &str| id_of(text).ok_or_else(|| anyhow!("the vocabulary has no '{text}' token"));
    let mut eos = Vec::new();
    let candidates = [
        file.get_u32_opt(keys::tokenizer::EOS_ID)?,
        id_of("<|im_end|>"),
        id_of("<|endoftext|>"),
    ];
    for id in candidates.into_iter().flatten() {
        if !eos.contains(&id) {
            eos.push(id);
        }
    }
    Ok(SpecialTokenIds {
        image_pad: required("<|image_pad|>")?,
        vision_start: required("<|vision_start|>")?,
        vision_end: required("<|vision_end|>")?,
        eos,
    })
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
