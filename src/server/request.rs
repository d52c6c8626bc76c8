//! `POST /v1/chat/completions` body → a validated `ChatRequest`. Known fields are
//! type- and range-checked (400 naming the field); valid OpenAI features glimpse does
//! not implement (`n` > 1, audio, predicted outputs, web search, stored
//! completions, …) are refused with 422 unless they ask for nothing; fields that change
//! nothing here (`user`, `metadata`, `service_tier`, `parallel_tool_calls` without tools,
//! `prompt_cache_key`: the prefix cache is automatic) and unknown fields are accepted.
//! Sampling fields left out take the model's defaults.
use serde_json::{Map, Value};

use super::errors::ApiError;
use super::fields::{json_body, Fields};
use super::image_budget::PixelBudget;
use super::messages::{parse_messages, Conversation};
use super::state::{AppState, LoadedModel};
use crate::chat::RESERVED_TEMPLATE_VARIABLES;
use crate::engine::constraint::Grammar;
use crate::engine::SamplingParams;

/// Most stop strings one request may give.
pub const MAX_STOP_STRINGS: usize = 16;
/// Most alternatives `top_logprobs` may ask for (OpenAI's limit).
pub const MAX_TOP_LOGPROBS: u64 = 20;

#[derive(Debug, PartialEq)]
pub struct ChatRequest {
    pub conversation: Conversation,
    pub stream: bool,
    /// `stream_options.include_usage`: a final chunk with the usage.
    pub include_usage: bool,
    /// `return_progress` (llama.cpp's name): stream chunks with `prompt_progress` while the
    /// prompt and its images are read.
    pub return_progress: bool,
    /// `ignore_eos` (llama.cpp, vLLM): generate `max_tokens` tokens, never ending the turn.
    pub ignore_eos: bool,
    /// `max_completion_tokens` or `max_tokens`; `None` = up to the context size.
    pub max_tokens: Option<usize>,
    pub sampling: SamplingParams,
    pub stop: Vec<String>,
    /// `Some(n)` when `logprobs` is true: report each token's log-probability and `n` alternatives.
    pub logprobs: Option<usize>,
    /// Request-wide `min_pixels` / `max_pixels` (an image's own settings win).
    pub image_budget: PixelBudget,
    /// What the answer must be (`response_format` `json_object` / `json_schema`).
    pub grammar: Option<Grammar>,
    /// `logit_bias`: token id → bias added to its logit.
    pub logit_bias: Vec<(u32, f32)>,
    /// The functions offered to the model (OpenAI tool objects) and whether and how it must
    /// call one.
    pub tools: Tools,
    /// `chat_template_kwargs`: more variables for the chat template (`add_vision_id`, …).
    pub template_kwargs: Option<Map<String, Value>>,
}

/// `tools` with `tool_choice`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tools {
    /// The tool objects as sent (the template writes them into the prompt).
    pub definitions: Vec<Value>,
    pub choice: ToolChoice,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ToolChoice {
    /// No tools offered, or `none`: the model answers in text.
    #[default]
    None,
    /// The model may call tools.
    Auto,
    /// The model must call one of the tools.
    Required,
    /// The model must call this function.
    Function(String),
}

impl Tools {
    /// Whether the model is told about the tools (and its answer read for calls).
    pub fn offered(&self) -> bool {
        self.choice != ToolChoice::None
    }

    /// The grammar a call must follow when a call is required.
    pub fn required_call(&self) -> Option<Grammar> {
        let functions = self.definitions.iter().filter_map(|tool| {
            let function = tool.get("function")?;
            let name = function.get("name")?.as_str()?.to_owned();
            let parameters = function
                .get("parameters")
                .cloned()
                .unwrap_or_else(|| serde_json::json!({"type": "object"}));
            Some((name, parameters))
        });
        match &self.choice {
            ToolChoice::Required => Some(Grammar::ToolCall(functions.collect())),
            ToolChoice::Function(wanted) => Some(Grammar::ToolCall(
                functions.filter(|(name, _)| name == wanted).collect(),
            )),
            ToolChoice::None | ToolChoice::Auto => None,
        }
    }
}

