//! Runs generation jobs on a fixed number of slots (each a thread owning a `Session`
//! and its KV cache) fed from one bounded FIFO queue. A job goes to the idle slot whose
//! cache shares the longest prefix with it, so a conversation keeps its cache. Results
//! stream back as `JobEvent`s; when the receiver is gone (client disconnected) the slot
//! stops at the next token.
use std::collections::VecDeque;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex};

use super::bundle::ModelBundle;
use super::sampler::log_softmax;
use super::session::{
    cache_items, image_key, CachedItem, FinishReason, GenerationParams, Session, Timings,
};
use super::stop::{StopMatcher, StopOutcome};
use crate::chat::Prompt;
use crate::preprocess::PixelValues;

/// One request ready to run: prompt built, images preprocessed (in prompt order).
pub struct Job {
    pub prompt: Prompt,
    pub images: Vec<PixelValues>,
    pub params: GenerationParams,
    pub stop: Vec<String>,
    /// `Some(n)`: report each token's log-probability and the `n` most likely alternatives.
    pub logprobs: Option<usize>,
    pub events: Sender<JobEvent>,
}

/// A token's log-probability (log-softmax of the raw logits) and its alternatives.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenLogprob {
    pub token: String,
    pub bytes: Vec<u8>,
    pub logprob: f32,
    pub top: Vec<(String, Vec<u8>, f32)>,
}

#[derive(Debug)]
pub enum JobEvent {
    /// Text safe to show (never part of a stop string), with the log-probs of the tokens
    /// generated since the previous delta when they were requested.
    Delta {
        text: String,
        logprobs: Vec<TokenLogprob>,
    },
    Done {
        finish_reason: FinishReason,
        completion_tokens: usize,
        timings: Timings,
    },
    Failed(String),
    /// The server is shutting down: the job was cancelled (queued or mid-answer).
    Interrupted,
}

#[derive(Debug, PartialEq, Eq)]
pub enum SubmitError {
    QueueFull,
}

struct Slot {
    sender: Sender<Job>,
    /// What the slot's KV cache holds, for prefix affinity.
    cached: Mutex<Vec<CachedItem>>,
}

struct Shared {
    queue: Mutex<State>,
    wake: Condvar,
    max_queue: usize,
    slots: usize,
    /// Set by `Scheduler::interrupt`: running jobs stop at their next token.
    interrupted: AtomicBool,
}

struct State {
    jobs: VecDeque<Job>,
    idle: Vec<usize>,
}

pub struct Scheduler {
    shared: Arc<Shared>,
}

impl Scheduler {
    /// Starts `slots` slot threads and the dispatcher.
    pub fn start(
        bundle: Arc<ModelBundle>,
        slots: usize,
        max_queue: usize,
    ) -> std::io::Result<Self> {
        let slots = slots.max(1);
        let shared = Arc::new(Shared {
            queue: Mutex::new(State {
                jobs: VecDeque::new(),
                idle: (0..slots).collect(),
            }),
            wake: Condvar::new(),
            max_queue,
            slots,
            interrupted: AtomicBool::new(false),
        });
        let mut handles = Vec::with_capacity(slots);
        for index in 0..slots {
            let (sender, receiver) = mpsc::channel();
            let slot = Arc::new(Slot {
                sender,
                cached: Mutex::new(Vec::new()),
            });
            handles.push(slot.clone());
            let (bundle, shared) = (bundle.clone(), shared.clone());
            std::thread::Builder::new()
                .name(format!("glimpse-slot-{index}"))
                .spawn(move || run_slot(index, &bundle, &slot, receiver, &shared))?;
        }
        let dispatcher_shared = shared.clone();
        std::thread::Builder::new()
            .name("glimpse-dispatch".into())
            .spawn(move || dispatch(&dispatcher_shared, &handles))?;
        Ok(Self { shared })
    }

    /// Queues a job, or refuses it when `max_queue` jobs are already waiting.
    pub fn submit(&self, job: Job) -> Result<(), SubmitError> {
        let mut state = lock(&self.shared.queue);
        if state.jobs.len() >= self.shared.max_queue && state.idle.is_empty() {
            return Err(SubmitError::QueueFull);
        }
        state.jobs.push_back(job);
        self.shared.wake.notify_all();
        Ok(())
    }

    /// Jobs waiting for a slot.
    pub fn queue_depth(&self) -> usize {
        lock(&self.shared.queue).jobs.len()
    }

    /// Jobs waiting or running.
    pub fn in_flight(&self) -> usize {
        let state = lock(&self.shared.queue);
        state.jobs.len() + (self.shared.slots - state.idle.len())
    }

