//! Image bytes → RGB8, the way transformers 5.x loads an image given as a path, URL or base64
//! (`load_image_as_tensor` → torchvision `decode_image(mode=RGB, apply_exif_orientation=True)`):
//! PNG, JPEG, WebP, GIF (first frame, see `gif_frame`) or BMP; EXIF orientation applied (not to
//! WebP, as torchvision); alpha dropped with the RGB samples kept as stored (no compositing);
//! grayscale and palettes expanded to RGB.
//! The declared size is checked against a pixel limit before any pixel is decoded.

use std::io::Cursor;

use anyhow::{anyhow, bail, Context, Result};
use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits, RgbImage};

use super::gif_frame::decode_first_gif_frame;
use super::jpeg::decode_jpeg_rgb;

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
    if format == ImageFormat::Gif {
        return decode_first_gif_frame(bytes, max_pixels);
    }
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
        bail!(
            "{format:?} image is {width}x{height} = {pixels} pixels, over the limit of {max_pixels}"
        );
    }
    // torchvision applies EXIF orientation to JPEG and PNG but not to WebP.
    let orientation = if format == ImageFormat::WebP {
        Orientation::NoTransforms
    } else {
        exif_orientation(&mut decoder)
    };
    let libjpeg_pixels = match format {
        ImageFormat::Jpeg => decode_jpeg_rgb(bytes)?,
        _ => None,
    };
    let mut image = match libjpeg_pixels {
        Some(rgb) => DynamicImage::ImageRgb8(rgb),
        None => DynamicImage::from_decoder(decoder).with_context(|| {
            format!("cannot decode the {format:?} image data (corrupt or truncated)")
        })?,
    };
    image.apply_orientation(orientation);
    Ok(into_rgb8(image))
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
/// unreadable counts as "no rotation".
fn exif_orientation(decoder: &mut impl ImageDecoder) -> Orientation {
    let Ok(Some(mut exif_data)) = decoder.exif_metadata() else {
        return Orientation::NoTransforms;
    };
    // Some writers keep the JPEG APP1 `Exif\0\0` prefix inside PNG chunks.
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

/// RGB8 from any decoded layout: gray replicated, alpha dropped, 16-bit samples reduced to
/// their high byte (Pillow's 8-bit reading; torchvision would return uint16 samples).
fn into_rgb8(image: DynamicImage) -> RgbImage {
    match image {
        DynamicImage::ImageRgb8(rgb) => rgb,
        DynamicImage::ImageLuma16(_)
        | DynamicImage::ImageLumaA16(_)
        | DynamicImage::ImageRgb16(_)
        | DynamicImage::ImageRgba16(_) => {
            let wide = image.to_rgb16();
            let mut narrow = RgbImage::new(wide.width(), wide.height());
            for (out, &sample) in narrow.iter_mut().zip(wide.iter()) {
                *out = (sample >> 8) as u8;
            }
            narrow
        }
        other => other.to_rgb8(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::codecs::jpeg::JpegEncoder;
    use image::{ImageEncoder, Rgb, Rgba, RgbaImage};

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
    fn alpha_is_dropped_keeping_the_stored_colors() {
        let rgba = DynamicImage::ImageRgba8(RgbaImage::from_fn(2, 1, |x, _| {
            Rgba(if x == 0 {
                [10, 20, 30, 0]
            } else {
                [200, 100, 0, 128]
            })
        }));
        let decoded = load_image(&encode(&rgba, ImageFormat::Png)).unwrap();
        assert_eq!(decoded.get_pixel(0, 0).0, [10, 20, 30]);
        assert_eq!(decoded.get_pixel(1, 0).0, [200, 100, 0]);
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

    /// A lossless WebP in the extended (VP8X) layout with an EXIF chunk holding `orientation`.
    fn tagged_webp(width: u32, height: u32, orientation: u16) -> Vec<u8> {
        let simple = encode(
            &DynamicImage::ImageRgb8(pattern(width, height)),
            ImageFormat::WebP,
        );
        let chunk = |tag: &[u8], payload: &[u8]| {
            let mut out = tag.to_vec();
            out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            out.extend_from_slice(payload);
            if payload.len() % 2 == 1 {
                out.push(0);
            }
            out
        };
        let mut vp8x = vec![0x08, 0, 0, 0]; // flags: EXIF present
        vp8x.extend_from_slice(&(width - 1).to_le_bytes()[..3]);
        vp8x.extend_from_slice(&(height - 1).to_le_bytes()[..3]);
        let mut body = b"WEBP".to_vec();
        body.extend(chunk(b"VP8X", &vp8x));
        body.extend_from_slice(&simple[12..]); // the VP8L chunk of the simple file
        body.extend(chunk(b"EXIF", &exif_with_orientation(orientation)));
        let mut file = b"RIFF".to_vec();
        file.extend_from_slice(&(body.len() as u32).to_le_bytes());
        file.extend(body);
        file
    }

    #[test]
    fn webp_exif_orientation_is_ignored_like_torchvision() {
        let webp = tagged_webp(6, 4, 6);
        let mut decoder = ImageReader::new(Cursor::new(&webp))
            .with_guessed_format()
            .unwrap()
            .into_decoder()
            .unwrap();
        assert_eq!(exif_orientation(&mut decoder), Orientation::Rotate90);
        let decoded = load_image(&webp).unwrap();
        assert_eq!(&decoded, &pattern(6, 4));
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

    #[test]
    fn fuzz_image_decoding_and_preprocessing() {
        let image = DynamicImage::ImageRgb8(pattern(40, 24));
        let mut seeds: Vec<Vec<u8>> = [
            ImageFormat::Png,
            ImageFormat::Jpeg,
            ImageFormat::Gif,
            ImageFormat::Bmp,
            ImageFormat::WebP,
        ]
        .into_iter()
        .map(|format| encode(&image, format))
        .collect();
        seeds.push(encode(
            &DynamicImage::ImageRgba8(image.to_rgba8()),
            ImageFormat::Png,
        ));
        let config = crate::preprocess::PreprocessConfig::default()
            .with_pixel_budget(Some(1024), Some(1 << 16))
            .unwrap();
        let inputs = crate::fuzz::fuzz("image", &seeds, |bytes| {
            if let Ok(decoded) = load_image_with_limit(bytes, 1 << 22) {
                let _ = crate::preprocess::preprocess(&decoded, &config);
            }
        });
        assert!(inputs > seeds.len());
    }
}
