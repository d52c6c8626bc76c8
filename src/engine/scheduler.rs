//! Runs generation jobs with continuous batching: one engine thread owns `slots` sessions
//! (each a KV cache) and, step after step, decodes one token for every answering job in a
//! single model pass (each weight read once for all), while the prompts of newly admitted
//! jobs join a piece at a time (chunked prefill, shortest remaining prompt first) and their
//! images go through the vision encoder a block per step, so a long image turn never
//! freezes the streams already running. Jobs wait in one bounded FIFO queue; a job takes
//! the free session whose cache shares the longest prefix with it. Results stream back as
//! `JobEvent`s; a job whose receiver is gone (client disconnected) stops at its next token.
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::bundle::ModelBundle;
use super::constraint::TokenConstraint;
use super::sampler::{log_softmax, Sampler};
use super::session::{
    cache_items, image_key, without_end_of_turn, CachedItem, FinishReason, GenerationParams,
    PendingPrompt, Session, Timings,
};
use super::stop::{StopMatcher, StopOutcome};
use crate::chat::{Prompt, StreamDecoder, Tokenizer};
use crate::model::{SequenceStep, VisionProgress};
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
    /// Added to the logits of these tokens before sampling (OpenAI's `logit_bias`).
    pub logit_bias: Vec<(u32, f32)>,
    /// The grammar the answer must follow (structured output), compiled for this job.
    pub constraint: Option<TokenConstraint>,
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
    /// The prompt is being read: `processed` of `total` prompt tokens are in the cache,
    /// `images_encoded` of `images` images through the vision encoder.
    Progress {
        processed: usize,
        total: usize,
        cached: usize,
        images_encoded: usize,
        images: usize,
    },
    /// Text safe to show (never part of a stop string), with the log-probs of the tokens
    /// generated since the previous delta when they were requested.
    Delta {
        text: String,
        logprobs: Vec<TokenLogprob>,
    },
    Done {
        finish_reason: FinishReason,
        /// The stop string that ended the answer, if one did.
        stop_sequence: Option<String>,
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

/// A job in the queue with its identity, computed once as it was submitted.
struct Queued {
    job: Job,
    image_keys: Vec<u64>,
    items: Vec<CachedItem>,
    submitted: Instant,
}

struct Shared {
    queue: Mutex<VecDeque<Queued>>,
    wake: Condvar,
    max_queue: usize,
    slots: usize,
    /// Jobs admitted to a session and not yet finished.
    active: AtomicUsize,
    /// Set by `Scheduler::interrupt`: running jobs stop at their next token.
    interrupted: AtomicBool,
    stats: Mutex<SchedulerStats>,
}

/// Counters of the engine loop, for `/metrics`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SchedulerStats {
    /// Model steps run, by how many sequences they carried (`steps_by_batch[n - 1]`).
    pub steps_by_batch: Vec<u64>,
    /// Jobs admitted to a session, and their summed wait in the queue.
    pub admitted: u64,
    pub queue_wait_seconds: f64,
}

pub struct Scheduler {
    shared: Arc<Shared>,
}

impl Scheduler {
    /// Starts the engine thread with `slots` sessions.
    pub fn start(
        bundle: Arc<ModelBundle>,
        slots: usize,
        max_queue: usize,
    ) -> std::io::Result<Self> {
        let slots = slots.max(1);
        let shared = Arc::new(Shared {
            queue: Mutex::new(VecDeque::new()),
            wake: Condvar::new(),
            max_queue,
            slots,
            active: AtomicUsize::new(0),
            interrupted: AtomicBool::new(false),
            stats: Mutex::new(SchedulerStats {
                steps_by_batch: vec![0; slots],
                ..SchedulerStats::default()
            }),
        });
        let engine_shared = shared.clone();
        std::thread::Builder::new()
            .name("glimpse-engine".into())
            .spawn(move || Engine::new(&bundle, &engine_shared).run())?;
        Ok(Self { shared })
    }

