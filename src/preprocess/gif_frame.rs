//! The first frame of a GIF as torchvision's `decode_gif` returns it, which is what transformers
//! feeds the processor for a GIF path, URL or base64 string: the first image at its own size
//! (canvas size and offsets ignored), transparent pixels filled with the background color entry,
//! every other pixel its palette color. Not for: animation (later frames are never read).

use std::io::Cursor;
use std::num::NonZeroU64;

use anyhow::{anyhow, bail, Context, Result};
use image::RgbImage;

/// Decodes the first frame, refusing frames that declare more than `max_pixels` pixels.
pub fn decode_first_gif_frame(bytes: &[u8], max_pixels: u64) -> Result<RgbImage> {
    let mut options = gif::DecodeOptions::new();
    options.set_color_output(gif::ColorOutput::Indexed);
    // One byte per pixel in indexed output.
    options.set_memory_limit(gif::MemoryLimit::Bytes(
        NonZeroU64::new(max_pixels).unwrap_or(NonZeroU64::MIN),
    ));
    let mut decoder = options
        .read_info(Cursor::new(bytes))
        .context("cannot read the Gif image header")?;
    let background = decoder.bg_color();
    let frame = decoder
        .next_frame_info()
        .context("cannot read the Gif frame header")?
        .ok_or_else(|| anyhow!("Gif file contains no image"))?;
    let (width, height, transparent) = (frame.width, frame.height, frame.transparent);
    if width == 0 || height == 0 {
        bail!("Gif image has no pixels ({width}x{height})");
    }
    let pixels = u64::from(width) * u64::from(height);
    if pixels > max_pixels {
        bail!("Gif image is {width}x{height} = {pixels} pixels, over the limit of {max_pixels}");
    }
    let mut indices = vec![0u8; decoder.buffer_size()];
    decoder
        .read_into_buffer(&mut indices)
        .context("cannot decode the Gif image data (corrupt or truncated)")?;
    let palette = decoder.palette().context("Gif frame has no color table")?;
    // giflib reads past a short palette; an index outside it is black here.
    let color = |index: usize| -> [u8; 3] {
        palette
            .get(index * 3..index * 3 + 3)
            .map_or([0; 3], |rgb| [rgb[0], rgb[1], rgb[2]])
    };
    let fill = background.map_or([0; 3], color);
    let mut rgb = RgbImage::new(u32::from(width), u32::from(height));
    for (out, &index) in rgb.chunks_exact_mut(3).zip(&indices) {
        let pixel = if Some(index) == transparent {
            fill
        } else {
            color(usize::from(index))
        };
        out.copy_from_slice(&pixel);
    }
    Ok(rgb)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 3x2 GIF with a 4-color global palette, background index 1, transparent index 2.
    fn tiny_gif() -> Vec<u8> {
        let palette = [10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120];
        let mut bytes = Vec::new();
        {
            let mut encoder = gif::Encoder::new(&mut bytes, 3, 2, &palette).unwrap();
            let mut frame = gif::Frame::from_indexed_pixels(3, 2, vec![0, 2, 3, 3, 2, 0], Some(2));
            frame.palette = None;
            encoder.write_frame(&frame).unwrap();
        }
        // Logical screen descriptor byte 5 (file offset 11) is the background color index.
        bytes[11] = 1;
        bytes
    }

    #[test]
    fn transparent_pixels_take_the_background_color() {
        let img = decode_first_gif_frame(&tiny_gif(), 100).unwrap();
        let rows: Vec<[u8; 3]> = img.pixels().map(|p| p.0).collect();
        assert_eq!(
            rows,
            [
                [10, 20, 30],
                [40, 50, 60],
                [100, 110, 120],
                [100, 110, 120],
                [40, 50, 60],
                [10, 20, 30]
            ]
        );
    }

    #[test]
    fn frames_over_the_pixel_limit_are_refused() {
        let err = decode_first_gif_frame(&tiny_gif(), 5).unwrap_err();
        assert!(err.to_string().contains("over the limit"), "{err:#}");
    }

    #[test]
    fn truncated_data_is_an_error() {
        let gif = tiny_gif();
        assert!(decode_first_gif_frame(&gif[..gif.len() - 8], 100).is_err());
        assert!(decode_first_gif_frame(&gif[..8], 100).is_err());
    }
}
