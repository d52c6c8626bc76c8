//! Antialiased bicubic resize of RGB8 images, bit-exact with PyTorch's CPU uint8 path
//! (`F.interpolate(mode="bicubic", antialias=True)` on a uint8 tensor, which torchvision and the
//! transformers image processor use): Keys cubic with a = -0.5 and PIL's support/centering,
//! weights normalized in f64 then quantized to int16 at one dynamic precision per axis, integer
//! accumulation, horizontal pass first, each pass rounded and clamped to uint8.
//! Not for: choosing the target size (see `smart_resize`).

use std::borrow::Cow;

use image::RgbImage;
use rayon::prelude::*;

const CHANNELS: usize = 3;

/// Keys' cubic convolution kernel with a = -0.5, evaluated in PyTorch's operation order
/// (`HelperInterpCubic::aa_filter`).
fn keys_cubic(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A
    } else {
        0.0
    }
}

/// The integer filter of one axis: for every output sample the first input sample it reads, how
/// many it reads, and their fixed-point weights at `precision` fractional bits.
struct AxisFilter {
    first: Vec<usize>,
    len: Vec<usize>,
    /// Row stride of `weights` (the largest possible tap count of this axis).
    max_taps: usize,
    weights: Vec<i32>,
    precision: u32,
}

impl AxisFilter {
    /// Port of `_compute_index_ranges_int16_weights` with `_compute_indices_min_size_weights_aa`
    /// (align_corners=False, no explicit scale factor).
    fn new(in_size: usize, out_size: usize) -> Self {
        let scale = in_size as f64 / out_size as f64;
        let (support, invscale) = if scale >= 1.0 {
            (2.0 * scale, 1.0 / scale)
        } else {
            (2.0, 1.0)
        };
        let max_taps = support.ceil() as usize * 2 + 1;
        let mut first = Vec::with_capacity(out_size);
        let mut len = Vec::with_capacity(out_size);
        let mut real_weights = vec![0.0f64; out_size * max_taps];
        let mut wt_max = 0.0f64;
        for (i, row) in real_weights.chunks_exact_mut(max_taps).enumerate() {
            let center = scale * (i as f64 + 0.5);
            // `as i64` truncates toward zero like the C++ casts.
            let xmin = ((center - support + 0.5) as i64).max(0);
            let xsize = (((center + support + 0.5) as i64).min(in_size as i64) - xmin)
                .clamp(0, max_taps as i64);
            let taps = &mut row[..xsize as usize];
            let mut total = 0.0f64;
            for (j, w) in taps.iter_mut().enumerate() {
                *w = keys_cubic((j as f64 + xmin as f64 - center + 0.5) * invscale);
                total += *w;
            }
            if total != 0.0 {
                for w in taps.iter_mut() {
                    *w /= total;
                    wt_max = wt_max.max(*w);
                }
            }
            first.push(xmin as usize);
            len.push(xsize as usize);
        }
        // Largest precision at which the biggest weight, doubled, still fits in int16.
        let mut precision = 0u32;
        while precision < 22 {
            if (0.5 + wt_max * f64::from(1u32 << (precision + 1))) as i32 >= 1 << 15 {
                break;
            }
            precision += 1;
        }
        let unit = f64::from(1u32 << precision);
        // Rounded half away from zero; every value fits in int16 by the choice of precision.
        let weights = real_weights
            .iter()
            .map(|&w| {
                let v = w * unit;
                (if v < 0.0 { v - 0.5 } else { v + 0.5 }) as i32
            })
            .collect();
        Self {
            first,
            len,
            max_taps,
            weights,
            precision,
        }
    }

    /// First input index and the weights of output sample `i`.
    fn taps(&self, i: usize) -> (usize, &[i32]) {
        let row = i * self.max_taps;
        (self.first[i], &self.weights[row..row + self.len[i]])
    }

