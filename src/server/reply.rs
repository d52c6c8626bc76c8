//! `Reply`: what a route answers, independent of the HTTP library — a status, a content
//! type, extra headers and either a complete body or a stream of server-sent-event
//! chunks (written and flushed one by one; dropping the stream cancels its generation).
use serde_json::Value;

use super::errors::ApiError;
use super::request_log::GenerationSlot;

/// Seconds a client should wait before retrying a refused (429) request.
pub const RETRY_AFTER_SECONDS: u32 = 1;

pub type EventChunks = Box<dyn Iterator<Item = Vec<u8>> + Send>;

pub enum Body {
    Bytes(Vec<u8>),
    EventStream(EventChunks),
}

pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: Body,
    /// The error's `code`, for the request log.
    pub error_code: Option<&'static str>,
    /// The error's detail for the log only (`ApiError::log_detail`).
    pub error_detail: Option<String>,
    /// Filled by the generation when it is done, for the request log.
    pub generation: Option<GenerationSlot>,
}

impl Reply {
    pub fn bytes(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            content_type,
            headers: Vec::new(),
            body: Body::Bytes(body.into()),
            error_code: None,
            error_detail: None,
            generation: None,
        }
    }

    pub fn json(status: u16, value: &Value) -> Self {
        Self::bytes(status, "application/json", value.to_string())
    }

    pub fn event_stream(chunks: EventChunks) -> Self {
        Self {
            status: 200,
            content_type: "text/event-stream",
            headers: vec![("Cache-Control", "no-cache".into())],
            body: Body::EventStream(chunks),
            error_code: None,
            error_detail: None,
            generation: None,
        }
    }

    /// 204 with no body (CORS pre-flight).
    pub fn empty(status: u16) -> Self {
        Self::bytes(status, "text/plain", Vec::new())
    }

    pub fn with_generation(mut self, slot: GenerationSlot) -> Self {
        self.generation = Some(slot);
        self
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

impl From<ApiError> for Reply {
    fn from(error: ApiError) -> Self {
        let mut reply = Reply::json(error.status, &error.body());
        reply.error_code = Some(error.code);
        reply.error_detail = error.log_detail;
        match error.status {
            401 => reply.with_header("WWW-Authenticate", "Bearer"),
            429 | 503 => reply.with_header("Retry-After", RETRY_AFTER_SECONDS.to_string()),
            _ => reply,
        }
    }
}
