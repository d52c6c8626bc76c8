//! JPEG pixels decoded by libjpeg-turbo's algorithms (through mozjpeg, a libjpeg-turbo
//! fork built from source): the same integer IDCT and "fancy" chroma upsampling as the
//! libjpeg-turbo inside torchvision, so glimpse's pixels equal transformers' bit for bit
//! (the `image` crate's decoder differs by a few levels at colour edges).
use std::panic::{catch_unwind, AssertUnwindSafe};

use anyhow::{anyhow, Result};
use image::RgbImage;

/// Whether the last scan has no end-of-image marker (`FF D9`) after it. Inside scan data
/// every `FF` byte is followed by `00` or a restart marker, so an `FF D9` after the last
/// start-of-scan (`FF DA`) can only be the end of the image.
fn is_truncated(bytes: &[u8]) -> bool {
    let Some(last_scan) = bytes.windows(2).rposition(|w| w == [0xFF, 0xDA]) else {
        return false; // no scan at all: libjpeg reports that itself
    };
    !bytes[last_scan..].windows(2).any(|w| w == [0xFF, 0xD9])
}

/// Decodes to RGB8, or `None` when libjpeg cannot produce RGB for this file (CMYK / YCCK),
/// in which case the caller uses another decoder.
pub fn decode_jpeg_rgb(bytes: &[u8]) -> Result<Option<RgbImage>> {
    if is_truncated(bytes) {
        // libjpeg only warns and pads the missing rows with grey; a half-grey picture
        // would be answered about as if it were whole.
        return Err(anyhow!(
            "the JPEG image is truncated (its data ends before the end-of-image marker)"
        ));
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg(width: u32, height: u32) -> Vec<u8> {
        let image = RgbImage::from_fn(width, height, |x, y| image::Rgb([x as u8, y as u8, 7]));
        let mut bytes = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 90)
            .encode_image(&image)
            .unwrap();
        bytes
    }

    #[test]
    fn truncated_files_are_refused_and_trailing_bytes_are_not() {
        let whole = jpeg(64, 48);
        assert!(decode_jpeg_rgb(&whole).unwrap().is_some());
        let error = decode_jpeg_rgb(&whole[..whole.len() * 2 / 3]).unwrap_err();
        assert!(error.to_string().contains("truncated"), "{error}");
        let mut trailer = whole.clone();
        trailer.extend_from_slice(b"camera maker trailer");
        assert!(decode_jpeg_rgb(&trailer).unwrap().is_some());
    }
}
