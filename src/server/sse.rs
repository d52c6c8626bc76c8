//! OpenAI's streamed answer: `chat.completion.chunk` objects as server-sent events — a
//! role chunk, one chunk per text delta (with its logprobs, and `glimpse.detections` for
//! the objects it completes), a final chunk with `finish_reason` and `timings`, the usage
//! chunk when `stream_options.include_usage` asked for it, then `data: [DONE]`; prompt
//! progress as `prompt_progress` chunks (llama.cpp's), silences as `: keep-alive` comments.
use serde_json::{json, Value};

use super::answer_stream::{AnswerFormat, Ending, Progress};
use super::completion::Answer;
use super::detections::StreamDetections;
use super::errors::ApiError;
use super::reasoning::{ReasoningSplitter, Thought};
use super::response::{chunk_json, timings_json, usage_chunk_json};
use super::tool_calls::{CallSplitter, Piece};
use crate::engine::scheduler::TokenLogprob;

/// The OpenAI chat-completion chunks of one answer.
pub struct OpenAiChunks {
    include_usage: bool,
    detections: StreamDetections,
    /// Tools were offered: `<tool_call>` blocks become `tool_calls` deltas.
    calls: Option<CallSplitter>,
    /// `tool_calls` deltas sent so far.
    calls_sent: usize,
    /// A thinking model: text up to `</think>` goes out as `reasoning_content`.
    reasoning: Option<ReasoningSplitter>,
}

impl OpenAiChunks {
    pub fn new(answer: &Answer, include_usage: bool) -> Self {
        Self {
            include_usage,
            detections: StreamDetections::new(answer.image_sizes.clone()),
            calls: answer.tools.then(CallSplitter::default),
            calls_sent: 0,
            reasoning: answer.reasoning.then(ReasoningSplitter::default),
        }
    }

    /// The chunks of the answer text `text` (after any reasoning).
    fn answer_text(
        &mut self,
        answer: &Answer,
        text: &str,
        logprobs: &[TokenLogprob],
    ) -> Vec<Vec<u8>> {
        if let Some(calls) = &mut self.calls {
            let pieces = calls.push(text);
            return self.pieces(answer, pieces, logprobs);
        }
        let logprobs = answer.wants_logprobs.then_some(logprobs);
        let mut chunk = chunk_json(&answer.ids, json!({"content": text}), logprobs, None);
        if let Some(glimpse) = self.detections.push(text) {
            chunk["glimpse"] = glimpse;
        }
        vec![event(&chunk)]
    }

    /// The chunks of `thoughts`: reasoning deltas, then the answer's.
    fn thoughts(
        &mut self,
        answer: &Answer,
        thoughts: Vec<Thought>,
        logprobs: &[TokenLogprob],
    ) -> Vec<Vec<u8>> {
        let mut logprobs = Some(logprobs);
        let mut chunks = Vec::new();
        for thought in thoughts {
            let tokens = logprobs.take().unwrap_or_default();
            match thought {
                Thought::Reasoning(text) => {
                    let tokens = answer.wants_logprobs.then_some(tokens);
                    let delta = json!({"reasoning_content": text});
                    chunks.push(event(&chunk_json(&answer.ids, delta, tokens, None)));
                }
                Thought::Answer(text) => chunks.extend(self.answer_text(answer, &text, tokens)),
            }
        }
        chunks
    }

    /// The chunks of text and calls `pieces` hold.
    fn pieces(
        &mut self,
        answer: &Answer,
        pieces: Vec<Piece>,
        logprobs: &[TokenLogprob],
    ) -> Vec<Vec<u8>> {
        let mut logprobs = answer.wants_logprobs.then_some(logprobs);
        let mut chunks = Vec::new();
        for piece in pieces {
            let delta = match piece {
                Piece::Text(text) => json!({"content": text}),
                Piece::Call(call) => {
                    self.calls_sent += 1;
                    json!({"tool_calls": [call.json(Some(self.calls_sent - 1))]})
                }
            };
            chunks.push(event(&chunk_json(
                &answer.ids,
                delta,
                logprobs.take(),
                None,
            )));
        }
        chunks
    }
}

/// One server-sent event carrying `value`.
pub fn event(value: &Value) -> Vec<u8> {
    format!("data: {value}\n\n").into_bytes()
}

const DONE: &[u8] = b"data: [DONE]\n\n";

/// The SSE comment that fills a silence (clients skip it).
pub const KEEP_ALIVE_COMMENT: &[u8] = b": keep-alive\n\n";

impl AnswerFormat for OpenAiChunks {
    fn opening(&mut self, answer: &Answer) -> Vec<Vec<u8>> {
        let role = json!({"role": "assistant", "content": ""});
        vec![event(&chunk_json(&answer.ids, role, None, None))]
    }

    fn progress(&mut self, answer: &Answer, progress: &Progress) -> Option<Vec<u8>> {
        let mut chunk = chunk_json(&answer.ids, json!({}), None, None);
        chunk["prompt_progress"] = json!({
            "total": progress.total,
            "cache": progress.cached,
            "processed": progress.processed,
            "images": progress.images,
            "images_encoded": progress.images_encoded,
            "time_ms": answer.tracker.elapsed_ms(),
        });
        Some(event(&chunk))
    }

    fn delta(&mut self, answer: &Answer, text: &str, logprobs: &[TokenLogprob]) -> Vec<Vec<u8>> {
        match &mut self.reasoning {
            Some(splitter) => {
                let thoughts = splitter.push(text);
                self.thoughts(answer, thoughts, logprobs)
            }
            None => self.answer_text(answer, text, logprobs),
        }
    }

