//! The Qwen3-VL network: configuration read from GGUF metadata, the vision encoder
//! (ViT + patch merger + DeepStack mergers), the Qwen3 text decoder with interleaved
//! M-RoPE, and the KV cache it writes. Weights are zero-copy views into the mapped file.
mod anon_buffer;
pub mod config;
pub mod files;
pub mod kv_cache;
mod moe;
mod requantize;
pub mod rope;
mod step;
pub mod text;
pub mod vision;
pub mod weights;

use anyhow::{Context, Result};

pub use config::{ModelConfig, TextConfig, VisionConfig};
pub use files::ModelFiles;
pub use kv_cache::{KvCache, KvFormat};
pub use requantize::requantize;
pub use step::{ImageRows, SequenceStep};
pub use text::TextModel;
pub use vision::{VisionEncoder, VisionOutput, VisionProgress};
use weights::Weights;

/// Vision encoder + text decoder of one loaded model (one file or llama.cpp's pair).
pub struct Qwen3VL {
    pub config: ModelConfig,
    pub vision: VisionEncoder,
    pub text: TextModel,
}

impl Qwen3VL {
    pub fn load(files: ModelFiles) -> Result<Self> {
        let config = ModelConfig::from_gguf(&files)?;
        let weights = Weights::new(files.clone());
        let vision =
            VisionEncoder::load(&config.vision, &weights).context("loading the vision encoder")?;
        let text = TextModel::load(&config.text, &weights).context("loading the text decoder")?;
        // Reads during the load mapped some released pages back (whole large folios).
        files.release_again();
        files.read_ahead();
        Ok(Self {
            config,
            vision,
            text,
        })
    }
}
