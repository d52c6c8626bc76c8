//! Downloads the http(s) image URLs of requests with a size cap and an overall time
//! limit (both from the command line), following at most a few redirects. Fetching can
//! be switched off (`--no-image-urls`) where the server must not reach other hosts.
use std::time::Duration;

use ureq::Agent;

/// Redirects followed before giving up.
const MAX_REDIRECTS: u32 = 3;

pub struct ImageFetcher {
    /// `None` when URL images are disabled.
    agent: Option<Agent>,
    max_bytes: usize,
}

impl ImageFetcher {
    pub fn new(enabled: bool, max_bytes: usize, timeout: Duration) -> Self {
        let agent = enabled.then(|| {
            Agent::config_builder()
                .timeout_global(Some(timeout))
                .max_redirects(MAX_REDIRECTS)
                .user_agent(concat!("glimpse/", env!("CARGO_PKG_VERSION")))
                .build()
                .into()
        });
        Self { agent, max_bytes }
    }

    /// The bytes at `url`; the error says why there are none.
    pub fn fetch(&self, url: &str) -> Result<Vec<u8>, String> {
        let agent = self.agent.as_ref().ok_or_else(|| {
            "image URLs are disabled on this server (--no-image-urls); send the image as base64"
                .to_owned()
        })?;
        let mut response = agent
            .get(url)
            .call()
            .map_err(|e| format!("cannot fetch '{url}': {e}"))?;
        response
            .body_mut()
            .with_config()
            .limit(self.max_bytes as u64)
            .read_to_vec()
            .map_err(|e| match e {
                ureq::Error::BodyExceedsLimit(_) => format!(
                    "the image at '{url}' is larger than {} bytes (--max-image-download-mb)",
                    self.max_bytes
                ),
                other => format!("cannot download '{url}': {other}"),
            })
    }
}
