//! `smart_resize`: the target size transformers picks for an image — both sides multiples of
//! `factor`, aspect ratio kept as closely as possible, pixel count within [min, max].
//! A line-by-line port of the Python function, including its round-half-to-even and its
//! floating-point operation order. Not for: resampling pixels (see `resize`).

use anyhow::{bail, Result};

/// Largest ratio between the longer and the shorter side that transformers accepts.
const MAX_ASPECT_RATIO: f64 = 200.0;

/// Returns the resized `(height, width)` for an image of `height` × `width` pixels.
pub fn smart_resize(
    height: usize,
    width: usize,
    factor: usize,
    min_pixels: usize,
    max_pixels: usize,
) -> Result<(usize, usize)> {
    if height == 0 || width == 0 || factor == 0 {
        bail!("cannot resize a {height}x{width} image to multiples of {factor}");
    }
    let (h, w, f) = (height as f64, width as f64, factor as f64);
    if h.max(w) / h.min(w) > MAX_ASPECT_RATIO {
        bail!(
            "image of {height}x{width} pixels: absolute aspect ratio must be smaller than \
             {MAX_ASPECT_RATIO}"
        );
    }
    // Python's round() rounds halves to even: 8.5 -> 8, 13.5 -> 14.
    let mut h_bar = (h / f).round_ties_even() as usize * factor;
    let mut w_bar = (w / f).round_ties_even() as usize * factor;
    let (h_pixels, w_pixels) = (height as u128, width as u128);
    if (h_bar as u128) * (w_bar as u128) > max_pixels as u128 {
        let beta = ((h_pixels * w_pixels) as f64 / max_pixels as f64).sqrt();
        h_bar = factor.max((h / beta / f).floor() as usize * factor);
        w_bar = factor.max((w / beta / f).floor() as usize * factor);
    } else if ((h_bar as u128) * (w_bar as u128)) < min_pixels as u128 {
        let beta = (min_pixels as f64 / (h_pixels * w_pixels) as f64).sqrt();
        h_bar = (h * beta / f).ceil() as usize * factor;
        w_bar = (w * beta / f).ceil() as usize * factor;
    }
    if h_bar == 0 || w_bar == 0 {
        bail!(
            "image of {height}x{width} pixels resizes to {h_bar}x{w_bar}; \
             raise min_pixels ({min_pixels})"
        );
    }
    Ok((h_bar, w_bar))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qwen3_vl(height: usize, width: usize) -> (usize, usize) {
        smart_resize(height, width, 32, 65_536, 16_777_216).unwrap()
    }

    #[test]
    fn matches_the_spec_table() {
        let table = [
            ((480, 640), (480, 640)),
            ((700, 1000), (704, 992)),
            ((100, 100), (256, 256)),
            ((224, 224), (256, 256)),
            ((48, 80), (224, 352)),
            ((1080, 1920), (1088, 1920)),
            ((2000, 3000), (1984, 3008)),
            ((5000, 5000), (4096, 4096)),
        ];
        for ((h, w), expected) in table {
            assert_eq!(qwen3_vl(h, w), expected, "input {h}x{w}");
        }
    }

    #[test]
    fn rounds_halves_to_even() {
        // 272/32 = 8.5 -> 8, 400/32 = 12.5 -> 12 (half away from zero would give 288x416).
        assert_eq!(qwen3_vl(272, 400), (256, 384));
        // 432/32 = 13.5 -> 14.
        assert_eq!(qwen3_vl(272, 432), (256, 448));
    }

    #[test]
    fn tokens_of_the_spec_table() {
        let tokens = |(h, w): (usize, usize)| (h / 16) * (w / 16) / 4;
        assert_eq!(tokens(qwen3_vl(700, 1000)), 682);
        assert_eq!(tokens(qwen3_vl(48, 80)), 77);
        assert_eq!(tokens(qwen3_vl(2000, 3000)), 5828);
        assert_eq!(tokens(qwen3_vl(5000, 5000)), 16384);
    }

    #[test]
    fn rejects_aspect_ratio_over_200() {
        let err = smart_resize(10, 2001, 32, 65_536, 16_777_216).unwrap_err();
        assert!(err.to_string().contains("aspect ratio"), "{err}");
        // Exactly 200 is still accepted.
        assert!(smart_resize(10, 2000, 32, 65_536, 16_777_216).is_ok());
    }

    #[test]
    fn rejects_empty_images_and_empty_results() {
        assert!(smart_resize(0, 10, 32, 65_536, 16_777_216).is_err());
        // 10 px rounds to 0 and a zero minimum budget does not scale it back up.
        assert!(smart_resize(10, 100, 32, 0, 16_777_216).is_err());
    }

    #[test]
    fn max_branch_keeps_at_least_one_factor_per_side() {
        // 20000x100: the short side would floor to 0 blocks, transformers keeps one.
        assert_eq!(
            smart_resize(20_000, 100, 32, 1024, 65_536).unwrap(),
            (3616, 32)
        );
    }
}