    /// Queues a job, or refuses it when `max_queue` jobs are already waiting and no
    /// session is free.
    pub fn submit(&self, job: Job) -> Result<(), SubmitError> {
        let image_keys: Vec<u64> = job.images.iter().map(image_key).collect();
        let items = cache_items(&job.prompt, &image_keys);
        let queued = Queued {
            job,
            image_keys,
            items,
            submitted: Instant::now(),
        };
        let mut queue = lock(&self.shared.queue);
        let free = self.shared.slots - self.shared.active.load(Ordering::SeqCst);
        if queue.len() >= self.shared.max_queue + free {
            return Err(SubmitError::QueueFull);
        }
        queue.push_back(queued);
        self.shared.wake.notify_all();
        Ok(())
    }

    /// Jobs waiting for a session.
    pub fn queue_depth(&self) -> usize {
        lock(&self.shared.queue).len()
    }

    /// Jobs answering now.
    pub fn active(&self) -> usize {
        self.shared.active.load(Ordering::SeqCst)
    }

    /// Jobs waiting or running.
    pub fn in_flight(&self) -> usize {
        let queue = lock(&self.shared.queue);
        queue.len() + self.shared.active.load(Ordering::SeqCst)
    }

    pub fn stats(&self) -> SchedulerStats {
        lock(&self.shared.stats).clone()
    }

    /// Ends every job: queued ones at once, running ones at their next token, each with
    /// `JobEvent::Interrupted`; jobs submitted later are interrupted as they reach a session.
    pub fn interrupt(&self) {
        self.shared.interrupted.store(true, Ordering::SeqCst);
        let queued: Vec<Queued> = lock(&self.shared.queue).drain(..).collect();
        for queued in queued {
            let _ = queued.job.events.send(JobEvent::Interrupted);
        }
        self.shared.wake.notify_all();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// How long one step's prompt work should take at most, so the streams running beside a
/// long prompt (and a short request arriving meanwhile) keep moving.
/// On AMD Zen 1 with 2 threads and q4_k weights a text request sent during a 448×448 image
/// turn waits for the step under way (a vision block is about 0.3 s there) and its own pass.
const STEP_TARGET: Duration = Duration::from_millis(250);

/// The shortest waiting prompt is read in one pass when it is at most this many step
/// budgets long.
const SHORT_PROMPT_BUDGETS: usize = 2;

/// A job in a session: reading its prompt, then answering.
struct Running<'m> {
    job: Job,
    session: usize,
    image_keys: Vec<u64>,
    phase: Phase,
    reply: Reply<'m>,
    timings: Timings,
}

enum Phase {
    Prompt {
        pending: Box<PendingPrompt>,
        /// The image being encoded (prompt order index, encoder state).
        encoding: Option<(usize, VisionProgress)>,
        prefill_started: Option<Instant>,
    },
    /// The token to feed next (sampled from the previous logits).
    Answer { next: u32, decode_started: Instant },
}

/// What turns sampled tokens into the job's events: sampler, detokenizer, stop strings.
struct Reply<'m> {
    tokenizer: &'m Tokenizer,
    sampler: Sampler,
    decoder: StreamDecoder<'m>,
    stop: StopMatcher,
    tokens: Vec<u32>,
    pending_logprobs: Vec<TokenLogprob>,
    constraint: Option<TokenConstraint>,
}

/// How a job ended, if it did.
enum Outcome {
    Continue,
    /// Finished: the final event to send once its session is free (`None`: nobody listens).
    Finished(Option<JobEvent>),
}

struct Engine<'m> {
    bundle: &'m ModelBundle,
    shared: &'m Shared,
    sessions: Vec<Session<'m>>,
    free: Vec<usize>,
    running: Vec<Running<'m>>,
    /// Seconds per prompt token of recent steps (sets how much prompt a step takes).
    prompt_token_seconds: Option<f64>,
}

impl<'m> Engine<'m> {
    fn new(bundle: &'m ModelBundle, shared: &'m Shared) -> Self {
        Self {
            bundle,
            shared,
            sessions: (0..shared.slots).map(|_| Session::new(bundle)).collect(),
            free: (0..shared.slots).rev().collect(),
            running: Vec::new(),
            prompt_token_seconds: None,
        }
    }

