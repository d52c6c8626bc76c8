//! Chat messages as the template sees them: a role and either a plain string or a list of text,
//! image and video parts. Images and videos are referenced by index into the request's images
//! and videos (their pixels live with the caller). Serializes to the dicts HF chat templates
//! expect: `{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "..."}]}`.

use std::fmt;
use std::str::FromStr;

use anyhow::{bail, Result};
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

/// Who speaks a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
    Tool,
}

impl Role {
    /// The role's name as written in requests and templates.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = anyhow::Error;

    fn from_str(name: &str) -> Result<Self> {
        Ok(match name {
            "system" => Role::System,
            "user" => Role::User,
            "assistant" => Role::Assistant,
            "tool" => Role::Tool,
            other => {
                bail!("unknown chat role '{other}' (expected system, user, assistant or tool)")
            }
        })
    }
}

/// Index of an image among the request's images.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ImageRef(pub usize);

/// Index of a video among the request's videos.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct VideoRef(pub usize);

/// One item of a multi-part message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Part {
    Text(String),
    Image(ImageRef),
    Video(VideoRef),
}

/// A picture or a clip that a message shows the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Media {
    Image(ImageRef),
    Video(VideoRef),
}

impl Serialize for Part {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Part::Text(text) => {
                let mut map = serializer.serialize_map(Some(2))?;
                map.serialize_entry("type", "text")?;
                map.serialize_entry("text", text)?;
                map.end()
            }
            Part::Image(_) | Part::Video(_) => {
                let kind = if matches!(self, Part::Image(_)) {
                    "image"
                } else {
                    "video"
                };
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry("type", kind)?;
                map.end()
            }
        }
    }
}

/// A message body: a plain string or a list of parts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Parts(Vec<Part>),
}

impl From<&str> for Content {
    fn from(text: &str) -> Self {
        Content::Text(text.to_owned())
    }
}

impl From<String> for Content {
    fn from(text: String) -> Self {
        Content::Text(text)
    }
}

impl From<Vec<Part>> for Content {
    fn from(parts: Vec<Part>) -> Self {
        Content::Parts(parts)
    }
}

/// A function call an assistant message made, as the template writes it back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ToolCall {
    pub name: String,
    /// The arguments as JSON text (written into the prompt as they are).
    pub arguments: String,
}

/// One turn of a conversation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Message {
    pub role: Role,
    pub content: Content,
    /// The function calls of an assistant message.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// An assistant message's reasoning (thinking models' templates write it back).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
}

impl Message {
    pub fn new(role: Role, content: impl Into<Content>) -> Self {
        Self {
            role,
            content: content.into(),
            tool_calls: Vec::new(),
            reasoning_content: None,
        }
    }

    /// An assistant message with its reasoning.
    pub fn with_reasoning(mut self, reasoning: Option<String>) -> Self {
        self.reasoning_content = reasoning;
        self
    }

    /// An assistant message that called functions.
    pub fn with_tool_calls(mut self, tool_calls: Vec<ToolCall>) -> Self {
        self.tool_calls = tool_calls;
        self
    }

    /// A message whose role comes from a request; an unknown role is an error.
    pub fn with_role_name(role: &str, content: impl Into<Content>) -> Result<Self> {
        Ok(Self::new(role.parse()?, content))
    }

    /// The images and videos of this message, in order.
    pub fn media(&self) -> impl Iterator<Item = Media> + '_ {
        let parts: &[Part] = match &self.content {
            Content::Text(_) => &[],
            Content::Parts(parts) => parts,
        };
        parts.iter().filter_map(|part| match part {
            Part::Image(image) => Some(Media::Image(*image)),
            Part::Video(video) => Some(Media::Video(*video)),
            Part::Text(_) => None,
        })
    }

    /// The images of this message, in order.
    pub fn images(&self) -> impl Iterator<Item = ImageRef> + '_ {
        self.media().filter_map(|media| match media {
            Media::Image(image) => Some(image),
            Media::Video(_) => None,
        })
    }
}

/// The images and videos of a conversation in the order their placeholders appear in the
/// rendered prompt, i.e. the order of the `media` that `build_prompt` expects.
/// The Qwen3-VL template places the media of user and tool messages only (it drops those of
/// system and assistant messages), so one anywhere else is an error rather than silently lost.
pub fn media_in_prompt_order(messages: &[Message]) -> Result<Vec<Media>> {
    let mut order = Vec::new();
    for (index, message) in messages.iter().enumerate() {
        let media = message.media();
        match message.role {
            Role::User | Role::Tool => order.extend(media),
            Role::System | Role::Assistant => {
                if media.count() > 0 {
                    bail!(
                        "message {index} ({}): images and videos are only accepted in user and \
                         tool messages",
                        message.role
                    );
                }
            }
        }
    }
    Ok(order)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_role_is_rejected() {
        let error = Message::with_role_name("developer", "hi").unwrap_err();
        assert!(
            error.to_string().contains("unknown chat role 'developer'"),
            "{error}"
        );
        assert_eq!(
            Message::with_role_name("assistant", "hi").unwrap().role,
            Role::Assistant
        );
    }

    #[test]
    fn serializes_to_the_hf_message_shape() {
        let messages = vec![
            Message::new(Role::System, "Be brief."),
            Message::new(
                Role::User,
                vec![Part::Image(ImageRef(0)), Part::Text("What is it?".into())],
            ),
        ];
        assert_eq!(
            serde_json::to_value(&messages).unwrap(),
            serde_json::json!([
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is it?"}]}
            ])
        );
    }

    #[test]
    fn videos_serialize_as_video_parts() {
        let message = Message::new(
            Role::User,
            vec![Part::Video(VideoRef(0)), Part::Text("What happens?".into())],
        );
        assert_eq!(
            serde_json::to_value(&message).unwrap(),
            serde_json::json!({"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "What happens?"}]})
        );
    }

    #[test]
    fn images_are_listed_in_prompt_order() {
        let messages = vec![
            Message::new(
                Role::User,
                vec![Part::Image(ImageRef(1)), Part::Text("a".into())],
            ),
            Message::new(Role::Assistant, "b"),
            Message::new(
                Role::User,
                vec![Part::Image(ImageRef(0)), Part::Image(ImageRef(2))],
            ),
        ];
        assert_eq!(
            media_in_prompt_order(&messages).unwrap(),
            vec![
                Media::Image(ImageRef(1)),
                Media::Image(ImageRef(0)),
                Media::Image(ImageRef(2))
            ]
        );
    }

    #[test]
    fn image_in_an_assistant_message_is_rejected() {
        let messages = vec![
            Message::new(Role::User, "hi"),
            Message::new(Role::Assistant, vec![Part::Image(ImageRef(0))]),
        ];
        let error = media_in_prompt_order(&messages).unwrap_err();
        assert!(
            error.to_string().contains("message 1 (assistant)"),
            "{error}"
        );
    }
}
