//! Image and video preprocessing, identical to the Hugging Face Qwen3-VL image and video
//! processors (torchvision backend): decode → `smart_resize` target size → PyTorch's uint8
//! antialiased bicubic resize → fused `(v - mean') / std'` normalization → merge-block-major
//! patch rows and `image_grid_thw` (videos: see `video`).
//! Not for: the vision tower itself (see `model`).

mod config;
mod decode;
mod gif_frame;
mod jpeg;
mod normalize;
mod patchify;
mod resize;
mod smart_resize;
mod video;
mod video_decode;

use std::borrow::Cow;

use anyhow::{Context, Result};
use image::RgbImage;

pub use config::PreprocessConfig;
pub use decode::{load_image, load_image_with_limit, DEFAULT_MAX_DECODED_PIXELS};
pub use resize::resize_bicubic_antialias;
pub use smart_resize::smart_resize;
pub use video::{
    frame_size, patch_timestamps, preprocess_video, sample_frame_indices, smart_resize_video,
    FrameCollector, SampledVideo, VideoConfig, VideoPixels,
};
pub use video_decode::{decode_video, decode_video_file};

/// The processor's output for one image: `pixel_values` and `image_grid_thw`.
#[derive(Debug, Clone, PartialEq)]
pub struct PixelValues {
    /// `[n_patches, 3 * temporal_patch_size * patch_size²]` row-major f32.
    pub data: Vec<f32>,
    /// Patch grid `[t, h, w]` (`image_grid_thw`); `t` is 1 for a still image.
    pub grid_thw: [usize; 3],
    /// Size of the decoded image, `(height, width)`.
    pub original_hw: (usize, usize),
    /// Size after `smart_resize`, `(height, width)`.
    pub resized_hw: (usize, usize),
    /// Side of the patch block folded into one token by the vision merger.
    pub merge_size: usize,
}

impl PixelValues {
    /// Number of vision patches (rows of `data`).
    pub fn n_patches(&self) -> usize {
        self.grid_thw.iter().product()
    }

    /// Number of `<|image_pad|>` tokens the image occupies after the 2×2 merger.
    pub fn n_merged_tokens(&self) -> usize {
        self.n_patches() / (self.merge_size * self.merge_size)
    }

    /// Length of one patch row (1536 for Qwen3-VL).
    pub fn row_len(&self) -> usize {
        self.data.len().checked_div(self.n_patches()).unwrap_or(0)
    }
}

/// Runs the whole processor on one decoded image.
pub fn preprocess(img: &RgbImage, config: &PreprocessConfig) -> Result<PixelValues> {
    config.validate().context("preprocess config")?;
    let original_hw = (img.height() as usize, img.width() as usize);
    let resized_hw = smart_resize(
        original_hw.0,
        original_hw.1,
        config.factor(),
        config.min_pixels,
        config.max_pixels,
    )?;
    let resized = if resized_hw == original_hw {
        Cow::Borrowed(img)
    } else {
        let side = |v: usize| {
            u32::try_from(v).with_context(|| format!("resized size {resized_hw:?} is too large"))
        };
        let (height, width) = (side(resized_hw.0)?, side(resized_hw.1)?);
        Cow::Owned(resize_bicubic_antialias(img, height, width))
    };
    let table = normalize::NormalizeTable::new(config);
    let (data, grid_thw) = patchify::patchify(&resized, config, &table)?;
    Ok(PixelValues {
        data,
        grid_thw,
        original_hw,
        resized_hw,
        merge_size: config.merge_size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_already_on_the_grid_is_not_resampled() {
        let img = RgbImage::from_fn(320, 256, |x, y| image::Rgb([x as u8, y as u8, 7]));
        let out = preprocess(&img, &PreprocessConfig::default()).unwrap();
        assert_eq!(out.original_hw, (256, 320));
        assert_eq!(out.resized_hw, (256, 320));
        assert_eq!(out.grid_thw, [1, 16, 20]);
        assert_eq!(
            (out.n_patches(), out.n_merged_tokens(), out.row_len()),
            (320, 80, 1536)
        );
        // Row 0 is the top-left patch: first sample is pixel (0, 0) red = 0 -> -1.
        assert_eq!(out.data[0], -1.0);
        assert_eq!(out.data[1], (1.0 - 127.5) / 127.5);
    }

    #[test]
    fn off_grid_image_is_resized_to_the_smart_resize_size() {
        let img = RgbImage::from_pixel(100, 100, image::Rgb([255, 0, 128]));
        let out = preprocess(&img, &PreprocessConfig::default()).unwrap();
        assert_eq!(out.resized_hw, (256, 256));
        assert_eq!(out.grid_thw, [1, 16, 16]);
        assert_eq!(out.n_merged_tokens(), 64);
        let row = &out.data[..out.row_len()];
        assert!(row[..512].iter().all(|&v| v == 1.0));
        assert!(row[512..1024].iter().all(|&v| v == -1.0));
        assert!(row[1024..].iter().all(|&v| v == (128.0 - 127.5) / 127.5));
    }

    #[test]
    fn request_pixel_budget_changes_the_grid() {
        let img = RgbImage::from_pixel(1920, 1080, image::Rgb([1, 2, 3]));
        let small = PreprocessConfig::default()
            .with_pixel_budget(None, Some(200_000))
            .unwrap();
        let out = preprocess(&img, &small).unwrap();
        assert_eq!(
            out.resized_hw,
            smart_resize(1080, 1920, 32, 65_536, 200_000).unwrap()
        );
        assert!(out.resized_hw.0 * out.resized_hw.1 <= 200_000);
    }

    #[test]
    #[ignore = "timing report, run with --ignored --nocapture"]
    fn speed_of_a_1920x1080_image() {
        let img = RgbImage::from_fn(1920, 1080, |x, y| {
            image::Rgb([(x % 251) as u8, (y % 241) as u8, ((x + y) % 239) as u8])
        });
        let config = PreprocessConfig::default();
        preprocess(&img, &config).unwrap();
        let runs = 10;
        let start = std::time::Instant::now();
        for _ in 0..runs {
            std::hint::black_box(preprocess(&img, &config).unwrap());
        }
        println!(
            "preprocess 1920x1080 -> 1088x1920: {:?} per image",
            start.elapsed() / runs
        );
        let resize_start = std::time::Instant::now();
        for _ in 0..runs {
            std::hint::black_box(resize_bicubic_antialias(&img, 1088, 1920));
        }
        println!("  of which resize: {:?}", resize_start.elapsed() / runs);
    }
}