    fn run(mut self) {
        loop {
            self.admit();
            if self.shared.interrupted.load(Ordering::SeqCst) {
                for index in (0..self.running.len()).rev() {
                    self.finish(index, Some(JobEvent::Interrupted));
                }
                continue;
            }
            let step = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.step()));
            if step.is_err() {
                // A bug hit by a step must not take the server down: the jobs in it fail
                // and their sessions start over with empty caches.
                for index in (0..self.running.len()).rev() {
                    let session = self.running[index].session;
                    self.sessions[session] = Session::new(self.bundle);
                    self.finish(
                        index,
                        Some(JobEvent::Failed(
                            "internal error while generating (details in the server log)".into(),
                        )),
                    );
                }
            }
        }
    }

    /// Moves queued jobs into free sessions; waits while there is nothing to do. The queue
    /// is locked only to take the jobs (a job's prompt is set up after).
    fn admit(&mut self) {
        loop {
            let mut admitted = Vec::new();
            {
                let mut queue = lock(&self.shared.queue);
                while queue.is_empty() && self.running.is_empty() {
                    queue = self
                        .shared
                        .wake
                        .wait(queue)
                        .unwrap_or_else(|p| p.into_inner());
                }
                while !self.free.is_empty() {
                    let Some(queued) = queue.pop_front() else {
                        break;
                    };
                    let session = self.free.remove(self.best_free_session(&queued.items));
                    self.shared.active.fetch_add(1, Ordering::SeqCst);
                    admitted.push((queued, session));
                }
            }
            for (queued, session) in admitted {
                {
                    let mut stats = lock(&self.shared.stats);
                    stats.admitted += 1;
                    stats.queue_wait_seconds += queued.submitted.elapsed().as_secs_f64();
                }
                self.start(queued, session);
            }
            if !self.running.is_empty() {
                return;
            }
        }
    }

    /// Position in `free` of the free session whose cache shares the longest prefix with
    /// a job's `items`.
    fn best_free_session(&self, items: &[CachedItem]) -> usize {
        self.free
            .iter()
            .enumerate()
            .max_by_key(|(_, &s)| {
                self.sessions[s]
                    .cached_items()
                    .iter()
                    .zip(items)
                    .take_while(|(a, b)| a == b)
                    .count()
            })
            .map_or(0, |(position, _)| position)
    }

    /// Begins a job in `session` (failing it at once when its prompt is refused).
    fn start(&mut self, queued: Queued, session: usize) {
        let Queued {
            mut job,
            image_keys,
            ..
        } = queued;
        let mut timings = Timings::default();
        let images: Vec<&PixelValues> = job.images.iter().collect();
        let pending =
            self.sessions[session].begin_prompt(&job.prompt, &images, &image_keys, &mut timings);
        let reply = Reply {
            tokenizer: &self.bundle.tokenizer,
            sampler: Sampler::new(job.params.sampling.clone()),
            decoder: self.bundle.tokenizer.stream_decoder(true),
            stop: StopMatcher::new(&job.stop),
            tokens: Vec::new(),
            pending_logprobs: Vec::new(),
            constraint: job.constraint.take(),
        };
        let phase = match pending {
            Ok(pending) => Phase::Prompt {
                pending: Box::new(pending),
                encoding: None,
                prefill_started: None,
            },
            Err(e) => {
                let _ = job.events.send(JobEvent::Failed(format!("{e:#}")));
                self.free.push(session);
                self.shared.active.fetch_sub(1, Ordering::SeqCst);
                return;
            }
        };
        self.running.push(Running {
            job,
            session,
            image_keys,
            phase,
            reply,
            timings,
        });
    }

    /// Frees job `index`'s session, then sends its final event.
    fn finish(&mut self, index: usize, event: Option<JobEvent>) {
        let running = self.running.remove(index);
        self.free.push(running.session);
        self.shared.active.fetch_sub(1, Ordering::SeqCst);
        if let Some(event) = event {
            let _ = running.job.events.send(event);
        }
    }

    /// One round: a model pass over every answering job's next token and a budget of
    /// prompt tokens, then a vision block for the oldest job waiting on an image (in that
    /// order, so a short request that arrives during an image waits for one block at most).
    fn step(&mut self) {
        self.text_pass();
        self.encode_one_block();
    }

    fn text_pass(&mut self) {
        let budget = self.prompt_budget();
        let chunk = self.bundle.model.text.prompt_chunk();
        // Prompt tokens per job for this pass, shortest remaining prompt first.
        let mut counts = vec![0usize; self.running.len()];
        let mut order: Vec<usize> = (0..self.running.len())
            .filter(|&i| match &self.running[i].phase {
                Phase::Prompt { pending, .. } => pending.images_ready(),
                Phase::Answer { .. } => false,
            })
            .collect();
        order.sort_by_key(|&i| match &self.running[i].phase {
            Phase::Prompt { pending, .. } => pending.remaining(),
            Phase::Answer { .. } => 0,
        });
        let mut left = budget;
        for (rank, i) in order.into_iter().enumerate() {
            if left == 0 {
                break;
            }
            if let Phase::Prompt { pending, .. } = &self.running[i].phase {
                // Beside other jobs, the shortest prompt goes in whole when it is short (a
                // question that arrived beside a long image turn answers after one pass);
                // alone, a job keeps to the budget, so a newcomer never waits long.
                let whole = rank == 0
                    && self.running.len() > 1
                    && pending.remaining() <= SHORT_PROMPT_BUDGETS * budget;
                counts[i] = if whole {
                    pending.remaining()
                } else {
                    pieces_within(pending.done(), pending.remaining(), left, chunk)
                };
                left = left.saturating_sub(counts[i]);
            }
        }
        let answering = self
            .running
            .iter()
            .filter(|r| matches!(r.phase, Phase::Answer { .. }))
            .count();
        let prompt_tokens: usize = counts.iter().sum();
        if answering == 0 && prompt_tokens == 0 {
            return;
        }
        let started = Instant::now();
        for (running, &count) in self.running.iter_mut().zip(&counts) {
            if let Phase::Prompt {
                prefill_started, ..
            } = &mut running.phase
            {
                if count > 0 && prefill_started.is_none() {
                    *prefill_started = Some(started);
                }
            }
        }
        let logits = self.run_model(&counts);
        let seconds = started.elapsed().as_secs_f64();
        if prompt_tokens > 0 {
            // What the answering tokens cost rides along; it is small beside the prompt's.
            let per_token = seconds / prompt_tokens as f64;
            self.prompt_token_seconds = Some(match self.prompt_token_seconds {
                Some(old) => 0.5 * old + 0.5 * per_token,
                None => per_token,
            });
        }
        let logits = match logits {
            Ok(logits) => logits,
            Err(e) => {
                let message = format!("{e:#}");
                for index in (0..self.running.len()).rev() {
                    if counts[index] > 0
                        || matches!(self.running[index].phase, Phase::Answer { .. })
                    {
                        let session = self.running[index].session;
                        self.sessions[session] = Session::new(self.bundle);
                        self.finish(index, Some(JobEvent::Failed(message.clone())));
                    }
                }
                return;
            }
        };
        let mut outcomes = Vec::with_capacity(self.running.len());
        for (index, logits) in logits.into_iter().enumerate() {
            outcomes.push(self.after_step(index, counts[index], logits));
        }
        for index in (0..outcomes.len()).rev() {
            if let Outcome::Finished(event) =
                std::mem::replace(&mut outcomes[index], Outcome::Continue)
            {
                self.finish(index, event);
            }
        }
    }

    /// Prompt tokens one step may take: what fits in `STEP_TARGET` at the measured rate,
    /// at least one chunk and as many as the weights' products need to run at speed.
    fn prompt_budget(&self) -> usize {
        let text = &self.bundle.model.text;
        let least = text.prompt_chunk().max(text.efficient_prompt_rows());
        match self.prompt_token_seconds {
            Some(seconds) if seconds > 0.0 => {
                ((STEP_TARGET.as_secs_f64() / seconds) as usize).max(least)
            }
            _ => least,
        }
    }

    /// One model pass: `counts[i]` prompt tokens of job `i` in its prompt phase, the next
    /// token of every answering job. Returns each job's logits (or `None`).
    fn run_model(&mut self, counts: &[usize]) -> anyhow::Result<Vec<Option<Vec<f32>>>> {
        let mut sessions: Vec<Option<&mut Session<'m>>> =
            self.sessions.iter_mut().map(Some).collect();
        let mut steps: Vec<SequenceStep> = Vec::new();
        let mut owners = Vec::new();
        for (index, running) in self.running.iter().enumerate() {
            let step = match &running.phase {
                Phase::Prompt { pending, .. } if counts[index] > 0 => sessions[running.session]
                    .take()
                    .map(|s| s.prompt_step(pending, counts[index])),
                Phase::Answer { next, .. } => sessions[running.session]
                    .take()
                    .map(|s| s.decode_input(*next)),
                Phase::Prompt { .. } => None,
            };
            if let Some(step) = step {
                steps.push(step);
                owners.push(index);
            }
        }
        if !steps.is_empty() {
            let mut stats = lock(&self.shared.stats);
            let n = steps.len().min(stats.steps_by_batch.len());
            stats.steps_by_batch[n - 1] += 1;
        }
        let logits = self.bundle.model.step(&mut steps)?;
        let mut by_job = vec![None; self.running.len()];
        for (index, logits) in owners.into_iter().zip(logits) {
            by_job[index] = logits;
        }
        // Record what the pass put in each cache.
        for (index, running) in self.running.iter_mut().enumerate() {
            let session = &mut self.sessions[running.session];
            match &mut running.phase {
                Phase::Prompt { pending, .. } if counts[index] > 0 => {
                    session.commit_prompt(pending, counts[index])
                }
                Phase::Answer { next, .. } => session.commit_decode(*next),
                Phase::Prompt { .. } => {}
            }
        }
        Ok(by_job)
    }

    /// Advances the oldest job that waits on an image by one encoder block.
    fn encode_one_block(&mut self) {
        let Some(index) = self.running.iter().position(|r| match &r.phase {
            Phase::Prompt { pending, .. } => !pending.images_ready(),
            Phase::Answer { .. } => false,
        }) else {
            return;
        };
        let bundle = self.bundle;
        let running = &mut self.running[index];
        let Phase::Prompt {
            pending, encoding, ..
        } = &mut running.phase
        else {
            return;
        };
        let started = Instant::now();
        let result = encode_block(bundle, &running.job, &running.image_keys, pending, encoding);
        running.timings.vision_ms += started.elapsed().as_secs_f64() * 1e3;
        let listening = match result {
            Ok(encoded) => {
                running.timings.images_encoded += usize::from(encoded);
                let progress = prompt_progress(pending, &running.timings, running.job.images.len());
                running.job.events.send(progress).is_ok()
            }
            Err(e) => {
                let _ = running.job.events.send(JobEvent::Failed(format!("{e:#}")));
                false
            }
        };
        if !listening {
            self.finish(index, None);
        }
    }

    /// Takes job `index`'s results of the last pass: progress while it reads its prompt;
    /// at the prompt's end and for every answering step, the next token.
    fn after_step(
        &mut self,
        index: usize,
        prompt_count: usize,
        logits: Option<Vec<f32>>,
    ) -> Outcome {
        let bundle = self.bundle;
        let interrupted = self.shared.interrupted.load(Ordering::Relaxed);
        let running = &mut self.running[index];
        let now = Instant::now();
        match &mut running.phase {
            Phase::Prompt {
                pending,
                prefill_started,
                ..
            } => {
                if prompt_count == 0 {
                    return Outcome::Continue;
                }
                // Set as the job's first prompt pass began.
                let started = prefill_started.unwrap_or(now);
                if pending.remaining() > 0 {
                    let progress =
                        prompt_progress(pending, &running.timings, running.job.images.len());
                    return if running.job.events.send(progress).is_err() {
                        Outcome::Finished(None)
                    } else {
                        Outcome::Continue
                    };
                }
                running.timings.prefill_ms = now.duration_since(started).as_secs_f64() * 1e3;
            }
            Phase::Answer { .. } => {}
        }
        let Some(logits) = logits else {
            return Outcome::Finished(Some(JobEvent::Failed(
                "the model step returned no logits".into(),
            )));
        };
        let decode_started = match running.phase {
            Phase::Answer { decode_started, .. } => decode_started,
            Phase::Prompt { .. } => now,
        };
        let outcome = running
            .reply
            .next_token(bundle, &running.job, &logits, interrupted);
        match outcome {
            Next::Token(id) => {
                running.phase = Phase::Answer {
                    next: id,
                    decode_started,
                };
                Outcome::Continue
            }
            Next::End(reason) => {
                running.timings.decode_ms = decode_started.elapsed().as_secs_f64() * 1e3;
                running.timings.generated_tokens = running.reply.tokens.len();
                Outcome::Finished(running.reply.finish(reason, &running.job, &running.timings))
            }
        }
    }
}