/// `tools` (function tools only) and `tool_choice`.
pub fn tools(fields: &Fields) -> Result<Tools, ApiError> {
    let definitions = match fields.get("tools") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(list)) => list.clone(),
        Some(_) => {
            return Err(ApiError::invalid(
                "invalid_field",
                "'tools' must be an array",
            ))
        }
    };
    let mut names = Vec::new();
    for (i, tool) in definitions.iter().enumerate() {
        let tool = Fields::of(tool, &format!("tools[{i}]"))?;
        let kind = tool.required_string("type")?;
        if kind != "function" {
            return Err(ApiError::unsupported(format!(
                "'tools[{i}].type' = '{kind}': only function tools are supported"
            )));
        }
        let function = Fields::of(tool.required("function")?, &tool.path_of("function"))?;
        let name = function.required_string("name")?;
        let valid = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !valid {
            return Err(ApiError::invalid(
                "invalid_field",
                format!(
                    "'{}' = '{name}': names are 1 to 64 letters, digits, _ or -",
                    function.path_of("name")
                ),
            ));
        }
        function.string("description")?;
        if let Some(parameters) = function.get("parameters") {
            if !parameters.is_object() {
                return Err(ApiError::invalid(
                    "invalid_field",
                    format!(
                        "'{}' must be a JSON schema object",
                        function.path_of("parameters")
                    ),
                ));
            }
        }
        names.push(name.to_owned());
    }
    let choice = match fields.get("tool_choice") {
        None | Some(Value::Null) if names.is_empty() => ToolChoice::None,
        None | Some(Value::Null) => ToolChoice::Auto,
        Some(Value::String(choice)) => match choice.as_str() {
            "none" => ToolChoice::None,
            "auto" => ToolChoice::Auto,
            "required" => ToolChoice::Required,
            other => {
                return Err(ApiError::invalid(
                    "invalid_field",
                    format!(
                        "'tool_choice' = '{other}': expected none, auto, required or a function"
                    ),
                ))
            }
        },
        Some(object) => {
            let choice = Fields::of(object, "tool_choice")?;
            let function = Fields::of(choice.required("function")?, "tool_choice.function")?;
            ToolChoice::Function(function.required_string("name")?.to_owned())
        }
    };
    let unknown = match &choice {
        ToolChoice::Function(name) => !names.contains(name),
        ToolChoice::Required | ToolChoice::Auto => names.is_empty(),
        ToolChoice::None => false,
    };
    if unknown {
        return Err(ApiError::invalid(
            "invalid_field",
            "'tool_choice' asks for a tool that 'tools' does not define",
        ));
    }
    Ok(Tools {
        definitions,
        choice,
    })
}

/// What reading a request takes from the server and its model.
#[derive(Clone, Copy)]
pub struct RequestContext<'a> {
    /// `--max-images`.
    pub max_images: usize,
    /// The sampling of the fields a request leaves out: the model file's recommendation.
    pub sampling: &'a SamplingParams,
    /// The model thinks before it answers (a Qwen3-VL Thinking model).
    pub thinks: bool,
}

/// A context with Qwen3-VL Instruct's sampling defaults, for tests.
#[cfg(test)]
pub fn test_context(max_images: usize) -> RequestContext<'static> {
    static DEFAULTS: std::sync::LazyLock<SamplingParams> =
        std::sync::LazyLock::new(SamplingParams::model_defaults);
    RequestContext {
        max_images,
        sampling: &DEFAULTS,
        thinks: false,
    }
}

impl<'a> RequestContext<'a> {
    pub fn of(state: &AppState, model: &'a LoadedModel) -> Self {
        Self {
            max_images: state.config.limits.max_images,
            sampling: &model.bundle.sampling_defaults,
            thinks: model.bundle.thinks(),
        }
    }
}

