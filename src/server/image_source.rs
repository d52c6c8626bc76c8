//! Where a request's image or video comes from: a `data:` URI or raw base64 (decoded here,
//! bytes inline) or an http(s) URL (fetched later, see `image_fetch`). Other URL schemes
//! (`file://`, `ftp://`, …) are refused so a request can never read server files.
use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageSource {
    /// The image file's bytes, from a data URI or base64.
    Inline(Vec<u8>),
    /// An http(s) URL to download.
    Remote(String),
}

/// Standard base64, padding optional (clients differ).
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// URL-safe base64 (`-` and `_`), also accepted for raw data.
const BASE64_URL_SAFE: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// What a source must hold: it decides the data URI media types accepted and the wording.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Expected {
    Image,
    /// A clip: `video/*`, and `image/*` for animated GIF and WebP.
    Video,
}

impl Expected {
    fn noun(self) -> &'static str {
        match self {
            Expected::Image => "image",
            Expected::Video => "video",
        }
    }
}

/// Classifies the string of an image part; the error explains what was expected.
pub fn parse_image_source(text: &str) -> Result<ImageSource, String> {
    parse_source(text, Expected::Image)
}

/// Classifies the string of a video clip (`video/*` or animated `image/*` data URIs).
pub fn parse_video_source(text: &str) -> Result<ImageSource, String> {
    parse_source(text, Expected::Video)
}

fn parse_source(text: &str, expected: Expected) -> Result<ImageSource, String> {
    let noun = expected.noun();
    let text = text.trim();
    if starts_with_ignore_case(text, "data:") {
        return decode_data_uri(text, expected).map(ImageSource::Inline);
    }
    if starts_with_ignore_case(text, "http://") || starts_with_ignore_case(text, "https://") {
        return Ok(ImageSource::Remote(text.to_owned()));
    }
    if let Some(scheme_end) = text.find("://") {
        let scheme = &text[..scheme_end];
        if !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        {
            return Err(format!(
                "{noun} URLs must be http(s), data: URIs or base64; '{scheme}://' is not accepted"
            ));
        }
    }
    decode_base64(text).map(ImageSource::Inline).map_err(|_| {
        let example = match expected {
            Expected::Image => "data:image/png;base64,…",
            Expected::Video => "data:video/mp4;base64,…",
        };
        format!("expected a data URI ({example}), an http(s) URL or base64 {noun} data")
    })
}

fn starts_with_ignore_case(text: &str, prefix: &str) -> bool {
    text.get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
}

/// `data:[<media type>][;base64],<data>`; only base64 payloads of an `image/*` (or
/// unnamed, or `application/octet-stream`) media type are images, and of those or `video/*`
/// videos. The subtype need not match the bytes: the decoder recognizes the format itself, as
/// clients often mislabel.
fn decode_data_uri(uri: &str, expected: Expected) -> Result<Vec<u8>, String> {
    let (header, payload) = uri
        .split_once(',')
        .ok_or_else(|| "data URI without ',' before its data".to_owned())?;
    let media_type = header["data:".len()..]
        .split(';')
        .next()
        .unwrap_or_default()
        .trim();
    let accepted = media_type.is_empty()
        || media_type.eq_ignore_ascii_case("application/octet-stream")
        || starts_with_ignore_case(media_type, "image/")
        || (expected == Expected::Video && starts_with_ignore_case(media_type, "video/"));
    if !accepted {
        let types = match expected {
            Expected::Image => "an image type (image/png, image/jpeg, …)",
            Expected::Video => "a video type (video/mp4, video/webm, image/gif, …)",
        };
        return Err(format!(
            "the data URI's media type is '{}', not {types}",
            media_type.escape_debug()
        ));
    }
    let is_base64 = header
        .split(';')
        .skip(1)
        .any(|param| param.trim().eq_ignore_ascii_case("base64"));
    if !is_base64 {
        return Err("data URIs must be base64-encoded ('data:image/png;base64,…')".into());
    }
    decode_base64(payload).map_err(|e| format!("data URI holds invalid base64: {e}"))
}

/// Decodes base64, ignoring whitespace and line breaks inside it.
fn decode_base64(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    BASE64
        .decode(&compact)
        .or_else(|e| BASE64_URL_SAFE.decode(&compact).map_err(|_| e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_uri_raw_base64_and_urls_are_told_apart() {
        assert_eq!(
            parse_image_source("data:image/png;base64,AAEC").unwrap(),
            ImageSource::Inline(vec![0, 1, 2])
        );
        assert_eq!(
            parse_image_source("AAEC\n/w==").unwrap(),
            ImageSource::Inline(vec![0, 1, 2, 255])
        );
        assert_eq!(
            parse_image_source("HTTPS://example.com/a.png").unwrap(),
            ImageSource::Remote("HTTPS://example.com/a.png".into())
        );
    }

    #[test]
    fn local_files_and_plain_text_are_refused() {
        let error = parse_image_source("file:///etc/passwd").unwrap_err();
        assert!(error.contains("'file://' is not accepted"), "{error}");
        let error = parse_image_source("not an image!").unwrap_err();
        assert!(error.contains("expected a data URI"), "{error}");
        let error = parse_image_source("data:image/png,%89PNG").unwrap_err();
        assert!(error.contains("base64-encoded"), "{error}");
    }

    #[test]
    fn data_uris_must_name_an_image_media_type() {
        let error = parse_image_source("data:text/plain;base64,AAEC").unwrap_err();
        assert!(error.contains("media type is 'text/plain'"), "{error}");
        for accepted in [
            "data:;base64,AAEC",
            "DATA:IMAGE/JPEG;base64,AAEC",
            "data:application/octet-stream;base64,AAEC",
        ] {
            assert_eq!(
                parse_image_source(accepted).unwrap(),
                ImageSource::Inline(vec![0, 1, 2]),
                "{accepted}"
            );
        }
    }
}
