//! Finds Qwen3-VL's grounding answers in free text: JSON objects carrying `bbox_2d`
//! (`[x1, y1, x2, y2]`) or `point_2d` (`[x, y]`) on the model's 0–1000 scale, in code fences or
//! bare, in arrays, nested in other objects or alone. Tolerant by construction: an object
//! counts once its closing brace has arrived (a half-streamed answer yields the objects
//! complete so far), a malformed object is skipped and the rest of the text still searched.
//! Not for: pixel coordinates (see `pixels`).
use std::ops::Range;

use serde_json::{Map, Value};

/// The model's coordinate scale: 0 is the left/top edge of the image, 1000 the right/bottom.
pub const SCALE: f64 = 1000.0;

/// Keys the model uses for an object's name, in order of preference (`text_content` is the
/// text-spotting answer's key).
const LABEL_KEYS: [&str; 4] = ["label", "text_content", "name", "category"];

/// A box or point on the 0–1000 scale, clamped into it; a box's corners are ordered.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Shape {
    Box([f64; 4]),
    Point([f64; 2]),
}

/// One grounded object of an answer.
#[derive(Clone, Debug, PartialEq)]
pub struct Grounding {
    pub shape: Shape,
    pub label: Option<String>,
    /// Byte range of the object's JSON text in the answer.
    pub span: Range<usize>,
}

/// Every complete grounding object of `text`, in order of appearance.
pub fn find_groundings(text: &str) -> Vec<Grounding> {
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    let mut start = 0;
    while let Some(offset) = bytes[start..].iter().position(|&b| b == b'{') {
        let open = start + offset;
        start = open + 1;
        let Some(end) = balanced_end(&bytes[open..]).map(|len| open + len) else {
            continue; // not closed (yet): objects inside it may be
        };
        let Ok(Value::Object(object)) = serde_json::from_str::<Value>(&text[open..end]) else {
            continue;
        };
        if let Some(shape) = shape_of(&object) {
            found.push(Grounding {
                shape,
                label: label_of(&object),
                span: open..end,
            });
            start = end;
        }
    }
    found
}

/// Length of the JSON value starting at `bytes[0]` (a `{`), counting nested brackets and
/// skipping strings; `None` when the text ends first.
fn balanced_end(bytes: &[u8]) -> Option<usize> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for (i, &b) in bytes.iter().enumerate() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            _ => {}
        }
    }
    None
}

fn shape_of(object: &Map<String, Value>) -> Option<Shape> {
    let coordinates = |key: &str| -> Option<Vec<f64>> {
        let list = object.get(key)?.as_array()?;
        list.iter()
            .map(|v| {
                v.as_f64()
                    .filter(|x| x.is_finite())
                    .map(|x| x.clamp(0.0, SCALE))
            })
            .collect()
    };
    if let Some(values) = coordinates("bbox_2d") {
        if let [x1, y1, x2, y2] = values[..] {
            return Some(Shape::Box([x1.min(x2), y1.min(y2), x1.max(x2), y1.max(y2)]));
        }
    }
    match coordinates("point_2d")?[..] {
        [x, y] => Some(Shape::Point([x, y])),
        _ => None,
    }
}