/// Parses and validates a request body.
pub fn parse_chat_request(body: &[u8], context: RequestContext) -> Result<ChatRequest, ApiError> {
    let value: Value = json_body(body)?;
    let fields = Fields::of(&value, "")?;
    refuse_unsupported(&fields)?;
    fields.string("model")?;
    let conversation = parse_messages(fields.required("messages")?, context.max_images)?;
    let stream = fields.bool("stream")?.unwrap_or(false);
    let include_usage = match fields.get("stream_options") {
        Some(options) => Fields::of(options, "stream_options")?
            .bool("include_usage")?
            .unwrap_or(false),
        None => false,
    };
    let max_tokens = match fields.integer("max_completion_tokens", 1, u32::MAX.into())? {
        Some(n) => Some(n),
        None => fields.integer("max_tokens", 1, u32::MAX.into())?,
    }
    .map(|n| n as usize);
    Ok(ChatRequest {
        conversation,
        stream,
        include_usage,
        return_progress: fields.bool("return_progress")?.unwrap_or(false),
        ignore_eos: fields.bool("ignore_eos")?.unwrap_or(false),
        max_tokens,
        sampling: sampling_params_within(&fields, 2.0, context.sampling)?,
        stop: stop_strings(&fields)?,
        logprobs: logprobs(&fields)?,
        image_budget: PixelBudget::parse(&fields, false)?,
        grammar: response_format(&fields)?,
        logit_bias: logit_bias(&fields)?,
        tools: tools(&fields)?,
        template_kwargs: template_kwargs(&fields)?,
    })
}

/// `response_format`: `text`, `json_object`, or `json_schema` with its `schema` (always
/// enforced, whatever `strict` says).
fn response_format(fields: &Fields) -> Result<Option<Grammar>, ApiError> {
    let Some(format) = fields.get("response_format") else {
        return Ok(None);
    };
    let format = Fields::of(format, "response_format")?;
    match format.required_string("type")? {
        "text" => Ok(None),
        "json_object" => Ok(Some(Grammar::JsonObject)),
        "json_schema" => {
            let spec = Fields::of(
                format.required("json_schema")?,
                "response_format.json_schema",
            )?;
            spec.string("name")?;
            spec.bool("strict")?;
            let schema = spec.get("schema").cloned().unwrap_or(Value::Bool(true));
            Ok(Some(Grammar::JsonSchema(schema)))
        }
        other => Err(ApiError::invalid(
            "invalid_field",
            format!(
                "'response_format.type' = '{other}': expected text, json_object or json_schema"
            ),
        )),
    }
}

/// `logit_bias`: `{"<token id>": bias}` with biases from −100 to 100 (OpenAI's range).
pub fn logit_bias(fields: &Fields) -> Result<Vec<(u32, f32)>, ApiError> {
    let Some(value) = fields.get("logit_bias").filter(|v| !v.is_null()) else {
        return Ok(Vec::new());
    };
    let Value::Object(map) = value else {
        return Err(ApiError::invalid(
            "invalid_field",
            "'logit_bias' must map token ids to biases from -100 to 100",
        ));
    };
    map.iter()
        .map(|(id, bias)| {
            let id = id.trim().parse::<u32>().map_err(|_| {
                ApiError::invalid(
                    "invalid_field",
                    format!("'logit_bias': '{id}' is not a token id"),
                )
            })?;
            match bias.as_f64() {
                Some(b) if (-100.0..=100.0).contains(&b) => Ok((id, b as f32)),
                _ => Err(ApiError::invalid(
                    "invalid_field",
                    format!("'logit_bias.{id}' must be a number from -100 to 100"),
                )),
            }
        })
        .collect()
}