/// Runs one encoder block of the job's next image (starting it, or taking its output from
/// the vision cache); true when that finished encoding an image.
fn encode_block(
    bundle: &ModelBundle,
    job: &Job,
    image_keys: &[u64],
    pending: &mut PendingPrompt,
    encoding: &mut Option<(usize, VisionProgress)>,
) -> anyhow::Result<bool> {
    let vision = &bundle.model.vision;
    if encoding.is_none() {
        let Some((index, key)) = pending.next_image_to_encode() else {
            return Ok(false);
        };
        if let Some(output) = bundle.vision_cache.get(key) {
            pending.set_image(index, output)?;
            return Ok(false);
        }
        let pixels = &job.images[index];
        *encoding = Some((
            index,
            vision.start(&pixels.data, pixels.grid_thw[1], pixels.grid_thw[2])?,
        ));
    }
    let Some((index, progress)) = encoding.as_mut() else {
        return Ok(false);
    };
    if !vision.advance(progress) {
        return Ok(false);
    }
    let index = *index;
    let Some((_, progress)) = encoding.take() else {
        return Ok(false);
    };
    let output = Arc::new(vision.finish(progress));
    bundle
        .vision_cache
        .insert(image_keys[index], output.clone());
    pending.set_image(index, output)?;
    Ok(true)
}

