//! `glimpse serve`: the OpenAI-compatible HTTP service (tiny_http). The port is bound
//! first and the model loaded behind it (`/health` answers 503 until then). Requests and
//! responses only: the engine (`Scheduler`, `ModelBundle`) does the work; nothing here
//! knows tensors. Files: `routes` (what answers what), `request`/`messages` (parsing),
//! `completion`/`sse` (answers), `transport` (tiny_http, with TLS by rustls), `metrics`;
//! exposure on a network: `auth` (API keys), `cors`, `url_policy` + `image_fetch` (which
//! image URLs are fetched).
mod answer_stream;
mod anthropic;
mod auth;
mod completion;
mod connection_socket;
mod cors;
mod detections;
mod errors;
mod fields;
mod image_budget;
mod image_fetch;
mod image_source;
mod messages;
mod metrics;
mod ollama;
mod reasoning;
mod reply;
mod request;
mod request_log;
mod response;
mod routes;
mod shutdown;
mod sse;
mod state;
mod text_completion;
mod tokenize;
mod tool_calls;
mod transport;
mod url_policy;
#[cfg(feature = "webui")]
mod webui;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};

use crate::engine::scheduler::Scheduler;
use crate::engine::ModelBundle;
use crate::preprocess::PreprocessConfig;
pub use auth::ApiKeys;
pub use cors::CorsPolicy;
pub use request_log::RequestLog;
use state::{AppState, LoadedModel};
pub use transport::LARGEST_DRAINABLE_BODY;
pub use url_policy::{HostPattern, UrlPolicy};

/// Request limits (see `glimpse serve --help` for the flags and defaults).
#[derive(Clone, Debug)]
pub struct Limits {
    /// Larger bodies are refused with 413.
    pub max_body_bytes: usize,
    /// More images in one request are refused with 400.
    pub max_images: usize,
    /// Images whose decoded size is larger are refused with 400 (before decoding).
    pub max_image_pixels: u64,
    /// Default resolution bounds in vision tokens per image (`--image-min-tokens`,
    /// `--image-max-tokens`); `None` keeps the model's own. Requests may ask for others.
    pub image_min_tokens: Option<usize>,
    pub image_max_tokens: Option<usize>,
    pub allow_image_urls: bool,
    /// Which URLs may be fetched (addresses, hosts).
    pub image_url_policy: UrlPolicy,
    pub max_image_download_bytes: usize,
    pub image_download_timeout: Duration,
    /// A request body must arrive within this time (408 otherwise), and a connection on
    /// which no byte moves for this long (a client not reading its answer) is dropped.
    pub request_timeout: Duration,
}

#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// The GGUF file to serve.
    pub model_path: PathBuf,
    /// The vision projector when the model is llama.cpp's text + mmproj pair.
    pub mmproj_path: Option<PathBuf>,
    /// The model's name in responses and `/v1/models`.
    pub model_id: String,
    pub host: String,
    pub port: u16,
    /// Serve https with this certificate chain and key (PEM files) instead of http.
    pub tls: Option<TlsFiles>,
    /// Tokens of prompt plus answer one request may use.
    pub context_length: usize,
    /// The keys that open the API (none: open).
    pub api_keys: Arc<ApiKeys>,
    /// Which web origins may call the API from a browser (`--cors-origin`).
    pub cors: CorsPolicy,
    /// Generation slots (requests generated at once).
    pub parallel: usize,
    /// Requests that may wait for a slot; more are refused with 429.
    pub max_queue: usize,
    /// Serve the web chat at `/` (only with the `webui` feature).
    pub webui: bool,
    pub limits: Limits,
    /// On SIGTERM / Ctrl-C, how long requests in flight may take to finish before they
    /// are interrupted.
    pub shutdown_grace: Duration,
    pub log: RequestLog,
}

/// `--tls-cert` / `--tls-key`.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// PEM certificate chain, the server's certificate first.
    pub certificate: PathBuf,
    /// PEM private key (PKCS #8, PKCS #1 or SEC1).
    pub private_key: PathBuf,
}

