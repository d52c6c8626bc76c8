//! Anthropic's Messages API, `POST /v1/messages`, so apps written for the Anthropic SDK
//! work unchanged: `system` (a string or text blocks), `messages` whose content is a string
//! or `text` / `image` blocks (base64 or URL sources), `max_tokens` (required),
//! `stop_sequences`, `temperature`, `top_p`, `top_k`, `stream`. The answer is a `message`
//! object, or with `stream` the event sequence `message_start`, `content_block_start`,
//! `ping`, `content_block_delta`…, `content_block_stop`, `message_delta`, `message_stop`.
//! Features glimpse lacks (tools, extended thinking, documents) are refused with 422;
//! errors have Anthropic's shape (`{"type":"error","error":{"type","message"}}`).
use std::time::Instant;

use serde_json::{json, Value};

use super::answer_stream::{collect, AnswerFormat, AnswerStream, Ending, Progress};
use super::completion::{start_generation, Answer, Started};
use super::errors::ApiError;
use super::fields::{json_body, kind_of, Fields};
use super::image_budget::PixelBudget;
use super::image_source::{parse_image_source, ImageSource};
use super::messages::{check_image_count, Conversation, ImageInput};
use super::reply::{Body, Reply};
use super::request::{sampling_params_within, ChatRequest, Tools, MAX_STOP_STRINGS};
use super::state::{AppState, LoadedModel};
use crate::chat::{Content, ImageRef, Message, Part, Role};
use crate::engine::scheduler::TokenLogprob;
use crate::engine::FinishReason;

/// Answers a `/v1/messages` request.
pub fn messages(
    state: &AppState,
    model: &LoadedModel,
    body: &[u8],
    received: Instant,
) -> Result<Reply, ApiError> {
    let request = parse_messages_request(body, state.config.limits.max_images)?;
    let stream = request.stream;
    let Started {
        events,
        mut answer,
        summary,
    } = start_generation(state, model, request, received)?;
    let id = format!("msg_{:024x}", rand::random::<u128>() >> 32);
    let reply = if stream {
        let format = AnthropicEvents { id };
        Reply::event_stream(Box::new(AnswerStream::new(events, answer, format)))
    } else {
        let whole = collect(events, &mut answer)?;
        let message = message_json(&id, &answer, &whole.ending, &whole.text);
        Reply::json(200, &message)
    };
    Ok(reply.with_generation(summary))
}

/// The request as glimpse's chat request.
fn parse_messages_request(body: &[u8], max_images: usize) -> Result<ChatRequest, ApiError> {
    let value: Value = json_body(body)?;
    let fields = Fields::of(&value, "")?;
    refuse_unsupported(&fields)?;
    fields.string("model")?;
    let max_tokens = fields
        .integer("max_tokens", 1, u32::MAX.into())?
        .ok_or_else(|| ApiError::invalid("invalid_field", "'max_tokens' is required"))?;
    let mut images = Vec::new();
    let mut messages = Vec::new();
    match fields.get("system") {
        None => {}
        Some(Value::String(text)) => messages.push(Message::new(Role::System, text.as_str())),
        Some(Value::Array(blocks)) => {
            let text = blocks
                .iter()
                .enumerate()
                .map(|(i, block)| {
                    let block = Fields::of(block, &format!("system[{i}]"))?;
                    match block.required_string("type")? {
                        "text" => Ok(block.required_string("text")?),
                        other => Err(ApiError::unsupported(format!(
                            "'system[{i}].type' = '{other}': system blocks must be text"
                        ))),
                    }
                })
                .collect::<Result<Vec<_>, _>>()?
                .join("\n");
            messages.push(Message::new(Role::System, text));
        }
        Some(other) => {
            return Err(ApiError::invalid(
                "invalid_field",
                format!(
                    "'system' must be a string or text blocks, got {}",
                    kind_of(other)
                ),
            ))
        }
    }
    let Some(Value::Array(items)) = fields.get("messages") else {
        return Err(ApiError::invalid(
            "invalid_field",
            "'messages' must be an array",
        ));
    };
    if items.is_empty() {
        return Err(ApiError::invalid(
            "invalid_field",
            "'messages' must hold at least one message",
        ));
    }
    for (index, item) in items.iter().enumerate() {
        messages.push(parse_message(
            item,
            &format!("messages[{index}]"),
            &mut images,
        )?);
    }
    check_image_count(images.len(), max_images)?;
    Ok(ChatRequest {
        conversation: Conversation {
            messages,
            images,
            text: None,
        },
        stream: fields.bool("stream")?.unwrap_or(false),
        include_usage: false,
        return_progress: false,
        ignore_eos: false,
        max_tokens: Some(max_tokens as usize),
        sampling: sampling_params_within(&fields, 1.0)?,
        stop: stop_sequences(&fields)?,
        logprobs: None,
        image_budget: PixelBudget::default(),
        grammar: None,
        logit_bias: Vec::new(),
        tools: Tools::default(),
    })
}

