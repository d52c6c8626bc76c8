//! Video preprocessing, identical to transformers' `Qwen3VLVideoProcessor` (5.24, torchvision
//! backend) and to the timestamps `Qwen3VLProcessor` writes into the prompt: frames sampled at
//! `fps` within [min_frames, max_frames], one `smart_resize` for the whole clip (its pixel budget
//! counts every frame), the images' uint8 bicubic resize and normalization for each frame, and
//! consecutive frames paired into temporal patches (the last repeated to an even count).
//! Each pair becomes one `PixelValues` with t = 1: the vision tower attends within a pair, and
//! the language model places each pair like an image, after the pair's timestamp.
//! Not for: decoding video files (see `video_decode`).

use anyhow::{bail, ensure, Context, Result};
use image::RgbImage;
use rayon::prelude::*;
use serde::Deserialize;

use super::config::PreprocessConfig;
use super::normalize::NormalizeTable;
use super::patchify::patchify_frames;
use super::resize::resize_bicubic_antialias;
use super::PixelValues;

/// The frame rate transformers assumes for a clip whose rate is unknown.
pub const UNKNOWN_FPS: f64 = 24.0;
/// Largest ratio between the longer and the shorter side that transformers accepts.
const MAX_ASPECT_RATIO: f64 = 200.0;

/// The settings of `video_preprocessor_config.json` and `Qwen3VLVideoProcessor`'s defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoConfig {
    /// Patch, merge and temporal sizes, mean and std; `min_pixels` / `max_pixels` bound the
    /// pixels of the whole clip (`size.shortest_edge` / `size.longest_edge`).
    pub pixels: PreprocessConfig,
    /// Frames sampled per second of video.
    pub fps: f64,
    pub min_frames: usize,
    pub max_frames: usize,
    /// qwen-vl-utils' per-frame pixel cap (off by default in transformers 5.24).
    pub cap_pixels_per_frame: bool,
    /// Vision tokens per frame under that cap.
    pub max_video_tokens: usize,
}

impl Default for VideoConfig {
    /// Qwen3-VL's `video_preprocessor_config.json` (identical for 2B/4B/8B/30B-A3B) over the
    /// processor class's defaults.
    fn default() -> Self {
        Self {
            pixels: PreprocessConfig {
                min_pixels: 4096,
                max_pixels: 25_165_824,
                ..PreprocessConfig::default()
            },
            fps: 2.0,
            min_frames: 4,
            max_frames: 768,
            cap_pixels_per_frame: false,
            max_video_tokens: 768,
        }
    }
}

/// The video-only fields of `video_preprocessor_config.json`.
#[derive(Deserialize)]
struct RawVideoFields {
    size: Option<serde_json::Value>,
    fps: Option<f64>,
    min_frames: Option<usize>,
    max_frames: Option<usize>,
    cap_pixels_per_frame: Option<bool>,
    max_video_tokens: Option<usize>,
}

impl VideoConfig {
    /// Parses the text of `video_preprocessor_config.json`; missing fields keep the processor
    /// class's defaults (a file without `size` gets the class's 128–768 tokens' worth).
    pub fn from_json_str(json: &str) -> Result<Self> {
        let mut pixels = PreprocessConfig::from_json_str(json)?;
        let raw: RawVideoFields =
            serde_json::from_str(json).context("video preprocessor config is not valid JSON")?;
        if raw.size.is_none() {
            let token = pixels.token_pixels();
            (pixels.min_pixels, pixels.max_pixels) = (128 * token, 768 * token);
        }
        let defaults = Self::default();
        let config = Self {
            pixels,
            fps: raw.fps.unwrap_or(defaults.fps),
            min_frames: raw.min_frames.unwrap_or(defaults.min_frames),
            max_frames: raw.max_frames.unwrap_or(defaults.max_frames),
            cap_pixels_per_frame: raw
                .cap_pixels_per_frame
                .unwrap_or(defaults.cap_pixels_per_frame),
            max_video_tokens: raw.max_video_tokens.unwrap_or(defaults.max_video_tokens),
        };
        ensure!(
            config.fps.is_finite() && config.fps > 0.0,
            "video preprocessor config: fps must be positive"
        );
        ensure!(
            config.min_frames <= config.max_frames && config.max_frames > 0,
            "video preprocessor config: min_frames must not exceed max_frames"
        );
        Ok(config)
    }
}

