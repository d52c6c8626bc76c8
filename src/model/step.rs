//! Qwen3-VL's forward step over a batch of sequences: each brings its new tokens, their
//! M-RoPE positions, its KV cache and the encoded images whose tokens fall among them.
//! Image tokens take the vision encoder's rows instead of the embedding table's, their
//! DeepStack features are added after the first decoder layers, and the logits of each
//! sequence's last token come back.
use anyhow::{ensure, Result};

use super::kv_cache::KvCache;
use super::rope::Position3;
use super::text::{DeepstackInput, Segment};
use super::vision::VisionOutput;
use super::Qwen3VL;

/// Some of an image's merged tokens among a sequence's new tokens: tokens
/// `first_token..first_token + count` of `output` are the new tokens from `at` on.
pub struct ImageRows<'a> {
    pub output: &'a VisionOutput,
    pub first_token: usize,
    pub count: usize,
    pub at: usize,
}

/// One sequence's part of a step.
pub struct SequenceStep<'a> {
    /// New token ids (image pads included).
    pub tokens: Vec<u32>,
    pub positions: Vec<Position3>,
    pub images: Vec<ImageRows<'a>>,
    pub cache: &'a mut KvCache,
    /// Whether the logits of the last new token are wanted (the prompt's end, or decode).
    pub wants_logits: bool,
}

impl Qwen3VL {
    /// Runs the decoder once over every sequence's new tokens, reading each weight once for
    /// all; returns, per sequence, the logits of its last token when it wants them. Each
    /// sequence's results are those it would get in a step of its own.
    ///
    /// The step runs on a compute-pool thread (the caller waits once), not on the caller's:
    /// its many parallel regions then start and end between pool threads that are awake,
    /// instead of waking the caller from sleep after each (measured on Zen 4, 2 threads:
    /// kernel time during decode 11.4 % → 6.7 % of the samples).
    pub fn step(&self, sequences: &mut [SequenceStep]) -> Result<Vec<Option<Vec<f32>>>> {
        rayon::scope(|_| self.step_on_pool(sequences))
    }

    fn step_on_pool(&self, sequences: &mut [SequenceStep]) -> Result<Vec<Option<Vec<f32>>>> {
        let text = &self.text;
        let hidden = text.config().hidden_size;
        let ids: Vec<u32> = sequences
            .iter()
            .flat_map(|s| s.tokens.iter().copied())
            .collect();
        let mut x = text.embed(&ids)?;
        let mut deepstack: Vec<Vec<f32>> = vec![Vec::new(); text.config().num_deepstack_layers];
        let mut image_rows = Vec::new();
        let mut first_row = 0;
        for s in sequences.iter() {
            ensure!(
                s.positions.len() == s.tokens.len(),
                "{} positions for {} tokens",
                s.positions.len(),
                s.tokens.len()
            );
            for image in &s.images {
                ensure!(
                    image.at + image.count <= s.tokens.len()
                        && image.first_token + image.count <= image.output.tokens,
                    "image rows outside the step"
                );
                ensure!(
                    image.output.deepstack.len() == deepstack.len(),
                    "the image has {} DeepStack feature sets, the decoder takes {}",
                    image.output.deepstack.len(),
                    deepstack.len()
                );
                for token in image.first_token..image.first_token + image.count {
                    let row = first_row + image.at + token - image.first_token;
                    let features = token * hidden..(token + 1) * hidden;
                    x[row * hidden..(row + 1) * hidden]
                        .copy_from_slice(&image.output.embeddings[features.clone()]);
                    image_rows.push(row);
                    for (layer, set) in deepstack.iter_mut().zip(&image.output.deepstack) {
                        layer.extend_from_slice(&set[features.clone()]);
                    }
                }
            }
            first_row += s.tokens.len();
        }
        let mut segments: Vec<Segment> = sequences
            .iter_mut()
            .map(|s| Segment {
                positions: &s.positions,
                cache: &mut *s.cache,
            })
            .collect();
        let injection = DeepstackInput {
            rows: &image_rows,
            features: &deepstack,
        };
        text.forward_batch(
            &mut x,
            &mut segments,
            (!image_rows.is_empty()).then_some(&injection),
        )?;
        // The last row of every sequence that wants logits, projected together.
        let mut last_rows = Vec::new();
        let mut end = 0;
        for s in sequences.iter() {
            end += s.tokens.len();
            if s.wants_logits && !s.tokens.is_empty() {
                last_rows.extend_from_slice(&x[(end - 1) * hidden..end * hidden]);
            }
        }
        let logits = if last_rows.is_empty() {
            Vec::new()
        } else {
            text.logits_rows(&last_rows)
        };
        let vocab = text.config().vocab_size;
        let mut rows = logits.chunks_exact(vocab);
        Ok(sequences
            .iter()
            .map(|s| {
                (s.wants_logits && !s.tokens.is_empty())
                    .then(|| rows.next().map(<[f32]>::to_vec))
                    .flatten()
            })
            .collect())
    }
}
