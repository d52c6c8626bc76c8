//! `PreprocessConfig`: the image-processor settings read from `preprocessor_config.json`
//! (patch, merge and temporal sizes, the pixel budget, mean/std, rescale factor), with the
//! Qwen3-VL values as defaults and a per-request override of the pixel budget.
//! Not for: doing any image work (see the sibling modules).

use anyhow::{bail, ensure, Context, Result};
use serde::Deserialize;

/// The settings of transformers' `Qwen2VLImageProcessor` that change the numbers it produces.
#[derive(Debug, Clone, PartialEq)]
pub struct PreprocessConfig {
    /// Side of one square vision patch in pixels (16 for Qwen3-VL).
    pub patch_size: usize,
    /// Frames stacked into one patch; a still image is repeated this many times (2).
    pub temporal_patch_size: usize,
    /// Side of the block of patches the vision merger folds into one token (2).
    pub merge_size: usize,
    /// Lower bound of the resized pixel count (`size.shortest_edge`, 256² for Qwen3-VL).
    pub min_pixels: usize,
    /// Upper bound of the resized pixel count (`size.longest_edge`, 4096² for Qwen3-VL).
    pub max_pixels: usize,
    /// Per-channel mean in the 0..1 scale, as transformers holds it (an f32 tensor).
    pub image_mean: [f32; 3],
    /// Per-channel standard deviation in the 0..1 scale (f32).
    pub image_std: [f32; 3],
    /// Factor that maps uint8 values to the 0..1 scale (1/255).
    pub rescale_factor: f64,
}

impl Default for PreprocessConfig {
    /// The values of Qwen3-VL's `preprocessor_config.json` (identical for 2B/4B/8B).
    fn default() -> Self {
        Self {
            patch_size: 16,
            temporal_patch_size: 2,
            merge_size: 2,
            min_pixels: 65_536,
            max_pixels: 16_777_216,
            image_mean: [0.5; 3],
            image_std: [0.5; 3],
            rescale_factor: 1.0 / 255.0,
        }
    }
}

/// The fields of `preprocessor_config.json` that matter; everything else is ignored.
#[derive(Deserialize)]
struct RawConfig {
    patch_size: Option<usize>,
    temporal_patch_size: Option<usize>,
    merge_size: Option<usize>,
    size: Option<RawSize>,
    min_pixels: Option<usize>,
    max_pixels: Option<usize>,
    image_mean: Option<PerChannel>,
    image_std: Option<PerChannel>,
    rescale_factor: Option<f64>,
}

#[derive(Deserialize)]
struct RawSize {
    shortest_edge: Option<usize>,
    longest_edge: Option<usize>,
}

/// transformers accepts either one number for all channels or one per channel.
#[derive(Deserialize)]
#[serde(untagged)]
enum PerChannel {
    All(f64),
    Each(Vec<f64>),
}

impl PerChannel {
    fn into_rgb(self, field: &str) -> Result<[f32; 3]> {
        match self {
            PerChannel::All(v) => Ok([v as f32; 3]),
            PerChannel::Each(values) => match values.as_slice() {
                [r, g, b] => Ok([*r as f32, *g as f32, *b as f32]),
                _ => bail!(
                    "'{field}' has {} values, expected 3 (R, G, B)",
                    values.len()
                ),
            },
        }
    }
}

impl PreprocessConfig {
    /// Parses the text of `preprocessor_config.json`. Missing fields keep the Qwen3-VL defaults;
    /// top-level `min_pixels`/`max_pixels` win over `size`, as in transformers.
    pub fn from_json_str(json: &str) -> Result<Self> {
        let raw: RawConfig =
            serde_json::from_str(json).context("preprocessor config is not valid JSON")?;
        let defaults = Self::default();
        let (mut min_pixels, mut max_pixels) = (defaults.min_pixels, defaults.max_pixels);
        if let Some(size) = raw.size {
            match (size.shortest_edge, size.longest_edge) {
                (Some(shortest), Some(longest)) => (min_pixels, max_pixels) = (shortest, longest),
                _ => bail!(
                    "preprocessor config: 'size' must contain 'shortest_edge' and 'longest_edge'"
                ),
            }
        }
        let config = Self {
            patch_size: raw.patch_size.unwrap_or(defaults.patch_size),
            temporal_patch_size: raw
                .temporal_patch_size
                .unwrap_or(defaults.temporal_patch_size),
            merge_size: raw.merge_size.unwrap_or(defaults.merge_size),
            min_pixels: raw.min_pixels.unwrap_or(min_pixels),
            max_pixels: raw.max_pixels.unwrap_or(max_pixels),
            image_mean: match raw.image_mean {
                Some(mean) => mean.into_rgb("image_mean")?,
                None => defaults.image_mean,
            },
            image_std: match raw.image_std {
                Some(std) => std.into_rgb("image_std")?,
                None => defaults.image_std,
            },
            rescale_factor: raw.rescale_factor.unwrap_or(defaults.rescale_factor),
        };
        config.validate().context("preprocessor config")?;
        Ok(config)
    }

    /// Reads and parses a `preprocessor_config.json` file.
    pub fn from_file(path: &std::path::Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read preprocessor config {}", path.display()))?;
        Self::from_json_str(&text).with_context(|| format!("in {}", path.display()))
    }

    /// This config with a request's own pixel budget (`None` keeps the configured bound),
    /// like passing `min_pixels`/`max_pixels` to the transformers processor call.
    pub fn with_pixel_budget(
        &self,
        min_pixels: Option<usize>,
        max_pixels: Option<usize>,
    ) -> Result<Self> {
        let config = Self {
            min_pixels: min_pixels.unwrap_or(self.min_pixels),
            max_pixels: max_pixels.unwrap_or(self.max_pixels),
            ..self.clone()
        };
        config.validate()?;
        Ok(config)
    }

