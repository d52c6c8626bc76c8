//! Ollama's API on the same port, so apps and libraries written for Ollama work unchanged:
//! `POST /api/chat` (messages with base64 `images`), `POST /api/generate` (`prompt`,
//! `system`, `images`), both streaming NDJSON by default (`"stream": false` for one object),
//! with `options` (`temperature`, `top_p`, `top_k`, `num_predict`, `seed`, `stop`,
//! `repeat_penalty`, `presence_penalty`, `frequency_penalty`; runtime options such as
//! `num_ctx` or `num_thread` belong to the server's flags and are ignored) and `keep_alive`
//! (accepted: the one model stays loaded); `GET /api/tags`, `POST /api/show`, `GET /api/ps`,
//! `GET /api/version`. `format` (`"json"` or a JSON schema) constrains the answer (see
//! `engine::constraint`). A thinking model's reasoning comes back as `thinking` (`think` may
//! be left out or true; false is refused, as an Instruct model's true is). Options left out
//! take the model file's recommended sampling. Features glimpse lacks (`tools`, raw prompts,
//! templates, suffixes, other samplers) are refused with 422. Errors are `{"error": "…"}`.
use std::time::Instant;

use serde_json::{json, Map, Value};

use super::answer_stream::{collect, AnswerFormat, AnswerStream, Ending};
use super::completion::{start_generation, Answer, Started};
use super::errors::ApiError;
use super::fields::{json_body, kind_of, Fields};
use super::image_budget::PixelBudget;
use super::image_source::{parse_image_source, ImageSource};
use super::messages::{check_image_count, Conversation, ImageInput};
use super::reasoning::{split_reasoning, Thought, Thoughts};
use super::reply::{Body, Reply};
use super::request::{sampling_params_within, stop_list, ChatRequest, RequestContext, Tools};
use super::request_log::{utc_now, utc_timestamp};
use super::response::finish_reason_name;
use super::state::{AppState, LoadedModel};
use crate::chat::{Content, ImageRef, Message, Part, Role};
use crate::engine::constraint::Grammar;
use crate::engine::scheduler::TokenLogprob;

/// Which of the two generation endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Chat,
    Generate,
}

/// Answers `/api/chat` or `/api/generate`.
pub fn generate(
    state: &AppState,
    model: &LoadedModel,
    endpoint: Endpoint,
    body: &[u8],
    received: Instant,
) -> Result<Reply, ApiError> {
    let value: Value = json_body(body)?;
    let fields = Fields::of(&value, "")?;
    let name = fields
        .string("model")?
        .unwrap_or(&state.config.model_id)
        .to_owned();
    let request = match endpoint {
        Endpoint::Chat => parse_chat(&fields, RequestContext::of(state, model))?,
        Endpoint::Generate => match parse_generate(&fields, RequestContext::of(state, model))? {
            Some(request) => request,
            // An empty prompt loads the model (already loaded here).
            None => return Ok(Reply::json(200, &load_json(&name))),
        },
    };
    let stream = request.stream;
    let Started {
        events,
        mut answer,
        summary,
    } = start_generation(state, model, request, received)?;
    let lines = OllamaLines {
        endpoint,
        model: name,
        received,
        thoughts: Thoughts::new(answer.reasoning),
    };
    let reply = if stream {
        let mut reply = Reply::event_stream(Box::new(AnswerStream::new(events, answer, lines)));
        reply.content_type = "application/x-ndjson";
        reply
    } else {
        let whole = collect(events, &mut answer)?;
        let (thinking, content) = if answer.reasoning {
            split_reasoning(&whole.text)
        } else {
            (String::new(), whole.text.clone())
        };
        let mut object = lines.object(&Thought::Answer(content));
        lines.with_thinking(&mut object, &thinking);
        lines.finish(&mut object, &whole.ending);
        Reply::json(200, &object)
    };
    Ok(reply.with_generation(summary))
}