/// Which frames of a clip of `total` frames recorded at `fps` (None: unknown, taken as 24) are
/// used: `fps` frames a second within [min_frames, max_frames] and at most all of them, evenly
/// spread (`Qwen3VLVideoProcessor.sample_frames`: `np.linspace(...).round()`).
pub fn sample_frame_indices(total: usize, fps: Option<f64>, config: &VideoConfig) -> Vec<usize> {
    let recorded = fps.unwrap_or(UNKNOWN_FPS);
    // Python: int(total_num_frames / metadata.fps * fps), truncated toward zero.
    let wanted = (total as f64 / recorded * config.fps) as usize;
    let count = wanted
        .max(config.min_frames)
        .min(config.max_frames)
        .min(total);
    linspace_rounded(total.saturating_sub(1), count)
}

/// `np.linspace(0, last, count).round().astype(int)`: `i * step` rounded half to even, the
/// last value exactly `last`.
fn linspace_rounded(last: usize, count: usize) -> Vec<usize> {
    if count == 0 {
        return Vec::new();
    }
    let step = if count > 1 {
        last as f64 / (count - 1) as f64
    } else {
        0.0
    };
    (0..count)
        .map(|i| {
            if i + 1 == count && count > 1 {
                last
            } else {
                (i as f64 * step).round_ties_even() as usize
            }
        })
        .collect()
}

/// Seconds of each temporal patch for the prompt (`Qwen3VLProcessor._calculate_timestamps`):
/// the frame indices padded to a multiple of `temporal` with the last one, each index / fps,
/// then the mean of the first and last time of each patch.
pub fn patch_timestamps(indices: &[usize], fps: f64, temporal: usize) -> Vec<f64> {
    let mut padded = indices.to_vec();
    if let Some(&last) = indices.last() {
        while !padded.len().is_multiple_of(temporal.max(1)) {
            padded.push(last);
        }
    }
    padded
        .chunks(temporal.max(1))
        .map(|patch| {
            let first = patch[0] as f64 / fps;
            let last = patch[patch.len() - 1] as f64 / fps;
            (first + last) / 2.0
        })
        .collect()
}

/// A clip's target frame size (`smart_resize` of the video processor): like the image one, but
/// the pixel budget counts `num_frames` frames (rounded to a multiple of `temporal`), and frames
/// smaller than `factor` are scaled up first instead of refused.
pub fn smart_resize_video(
    num_frames: usize,
    height: usize,
    width: usize,
    temporal: usize,
    factor: usize,
    min_pixels: usize,
    max_pixels: usize,
) -> Result<(usize, usize)> {
    ensure!(
        num_frames >= temporal,
        "a video needs at least {temporal} frames, this one has {num_frames}"
    );
    ensure!(
        height > 0 && width > 0 && factor > 0,
        "cannot resize {height}x{width} video frames"
    );
    let (mut height, mut width) = (height, width);
    if height < factor || width < factor {
        let f = factor as f64;
        let scale = (f / height as f64).max(f / width as f64);
        height = (height as f64 * scale) as usize;
        width = (width as f64 * scale) as usize;
    }
    let (h, w, f) = (height as f64, width as f64, factor as f64);
    if h.max(w) / h.min(w) > MAX_ASPECT_RATIO {
        bail!(
            "video frames of {height}x{width} pixels: absolute aspect ratio must be smaller \
             than {MAX_ASPECT_RATIO}"
        );
    }
    let mut h_bar = (h / f).round_ties_even() as usize * factor;
    let mut w_bar = (w / f).round_ties_even() as usize * factor;
    let t_bar = (num_frames as f64 / temporal as f64).round_ties_even() as u128 * temporal as u128;
    let volume = t_bar * h_bar as u128 * w_bar as u128;
    let frames_pixels = (num_frames as u128 * height as u128 * width as u128) as f64;
    if volume > max_pixels as u128 {
        let beta = (frames_pixels / max_pixels as f64).sqrt();
        h_bar = factor.max((h / beta / f).floor() as usize * factor);
        w_bar = factor.max((w / beta / f).floor() as usize * factor);
    } else if volume < min_pixels as u128 {
        let beta = (min_pixels as f64 / frames_pixels).sqrt();
        h_bar = (h * beta / f).ceil() as usize * factor;
        w_bar = (w * beta / f).ceil() as usize * factor;
    }
    ensure!(
        h_bar > 0 && w_bar > 0,
        "video frames of {height}x{width} pixels resize to {h_bar}x{w_bar}"
    );
    Ok((h_bar, w_bar))
}

