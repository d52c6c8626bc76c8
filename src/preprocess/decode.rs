//! Image bytes → RGB8, the way transformers loads an image: PNG, JPEG, WebP, GIF (first frame)
//! or BMP; EXIF orientation applied like PIL's `ImageOps.exif_transpose`; transparency
//! alpha-composited onto white with Pillow's integer arithmetic (transformers v5
//! `convert_to_rgb`); grayscale and palettes expanded to RGB. The declared size is checked
//! against a pixel limit before any pixel is decoded (decompression bombs).

use std::io::Cursor;

use anyhow::{anyhow, bail, Context, Result};
use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageReader, Limits, RgbImage, RgbaImage};

/// Default cap on the decoded pixel count (100 megapixels).
pub const DEFAULT_MAX_DECODED_PIXELS: u64 = 100_000_000;

/// Decodes an image file's bytes with the default pixel limit.
pub fn load_image(bytes: &[u8]) -> Result<RgbImage> {
    load_image_with_limit(bytes, DEFAULT_MAX_DECODED_PIXELS)
}

/// Decodes an image file's bytes, refusing images that declare more than `max_pixels` pixels.
pub fn load_image_with_limit(bytes: &[u8], max_pixels: u64) -> Result<RgbImage> {
    if bytes.is_empty() {
        bail!("image data is empty");
    }
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .context("cannot read image data")?;
    let format = reader.format().ok_or_else(|| {
        anyhow!("unrecognized image format (supported: PNG, JPEG, WebP, GIF, BMP)")
    })?;
    reader.limits(decoder_limits(max_pixels));
    let mut decoder = reader
        .into_decoder()
        .with_context(|| format!("cannot read the {format:?} image header"))?;
    let (width, height) = decoder.dimensions();
    if width == 0 || height == 0 {
        bail!("{format:?} image has no pixels ({width}x{height})");
    }
    let pixels = u64::from(width) * u64::from(height);
    if pixels > max_pixels {
        bail!("{format:?} image is {width}x{height} = {pixels} pixels, over the limit of {max_pixels}");
    }
    let orientation = exif_orientation(&mut decoder);
    let mut image = DynamicImage::from_decoder(decoder).with_context(|| {
        format!("cannot decode the {format:?} image data (corrupt or truncated)")
    })?;
    image.apply_orientation(orientation);
    Ok(flatten_to_rgb(image))
}

/// Allocation limit for the decoder: room for the largest allowed image at 16-bit RGBA, and
/// never below the `image` crate's own default.
fn decoder_limits(max_pixels: u64) -> Limits {
    let mut limits = Limits::default();
    let default_alloc = limits.max_alloc.unwrap_or(0);
    limits.max_alloc = Some(max_pixels.saturating_mul(8).max(default_alloc));
    limits
}

/// The EXIF Orientation tag of the primary image, if the file has one that parses; anything
/// unreadable counts as "no rotation", as PIL ignores it too.
fn exif_orientation(decoder: &mut impl ImageDecoder) -> Orientation {
    let Ok(Some(mut exif_data)) = decoder.exif_metadata() else {
        return Orientation::NoTransforms;
    };
    // Some writers keep the JPEG APP1 marker prefix inside PNG/WebP chunks; PIL strips it too.
    if exif_data.starts_with(b"Exif\0\0") {
        exif_data.drain(..6);
    }
    exif::Reader::new()
        .read_raw(exif_data)
        .ok()
        .and_then(|exif| {
            let field = exif.get_field(exif::Tag::Orientation, exif::In::PRIMARY)?;
            u8::try_from(field.value.get_uint(0)?).ok()
        })
        .and_then(Orientation::from_exif)
        .unwrap_or(Orientation::NoTransforms)
}

/// RGB8 from any decoded layout: 16-bit samples keep their high byte (Pillow's 8-bit unpack),
/// images with an alpha channel are composited onto opaque white.
fn flatten_to_rgb(image: DynamicImage) -> RgbImage {
    let has_alpha = image.color().has_alpha();
    let rgba = match image {
        DynamicImage::ImageRgb8(rgb) => return rgb,
        DynamicImage::ImageLuma8(_) => return image.to_rgb8(),
        DynamicImage::ImageLuma16(_)
        | DynamicImage::ImageLumaA16(_)
        | DynamicImage::ImageRgb16(_)
        | DynamicImage::ImageRgba16(_) => high_bytes(&image),
        _ => image.to_rgba8(),
    };
    let mut rgb = RgbImage::new(rgba.width(), rgba.height());
    for (out, pixel) in rgb.chunks_exact_mut(3).zip(rgba.chunks_exact(4)) {
        let [r, g, b, a] = [pixel[0], pixel[1], pixel[2], pixel[3]];
        let composited = if has_alpha {
            over_white([r, g, b], a)
        } else {
            [r, g, b]
        };
        out.copy_from_slice(&composited);
    }
    rgb
}

