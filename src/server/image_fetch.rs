//! Downloads the http(s) image URLs of requests with a size cap and an overall time
//! limit (both from the command line), following at most a few redirects. Every host —
//! the first and each redirect's — goes through the `UrlPolicy` in the name resolver: it
//! is resolved once, its addresses are vetted, and the connection goes to those very
//! addresses (no second lookup that DNS rebinding could answer differently). Proxy
//! settings from the environment are ignored, since a proxy would resolve the host itself.
//! Fetching can be switched off (`--no-image-urls`) where the server must not reach other
//! hosts. Failures carry their detail for the operator's log only: clients get one
//! neutral message (`fetch_failed_message`), whatever happened.
//!
//! The resolver hook is ureq's `unversioned` API (exempt from semver): Cargo.lock pins the
//! version it was written against.
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};
use ureq::Agent;

use super::url_policy::{UrlPolicy, Vetting};

/// Redirects followed before giving up.
const MAX_REDIRECTS: u32 = 3;

/// What a client is told about any URL that did not give an image: the same words for a
/// refused address, a refused host, an unreachable one, an HTTP error, a body too large
/// and bytes that are no image, so the API tells nothing about the server's network.
pub const FETCH_FAILED: &str = "the image URL could not be used (the server does not fetch it, \
     it could not be downloaded, or it is not an image); send the image as base64 instead";

pub struct ImageFetcher {
    /// `None` when URL images are disabled.
    agent: Option<Agent>,
    max_bytes: usize,
}

/// Why a URL gave no bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum FetchError {
    /// `--no-image-urls`.
    Disabled,
    /// Refused or failed; the detail is for the log.
    Failed { detail: String },
}

impl ImageFetcher {
    pub fn new(enabled: bool, policy: UrlPolicy, max_bytes: usize, timeout: Duration) -> Self {
        let agent = enabled.then(|| {
            let config = Agent::config_builder()
                .timeout_global(Some(timeout))
                .max_redirects(MAX_REDIRECTS)
                .proxy(None)
                .user_agent(concat!("glimpse/", env!("CARGO_PKG_VERSION")))
                .build();
            Agent::with_parts(
                config,
                DefaultConnector::default(),
                VettingResolver {
                    policy: Arc::new(policy),
                },
            )
        });
        Self { agent, max_bytes }
    }

    /// The bytes at `url`.
    pub fn fetch(&self, url: &str) -> Result<Vec<u8>, FetchError> {
        let agent = self.agent.as_ref().ok_or(FetchError::Disabled)?;
        let failed = |detail: String| FetchError::Failed {
            detail: format!("{}: {detail}", loggable_url(url)),
        };
        let mut response = agent.get(url).call().map_err(|e| failed(e.to_string()))?;
        response
            .body_mut()
            .with_config()
            .limit(self.max_bytes as u64)
            .read_to_vec()
            .map_err(|e| match e {
                ureq::Error::BodyExceedsLimit(_) => failed(format!(
                    "larger than {} bytes (--max-image-download-mb)",
                    self.max_bytes
                )),
                other => failed(other.to_string()),
            })
    }
}

/// The URL without its query string or user info (which may hold secrets), for the log.
pub fn loggable_url(url: &str) -> String {
    match url.parse::<Uri>() {
        Ok(uri) => {
            format!(
                "{}://{}{}",
                uri.scheme_str().unwrap_or("?"),
                uri.host().unwrap_or("?"),
                uri.port().map(|p| format!(":{p}")).unwrap_or_default()
            ) + uri.path()
        }
        Err(_) => "(unparsable URL)".to_owned(),
    }
}

/// ureq's name resolver with the policy in front: what it returns is what ureq connects to.
#[derive(Debug)]
struct VettingResolver {
    policy: Arc<UrlPolicy>,
}