    /// This config with new bounds where given. A bound given alone moves the other one when
    /// needed, so that min ≤ max (asking for at most 1000 pixels lowers the minimum too).
    pub fn with_bounds(
        &self,
        min_pixels: Option<usize>,
        max_pixels: Option<usize>,
    ) -> Result<Self> {
        let (min, max) = match (min_pixels, max_pixels) {
            (Some(min), Some(max)) => (min, max),
            (Some(min), None) => (min, self.max_pixels.max(min)),
            (None, Some(max)) => (self.min_pixels.min(max), max),
            (None, None) => (self.min_pixels, self.max_pixels),
        };
        self.with_pixel_budget(Some(min), Some(max))
    }

    /// `with_bounds` in vision tokens (llama.cpp's `--image-min-tokens` / `--image-max-tokens`):
    /// one merged token covers `token_pixels()` pixels.
    pub fn with_token_bounds(
        &self,
        min_tokens: Option<usize>,
        max_tokens: Option<usize>,
    ) -> Result<Self> {
        let pixels = |tokens: usize| tokens.saturating_mul(self.token_pixels());
        self.with_bounds(min_tokens.map(pixels), max_tokens.map(pixels))
    }

    /// Pixels one merged vision token covers (`factor()`², 1024 for Qwen3-VL).
    pub fn token_pixels(&self) -> usize {
        self.factor() * self.factor()
    }

    /// Side in pixels of the block that one merged vision token covers (`patch_size * merge_size`);
    /// resized images are multiples of it on both axes.
    pub fn factor(&self) -> usize {
        self.patch_size * self.merge_size
    }

    /// Checks the values the pipeline divides by or sizes buffers with.
    pub fn validate(&self) -> Result<()> {
        ensure!(self.patch_size > 0, "patch_size must be positive");
        ensure!(
            self.temporal_patch_size > 0,
            "temporal_patch_size must be positive"
        );
        ensure!(self.merge_size > 0, "merge_size must be positive");
        ensure!(
            self.min_pixels <= self.max_pixels,
            "min_pixels ({}) is larger than max_pixels ({})",
            self.min_pixels,
            self.max_pixels
        );
        ensure!(self.max_pixels > 0, "max_pixels must be positive");
        ensure!(
            self.image_std.iter().all(|&s| s != 0.0 && s.is_finite()),
            "image_std {:?} must be finite and non-zero",
            self.image_std
        );
        ensure!(
            self.image_mean.iter().all(|m| m.is_finite()),
            "image_mean {:?} must be finite",
            self.image_mean
        );
        ensure!(
            self.rescale_factor.is_finite() && self.rescale_factor > 0.0,
            "rescale_factor {} must be finite and positive",
            self.rescale_factor
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const QWEN3_VL_JSON: &str = r#"{
      "size": {"longest_edge": 16777216, "shortest_edge": 65536},
      "patch_size": 16, "temporal_patch_size": 2, "merge_size": 2,
      "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5],
      "processor_class": "Qwen3VLProcessor",
      "image_processor_type": "Qwen2VLImageProcessorFast"
    }"#;

    #[test]
    fn qwen3_vl_json_parses_to_the_default() {
        let config = PreprocessConfig::from_json_str(QWEN3_VL_JSON).unwrap();
        assert_eq!(config, PreprocessConfig::default());
        assert_eq!(config.factor(), 32);
    }

    #[test]
    fn size_edges_become_the_pixel_budget() {
        let json = r#"{"size": {"shortest_edge": 1000, "longest_edge": 2000}, "patch_size": 14,
                       "image_mean": [0.1, 0.2, 0.3], "image_std": 0.25}"#;
        let config = PreprocessConfig::from_json_str(json).unwrap();
        assert_eq!((config.min_pixels, config.max_pixels), (1000, 2000));
        assert_eq!(config.patch_size, 14);
        assert_eq!(config.image_mean, [0.1f32, 0.2, 0.3]);
        assert_eq!(config.image_std, [0.25f32; 3]);
    }

    #[test]
    fn top_level_min_max_pixels_override_size() {
        let json = r#"{"size": {"shortest_edge": 1000, "longest_edge": 2000},
                       "min_pixels": 10, "max_pixels": 5000}"#;
        let config = PreprocessConfig::from_json_str(json).unwrap();
        assert_eq!((config.min_pixels, config.max_pixels), (10, 5000));
    }

    #[test]
    fn size_without_both_edges_is_rejected() {
        let err =
            PreprocessConfig::from_json_str(r#"{"size": {"shortest_edge": 1000}}"#).unwrap_err();
        assert!(format!("{err:#}").contains("longest_edge"), "{err:#}");
    }

    #[test]
    fn wrong_channel_count_and_zero_std_are_rejected() {
        let err = PreprocessConfig::from_json_str(r#"{"image_mean": [0.5, 0.5]}"#).unwrap_err();
        assert!(format!("{err:#}").contains("image_mean"), "{err:#}");
        let err = PreprocessConfig::from_json_str(r#"{"image_std": [0.5, 0, 0.5]}"#).unwrap_err();
        assert!(format!("{err:#}").contains("image_std"), "{err:#}");
    }

    #[test]
    fn request_pixel_budget_overrides_only_what_it_sets() {
        let base = PreprocessConfig::default();
        let custom = base.with_pixel_budget(None, Some(100_000)).unwrap();
        assert_eq!((custom.min_pixels, custom.max_pixels), (65_536, 100_000));
        assert!(base
            .with_pixel_budget(Some(200_000), Some(100_000))
            .is_err());
    }
}
