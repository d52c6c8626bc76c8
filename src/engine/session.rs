//! A conversation's decoding state: the KV cache plus the identity of every cached
//! position, so a new request that extends the previous one only computes its new
//! tokens (longest common prefix; images are identified by content, not just by their
//! pad tokens). Owns the prefill → sample → decode loop and its timings.
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{ensure, Result};

use super::bundle::ModelBundle;
use super::sampler::{Sampler, SamplingParams};
use crate::chat::Prompt;
use crate::model::rope::{next_position, rope_positions, Position3};
use crate::model::text::DeepstackInput;
use crate::model::{KvCache, VisionOutput};
use crate::preprocess::PixelValues;

/// Settings of one generation.
#[derive(Clone, Debug)]
pub struct GenerationParams {
    pub max_tokens: usize,
    pub sampling: SamplingParams,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinishReason {
    /// An end-of-turn token was produced (or the caller stopped the stream).
    Stop,
    /// `max_tokens` was reached.
    Length,
}

/// Wall-clock split of one generation, in milliseconds.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Timings {
    pub vision_ms: f64,
    pub prefill_ms: f64,
    pub decode_ms: f64,
    pub prompt_tokens: usize,
    pub cached_prompt_tokens: usize,
    pub generated_tokens: usize,
    /// Images that went through the vision encoder (not found in any cache).
    pub images_encoded: usize,
}

/// One generated token, with the raw logits it was drawn from.
pub struct TokenEvent<'a> {
    pub id: u32,
    pub logits: &'a [f32],
}

#[derive(Clone, Debug)]
pub struct GenerationOutput {
    /// Generated ids, without the end-of-turn token.
    pub tokens: Vec<u32>,
    pub finish_reason: FinishReason,
    /// The end-of-turn token that stopped generation, if any.
    pub stop_token: Option<u32>,
    pub timings: Timings,
}

/// What a cached position holds: a text token, or one token of an image (by content).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CachedItem {
    Token(u32),
    ImageToken { image: u64, index: usize },
}

pub struct Session<'m> {
    bundle: &'m ModelBundle,
    cache: KvCache,
    cached: Vec<CachedItem>,
    /// Position of the next token to decode.
    next_position: i64,
}

impl<'m> Session<'m> {
    pub fn new(bundle: &'m ModelBundle) -> Self {
        Self {
            bundle,
            cache: bundle.model.text.new_cache(),
            cached: Vec::new(),
            next_position: 0,
        }
    }

    /// Positions held in the KV cache.
    pub fn cached_len(&self) -> usize {
        self.cache.len()
    }

    /// Identity of every cached position (see `cache_items`).
    pub fn cached_items(&self) -> &[CachedItem] {
        &self.cached
    }

    /// Bytes held by the KV cache.
    pub fn cache_bytes(&self) -> usize {
        self.cache.memory_bytes()
    }

    /// Runs the prompt (reusing the cached prefix) and returns the logits of its last
    /// token. `images` are the prompt's images in prompt order; only those with tokens
    /// outside the reused prefix go through the vision encoder.
    pub fn prefill(
        &mut self,
        prompt: &Prompt,
        images: &[&PixelValues],
        timings: &mut Timings,
    ) -> Result<Vec<f32>> {
        ensure!(!prompt.ids.is_empty(), "empty prompt");
        ensure!(
            prompt.image_spans.len() == images.len(),
            "{} image spans for {} images",
            prompt.image_spans.len(),
            images.len()
        );
        let merge = self.bundle.model.config.vision.spatial_merge_size;
        let grids: Vec<(usize, usize)> = images
            .iter()
            .map(|p| (p.grid_thw[1] / merge, p.grid_thw[2] / merge))
            .collect();
        let positions = rope_positions(&prompt.ids, self.bundle.special.image_pad, &grids)?;
        let image_keys: Vec<u64> = images.iter().map(|p| image_key(p)).collect();
        let items = cache_items(prompt, &image_keys);

        // Reuse the longest common prefix, but always recompute the last prompt token.
        let common = self
            .cached
            .iter()
            .zip(&items)
            .take_while(|(a, b)| a == b)
            .count();
        let reuse = common.min(items.len() - 1);
        self.cache.truncate(reuse);
        self.cached.truncate(reuse);
        timings.prompt_tokens = items.len();
        timings.cached_prompt_tokens = reuse;

        let vision_start = Instant::now();
        let mut encoded: Vec<(usize, Arc<VisionOutput>)> = Vec::new();
        for (i, ((span, pixels), &key)) in prompt
            .image_spans
            .iter()
            .zip(images)
            .zip(&image_keys)
            .enumerate()
        {
            if span.end <= reuse {
                continue;
            }
            let out = match self.bundle.vision_cache.get(key) {
                Some(out) => out,
                None => {
                    let out = Arc::new(self.bundle.model.vision.encode(
                        &pixels.data,
                        pixels.grid_thw[1],
                        pixels.grid_thw[2],
                    )?);
                    self.bundle.vision_cache.insert(key, out.clone());
                    timings.images_encoded += 1;
                    out
                }
            };
            ensure!(
                out.tokens == span.len(),
                "image {i}: encoder produced {} tokens for {} pads",
                out.tokens,
                span.len()
            );
            encoded.push((span.start, out));
        }
        timings.vision_ms = vision_start.elapsed().as_secs_f64() * 1e3;

        let prefill_start = Instant::now();
        let text = &self.bundle.model.text;
        let hidden = text.config().hidden_size;
        let new_ids = &prompt.ids[reuse..];
        let mut x = text.embed(new_ids)?;
        let layers = text.config().num_deepstack_layers;
        let mut deepstack: Vec<Vec<f32>> = vec![Vec::new(); layers];
        let mut image_rows = Vec::new();
        for (start, out) in &encoded {
            for token in 0..out.tokens {
                let position = start + token;
                if position < reuse {
                    continue;
                }
                let row = position - reuse;
                x[row * hidden..(row + 1) * hidden]
                    .copy_from_slice(&out.embeddings[token * hidden..(token + 1) * hidden]);
                image_rows.push(row);
                for (layer, features) in deepstack.iter_mut().zip(&out.deepstack) {
                    layer.extend_from_slice(&features[token * hidden..(token + 1) * hidden]);
                }
            }
        }
        let injection = DeepstackInput {
            rows: &image_rows,
            features: &deepstack,
        };
        text.forward(
            &mut x,
            &positions[reuse..],
            &mut self.cache,
            (!image_rows.is_empty()).then_some(&injection),
        )?;
        self.cached.extend_from_slice(&items[reuse..]);
        self.next_position = next_position(&positions);
        let logits = text.logits(&x[(new_ids.len() - 1) * hidden..]);
        timings.prefill_ms = prefill_start.elapsed().as_secs_f64() * 1e3;
        Ok(logits)
    }

