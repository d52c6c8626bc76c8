//! Draws detections over an image (`glimpse run --draw`): box outlines and point markers, one
//! colour per label, lines 1/200 of the shorter side thick (at least 2 px) so they show on
//! any size. A box's outline lies inside it: its outer edge is exactly the box's pixel edges.
use image::{Rgb, RgbImage};

use super::pixels::PixelShape;

/// Distinct, saturated colours, reused in order for the labels of an answer.
pub const PALETTE: [[u8; 3]; 8] = [
    [230, 25, 75],
    [60, 180, 75],
    [0, 130, 200],
    [245, 130, 48],
    [145, 30, 180],
    [70, 240, 240],
    [240, 50, 230],
    [255, 225, 25],
];

/// Line width for an image of `width` × `height`.
pub fn line_width(width: u32, height: u32) -> u32 {
    (width.min(height) / 200).max(2)
}

/// Draws `shape` in `PALETTE[colour % PALETTE.len()]`.
pub fn draw_shape(image: &mut RgbImage, shape: PixelShape, colour: usize) {
    let rgb = Rgb(PALETTE[colour % PALETTE.len()]);
    let (width, height) = image.dimensions();
    if width == 0 || height == 0 {
        return;
    }
    let line = line_width(width, height);
    match shape {
        PixelShape::Box([x1, y1, x2, y2]) => {
            // At least one pixel wide and tall, inside the image.
            let x1 = x1.min(width - 1);
            let y1 = y1.min(height - 1);
            let x2 = x2.clamp(x1 + 1, width);
            let y2 = y2.clamp(y1 + 1, height);
            let mut fill = |xs: std::ops::Range<u32>, ys: std::ops::Range<u32>| {
                for y in ys {
                    for x in xs.clone() {
                        image.put_pixel(x, y, rgb);
                    }
                }
            };
            let thick_x = line.min(x2 - x1);
            let thick_y = line.min(y2 - y1);
            fill(x1..x2, y1..y1 + thick_y);
            fill(x1..x2, y2 - thick_y..y2);
            fill(x1..x1 + thick_x, y1..y2);
            fill(x2 - thick_x..x2, y1..y2);
        }
        PixelShape::Point([cx, cy]) => {
            let radius = i64::from(2 * line);
            for dy in -radius..=radius {
                for dx in -radius..=radius {
                    let (x, y) = (i64::from(cx) + dx, i64::from(cy) + dy);
                    let inside_image =
                        (0..i64::from(width)).contains(&x) && (0..i64::from(height)).contains(&y);
                    if dx * dx + dy * dy <= radius * radius && inside_image {
                        image.put_pixel(x as u32, y as u32, rgb);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn box_outline_is_inside_the_box_edges() {
        let mut image = RgbImage::from_pixel(100, 60, Rgb([0, 0, 0]));
        draw_shape(&mut image, PixelShape::Box([10, 20, 50, 40]), 0);
        let red = Rgb(PALETTE[0]);
        let black = Rgb([0, 0, 0]);
        // Left edge column 10 and the right edge's last column 49 are drawn, 9 and 50 are not.
        assert_eq!(*image.get_pixel(10, 30), red);
        assert_eq!(*image.get_pixel(11, 30), red);
        assert_eq!(*image.get_pixel(12, 30), black);
        assert_eq!(*image.get_pixel(9, 30), black);
        assert_eq!(*image.get_pixel(49, 30), red);
        assert_eq!(*image.get_pixel(50, 30), black);
        assert_eq!(*image.get_pixel(30, 20), red);
        assert_eq!(*image.get_pixel(30, 19), black);
        assert_eq!(*image.get_pixel(30, 39), red);
        assert_eq!(*image.get_pixel(30, 40), black);
        assert_eq!(*image.get_pixel(30, 30), black, "inside stays clear");
    }

    #[test]
    fn shapes_at_and_past_the_border_stay_inside_the_image() {
        let mut image = RgbImage::new(8, 8);
        draw_shape(&mut image, PixelShape::Box([0, 0, 8, 8]), 1);
        draw_shape(&mut image, PixelShape::Box([9, 9, 20, 20]), 2);
        draw_shape(&mut image, PixelShape::Point([7, 7]), 3);
        assert_eq!(*image.get_pixel(7, 7), Rgb(PALETTE[3]));
        let mut empty = RgbImage::new(0, 0);
        draw_shape(&mut empty, PixelShape::Point([0, 0]), 0);
    }
}