/// HTTP worker threads besides the ones busy with generations (health checks, refusals).
const SPARE_WORKERS: usize = 4;

/// Binds, loads the model, prints `glimpse listening on http://HOST:PORT`, then serves
/// until SIGTERM / SIGINT, after which it drains (see `shutdown`) and returns `Ok`.
/// A model that fails to load is returned as the error.
pub fn serve(mut config: ServerConfig) -> Result<()> {
    let signal = shutdown::ShutdownSignal::install()?;
    let server = listen(&config)?;
    let address: SocketAddr = server
        .server_addr()
        .to_ip()
        .context("the listener has no IP address")?;
    config.cors = config.cors.clone().for_address(address.ip());
    if config.cors == CorsPolicy::NoOrigin {
        eprintln!("glimpse: note: listening on {address}: browser pages of other origins may not call the API (--cors-origin ORIGIN allows one)");
    }
    let reaper = connection_socket::Reaper::new(address, config.limits.request_timeout);
    reaper.start().context("starting the connection reaper")?;
    let server = Arc::new(server);
    let workers = config.parallel + config.max_queue + SPARE_WORKERS;
    let state = Arc::new(AppState::new(config));
    for index in 0..workers {
        let (server, state, reaper) = (server.clone(), state.clone(), reaper.clone());
        std::thread::Builder::new()
            .name(format!("glimpse-http-{index}"))
            .spawn(move || transport::run_worker(&server, &state, &reaper))
            .context("starting an HTTP worker thread")?;
    }

    let config = &state.config;
    auth::watch_key_file(config.api_keys.clone())?;
    if !address.ip().is_loopback() && !config.api_keys.required() {
        eprintln!("glimpse: warning: listening on {address} without --api-key; anyone who can reach it can use it");
    }
    eprintln!(
        "glimpse: loading {} (GET /health answers 503 until it is ready)",
        config.model_path.display()
    );
    let bundle = Arc::new(ModelBundle::load(
        &config.model_path,
        config.mmproj_path.as_deref(),
    )?);
    let image_config = server_image_config(&bundle.preprocess, &config.limits)?;
    let scheduler = Scheduler::start(bundle.clone(), config.parallel, config.max_queue)
        .context("starting the generation threads")?;
    state.set_model(LoadedModel {
        bundle,
        scheduler,
        image_config,
    });
    if !signal.received() {
        let scheme = if config.tls.is_some() {
            "https"
        } else {
            "http"
        };
        eprintln!("glimpse listening on {scheme}://{address}");
        signal.wait();
    }
    shutdown::drain(&state, state.config.shutdown_grace);
    Ok(())
}

/// Binds the listening socket, with TLS when `--tls-cert` / `--tls-key` are given.
fn listen(config: &ServerConfig) -> Result<tiny_http::Server> {
    let address = (config.host.as_str(), config.port);
    let listening = match &config.tls {
        None => tiny_http::Server::http(address),
        Some(files) => {
            let read = |path: &PathBuf, flag: &str| {
                std::fs::read(path).with_context(|| format!("{flag}: reading {}", path.display()))
            };
            let tls = tiny_http::SslConfig {
                certificate: read(&files.certificate, "--tls-cert")?,
                private_key: read(&files.private_key, "--tls-key")?,
            };
            tiny_http::Server::https(address, tls)
        }
    };
    listening.map_err(|e| anyhow!("cannot listen on {}:{}: {e}", config.host, config.port))
}

/// The model's image settings with the server's default bounds (`--image-min-tokens`,
/// `--image-max-tokens`) applied.
fn server_image_config(model: &PreprocessConfig, limits: &Limits) -> Result<PreprocessConfig> {
    model
        .with_token_bounds(limits.image_min_tokens, limits.image_max_tokens)
        .context("--image-min-tokens / --image-max-tokens")
}