/// Prompt tokens a job gives a pass: all it has left when that fits in `budget`, else
/// the budget cut back to end where the cache position is a multiple of `chunk` (at
/// least up to the first such boundary), so its pieces do not depend on the budget.
fn pieces_within(done: usize, remaining: usize, budget: usize, chunk: usize) -> usize {
    if remaining <= budget {
        return remaining;
    }
    let end = done + budget;
    let aligned = end - end % chunk;
    let first_boundary = (done / chunk + 1) * chunk;
    (aligned.max(first_boundary) - done).min(remaining)
}

fn prompt_progress(pending: &PendingPrompt, timings: &Timings, images: usize) -> JobEvent {
    JobEvent::Progress {
        processed: pending.done(),
        total: pending.len(),
        cached: timings.cached_prompt_tokens,
        images_encoded: images - pending.images_waiting(),
        images,
    }
}

/// What the sampler decided after a pass.
enum Next {
    /// Stream this token and feed it next.
    Token(u32),
    End(End),
}

enum End {
    Eos,
    Length,
    StopString(String),
    /// The grammar of a structured answer failed (a bug, not an input error).
    Failed(String),
    ClientGone,
    Interrupted,
}

impl Reply<'_> {
    /// Samples the next token from `logits` and streams what it completes.
    fn next_token(
        &mut self,
        bundle: &ModelBundle,
        job: &Job,
        logits: &[f32],
        interrupted: bool,
    ) -> Next {
        if self.tokens.len() >= job.params.max_tokens {
            return Next::End(End::Length);
        }
        let eos = &bundle.special.eos;
        let shaped = match self.shaped_logits(job, logits, eos) {
            Ok(shaped) => shaped,
            Err(e) => return Next::End(End::Failed(format!("structured output: {e:#}"))),
        };
        let id = self.sampler.sample(
            shaped.as_deref().unwrap_or(logits),
            &job.prompt.ids,
            &self.tokens,
        );
        if eos.contains(&id) {
            return Next::End(End::Eos);
        }
        if let Some(constraint) = &mut self.constraint {
            if let Err(e) = constraint.accept(id) {
                return Next::End(End::Failed(format!("structured output: {e:#}")));
            }
        }
        self.tokens.push(id);
        if let Some(top) = job.logprobs {
            self.pending_logprobs
                .push(token_logprob(bundle, id, logits, top));
        }
        let piece = match self.decoder.push(id) {
            Ok(piece) => piece.unwrap_or_default(),
            Err(_) => String::new(),
        };
        let (text, stopped) = match self.stop.push(&piece) {
            StopOutcome::Emit(text) => (text, None),
            StopOutcome::Stopped { text, stop } => (text, Some(stop)),
        };
        if !self.send(job, text) {
            return Next::End(End::ClientGone);
        }
        if let Some(stop) = stopped {
            Next::End(End::StopString(stop))
        } else if interrupted {
            Next::End(End::Interrupted)
        } else if self.tokens.len() >= job.params.max_tokens {
            Next::End(End::Length)
        } else {
            Next::Token(id)
        }
    }

    /// The logits the sampler sees, when the job changes them: end of turn removed
    /// (`ignore_eos`), biases added, tokens the grammar forbids removed.
    fn shaped_logits(
        &mut self,
        job: &Job,
        logits: &[f32],
        eos: &[u32],
    ) -> anyhow::Result<Option<Vec<f32>>> {
        if !job.params.ignore_eos && job.logit_bias.is_empty() && self.constraint.is_none() {
            return Ok(None);
        }
        let mut shaped = if job.params.ignore_eos {
            without_end_of_turn(logits, eos)
        } else {
            logits.to_vec()
        };
        for &(id, bias) in &job.logit_bias {
            if let Some(logit) = shaped.get_mut(id as usize) {
                *logit += bias;
            }
        }
        if let Some(constraint) = &mut self.constraint {
            constraint.mask(&mut shaped)?;
        }
        Ok(Some(shaped))
    }

    /// Sends a delta (if there is anything to send); false when the client is gone.
    fn send(&mut self, job: &Job, text: String) -> bool {
        if text.is_empty() && self.pending_logprobs.is_empty() {
            return true;
        }
        job.events
            .send(JobEvent::Delta {
                text,
                logprobs: std::mem::take(&mut self.pending_logprobs),
            })
            .is_ok()
    }

    /// Flushes the held-back text and makes the final event.
    fn finish(&mut self, end: End, job: &Job, timings: &Timings) -> Option<JobEvent> {
        let (finish_reason, stop_sequence) = match end {
            End::ClientGone => return None,
            End::Interrupted => return Some(JobEvent::Interrupted),
            End::Failed(message) => return Some(JobEvent::Failed(message)),
            End::StopString(stop) => (FinishReason::Stop, Some(stop)),
            End::Eos => (FinishReason::Stop, self.flush(job)),
            End::Length => match self.flush(job) {
                Some(stop) => (FinishReason::Stop, Some(stop)),
                None => (FinishReason::Length, None),
            },
        };
        Some(JobEvent::Done {
            finish_reason,
            stop_sequence,
            completion_tokens: self.tokens.len(),
            timings: timings.clone(),
        })
    }

    /// Sends the decoder's and stop matcher's held-back text; the stop string that turned
    /// up in it, if one did.
    fn flush(&mut self, job: &Job) -> Option<String> {
        let tail = std::mem::replace(&mut self.decoder, self.tokenizer.stream_decoder(true))
            .finish()
            .unwrap_or_default();
        let (text, stopped) = match self.stop.push(&tail) {
            StopOutcome::Emit(text) => (
                text + &std::mem::replace(&mut self.stop, StopMatcher::new(&[])).finish(),
                None,
            ),
            StopOutcome::Stopped { text, stop } => (text, Some(stop)),
        };
        self.send(job, text);
        stopped
    }
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

#[cfg(test)]
mod tests {
    use super::pieces_within;

    #[test]
    fn a_prompt_piece_ends_at_a_chunk_boundary_unless_the_prompt_ends_first() {
        // All that is left fits.
        assert_eq!(pieces_within(3, 14, 16, 8), 14);
        // Cut back to the last boundary the budget reaches: 3 + 20 = 23 → 16.
        assert_eq!(pieces_within(3, 100, 20, 8), 13);
        // A budget short of the next boundary still reaches it: 3 + 2 = 5 → 8.
        assert_eq!(pieces_within(3, 100, 2, 8), 5);
        // From a boundary, whole chunks.
        assert_eq!(pieces_within(16, 100, 30, 8), 24);
        // Never past the prompt's end.
        assert_eq!(pieces_within(3, 4, 2, 8), 4);
        // Every cut lands on a multiple of the chunk (or the end), whatever the budget.
        for budget in 1..40 {
            let (mut done, end) = (5, 90);
            while done < end {
                let n = pieces_within(done, end - done, budget, 8);
                assert!(n > 0);
                done += n;
                assert!(
                    done == end || done % 8 == 0,
                    "budget {budget}: cut at {done}"
                );
            }
        }
    }
}