    /// Feeds one generated token and returns the logits for the next one.
    pub fn decode_step(&mut self, token: u32) -> Result<Vec<f32>> {
        let text = &self.bundle.model.text;
        let mut x = text.embed(&[token])?;
        let position: Position3 = [self.next_position; 3];
        text.forward(&mut x, &[position], &mut self.cache, None)?;
        self.cached.push(CachedItem::Token(token));
        self.next_position += 1;
        Ok(text.logits(&x))
    }

    /// Prefill, then sample until an end-of-turn token, `max_tokens`, or `on_token`
    /// returning `Break`.
    pub fn generate(
        &mut self,
        prompt: &Prompt,
        images: &[&PixelValues],
        params: &GenerationParams,
        mut on_token: impl FnMut(TokenEvent) -> ControlFlow<()>,
    ) -> Result<GenerationOutput> {
        let mut timings = Timings::default();
        let mut logits = self.prefill(prompt, images, &mut timings)?;
        let decode_start = Instant::now();
        let mut sampler = Sampler::new(params.sampling.clone());
        let mut tokens = Vec::new();
        let (finish_reason, stop_token) = loop {
            if tokens.len() >= params.max_tokens {
                break (FinishReason::Length, None);
            }
            let id = sampler.sample(&logits, &prompt.ids, &tokens);
            if self.bundle.special.eos.contains(&id) {
                break (FinishReason::Stop, Some(id));
            }
            tokens.push(id);
            if on_token(TokenEvent {
                id,
                logits: &logits,
            })
            .is_break()
            {
                break (FinishReason::Stop, None);
            }
            if tokens.len() < params.max_tokens {
                logits = self.decode_step(id)?;
            }
        };
        timings.decode_ms = decode_start.elapsed().as_secs_f64() * 1e3;
        timings.generated_tokens = tokens.len();
        Ok(GenerationOutput {
            tokens,
            finish_reason,
            stop_token,
            timings,
        })
    }
}

/// Identity of every prompt position: token ids, with image pads replaced by
/// (image content hash, index within the image).
/// `image_keys[i]` is `image_key` of the prompt's i-th image.
pub fn cache_items(prompt: &Prompt, image_keys: &[u64]) -> Vec<CachedItem> {
    let mut items: Vec<CachedItem> = prompt.ids.iter().map(|&id| CachedItem::Token(id)).collect();
    for (span, &image) in prompt.image_spans.iter().zip(image_keys) {
        for (index, item) in items[span.clone()].iter_mut().enumerate() {
            *item = CachedItem::ImageToken { image, index };
        }
    }
    items
}

/// Identity of an image's content (grid and pixel values).
pub fn image_key(pixels: &PixelValues) -> u64 {
    let mut hasher = DefaultHasher::new();
    pixels.grid_thw.hash(&mut hasher);
    bytemuck::cast_slice::<f32, u8>(&pixels.data).hash(&mut hasher);
    hasher.finish()
}