    fn done(&mut self, answer: &Answer, ending: &Ending) -> Vec<Vec<u8>> {
        let thoughts = self
            .reasoning
            .take()
            .map(ReasoningSplitter::finish)
            .unwrap_or_default();
        let mut chunks = self.thoughts(answer, thoughts, &[]);
        let held_back = self
            .calls
            .take()
            .map(CallSplitter::finish)
            .unwrap_or_default();
        chunks.extend(self.pieces(answer, held_back, &[]));
        let mut last = chunk_json(&answer.ids, json!({}), None, Some(ending.finish_reason));
        if self.calls_sent > 0 {
            last["choices"][0]["finish_reason"] = json!("tool_calls");
        }
        last["timings"] = timings_json(&ending.timings, &answer.server_timings());
        chunks.push(event(&last));
        if self.include_usage {
            let usage = answer.usage(&ending.timings, ending.completion_tokens);
            chunks.push(event(&usage_chunk_json(&answer.ids, &usage)));
        }
        chunks.push(DONE.to_vec());
        chunks
    }

    fn failed(&mut self, _answer: &Answer, error: &ApiError) -> Vec<Vec<u8>> {
        vec![event(&error.body()), DONE.to_vec()]
    }

    fn keep_alive(&self) -> Option<Vec<u8>> {
        Some(KEEP_ALIVE_COMMENT.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::sync::Arc;
    use std::time::Instant;

    use super::*;
    use crate::engine::scheduler::JobEvent;
    use crate::engine::{FinishReason, Timings};
    use crate::server::answer_stream::AnswerStream;
    use crate::server::metrics::Metrics;
    use crate::server::response::CompletionIds;

    fn stream(include_usage: bool, wants_logprobs: bool, events: Vec<JobEvent>) -> Vec<String> {
        let (sender, receiver) = mpsc::channel();
        for event in events {
            sender.send(event).unwrap();
        }
        drop(sender);
        let answer = Answer {
            ids: CompletionIds::new("m"),
            tracker: Arc::new(Metrics::default()).track_generation(Instant::now()),
            wants_logprobs,
            preprocess_ms: 0.0,
            image_sizes: Vec::new(),
            image_tokens: 0,
            prompt_tokens: 7,
            return_progress: false,
            tools: false,
            reasoning: false,
        };
        let format = OpenAiChunks::new(&answer, include_usage);
        AnswerStream::new(receiver, answer, format)
            .map(|chunk| String::from_utf8(chunk).unwrap())
            .collect()
    }

    fn data(event: &str) -> Value {
        let json = event
            .strip_prefix("data: ")
            .and_then(|e| e.strip_suffix("\n\n"))
            .unwrap();
        serde_json::from_str(json).unwrap()
    }

    fn done(completion_tokens: usize) -> JobEvent {
        JobEvent::Done {
            finish_reason: FinishReason::Length,
            stop_sequence: None,
            completion_tokens,
            timings: Timings {
                prompt_tokens: 7,
                cached_prompt_tokens: 2,
                ..Timings::default()
            },
        }
    }

    #[test]
    fn stream_is_role_deltas_finish_usage_then_done() {
        let delta = |text: &str| JobEvent::Delta {
            text: text.into(),
            logprobs: Vec::new(),
        };
        let events = stream(true, false, vec![delta("Hel"), delta("lo"), done(2)]);
        assert_eq!(events.len(), 6, "{events:?}");
        assert_eq!(data(&events[0])["choices"][0]["delta"]["role"], "assistant");
        assert_eq!(data(&events[1])["choices"][0]["delta"]["content"], "Hel");
        assert_eq!(data(&events[2])["choices"][0]["delta"]["content"], "lo");
        let last = data(&events[3]);
        assert_eq!(last["choices"][0]["finish_reason"], "length");
        assert_eq!(last["timings"]["cached_prompt_tokens"], 2);
        let usage = data(&events[4]);
        assert_eq!(usage["choices"], json!([]));
        assert_eq!(usage["usage"]["total_tokens"], 9);
        assert_eq!(events[5], "data: [DONE]\n\n");
        let ids: Vec<_> = events[..5].iter().map(|e| data(e)["id"].clone()).collect();
        assert!(ids.iter().all(|id| *id == ids[0]), "one id per completion");
    }

    #[test]
    fn logprobs_ride_on_their_delta_and_failures_end_the_stream() {
        let token = TokenLogprob {
            token: "a".into(),
            bytes: vec![97],
            logprob: -0.25,
            top: Vec::new(),
        };
        let events = stream(
            false,
            true,
            vec![
                JobEvent::Delta {
                    text: "a".into(),
                    logprobs: vec![token],
                },
                JobEvent::Failed("out of memory".into()),
            ],
        );
        let delta = data(&events[1]);
        assert_eq!(
            delta["choices"][0]["logprobs"]["content"][0]["logprob"],
            -0.25
        );
        let error = data(&events[2]);
        assert!(error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("out of memory"));
        assert_eq!(events.last().unwrap(), "data: [DONE]\n\n");
    }

    #[test]
    fn a_vanished_generation_ends_the_stream_with_an_error() {
        let events = stream(false, false, Vec::new());
        assert_eq!(events.len(), 3);
        assert!(data(&events[1])["error"]["message"]
            .as_str()
            .unwrap()
            .contains("stopped before finishing"));
    }
}