/// The frames of a clip that will be used, with where they came from.
#[derive(Debug, Clone)]
pub struct SampledVideo {
    /// The frames, in order, all the same size: the decoded size, or already the size the
    /// processor resizes them to (see `FrameCollector`).
    pub frames: Vec<RgbImage>,
    /// The frames' decoded size, `(height, width)`.
    pub original_hw: (usize, usize),
    /// Index of each frame in the decoded clip.
    pub indices: Vec<usize>,
    /// The clip's frame rate (for the timestamps).
    pub fps: f64,
}

impl SampledVideo {
    /// Frames given one by one (a list of images): every one is used, as recorded at `fps`.
    pub fn from_frames(frames: Vec<RgbImage>, fps: f64) -> Self {
        let indices = (0..frames.len()).collect();
        let original_hw = frames
            .first()
            .map_or((0, 0), |f| (f.height() as usize, f.width() as usize));
        Self {
            frames,
            original_hw,
            indices,
            fps,
        }
    }
}

/// Gathers a clip's `count` sampled frames as they are decoded, each resized at once to the
/// size the processor will give it (known from the count and the first frame's size): a long
/// or high-resolution clip never sits in memory at its decoded size, only within the clip's
/// pixel budget. `preprocess_video` makes of the result what it makes of the full-size frames.
pub struct FrameCollector<'a> {
    config: &'a VideoConfig,
    count: usize,
    /// The decoded size and the target size, from the first frame.
    sizes: Option<((usize, usize), (usize, usize))>,
    frames: Vec<RgbImage>,
}

impl<'a> FrameCollector<'a> {
    pub fn new(config: &'a VideoConfig, count: usize) -> Self {
        Self {
            config,
            count,
            sizes: None,
            frames: Vec::with_capacity(count),
        }
    }

    /// Adds the next sampled frame.
    pub fn push(&mut self, frame: RgbImage) -> Result<()> {
        let hw = (frame.height() as usize, frame.width() as usize);
        let (original, target) = match self.sizes {
            Some(sizes) => sizes,
            None => *self
                .sizes
                .insert((hw, frame_size(self.count, hw, self.config)?)),
        };
        ensure!(
            hw == original,
            "the frames of a video must all have the same size ({}x{} after {}x{})",
            hw.1,
            hw.0,
            original.1,
            original.0
        );
        self.frames.push(if target == hw {
            frame
        } else {
            resize_bicubic_antialias(&frame, target.0 as u32, target.1 as u32)
        });
        Ok(())
    }

    /// The collected clip, its frames those at `indices` of a clip recorded at `fps`.
    pub fn finish(self, indices: Vec<usize>, fps: f64) -> Result<SampledVideo> {
        let (original_hw, _) = self.sizes.context("the video has no frames")?;
        Ok(SampledVideo {
            frames: self.frames,
            original_hw,
            indices,
            fps,
        })
    }
}

/// The frame size the video processor resizes `num_frames` frames of `original_hw` to: the
/// clip-wide `smart_resize`, under qwen-vl-utils' per-frame cap when the config asks for it.
pub fn frame_size(
    num_frames: usize,
    original_hw: (usize, usize),
    config: &VideoConfig,
) -> Result<(usize, usize)> {
    let pixels = &config.pixels;
    let factor = pixels.factor();
    let mut max_pixels = pixels.max_pixels;
    if config.cap_pixels_per_frame && num_frames > 0 {
        let frame_cap = config.max_video_tokens * factor * factor;
        let floor = (pixels.min_pixels as f64 * 1.05) as usize;
        let per_frame = frame_cap.min(pixels.max_pixels / num_frames).max(floor);
        max_pixels = per_frame * num_frames;
    }
    smart_resize_video(
        num_frames,
        original_hw.0,
        original_hw.1,
        pixels.temporal_patch_size,
        factor,
        pixels.min_pixels,
        max_pixels,
    )
}