    /// Ends every job: queued ones at once, running ones at their next token, each with
    /// `JobEvent::Interrupted`; jobs submitted later are interrupted as they reach a slot.
    pub fn interrupt(&self) {
        self.shared.interrupted.store(true, Ordering::SeqCst);
        let queued: Vec<Job> = lock(&self.shared.queue).jobs.drain(..).collect();
        for job in queued {
            let _ = job.events.send(JobEvent::Interrupted);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Hands the oldest job to the idle slot with the longest cached prefix.
fn dispatch(shared: &Shared, slots: &[Arc<Slot>]) {
    loop {
        let mut state = lock(&shared.queue);
        while state.jobs.is_empty() || state.idle.is_empty() {
            state = shared.wake.wait(state).unwrap_or_else(|p| p.into_inner());
        }
        let Some(job) = state.jobs.pop_front() else {
            continue;
        };
        let keys: Vec<u64> = job.images.iter().map(image_key).collect();
        let items = cache_items(&job.prompt, &keys);
        let best = state
            .idle
            .iter()
            .enumerate()
            .max_by_key(|(_, &slot)| {
                let cached = lock(&slots[slot].cached);
                cached
                    .iter()
                    .zip(&items)
                    .take_while(|(a, b)| a == b)
                    .count()
            })
            .map(|(position, _)| position)
            .unwrap_or(0);
        let slot = state.idle.swap_remove(best);
        drop(state);
        if let Err(mpsc::SendError(job)) = slots[slot].sender.send(job) {
            let _ = job
                .events
                .send(JobEvent::Failed("the generation slot stopped".into()));
        }
    }
}

fn run_slot(index: usize, bundle: &ModelBundle, slot: &Slot, jobs: Receiver<Job>, shared: &Shared) {
    let mut session = Session::new(bundle);
    for job in jobs {
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run_job(bundle, &mut session, &job, &shared.interrupted)
        }));
        let last_event = run.unwrap_or_else(|_| {
            // A bug hit by one request must not take the slot down with it: report the
            // failure and start over with an empty cache.
            session = Session::new(bundle);
            Some(JobEvent::Failed(
                "internal error while generating (details in the server log)".into(),
            ))
        });
        // The slot is free before its client hears the answer is complete, so a request
        // sent right after an answer finds the slot idle.
        *lock(&slot.cached) = session.cached_items().to_vec();
        lock(&shared.queue).idle.push(index);
        shared.wake.notify_all();
        if let Some(event) = last_event {
            let _ = job.events.send(event);
        }
    }
}

/// Generates one job's answer, streaming deltas; a failed send means the client is gone.
/// Returns the final event (`Done` or `Failed`) for the caller to send once the slot is
/// free, or `None` when nobody is listening any more.
fn run_job(
    bundle: &ModelBundle,
    session: &mut Session,
    job: &Job,
    interrupted: &AtomicBool,
) -> Option<JobEvent> {
    if interrupted.load(Ordering::SeqCst) {
        return Some(JobEvent::Interrupted);
    }
    let mut decoder = bundle.tokenizer.stream_decoder(true);
    let mut stop = StopMatcher::new(&job.stop);
    let mut pending_logprobs = Vec::new();
    let mut stopped_by_string = false;
    let mut client_gone = false;
    let mut cut_by_shutdown = false;
    let images: Vec<&PixelValues> = job.images.iter().collect();
    let send = |text: String, logprobs: &mut Vec<TokenLogprob>| {
        if text.is_empty() && logprobs.is_empty() {
            return true;
        }
        job.events
            .send(JobEvent::Delta {
                text,
                logprobs: std::mem::take(logprobs),
            })
            .is_ok()
    };
    let result = session.generate(&job.prompt, &images, &job.params, |event| {
        if let Some(top) = job.logprobs {
            pending_logprobs.push(token_logprob(bundle, event.id, event.logits, top));
        }
        let piece = match decoder.push(event.id) {
            Ok(piece) => piece.unwrap_or_default(),
            Err(_) => String::new(),
        };
        let (text, stopped) = match stop.push(&piece) {
            StopOutcome::Emit(text) => (text, false),
            StopOutcome::Stopped(text) => (text, true),
        };
        stopped_by_string = stopped;
        client_gone = !send(text, &mut pending_logprobs);
        cut_by_shutdown = !stopped && interrupted.load(Ordering::Relaxed);
        if stopped || client_gone || cut_by_shutdown {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    });
    let output = match result {
        Ok(output) => output,
        Err(e) => {
            return Some(JobEvent::Failed(format!("{e:#}")));
        }
    };
    if client_gone {
        return None;
    }
    if cut_by_shutdown {
        return Some(JobEvent::Interrupted);
    }
    if !stopped_by_string {
        let tail = decoder.finish().unwrap_or_default();
        let text = match stop.push(&tail) {
            StopOutcome::Emit(text) => text + &stop.finish(),
            StopOutcome::Stopped(text) => {
                stopped_by_string = true;
                text
            }
        };
        send(text, &mut pending_logprobs);
    }
    let finish_reason = if stopped_by_string {
        FinishReason::Stop
    } else {
        output.finish_reason
    };
    Some(JobEvent::Done {
        finish_reason,
        completion_tokens: output.tokens.len(),
        timings: output.timings,
    })
}

fn token_logprob(bundle: &ModelBundle, id: u32, logits: &[f32], top: usize) -> TokenLogprob {
    let logprobs = log_softmax(logits);
    let describe = |id: u32| {
        let bytes = bundle.tokenizer.token_bytes(id);
        (String::from_utf8_lossy(&bytes).into_owned(), bytes)
    };
    let mut order: Vec<u32> = (0..logprobs.len() as u32).collect();
    let top = top.min(order.len());
    if top > 0 {
        order.select_nth_unstable_by(top - 1, |&a, &b| {
            logprobs[b as usize].total_cmp(&logprobs[a as usize])
        });
        order.truncate(top);
        order.sort_by(|&a, &b| logprobs[b as usize].total_cmp(&logprobs[a as usize]));
    } else {
        order.clear();
    }
    let (token, bytes) = describe(id);
    TokenLogprob {
        token,
        bytes,
        logprob: logprobs
            .get(id as usize)
            .copied()
            .unwrap_or(f32::NEG_INFINITY),
        top: order
            .into_iter()
            .map(|t| {
                let (text, bytes) = describe(t);
                (text, bytes, logprobs[t as usize])
            })
            .collect(),
    }
}
