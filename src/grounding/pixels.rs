//! Grounding coordinates (0–1000) → pixels of the image the user gave. The image processor
//! stretches the whole upright image onto its resized grid (`smart_resize` scales each side by
//! its own factor) and the model's scale spans that grid edge to edge, so a coordinate `v`
//! is the fraction `v / 1000` of the side on the resized image and therefore on the original:
//! going through the fraction undoes the resize exactly, whatever size it chose. Coordinates
//! are pixel edges rounded to the nearest integer (halves away from zero).
use super::parse::{Shape, SCALE};

/// A box (`[x1, y1, x2, y2]`, edges: it covers columns `x1..x2` and rows `y1..y2`) or a
/// point (`[x, y]`, the pixel it falls on) in pixels of an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PixelShape {
    Box([u32; 4]),
    Point([u32; 2]),
}

/// Size of an image as the user sees it (after EXIF orientation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageSize {
    pub width: u32,
    pub height: u32,
}

impl ImageSize {
    /// From the preprocessor's `(height, width)`.
    pub fn from_hw((height, width): (usize, usize)) -> Self {
        let side = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        Self {
            width: side(width),
            height: side(height),
        }
    }
}

/// `shape` in pixels of an image of `size`.
pub fn to_pixels(shape: Shape, size: ImageSize) -> PixelShape {
    let (w, h) = (size.width, size.height);
    match shape {
        Shape::Box([x1, y1, x2, y2]) => {
            PixelShape::Box([edge(x1, w), edge(y1, h), edge(x2, w), edge(y2, h)])
        }
        // A point names a pixel, so the far edge (1000) falls on the last one.
        Shape::Point([x, y]) => PixelShape::Point([
            edge(x, w).min(w.saturating_sub(1)),
            edge(y, h).min(h.saturating_sub(1)),
        ]),
    }
}

fn edge(value: f64, side: u32) -> u32 {
    (value / SCALE * f64::from(side)).round() as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::preprocess::smart_resize;

    fn size(width: u32, height: u32) -> ImageSize {
        ImageSize { width, height }
    }

    #[test]
    fn boxes_on_odd_sized_images_land_on_exact_pixels() {
        // 517 x 333 (the fixture odd_333x517.png): 250/1000 * 517 = 129.25 -> 129,
        // 500/1000 * 333 = 166.5 -> 167, 750/1000 * 517 = 387.75 -> 388, 999/1000 * 333 = 332.667 -> 333.
        assert_eq!(
            to_pixels(Shape::Box([250.0, 500.0, 750.0, 999.0]), size(517, 333)),
            PixelShape::Box([129, 167, 388, 333])
        );
        // The full scale is the whole image.
        assert_eq!(
            to_pixels(Shape::Box([0.0, 0.0, 1000.0, 1000.0]), size(517, 333)),
            PixelShape::Box([0, 0, 517, 333])
        );
        // 97 x 3001: 333/1000 * 97 = 32.301 -> 32; 0.5/1000 * 3001 = 1.5005 -> 2;
        // 667/1000 * 97 = 64.699 -> 65; 1/1000 * 3001 = 3.001 -> 3.
        assert_eq!(
            to_pixels(Shape::Box([333.0, 0.5, 667.0, 1.0]), size(97, 3001)),
            PixelShape::Box([32, 2, 65, 3])
        );
    }

    #[test]
    fn points_fall_on_a_pixel_of_the_image() {
        assert_eq!(
            to_pixels(Shape::Point([500.0, 500.0]), size(517, 333)),
            PixelShape::Point([259, 167])
        );
        assert_eq!(
            to_pixels(Shape::Point([1000.0, 1000.0]), size(517, 333)),
            PixelShape::Point([516, 332])
        );
    }

    #[test]
    fn mapping_through_the_resized_grid_gives_the_same_pixels() {
        // What the model saw is the smart_resize grid; a coordinate that sits on a grid pixel
        // edge there maps back to the original by the ratio of the sides.
        for (h, w) in [(333, 517), (300, 200), (64, 96), (1081, 1919), (5000, 37)] {
            let Ok((rh, rw)) = smart_resize(h, w, 32, 65_536, 16_777_216) else {
                continue;
            };
            for resized_x in [0, 1, rw / 3, rw / 2, rw - 1, rw] {
                let v = resized_x as f64 / rw as f64 * SCALE;
                let expected = (resized_x as f64 * w as f64 / rw as f64).round() as u32;
                let PixelShape::Box([x, _, _, _]) =
                    to_pixels(Shape::Box([v, 0.0, v, 0.0]), ImageSize::from_hw((h, w)))
                else {
                    unreachable!()
                };
                assert_eq!(x, expected, "{h}x{w} resized {rh}x{rw}, grid x {resized_x}");
            }
        }
    }
}