/// `/api/chat`'s body as glimpse's chat request.
fn parse_chat(fields: &Fields, context: RequestContext) -> Result<ChatRequest, ApiError> {
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
    let mut images = Vec::new();
    let mut messages = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let message = Fields::of(item, &format!("messages[{index}]"))?;
        if message.get("tool_calls").is_some() {
            return Err(ApiError::unsupported(format!(
                "'{}': tool calls are not supported yet",
                message.path_of("tool_calls")
            )));
        }
        let role_name = message.required_string("role")?;
        let role = role_name.parse::<Role>().map_err(|e| {
            ApiError::invalid(
                "invalid_field",
                format!("'{}': {e}", message.path_of("role")),
            )
        })?;
        let text = message.string("content")?.unwrap_or_default();
        let parts = base64_images(&message, &mut images)?;
        if !parts.is_empty() && !matches!(role, Role::User | Role::Tool) {
            return Err(ApiError::invalid(
                "invalid_field",
                format!("'messages[{index}].images': images are only accepted in user messages"),
            ));
        }
        messages.push(message_with_images(role, parts, text));
    }
    request(
        fields,
        Conversation {
            messages,
            images,
            videos: Vec::new(),
            text: None,
        },
        context,
    )
}

/// `/api/generate`'s body as a chat request (system, then the prompt with its images); `None`
/// for an empty prompt, which only asks for the model to be loaded.
fn parse_generate(
    fields: &Fields,
    context: RequestContext,
) -> Result<Option<ChatRequest>, ApiError> {
    if fields.bool("raw")?.unwrap_or(false) {
        return Err(ApiError::unsupported(
            "'raw': raw prompts are not supported; the chat template is always applied",
        ));
    }
    for name in ["template", "suffix"] {
        if fields.string(name)?.is_some_and(|s| !s.is_empty()) {
            return Err(ApiError::unsupported(format!("'{name}' is not supported")));
        }
    }
    if fields
        .get("context")
        .is_some_and(|c| !matches!(c, Value::Array(a) if a.is_empty()))
    {
        return Err(ApiError::unsupported(
            "'context' is not supported: send the conversation to /api/chat (its prefix is cached)",
        ));
    }
    let prompt = fields.string("prompt")?.unwrap_or_default();
    let mut images = Vec::new();
    let parts = base64_images(fields, &mut images)?;
    if prompt.is_empty() && parts.is_empty() {
        return Ok(None);
    }
    let mut messages = Vec::new();
    if let Some(system) = fields.string("system")?.filter(|s| !s.is_empty()) {
        messages.push(Message::new(Role::System, system));
    }
    messages.push(message_with_images(Role::User, parts, prompt));
    request(
        fields,
        Conversation {
            messages,
            images,
            videos: Vec::new(),
            text: None,
        },
        context,
    )
    .map(Some)
}

/// A message of `text` after `images` (Ollama's clients put images first).
fn message_with_images(role: Role, mut parts: Vec<Part>, text: &str) -> Message {
    if parts.is_empty() {
        return Message::new(role, text);
    }
    parts.push(Part::Text(text.to_owned()));
    Message::new(role, Content::Parts(parts))
}

/// The `images` list (base64 strings) of a message or a generate request.
fn base64_images(fields: &Fields, images: &mut Vec<ImageInput>) -> Result<Vec<Part>, ApiError> {
    let list = match fields.get("images") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(list)) => list,
        Some(other) => {
            return Err(ApiError::invalid(
                "invalid_field",
                format!(
                    "'{}' must be an array of base64 strings, got {}",
                    fields.path_of("images"),
                    kind_of(other)
                ),
            ))
        }
    };
    list.iter()
        .enumerate()
        .map(|(i, item)| {
            let field = format!("{}[{i}]", fields.path_of("images"));
            let bytes = match item.as_str().map(parse_image_source) {
                Some(Ok(ImageSource::Inline(bytes))) => bytes,
                _ => {
                    return Err(ApiError::invalid(
                        "invalid_image",
                        format!("'{field}' must be base64 image data"),
                    ))
                }
            };
            images.push(ImageInput {
                source: ImageSource::Inline(bytes),
                field,
                budget: PixelBudget::default(),
            });
            Ok(Part::Image(ImageRef(images.len() - 1)))
        })
        .collect()
}

