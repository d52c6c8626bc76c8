//! OpenAI's legacy text completions, `POST /v1/completions`: a `prompt` continued as it
//! is, without the chat template (the model sees exactly the prompt's tokens). Sampling
//! fields as in chat completions; `max_tokens` defaults to 16 as OpenAI's does; `logprobs`
//! is the legacy integer (alternatives per token). `echo`, `suffix`, `best_of` > 1,
//! `n` > 1 and several prompts at once are refused with 422.
use std::time::Instant;

use serde_json::{json, Value};

use super::answer_stream::{collect, AnswerFormat, AnswerStream, Ending};
use super::completion::{start_generation, Answer, Started};
use super::errors::ApiError;
use super::fields::{json_body, Fields};
use super::image_budget::PixelBudget;
use super::messages::Conversation;
use super::reply::Reply;
use super::request::{
    logit_bias, sampling_params_within, stop_strings, ChatRequest, Tools, MAX_TOP_LOGPROBS,
};
use super::response::{finish_reason_name, usage_json};
use super::sse::{event, KEEP_ALIVE_COMMENT};
use super::state::{AppState, LoadedModel};
use crate::engine::scheduler::TokenLogprob;
use crate::engine::SamplingParams;

/// OpenAI's default `max_tokens` for legacy completions.
const DEFAULT_MAX_TOKENS: usize = 16;

/// Answers a `/v1/completions` request.
pub fn text_completion(
    state: &AppState,
    model: &LoadedModel,
    body: &[u8],
    received: Instant,
) -> Result<Reply, ApiError> {
    let request = parse(body, &model.bundle.sampling_defaults)?;
    let (stream, include_usage) = (request.stream, request.include_usage);
    let Started {
        events,
        mut answer,
        summary,
    } = start_generation(state, model, request, received)?;
    let id = format!("cmpl-{:032x}", rand::random::<u128>());
    let reply = if stream {
        let format = TextChunks { id, include_usage };
        Reply::event_stream(Box::new(AnswerStream::new(events, answer, format)))
    } else {
        let whole = collect(events, &mut answer)?;
        let mut object = completion_object(
            &id,
            &answer,
            &whole.text,
            &whole.logprobs,
            Some(&whole.ending),
        );
        object["usage"] =
            usage_json(&answer.usage(&whole.ending.timings, whole.ending.completion_tokens));
        Reply::json(200, &object)
    };
    Ok(reply.with_generation(summary))
}

fn parse(body: &[u8], sampling_defaults: &SamplingParams) -> Result<ChatRequest, ApiError> {
    let value: Value = json_body(body)?;
    let fields = Fields::of(&value, "")?;
    fields.string("model")?;
    let prompt = match fields.required("prompt")? {
        Value::String(text) => text.clone(),
        Value::Array(list) if list.len() == 1 && list[0].is_string() => {
            list[0].as_str().unwrap_or_default().to_owned()
        }
        Value::Array(_) => {
            return Err(ApiError::unsupported(
                "'prompt': one prompt per request (a string); token-id and multiple prompts are not supported",
            ))
        }
        _ => return Err(ApiError::invalid("invalid_field", "'prompt' must be a string")),
    };
    if fields.bool("echo")?.unwrap_or(false) {
        return Err(ApiError::unsupported("'echo' is not supported"));
    }
    if fields.string("suffix")?.is_some_and(|s| !s.is_empty()) {
        return Err(ApiError::unsupported(
            "'suffix' (fill in the middle) is not supported",
        ));
    }
    for name in ["n", "best_of"] {
        if fields
            .integer(name, 1, u32::MAX.into())?
            .is_some_and(|n| n != 1)
        {
            return Err(ApiError::unsupported(format!(
                "'{name}' > 1: one completion per request"
            )));
        }
    }
    let include_usage = match fields.get("stream_options") {
        Some(options) => Fields::of(options, "stream_options")?
            .bool("include_usage")?
            .unwrap_or(false),
        None => false,
    };
    let max_tokens = fields
        .integer("max_tokens", 1, u32::MAX.into())?
        .map_or(DEFAULT_MAX_TOKENS, |n| n as usize);
    Ok(ChatRequest {
        conversation: Conversation {
            messages: Vec::new(),
            images: Vec::new(),
            videos: Vec::new(),
            text: Some(prompt),
        },
        stream: fields.bool("stream")?.unwrap_or(false),
        include_usage,
        return_progress: false,
        ignore_eos: fields.bool("ignore_eos")?.unwrap_or(false),
        max_tokens: Some(max_tokens),
        sampling: sampling_params_within(&fields, 2.0, sampling_defaults)?,
        stop: stop_strings(&fields)?,
        logprobs: fields
            .integer("logprobs", 0, MAX_TOP_LOGPROBS.min(5))?
            .map(|n| n as usize),
        image_budget: PixelBudget::default(),
        grammar: None,
        logit_bias: logit_bias(&fields)?,
        tools: Tools::default(),
        template_kwargs: None,
    })
}

