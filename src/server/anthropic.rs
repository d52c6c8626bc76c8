//! Anthropic's Messages API, `POST /v1/messages`, so apps written for the Anthropic SDK
//! work unchanged: `system` (a string or text blocks), `messages` whose content is a string
//! or `text` / `image` blocks (base64 or URL sources), `max_tokens` (required),
//! `stop_sequences`, `temperature`, `top_p`, `top_k`, `stream`. The answer is a `message`
//! object, or with `stream` the event sequence `message_start`, `content_block_start`,
//! `ping`, `content_block_delta`…, `content_block_stop`, `message_delta`, `message_stop`.
//! A thinking model's reasoning is a `thinking` block before the text block (streamed as
//! `thinking_delta`s), and thinking blocks sent back in assistant turns are its reasoning;
//! `thinking` must match the model (`budget_tokens` is read, not enforced: the thought ends
//! at the model's `</think>` or at `max_tokens`).
//! Features glimpse lacks (tools, documents) are refused with 422;
//! errors have Anthropic's shape (`{"type":"error","error":{"type","message"}}`).
use std::time::Instant;

use serde_json::{json, Value};

use super::answer_stream::{collect, AnswerFormat, AnswerStream, Ending, WholeAnswer};
use super::completion::{start_generation, Answer, Started};
use super::errors::ApiError;
use super::fields::{json_body, kind_of, Fields};
use super::image_budget::PixelBudget;
use super::image_source::{parse_image_source, ImageSource};
use super::messages::{check_image_count, Conversation, ImageInput};
use super::reasoning::{split_reasoning, Thought, Thoughts};
use super::reply::{Body, Reply};
use super::request::{sampling_params_within, stop_list, ChatRequest, RequestContext, Tools};
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
    let request = parse_messages_request(body, RequestContext::of(state, model))?;
    let stream = request.stream;
    let Started {
        events,
        mut answer,
        summary,
    } = start_generation(state, model, request, received)?;
    let id = format!("msg_{:024x}", rand::random::<u128>() >> 32);
    let reply = if stream {
        let format = AnthropicEvents {
            id,
            thoughts: Thoughts::new(answer.reasoning),
            block: None,
            blocks: 0,
        };
        Reply::event_stream(Box::new(AnswerStream::new(events, answer, format)))
    } else {
        let whole = collect(events, &mut answer)?;
        let message = message_json(&id, &answer, &whole);
        Reply::json(200, &message)
    };
    Ok(reply.with_generation(summary))
}

/// The request as glimpse's chat request.
fn parse_messages_request(body: &[u8], context: RequestContext) -> Result<ChatRequest, ApiError> {
    let value: Value = json_body(body)?;
    let fields = Fields::of(&value, "")?;
    refuse_unsupported(&fields, context.thinks)?;
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
    check_image_count(images.len(), context.max_images)?;
    Ok(ChatRequest {
        conversation: Conversation {
            messages,
            images,
            videos: Vec::new(),
            text: None,
        },
        stream: fields.bool("stream")?.unwrap_or(false),
        include_usage: false,
        return_progress: false,
        ignore_eos: false,
        max_tokens: Some(max_tokens as usize),
        sampling: sampling_params_within(&fields, 1.0, context.sampling)?,
        stop: stop_list(&fields, "stop_sequences", false)?,
        logprobs: None,
        image_budget: PixelBudget::default(),
        grammar: None,
        logit_bias: Vec::new(),
        tools: Tools::default(),
        template_kwargs: None,
    })
}