/// The fields both endpoints share: `stream` (default true), `options`, `format`, `think`,
/// `tools`, `keep_alive`.
fn request(
    fields: &Fields,
    conversation: Conversation,
    context: RequestContext,
) -> Result<ChatRequest, ApiError> {
    check_image_count(conversation.images.len(), context.max_images)?;
    let grammar = match fields.get("format") {
        None | Some(Value::Null) => None,
        Some(Value::String(format)) if format.is_empty() => None,
        Some(Value::String(format)) if format == "json" => Some(Grammar::JsonObject),
        Some(schema @ Value::Object(_)) => Some(Grammar::JsonSchema(schema.clone())),
        Some(other) => {
            return Err(ApiError::invalid(
                "invalid_field",
                format!(
                    "'format' must be \"json\" or a JSON schema object, got {}",
                    kind_of(other)
                ),
            ))
        }
    };
    if fields
        .get("tools")
        .is_some_and(|t| !matches!(t, Value::Array(a) if a.is_empty()))
    {
        return Err(ApiError::unsupported(
            "'tools': tool calling is not supported yet",
        ));
    }
    check_think(fields.bool("think")?, context.thinks)?;
    let empty = Value::Object(Map::new());
    let options = Fields::of(fields.get("options").unwrap_or(&empty), "options")?;
    refuse_unsupported_options(&options)?;
    let mut sampling = sampling_params_within(&options, 2.0, context.sampling)?;
    if let Some(penalty) = options.number("repeat_penalty", 0.0, 10.0)? {
        if penalty > 0.0 {
            sampling.repetition_penalty = penalty as f32;
        }
    }
    let max_tokens = match options.get("num_predict").and_then(Value::as_i64) {
        None => None,
        // -1: no limit, -2: fill the context; both end at the context's end here.
        Some(-1 | -2) => None,
        Some(n) if n > 0 => Some(n as usize),
        Some(n) => {
            return Err(ApiError::invalid(
                "invalid_field",
                format!("'options.num_predict' = {n}: expected a positive count, -1 or -2"),
            ))
        }
    };
    Ok(ChatRequest {
        conversation,
        stream: fields.bool("stream")?.unwrap_or(true),
        include_usage: false,
        return_progress: false,
        ignore_eos: false,
        max_tokens,
        sampling,
        stop: stop_list(&options, "stop", true)?,
        logprobs: None,
        image_budget: PixelBudget::default(),
        grammar,
        logit_bias: Vec::new(),
        tools: Tools::default(),
        template_kwargs: None,
    })
}

/// Samplers glimpse does not have, when set to anything but their "off" value.
/// `think`: a thinking model always thinks (its template opens the answer with `<think>`)
/// and sends its reasoning as `thinking`; other models cannot think. Absent is the model's way.
fn check_think(think: Option<bool>, thinks: bool) -> Result<(), ApiError> {
    match (think, thinks) {
        (Some(false), true) => Err(ApiError::invalid(
            "invalid_field",
            "'think': false — this model always thinks (a Qwen3-VL Thinking model); leave 'think' out or set it to true",
        )),
        (Some(true), false) => Err(ApiError::invalid(
            "invalid_field",
            "'think': true — this model does not think (an Instruct model); use a Thinking model",
        )),
        _ => Ok(()),
    }
}

