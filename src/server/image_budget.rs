//! Per-request image resolution. A request may set `min_pixels` / `max_pixels` for all its
//! images (top level) or for one image (on its content part or its `image_url` object, as
//! Qwen's qwen-vl-utils takes them), or OpenAI's `image_url.detail`: `low` caps the image at
//! 256 vision tokens, `high` allows the model's full budget, `auto` keeps the server's default
//! (`--image-min-tokens` / `--image-max-tokens`). The resize itself is the HF processor's
//! `smart_resize` with those bounds, so token counts match transformers for the same values.
use super::errors::ApiError;
use super::fields::Fields;
use crate::preprocess::PreprocessConfig;

/// Most vision tokens an image gets with `detail: "low"`.
pub const LOW_DETAIL_TOKENS: usize = 256;

/// Pixel bounds one request or image asks for; `None` leaves the bound to the next level.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PixelBudget {
    pub min_pixels: Option<usize>,
    pub max_pixels: Option<usize>,
    pub detail: Detail,
}

/// OpenAI's `image_url.detail`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Detail {
    Low,
    High,
    #[default]
    Auto,
}

impl PixelBudget {
    /// Reads `min_pixels` / `max_pixels` (and `detail` when `with_detail`) from `fields`.
    pub fn parse(fields: &Fields, with_detail: bool) -> Result<Self, ApiError> {
        let pixels = |name| {
            fields
                .integer(name, 1, u32::MAX.into())
                .map(|n| n.map(|n| n as usize))
        };
        let detail = match with_detail.then(|| fields.string("detail")).transpose()? {
            None | Some(None) | Some(Some("auto")) => Detail::Auto,
            Some(Some("low")) => Detail::Low,
            Some(Some("high")) => Detail::High,
            Some(Some(other)) => {
                return Err(ApiError::invalid(
                    "invalid_field",
                    format!(
                        "'{}' must be 'low', 'high' or 'auto', got '{other}'",
                        fields.path_of("detail")
                    ),
                ))
            }
        };
        Ok(Self {
            min_pixels: pixels("min_pixels")?,
            max_pixels: pixels("max_pixels")?,
            detail,
        })
    }

    /// This budget with the bounds it leaves open taken from `outer` (an image's own
    /// settings over the request's).
    pub fn within(self, outer: PixelBudget) -> Self {
        Self {
            min_pixels: self.min_pixels.or(outer.min_pixels),
            max_pixels: self.max_pixels.or(outer.max_pixels),
            detail: match self.detail {
                Detail::Auto => outer.detail,
                chosen => chosen,
            },
        }
    }

    /// The preprocessor settings for an image with this budget. `server` holds the server's
    /// default bounds, `model` the model's own (the largest a request may ask for). A bound
    /// given alone moves the other one when needed, so that min ≤ max.
    pub fn resolve(
        &self,
        server: &PreprocessConfig,
        model: &PreprocessConfig,
        field: &str,
    ) -> Result<PreprocessConfig, ApiError> {
        let invalid =
            |e: anyhow::Error| ApiError::invalid("invalid_field", format!("{field}: {e:#}"));
        for (name, value) in [
            ("min_pixels", self.min_pixels),
            ("max_pixels", self.max_pixels),
        ] {
            if let Some(value) = value.filter(|&v| v > model.max_pixels) {
                return Err(ApiError::invalid(
                    "invalid_field",
                    format!(
                        "{field}: '{name}' = {value} is over the model's limit of {} pixels",
                        model.max_pixels
                    ),
                ));
            }
        }
        let base = match self.detail {
            Detail::Auto => server.clone(),
            Detail::Low => {
                let low = LOW_DETAIL_TOKENS * model.token_pixels();
                server
                    .with_bounds(None, Some(low.min(server.max_pixels)))
                    .map_err(invalid)?
            }
            Detail::High => server
                .with_bounds(None, Some(model.max_pixels))
                .map_err(invalid)?,
        };
        base.with_bounds(self.min_pixels, self.max_pixels)
            .map_err(invalid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn budget(value: serde_json::Value, with_detail: bool) -> Result<PixelBudget, ApiError> {
        PixelBudget::parse(&Fields::of(&value, "x").unwrap(), with_detail)
    }

    fn bounds(b: PixelBudget, server: &PreprocessConfig) -> Result<(usize, usize), String> {
        b.resolve(server, &PreprocessConfig::default(), "image")
            .map(|c| (c.min_pixels, c.max_pixels))
            .map_err(|e| e.message)
    }

    #[test]
    fn request_image_detail_and_server_levels_combine() {
        let model = PreprocessConfig::default();
        let server = model
            .with_pixel_budget(Some(4096), Some(1_048_576))
            .unwrap();
        let none = PixelBudget::default();
        assert_eq!(bounds(none, &server), Ok((4096, 1_048_576)));
        let low = budget(json!({"detail": "low"}), true).unwrap();
        assert_eq!(bounds(low, &server), Ok((4096, 262_144)));
        let high = budget(json!({"detail": "high"}), true).unwrap();
        assert_eq!(bounds(high, &server), Ok((4096, 16_777_216)));
        let request = budget(json!({"max_pixels": 65536, "detail": "low"}), false).unwrap();
        assert_eq!(
            request.detail,
            Detail::Auto,
            "detail is read on images only"
        );
        assert_eq!(bounds(request, &server), Ok((4096, 65536)));
        let image = budget(json!({"min_pixels": 200000}), true).unwrap();
        let err = bounds(image.within(request), &server).unwrap_err();
        assert!(
            err.contains("min_pixels (200000) is larger than max_pixels (65536)"),
            "{err}"
        );
        // A bound alone moves the other one.
        assert_eq!(bounds(image, &server), Ok((200_000, 1_048_576)));
        let big_min = budget(json!({"min_pixels": 2_000_000}), true).unwrap();
        assert_eq!(bounds(big_min, &server), Ok((2_000_000, 2_000_000)));
        let small_max = budget(json!({"max_pixels": 1024}), true).unwrap();
        assert_eq!(bounds(small_max, &server), Ok((1024, 1024)));
    }

    #[test]
    fn bad_values_are_refused_with_their_field() {
        let server = PreprocessConfig::default();
        let over = budget(json!({"max_pixels": 16_777_217}), true).unwrap();
        let err = bounds(over, &server).unwrap_err();
        assert!(err.contains("over the model's limit of 16777216"), "{err}");
        for bad in [
            json!({"min_pixels": 0}),
            json!({"max_pixels": "big"}),
            json!({"detail": "ultra"}),
        ] {
            assert!(budget(bad.clone(), true).is_err(), "{bad}");
        }
    }
}