impl Resolver for VettingResolver {
    fn resolve(
        &self,
        uri: &Uri,
        config: &Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let (Some(scheme), Some(host)) = (uri.scheme_str(), uri.host()) else {
            return Err(ureq::Error::BadUri(format!("{uri} is not an absolute URL")));
        };
        let port = uri
            .port_u16()
            .unwrap_or(if scheme.eq_ignore_ascii_case("https") {
                443
            } else {
                80
            });
        let lookup = || -> Result<Vec<SocketAddr>, ureq::Error> {
            Ok(DefaultResolver::default()
                .resolve(uri, config, timeout)?
                .iter()
                .copied()
                .collect())
        };
        let vetted =
            self.policy
                .vet(scheme, host, port, lookup)
                .map_err(|vetting| match vetting {
                    Vetting::Refused(refusal) => ureq::Error::Io(std::io::Error::new(
                        std::io::ErrorKind::PermissionDenied,
                        format!("refused: {refusal}"),
                    )),
                    Vetting::Lookup(error) => error,
                })?;
        let mut addresses = self.empty();
        for address in vetted {
            if addresses.try_push(address).is_err() {
                break;
            }
        }
        Ok(addresses)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::url_policy::HostPattern;

    /// A loopback HTTP server: `/image` answers bytes, `/redirect` sends to `target`.
    fn serve(target: String) -> String {
        let server = tiny_http::Server::http("127.0.0.1:0").expect("binding a test server");
        let address = server.server_addr().to_ip().expect("an IP listener");
        std::thread::spawn(move || {
            for request in server.incoming_requests() {
                let response = if request.url() == "/redirect" {
                    let location = tiny_http::Header::from_bytes("Location", target.as_bytes())
                        .expect("a header");
                    tiny_http::Response::from_data(Vec::new())
                        .with_status_code(302)
                        .with_header(location)
                } else {
                    tiny_http::Response::from_data(b"image bytes".to_vec())
                };
                let _ = request.respond(response);
            }
        });
        format!("http://{address}")
    }

    fn fetcher(policy: UrlPolicy) -> ImageFetcher {
        ImageFetcher::new(true, policy, 1 << 20, Duration::from_secs(5))
    }

    fn detail(result: Result<Vec<u8>, FetchError>) -> String {
        match result {
            Err(FetchError::Failed { detail }) => detail,
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[test]
    fn loopback_is_refused_by_default_and_fetched_when_private_addresses_are_allowed() {
        let base = serve(String::new());
        let url = format!("{base}/image?token=secret");
        let refused = detail(fetcher(UrlPolicy::default()).fetch(&url));
        assert!(refused.contains("loopback"), "{refused}");
        assert!(
            !refused.contains("secret"),
            "the log hides query strings: {refused}"
        );
        let open = UrlPolicy {
            allow_private: true,
            domains: Vec::new(),
        };
        assert_eq!(fetcher(open).fetch(&url).unwrap(), b"image bytes");
    }

    #[test]
    fn each_redirect_is_vetted_like_the_first_url() {
        // Allowed: 127.0.0.1 by name in the list; the redirect goes to 127.0.0.2, which
        // the list does not name (loopback: no traffic leaves the machine).
        let target_port = serve(String::new()).rsplit(':').next().unwrap().to_owned();
        let base = serve(format!("http://127.0.0.2:{target_port}/image"));
        let listed_only = UrlPolicy {
            allow_private: true,
            domains: vec![HostPattern::parse("127.0.0.1").unwrap()],
        };
        let fetcher = fetcher(listed_only);
        assert_eq!(
            fetcher.fetch(&format!("{base}/image")).unwrap(),
            b"image bytes"
        );
        let refused = detail(fetcher.fetch(&format!("{base}/redirect")));
        assert!(refused.contains("not in --image-url-domains"), "{refused}");
    }

    #[test]
    fn proxies_from_the_environment_are_not_used() {
        let fetcher = fetcher(UrlPolicy::default());
        let agent = fetcher.agent.as_ref().expect("enabled");
        assert!(agent.config().proxy().is_none());
    }

    #[test]
    fn disabled_fetcher_says_so() {
        let fetcher = ImageFetcher::new(false, UrlPolicy::default(), 1, Duration::from_secs(1));
        assert_eq!(
            fetcher.fetch("http://example.com/a.png"),
            Err(FetchError::Disabled)
        );
    }

    #[test]
    fn log_urls_keep_host_port_and_path_only() {
        assert_eq!(
            loggable_url("https://user:pw@example.com:8443/a/b.png?sig=x#frag"),
            "https://example.com:8443/a/b.png"
        );
        assert_eq!(loggable_url("http://[::1]/x"), "http://[::1]/x");
    }
}
