//! Next-token selection from raw logits, in Hugging Face's processor order:
//! penalties → temperature → top-k → top-p → softmax → draw. Temperature 0 is greedy.
//! A fixed seed gives the same draws on every run (ChaCha8).
use anyhow::{bail, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::gguf::keys::general;
use crate::gguf::Metadata;

/// Sampling settings of one request.
#[derive(Clone, Debug, PartialEq)]
pub struct SamplingParams {
    pub temperature: f32,
    pub top_k: usize,
    pub top_p: f32,
    pub seed: Option<u64>,
    /// HF-style: divides positive / multiplies negative logits of seen tokens (1 = off).
    pub repetition_penalty: f32,
    /// OpenAI-style: subtracted once from the logit of every generated token.
    pub presence_penalty: f32,
    /// OpenAI-style: subtracted per occurrence of a generated token.
    pub frequency_penalty: f32,
}

impl SamplingParams {
    pub fn greedy() -> Self {
        Self {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            seed: None,
            repetition_penalty: 1.0,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
        }
    }

    /// Qwen3-VL Instruct's generation_config.json defaults.
    pub fn model_defaults() -> Self {
        Self {
            temperature: 0.7,
            top_k: 20,
            top_p: 0.8,
            ..Self::greedy()
        }
    }

    /// The defaults a model file recommends (`general.sampling.*`, which `glimpse convert` and
    /// llama.cpp's converter take from generation_config.json); a value the file leaves out
    /// is Qwen3-VL Instruct's.
    pub fn recommended_by(metadata: &Metadata) -> Result<Self> {
        let defaults = Self::model_defaults();
        let float = |key: &str, default: f32| -> Result<f32> {
            Ok(metadata.get_f32_opt(key)?.unwrap_or(default))
        };
        let params = Self {
            temperature: float(general::SAMPLING_TEMP, defaults.temperature)?,
            top_k: metadata
                .get_u32_opt(general::SAMPLING_TOP_K)?
                .map_or(defaults.top_k, |k| k as usize),
            top_p: float(general::SAMPLING_TOP_P, defaults.top_p)?,
            repetition_penalty: float(
                general::SAMPLING_PENALTY_REPEAT,
                defaults.repetition_penalty,
            )?,
            ..defaults
        };
        let valid = params.temperature >= 0.0
            && (0.0..=1.0).contains(&params.top_p)
            && params.repetition_penalty > 0.0;
        if !valid {
            bail!(
                "the model file recommends unusable sampling values (temperature {}, top_p {}, repetition penalty {})",
                params.temperature,
                params.top_p,
                params.repetition_penalty
            );
        }
        Ok(params)
    }
}

pub struct Sampler {
    params: SamplingParams,
    rng: ChaCha8Rng,
}

impl Sampler {
    pub fn new(params: SamplingParams) -> Self {
        let rng = match params.seed {
            Some(seed) => ChaCha8Rng::seed_from_u64(seed),
            None => ChaCha8Rng::from_os_rng(),
        };
        Self { params, rng }
    }

    /// Picks the next token. `context` holds the prompt (for the repetition penalty)
    /// and `generated` the tokens produced so far (for presence/frequency penalties).
    pub fn sample(&mut self, logits: &[f32], context: &[u32], generated: &[u32]) -> u32 {
        let mut scores = logits.to_vec();
        self.apply_penalties(&mut scores, context, generated);
        if self.params.temperature <= 0.0 {
            return argmax(&scores);
        }
        for s in scores.iter_mut() {
            *s /= self.params.temperature;
        }
        let candidates = ranked_candidates(&scores, self.params.top_k);
        let max = candidates[0].1;
        let mut probs: Vec<f32> = candidates.iter().map(|&(_, s)| (s - max).exp()).collect();
        let total: f32 = probs.iter().sum();
        probs.iter_mut().for_each(|p| *p /= total);
        if self.params.top_p < 1.0 {
            // HF: drop tokens whose ascending cumulative probability is <= 1 - top_p; keep at least one.
            let mut cumulative_from_low = 0.0f32;
            let mut keep = probs.len();
            for (i, p) in probs.iter().enumerate().rev() {
                cumulative_from_low += p;
                if cumulative_from_low <= 1.0 - self.params.top_p && i > 0 {
                    keep = i;
                } else if cumulative_from_low > 1.0 - self.params.top_p {
                    break;
                }
            }
            probs.truncate(keep);
            let total: f32 = probs.iter().sum();
            probs.iter_mut().for_each(|p| *p /= total);
        }
        let mut draw: f32 = self.rng.random();
        for (i, p) in probs.iter().enumerate() {
            if draw < *p {
                return candidates[i].0;
            }
            draw -= p;
        }
        candidates[probs.len() - 1].0
    }

    fn apply_penalties(&self, scores: &mut [f32], context: &[u32], generated: &[u32]) {
        let p = &self.params;
        if p.repetition_penalty != 1.0 {
            let mut seen = vec![false; scores.len()];
            for &t in context.iter().chain(generated) {
                if let Some(s) = seen.get_mut(t as usize) {
                    *s = true;
                }
            }
            for (score, _) in scores.iter_mut().zip(&seen).filter(|(_, &s)| s) {
                *score = if *score > 0.0 {
                    *score / p.repetition_penalty
                } else {
                    *score * p.repetition_penalty
                };
            }
        }
        if p.presence_penalty != 0.0 || p.frequency_penalty != 0.0 {
            let mut counts = std::collections::HashMap::<u32, u32>::new();
            for &t in generated {
                *counts.entry(t).or_default() += 1;
            }
            for (t, c) in counts {
                if let Some(score) = scores.get_mut(t as usize) {
                    *score -= p.presence_penalty + p.frequency_penalty * c as f32;
                }
            }
        }
    }
}

/// Index of the largest value (the first one on ties, like torch.argmax).
pub fn argmax(values: &[f32]) -> u32 {
    let mut best = 0;
    for (i, v) in values.iter().enumerate() {
        if *v > values[best] {
            best = i;
        }
    }
    best as u32
}

/// `log_softmax(logits)`, computed in f64 for accuracy and returned as f32.
pub fn log_softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
    let log_sum = logits
        .iter()
        .map(|&l| (l as f64 - max).exp())
        .sum::<f64>()
        .ln();
    logits
        .iter()
        .map(|&l| (l as f64 - max - log_sum) as f32)
        .collect()
}

