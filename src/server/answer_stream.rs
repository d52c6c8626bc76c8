//! A generation's events turned into what a client reads, for any API: `AnswerStream`
//! pulls the engine's events one at a time and asks an `AnswerFormat` (OpenAI chunks,
//! Anthropic events, Ollama lines) for the bytes of each, filling long silences with the
//! format's keep-alive; `collect` waits for the whole answer instead. Dropping a stream
//! (client gone) drops the receiver, which stops the generation at its next token.
use std::collections::VecDeque;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use super::completion::Answer;
use super::errors::ApiError;
use crate::engine::scheduler::{JobEvent, TokenLogprob};
use crate::engine::{FinishReason, Timings};

/// How far the reading of the prompt has come.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    pub processed: usize,
    pub total: usize,
    pub cached: usize,
    pub images_encoded: usize,
    pub images: usize,
}

/// How a generation ended.
#[derive(Clone, Debug)]
pub struct Ending {
    pub finish_reason: FinishReason,
    /// The stop string that ended the answer, if one did.
    pub stop_sequence: Option<String>,
    pub completion_tokens: usize,
    pub timings: Timings,
}

/// One API's streamed wire format. Each method returns the chunks to send, in order.
pub trait AnswerFormat {
    /// What opens the stream, before the first event.
    fn opening(&mut self, answer: &Answer) -> Vec<Vec<u8>>;
    /// A prompt-progress report, when the request asked for them and the format has one.
    fn progress(&mut self, _answer: &Answer, _progress: &Progress) -> Option<Vec<u8>> {
        None
    }
    fn delta(&mut self, answer: &Answer, text: &str, logprobs: &[TokenLogprob]) -> Vec<Vec<u8>>;
    /// The last chunks of a finished answer.
    fn done(&mut self, answer: &Answer, ending: &Ending) -> Vec<Vec<u8>>;
    /// The last chunks of an answer that failed or was interrupted.
    fn failed(&mut self, answer: &Answer, error: &ApiError) -> Vec<Vec<u8>>;
    /// What fills a silence (an SSE comment); `None` when the format has no such thing.
    fn keep_alive(&self) -> Option<Vec<u8>> {
        None
    }
}

/// Silence after which a progress report becomes a keep-alive, so proxies and clients with
/// read timeouts see the connection alive during a long prompt.
const KEEP_ALIVE: Duration = Duration::from_secs(2);

pub struct AnswerStream<F> {
    events: Receiver<JobEvent>,
    answer: Answer,
    format: F,
    ready: VecDeque<Vec<u8>>,
    finished: bool,
    /// When the stream last queued something.
    last_queued: Instant,
}

impl<F: AnswerFormat> AnswerStream<F> {
    pub fn new(events: Receiver<JobEvent>, answer: Answer, mut format: F) -> Self {
        let ready = format.opening(&answer).into();
        Self {
            events,
            answer,
            format,
            ready,
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
        let chunks = match self.events.recv() {
            Ok(JobEvent::Progress {
                processed,
                total,
                cached,
                images_encoded,
                images,
            }) => {
                let progress = Progress {
                    processed,
                    total,
                    cached,
                    images_encoded,
                    images,
                };
                let answer = &self.answer;
                let report = answer
                    .return_progress
                    .then(|| self.format.progress(answer, &progress))
                    .flatten();
                let silent = self.last_queued.elapsed() >= KEEP_ALIVE;
                report
                    .or_else(|| silent.then(|| self.format.keep_alive()).flatten())
                    .into_iter()
                    .collect()
            }
            Ok(JobEvent::Delta { text, logprobs }) => {
                self.answer.tracker.on_delta();
                self.format.delta(&self.answer, &text, &logprobs)
            }
            Ok(JobEvent::Done {
                finish_reason,
                stop_sequence,
                completion_tokens,
                timings,
            }) => {
                self.answer
                    .tracker
                    .on_done(completion_tokens, finish_reason, &timings);
                self.finished = true;
                let ending = Ending {
                    finish_reason,
                    stop_sequence,
                    completion_tokens,
                    timings,
                };
                self.format.done(&self.answer, &ending)
            }
            other => {
                self.finished = true;
                self.format.failed(&self.answer, &failure(other))
            }
        };
        self.ready.extend(chunks);
    }
}

impl<F: AnswerFormat> Iterator for AnswerStream<F> {
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

/// The whole answer of a generation.
pub struct WholeAnswer {
    pub text: String,
    pub logprobs: Vec<TokenLogprob>,
    pub ending: Ending,
}

/// Waits for the whole answer.
pub fn collect(events: Receiver<JobEvent>, answer: &mut Answer) -> Result<WholeAnswer, ApiError> {
    let mut text = String::new();
    let mut logprobs = Vec::new();
    loop {
        match events.recv() {
            Ok(JobEvent::Progress { .. }) => {}
            Ok(JobEvent::Delta {
                text: piece,
                logprobs: tokens,
            }) => {
                answer.tracker.on_delta();
                text.push_str(&piece);
                logprobs.extend(tokens);
            }
            Ok(JobEvent::Done {
                finish_reason,
                stop_sequence,
                completion_tokens,
                timings,
            }) => {
                answer
                    .tracker
                    .on_done(completion_tokens, finish_reason, &timings);
                let ending = Ending {
                    finish_reason,
                    stop_sequence,
                    completion_tokens,
                    timings,
                };
                return Ok(WholeAnswer {
                    text,
                    logprobs,
                    ending,
                });
            }
            other => return Err(failure(other)),
        }
    }
}

/// The error of an event that ends a generation without an answer.
fn failure(event: Result<JobEvent, std::sync::mpsc::RecvError>) -> ApiError {
    match event {
        Ok(JobEvent::Failed(message)) => {
            ApiError::internal(format!("generation failed: {message}"))
        }
        Ok(JobEvent::Interrupted) => ApiError::shutting_down(),
        _ => ApiError::internal("the generation stopped before finishing"),
    }
}
