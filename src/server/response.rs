//! The JSON the API answers with: `chat.completion`, `chat.completion.chunk`, `usage`,
//! `logprobs.content[]`, the `timings` extension and the `/v1/models` list. Builders
//! only; the values come from the engine's events.
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use super::tool_calls::FoundCall;
use crate::engine::scheduler::TokenLogprob;
use crate::engine::{FinishReason, Timings};

/// Stand-in for a log-probability of minus infinity, which JSON cannot hold (OpenAI's value).
const LOGPROB_FLOOR: f64 = -9999.0;

/// The identity every object of one completion shares.
#[derive(Clone, Debug)]
pub struct CompletionIds {
    pub id: String,
    pub created: u64,
    pub model: String,
}

impl CompletionIds {
    pub fn new(model: &str) -> Self {
        Self {
            id: format!("chatcmpl-{:032x}", rand::random::<u128>()),
            created: unix_time(),
            model: model.to_owned(),
        }
    }
}

pub fn unix_time() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Token counts of one completion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    /// Prompt tokens reused from the KV cache.
    pub cached_tokens: usize,
    /// Prompt tokens the images take (`<|image_pad|>` tokens).
    pub image_tokens: usize,
}

/// What the server measured around the engine's timings, in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ServerTimings {
    /// Fetching, decoding and resizing the request's images.
    pub preprocess_ms: f64,
    /// From request received to the first generated token.
    pub ttft_ms: f64,
}

pub fn finish_reason_name(reason: FinishReason) -> &'static str {
    match reason {
        FinishReason::Stop => "stop",
        FinishReason::Length => "length",
    }
}

pub fn usage_json(usage: &Usage) -> Value {
    json!({
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
        "prompt_tokens_details": {
            "cached_tokens": usage.cached_tokens,
            "image_tokens": usage.image_tokens,
        },
    })
}

/// The `timings` extension.
pub fn timings_json(engine: &Timings, server: &ServerTimings) -> Value {
    json!({
        "vision_ms": engine.vision_ms,
        "prefill_ms": engine.prefill_ms,
        "decode_ms": engine.decode_ms,
        "cached_prompt_tokens": engine.cached_prompt_tokens,
        "images_encoded": engine.images_encoded,
        "preprocess_ms": server.preprocess_ms,
        "ttft_ms": server.ttft_ms,
    })
}

fn logprob_value(logprob: f32) -> f64 {
    if logprob.is_finite() {
        f64::from(logprob)
    } else {
        LOGPROB_FLOOR
    }
}

/// `{"content": [{token, logprob, bytes, top_logprobs: [{token, logprob, bytes}]}]}`.
pub fn logprobs_json(tokens: &[TokenLogprob]) -> Value {
    let content: Vec<Value> = tokens
        .iter()
        .map(|t| {
            let top: Vec<Value> = t
                .top
                .iter()
                .map(|(token, bytes, logprob)| {
                    json!({"token": token, "logprob": logprob_value(*logprob), "bytes": bytes})
                })
                .collect();
            json!({
                "token": t.token,
                "logprob": logprob_value(t.logprob),
                "bytes": t.bytes,
                "top_logprobs": top,
            })
        })
        .collect();
    json!({"content": content, "refusal": null})
}

/// A whole non-streamed answer.
pub struct Completion<'a> {
    pub text: &'a str,
    /// The function calls the answer made (tools offered).
    pub tool_calls: Vec<FoundCall>,
    /// A thinking model's reasoning.
    pub reasoning: Option<String>,
    pub finish_reason: FinishReason,
    /// `None` when logprobs were not requested.
    pub logprobs: Option<&'a [TokenLogprob]>,
    pub usage: Usage,
    pub timings: Value,
    /// The `glimpse` extension (detections), when the answer has any.
    pub glimpse: Option<Value>,
}

pub fn completion_json(ids: &CompletionIds, completion: &Completion) -> Value {
    let mut value = json!({
        "id": ids.id,
        "object": "chat.completion",
        "created": ids.created,
        "model": ids.model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": completion.text},
            "logprobs": completion.logprobs.map(logprobs_json),
            "finish_reason": finish_reason_name(completion.finish_reason),
        }],
        "usage": usage_json(&completion.usage),
        "timings": completion.timings,
    });
    if let Some(glimpse) = &completion.glimpse {
        value["glimpse"] = glimpse.clone();
    }
    if let Some(reasoning) = &completion.reasoning {
        value["choices"][0]["message"]["reasoning_content"] = json!(reasoning);
    }
    if !completion.tool_calls.is_empty() {
        let message = &mut value["choices"][0]["message"];
        if completion.text.is_empty() {
            message["content"] = Value::Null;
        }
        message["tool_calls"] = completion.tool_calls.iter().map(|c| c.json(None)).collect();
        value["choices"][0]["finish_reason"] = json!("tool_calls");
    }
    value
}