/// The processor's output for one video: `pixel_values_videos` cut per temporal patch.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoPixels {
    /// One entry per temporal patch, each with `grid_thw` `[1, h, w]`.
    pub patches: Vec<PixelValues>,
    /// Seconds of each temporal patch, as the prompt writes them (`<1.2 seconds>`).
    pub timestamps: Vec<f64>,
}

impl VideoPixels {
    /// `video_grid_thw`: temporal patches, patch rows, patch columns.
    pub fn grid_thw(&self) -> [usize; 3] {
        let [_, h, w] = self.patches.first().map_or([0; 3], |p| p.grid_thw);
        [self.patches.len(), h, w]
    }
}

/// Runs the whole video processor on a clip's sampled frames.
pub fn preprocess_video(video: &SampledVideo, config: &VideoConfig) -> Result<VideoPixels> {
    let pixels = &config.pixels;
    pixels.validate().context("video preprocess config")?;
    let first = video.frames.first().context("the video has no frames")?;
    let stored_hw = (first.height() as usize, first.width() as usize);
    ensure!(
        video
            .frames
            .iter()
            .all(|f| (f.height() as usize, f.width() as usize) == stored_hw),
        "the frames of a video must all have the same size"
    );
    let original_hw = video.original_hw;
    ensure!(
        video.indices.len() == video.frames.len(),
        "{} frame indices for {} frames",
        video.indices.len(),
        video.frames.len()
    );
    ensure!(
        video.fps.is_finite() && video.fps > 0.0,
        "the video's frame rate must be positive"
    );
    let num_frames = video.frames.len();
    let resized_hw = frame_size(num_frames, original_hw, config)?;
    let resized: Vec<std::borrow::Cow<RgbImage>> = video
        .frames
        .par_iter()
        .map(|frame| {
            // Frames a `FrameCollector` already resized are used as they are.
            if resized_hw == stored_hw {
                std::borrow::Cow::Borrowed(frame)
            } else {
                std::borrow::Cow::Owned(resize_bicubic_antialias(
                    frame,
                    resized_hw.0 as u32,
                    resized_hw.1 as u32,
                ))
            }
        })
        .collect();
    let table = NormalizeTable::new(pixels);
    let temporal = pixels.temporal_patch_size;
    let mut patches = Vec::with_capacity(num_frames.div_ceil(temporal));
    for start in (0..num_frames).step_by(temporal) {
        // The last patch repeats the clip's last frame where frames run out.
        let frames: Vec<&RgbImage> = (start..start + temporal)
            .map(|i| resized[i.min(num_frames - 1)].as_ref())
            .collect();
        let (data, grid_thw) = patchify_frames(&frames, pixels, &table)?;
        patches.push(PixelValues {
            data,
            grid_thw,
            original_hw,
            resized_hw,
            merge_size: pixels.merge_size,
        });
    }
    Ok(VideoPixels {
        patches,
        timestamps: patch_timestamps(&video.indices, video.fps, temporal),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_follows_numpy_linspace_and_rounding() {
        let config = VideoConfig::default();
        // 9 frames at 10 fps: int(9 / 10 * 2) = 1 → at least 4; linspace(0, 8, 4) =
        // 0, 2.67, 5.33, 8.
        assert_eq!(sample_frame_indices(9, Some(10.0), &config), [0, 3, 5, 8]);
        // 100 frames at 25 fps: 8 frames, step 99/7 = 14.142…
        assert_eq!(
            sample_frame_indices(100, Some(25.0), &config),
            [0, 14, 28, 42, 57, 71, 85, 99]
        );
        // Halves round to even: linspace(0, 5, 3) = 0, 2.5, 5.
        assert_eq!(linspace_rounded(5, 3), [0, 2, 5]);
        // Unknown rate: 24 fps. 48 frames → 4.
        assert_eq!(sample_frame_indices(48, None, &config).len(), 4);
        // Never more frames than the clip has.
        assert_eq!(sample_frame_indices(3, Some(1.0), &config), [0, 1, 2]);
        let many = sample_frame_indices(100_000, Some(1.0), &config);
        assert_eq!((many.len(), many[767]), (768, 99_999));
    }

    #[test]
    fn timestamps_average_each_pair_and_pad_with_the_last_frame() {
        assert_eq!(patch_timestamps(&[0, 3, 5, 8], 10.0, 2), [0.15, 0.65]);
        assert_eq!(patch_timestamps(&[0, 1, 2], 2.0, 2), [0.25, 1.0]);
    }

    #[test]
    fn clip_budget_counts_every_frame() {
        // 4 frames of 80x120: round(2.5) = 2 → 64, round(3.75) = 4 → 128.
        assert_eq!(
            smart_resize_video(4, 80, 120, 2, 32, 4096, 25_165_824).unwrap(),
            (64, 128)
        );
        // 100 frames of 1080p over a 25 M budget: beta = sqrt(100·1080·1920 / 25165824).
        let (h, w) = smart_resize_video(100, 1080, 1920, 2, 32, 4096, 25_165_824).unwrap();
        assert_eq!((h, w), (352, 640));
        assert!(100 * h * w <= 25_165_824);
        // Frames under the factor are scaled up first: 10x40 → 32x128.
        assert_eq!(
            smart_resize_video(4, 10, 40, 2, 32, 4096, 25_165_824).unwrap(),
            (32, 128)
        );
        let one = smart_resize_video(1, 64, 64, 2, 32, 4096, 25_165_824).unwrap_err();
        assert!(one.to_string().contains("at least 2 frames"), "{one}");
    }

    #[test]
    fn an_odd_clip_repeats_its_last_frame() {
        let frame = |v: u8| RgbImage::from_pixel(64, 64, image::Rgb([v, v, v]));
        let video = SampledVideo::from_frames(vec![frame(0), frame(100), frame(255)], 2.0);
        let out = preprocess_video(&video, &VideoConfig::default()).unwrap();
        assert_eq!(out.grid_thw(), [2, 4, 4]);
        assert_eq!(out.timestamps, [0.25, 1.0]);
        let plane = 256;
        let last = &out.patches[1].data;
        assert_eq!((last[0], last[plane]), (1.0, 1.0));
        let first = &out.patches[0].data;
        assert_eq!(first[0], -1.0);
        assert_eq!(first[plane], (100.0 - 127.5) / 127.5);
    }

    #[test]
    fn collected_frames_give_what_the_full_size_frames_give() {
        let frame = |v: u8| {
            RgbImage::from_fn(200, 150, |x, y| {
                image::Rgb([v, (x % 251) as u8, (y * 3 % 256) as u8])
            })
        };
        let frames: Vec<RgbImage> = (0..5).map(|i| frame(40 * i)).collect();
        let config = VideoConfig {
            pixels: PreprocessConfig {
                max_pixels: 5 * 64 * 96,
                ..VideoConfig::default().pixels
            },
            ..VideoConfig::default()
        };
        let whole =
            preprocess_video(&SampledVideo::from_frames(frames.clone(), 2.0), &config).unwrap();
        let mut collector = FrameCollector::new(&config, 5);
        for f in frames {
            collector.push(f).unwrap();
        }
        let collected = collector.finish((0..5).collect(), 2.0).unwrap();
        assert_eq!(collected.original_hw, (150, 200));
        assert!(collected.frames[0].width() < 200, "kept at the target size");
        assert_eq!(preprocess_video(&collected, &config).unwrap(), whole);
        let mut mixed = FrameCollector::new(&config, 2);
        mixed.push(frame(0)).unwrap();
        assert!(mixed.push(RgbImage::new(10, 10)).is_err());
    }

    #[test]
    fn config_reads_the_video_file_and_keeps_class_defaults() {
        let official = r#"{"size": {"longest_edge": 25165824, "shortest_edge": 4096},
            "patch_size": 16, "temporal_patch_size": 2, "merge_size": 2,
            "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5],
            "processor_class": "Qwen3VLProcessor", "video_processor_type": "Qwen3VLVideoProcessor"}"#;
        assert_eq!(
            VideoConfig::from_json_str(official).unwrap(),
            VideoConfig::default()
        );
        let bare = VideoConfig::from_json_str(r#"{"fps": 1.0, "max_frames": 16}"#).unwrap();
        assert_eq!(
            (bare.pixels.min_pixels, bare.pixels.max_pixels),
            (131_072, 786_432)
        );
        assert_eq!((bare.fps, bare.max_frames), (1.0, 16));
        assert!(VideoConfig::from_json_str(r#"{"fps": 0}"#).is_err());
    }
}