/// 16-bit samples reduced to their most significant byte, as RGBA8.
fn high_bytes(image: &DynamicImage) -> RgbaImage {
    let wide = image.to_rgba16();
    let mut narrow = RgbaImage::new(wide.width(), wide.height());
    for (out, &sample) in narrow.iter_mut().zip(wide.iter()) {
        *out = (sample >> 8) as u8;
    }
    narrow
}

/// Pillow's `Image.alpha_composite(white, rgba)` for one pixel (`ImagingAlphaComposite`:
/// integer math with 7 extra bits, divisions by 255 done as shifts).
fn over_white(rgb: [u8; 3], alpha: u8) -> [u8; 3] {
    const PRECISION_BITS: u32 = 7;
    if alpha == 0 {
        return [255; 3];
    }
    let alpha = u32::from(alpha);
    let out_alpha_255 = alpha * 255 + 255 * (255 - alpha);
    let source_coef = alpha * 255 * 255 * (1 << PRECISION_BITS) / out_alpha_255;
    let white_coef = 255 * (1 << PRECISION_BITS) - source_coef;
    let shift_div_255 = |v: u32| ((v >> 8) + v) >> 8;
    rgb.map(|v| {
        let mixed = u32::from(v) * source_coef + 255 * white_coef + (0x80 << PRECISION_BITS);
        (shift_div_255(mixed) >> PRECISION_BITS) as u8
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::codecs::jpeg::JpegEncoder;
    use image::{ImageEncoder, ImageFormat, Rgb, Rgba};

    fn encode(image: &DynamicImage, format: ImageFormat) -> Vec<u8> {
        let mut bytes = Cursor::new(Vec::new());
        image.write_to(&mut bytes, format).unwrap();
        bytes.into_inner()
    }

    fn pattern(width: u32, height: u32) -> RgbImage {
        RgbImage::from_fn(width, height, |x, y| {
            Rgb([(x * 40) as u8, (y * 60) as u8, 200])
        })
    }

    #[test]
    fn lossless_formats_round_trip() {
        let rgb = DynamicImage::ImageRgb8(pattern(5, 4));
        for format in [ImageFormat::Png, ImageFormat::Bmp, ImageFormat::WebP] {
            let decoded = load_image(&encode(&rgb, format)).unwrap();
            assert_eq!(&decoded, rgb.as_rgb8().unwrap(), "{format:?}");
        }
    }

    #[test]
    fn jpeg_decodes_close_to_the_source() {
        let flat = DynamicImage::ImageRgb8(RgbImage::from_pixel(16, 8, Rgb([30, 160, 220])));
        let decoded = load_image(&encode(&flat, ImageFormat::Jpeg)).unwrap();
        assert_eq!(decoded.dimensions(), (16, 8));
        for p in decoded.pixels() {
            for (got, want) in p.0.iter().zip([30u8, 160, 220]) {
                assert!(got.abs_diff(want) <= 3, "{:?}", p.0);
            }
        }
    }

    #[test]
    fn gif_first_frame_decodes_with_palette_colors() {
        let gif_source = DynamicImage::ImageRgba8(RgbaImage::from_fn(4, 2, |x, _| {
            Rgba(if x < 2 {
                [255, 0, 0, 255]
            } else {
                [0, 0, 255, 255]
            })
        }));
        let decoded = load_image(&encode(&gif_source, ImageFormat::Gif)).unwrap();
        assert_eq!(decoded.get_pixel(0, 0).0, [255, 0, 0]);
        assert_eq!(decoded.get_pixel(3, 1).0, [0, 0, 255]);
    }

    #[test]
    fn grayscale_is_replicated_to_three_channels() {
        let gray = DynamicImage::ImageLuma8(image::GrayImage::from_fn(3, 2, |x, _| {
            image::Luma([(x * 100) as u8])
        }));
        let decoded = load_image(&encode(&gray, ImageFormat::Png)).unwrap();
        assert_eq!(decoded.get_pixel(2, 1).0, [200, 200, 200]);
    }

    #[test]
    fn sixteen_bit_samples_keep_their_high_byte() {
        let deep = DynamicImage::ImageRgb16(image::ImageBuffer::from_pixel(
            2,
            2,
            Rgb([0x12ff_u16, 0x8080, 0xff00]),
        ));
        let decoded = load_image(&encode(&deep, ImageFormat::Png)).unwrap();
        assert_eq!(decoded.get_pixel(1, 1).0, [0x12, 0x80, 0xff]);
    }

    #[test]
    fn alpha_is_composited_onto_white_like_pillow() {
        // Pillow's AlphaComposite.c arithmetic evaluated by hand for these pixels.
        assert_eq!(over_white([0, 0, 0], 0), [255, 255, 255]);
        assert_eq!(over_white([10, 20, 30], 255), [10, 20, 30]);
        assert_eq!(over_white([0, 0, 0], 128), [127, 127, 127]);
        assert_eq!(over_white([200, 100, 0], 64), [241, 216, 191]);
        let rgba = DynamicImage::ImageRgba8(RgbaImage::from_fn(2, 1, |x, _| {
            Rgba(if x == 0 { [0, 0, 0, 0] } else { [0, 0, 0, 128] })
        }));
        let decoded = load_image(&encode(&rgba, ImageFormat::Png)).unwrap();
        assert_eq!(decoded.get_pixel(0, 0).0, [255, 255, 255]);
        assert_eq!(decoded.get_pixel(1, 0).0, [127, 127, 127]);
    }

    /// A minimal big-endian TIFF/EXIF block holding only the Orientation tag.
    fn exif_with_orientation(orientation: u16) -> Vec<u8> {
        let mut tiff = b"MM\0\x2a\0\0\0\x08".to_vec();
        tiff.extend_from_slice(&1u16.to_be_bytes()); // one IFD entry
        tiff.extend_from_slice(&0x0112u16.to_be_bytes()); // Orientation
        tiff.extend_from_slice(&3u16.to_be_bytes()); // SHORT
        tiff.extend_from_slice(&1u32.to_be_bytes()); // count
        tiff.extend_from_slice(&orientation.to_be_bytes());
        tiff.extend_from_slice(&[0, 0]); // value padding
        tiff.extend_from_slice(&0u32.to_be_bytes()); // no next IFD
        tiff
    }

    /// A 32x16 JPEG, left half red and right half blue, tagged with `orientation`.
    fn tagged_jpeg(orientation: u16) -> Vec<u8> {
        let source = RgbImage::from_fn(32, 16, |x, _| {
            Rgb(if x < 16 { [255, 0, 0] } else { [0, 0, 255] })
        });
        let mut bytes = Vec::new();
        let mut encoder = JpegEncoder::new_with_quality(&mut bytes, 100);
        encoder
            .set_exif_metadata(exif_with_orientation(orientation))
            .unwrap();
        encoder
            .write_image(&source, 32, 16, image::ExtendedColorType::Rgb8)
            .unwrap();
        bytes
    }

    fn is_red(p: &Rgb<u8>) -> bool {
        p.0[0] > 200 && p.0[2] < 60
    }

    #[test]
    fn exif_orientation_is_applied_like_exif_transpose() {
        // 1: as stored. 3: rotated 180 degrees, red moves to the right.
        let upright = load_image(&tagged_jpeg(1)).unwrap();
        assert_eq!(upright.dimensions(), (32, 16));
        assert!(is_red(upright.get_pixel(2, 8)));
        let rotated = load_image(&tagged_jpeg(3)).unwrap();
        assert!(is_red(rotated.get_pixel(29, 8)));
        // 6: PIL's ROTATE_270 (90 degrees clockwise): the left half ends up on top.
        let clockwise = load_image(&tagged_jpeg(6)).unwrap();
        assert_eq!(clockwise.dimensions(), (16, 32));
        assert!(is_red(clockwise.get_pixel(8, 2)));
        assert!(!is_red(clockwise.get_pixel(8, 29)));
        // 8: PIL's ROTATE_90 (counter-clockwise): the left half ends up at the bottom.
        let counter = load_image(&tagged_jpeg(8)).unwrap();
        assert!(is_red(counter.get_pixel(8, 29)));
        // 2: mirrored left-right.
        let mirrored = load_image(&tagged_jpeg(2)).unwrap();
        assert!(is_red(mirrored.get_pixel(29, 8)));
    }

    #[test]
    fn unknown_empty_and_truncated_data_are_clear_errors() {
        let err = load_image(b"").unwrap_err();
        assert!(err.to_string().contains("empty"), "{err:#}");
        let err = load_image(b"definitely not an image").unwrap_err();
        assert!(
            err.to_string().contains("unrecognized image format"),
            "{err:#}"
        );
        let png = encode(&DynamicImage::ImageRgb8(pattern(64, 64)), ImageFormat::Png);
        let err = load_image(&png[..png.len() / 2]).unwrap_err();
        assert!(format!("{err:#}").contains("Png"), "{err:#}");
        let err = load_image(&png[..20]).unwrap_err();
        assert!(format!("{err:#}").contains("Png"), "{err:#}");
    }

    #[test]
    fn oversized_declared_dimensions_are_refused_before_decoding() {
        let png = encode(&DynamicImage::ImageRgb8(pattern(100, 50)), ImageFormat::Png);
        let err = load_image_with_limit(&png, 4_999).unwrap_err();
        assert!(err.to_string().contains("over the limit"), "{err:#}");
        assert!(load_image_with_limit(&png, 5_000).is_ok());
        // A BMP header that claims 20000 x 20000 pixels, with no pixel data behind it.
        let bmp = encode(&DynamicImage::ImageRgb8(pattern(4, 4)), ImageFormat::Bmp);
        let mut bomb = bmp[..54].to_vec();
        bomb[18..22].copy_from_slice(&20_000i32.to_le_bytes());
        bomb[22..26].copy_from_slice(&20_000i32.to_le_bytes());
        let err = load_image(&bomb).unwrap_err();
        assert!(err.to_string().contains("over the limit"), "{err:#}");
    }
}
