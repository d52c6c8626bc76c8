//! What every request handler shares: the server's settings, the metrics, the image
//! fetcher, and the model once it has loaded (absent before, so `/health` can answer
//! 503 while the port is already open).
use std::sync::{Arc, OnceLock};

use super::image_fetch::ImageFetcher;
use super::metrics::{Gauges, Metrics};
use super::ServerConfig;
use crate::engine::scheduler::Scheduler;
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
}

impl AppState {
    pub fn new(config: ServerConfig) -> Self {
        let fetcher = ImageFetcher::new(
            config.limits.allow_image_urls,
            config.limits.max_image_download_bytes,
            config.limits.image_download_timeout,
        );
        Self {
            config,
            metrics: Arc::new(Metrics::default()),
            fetcher,
            started: super::response::unix_time(),
            model: OnceLock::new(),
        }
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
            },
            None => Gauges {
                model_loaded: false,
                queue_depth: 0,
                vision_cache_bytes: 0,
            },
        }
    }
}
