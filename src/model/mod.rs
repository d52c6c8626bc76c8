//! The Qwen3-VL network: configuration read from GGUF metadata, the vision encoder
//! (ViT + patch merger + DeepStack mergers), the Qwen3 text decoder with interleaved
//! M-RoPE, and the KV cache it writes. Weights are zero-copy views into the mapped file.
pub mod config;
pub mod kv_cache;
pub mod rope;
pub mod text;
pub mod vision;
pub mod weights;

use std::sync::Arc;

use anyhow::{Context, Result};

use crate::gguf::GgufFile;
pub use config::{ModelConfig, TextConfig, VisionConfig};
pub use kv_cache::KvCache;
pub use text::TextModel;
pub use vision::{VisionEncoder, VisionOutput};
use weights::Weights;

/// Vision encoder + text decoder of one loaded model file.
pub struct Qwen3VL {
    pub config: ModelConfig,
    pub vision: VisionEncoder,
    pub text: TextModel,
}

impl Qwen3VL {
    pub fn load(file: Arc<GgufFile>) -> Result<Self> {
        let config = ModelConfig::from_gguf(&file)?;
        let weights = Weights::new(file);
        let vision =
            VisionEncoder::load(&config.vision, &weights).context("loading the vision encoder")?;
        let text = TextModel::load(&config.text, &weights).context("loading the text decoder")?;
        Ok(Self {
            config,
            vision,
            text,
        })
    }
}