fn label_of(object: &Map<String, Value>) -> Option<String> {
    LABEL_KEYS.iter().find_map(|key| match object.get(*key)? {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shapes(text: &str) -> Vec<(Shape, String)> {
        find_groundings(text)
            .into_iter()
            .map(|g| (g.shape, g.label.unwrap_or_default()))
            .collect()
    }

    fn bbox(corners: [f64; 4], label: &str) -> (Shape, String) {
        (Shape::Box(corners), label.to_owned())
    }

    #[test]
    fn fenced_json_list_as_qwen3_vl_writes_it() {
        let text = "Here are the objects:\n```json\n[\n\t{\"bbox_2d\": [135, 114, 508, 870], \"label\": \"cat\"},\n\t{\"bbox_2d\": [512, 200, 990, 880], \"label\": \"dog\"}\n]\n```";
        let found = find_groundings(text);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].shape, Shape::Box([135.0, 114.0, 508.0, 870.0]));
        assert_eq!(found[0].label.as_deref(), Some("cat"));
        assert_eq!(found[1].label.as_deref(), Some("dog"));
        assert_eq!(
            &text[found[0].span.clone()],
            "{\"bbox_2d\": [135, 114, 508, 870], \"label\": \"cat\"}"
        );
    }

    #[test]
    fn bare_objects_points_and_other_label_keys() {
        let text = r#"The sign {"bbox_2d": [10, 20, 30, 40], "text_content": "EXIT"} and the
            ball [{"point_2d": [500, 250], "label": "ball"}]."#;
        assert_eq!(
            shapes(text),
            [
                bbox([10.0, 20.0, 30.0, 40.0], "EXIT"),
                (Shape::Point([500.0, 250.0]), "ball".to_owned()),
            ]
        );
    }

    #[test]
    fn partial_answer_yields_the_complete_objects_so_far() {
        let full = r#"```json
[{"bbox_2d": [1, 2, 3, 4], "label": "a"}, {"bbox_2d": [5, 6, 7, 8], "label": "b"}]
```"#;
        let mut counts = Vec::new();
        for end in 0..=full.len() {
            counts.push(find_groundings(&full[..end]).len());
        }
        // Never decreases, and each object appears exactly when its brace closes.
        assert!(counts.windows(2).all(|w| w[0] <= w[1]), "{counts:?}");
        let first_close = full.find('}').unwrap() + 1;
        assert_eq!(counts[first_close - 1], 0);
        assert_eq!(counts[first_close], 1);
        assert_eq!(counts[full.len()], 2);
        // A cut inside the second object's label still gives the first.
        let cut = full.find("\"b\"").unwrap() + 1;
        assert_eq!(shapes(&full[..cut]), [bbox([1.0, 2.0, 3.0, 4.0], "a")]);
    }

    #[test]
    fn malformed_objects_are_skipped_and_the_rest_still_found() {
        let text = r#"[{"bbox_2d": [1, 2, 3], "label": "three numbers"},
            {"bbox_2d": [1, 2, 3, 4], "label": "trailing comma",},
            {"bbox_2d": ["1", 2, 3, 4], "label": "string"},
            {'bbox_2d': [1, 2, 3, 4]},
            {"bbox_2d": [900, 800, 100, 1200], "label": "swapped, over 1000"},
            {"label": "no coordinates"},
            {"point_2d": [1, 2, 3]},
            {"bbox_2d": [5, 5, 6, 6], "label": "braces } in { a label"}]"#;
        assert_eq!(
            shapes(text),
            [
                bbox([100.0, 800.0, 900.0, 1000.0], "swapped, over 1000"),
                bbox([5.0, 5.0, 6.0, 6.0], "braces } in { a label"),
            ]
        );
    }

    #[test]
    fn objects_nested_in_other_objects_are_found() {
        let text = r#"{"objects": [{"bbox_2d": [1, 1, 2, 2], "label": "x"}], "count": 1}"#;
        assert_eq!(shapes(text), [bbox([1.0, 1.0, 2.0, 2.0], "x")]);
        // Still found while the outer object is unfinished.
        assert_eq!(shapes(&text[..text.len() - 12]).len(), 1);
    }

    #[test]
    fn prose_without_json_and_stray_brackets_find_nothing() {
        for text in [
            "",
            "A cat sits on a mat.",
            "{",
            "}{",
            "]]}}",
            "{\"a\": \"\\\"}",
            "{{{{",
        ] {
            assert!(find_groundings(text).is_empty(), "{text:?}");
        }
    }

    #[test]
    fn non_ascii_text_keeps_byte_spans_on_char_boundaries() {
        let text = "猫: {\"bbox_2d\": [1, 2, 3, 4], \"label\": \"猫\"} ✓";
        let found = find_groundings(text);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].label.as_deref(), Some("猫"));
        assert!(text[found[0].span.clone()].starts_with('{'));
    }
}
