//! Everything needed to serve one model file: the mapped GGUF, the network, the
//! tokenizer, the chat template and the image preprocessor settings — all read from
//! the single file glimpse writes.
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};

use super::vision_cache::VisionCache;
use crate::chat::{
    build_prompt, images_in_prompt_order, ChatTemplate, ImageRef, Message, Prompt, SpecialTokens,
    Tokenizer,
};
use crate::gguf::GgufFile;
use crate::model::Qwen3VL;
use crate::preprocess::{PixelValues, PreprocessConfig};

pub struct ModelBundle {
    pub file: Arc<GgufFile>,
    pub model: Qwen3VL,
    pub tokenizer: Tokenizer,
    pub template: ChatTemplate,
    pub special: SpecialTokens,
    pub preprocess: PreprocessConfig,
    /// Vision-encoder outputs by image content, shared by every session.
    pub vision_cache: VisionCache,
}

/// Default byte budget of the vision-output cache.
pub const DEFAULT_VISION_CACHE_BYTES: usize = 256 << 20;

impl ModelBundle {
    pub fn load(path: &Path) -> Result<Self> {
        let file = Arc::new(
            GgufFile::open(path)
                .with_context(|| format!("cannot load model '{}'", path.display()))?,
        );
        let model = Qwen3VL::load(file.clone())
            .with_context(|| format!("cannot load model '{}'", path.display()))?;
        let tokenizer =
            Tokenizer::from_json_bytes(file.get_str("glimpse.tokenizer_json")?.as_bytes())
                .context("reading the tokenizer stored in the model file")?;
        let template = ChatTemplate::new(file.get_str("tokenizer.chat_template")?)
            .context("reading the chat template stored in the model file")?;
        let preprocess =
            PreprocessConfig::from_json_str(file.get_str("glimpse.preprocessor_config")?)
                .context("reading the preprocessor config stored in the model file")?;
        let mut special = SpecialTokens::from_tokenizer(&tokenizer)?;
        special.eos = model.config.tokens.eos.clone();
        Ok(Self {
            file,
            model,
            tokenizer,
            template,
            special,
            preprocess,
            vision_cache: VisionCache::new(DEFAULT_VISION_CACHE_BYTES),
        })
    }

    /// Renders and tokenizes a conversation. `images[i]` is the image `ImageRef(i)` of
    /// the messages; the returned list holds them in prompt order (the order the
    /// session encodes them in).
    pub fn prompt<'a>(
        &self,
        messages: &[Message],
        images: &'a [PixelValues],
    ) -> Result<(Prompt, Vec<&'a PixelValues>)> {
        let ordered = images_in_prompt_order(messages)?
            .into_iter()
            .map(|ImageRef(i)| {
                images.get(i).ok_or_else(|| {
                    anyhow::anyhow!(
                        "the conversation references image {i}, but only {} were provided",
                        images.len()
                    )
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let counts: Vec<usize> = ordered.iter().map(|p| p.n_merged_tokens()).collect();
        let prompt = build_prompt(
            &self.template,
            &self.tokenizer,
            messages,
            &counts,
            &self.special,
        )?;
        Ok((prompt, ordered))
    }
}
