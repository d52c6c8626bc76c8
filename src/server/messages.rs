//! The `messages` array of a chat request → glimpse chat messages plus the request's
//! images and videos (each in order of appearance, which is prompt order). Content is a
//! string or a list of parts: `text`, `image_url` (`{"url": …}` or a bare string) and `image`
//! (`{"type":"image","image": …}`), each image with its own resolution settings
//! (`image_budget`); `video_url` (`{"url": …}` or a bare string: one clip, as vLLM takes it)
//! and `video` (a clip's URL, or a list of frame images as qwen-vl-utils takes them), each
//! with an optional `fps`. The `developer` role is read as `system`.
use serde_json::Value;

use super::errors::ApiError;
use super::fields::{kind_of, Fields};
use super::image_budget::PixelBudget;
use super::image_source::{parse_image_source, parse_video_source, ImageSource};
use crate::chat::{Content, ImageRef, Message, Part, Role, ToolCall, VideoRef};

/// An image of the request and the field it came from (for error messages).
#[derive(Clone, Debug, PartialEq)]
pub struct ImageInput {
    pub source: ImageSource,
    pub field: String,
    /// The image's own `min_pixels` / `max_pixels` / `detail`.
    pub budget: PixelBudget,
}

/// Where a request's video comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum VideoSource {
    /// One file (GIF, WebP, MP4, WebM, …).
    Clip(ImageSource),
    /// Its frames, one image each, in order.
    Frames(Vec<ImageSource>),
}

/// A video of the request and the field it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct VideoInput {
    pub source: VideoSource,
    pub field: String,
    /// Frames a second: sampled from a clip, or the rate a list of frames was taken at.
    pub fps: Option<f64>,
}

#[derive(Debug, PartialEq)]
pub struct Conversation {
    pub messages: Vec<Message>,
    /// `images[i]` is the image of `ImageRef(i)`.
    pub images: Vec<ImageInput>,
    /// `videos[i]` is the video of `VideoRef(i)`.
    pub videos: Vec<VideoInput>,
    /// A prompt taken as it is instead of the chat template's rendering of `messages`
    /// (legacy completions).
    pub text: Option<String>,
}

/// The images and videos found so far.
#[derive(Default)]
struct Media {
    images: Vec<ImageInput>,
    videos: Vec<VideoInput>,
}

/// Parses `messages`, refusing more than `max_images` images and videos.
pub fn parse_messages(value: &Value, max_images: usize) -> Result<Conversation, ApiError> {
    let Value::Array(items) = value else {
        return Err(ApiError::invalid(
            "invalid_field",
            format!("'messages' must be an array, got {}", kind_of(value)),
        ));
    };
    if items.is_empty() {
        return Err(ApiError::invalid(
            "invalid_field",
            "'messages' must hold at least one message",
        ));
    }
    let mut media = Media::default();
    let messages = items
        .iter()
        .enumerate()
        .map(|(index, item)| parse_message(item, &format!("messages[{index}]"), &mut media))
        .collect::<Result<Vec<_>, _>>()?;
    let items = media.images.len() + media.videos.len();
    let noun = if media.videos.is_empty() {
        "images"
    } else {
        "images and videos"
    };
    check_count(items, noun, max_images)?;
    Ok(Conversation {
        messages,
        images: media.images,
        videos: media.videos,
        text: None,
    })
}

/// 400 when a request brings more than `max_images` images (`--max-images`).
pub fn check_image_count(images: usize, max_images: usize) -> Result<(), ApiError> {
    check_count(images, "images", max_images)
}

/// 400 when a request brings more than `max_images` `noun` (a video counts as one image).
fn check_count(items: usize, noun: &str, max_images: usize) -> Result<(), ApiError> {
    if items > max_images {
        return Err(ApiError::invalid(
            "too_many_images",
            format!("the request has {items} {noun}, more than the limit of {max_images} (--max-images)"),
        ));
    }
    Ok(())
}

