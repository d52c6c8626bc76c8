//! Everything needed to serve one model: the mapped GGUF file(s), the network, the
//! tokenizer, the chat template and the image preprocessor settings. glimpse's single
//! file carries them all verbatim; for llama.cpp's text + mmproj pair the tokenizer is
//! rebuilt from the stored vocabulary and the preprocessor settings come from the
//! projector's `clip.vision.*` keys with Qwen3-VL's own pixel budget.
use std::path::Path;
use std::sync::OnceLock;

use anyhow::{anyhow, Context, Result};

use super::constraint::Grammars;
use super::sampler::SamplingParams;
use super::vision_cache::VisionCache;
use crate::chat::{
    build_prompt_with_answer_prefix, media_in_prompt_order, tokenizer_json_from_gguf, ChatTemplate,
    ImageRef, Media, MediaTokens, Message, Prompt, SpecialTokens, TemplateArgs, Tokenizer,
    VideoRef, QWEN3_VL_CHAT_TEMPLATE,
};
use crate::gguf::{keys, GgufFile};
use crate::model::{ModelFiles, Qwen3VL};
use crate::preprocess::{PixelValues, PreprocessConfig, VideoConfig, VideoPixels};

pub struct ModelBundle {
    pub files: ModelFiles,
    pub model: Qwen3VL,
    pub tokenizer: Tokenizer,
    pub template: ChatTemplate,
    pub special: SpecialTokens,
    pub preprocess: PreprocessConfig,
    /// The video processor's settings.
    pub video_preprocess: VideoConfig,
    /// Vision-encoder outputs by image content, shared by every session.
    pub vision_cache: VisionCache,
    /// The sampling a request that sets none gets: what the model file recommends.
    pub sampling_defaults: SamplingParams,
    /// The structured-output compiler, built on first use (a token trie of the vocabulary).
    grammars: OnceLock<Result<Grammars, String>>,
    thinks: bool,
}

/// Default byte budget of the vision-output cache.
pub const DEFAULT_VISION_CACHE_BYTES: usize = 256 << 20;

impl ModelBundle {
    /// Parameters and tensor bytes of the model (text and vision files together).
    pub fn size(&self) -> (usize, usize) {
        let files = &self.files;
        let mut tensors: Vec<_> = files.text.tensor_infos().iter().collect();
        if !std::sync::Arc::ptr_eq(&files.text, &files.vision) {
            tensors.extend(files.vision.tensor_infos());
        }
        tensors.iter().fold((0, 0), |(n, bytes), t| {
            (n + t.n_elements(), bytes + t.n_bytes)
        })
    }

    /// The structured-output compiler for this model's vocabulary (built on first use).
    pub fn grammars(&self) -> Result<&Grammars> {
        self.grammars
            .get_or_init(|| {
                let end_of_turn = self
                    .tokenizer
                    .token_to_id("<|im_end|>")
                    .ok_or_else(|| "the tokenizer has no <|im_end|>".to_owned())?;
                let vocab_rows = self.model.text.config().vocab_size;
                Grammars::new(&self.tokenizer, vocab_rows, end_of_turn)
                    .map_err(|e| format!("{e:#}"))
            })
            .as_ref()
            .map_err(|e| anyhow!("structured output is unavailable: {e}"))
    }

    /// Whether the chat template opens every answer with `<think>` (Qwen3-VL Thinking): the
    /// model then reasons until `</think>` before it answers.
    pub fn thinks(&self) -> bool {
        self.thinks
    }

