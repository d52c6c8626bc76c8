//! Parity of `glimpse::preprocess` with the transformers Qwen3-VL image processor (torchvision
//! backend), against the ground truth in tests/fixtures/images/ written by
//! scripts/make_fixtures.py: sizes, grids under several pixel budgets, the resized uint8 image
//! and `pixel_values`, plus how close JPEG decoding comes to libjpeg-turbo.

use std::collections::BTreeMap;
use std::path::PathBuf;

use glimpse::preprocess::{
    load_image, preprocess, resize_bicubic_antialias, smart_resize, PreprocessConfig,
};
use image::RgbImage;
use safetensors::{Dtype, SafeTensors};
use serde::Deserialize;

#[derive(Deserialize)]
struct Expected {
    images: BTreeMap<String, ImageCase>,
    grids: Vec<GridCase>,
    smart_resize_table: SmartResizeTable,
}

#[derive(Deserialize)]
struct ImageCase {
    original_hw: (usize, usize),
    resized_hw: (usize, usize),
    image_grid_thw: [usize; 3],
    num_image_tokens: usize,
    resampled: bool,
    pixel_values_stored: bool,
}

#[derive(Deserialize)]
struct GridCase {
    image: String,
    min_pixels: usize,
    max_pixels: usize,
    resized_hw: (usize, usize),
    image_grid_thw: [usize; 3],
}

#[derive(Deserialize)]
struct SmartResizeTable {
    min_pixels: usize,
    max_pixels: usize,
    factor: usize,
    rows: Vec<SmartResizeRow>,
}

#[derive(Deserialize)]
struct SmartResizeRow {
    input_hw: (usize, usize),
    resized_hw: (usize, usize),
}

/// How far our JPEG decode may stray from libjpeg-turbo's (torchvision's decoder): zune-jpeg,
/// the `image` crate's decoder, has another IDCT and chroma upsampling, which costs a fraction of
/// a level on average and up to ~17 levels on a few samples at sharp chroma edges.
const JPEG_DECODE_MAX_MEAN_LEVELS: f64 = 0.25;
const JPEG_DECODE_MAX_LEVELS: u8 = 32;

struct Fixtures {
    dir: PathBuf,
    expected: Expected,
    tensors: Vec<u8>,
}

impl Fixtures {
    fn load() -> Self {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/images");
        let read = |name: &str| {
            std::fs::read(dir.join(name)).unwrap_or_else(|e| {
                panic!(
                    "{}: {e} (run scripts/make_fixtures.py)",
                    dir.join(name).display()
                )
            })
        };
        let expected = serde_json::from_slice(&read("expected.json")).expect("expected.json");
        let tensors = read("pixel_values.safetensors");
        Self {
            dir,
            expected,
            tensors,
        }
    }

    fn tensor(&self, name: &str, dtype: Dtype) -> (Vec<usize>, &[u8]) {
        let file = SafeTensors::deserialize(&self.tensors).expect("pixel_values.safetensors");
        let view = file
            .tensor(name)
            .unwrap_or_else(|e| panic!("tensor '{name}': {e}"));
        assert_eq!(view.dtype(), dtype, "tensor '{name}'");
        (view.shape().to_vec(), view.data())
    }

    /// A uint8 `[3, h, w]` tensor as an RGB image.
    fn planar_image(&self, name: &str) -> RgbImage {
        let (shape, data) = self.tensor(name, Dtype::U8);
        let [3, h, w] = shape[..] else {
            panic!("tensor '{name}' has shape {shape:?}, expected [3, h, w]")
        };
        RgbImage::from_fn(w as u32, h as u32, |x, y| {
            let at = |c: usize| data[(c * h + y as usize) * w + x as usize];
            image::Rgb([at(0), at(1), at(2)])
        })
    }

    fn pixel_values(&self, name: &str) -> (Vec<usize>, Vec<f32>) {
        let (shape, data) = self.tensor(name, Dtype::F32);
        let values = data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        (shape, values)
    }

    fn decode(&self, name: &str) -> RgbImage {
        let bytes = std::fs::read(self.dir.join(name)).expect("fixture image");
        load_image(&bytes).unwrap_or_else(|e| panic!("{name}: {e:#}"))
    }

    /// The image transformers resized: our own decode for lossless files, the processor's own
    /// decode for JPEGs, so that the resize and patchify are tested apart from the JPEG decoder.
    fn processor_input(&self, name: &str) -> RgbImage {
        if is_jpeg(name) {
            self.planar_image(&format!("{name}.decoded_u8"))
        } else {
            self.decode(name)
        }
    }
}

fn is_jpeg(name: &str) -> bool {
    name.ends_with(".jpg") || name.ends_with(".jpeg")
}

fn hw(img: &RgbImage) -> (usize, usize) {
    (img.height() as usize, img.width() as usize)
}