fn refuse_unsupported_options(options: &Fields) -> Result<(), ApiError> {
    let off = |name: &str, value: f64| {
        options
            .get(name)
            .and_then(Value::as_f64)
            .is_some_and(|v| v != value)
            .then(|| {
                ApiError::unsupported(format!(
                    "'options.{name}' is not supported (only {value}, which turns it off)"
                ))
            })
    };
    for (name, value) in [
        ("mirostat", 0.0),
        ("min_p", 0.0),
        ("typical_p", 1.0),
        ("tfs_z", 1.0),
    ] {
        if let Some(error) = off(name, value) {
            return Err(error);
        }
    }
    Ok(())
}

/// The NDJSON lines (or the one object) of an answer.
struct OllamaLines {
    endpoint: Endpoint,
    model: String,
    received: Instant,
    /// A thinking model's reasoning goes out as `thinking`, apart from the content.
    thoughts: Thoughts,
}

fn line(value: &Value) -> Vec<u8> {
    let mut bytes = value.to_string().into_bytes();
    bytes.push(b'\n');
    bytes
}

/// Nanoseconds in `ms` milliseconds (Ollama's durations).
fn nanos(ms: f64) -> u64 {
    (ms * 1e6).max(0.0) as u64
}

impl OllamaLines {
    /// An object carrying `piece` (content, or thinking with empty content), not done.
    fn object(&self, piece: &Thought) -> Value {
        let mut value = json!({"model": self.model, "created_at": utc_now()});
        let (content, thinking) = match piece {
            Thought::Answer(text) => (text.as_str(), ""),
            Thought::Reasoning(text) => ("", text.as_str()),
        };
        match self.endpoint {
            Endpoint::Chat => value["message"] = json!({"role": "assistant", "content": content}),
            Endpoint::Generate => value["response"] = json!(content),
        }
        self.with_thinking(&mut value, thinking);
        value["done"] = json!(false);
        value
    }

    /// Adds `thinking` where Ollama puts it (`message.thinking`, or `thinking` beside
    /// `response`) when there is any.
    fn with_thinking(&self, object: &mut Value, thinking: &str) {
        if thinking.is_empty() {
            return;
        }
        match self.endpoint {
            Endpoint::Chat => object["message"]["thinking"] = json!(thinking),
            Endpoint::Generate => object["thinking"] = json!(thinking),
        }
    }

    fn lines(&self, thoughts: Vec<Thought>) -> Vec<Vec<u8>> {
        thoughts
            .iter()
            .map(|piece| line(&self.object(piece)))
            .collect()
    }

    /// Marks `object` done, with the reason and Ollama's counts and durations.
    fn finish(&self, object: &mut Value, ending: &Ending) {
        let timings = &ending.timings;
        object["done"] = json!(true);
        object["done_reason"] = json!(finish_reason_name(ending.finish_reason));
        object["total_duration"] = json!(nanos(self.received.elapsed().as_secs_f64() * 1e3));
        object["load_duration"] = json!(0);
        object["prompt_eval_count"] = json!(timings.prompt_tokens);
        object["prompt_eval_duration"] = json!(nanos(timings.vision_ms + timings.prefill_ms));
        object["eval_count"] = json!(ending.completion_tokens);
        object["eval_duration"] = json!(nanos(timings.decode_ms));
    }
}

impl AnswerFormat for OllamaLines {
    fn opening(&mut self, _answer: &Answer) -> Vec<Vec<u8>> {
        Vec::new()
    }

    fn delta(&mut self, _answer: &Answer, text: &str, _logprobs: &[TokenLogprob]) -> Vec<Vec<u8>> {
        let thoughts = self.thoughts.push(text);
        self.lines(thoughts)
    }

    fn done(&mut self, _answer: &Answer, ending: &Ending) -> Vec<Vec<u8>> {
        let held_back = self.thoughts.finish();
        let mut lines = self.lines(held_back);
        let mut last = self.object(&Thought::Answer(String::new()));
        self.finish(&mut last, ending);
        lines.push(line(&last));
        lines
    }

    fn failed(&mut self, _answer: &Answer, error: &ApiError) -> Vec<Vec<u8>> {
        vec![line(&json!({"error": error.message}))]
    }
}

