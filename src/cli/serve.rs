//! `glimpse serve`: the flags of the HTTP service and their defaults, mapped onto
//! `server::ServerConfig`. Limits are documented here, in `--help`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, ensure, Result};
use clap::Args;

use super::model_path::ModelArgs;
use crate::engine::threads::init_thread_pool;
use crate::server::{
    serve, ApiKeys, CorsPolicy, HostPattern, Limits, RequestLog, ServerConfig, TlsFiles, UrlPolicy,
    LARGEST_DRAINABLE_BODY,
};

const MB: usize = 1 << 20;
/// Larger bodies are always refused (see `LARGEST_DRAINABLE_BODY`).
const MAX_BODY_MB: usize = LARGEST_DRAINABLE_BODY / MB;

#[derive(Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on; 0 picks a free one (the URL is printed once the model is loaded).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Serve https (API and web chat) with this PEM certificate chain, server certificate
    /// first. Needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert (PKCS #8, PKCS #1 or SEC1; not encrypted).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Compute threads (default: physical cores).
    #[arg(long, env = "GLIMPSE_THREADS")]
    threads: Option<usize>,
    /// Context size in tokens, prompt and answer together: longer prompts are refused (400),
    /// max_tokens is capped to what is left.
    #[arg(long, default_value_t = 8192)]
    ctx: usize,
    /// Require this key on the API, as `Authorization: Bearer KEY` or `x-api-key: KEY`
    /// (401 otherwise); /health stays open. Repeat for several keys.
    #[arg(
        long,
        env = "GLIMPSE_API_KEY",
        hide_env_values = true,
        value_name = "KEY"
    )]
    api_key: Vec<String>,
    /// Also accept the keys in this file, one per line (`#` comments); the file is read
    /// again on SIGHUP, so keys can be added or revoked without a restart.
    #[arg(long, env = "GLIMPSE_API_KEY_FILE", value_name = "FILE")]
    api_key_file: Option<PathBuf>,
    /// Let browser pages of this origin (`https://app.example.com`; repeatable; `*` for any)
    /// call the API. Default: any origin when listening on a loopback address, none
    /// otherwise (the server's own chat page needs none).
    #[arg(long, value_name = "ORIGIN")]
    cors_origin: Vec<String>,
    /// Requests generated at the same time, each with its own KV cache.
    #[arg(long, default_value_t = 1)]
    parallel: usize,
    /// Requests that may wait for a free slot; more are refused with 429 and Retry-After.
    #[arg(long, default_value_t = 16)]
    max_queue: usize,
    /// Do not serve the web chat at `/`.
    #[arg(long)]
    no_webui: bool,
    /// Largest request body in MiB (base64 images included); larger ones get 413.
    #[arg(long, default_value_t = 32)]
    max_body_mb: usize,
    /// Most images in one request (400 beyond).
    #[arg(long, default_value_t = 8)]
    max_images: usize,
    /// Largest image accepted, in decoded pixels (width × height); larger images are
    /// refused with 400, before being decoded.
    #[arg(long, default_value_t = 50_000_000)]
    max_image_pixels: u64,
    /// Fewest vision tokens per image by default (one token covers 32×32 pixels): smaller
    /// images are upscaled, as the HF processor's `min_pixels` does. Default: the model's (64).
    /// Requests may set their own with `min_pixels` / `max_pixels` / `detail`.
    #[arg(long)]
    image_min_tokens: Option<usize>,
    /// Most vision tokens per image by default: larger images are downscaled (aspect kept),
    /// as the HF processor's `max_pixels` does. Default: the model's (16384). Fewer tokens
    /// answer faster; more help small text and precise boxes.
    #[arg(long)]
    image_max_tokens: Option<usize>,
    /// Refuse http(s) image URLs (images must come as base64 / data URIs).
    #[arg(long)]
    no_image_urls: bool,
    /// Fetch image URLs from any address: loopback, private networks (RFC 1918, CGNAT),
    /// link-local (cloud metadata), unique-local IPv6 … are refused by default, so that API
    /// clients cannot reach the server's own network. For trusted clients only.
    #[arg(long)]
    image_url_allow_private: bool,
    /// Fetch image URLs only from these hosts (comma-separated or repeated; `*.example.com`
    /// for every subdomain). Redirects must stay on them too. Default: any public host.
    #[arg(long, value_delimiter = ',', value_name = "HOSTS")]
    image_url_domains: Vec<String>,
    /// Largest image download from a URL, in MiB.
    #[arg(long, default_value_t = 20)]
    max_image_download_mb: usize,
    /// Time limit in seconds for downloading one image URL.
    #[arg(long, default_value_t = 10)]
    image_download_timeout: u64,
    /// On SIGTERM / Ctrl-C: seconds the requests in flight may take to finish before they
    /// are interrupted (new requests are refused with 503 meanwhile).
    #[arg(long, default_value_t = 30)]
    shutdown_timeout: u64,
    /// Seconds a request body may take to arrive (408 after), and that a connection may
    /// stall (no byte read or written) before it is dropped.
    #[arg(long, default_value_t = 60)]
    request_timeout: u64,
    /// Log every request (health checks and metrics scrapes too) with per-stage timings
    /// and the user agent. GLIMPSE_LOG=off|info|debug sets the level, GLIMPSE_LOG_FORMAT=json
    /// writes JSON lines instead of key=value text.
    #[arg(short, long)]
    verbose: bool,
}