fn refuse_unsupported(fields: &Fields) -> Result<(), ApiError> {
    if fields
        .get("tools")
        .is_some_and(|tools| !matches!(tools, Value::Array(list) if list.is_empty()))
    {
        return Err(ApiError::unsupported(
            "'tools': tool use is not supported yet",
        ));
    }
    if let Some(choice) = fields.get("tool_choice") {
        let kind = Fields::of(choice, "tool_choice")?.required_string("type")?;
        if !matches!(kind, "auto" | "none") {
            return Err(ApiError::unsupported(format!(
                "'tool_choice.type' = '{kind}': tool use is not supported yet"
            )));
        }
    }
    if let Some(thinking) = fields.get("thinking") {
        let kind = Fields::of(thinking, "thinking")?.required_string("type")?;
        if kind != "disabled" {
            return Err(ApiError::unsupported(format!(
                "'thinking.type' = '{kind}': extended thinking is not supported"
            )));
        }
    }
    Ok(())
}

fn parse_message(
    value: &Value,
    path: &str,
    images: &mut Vec<ImageInput>,
) -> Result<Message, ApiError> {
    let fields = Fields::of(value, path)?;
    let role = match fields.required_string("role")? {
        "user" => Role::User,
        "assistant" => Role::Assistant,
        other => {
            return Err(ApiError::invalid(
                "invalid_field",
                format!(
                    "'{}' = '{other}': roles are user and assistant",
                    fields.path_of("role")
                ),
            ))
        }
    };
    let content = match fields.required("content")? {
        Value::String(text) => Content::Text(text.clone()),
        Value::Array(blocks) => Content::Parts(
            blocks
                .iter()
                .enumerate()
                .map(|(i, block)| {
                    parse_block(
                        block,
                        &format!("{}[{i}]", fields.path_of("content")),
                        images,
                    )
                })
                .collect::<Result<_, _>>()?,
        ),
        other => {
            return Err(ApiError::invalid(
                "invalid_field",
                format!(
                    "'{}' must be a string or an array of blocks, got {}",
                    fields.path_of("content"),
                    kind_of(other)
                ),
            ))
        }
    };
    let message = Message::new(role, content);
    if role == Role::Assistant && message.images().next().is_some() {
        return Err(ApiError::invalid(
            "invalid_field",
            format!("'{path}': images are only accepted in user messages"),
        ));
    }
    Ok(message)
}

fn parse_block(value: &Value, path: &str, images: &mut Vec<ImageInput>) -> Result<Part, ApiError> {
    let fields = Fields::of(value, path)?;
    match fields.required_string("type")? {
        "text" => Ok(Part::Text(fields.required_string("text")?.to_owned())),
        "image" => {
            let source = Fields::of(fields.required("source")?, &fields.path_of("source"))?;
            let (field, image) = match source.required_string("type")? {
                "base64" => {
                    let media_type = source.required_string("media_type")?;
                    if !media_type.to_ascii_lowercase().starts_with("image/") {
                        return Err(ApiError::invalid(
                            "invalid_image",
                            format!(
                                "'{}' = '{media_type}' is not an image type",
                                source.path_of("media_type")
                            ),
                        ));
                    }
                    let data = source.required_string("data")?;
                    let field = source.path_of("data");
                    match parse_image_source(data) {
                        Ok(ImageSource::Inline(bytes)) => (field, ImageSource::Inline(bytes)),
                        _ => {
                            return Err(ApiError::invalid(
                                "invalid_image",
                                format!("'{field}' is not base64 image data"),
                            ))
                        }
                    }
                }
                "url" => {
                    let url = source.required_string("url")?;
                    let field = source.path_of("url");
                    let image = parse_image_source(url).map_err(|e| {
                        ApiError::invalid("invalid_image", format!("'{field}': {e}"))
                    })?;
                    (field, image)
                }
                other => {
                    return Err(ApiError::unsupported(format!(
                        "'{}' = '{other}': image sources are base64 or url",
                        source.path_of("type")
                    )))
                }
            };
            images.push(ImageInput {
                source: image,
                field,
                budget: PixelBudget::default(),
            });
            Ok(Part::Image(ImageRef(images.len() - 1)))
        }
        other => Err(ApiError::unsupported(format!(
            "'{}' = '{other}': content blocks of this type are not supported (text and image are)",
            fields.path_of("type")
        ))),
    }
}