    /// The accumulator's starting value: half of one output step, so the shift rounds.
    fn rounding(&self) -> i32 {
        (1i32 << self.precision) >> 1
    }

    fn to_u8(&self, acc: i32) -> u8 {
        (acc >> self.precision).clamp(0, 255) as u8
    }
}

/// Resamples `img` to `out_height` × `out_width` (both > 0). A pass whose size is unchanged is
/// skipped, so an unchanged size returns an exact copy.
pub fn resize_bicubic_antialias(img: &RgbImage, out_height: u32, out_width: u32) -> RgbImage {
    let (in_width, in_height) = img.dimensions();
    let horizontal = if out_width != in_width {
        Cow::Owned(resize_rows(img, out_width))
    } else {
        Cow::Borrowed(img)
    };
    if out_height != in_height {
        resize_columns(&horizontal, out_height)
    } else {
        horizontal.into_owned()
    }
}

/// Horizontal pass: every row resampled to `out_width` pixels.
fn resize_rows(img: &RgbImage, out_width: u32) -> RgbImage {
    let (in_width, height) = img.dimensions();
    let filter = AxisFilter::new(in_width as usize, out_width as usize);
    let in_row_len = in_width as usize * CHANNELS;
    let mut out = RgbImage::new(out_width, height);
    let out_row_len = out_width as usize * CHANNELS;
    out.par_chunks_exact_mut(out_row_len)
        .zip(img.par_chunks_exact(in_row_len))
        .for_each(|(out_row, in_row)| {
            for (x, out_pixel) in out_row.chunks_exact_mut(CHANNELS).enumerate() {
                let (first, weights) = filter.taps(x);
                let mut acc = [filter.rounding(); CHANNELS];
                let source = &in_row[first * CHANNELS..(first + weights.len()) * CHANNELS];
                for (&w, in_pixel) in weights.iter().zip(source.chunks_exact(CHANNELS)) {
                    for (a, &v) in acc.iter_mut().zip(in_pixel) {
                        *a += w * i32::from(v);
                    }
                }
                for (o, a) in out_pixel.iter_mut().zip(acc) {
                    *o = filter.to_u8(a);
                }
            }
        });
    out
}

