//! The API's `glimpse` extension: `{"detections": [...]}`, the objects the model located in
//! pixels of the request's images, with where each one's JSON sits in the answer.
use serde_json::{json, Value};

use super::{detections, Detection, ImageSize, PixelShape};

/// One detection as JSON: `image` (index among the request's images), `label` (or null),
/// `bbox` `[x1, y1, x2, y2]` or `point` `[x, y]`, and `span` — the `[start, end)` offsets in
/// characters (Unicode scalar values) of its JSON in the message content.
fn detection_json(answer: &str, detection: &Detection) -> Value {
    let chars = |byte: usize| answer[..byte].chars().count();
    let mut value = json!({
        "image": detection.image,
        "label": detection.label,
        "span": [chars(detection.span.start), chars(detection.span.end)],
    });
    match detection.shape {
        PixelShape::Box(corners) => value["bbox"] = json!(corners),
        PixelShape::Point(point) => value["point"] = json!(point),
    }
    value
}

/// The `glimpse` extension for `detections` of `answer`, or `None` when there are none.
pub fn detections_extension(answer: &str, detections: &[Detection]) -> Option<Value> {
    (!detections.is_empty()).then(|| {
        let list: Vec<Value> = detections
            .iter()
            .map(|d| detection_json(answer, d))
            .collect();
        json!({"detections": list})
    })
}

/// The `glimpse` extension of a whole answer.
pub fn answer_extension(answer: &str, images: &[ImageSize]) -> Option<Value> {
    detections_extension(answer, &detections(answer, images))
}