fn stop_sequences(fields: &Fields) -> Result<Vec<String>, ApiError> {
    match fields.get("stop_sequences") {
        None => Ok(Vec::new()),
        Some(Value::Array(list)) if list.len() <= MAX_STOP_STRINGS => list
            .iter()
            .map(|item| item.as_str().map(str::to_owned))
            .collect::<Option<_>>()
            .ok_or_else(|| {
                ApiError::invalid("invalid_field", "'stop_sequences' must hold strings only")
            }),
        Some(_) => Err(ApiError::invalid(
            "invalid_field",
            format!("'stop_sequences' must be an array of at most {MAX_STOP_STRINGS} strings"),
        )),
    }
}

/// `end_turn`, `max_tokens` or `stop_sequence`, with the stop sequence.
fn stop_reason(ending: &Ending) -> (&'static str, Option<&str>) {
    match (ending.finish_reason, ending.stop_sequence.as_deref()) {
        (FinishReason::Length, _) => ("max_tokens", None),
        (FinishReason::Stop, Some(stop)) => ("stop_sequence", Some(stop)),
        (FinishReason::Stop, None) => ("end_turn", None),
    }
}

/// Anthropic counts cached prompt tokens apart from the others.
fn usage_json(ending: &Ending) -> Value {
    let timings = &ending.timings;
    json!({
        "input_tokens": timings.prompt_tokens - timings.cached_prompt_tokens.min(timings.prompt_tokens),
        "cache_read_input_tokens": timings.cached_prompt_tokens,
        "cache_creation_input_tokens": 0,
        "output_tokens": ending.completion_tokens,
    })
}

fn message_json(id: &str, answer: &Answer, ending: &Ending, text: &str) -> Value {
    let (reason, stop) = stop_reason(ending);
    json!({
        "id": id,
        "type": "message",
        "role": "assistant",
        "model": answer.ids.model,
        "content": [{"type": "text", "text": text}],
        "stop_reason": reason,
        "stop_sequence": stop,
        "usage": usage_json(ending),
    })
}

/// The streamed events of one message.
struct AnthropicEvents {
    id: String,
}

fn event(name: &str, data: &Value) -> Vec<u8> {
    format!("event: {name}\ndata: {data}\n\n").into_bytes()
}

impl AnswerFormat for AnthropicEvents {
    fn opening(&mut self, answer: &Answer) -> Vec<Vec<u8>> {
        let start = json!({
            "type": "message_start",
            "message": {
                "id": self.id,
                "type": "message",
                "role": "assistant",
                "model": answer.ids.model,
                "content": [],
                "stop_reason": null,
                "stop_sequence": null,
                "usage": {"input_tokens": answer.prompt_tokens, "output_tokens": 0},
            },
        });
        let block = json!({
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "text", "text": ""},
        });
        vec![
            event("message_start", &start),
            event("content_block_start", &block),
            event("ping", &json!({"type": "ping"})),
        ]
    }

    fn progress(&mut self, _answer: &Answer, _progress: &Progress) -> Option<Vec<u8>> {
        None
    }

    fn delta(&mut self, _answer: &Answer, text: &str, _logprobs: &[TokenLogprob]) -> Vec<Vec<u8>> {
        if text.is_empty() {
            return Vec::new();
        }
        let delta = json!({
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": text},
        });
        vec![event("content_block_delta", &delta)]
    }

    fn done(&mut self, _answer: &Answer, ending: &Ending) -> Vec<Vec<u8>> {
        let (reason, stop) = stop_reason(ending);
        let delta = json!({
            "type": "message_delta",
            "delta": {"stop_reason": reason, "stop_sequence": stop},
            "usage": usage_json(ending),
        });
        vec![
            event(
                "content_block_stop",
                &json!({"type": "content_block_stop", "index": 0}),
            ),
            event("message_delta", &delta),
            event("message_stop", &json!({"type": "message_stop"})),
        ]
    }

    fn failed(&mut self, _answer: &Answer, error: &ApiError) -> Vec<Vec<u8>> {
        vec![event("error", &error_json(error))]
    }

    fn keep_alive(&self) -> Option<Vec<u8>> {
        Some(event("ping", &json!({"type": "ping"})))
    }
}