    /// The weight type the file declares (`general.file_type`), by glimpse's profile names.
    pub fn weight_profile(&self) -> Option<&'static str> {
        let file_type = self
            .files
            .text
            .metadata()
            .get_u32_opt(crate::gguf::keys::general::FILE_TYPE)
            .ok()??;
        Some(match file_type {
            0 => "f32",
            1 => "f16",
            2 => "q4_0",
            7 => "q8_0",
            14 | 15 => "q4_k",
            32 => "bf16",
            _ => return None,
        })
    }

    /// Loads glimpse's single file, or llama.cpp's text file plus its `mmproj` projector.
    pub fn load(path: &Path, mmproj: Option<&Path>) -> Result<Self> {
        let files = ModelFiles::open(path, mmproj)?;
        let model = Qwen3VL::load(files.clone())
            .with_context(|| format!("cannot load model '{}'", path.display()))?;
        let text = &files.text;
        let tokenizer_json = match text.get_str_opt(keys::glimpse::TOKENIZER_JSON)? {
            Some(json) => json.to_owned(),
            None => tokenizer_json_from_gguf(text.metadata())
                .context("reading the vocabulary stored in the model file")?,
        };
        let tokenizer = Tokenizer::from_json_bytes(tokenizer_json.as_bytes())
            .context("reading the tokenizer stored in the model file")?;
        let template_source = text
            .get_str_opt(keys::tokenizer::CHAT_TEMPLATE)?
            .unwrap_or(QWEN3_VL_CHAT_TEMPLATE);
        let template = ChatTemplate::new(template_source)
            .context("reading the chat template stored in the model file")?;
        let preprocess = match text.get_str_opt(keys::glimpse::PREPROCESSOR_CONFIG)? {
            Some(json) => PreprocessConfig::from_json_str(json)
                .context("reading the preprocessor config stored in the model file")?,
            None => projector_preprocess_config(&files.vision)
                .context("reading the image settings of the projector file")?,
        };
        let video_preprocess = match text.get_str_opt(keys::glimpse::VIDEO_PREPROCESSOR_CONFIG)? {
            Some(json) => VideoConfig::from_json_str(json)
                .context("reading the video preprocessor config stored in the model file")?,
            // Qwen3-VL's video settings, with the file's own patch sizes, mean and std.
            None => {
                let defaults = VideoConfig::default();
                VideoConfig {
                    pixels: PreprocessConfig {
                        min_pixels: defaults.pixels.min_pixels,
                        max_pixels: defaults.pixels.max_pixels,
                        ..preprocess.clone()
                    },
                    ..defaults
                }
            }
        };
        let special = SpecialTokens::from_gguf(text.metadata(), &tokenizer)
            .context("finding the special token ids")?;
        let sampling_defaults = SamplingParams::recommended_by(text.metadata())?;
        let probe = [Message::new(crate::chat::Role::User, "?")];
        let thinks = template
            .render(&probe, true)
            .is_ok_and(|prompt| prompt.ends_with("<think>\n"));
        Ok(Self {
            files,
            model,
            tokenizer,
            template,
            special,
            preprocess,
            video_preprocess,
            vision_cache: VisionCache::new(DEFAULT_VISION_CACHE_BYTES),
            sampling_defaults,
            grammars: OnceLock::new(),
            thinks,
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
        self.prompt_with_answer_prefix(messages, images, &[], "")
    }

    /// `prompt` with videos (`videos[i]` is `VideoRef(i)`) and the answer begun by
    /// `answer_prefix` (see `build_prompt_with_answer_prefix`).
    pub fn prompt_with_answer_prefix<'a>(
        &self,
        messages: &[Message],
        images: &'a [PixelValues],
        videos: &'a [VideoPixels],
        answer_prefix: &str,
    ) -> Result<(Prompt, Vec<&'a PixelValues>)> {
        self.prompt_with(
            messages,
            images,
            videos,
            TemplateArgs::default(),
            answer_prefix,
        )
    }

    /// `prompt_with_answer_prefix` with more template arguments (tools, keyword arguments).
    /// The returned list holds what the vision encoder takes, in prompt order: each image,
    /// and each temporal patch of each video.
    pub fn prompt_with<'a>(
        &self,
        messages: &[Message],
        images: &'a [PixelValues],
        videos: &'a [VideoPixels],
        args: TemplateArgs,
        answer_prefix: &str,
    ) -> Result<(Prompt, Vec<&'a PixelValues>)> {
        let missing = |kind: &str, i: usize, given: usize| {
            anyhow::anyhow!(
                "the conversation references {kind} {i}, but only {given} were provided"
            )
        };
        let mut encoder_inputs = Vec::new();
        let mut media = Vec::new();
        for item in media_in_prompt_order(messages)? {
            match item {
                Media::Image(ImageRef(i)) => {
                    let image = images
                        .get(i)
                        .ok_or_else(|| missing("image", i, images.len()))?;
                    media.push(MediaTokens::Image(image.n_merged_tokens()));
                    encoder_inputs.push(image);
                }
                Media::Video(VideoRef(i)) => {
                    let video = videos
                        .get(i)
                        .ok_or_else(|| missing("video", i, videos.len()))?;
                    let tokens_per_patch = video.patches.first().map_or(0, |p| p.n_merged_tokens());
                    media.push(MediaTokens::Video {
                        tokens_per_patch,
                        timestamps: video.timestamps.clone(),
                    });
                    encoder_inputs.extend(&video.patches);
                }
            }
        }
        let prompt = build_prompt_with_answer_prefix(
            &self.template,
            &self.tokenizer,
            messages,
            args,
            &media,
            &self.special,
            answer_prefix,
        )?;
        Ok((prompt, encoder_inputs))
    }
}

/// The image settings a projector file without glimpse's `preprocessor_config.json` gives:
/// patch and merge sizes, mean and std from `clip.vision.*`; the pixel budget from
/// `clip.vision.image_{min,max}_pixels` when present, else Qwen3-VL's own (llama.cpp
/// itself caps images at 4096 tokens; glimpse keeps the model's budget, as transformers).
fn projector_preprocess_config(file: &GgufFile) -> Result<PreprocessConfig> {
    let defaults = PreprocessConfig::default();
    let rgb = |key: &str, default: [f32; 3]| -> Result<[f32; 3]> {
        match file.get_f32_array_opt(key)? {
            None => Ok(default),
            Some(&[r, g, b]) => Ok([r, g, b]),
            Some(other) => anyhow::bail!("{key} has {} values, not 3", other.len()),
        }
    };
    let count = |key: &str, default: usize| -> Result<usize> {
        Ok(file.get_u32_opt(key)?.map_or(default, |v| v as usize))
    };
    Ok(PreprocessConfig {
        patch_size: count(keys::clip::PATCH_SIZE, defaults.patch_size)?,
        merge_size: count(keys::clip::SPATIAL_MERGE_SIZE, defaults.merge_size)?,
        min_pixels: count(keys::clip::IMAGE_MIN_PIXELS, defaults.min_pixels)?,
        max_pixels: count(keys::clip::IMAGE_MAX_PIXELS, defaults.max_pixels)?,
        image_mean: rgb(keys::clip::IMAGE_MEAN, defaults.image_mean)?,
        image_std: rgb(keys::clip::IMAGE_STD, defaults.image_std)?,
        ..defaults
    })
}
