//! What every request handler shares: the server's settings, the metrics, the image
//! fetcher, the model once it has loaded (absent before, so `/health` can answer 503
//! while the port is already open), and the shutdown state (draining, requests in flight).
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use super::image_fetch::ImageFetcher;
use super::metrics::{Gauges, Metrics};
use super::ServerConfig;
use crate::engine::scheduler::{Scheduler, SchedulerStats};
use crate::engine::ModelBundle;
use crate::preprocess::PreprocessConfig;

/// The loaded model and the slots that run it.
pub struct LoadedModel {
    pub bundle: Arc<ModelBundle>,
    pub scheduler: Scheduler,
    /// The model's image-processor settings with the server's pixel budget applied.
    pub image_config: PreprocessConfig,
}

pub struct AppState {
    pub config: ServerConfig,
    pub metrics: Arc<Metrics>,
    pub fetcher: ImageFetcher,
    /// Unix time the server started (the model's `created` in `/v1/models`).
    pub started: u64,
    model: OnceLock<LoadedModel>,
    /// Set when a shutdown began: new API requests are refused with 503.
    draining: AtomicBool,
    /// Requests being handled or written (streams included).
    in_flight: AtomicUsize,
}

/// Counts a request as in flight for as long as it lives.
pub struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl AppState {
    pub fn new(config: ServerConfig) -> Self {
        let fetcher = ImageFetcher::new(
            config.limits.allow_image_urls,
            config.limits.image_url_policy.clone(),
            config.limits.max_image_download_bytes,
            config.limits.image_download_timeout,
        );
        Self {
            config,
            metrics: Arc::new(Metrics::default()),
            fetcher,
            started: super::response::unix_time(),
            model: OnceLock::new(),
            draining: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
        }
    }

    /// Marks a request as in flight until the returned guard is dropped.
    pub fn begin_request(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(&self.in_flight)
    }

    pub fn requests_in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// From now on API requests are refused (503 `shutting_down`) and `/health` is 503.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// The model, or `None` while it is loading.
    pub fn model(&self) -> Option<&LoadedModel> {
        self.model.get()
    }

    /// Publishes the loaded model; from now on the API answers.
    pub fn set_model(&self, model: LoadedModel) {
        // A second load never happens: `serve` loads exactly once.
        let _ = self.model.set(model);
    }

    pub fn gauges(&self) -> Gauges {
        match self.model() {
            Some(model) => Gauges {
                model_loaded: true,
                queue_depth: model.scheduler.queue_depth(),
                vision_cache_bytes: model.bundle.vision_cache.bytes(),
                active_slots: model.scheduler.active(),
                scheduler: model.scheduler.stats(),
            },
            None => Gauges {
                model_loaded: false,
                queue_depth: 0,
                vision_cache_bytes: 0,
                active_slots: 0,
                scheduler: SchedulerStats::default(),
            },
        }
    }
}
