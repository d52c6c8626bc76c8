//! The `glimpse` extension of a streamed answer: each detection (see
//! `grounding::answer_extension`) once, on the chunk whose text completes it.
use serde_json::Value;

use crate::grounding::{detections, detections_extension, ImageSize};

/// Follows a streamed answer and reports each detection once, when its JSON completes.
pub struct StreamDetections {
    images: Vec<ImageSize>,
    text: String,
    reported: usize,
}

impl StreamDetections {
    pub fn new(images: Vec<ImageSize>) -> Self {
        Self {
            images,
            text: String::new(),
            reported: 0,
        }
    }

    /// Adds the next piece of the answer; the extension for the detections it completed.
    pub fn push(&mut self, piece: &str) -> Option<Value> {
        self.text.push_str(piece);
        // A grounding object completes with a closing brace.
        if self.images.is_empty() || !piece.contains('}') {
            return None;
        }
        let found = detections(&self.text, &self.images);
        let new = found.get(self.reported..).unwrap_or_default();
        self.reported = self.reported.max(found.len());
        detections_extension(&self.text, new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grounding::answer_extension;
    use serde_json::json;

    const ANSWER: &str = "猫 ```json\n[{\"bbox_2d\": [0, 0, 500, 500], \"label\": \"cat\"}, {\"point_2d\": [1000, 0]}]\n```";

    fn images() -> Vec<ImageSize> {
        vec![ImageSize {
            width: 333,
            height: 517,
        }]
    }

    #[test]
    fn whole_answer_lists_every_detection_in_pixels_with_char_spans() {
        let value = answer_extension(ANSWER, &images()).unwrap();
        let first_start = ANSWER[..ANSWER.find('{').unwrap()].chars().count();
        assert_eq!(
            value,
            json!({"detections": [
                {"image": 0, "label": "cat", "bbox": [0, 0, 167, 259], "span": [first_start, first_start + 45]},
                {"image": 0, "label": null, "point": [332, 0], "span": [first_start + 47, first_start + 70]},
            ]})
        );
        assert_eq!(answer_extension("no boxes", &images()), None);
        assert_eq!(answer_extension(ANSWER, &[]), None);
    }

    #[test]
    fn a_stream_reports_each_detection_once() {
        let mut stream = StreamDetections::new(images());
        let mut reported = Vec::new();
        for piece in ANSWER.split_inclusive(['}', ',', ' ']) {
            if let Some(value) = stream.push(piece) {
                reported.extend(value["detections"].as_array().unwrap().clone());
            }
        }
        let whole = answer_extension(ANSWER, &images()).unwrap();
        assert_eq!(Value::Array(reported), whole["detections"]);
    }
}