/// 422 for OpenAI features that would otherwise be silently ignored.
fn refuse_unsupported(fields: &Fields) -> Result<(), ApiError> {
    if let Some(n) = fields.integer("n", 1, u32::MAX.into())? {
        if n != 1 {
            return Err(ApiError::unsupported(format!(
                "'n' = {n}: glimpse returns one choice per request"
            )));
        }
    }
    if fields.get("functions").is_some() {
        return Err(ApiError::unsupported(
            "'functions' (the deprecated form) is not supported: send 'tools'",
        ));
    }
    // Fields that ask for something glimpse does not do, unless they ask for nothing.
    let asks_for_nothing = |name: &str, neutral: &[Value]| {
        fields
            .get(name)
            .is_none_or(|value| value.is_null() || neutral.contains(value))
    };
    let refusals: [(&str, &[Value], &str); 8] = [
        (
            "function_call",
            &[Value::from("none")],
            "the deprecated form is not supported: send 'tool_choice'",
        ),
        ("audio", &[], "audio output is not supported"),
        ("prediction", &[], "predicted outputs are not supported"),
        ("web_search_options", &[], "web search is not supported"),
        ("reasoning_effort", &[], "this model does not reason"),
        (
            "store",
            &[Value::Bool(false)],
            "stored completions are not supported",
        ),
        (
            "modalities",
            &[serde_json::json!(["text"])],
            "only text output is supported",
        ),
        (
            "verbosity",
            &[Value::from("medium")],
            "only the default verbosity is supported",
        ),
    ];
    for (name, neutral, why) in refusals {
        if !asks_for_nothing(name, neutral) {
            return Err(ApiError::unsupported(format!("'{name}': {why}")));
        }
    }
    Ok(())
}

/// The sampling fields (`temperature` up to `max_temperature`: OpenAI's 2, Anthropic's 1);
/// those left out take the model's `defaults`.
pub fn sampling_params_within(
    fields: &Fields,
    max_temperature: f64,
    defaults: &SamplingParams,
) -> Result<SamplingParams, ApiError> {
    let number = |name: &str, min: f64, max: f64, default: f32| -> Result<f32, ApiError> {
        Ok(fields.number(name, min, max)?.map_or(default, |n| n as f32))
    };
    Ok(SamplingParams {
        temperature: number("temperature", 0.0, max_temperature, defaults.temperature)?,
        top_p: number("top_p", 0.0, 1.0, defaults.top_p)?,
        top_k: fields
            .integer("top_k", 0, u32::MAX.into())?
            .map_or(defaults.top_k, |k| k as usize),
        seed: fields.integer_bits("seed")?,
        presence_penalty: number("presence_penalty", -2.0, 2.0, defaults.presence_penalty)?,
        frequency_penalty: number("frequency_penalty", -2.0, 2.0, defaults.frequency_penalty)?,
        repetition_penalty: match fields.number("repetition_penalty", 0.0, 10.0)? {
            Some(p) if p <= 0.0 => {
                return Err(ApiError::invalid(
                    "invalid_field",
                    "'repetition_penalty' must be above 0 (1 = off)",
                ))
            }
            Some(p) => p as f32,
            None => defaults.repetition_penalty,
        },
    })
}

/// `chat_template_kwargs` (vLLM's and llama-server's name): an object of template variables,
/// none of them one the server sets.
pub fn template_kwargs(fields: &Fields) -> Result<Option<Map<String, Value>>, ApiError> {
    let Some(kwargs) = fields.object("chat_template_kwargs")? else {
        return Ok(None);
    };
    if let Some(name) = RESERVED_TEMPLATE_VARIABLES
        .iter()
        .find(|name| kwargs.contains_key(**name))
    {
        return Err(ApiError::invalid(
            "invalid_field",
            format!("'chat_template_kwargs.{name}' cannot be set: the request decides it"),
        ));
    }
    Ok(Some(kwargs.clone()))
}

/// `stop`: one string or a list of strings.
pub fn stop_strings(fields: &Fields) -> Result<Vec<String>, ApiError> {
    stop_list(fields, "stop", true)
}

/// Stop strings in field `name`: an array of at most `MAX_STOP_STRINGS` strings, or also a
/// single string when `one_string` (OpenAI's and Ollama's `stop`; Anthropic's
/// `stop_sequences` is always an array).
pub fn stop_list(fields: &Fields, name: &str, one_string: bool) -> Result<Vec<String>, ApiError> {
    let invalid = || {
        let kind = if one_string {
            "a string or an array"
        } else {
            "an array"
        };
        ApiError::invalid(
            "invalid_field",
            format!(
                "'{}' must be {kind} of at most {MAX_STOP_STRINGS} strings",
                fields.path_of(name)
            ),
        )
    };
    match fields.get(name) {
        None => Ok(Vec::new()),
        Some(Value::String(stop)) if one_string => Ok(vec![stop.clone()]),
        Some(Value::Array(list)) if list.len() <= MAX_STOP_STRINGS => list
            .iter()
            .map(|item| item.as_str().map(str::to_owned).ok_or_else(invalid))
            .collect(),
        Some(_) => Err(invalid()),
    }
}

