//! JPEG pixels decoded by libjpeg-turbo's algorithms (through mozjpeg, a libjpeg-turbo
//! fork built from source): the same integer IDCT and "fancy" chroma upsampling as the
//! libjpeg-turbo inside torchvision, so glimpse's pixels equal transformers' bit for bit
//! (the `image` crate's decoder differs by a few levels at colour edges).
use std::panic::{catch_unwind, AssertUnwindSafe};

use anyhow::{anyhow, Result};
use image::RgbImage;

/// Decodes to RGB8, or `None` when libjpeg cannot produce RGB for this file (CMYK / YCCK),
/// in which case the caller uses another decoder.
pub fn decode_jpeg_rgb(bytes: &[u8]) -> Result<Option<RgbImage>> {
    // libjpeg reports fatal errors by unwinding (mozjpeg's error manager, without the
    // panic hook); catch_unwind turns them back into errors.
    let decoded = catch_unwind(AssertUnwindSafe(|| -> std::io::Result<Option<RgbImage>> {
        let decompress = mozjpeg::Decompress::new_mem(bytes)?;
        if matches!(
            decompress.color_space(),
            mozjpeg::ColorSpace::JCS_CMYK | mozjpeg::ColorSpace::JCS_YCCK
        ) {
            return Ok(None);
        }
        let mut started = decompress.rgb()?;
        let (width, height) = (started.width() as u32, started.height() as u32);
        let pixels: Vec<[u8; 3]> = started.read_scanlines()?;
        started.finish()?;
        Ok(RgbImage::from_raw(width, height, pixels.into_flattened()))
    }));
    match decoded {
        Ok(Ok(Some(image))) => Ok(Some(image)),
        Ok(Ok(None)) => Ok(None),
        Ok(Err(e)) => Err(anyhow!("cannot decode the JPEG image data: {e}")),
        Err(payload) => {
            let message = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "libjpeg error".into());
            Err(anyhow!(
                "cannot decode the JPEG image data (corrupt or truncated): {message}"
            ))
        }
    }
}
