//! Visual grounding: the boxes and points Qwen3-VL writes when asked to locate things, found
//! in its answer (`parse`), mapped to pixels of the user's image (`pixels`) and drawn
//! (`draw`). Used by the API's `glimpse.detections` extension, the web page's overlay and
//! `glimpse run --draw`.
mod api_json;
mod draw;
mod parse;
mod pixels;

use std::ops::Range;

pub use api_json::{answer_extension, detections_extension};
pub use draw::{draw_shape, line_width, PALETTE};
pub use parse::{find_groundings, Grounding, Shape, SCALE};
pub use pixels::{to_pixels, ImageSize, PixelShape};

/// One located object in pixels of one of the request's images.
#[derive(Clone, Debug, PartialEq)]
pub struct Detection {
    /// Index of the image among the request's images, in order of appearance.
    pub image: usize,
    pub label: Option<String>,
    pub shape: PixelShape,
    /// Byte range of the object's JSON in the answer.
    pub span: Range<usize>,
}

/// The detections of `answer` for a request whose images have `sizes` (in order of
/// appearance). The model answers about the image it saw last, so every object refers to the
/// last image; an answer to a request without images has none.
pub fn detections(answer: &str, sizes: &[ImageSize]) -> Vec<Detection> {
    let Some((image, &size)) = sizes.iter().enumerate().next_back() else {
        return Vec::new();
    };
    find_groundings(answer)
        .into_iter()
        .map(|g| Detection {
            image,
            label: g.label,
            shape: to_pixels(g.shape, size),
            span: g.span,
        })
        .collect()
}

/// A colour index per detection: one per distinct label, in order of first appearance.
pub fn label_colours(detections: &[Detection]) -> Vec<usize> {
    let mut labels: Vec<Option<&str>> = Vec::new();
    detections
        .iter()
        .map(|d| {
            let label = d.label.as_deref();
            labels.iter().position(|l| *l == label).unwrap_or_else(|| {
                labels.push(label);
                labels.len() - 1
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_refer_to_the_last_image() {
        let answer = r#"[{"bbox_2d": [0, 0, 500, 500], "label": "a"}, {"point_2d": [500, 500], "label": "b"}, {"bbox_2d": [1, 1, 2, 2], "label": "a"}]"#;
        let sizes = [
            ImageSize {
                width: 10,
                height: 10,
            },
            ImageSize {
                width: 200,
                height: 100,
            },
        ];
        let found = detections(answer, &sizes);
        assert_eq!(found.len(), 3);
        assert!(found.iter().all(|d| d.image == 1));
        assert_eq!(found[0].shape, PixelShape::Box([0, 0, 100, 50]));
        assert_eq!(found[1].shape, PixelShape::Point([100, 50]));
        assert_eq!(label_colours(&found), [0, 1, 0]);
        assert!(detections(answer, &[]).is_empty());
    }
}
