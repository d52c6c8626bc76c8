//! Service metrics in the Prometheus text format (`GET /metrics`): requests by route and
//! status, token counters, time to first token and vision / prefill / decode seconds as
//! histograms, and gauges (queue depth, active generations, vision-cache bytes).
//! `GenerationTracker` records one generation as its events arrive.
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::request_log::{GenerationSlot, GenerationSummary};
use crate::engine::scheduler::SchedulerStats;
use crate::engine::{FinishReason, Timings};

/// Upper bounds (seconds) of the histogram buckets.
const BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        for (count, bound) in self.counts.iter_mut().zip(BUCKETS) {
            if seconds <= bound {
                *count += 1;
            }
        }
        self.sum += seconds;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (count, bound) in self.counts.iter().zip(BUCKETS) {
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {count}");
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum {}", self.sum);
        let _ = writeln!(out, "{name}_count {}", self.count);
    }
}

#[derive(Default)]
struct Registry {
    requests: BTreeMap<(&'static str, u16), u64>,
    prompt_tokens: u64,
    cached_prompt_tokens: u64,
    completion_tokens: u64,
    images_encoded: u64,
    time_to_first_token: Histogram,
    vision: Histogram,
    prefill: Histogram,
    decode: Histogram,
}

#[derive(Default)]
pub struct Metrics {
    registry: Mutex<Registry>,
    active: AtomicUsize,
}

/// Values read from the engine when the metrics are scraped.
pub struct Gauges {
    pub model_loaded: bool,
    pub queue_depth: usize,
    pub vision_cache_bytes: usize,
    /// Sessions answering a job now.
    pub active_slots: usize,
    pub scheduler: SchedulerStats,
}

impl Metrics {
    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts an answered request; `route` is a fixed label, never the raw path.
    pub fn record_request(&self, route: &'static str, status: u16) {
        *self.registry().requests.entry((route, status)).or_default() += 1;
    }

    /// Starts tracking one generation (counted as active until the tracker is dropped).
    pub fn track_generation(self: &Arc<Self>, received: Instant) -> GenerationTracker {
        self.active.fetch_add(1, Ordering::Relaxed);
        GenerationTracker {
            metrics: self.clone(),
            received,
            first_token: None,
            summary: GenerationSlot::default(),
        }
    }

    pub fn render(&self, gauges: &Gauges) -> String {
        let registry = self.registry();
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP glimpse_requests_total HTTP requests answered, by route and status.\n# TYPE glimpse_requests_total counter"
        );
        for ((route, status), count) in &registry.requests {
            let _ = writeln!(
                out,
                "glimpse_requests_total{{route=\"{route}\",status=\"{status}\"}} {count}"
            );
        }
        let counters = [
            (
                "glimpse_prompt_tokens_total",
                "Prompt tokens of finished generations.",
                registry.prompt_tokens,
            ),
            (
                "glimpse_cached_prompt_tokens_total",
                "Prompt tokens reused from the KV cache.",
                registry.cached_prompt_tokens,
            ),
            (
                "glimpse_completion_tokens_total",
                "Generated tokens.",
                registry.completion_tokens,
            ),
            (
                "glimpse_images_encoded_total",
                "Images that went through the vision encoder (cache misses).",
                registry.images_encoded,
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        }
        registry.time_to_first_token.render(
            &mut out,
            "glimpse_time_to_first_token_seconds",
            "From request received to first generated token.",
        );
        registry.vision.render(
            &mut out,
            "glimpse_vision_seconds",
            "Vision encoder time per request.",
        );
        registry.prefill.render(
            &mut out,
            "glimpse_prefill_seconds",
            "Prompt processing time per request.",
        );
        registry.decode.render(
            &mut out,
            "glimpse_decode_seconds",
            "Token generation time per request.",
        );
        let gauges_scheduler = gauges.scheduler.clone();
        let gauges = [
            (
                "glimpse_active_slots",
                "Generation slots answering a request now.",
                gauges.active_slots,
            ),
            (
                "glimpse_model_loaded",
                "1 once the model is loaded.",
                usize::from(gauges.model_loaded),
            ),
            (
                "glimpse_queue_depth",
                "Requests waiting for a generation slot.",
                gauges.queue_depth,
            ),
            (
                "glimpse_active_generations",
                "Requests queued or generating.",
                self.active.load(Ordering::Relaxed),
            ),
            (
                "glimpse_vision_cache_bytes",
                "Bytes held by the vision-output cache.",
                gauges.vision_cache_bytes,
            ),
        ];
        for (name, help, value) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        }
        render_scheduler(&mut out, &gauges_scheduler);
        out
    }
}