#[test]
fn sizes_grids_and_token_counts_match_transformers() {
    let fixtures = Fixtures::load();
    let config = PreprocessConfig::default();
    for (name, case) in &fixtures.expected.images {
        let decoded = fixtures.decode(name);
        assert_eq!(
            hw(&decoded),
            case.original_hw,
            "{name}: decoded size (after EXIF)"
        );
        let out = preprocess(&decoded, &config).unwrap();
        assert_eq!(out.resized_hw, case.resized_hw, "{name}: resized size");
        assert_eq!(out.grid_thw, case.image_grid_thw, "{name}: image_grid_thw");
        assert_eq!(
            out.n_merged_tokens(),
            case.num_image_tokens,
            "{name}: image tokens"
        );
        assert_eq!(
            out.resized_hw != out.original_hw,
            case.resampled,
            "{name}: resampled"
        );
    }
}

#[test]
fn grids_match_transformers_under_every_pixel_budget() {
    let fixtures = Fixtures::load();
    assert!(!fixtures.expected.grids.is_empty());
    for case in &fixtures.expected.grids {
        let config = PreprocessConfig::default()
            .with_pixel_budget(Some(case.min_pixels), Some(case.max_pixels))
            .unwrap();
        let out = preprocess(&fixtures.processor_input(&case.image), &config).unwrap();
        let budget = format!(
            "{} with min {} max {}",
            case.image, case.min_pixels, case.max_pixels
        );
        assert_eq!(out.resized_hw, case.resized_hw, "{budget}: resized size");
        assert_eq!(
            out.grid_thw, case.image_grid_thw,
            "{budget}: image_grid_thw"
        );
    }
}

#[test]
fn smart_resize_matches_transformers_table() {
    let table = Fixtures::load().expected.smart_resize_table;
    for row in &table.rows {
        let (h, w) = row.input_hw;
        let got = smart_resize(h, w, table.factor, table.min_pixels, table.max_pixels).unwrap();
        assert_eq!(got, row.resized_hw, "smart_resize({h}, {w})");
    }
}

#[test]
fn resized_images_are_bit_exact() {
    let fixtures = Fixtures::load();
    for (name, case) in &fixtures.expected.images {
        let input = fixtures.processor_input(name);
        let expected = fixtures.planar_image(&format!("{name}.resized_u8"));
        let (h, w) = case.resized_hw;
        let resized = resize_bicubic_antialias(&input, h as u32, w as u32);
        let differing = resized
            .iter()
            .zip(expected.iter())
            .filter(|(a, b)| a != b)
            .count();
        println!("{name}: {differing} resized samples differ from torch");
        assert_eq!(resized.dimensions(), expected.dimensions(), "{name}");
        assert_eq!(
            differing, 0,
            "{name}: resized uint8 image differs from torch"
        );
    }
}

#[test]
fn pixel_values_match_transformers() {
    let fixtures = Fixtures::load();
    let config = PreprocessConfig::default();
    let stored: Vec<_> = fixtures
        .expected
        .images
        .iter()
        .filter(|(_, c)| c.pixel_values_stored)
        .collect();
    assert!(!stored.is_empty());
    for (name, case) in stored {
        let (shape, expected) = fixtures.pixel_values(name);
        let out = preprocess(&fixtures.processor_input(name), &config).unwrap();
        assert_eq!(
            shape,
            [out.n_patches(), out.row_len()],
            "{name}: pixel_values shape"
        );
        let max_diff = out
            .data
            .iter()
            .zip(&expected)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        println!(
            "{name}: resampled={} max |pixel_values diff| = {max_diff:e}",
            case.resampled
        );
        assert!(
            max_diff <= 1e-5,
            "{name}: pixel_values differ by {max_diff}"
        );
        assert_eq!(max_diff, 0.0, "{name}: pixel_values are not bit-exact");
    }
}

#[test]
fn jpeg_decoding_is_close_to_libjpeg_turbo() {
    let fixtures = Fixtures::load();
    let jpegs: Vec<_> = fixtures
        .expected
        .images
        .keys()
        .filter(|n| is_jpeg(n))
        .collect();
    assert!(!jpegs.is_empty());
    for name in jpegs {
        let ours = fixtures.decode(name);
        let theirs = fixtures.planar_image(&format!("{name}.decoded_u8"));
        assert_eq!(
            ours.dimensions(),
            theirs.dimensions(),
            "{name}: decoded size"
        );
        let diffs: Vec<u8> = ours
            .iter()
            .zip(theirs.iter())
            .map(|(a, b)| a.abs_diff(*b))
            .collect();
        let max = diffs.iter().copied().max().unwrap_or(0);
        let mean = diffs.iter().map(|&d| f64::from(d)).sum::<f64>() / diffs.len() as f64;
        let differing = diffs.iter().filter(|&&d| d != 0).count();
        println!(
            "{name}: {differing}/{} decoded samples differ from libjpeg-turbo, \
             mean {mean:.4}, max {max} levels",
            diffs.len()
        );
        assert!(
            mean <= JPEG_DECODE_MAX_MEAN_LEVELS,
            "{name}: mean decode difference {mean}"
        );
        assert!(
            max <= JPEG_DECODE_MAX_LEVELS,
            "{name}: decode differs by {max} levels"
        );
    }
}