/// The answer to a generate request with an empty prompt (Ollama loads the model).
fn load_json(model: &str) -> Value {
    json!({"model": model, "created_at": utc_now(), "response": "", "done": true, "done_reason": "load"})
}

/// The model file's architecture (`qwen3vl`, `qwen3vlmoe`): Ollama's model family.
fn architecture(model: &LoadedModel) -> &str {
    model.bundle.files.text.architecture().unwrap_or("qwen3vl")
}

/// `details` of the model, as `/api/tags`, `/api/show` and `/api/ps` give them.
fn details_json(model: &LoadedModel) -> Value {
    let (parameters, _) = model.bundle.size();
    let family = architecture(model);
    json!({
        "format": "gguf",
        "family": family,
        "families": [family],
        "parameter_size": parameter_size(parameters),
        "quantization_level": model.bundle.weight_profile().map(str::to_ascii_uppercase),
    })
}

/// `2.1B`, `5.1M`: Ollama's way of writing a parameter count.
fn parameter_size(parameters: usize) -> String {
    let n = parameters as f64;
    if n >= 1e9 {
        format!("{:.1}B", n / 1e9)
    } else {
        format!("{:.1}M", n / 1e6)
    }
}

/// The model entry of `/api/tags` and `/api/ps`.
fn model_entry(state: &AppState, model: &LoadedModel) -> Value {
    let (_, bytes) = model.bundle.size();
    json!({
        "name": state.config.model_id,
        "model": state.config.model_id,
        "modified_at": utc_timestamp(state.started, 0),
        "size": bytes,
        "details": details_json(model),
    })
}

/// `GET /api/tags`: the one model.
pub fn tags(state: &AppState, model: &LoadedModel) -> Reply {
    Reply::json(200, &json!({"models": [model_entry(state, model)]}))
}

/// `GET /api/ps`: the one model, loaded in memory for as long as the server runs.
pub fn running(state: &AppState, model: &LoadedModel) -> Reply {
    let mut entry = model_entry(state, model);
    let (_, bytes) = model.bundle.size();
    entry["size_vram"] = json!(0);
    entry["size"] = json!(bytes);
    entry["expires_at"] = json!("9999-12-31T23:59:59Z");
    Reply::json(200, &json!({"models": [entry]}))
}

/// `POST /api/show`: the model's details, chat template, context length and capabilities.
pub fn show(state: &AppState, model: &LoadedModel) -> Reply {
    let (parameters, _) = model.bundle.size();
    let sampling = &model.bundle.sampling_defaults;
    // Modelfile PARAMETER lines, as Ollama lists them: the model's sampling defaults.
    let defaults = [
        ("temperature", sampling.temperature.to_string()),
        ("top_k", sampling.top_k.to_string()),
        ("top_p", sampling.top_p.to_string()),
        ("repeat_penalty", sampling.repetition_penalty.to_string()),
    ]
    .map(|(name, value)| format!("{name:<30} {value}"))
    .join("\n");
    let mut capabilities = vec!["completion", "vision"];
    if model.bundle.thinks() {
        capabilities.push("thinking");
    }
    let value = json!({
        "modelfile": "",
        "parameters": defaults,
        "template": model.bundle.template.source(),
        "details": details_json(model),
        "model_info": {
            "general.architecture": architecture(model),
            "general.parameter_count": parameters,
            format!("{}.context_length", architecture(model)): state.config.context_length,
        },
        "capabilities": capabilities,
        "modified_at": utc_timestamp(state.started, 0),
    });
    Reply::json(200, &value)
}

/// `GET /api/version`.
pub fn version() -> Reply {
    Reply::json(200, &json!({"version": env!("CARGO_PKG_VERSION")}))
}