/// The engine loop's counters: model steps by the number of sequences they carried (the
/// batch size histogram) and the time admitted requests waited in the queue.
fn render_scheduler(out: &mut String, stats: &SchedulerStats) {
    let _ = writeln!(
        out,
        "# HELP glimpse_batch_steps_total Model steps, by how many sequences shared them.\n# TYPE glimpse_batch_steps_total counter"
    );
    for (i, steps) in stats.steps_by_batch.iter().enumerate() {
        let _ = writeln!(
            out,
            "glimpse_batch_steps_total{{sequences=\"{}\"}} {steps}",
            i + 1
        );
    }
    let _ = writeln!(
        out,
        "# HELP glimpse_queue_wait_seconds Time requests waited for a generation slot.\n# TYPE glimpse_queue_wait_seconds summary\nglimpse_queue_wait_seconds_sum {}\nglimpse_queue_wait_seconds_count {}",
        stats.queue_wait_seconds, stats.admitted
    );
}

/// One generation's metrics, fed from its events.
pub struct GenerationTracker {
    metrics: Arc<Metrics>,
    received: Instant,
    first_token: Option<Duration>,
    /// What the request log reports once the generation is done.
    summary: GenerationSlot,
}

impl GenerationTracker {
    /// Notes a generated delta (the first one sets the time to first token).
    pub fn on_delta(&mut self) {
        if self.first_token.is_none() {
            self.first_token = Some(self.received.elapsed());
        }
    }

    /// Milliseconds since the request arrived.
    pub fn elapsed_ms(&self) -> f64 {
        self.received.elapsed().as_secs_f64() * 1e3
    }

    /// Time from the request to the first token, or to now when none came.
    pub fn time_to_first_token(&self) -> Duration {
        self.first_token.unwrap_or_else(|| self.received.elapsed())
    }

    /// Where the finished generation's summary will be, for the request log.
    pub fn summary(&self) -> GenerationSlot {
        self.summary.clone()
    }

    /// Records a finished generation.
    pub fn on_done(
        &self,
        completion_tokens: usize,
        finish_reason: FinishReason,
        timings: &Timings,
    ) {
        *self.summary.lock().unwrap_or_else(|p| p.into_inner()) = Some(GenerationSummary {
            completion_tokens,
            finish_reason,
            timings: timings.clone(),
            ttft_ms: self.time_to_first_token().as_secs_f64() * 1e3,
        });
        let mut registry = self.metrics.registry();
        registry.prompt_tokens += timings.prompt_tokens as u64;
        registry.cached_prompt_tokens += timings.cached_prompt_tokens as u64;
        registry.completion_tokens += completion_tokens as u64;
        registry.images_encoded += timings.images_encoded as u64;
        if let Some(first) = self.first_token {
            registry.time_to_first_token.observe(first.as_secs_f64());
        }
        registry.vision.observe(timings.vision_ms / 1e3);
        registry.prefill.observe(timings.prefill_ms / 1e3);
        registry.decode.observe(timings.decode_ms / 1e3);
    }
}

impl Drop for GenerationTracker {
    fn drop(&mut self) {
        self.metrics.active.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gauges() -> Gauges {
        Gauges {
            model_loaded: true,
            queue_depth: 2,
            vision_cache_bytes: 4096,
            active_slots: 1,
            scheduler: SchedulerStats {
                steps_by_batch: vec![5, 3],
                admitted: 4,
                queue_wait_seconds: 0.5,
            },
        }
    }

    #[test]
    fn a_finished_generation_shows_in_counters_and_histograms() {
        let metrics = Arc::new(Metrics::default());
        metrics.record_request("/v1/chat/completions", 200);
        metrics.record_request("/v1/chat/completions", 200);
        metrics.record_request("/v1/chat/completions", 429);
        let mut tracker = metrics.track_generation(Instant::now());
        tracker.on_delta();
        tracker.on_done(
            5,
            FinishReason::Stop,
            &Timings {
                vision_ms: 30.0,
                prefill_ms: 200.0,
                decode_ms: 700.0,
                prompt_tokens: 90,
                cached_prompt_tokens: 40,
                generated_tokens: 5,
                images_encoded: 1,
            },
        );
        let text = metrics.render(&gauges());
        for line in [
            "glimpse_requests_total{route=\"/v1/chat/completions\",status=\"200\"} 2",
            "glimpse_requests_total{route=\"/v1/chat/completions\",status=\"429\"} 1",
            "glimpse_prompt_tokens_total 90",
            "glimpse_cached_prompt_tokens_total 40",
            "glimpse_completion_tokens_total 5",
            "glimpse_images_encoded_total 1",
            "glimpse_vision_seconds_bucket{le=\"0.025\"} 0",
            "glimpse_vision_seconds_bucket{le=\"0.05\"} 1",
            "glimpse_prefill_seconds_count 1",
            "glimpse_decode_seconds_sum 0.7",
            "glimpse_time_to_first_token_seconds_count 1",
            "glimpse_queue_depth 2",
            "glimpse_active_generations 1",
            "glimpse_vision_cache_bytes 4096",
            "glimpse_active_slots 1",
            "glimpse_batch_steps_total{sequences=\"2\"} 3",
            "glimpse_queue_wait_seconds_count 4",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        drop(tracker);
        assert!(metrics
            .render(&gauges())
            .contains("glimpse_active_generations 0"));
    }
}