/// Anthropic's error object for `error`.
fn error_json(error: &ApiError) -> Value {
    let kind = match error.status {
        400 | 405 | 422 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        408 => "timeout_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 => "overloaded_error",
        _ => "api_error",
    };
    json!({"type": "error", "error": {"type": kind, "message": error.message}})
}

/// `error` as Anthropic's API answers it (same status and headers as the OpenAI form).
pub fn error_reply(error: ApiError) -> Reply {
    let body = error_json(&error).to_string().into_bytes();
    let mut reply = Reply::from(error);
    reply.body = Body::Bytes(body);
    reply
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(value: Value) -> Result<ChatRequest, ApiError> {
        parse_messages_request(value.to_string().as_bytes(), 4)
    }

    #[test]
    fn system_messages_blocks_and_sampling_are_read() {
        let request = parse(json!({
            "model": "m", "max_tokens": 5, "system": [{"type": "text", "text": "Be brief."}],
            "messages": [{"role": "user", "content": [
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAEC"}},
                {"type": "text", "text": "What is it?", "cache_control": {"type": "ephemeral"}}
            ]}, {"role": "assistant", "content": "A cat."}, {"role": "user", "content": "Sure?"}],
            "stop_sequences": ["\n\n"], "temperature": 0, "top_k": 3, "stream": true,
            "metadata": {"user_id": "u"}
        }))
        .unwrap();
        let messages = &request.conversation.messages;
        assert_eq!(messages.len(), 4);
        assert_eq!(messages[0], Message::new(Role::System, "Be brief."));
        assert_eq!(messages[1].images().count(), 1);
        assert_eq!(
            request.conversation.images[0].source,
            ImageSource::Inline(vec![0, 1, 2])
        );
        assert_eq!(request.max_tokens, Some(5));
        assert_eq!(request.stop, vec!["\n\n".to_owned()]);
        assert_eq!(
            (request.sampling.temperature, request.sampling.top_k),
            (0.0, 3)
        );
        assert!(request.stream);
    }

    #[test]
    fn missing_max_tokens_bad_roles_and_unsupported_features_are_refused() {
        let user = json!([{"role": "user", "content": "hi"}]);
        let status = |body: Value| parse(body).unwrap_err().status;
        assert_eq!(status(json!({"messages": user})), 400);
        assert_eq!(
            status(json!({"max_tokens": 1, "messages": [{"role": "system", "content": "x"}]})),
            400
        );
        assert_eq!(
            status(json!({"max_tokens": 1, "messages": user, "temperature": 1.5})),
            400
        );
        for unsupported in [
            json!({"tools": [{"name": "f", "input_schema": {}}]}),
            json!({"tool_choice": {"type": "any"}}),
            json!({"thinking": {"type": "enabled", "budget_tokens": 1024}}),
        ] {
            let mut body = json!({"max_tokens": 1, "messages": user});
            body.as_object_mut()
                .unwrap()
                .extend(unsupported.as_object().unwrap().clone());
            assert_eq!(status(body.clone()), 422, "{body}");
        }
        let document = json!({"max_tokens": 1, "messages": [{"role": "user", "content": [
            {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "x"}}
        ]}]});
        assert_eq!(status(document), 422);
    }

    #[test]
    fn errors_take_anthropics_shape() {
        let value = error_json(&ApiError::unauthorized());
        assert_eq!(value["type"], "error");
        assert_eq!(value["error"]["type"], "authentication_error");
    }
}