pub fn run(args: ServeArgs) -> Result<()> {
    ensure!(args.parallel >= 1, "--parallel must be at least 1");
    ensure!(args.ctx >= 2, "--ctx must be at least 2 tokens");
    ensure!(
        args.request_timeout >= 1,
        "--request-timeout must be at least 1 second"
    );
    ensure!(
        (1..=MAX_BODY_MB).contains(&args.max_body_mb),
        "--max-body-mb must be from 1 to {MAX_BODY_MB}"
    );
    let log = RequestLog::from_settings(
        std::env::var("GLIMPSE_LOG").ok().as_deref(),
        std::env::var("GLIMPSE_LOG_FORMAT").ok().as_deref(),
        args.verbose,
    )?;
    let image_url_policy = UrlPolicy {
        allow_private: args.image_url_allow_private,
        domains: args
            .image_url_domains
            .iter()
            .filter(|d| !d.trim().is_empty())
            .map(|d| HostPattern::parse(d).map_err(|e| anyhow!("--image-url-domains: {e}")))
            .collect::<Result<_>>()?,
    };
    init_thread_pool(args.threads)?;
    let model_path = args.model.resolve()?;
    serve(ServerConfig {
        model_id: args.model.name(),
        model_path,
        mmproj_path: args.model.mmproj.clone(),
        host: args.host,
        port: args.port,
        tls: args
            .tls_cert
            .zip(args.tls_key)
            .map(|(certificate, private_key)| TlsFiles {
                certificate,
                private_key,
            }),
        context_length: args.ctx,
        api_keys: Arc::new(ApiKeys::new(args.api_key, args.api_key_file)?),
        cors: CorsPolicy::from_flags(&args.cors_origin)
            .map_err(|e| anyhow!("--cors-origin: {e}"))?,
        parallel: args.parallel,
        max_queue: args.max_queue,
        webui: !args.no_webui,
        limits: Limits {
            max_body_bytes: args.max_body_mb.saturating_mul(MB),
            max_images: args.max_images,
            max_image_pixels: args.max_image_pixels,
            image_min_tokens: args.image_min_tokens,
            image_max_tokens: args.image_max_tokens,
            allow_image_urls: !args.no_image_urls,
            image_url_policy,
            max_image_download_bytes: args.max_image_download_mb.saturating_mul(MB),
            image_download_timeout: Duration::from_secs(args.image_download_timeout),
            request_timeout: Duration::from_secs(args.request_timeout),
        },
        shutdown_grace: Duration::from_secs(args.shutdown_timeout),
        log,
    })
}