/// One streamed chunk with a single choice.
pub fn chunk_json(
    ids: &CompletionIds,
    delta: Value,
    logprobs: Option<&[TokenLogprob]>,
    finish_reason: Option<FinishReason>,
) -> Value {
    json!({
        "id": ids.id,
        "object": "chat.completion.chunk",
        "created": ids.created,
        "model": ids.model,
        "choices": [{
            "index": 0,
            "delta": delta,
            "logprobs": logprobs.map(logprobs_json),
            "finish_reason": finish_reason.map(finish_reason_name),
        }],
    })
}

/// The chunk `stream_options.include_usage` asks for: no choices, the usage.
pub fn usage_chunk_json(ids: &CompletionIds, usage: &Usage) -> Value {
    json!({
        "id": ids.id,
        "object": "chat.completion.chunk",
        "created": ids.created,
        "model": ids.model,
        "choices": [],
        "usage": usage_json(usage),
    })
}

/// What a client (the web chat among them) needs to know of the served model and limits.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelInfo {
    /// Tokens of prompt plus answer one request may use (`--ctx`).
    pub context_length: usize,
    /// The weight type (`f32`, `f16`, `q8_0`, `q4_k`…), when the file names it.
    pub profile: Option<&'static str>,
    /// Default resized-pixel bounds of one image (the server's token bounds × 32²).
    pub image_min_pixels: usize,
    pub image_budget_pixels: usize,
    /// Pixels of one vision token (32² for Qwen3-VL).
    pub pixels_per_image_token: usize,
    /// Largest decoded image accepted (`--max-image-pixels`) and images per request.
    pub max_image_pixels: u64,
    pub max_images: usize,
}

impl ModelInfo {
    /// The fields, as an object both `/v1/models` and `/health` carry.
    pub fn json(&self) -> Value {
        let per_token = self.pixels_per_image_token.max(1);
        json!({
            "context_length": self.context_length,
            "profile": self.profile,
            "image_min_tokens": self.image_min_pixels / per_token,
            "image_max_tokens": self.image_budget_pixels / per_token,
            "image_min_pixels": self.image_min_pixels,
            "image_budget_pixels": self.image_budget_pixels,
            "max_image_pixels": self.max_image_pixels,
            "max_images": self.max_images,
        })
    }
}

/// `GET /v1/models`: the one model this server runs.
pub fn models_json(model: &str, created: u64, info: &ModelInfo) -> Value {
    let mut entry = json!({
        "id": model,
        "object": "model",
        "created": created,
        "owned_by": "glimpse",
    });
    merge(&mut entry, info.json());
    json!({"object": "list", "data": [entry]})
}

/// `/health` once the model is loaded.
pub fn health_json(info: &ModelInfo) -> Value {
    let mut health = json!({"status": "ok"});
    merge(&mut health, info.json());
    health
}

fn merge(target: &mut Value, fields: Value) {
    if let (Some(target), Value::Object(fields)) = (target.as_object_mut(), fields) {
        target.extend(fields);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minus_infinity_logprob_becomes_the_openai_floor() {
        let tokens = [TokenLogprob {
            token: "a".into(),
            bytes: vec![97],
            logprob: f32::NEG_INFINITY,
            top: vec![("b".into(), vec![98], -0.5)],
        }];
        let value = logprobs_json(&tokens);
        assert_eq!(value["content"][0]["logprob"], json!(-9999.0));
        assert_eq!(value["content"][0]["bytes"], json!([97]));
        assert_eq!(
            value["content"][0]["top_logprobs"][0]["logprob"],
            json!(-0.5)
        );
    }

    #[test]
    fn usage_totals_prompt_and_completion() {
        let usage = Usage {
            prompt_tokens: 10,
            completion_tokens: 4,
            cached_tokens: 3,
            image_tokens: 2,
        };
        assert_eq!(
            usage_json(&usage),
            json!({"prompt_tokens": 10, "completion_tokens": 4, "total_tokens": 14,
                   "prompt_tokens_details": {"cached_tokens": 3, "image_tokens": 2}})
        );
    }
}
