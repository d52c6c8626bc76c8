//! A conversation's decoding state: the KV cache plus the identity of every cached
//! position, so a new request that extends the previous one only computes its new
//! tokens (longest common prefix; images are identified by content, not just by their
//! pad tokens). Owns the prefill → sample → decode loop and its timings.
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::ops::ControlFlow;
use std::ops::Range;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{ensure, Result};

use super::bundle::ModelBundle;
use super::sampler::{Sampler, SamplingParams};
use crate::chat::Prompt;
use crate::model::rope::{next_position, rope_positions, Position3};
use crate::model::{ImageRows, KvCache, SequenceStep, VisionOutput};
use crate::preprocess::PixelValues;

/// Settings of one generation.
#[derive(Clone, Debug)]
pub struct GenerationParams {
    pub max_tokens: usize,
    pub sampling: SamplingParams,
    /// Never end at an end-of-turn token (they are not sampled; llama.cpp's `ignore_eos`):
    /// benchmarks that need exactly `max_tokens` tokens.
    pub ignore_eos: bool,
}

/// `logits` with the end-of-turn tokens `eos` made impossible.
pub fn without_end_of_turn(logits: &[f32], eos: &[u32]) -> Vec<f32> {
    let mut masked = logits.to_vec();
    for &id in eos {
        if let Some(logit) = masked.get_mut(id as usize) {
            *logit = f32::NEG_INFINITY;
        }
    }
    masked
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

/// A prompt on its way into a session's cache (`Session::begin_prompt`): its images'
/// encoder outputs as they become known, and the prompt tokens still to compute.
pub struct PendingPrompt {
    ids: Vec<u32>,
    positions: Vec<Position3>,
    items: Vec<CachedItem>,
    /// Prompt tokens already in the cache.
    done: usize,
    images: Vec<PendingImage>,
}

struct PendingImage {
    /// The image's pad tokens in the prompt.
    span: Range<usize>,
    key: u64,
    output: Option<Arc<VisionOutput>>,
}

impl PendingPrompt {
    /// Prompt tokens still to compute.
    pub fn remaining(&self) -> usize {
        self.ids.len() - self.done
    }

    /// Prompt tokens in all.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Prompt tokens already in the cache.
    pub fn done(&self) -> usize {
        self.done
    }

    /// The prompt order index and content key of the first image that still needs the
    /// vision encoder (its tokens are not in the cache and no cache holds its output).
    pub fn next_image_to_encode(&self) -> Option<(usize, u64)> {
        self.images
            .iter()
            .enumerate()
            .find(|(_, image)| self.waits_for(image))
            .map(|(i, image)| (i, image.key))
    }

    /// Whether `image` has tokens still to compute and no encoder output yet.
    fn waits_for(&self, image: &PendingImage) -> bool {
        image.output.is_none() && image.span.end > self.done
    }

    /// Gives image `index` (prompt order) its encoder output.
    pub fn set_image(&mut self, index: usize, output: Arc<VisionOutput>) -> Result<()> {
        let image = &mut self.images[index];
        ensure!(
            output.tokens == image.span.len(),
            "image {index}: encoder produced {} tokens for {} pads",
            output.tokens,
            image.span.len()
        );
        image.output = Some(output);
        Ok(())
    }

    /// Images still waiting for their encoder output.
    pub fn images_waiting(&self) -> usize {
        self.images.iter().filter(|i| self.waits_for(i)).count()
    }

    /// Whether every image whose tokens are still to compute has its encoder output.
    pub fn images_ready(&self) -> bool {
        self.next_image_to_encode().is_none()
    }
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
        let keys: Vec<u64> = images.iter().map(|p| image_key(p)).collect();
        let mut pending = self.begin_prompt(prompt, images, &keys, timings)?;
        let vision_start = Instant::now();
        while let Some((index, key)) = pending.next_image_to_encode() {
            let pixels = images[index];
            let output = Arc::new(self.bundle.model.vision.encode(
                &pixels.data,
                pixels.grid_thw[1],
                pixels.grid_thw[2],
            )?);
            self.bundle.vision_cache.insert(key, output.clone());
            timings.images_encoded += 1;
            pending.set_image(index, output)?;
        }
        timings.vision_ms = vision_start.elapsed().as_secs_f64() * 1e3;
        let prefill_start = Instant::now();
        let (count, model) = (pending.remaining(), &self.bundle.model);
        let logits = model
            .step(&mut [self.prompt_step(&pending, count)])?
            .pop()
            .flatten();
        self.commit_prompt(&mut pending, count);
        timings.prefill_ms = prefill_start.elapsed().as_secs_f64() * 1e3;
        logits.ok_or_else(|| anyhow::anyhow!("the prompt step returned no logits"))
    }

    /// Starts bringing `prompt` into the cache: keeps the longest cached prefix it shares
    /// (always recomputing its last token) and finds the encoder outputs of its images
    /// in the vision cache. `image_keys[i]` is `image_key(images[i])`.
    pub fn begin_prompt(
        &mut self,
        prompt: &Prompt,
        images: &[&PixelValues],
        image_keys: &[u64],
        timings: &mut Timings,
    ) -> Result<PendingPrompt> {
        ensure!(!prompt.ids.is_empty(), "empty prompt");
        ensure!(
            prompt.vision_spans.len() == images.len() && images.len() == image_keys.len(),
            "{} image spans for {} images",
            prompt.vision_spans.len(),
            images.len()
        );
        let merge = self.bundle.model.config.vision.spatial_merge_size;
        let grids: Vec<(usize, usize)> = images
            .iter()
            .map(|p| (p.grid_thw[1] / merge, p.grid_thw[2] / merge))
            .collect();
        let special = &self.bundle.special;
        let pads: Vec<u32> = std::iter::once(special.image_pad)
            .chain(special.video_pad)
            .collect();
        let positions = rope_positions(&prompt.ids, &pads, &grids)?;
        let items = cache_items(prompt, image_keys);
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
        let images = prompt
            .vision_spans
            .iter()
            .zip(image_keys)
            .map(|(span, &key)| PendingImage {
                span: span.clone(),
                key,
                // Images wholly inside the reused prefix are not needed again.
                output: (span.end > reuse)
                    .then(|| self.bundle.vision_cache.get(key))
                    .flatten(),
            })
            .collect();
        Ok(PendingPrompt {
            ids: prompt.ids.clone(),
            positions,
            items,
            done: reuse,
            images,
        })
    }

    /// The next `count` prompt tokens of `pending` as this session's part of a model step
    /// (their images must be encoded: `PendingPrompt::images_ready`). The step wants
    /// logits when it ends the prompt.
    pub fn prompt_step<'a>(
        &'a mut self,
        pending: &'a PendingPrompt,
        count: usize,
    ) -> SequenceStep<'a> {
        let range = pending.done..(pending.done + count).min(pending.ids.len());
        let images = pending
            .images
            .iter()
            .filter_map(|image| {
                let start = image.span.start.max(range.start);
                let end = image.span.end.min(range.end);
                let output = image.output.as_deref()?;
                (start < end).then(|| ImageRows {
                    output,
                    first_token: start - image.span.start,
                    count: end - start,
                    at: start - range.start,
                })
            })
            .collect();
        SequenceStep {
            tokens: pending.ids[range.clone()].to_vec(),
            positions: pending.positions[range.clone()].to_vec(),
            images,
            cache: &mut self.cache,
            wants_logits: range.end == pending.ids.len(),
        }
    }

    /// Records that the step from `prompt_step(pending, count)` ran.
    pub fn commit_prompt(&mut self, pending: &mut PendingPrompt, count: usize) {
        let end = (pending.done + count).min(pending.ids.len());
        self.cached
            .extend_from_slice(&pending.items[pending.done..end]);
        pending.done = end;
        if end == pending.ids.len() {
            self.next_position = next_position(&pending.positions);
        }
    }

    /// `token` (the last one generated) as this session's part of a model step.
    pub fn decode_input(&mut self, token: u32) -> SequenceStep<'_> {
        SequenceStep {
            tokens: vec![token],
            positions: vec![[self.next_position; 3]],
            images: Vec::new(),
            cache: &mut self.cache,
            wants_logits: true,
        }
    }

    /// Records that the step from `decode_input(token)` ran.
    pub fn commit_decode(&mut self, token: u32) {
        self.cached.push(CachedItem::Token(token));
        self.next_position += 1;
    }

    /// Feeds one generated token and returns the logits for the next one.
    pub fn decode_step(&mut self, token: u32) -> Result<Vec<f32>> {
        let model = &self.bundle.model;
        let logits = model.step(&mut [self.decode_input(token)])?.pop().flatten();
        self.commit_decode(token);
        logits.ok_or_else(|| anyhow::anyhow!("the decode step returned no logits"))
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
            let eos = &self.bundle.special.eos;
            let id = if params.ignore_eos {
                sampler.sample(&without_end_of_turn(&logits, eos), &prompt.ids, &tokens)
            } else {
                sampler.sample(&logits, &prompt.ids, &tokens)
            };
            if eos.contains(&id) {
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
    for (span, &image) in prompt.vision_spans.iter().zip(image_keys) {
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
