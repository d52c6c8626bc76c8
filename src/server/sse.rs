//! The streamed answer: `chat.completion.chunk` objects as server-sent events, pulled
//! from the generation's events one at a time — a role chunk, one chunk per text delta
//! (with its logprobs, and `glimpse.detections` for the objects it completes), a final chunk with `finish_reason` and `timings`, the usage chunk
//! when `stream_options.include_usage` asked for it, then `data: [DONE]`. Dropping the
//! stream (client gone) drops the receiver, which stops the generation at its next token.
use std::collections::VecDeque;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::completion::Answer;
use super::detections::StreamDetections;
use super::errors::ApiError;
use super::response::{chunk_json, timings_json, usage_chunk_json};
use crate::engine::scheduler::JobEvent;

pub struct ChatStream {
    events: Receiver<JobEvent>,
    answer: Answer,
    include_usage: bool,
    detections: StreamDetections,
    ready: VecDeque<Vec<u8>>,
    finished: bool,
    /// When the stream last queued something (keep-alive comments fill longer silences).
    last_queued: Instant,
}

/// Silence after which a progress report becomes a `: keep-alive` comment, so proxies and
/// clients with read timeouts see the connection alive during a long prompt.
const KEEP_ALIVE: Duration = Duration::from_secs(2);

fn event(value: &Value) -> Vec<u8> {
    format!("data: {value}\n\n").into_bytes()
}

const DONE: &[u8] = b"data: [DONE]\n\n";

impl ChatStream {
    pub fn new(events: Receiver<JobEvent>, answer: Answer, include_usage: bool) -> Self {
        let role = chunk_json(
            &answer.ids,
            json!({"role": "assistant", "content": ""}),
            None,
            None,
        );
        Self {
            events,
            detections: StreamDetections::new(answer.image_sizes.clone()),
            answer,
            include_usage,
            ready: VecDeque::from([event(&role)]),
            finished: false,
            last_queued: Instant::now(),
        }
    }

    /// Waits for the next generation event and queues the chunks it makes.
    fn pull(&mut self) {
        let queued = self.ready.len();
        self.pull_event();
        if self.ready.len() > queued {
            self.last_queued = Instant::now();
        }
    }

    fn pull_event(&mut self) {
        match self.events.recv() {
            Ok(JobEvent::Progress {
                processed,
                total,
                cached,
                images_encoded,
                images,
            }) => {
                if self.answer.return_progress {
                    let mut chunk = chunk_json(&self.answer.ids, json!({}), None, None);
                    chunk["prompt_progress"] = json!({
                        "total": total,
                        "cache": cached,
                        "processed": processed,
                        "images": images,
                        "images_encoded": images_encoded,
                        "time_ms": self.answer.tracker.elapsed_ms(),
                    });
                    self.ready.push_back(event(&chunk));
                } else if self.last_queued.elapsed() >= KEEP_ALIVE {
                    self.ready.push_back(b": keep-alive\n\n".to_vec());
                }
            }
            Ok(JobEvent::Delta { text, logprobs }) => {
                self.answer.tracker.on_delta();
                let logprobs = self.answer.wants_logprobs.then_some(&logprobs[..]);
                let mut chunk =
                    chunk_json(&self.answer.ids, json!({"content": text}), logprobs, None);
                if let Some(glimpse) = self.detections.push(&text) {
                    chunk["glimpse"] = glimpse;
                }
                self.ready.push_back(event(&chunk));
            }
            Ok(JobEvent::Done {
                finish_reason,
                completion_tokens,
                timings,
            }) => {
                self.answer
                    .tracker
                    .on_done(completion_tokens, finish_reason, &timings);
                let mut last = chunk_json(&self.answer.ids, json!({}), None, Some(finish_reason));
                last["timings"] = timings_json(&timings, &self.answer.server_timings());
                self.ready.push_back(event(&last));
                if self.include_usage {
                    let usage = self.answer.usage(&timings, completion_tokens);
                    self.ready
                        .push_back(event(&usage_chunk_json(&self.answer.ids, &usage)));
                }
                self.finish();
            }
            Ok(JobEvent::Failed(message)) => {
                let error = ApiError::internal(format!("generation failed: {message}"));
                self.ready.push_back(event(&error.body()));
                self.finish();
            }
            Ok(JobEvent::Interrupted) => {
                self.ready
                    .push_back(event(&ApiError::shutting_down().body()));
                self.finish();
            }
            Err(_) => {
                let error = ApiError::internal("the generation stopped before finishing");
                self.ready.push_back(event(&error.body()));
                self.finish();
            }
        }
    }

    fn finish(&mut self) {
        self.ready.push_back(DONE.to_vec());
        self.finished = true;
    }
}

impl Iterator for ChatStream {
    type Item = Vec<u8>;

    fn next(&mut self) -> Option<Vec<u8>> {
        loop {
            if let Some(chunk) = self.ready.pop_front() {
                return Some(chunk);
            }
            if self.finished {
                return None;
            }
            self.pull();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::sync::Arc;
    use std::time::Instant;

    use super::*;
    use crate::engine::scheduler::TokenLogprob;
    use crate::engine::{FinishReason, Timings};
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
            return_progress: false,
        };
        ChatStream::new(receiver, answer, include_usage)
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