/// The `top_k` highest scores (all of them for 0) as (token, score), highest first, ties
/// by token id: the order a stable sort of the whole vocabulary gives. The best are picked
/// out before only they are sorted (a whole-vocabulary sort took ~3 ms per token, a tenth
/// of a q4_K decode step on two cores).
fn ranked_candidates(scores: &[f32], top_k: usize) -> Vec<(u32, f32)> {
    let order = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    let mut candidates: Vec<(u32, f32)> = scores
        .iter()
        .enumerate()
        .map(|(i, &s)| (i as u32, s))
        .collect();
    if top_k > 0 && top_k < candidates.len() {
        candidates.select_nth_unstable_by(top_k - 1, order);
        candidates.truncate(top_k);
    }
    candidates.sort_unstable_by(order);
    candidates
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recommended_sampling_comes_from_the_file_with_instruct_values_for_the_rest() {
        let mut metadata = Metadata::new();
        assert_eq!(
            SamplingParams::recommended_by(&metadata).unwrap(),
            SamplingParams::model_defaults()
        );
        metadata
            .insert(general::SAMPLING_TEMP, crate::gguf::MetaValue::F32(1.0))
            .unwrap();
        metadata
            .insert(general::SAMPLING_TOP_P, crate::gguf::MetaValue::F32(0.95))
            .unwrap();
        let params = SamplingParams::recommended_by(&metadata).unwrap();
        assert_eq!(
            (params.temperature, params.top_p, params.top_k),
            (1.0, 0.95, 20)
        );
        metadata
            .insert(general::SAMPLING_TOP_K, crate::gguf::MetaValue::I32(-1))
            .unwrap();
        assert!(SamplingParams::recommended_by(&metadata).is_err());
        let mut bad_top_p = Metadata::new();
        bad_top_p
            .insert(general::SAMPLING_TOP_P, crate::gguf::MetaValue::F32(1.5))
            .unwrap();
        let err = SamplingParams::recommended_by(&bad_top_p).unwrap_err();
        assert!(err.to_string().contains("top_p 1.5"), "{err}");
    }

    fn logits() -> Vec<f32> {
        vec![1.0, 3.0, 2.0, 0.5, 2.9]
    }

    #[test]
    fn greedy_picks_the_largest_logit() {
        assert_eq!(
            Sampler::new(SamplingParams::greedy()).sample(&logits(), &[], &[]),
            1
        );
    }

    #[test]
    fn same_seed_gives_same_tokens_and_top_k_limits_choices() {
        let params = SamplingParams {
            temperature: 1.5,
            top_k: 2,
            seed: Some(7),
            ..SamplingParams::greedy()
        };
        let draw = |p: &SamplingParams| {
            let mut s = Sampler::new(p.clone());
            (0..50)
                .map(|_| s.sample(&logits(), &[], &[]))
                .collect::<Vec<_>>()
        };
        let a = draw(&params);
        assert_eq!(a, draw(&params));
        assert!(
            a.iter().all(|&t| t == 1 || t == 4),
            "top_k=2 allows only tokens 1 and 4"
        );
        assert!(a.contains(&1) && a.contains(&4));
    }

    #[test]
    fn small_top_p_keeps_only_the_most_likely_token() {
        let params = SamplingParams {
            temperature: 1.0,
            top_p: 0.1,
            seed: Some(1),
            ..SamplingParams::greedy()
        };
        let mut s = Sampler::new(params);
        assert!((0..20).all(|_| s.sample(&logits(), &[], &[]) == 1));
    }

    #[test]
    fn frequency_penalty_moves_greedy_choice_off_a_repeated_token() {
        let params = SamplingParams {
            frequency_penalty: 0.1,
            ..SamplingParams::greedy()
        };
        assert_eq!(Sampler::new(params).sample(&logits(), &[], &[1, 1]), 4);
    }

    #[test]
    fn log_softmax_normalizes() {
        let total: f64 = log_softmax(&logits())
            .iter()
            .map(|&l| (l as f64).exp())
            .sum();
        assert!((total - 1.0).abs() < 1e-6);
    }

    #[test]
    fn top_k_candidates_are_the_head_of_a_stable_sort_of_everything() {
        // Many ties: the stable sort keeps them in token order.
        let scores: Vec<f32> = (0..5000).map(|i| ((i * 7919) % 61) as f32 * 0.25).collect();
        let mut everything: Vec<(u32, f32)> = scores
            .iter()
            .enumerate()
            .map(|(i, &s)| (i as u32, s))
            .collect();
        everything.sort_by(|a, b| b.1.total_cmp(&a.1));
        for top_k in [0, 1, 2, 20, 83, 4999, 5000, 6000] {
            let expected = match top_k {
                0 => &everything[..],
                k => &everything[..k.min(everything.len())],
            };
            assert_eq!(ranked_candidates(&scores, top_k), expected, "top_k {top_k}");
        }
    }
}
