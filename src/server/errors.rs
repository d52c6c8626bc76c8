//! `ApiError`: every failure the HTTP API reports, as a status code plus the OpenAI error
//! object `{"error":{"message","type","code"}}`. Handlers return these; the transport turns
//! them into responses (with `Retry-After`, `WWW-Authenticate` where the status needs one).
use serde_json::{json, Value};

#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    pub status: u16,
    /// OpenAI's `type`: `invalid_request_error`, `authentication_error`, …
    pub kind: &'static str,
    /// Machine-readable reason, e.g. `prompt_too_long`.
    pub code: &'static str,
    pub message: String,
    /// What the operator's log shows beside the code, when the client is told less.
    pub log_detail: Option<String>,
}

impl ApiError {
    fn new(status: u16, kind: &'static str, code: &'static str, message: String) -> Self {
        Self {
            status,
            kind,
            code,
            message,
            log_detail: None,
        }
    }

    /// Keeps `detail` for the request log (never sent to the client).
    pub fn with_log_detail(mut self, detail: impl Into<String>) -> Self {
        self.log_detail = Some(detail.into());
        self
    }

    /// 400: the request is malformed or a value is out of range.
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(400, "invalid_request_error", code, message.into())
    }

    /// 422: a valid OpenAI request that glimpse does not support (`n` > 1, tools, …).
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(422, "invalid_request_error", "unsupported", message.into())
    }

    pub fn unauthorized() -> Self {
        Self::new(
            401,
            "authentication_error",
            "invalid_api_key",
            "missing or wrong API key: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'"
                .into(),
        )
    }

    pub fn not_found(path: &str) -> Self {
        Self::new(
            404,
            "not_found_error",
            "not_found",
            format!("no route for '{path}'"),
        )
    }

    pub fn method_not_allowed(method: &str, path: &str) -> Self {
        Self::new(
            405,
            "invalid_request_error",
            "method_not_allowed",
            format!("{method} is not allowed on '{path}'"),
        )
    }

    pub fn body_too_large(limit_bytes: usize) -> Self {
        Self::new(
            413,
            "invalid_request_error",
            "body_too_large",
            format!(
                "the request body is larger than the limit of {limit_bytes} bytes (--max-body-mb)"
            ),
        )
    }

    /// 408: the body did not arrive within `--request-timeout`.
    pub fn request_timeout() -> Self {
        Self::new(
            408,
            "invalid_request_error",
            "request_timeout",
            "the request body did not arrive in time (--request-timeout)".into(),
        )
    }

    pub fn queue_full(max_queue: usize) -> Self {
        Self::new(
            429,
            "rate_limit_error",
            "queue_full",
            format!("all generation slots are busy and {max_queue} requests are already waiting; retry later"),
        )
    }

    pub fn loading() -> Self {
        Self::new(
            503,
            "unavailable_error",
            "model_loading",
            "the model is still loading".into(),
        )
    }

    /// 503: the server is stopping (SIGTERM / Ctrl-C); the request was refused or cut short.
    pub fn shutting_down() -> Self {
        Self::new(
            503,
            "unavailable_error",
            "shutting_down",
            "the server is shutting down; retry on another replica or after it restarts".into(),
        )
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "server_error", "internal_error", message.into())
    }

    /// The JSON error object.
    pub fn body(&self) -> Value {
        json!({"error": {"message": self.message, "type": self.kind, "code": self.code}})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_has_the_openai_shape() {
        let body = ApiError::invalid("bad_field", "'x' is wrong").body();
        assert_eq!(
            body,
            json!({"error": {"message": "'x' is wrong", "type": "invalid_request_error", "code": "bad_field"}})
        );
    }
}