/// The legacy `logprobs` object: tokens, their log-probabilities, the alternatives, offsets.
fn legacy_logprobs(tokens: &[TokenLogprob]) -> Value {
    let mut offset = 0;
    let mut offsets = Vec::new();
    for token in tokens {
        offsets.push(offset);
        offset += token.token.chars().count();
    }
    json!({
        "tokens": tokens.iter().map(|t| t.token.clone()).collect::<Vec<_>>(),
        "token_logprobs": tokens.iter().map(|t| t.logprob).collect::<Vec<_>>(),
        "top_logprobs": tokens.iter().map(|t| {
            t.top.iter().map(|(token, _, logprob)| (token.clone(), json!(logprob))).collect::<serde_json::Map<_, _>>()
        }).collect::<Vec<_>>(),
        "text_offset": offsets,
    })
}

fn completion_object(
    id: &str,
    answer: &Answer,
    text: &str,
    logprobs: &[TokenLogprob],
    ending: Option<&Ending>,
) -> Value {
    json!({
        "id": id,
        "object": "text_completion",
        "created": answer.ids.created,
        "model": answer.ids.model,
        "choices": [{
            "text": text,
            "index": 0,
            "logprobs": answer.wants_logprobs.then(|| legacy_logprobs(logprobs)),
            "finish_reason": ending.map(|e| finish_reason_name(e.finish_reason)),
        }],
    })
}

/// The streamed `text_completion` chunks.
struct TextChunks {
    id: String,
    include_usage: bool,
}

impl AnswerFormat for TextChunks {
    fn opening(&mut self, _answer: &Answer) -> Vec<Vec<u8>> {
        Vec::new()
    }

    fn delta(&mut self, answer: &Answer, text: &str, logprobs: &[TokenLogprob]) -> Vec<Vec<u8>> {
        vec![event(&completion_object(
            &self.id, answer, text, logprobs, None,
        ))]
    }

    fn done(&mut self, answer: &Answer, ending: &Ending) -> Vec<Vec<u8>> {
        let mut chunks = vec![event(&completion_object(
            &self.id,
            answer,
            "",
            &[],
            Some(ending),
        ))];
        if self.include_usage {
            let mut usage = completion_object(&self.id, answer, "", &[], None);
            usage["choices"] = json!([]);
            usage["usage"] = usage_json(&answer.usage(&ending.timings, ending.completion_tokens));
            chunks.push(event(&usage));
        }
        chunks.push(b"data: [DONE]\n\n".to_vec());
        chunks
    }

    fn failed(&mut self, _answer: &Answer, error: &ApiError) -> Vec<Vec<u8>> {
        vec![event(&error.body()), b"data: [DONE]\n\n".to_vec()]
    }

    fn keep_alive(&self) -> Option<Vec<u8>> {
        Some(KEEP_ALIVE_COMMENT.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prompt_is_taken_as_is_and_legacy_fields_are_read() {
        let body = json!({"model": "m", "prompt": "Once upon", "logprobs": 2, "stop": "\n"});
        let request = parse(
            body.to_string().as_bytes(),
            &SamplingParams::model_defaults(),
        )
        .unwrap();
        assert_eq!(request.conversation.text.as_deref(), Some("Once upon"));
        assert_eq!(request.max_tokens, Some(DEFAULT_MAX_TOKENS));
        assert_eq!(request.logprobs, Some(2));
        assert_eq!(request.stop, vec!["\n".to_owned()]);
        for refused in [
            json!({"prompt": "a", "echo": true}),
            json!({"prompt": "a", "suffix": "b"}),
            json!({"prompt": "a", "best_of": 2}),
            json!({"prompt": ["a", "b"]}),
        ] {
            assert_eq!(
                parse(
                    refused.to_string().as_bytes(),
                    &SamplingParams::model_defaults()
                )
                .unwrap_err()
                .status,
                422,
                "{refused}"
            );
        }
        assert_eq!(
            parse(br#"{"model": "m"}"#, &SamplingParams::model_defaults())
                .unwrap_err()
                .status,
            400
        );
    }
}
