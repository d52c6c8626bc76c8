//! `POST /tokenize` and `POST /detokenize` (llama.cpp's server, with vLLM's forms):
//! the model's own token ids of a text (`content`, or `prompt`), or of a conversation
//! rendered by the chat template (`messages`, text only), with their count and the
//! context size; and the text of a list of ids (`tokens`).
use serde_json::{json, Value};

use super::errors::ApiError;
use super::fields::{json_body, Fields};
use super::messages::parse_messages;
use super::reply::Reply;
use super::request::template_kwargs;
use super::state::{AppState, LoadedModel};
use crate::chat::TemplateArgs;

/// `{"content": "…"}` / `{"prompt": "…"}` / `{"messages": […]}` (with `chat_template_kwargs`)
/// → `{"tokens", "count", "max_model_len"}`;
/// `with_pieces: true` gives `{"id", "piece"}` objects instead of ids.
pub fn tokenize(state: &AppState, model: &LoadedModel, body: &[u8]) -> Result<Reply, ApiError> {
    let value = json_body(body)?;
    let fields = Fields::of(&value, "")?;
    let bundle = &model.bundle;
    let ids = if let Some(messages) = fields.get("messages") {
        let conversation = parse_messages(messages, 0)?;
        let kwargs = template_kwargs(&fields)?;
        let args = TemplateArgs {
            tools: &[],
            kwargs: kwargs.as_ref(),
        };
        let prompt = bundle.prompt_with(&conversation.messages, &[], &[], args, "");
        let (prompt, _) = prompt.map_err(|e| {
            ApiError::invalid("invalid_prompt", format!("cannot build the prompt: {e:#}"))
        })?;
        prompt.ids
    } else {
        let text = match fields.string("content")? {
            Some(text) => text,
            None => fields.string("prompt")?.ok_or_else(|| {
                ApiError::invalid(
                    "invalid_field",
                    "send 'content' (or 'prompt') text, or 'messages'",
                )
            })?,
        };
        bundle
            .tokenizer
            .encode(text)
            .map_err(|e| ApiError::invalid("invalid_prompt", format!("{e:#}")))?
    };
    let tokens: Vec<Value> = if fields.bool("with_pieces")?.unwrap_or(false) {
        ids.iter()
            .map(|&id| {
                let piece = String::from_utf8_lossy(&bundle.tokenizer.token_bytes(id)).into_owned();
                json!({"id": id, "piece": piece})
            })
            .collect()
    } else {
        ids.iter().map(|&id| json!(id)).collect()
    };
    Ok(Reply::json(
        200,
        &json!({"tokens": tokens, "count": ids.len(), "max_model_len": state.config.context_length}),
    ))
}

/// `{"tokens": [ids]}` → `{"content": "…"}` (special tokens included, as written).
pub fn detokenize(model: &LoadedModel, body: &[u8]) -> Result<Reply, ApiError> {
    let value = json_body(body)?;
    let fields = Fields::of(&value, "")?;
    let vocab = model.bundle.model.text.config().vocab_size;
    let invalid = || {
        ApiError::invalid(
            "invalid_field",
            format!("'tokens' must be an array of token ids below {vocab}"),
        )
    };
    let Value::Array(list) = fields.required("tokens")? else {
        return Err(invalid());
    };
    let ids = list
        .iter()
        .map(|v| {
            v.as_u64()
                .filter(|&id| id < vocab as u64)
                .map(|id| id as u32)
        })
        .collect::<Option<Vec<u32>>>()
        .ok_or_else(invalid)?;
    let content = model
        .bundle
        .tokenizer
        .decode(&ids, false)
        .map_err(|e| ApiError::invalid("invalid_field", format!("{e:#}")))?;
    Ok(Reply::json(200, &json!({"content": content})))
}