/// `error` as Ollama answers it: `{"error": "…"}`, same status and headers.
pub fn error_reply(error: ApiError) -> Reply {
    let body = json!({"error": error.message}).to_string().into_bytes();
    let mut reply = Reply::from(error);
    reply.body = Body::Bytes(body);
    reply
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(value: Value) -> Result<ChatRequest, ApiError> {
        parse_chat(
            &Fields::of(&value, "").unwrap(),
            super::super::request::test_context(4),
        )
    }

    #[test]
    fn chat_messages_images_and_options_are_read() {
        let request = chat(json!({
            "model": "m",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "What is it?", "images": ["AAEC"]}
            ],
            "options": {"temperature": 0, "top_k": 5, "num_predict": 12, "seed": 7,
                        "stop": ["\n"], "repeat_penalty": 1.2, "num_ctx": 4096},
            "keep_alive": "5m"
        }))
        .unwrap();
        assert!(request.stream, "Ollama streams unless told not to");
        assert_eq!(request.max_tokens, Some(12));
        assert_eq!(request.stop, vec!["\n".to_owned()]);
        assert_eq!(request.sampling.temperature, 0.0);
        assert_eq!(request.sampling.top_k, 5);
        assert_eq!(request.sampling.seed, Some(7));
        assert_eq!(request.sampling.repetition_penalty, 1.2);
        let user = &request.conversation.messages[1];
        assert_eq!(
            user.content,
            Content::Parts(vec![
                Part::Image(ImageRef(0)),
                Part::Text("What is it?".into())
            ])
        );
    }

    #[test]
    fn generate_builds_system_and_prompt_and_an_empty_prompt_only_loads() {
        let value = json!({"prompt": "Describe.", "system": "Be brief.", "images": ["AAEC"], "stream": false});
        let request = parse_generate(
            &Fields::of(&value, "").unwrap(),
            super::super::request::test_context(4),
        )
        .unwrap()
        .unwrap();
        assert!(!request.stream);
        assert_eq!(request.conversation.messages.len(), 2);
        assert_eq!(request.conversation.images.len(), 1);
        let empty = json!({"model": "m"});
        assert!(parse_generate(
            &Fields::of(&empty, "").unwrap(),
            super::super::request::test_context(4)
        )
        .unwrap()
        .is_none());
    }

    #[test]
    fn think_must_match_the_model() {
        assert!(check_think(None, false).is_ok() && check_think(None, true).is_ok());
        assert!(check_think(Some(true), true).is_ok() && check_think(Some(false), false).is_ok());
        for (think, thinks, says) in [
            (true, false, "does not think"),
            (false, true, "always thinks"),
        ] {
            let error = check_think(Some(think), thinks).unwrap_err();
            assert_eq!(error.status, 400);
            assert!(error.message.contains(says), "{}", error.message);
        }
        let user = json!([{"role": "user", "content": "hi"}]);
        for think in [json!("high"), json!(1)] {
            let error = chat(json!({"messages": user, "think": think})).unwrap_err();
            assert_eq!(error.status, 400, "{think}");
        }
    }

    #[test]
    fn features_glimpse_lacks_are_refused() {
        let user = json!([{"role": "user", "content": "hi"}]);
        for extra in [
            json!({"tools": [{"type": "function", "function": {"name": "f"}}]}),
            json!({"options": {"mirostat": 2}}),
            json!({"options": {"min_p": 0.05}}),
        ] {
            let mut body = json!({"messages": user});
            body.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            assert_eq!(chat(body.clone()).unwrap_err().status, 422, "{body}");
        }
        let raw = json!({"prompt": "x", "raw": true});
        assert_eq!(
            parse_generate(
                &Fields::of(&raw, "").unwrap(),
                super::super::request::test_context(4)
            )
            .unwrap_err()
            .status,
            422
        );
        assert_eq!(
            chat(json!({"messages": user, "options": {"num_predict": 0}}))
                .unwrap_err()
                .status,
            400
        );
    }

    #[test]
    fn parameter_sizes_read_as_ollama_writes_them() {
        assert_eq!(parameter_size(2_127_532_032), "2.1B");
        assert_eq!(parameter_size(5_100_000), "5.1M");
    }
}