fn refuse_unsupported(fields: &Fields, thinks: bool) -> Result<(), ApiError> {
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
        let thinking = Fields::of(thinking, "thinking")?;
        match (thinking.required_string("type")?, thinks) {
            ("enabled", true) => {
                thinking.integer("budget_tokens", 1, u32::MAX.into())?;
            }
            ("disabled", false) => {}
            ("enabled", false) => {
                return Err(ApiError::invalid(
                    "invalid_field",
                    "'thinking.type' = 'enabled': this model does not think (an Instruct model); use a Thinking model",
                ))
            }
            ("disabled", true) => {
                return Err(ApiError::invalid(
                    "invalid_field",
                    "'thinking.type' = 'disabled': this model always thinks (a Qwen3-VL Thinking model); leave 'thinking' out or enable it",
                ))
            }
            (other, _) => {
                return Err(ApiError::invalid(
                    "invalid_field",
                    format!("'thinking.type' = '{other}': it is 'enabled' or 'disabled'"),
                ))
            }
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
    let mut reasoning = None::<String>;
    let content = match fields.required("content")? {
        Value::String(text) => Content::Text(text.clone()),
        Value::Array(blocks) => {
            let mut parts = Vec::new();
            for (i, block) in blocks.iter().enumerate() {
                let path = format!("{}[{i}]", fields.path_of("content"));
                // A thinking model's earlier thought, sent back with its answer: the chat
                // template decides whether the prompt keeps it (as reasoning_content).
                if role == Role::Assistant && block.get("type") == Some(&json!("thinking")) {
                    let thought = Fields::of(block, &path)?.required_string("thinking")?;
                    reasoning.get_or_insert_default().push_str(thought);
                    continue;
                }
                parts.push(parse_block(block, &path, images)?);
            }
            Content::Parts(parts)
        }
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
    let message = Message::new(role, content).with_reasoning(reasoning);
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

/// A `thinking` content block. Its signature, which Anthropic's API uses to check that
/// a thought sent back was its own, is empty: glimpse reads thoughts sent back as they are.
fn thinking_block(thinking: &str) -> Value {
    json!({"type": "thinking", "thinking": thinking, "signature": ""})
}

fn message_json(id: &str, answer: &Answer, whole: &WholeAnswer) -> Value {
    let (reason, stop) = stop_reason(&whole.ending);
    let content = if answer.reasoning {
        let (thinking, text) = split_reasoning(&whole.text);
        vec![
            thinking_block(&thinking),
            json!({"type": "text", "text": text}),
        ]
    } else {
        vec![json!({"type": "text", "text": whole.text})]
    };
    json!({
        "id": id,
        "type": "message",
        "role": "assistant",
        "model": answer.ids.model,
        "content": content,
        "stop_reason": reason,
        "stop_sequence": stop,
        "usage": usage_json(&whole.ending),
    })
}

/// The kind of a streamed content block.
#[derive(Clone, Copy, PartialEq, Eq)]
enum BlockKind {
    Thinking,
    Text,
}

/// The streamed events of one message: a thinking model's reasoning in a `thinking` block,
/// then the answer in a `text` block.
struct AnthropicEvents {
    id: String,
    thoughts: Thoughts,
    /// The open content block.
    block: Option<BlockKind>,
    /// Blocks started so far (the next one's index).
    blocks: usize,
}

impl AnthropicEvents {
    /// Events that close the open block, if any.
    fn close_block(&mut self) -> Vec<Vec<u8>> {
        match self.block.take() {
            None => Vec::new(),
            Some(_) => {
                let stop = json!({"type": "content_block_stop", "index": self.blocks - 1});
                vec![event("content_block_stop", &stop)]
            }
        }
    }

    /// Events that make `kind` the open block (closing another kind first).
    fn open_block(&mut self, kind: BlockKind) -> Vec<Vec<u8>> {
        if self.block == Some(kind) {
            return Vec::new();
        }
        let mut events = self.close_block();
        let content_block = match kind {
            BlockKind::Thinking => thinking_block(""),
            BlockKind::Text => json!({"type": "text", "text": ""}),
        };
        let start = json!({"type": "content_block_start", "index": self.blocks, "content_block": content_block});
        events.push(event("content_block_start", &start));
        self.block = Some(kind);
        self.blocks += 1;
        events
    }

    fn thought_events(&mut self, thoughts: Vec<Thought>) -> Vec<Vec<u8>> {
        let mut events = Vec::new();
        for thought in thoughts {
            let (kind, delta) = match &thought {
                Thought::Reasoning(text) => (
                    BlockKind::Thinking,
                    json!({"type": "thinking_delta", "thinking": text}),
                ),
                Thought::Answer(text) => {
                    (BlockKind::Text, json!({"type": "text_delta", "text": text}))
                }
            };
            events.extend(self.open_block(kind));
            let delta =
                json!({"type": "content_block_delta", "index": self.blocks - 1, "delta": delta});
            events.push(event("content_block_delta", &delta));
        }
        events
    }
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
        let first = if answer.reasoning {
            BlockKind::Thinking
        } else {
            BlockKind::Text
        };
        let mut events = vec![event("message_start", &start)];
        events.extend(self.open_block(first));
        events.push(event("ping", &json!({"type": "ping"})));
        events
    }

    fn delta(&mut self, _answer: &Answer, text: &str, _logprobs: &[TokenLogprob]) -> Vec<Vec<u8>> {
        let thoughts = self.thoughts.push(text);
        self.thought_events(thoughts)
    }

    fn done(&mut self, answer: &Answer, ending: &Ending) -> Vec<Vec<u8>> {
        let held_back = self.thoughts.finish();
        let mut events = self.thought_events(held_back);
        if answer.reasoning {
            // A whole answer always has its text block, empty when the thought was cut.
            events.extend(self.open_block(BlockKind::Text));
        }
        events.extend(self.close_block());
        let (reason, stop) = stop_reason(ending);
        let delta = json!({
            "type": "message_delta",
            "delta": {"stop_reason": reason, "stop_sequence": stop},
            "usage": usage_json(ending),
        });
        events.push(event("message_delta", &delta));
        events.push(event("message_stop", &json!({"type": "message_stop"})));
        events
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
        parse_messages_request(
            value.to_string().as_bytes(),
            super::super::request::test_context(4),
        )
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
        // An Instruct model cannot think.
        let thinking = json!({"max_tokens": 1, "messages": user, "thinking": {"type": "enabled", "budget_tokens": 1024}});
        assert_eq!(status(thinking), 400);
    }

    #[test]
    fn thinking_is_what_the_model_does() {
        let user = json!([{"role": "user", "content": "hi"}]);
        let thinks = RequestContext {
            thinks: true,
            ..super::super::request::test_context(4)
        };
        let parse_with = |context, thinking: Value| {
            let body = json!({"max_tokens": 1, "messages": user, "thinking": thinking});
            parse_messages_request(body.to_string().as_bytes(), context)
        };
        assert!(parse_with(thinks, json!({"type": "enabled", "budget_tokens": 1024})).is_ok());
        assert!(parse_with(
            super::super::request::test_context(4),
            json!({"type": "disabled"})
        )
        .is_ok());
        for (context, thinking) in [
            (thinks, json!({"type": "disabled"})),
            (thinks, json!({"type": "enabled", "budget_tokens": "many"})),
            (thinks, json!({"type": "sometimes"})),
        ] {
            let error = parse_with(context, thinking.clone()).unwrap_err();
            assert_eq!(error.status, 400, "{thinking}");
        }
        // A thought sent back in an assistant turn is the message's reasoning.
        let body = json!({"max_tokens": 1, "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "They greet me.", "signature": ""},
                {"type": "text", "text": "Hello!"}
            ]},
            {"role": "user", "content": "again"}
        ]});
        let request = parse_messages_request(body.to_string().as_bytes(), thinks).unwrap();
        let assistant = &request.conversation.messages[1];
        assert_eq!(
            assistant.reasoning_content.as_deref(),
            Some("They greet me.")
        );
    }

    #[test]
    fn errors_take_anthropics_shape() {
        let value = error_json(&ApiError::unauthorized());
        assert_eq!(value["type"], "error");
        assert_eq!(value["error"]["type"], "authentication_error");
    }
}