fn parse_message(value: &Value, path: &str, media: &mut Media) -> Result<Message, ApiError> {
    let fields = Fields::of(value, path)?;
    let role = match fields.required_string("role")? {
        "developer" => Role::System,
        name => name.parse::<Role>().map_err(|e| {
            ApiError::invalid(
                "invalid_field",
                format!("'{}': {e}", fields.path_of("role")),
            )
        })?,
    };
    let content = match fields.get("content") {
        None | Some(Value::Null) => Content::Text(String::new()),
        Some(Value::String(text)) => Content::Text(text.clone()),
        Some(Value::Array(parts)) => Content::Parts(
            parts
                .iter()
                .enumerate()
                .map(|(i, part)| {
                    parse_part(part, &format!("{}[{i}]", fields.path_of("content")), media)
                })
                .collect::<Result<_, _>>()?,
        ),
        Some(other) => {
            return Err(ApiError::invalid(
                "invalid_field",
                format!(
                    "'{}' must be a string or an array of parts, got {}",
                    fields.path_of("content"),
                    kind_of(other)
                ),
            ))
        }
    };
    if role != Role::User && role != Role::Tool && has_media(&content) {
        return Err(ApiError::invalid(
            "invalid_field",
            format!("'{path}': images and videos are only accepted in user and tool messages"),
        ));
    }
    let tool_calls = match fields.get("tool_calls") {
        None | Some(Value::Null) => Vec::new(),
        Some(calls) if role == Role::Assistant => {
            parse_tool_calls(calls, &fields.path_of("tool_calls"))?
        }
        Some(_) => {
            return Err(ApiError::invalid(
                "invalid_field",
                format!("'{path}.tool_calls': only assistant messages make tool calls"),
            ))
        }
    };
    let reasoning = match fields.string("reasoning_content")? {
        Some(text) if role == Role::Assistant => Some(text.to_owned()),
        Some(_) => {
            return Err(ApiError::invalid(
                "invalid_field",
                format!("'{path}.reasoning_content': only assistant messages have one"),
            ))
        }
        None => None,
    };
    Ok(Message::new(role, content)
        .with_tool_calls(tool_calls)
        .with_reasoning(reasoning))
}

/// An assistant message's `tool_calls` (`[{"id", "type": "function", "function": {"name",
/// "arguments"}}]`), written back into the prompt as the template does.
fn parse_tool_calls(value: &Value, path: &str) -> Result<Vec<ToolCall>, ApiError> {
    let Value::Array(calls) = value else {
        return Err(ApiError::invalid(
            "invalid_field",
            format!("'{path}' must be an array"),
        ));
    };
    calls
        .iter()
        .enumerate()
        .map(|(i, call)| {
            let call = Fields::of(call, &format!("{path}[{i}]"))?;
            let function = Fields::of(call.required("function")?, &call.path_of("function"))?;
            let arguments = match function.get("arguments") {
                None | Some(Value::Null) => "{}".to_owned(),
                Some(Value::String(text)) => text.clone(),
                Some(other) => other.to_string(),
            };
            Ok(ToolCall {
                name: function.required_string("name")?.to_owned(),
                arguments,
            })
        })
        .collect()
}

fn has_media(content: &Content) -> bool {
    matches!(content, Content::Parts(parts)
        if parts.iter().any(|p| matches!(p, Part::Image(_) | Part::Video(_))))
}

fn parse_part(value: &Value, path: &str, media: &mut Media) -> Result<Part, ApiError> {
    let fields = Fields::of(value, path)?;
    match fields.required_string("type")? {
        "video_url" | "video" => return parse_video_part(&fields, media),
        _ => {}
    }
    let part_budget = PixelBudget::parse(&fields, false)?;
    let (field, text, budget) = match fields.required_string("type")? {
        "text" => return Ok(Part::Text(fields.required_string("text")?.to_owned())),
        "image_url" => match fields.required("image_url")? {
            Value::String(url) => (fields.path_of("image_url"), url.as_str(), part_budget),
            object => {
                let inner = Fields::of(object, &fields.path_of("image_url"))?;
                let budget = PixelBudget::parse(&inner, true)?.within(part_budget);
                (inner.path_of("url"), inner.required_string("url")?, budget)
            }
        },
        "image" => (
            fields.path_of("image"),
            fields.required_string("image")?,
            part_budget,
        ),
        other => {
            return Err(ApiError::unsupported(format!(
                "'{}': content parts of type '{other}' are not supported (use text, image_url, image, video_url or video)",
                fields.path_of("type")
            )))
        }
    };
    let source = parse_image_source(text)
        .map_err(|e| ApiError::invalid("invalid_image", format!("'{field}': {e}")))?;
    media.images.push(ImageInput {
        source,
        field,
        budget,
    });
    Ok(Part::Image(ImageRef(media.images.len() - 1)))
}