fn logprobs(fields: &Fields) -> Result<Option<usize>, ApiError> {
    let wanted = fields.bool("logprobs")?.unwrap_or(false);
    let top = fields.integer("top_logprobs", 0, MAX_TOP_LOGPROBS)?;
    match (wanted, top) {
        (true, top) => Ok(Some(top.unwrap_or(0) as usize)),
        (false, Some(_)) => Err(ApiError::invalid(
            "invalid_field",
            "'top_logprobs' needs 'logprobs': true",
        )),
        (false, None) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(value: Value) -> Result<ChatRequest, ApiError> {
        parse_chat_request(value.to_string().as_bytes(), test_context(8))
    }

    fn hello(extra: Value) -> Value {
        let mut body = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
        if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
            body.extend(extra);
        }
        body
    }

    #[test]
    fn omitted_sampling_fields_take_the_model_defaults() {
        let request = parse(hello(json!({}))).unwrap();
        assert_eq!(request.sampling, SamplingParams::model_defaults());
        assert_eq!(
            (request.stream, request.max_tokens, request.logprobs),
            (false, None, None)
        );
    }

    #[test]
    fn every_field_is_read() {
        let request = parse(hello(json!({
            "stream": true, "stream_options": {"include_usage": true},
            "max_tokens": 7, "max_completion_tokens": 9, "temperature": 0, "top_p": 0.5,
            "top_k": 3, "seed": 42, "stop": ["a", "b"], "logprobs": true, "top_logprobs": 5,
            "presence_penalty": 0.5, "frequency_penalty": -0.5, "repetition_penalty": 1.1,
            "user": "ignored", "n": 1
        })))
        .unwrap();
        assert!(request.stream && request.include_usage);
        assert_eq!(request.max_tokens, Some(9));
        assert_eq!(request.stop, ["a", "b"]);
        assert_eq!(request.logprobs, Some(5));
        let s = &request.sampling;
        assert_eq!(
            (s.temperature, s.top_p, s.top_k, s.seed),
            (0.0, 0.5, 3, Some(42))
        );
        assert_eq!(
            (
                s.presence_penalty,
                s.frequency_penalty,
                s.repetition_penalty
            ),
            (0.5, -0.5, 1.1)
        );
    }

    #[test]
    fn bad_values_are_refused_with_the_field_named() {
        let cases = [
            (
                json!({"temperature": 3}),
                400,
                "'temperature' must be a number from 0 to 2",
            ),
            (
                json!({"temperature": "hot"}),
                400,
                "'temperature' must be a number",
            ),
            (
                json!({"top_logprobs": 21, "logprobs": true}),
                400,
                "'top_logprobs' must be an integer from 0 to 20",
            ),
            (json!({"top_logprobs": 2}), 400, "needs 'logprobs'"),
            (
                json!({"max_tokens": 0}),
                400,
                "'max_tokens' must be an integer from 1",
            ),
            (
                json!({"stream": "yes"}),
                400,
                "'stream' must be true or false",
            ),
            (
                json!({"stop": [1]}),
                400,
                "'stop' must be a string or an array",
            ),
            (json!({"presence_penalty": 2.5}), 400, "'presence_penalty'"),
            (
                json!({"repetition_penalty": 0}),
                400,
                "'repetition_penalty' must be above 0",
            ),
            (json!({"seed": 1.5}), 400, "'seed' must be an integer"),
            (json!({"n": 2}), 422, "'n' = 2"),
            (json!({"tool_choice": "required"}), 400, "'tool_choice'"),
            (json!({"audio": {"voice": "alloy"}}), 422, "'audio'"),
            (
                json!({"modalities": ["text", "audio"]}),
                422,
                "'modalities'",
            ),
            (json!({"store": true}), 422, "'store'"),
            (
                json!({"prediction": {"type": "content"}}),
                422,
                "'prediction'",
            ),
            (
                json!({"tools": [{"type": "function"}]}),
                400,
                "'tools[0].function'",
            ),
            (
                json!({"tools": [{"type": "code_interpreter"}]}),
                422,
                "only function tools",
            ),
            (json!({"functions": []}), 422, "'functions'"),
            (
                json!({"response_format": {"type": "xml"}}),
                400,
                "'response_format.type' = 'xml'",
            ),
            (
                json!({"logit_bias": {"abc": 1}}),
                400,
                "'abc' is not a token id",
            ),
            (json!({"logit_bias": {"5": 101}}), 400, "from -100 to 100"),
            (json!({"logit_bias": [1]}), 400, "'logit_bias' must map"),
        ];
        for (extra, status, needle) in cases {
            let error = parse(hello(extra.clone())).unwrap_err();
            assert_eq!(error.status, status, "{extra}: {}", error.message);
            assert!(error.message.contains(needle), "{extra}: {}", error.message);
        }
    }

    #[test]
    fn fields_that_ask_for_nothing_are_accepted() {
        parse(hello(json!({
            "tool_choice": "none", "store": false, "modalities": ["text"], "audio": null,
            "metadata": {"k": "v"}, "service_tier": "auto", "parallel_tool_calls": true,
            "function_call": "none", "verbosity": "medium", "prompt_cache_key": "x"
        })))
        .unwrap();
    }

    #[test]
    fn response_formats_and_logit_bias_are_read() {
        let schema = json!({"type": "object", "properties": {"a": {"type": "integer"}}});
        let request = parse(hello(json!({
            "response_format": {"type": "json_schema", "json_schema": {"name": "x", "strict": true, "schema": schema}},
            "logit_bias": {"42": -100, " 7": 2.5}
        })))
        .unwrap();
        assert_eq!(request.grammar, Some(Grammar::JsonSchema(schema)));
        let mut bias = request.logit_bias;
        bias.sort_by_key(|(id, _)| *id);
        assert_eq!(bias, vec![(7, 2.5), (42, -100.0)]);
        let request = parse(hello(json!({"response_format": {"type": "json_object"}}))).unwrap();
        assert_eq!(request.grammar, Some(Grammar::JsonObject));
        let request = parse(hello(json!({"response_format": {"type": "text"}}))).unwrap();
        assert_eq!(request.grammar, None);
    }

    #[test]
    fn malformed_bodies_are_400() {
        for body in [&b"{"[..], b"[1]", b"{}", b"\xff"] {
            let error = parse_chat_request(body, test_context(8)).unwrap_err();
            assert_eq!(error.status, 400, "{}", error.message);
        }
    }

    #[test]
    fn fuzz_chat_request() {
        let png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC";
        let seeds: Vec<Vec<u8>> = [
            hello(json!({})),
            hello(json!({"stream": true, "stream_options": {"include_usage": true},
                "max_tokens": 5, "temperature": 0.2, "top_p": 0.9, "top_k": 5, "seed": 7,
                "stop": ["a", "b"], "logprobs": true, "top_logprobs": 3,
                "presence_penalty": 0.5, "frequency_penalty": 0.1, "repetition_penalty": 1.1})),
            json!({"messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": [
                    {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{png}")}},
                    {"type": "image", "image": png},
                    {"type": "text", "text": "what?"}]},
                {"role": "assistant", "content": [{"type": "text", "text": "a dot"}]},
                {"role": "user", "content": "and?"}],
                "max_completion_tokens": 9}),
        ]
        .iter()
        .map(|v| v.to_string().into_bytes())
        .collect();
        let inputs = crate::fuzz::fuzz("chat_request", &seeds, |body| {
            if let Ok(request) = parse_chat_request(body, test_context(4)) {
                assert!(request.conversation.images.len() <= 4);
                assert!(request.stop.len() <= MAX_STOP_STRINGS);
            }
        });
        assert!(inputs > seeds.len());
    }
}