/// Vertical pass: every column resampled to `out_height` pixels, one whole output row at a time.
fn resize_columns(img: &RgbImage, out_height: u32) -> RgbImage {
    let (width, in_height) = img.dimensions();
    let filter = AxisFilter::new(in_height as usize, out_height as usize);
    let row_len = width as usize * CHANNELS;
    let source: &[u8] = img;
    let mut out = RgbImage::new(width, out_height);
    out.par_chunks_exact_mut(row_len).enumerate().for_each_init(
        || vec![0i32; row_len],
        |acc, (y, out_row)| {
            let (first, weights) = filter.taps(y);
            acc.fill(filter.rounding());
            for (j, &w) in weights.iter().enumerate() {
                let start = (first + j) * row_len;
                let in_row = &source[start..start + row_len];
                for (a, &v) in acc.iter_mut().zip(in_row) {
                    *a += w * i32::from(v);
                }
            }
            for (o, &a) in out_row.iter_mut().zip(acc.iter()) {
                *o = filter.to_u8(a);
            }
        },
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient(width: u32, height: u32) -> RgbImage {
        RgbImage::from_fn(width, height, |x, y| {
            image::Rgb([(x * 7 + y * 3) as u8, (x * 13) as u8, (255 - y * 5) as u8])
        })
    }

    #[test]
    fn unchanged_size_is_an_exact_copy() {
        let img = gradient(17, 9);
        assert_eq!(resize_bicubic_antialias(&img, 9, 17), img);
    }

    #[test]
    fn constant_image_stays_constant() {
        let img = RgbImage::from_pixel(37, 23, image::Rgb([200, 13, 255]));
        for (h, w) in [(64, 64), (5, 9), (23, 100), (100, 37), (1, 1)] {
            let out = resize_bicubic_antialias(&img, h, w);
            assert_eq!(out.dimensions(), (w, h));
            assert!(out.pixels().all(|p| p.0 == [200, 13, 255]), "{h}x{w}");
        }
    }

    #[test]
    fn weights_of_a_2x_upscale_are_torchs_int16_table() {
        // 4 -> 8: scale 0.5, support 2. Output 0 has center 0.25 and reads inputs 0..2 with
        // cubic(0.25) = 0.8671875 and cubic(1.25) = -0.0703125, normalized by their sum
        // 0.796875: 1.0882 and -0.0882; the largest weight > 1 gives precision 14.
        let filter = AxisFilter::new(4, 8);
        assert_eq!(filter.precision, 14);
        assert_eq!(filter.taps(0), (0, &[17830, -1446][..]));
        assert_eq!(filter.taps(3), (0, &[-1152, 14208, 3712, -384][..]));
        assert_eq!(filter.taps(4), (0, &[-384, 3712, 14208, -1152][..]));
        assert_eq!(filter.taps(7), (2, &[-1446, 17830][..]));
    }

    #[test]
    fn weights_of_a_2x_downscale_use_the_widened_kernel() {
        // 8 -> 4: scale 2, support 4, up to 9 taps; all weights < 0.5 give precision 16.
        let filter = AxisFilter::new(8, 4);
        assert_eq!((filter.max_taps, filter.precision), (9, 16));
        assert_eq!(filter.taps(0), (0, &[30437, 30437, 7952, -2468, -823][..]));
        assert_eq!(
            filter.taps(2),
            (1, &[-759, -2277, 7338, 28087, 28087, 7338, -2277][..])
        );
    }

    #[test]
    fn upscale_of_a_step_edge_matches_hand_computed_pixels() {
        // One row [0, 0, 255, 255] -> 8 px. Output 3 = (8192 + 255 * (3712 - 384)) >> 14 = 52,
        // output 4 = (8192 + 255 * (14208 - 1152)) >> 14 = 203; the overshoot clamps to 0/255.
        let row = RgbImage::from_fn(4, 1, |x, _| image::Rgb([if x >= 2 { 255 } else { 0 }; 3]));
        let out = resize_bicubic_antialias(&row, 1, 8);
        let reds: Vec<u8> = out.pixels().map(|p| p.0[0]).collect();
        assert_eq!(reds, [0, 0, 0, 52, 203, 255, 255, 255]);
    }

    #[test]
    fn downscale_of_a_step_edge_matches_hand_computed_pixels() {
        // [0, 0, 0, 0, 255, 255, 255, 255] -> 4 px with the table above:
        // output 1 = (32768 + 255 * (7338 - 2277 - 759)) >> 16 = 17, output 2 mirrors to 238.
        let row = RgbImage::from_fn(8, 1, |x, _| image::Rgb([if x >= 4 { 255 } else { 0 }; 3]));
        let out = resize_bicubic_antialias(&row, 1, 4);
        let reds: Vec<u8> = out.pixels().map(|p| p.0[0]).collect();
        assert_eq!(reds, [0, 17, 238, 255]);
    }

    #[test]
    fn passes_are_separable_horizontal_then_vertical() {
        let img = gradient(13, 11);
        let both = resize_bicubic_antialias(&img, 7, 29);
        let by_hand = resize_columns(&resize_rows(&img, 29), 7);
        assert_eq!(both, by_hand);
        assert_ne!(both, resize_rows(&resize_columns(&img, 7), 29));
    }

    #[test]
    fn vertical_pass_equals_horizontal_pass_on_the_transpose() {
        let img = gradient(6, 19);
        let transpose =
            |im: &RgbImage| RgbImage::from_fn(im.height(), im.width(), |x, y| *im.get_pixel(y, x));
        let vertical = resize_columns(&img, 8);
        let horizontal = resize_rows(&transpose(&img), 8);
        assert_eq!(transpose(&horizontal), vertical);
    }
}