/// A `video_url` part (`{"url": …, "fps"?}` or a bare string) or a `video` part (a string, or
/// a list of frame images), with an optional `fps` beside it.
fn parse_video_part(fields: &Fields, media: &mut Media) -> Result<Part, ApiError> {
    let clip_of = |text: &str, field: &str| {
        parse_video_source(text)
            .map(VideoSource::Clip)
            .map_err(|e| ApiError::invalid("invalid_video", format!("'{field}': {e}")))
    };
    // Between one frame a minute and the rate of any camera.
    let (min_fps, max_fps) = (1.0 / 60.0, 1000.0);
    let mut fps = fields.number("fps", min_fps, max_fps)?;
    let (source, field) = if fields.required_string("type")? == "video_url" {
        match fields.required("video_url")? {
            Value::String(url) => {
                let field = fields.path_of("video_url");
                (clip_of(url, &field)?, field)
            }
            object => {
                let inner = Fields::of(object, &fields.path_of("video_url"))?;
                fps = fps.or(inner.number("fps", min_fps, max_fps)?);
                let field = inner.path_of("url");
                let url = inner.required_string("url")?;
                (clip_of(url, &field)?, field)
            }
        }
    } else {
        let field = fields.path_of("video");
        match fields.required("video")? {
            Value::String(url) => (clip_of(url, &field)?, field),
            Value::Array(frames) => {
                let frames = frames
                    .iter()
                    .enumerate()
                    .map(|(i, frame)| {
                        let path = format!("{field}[{i}]");
                        match frame {
                            Value::String(url) => parse_image_source(url).map_err(|e| {
                                ApiError::invalid("invalid_video", format!("'{path}': {e}"))
                            }),
                            other => Err(ApiError::invalid(
                                "invalid_field",
                                format!("'{path}' must be a string, got {}", kind_of(other)),
                            )),
                        }
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                (VideoSource::Frames(frames), field)
            }
            other => {
                return Err(ApiError::invalid(
                    "invalid_field",
                    format!(
                        "'{field}' must be a URL or a list of frame images, got {}",
                        kind_of(other)
                    ),
                ))
            }
        }
    };
    media.videos.push(VideoInput { source, field, fps });
    Ok(Part::Video(VideoRef(media.videos.len() - 1)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_image_form_becomes_an_image_part_in_order() {
        let value = json!([
            {"role": "developer", "content": "Be brief."},
            {"role": "user", "content": [
                {"type": "text", "text": "Compare"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAEC"}},
                {"type": "image_url", "image_url": "https://example.com/b.png"},
                {"type": "image", "image": "AAEC"}
            ]}
        ]);
        let conversation = parse_messages(&value, 8).unwrap();
        assert_eq!(conversation.messages[0].role, Role::System);
        assert_eq!(
            conversation.messages[1].content,
            Content::Parts(vec![
                Part::Text("Compare".into()),
                Part::Image(ImageRef(0)),
                Part::Image(ImageRef(1)),
                Part::Image(ImageRef(2)),
            ])
        );
        let fields: Vec<_> = conversation
            .images
            .iter()
            .map(|i| i.field.as_str())
            .collect();
        assert_eq!(
            fields,
            [
                "messages[1].content[1].image_url.url",
                "messages[1].content[2].image_url",
                "messages[1].content[3].image"
            ]
        );
        assert_eq!(
            conversation.images[1].source,
            ImageSource::Remote("https://example.com/b.png".into())
        );
    }

    #[test]
    fn bad_messages_are_refused_with_their_path() {
        let cases = [
            (json!([]), 400, "at least one message"),
            (
                json!([{"role": "robot", "content": "hi"}]),
                400,
                "'messages[0].role': unknown chat role 'robot'",
            ),
            (
                json!([{"role": "user", "content": 5}]),
                400,
                "'messages[0].content' must be a string or an array",
            ),
            (
                json!([{"role": "user", "content": [{"type": "text"}]}]),
                400,
                "'messages[0].content[0].text' is required",
            ),
            (
                json!([{"role": "user", "content": [{"type": "input_audio"}]}]),
                422,
                "'input_audio' are not supported",
            ),
            (
                json!([{"role": "assistant", "content": [{"type": "image", "image": "AAEC"}]}]),
                400,
                "only accepted in user and tool",
            ),
            (
                json!([{"role": "user", "content": [{"type": "image", "image": "file:///x"}]}]),
                400,
                "'messages[0].content[0].image'",
            ),
        ];
        for (value, status, needle) in cases {
            let error = parse_messages(&value, 8).unwrap_err();
            assert_eq!(error.status, status, "{value}");
            assert!(error.message.contains(needle), "{value}: {}", error.message);
        }
    }

    #[test]
    fn video_parts_become_videos_in_order() {
        let value = json!([{"role": "user", "content": [
            {"type": "video_url", "video_url": {"url": "https://example.com/a.mp4", "fps": 1}},
            {"type": "image", "image": "AAEC"},
            {"type": "video", "video": ["AAEC", "data:image/png;base64,AAEC"], "fps": 4},
            {"type": "video_url", "video_url": "data:video/mp4;base64,AAEC"}
        ]}]);
        let conversation = parse_messages(&value, 8).unwrap();
        assert_eq!(
            conversation.messages[0].content,
            Content::Parts(vec![
                Part::Video(VideoRef(0)),
                Part::Image(ImageRef(0)),
                Part::Video(VideoRef(1)),
                Part::Video(VideoRef(2)),
            ])
        );
        let videos = &conversation.videos;
        assert_eq!(
            videos[0].source,
            VideoSource::Clip(ImageSource::Remote("https://example.com/a.mp4".into()))
        );
        assert_eq!(
            (videos[0].fps, videos[1].fps, videos[2].fps),
            (Some(1.0), Some(4.0), None)
        );
        assert!(matches!(&videos[1].source, VideoSource::Frames(f) if f.len() == 2));
        assert_eq!(videos[1].field, "messages[0].content[2].video");
        assert_eq!(
            videos[2].source,
            VideoSource::Clip(ImageSource::Inline(vec![0, 1, 2]))
        );

        let bad = [
            (
                json!({"type": "video", "video": 5}),
                "a URL or a list of frame images",
            ),
            (
                json!({"type": "video", "video": [1]}),
                "'messages[0].content[0].video[0]' must be a string",
            ),
            (
                json!({"type": "video_url", "video_url": "file:///etc/passwd"}),
                "'file://' is not accepted",
            ),
            (
                json!({"type": "video", "video": "AAEC", "fps": 0}),
                "'messages[0].content[0].fps'",
            ),
        ];
        for (part, needle) in bad {
            let error =
                parse_messages(&json!([{"role": "user", "content": [part]}]), 8).unwrap_err();
            assert_eq!(error.status, 400, "{needle}");
            assert!(error.message.contains(needle), "{}", error.message);
        }
        let assistant =
            json!([{"role": "assistant", "content": [{"type": "video", "video": "AAEC"}]}]);
        assert!(parse_messages(&assistant, 8).is_err());
    }

    #[test]
    fn too_many_images_are_refused() {
        let part = json!({"type": "image", "image": "AAEC"});
        let value = json!([{"role": "user", "content": [part.clone(), part.clone(), part]}]);
        let error = parse_messages(&value, 2).unwrap_err();
        assert_eq!((error.status, error.code), (400, "too_many_images"));
        assert!(error.message.contains("3 images, more than the limit of 2"));
    }
}
