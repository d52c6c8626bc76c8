//! Cross-origin access (CORS): which web pages, other than the server's own chat page, may
//! call the API from a browser. `--cors-origin ORIGIN` (repeatable, `*` for any) lists
//! them. Without it a server bound to a loopback address allows any origin (pages on the
//! same machine, as llama.cpp's server does), and a server bound to any other address
//! allows none: a page on the network cannot make visitors' browsers use it.
use std::net::IpAddr;

/// The origins allowed to call the API from a browser.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CorsPolicy {
    /// No `--cors-origin`: decided by the address bound (`for_address`).
    ByBindAddress,
    AnyOrigin,
    /// Exact origins (`scheme://host[:port]`, lower case).
    Origins(Vec<String>),
    NoOrigin,
}

/// Request headers a pre-flight may ask for when it names none.
const DEFAULT_ALLOWED_HEADERS: &str = "Authorization, Content-Type, X-Api-Key";

impl CorsPolicy {
    /// From the `--cors-origin` values.
    pub fn from_flags(origins: &[String]) -> Result<Self, String> {
        let origins: Vec<String> = origins
            .iter()
            .map(|o| o.trim().trim_end_matches('/').to_ascii_lowercase())
            .filter(|o| !o.is_empty())
            .collect();
        if origins.is_empty() {
            return Ok(Self::ByBindAddress);
        }
        if origins.iter().any(|o| o == "*") {
            return Ok(Self::AnyOrigin);
        }
        for origin in &origins {
            let valid = origin == "null"
                || origin.split_once("://").is_some_and(|(scheme, rest)| {
                    !scheme.is_empty()
                        && !rest.is_empty()
                        && !rest.contains(['/', '?', '#', ' ', '@'])
                });
            if !valid {
                return Err(format!(
                    "'{origin}' is not an origin (expected scheme://host[:port], e.g. https://app.example.com, or *)"
                ));
            }
        }
        Ok(Self::Origins(origins))
    }

    /// The policy for a server bound to `address`.
    pub fn for_address(self, address: IpAddr) -> Self {
        match self {
            Self::ByBindAddress if address.is_loopback() => Self::AnyOrigin,
            Self::ByBindAddress => Self::NoOrigin,
            other => other,
        }
    }

    /// The CORS headers of an answer to a request from `origin`; for a pre-flight
    /// (`OPTIONS`), also what it may send, given the headers it asks for.
    pub fn headers(
        &self,
        origin: Option<&str>,
        preflight: bool,
        requested_headers: Option<&str>,
    ) -> Vec<(&'static str, String)> {
        let mut headers = Vec::new();
        let allowed = match self {
            Self::AnyOrigin => Some("*".to_owned()),
            Self::Origins(list) => {
                headers.push(("Vary", "Origin".to_owned()));
                origin
                    .map(|o| o.trim().to_ascii_lowercase())
                    .filter(|o| list.contains(o))
            }
            Self::ByBindAddress | Self::NoOrigin => None,
        };
        let Some(allowed) = allowed else {
            return headers;
        };
        headers.push(("Access-Control-Allow-Origin", allowed));
        if preflight {
            let requested = requested_headers
                .map(str::trim)
                .filter(|list| is_header_list(list))
                .unwrap_or(DEFAULT_ALLOWED_HEADERS);
            headers.push(("Access-Control-Allow-Methods", "GET, POST, OPTIONS".into()));
            headers.push(("Access-Control-Allow-Headers", requested.to_owned()));
            headers.push(("Access-Control-Max-Age", "86400".into()));
        }
        headers
    }
}

/// A comma-separated list of header names (so it can be echoed back safely).
fn is_header_list(list: &str) -> bool {
    !list.is_empty()
        && list.len() <= 1024
        && list.split(',').all(|name| {
            let name = name.trim();
            !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.!#$%&'*+^`|~".contains(&b))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin_header(policy: &CorsPolicy, origin: Option<&str>) -> Option<String> {
        policy
            .headers(origin, false, None)
            .into_iter()
            .find(|(name, _)| *name == "Access-Control-Allow-Origin")
            .map(|(_, value)| value)
    }

    #[test]
    fn without_flags_loopback_servers_allow_any_origin_and_others_none() {
        let default = CorsPolicy::from_flags(&[]).unwrap();
        let loopback = default.clone().for_address("127.0.0.1".parse().unwrap());
        assert_eq!(
            origin_header(&loopback, Some("https://a.example")),
            Some("*".into())
        );
        assert_eq!(origin_header(&loopback, None), Some("*".into()));
        for bound in ["0.0.0.0", "192.168.1.5", "::"] {
            let network = default.clone().for_address(bound.parse().unwrap());
            assert_eq!(network, CorsPolicy::NoOrigin, "{bound}");
            assert!(network
                .headers(Some("https://a.example"), true, None)
                .is_empty());
        }
        let v6_loopback = default.for_address("::1".parse().unwrap());
        assert_eq!(v6_loopback, CorsPolicy::AnyOrigin);
    }

    #[test]
    fn listed_origins_are_echoed_and_others_get_no_grant() {
        let flags = vec![
            "https://App.example.com/".to_owned(),
            "http://localhost:3000".into(),
        ];
        let policy = CorsPolicy::from_flags(&flags)
            .unwrap()
            .for_address("0.0.0.0".parse().unwrap());
        assert_eq!(
            origin_header(&policy, Some("https://app.example.com")),
            Some("https://app.example.com".into())
        );
        assert_eq!(
            origin_header(&policy, Some("http://localhost:3000")),
            Some("http://localhost:3000".into())
        );
        for other in [
            Some("https://evil.example"),
            Some("https://app.example.com.evil"),
            None,
        ] {
            assert_eq!(origin_header(&policy, other), None, "{other:?}");
        }
        assert!(policy
            .headers(Some("https://evil.example"), false, None)
            .contains(&("Vary", "Origin".into())));
        let any = CorsPolicy::from_flags(&["*".into()]).unwrap();
        assert_eq!(
            any.for_address("0.0.0.0".parse().unwrap()),
            CorsPolicy::AnyOrigin
        );
        for bad in ["app.example.com", "https://a.example/path", "https://"] {
            assert!(CorsPolicy::from_flags(&[bad.to_owned()]).is_err(), "{bad}");
        }
    }

    #[test]
    fn preflights_grant_methods_and_the_requested_headers() {
        let header = |headers: &[(&str, String)], name: &str| {
            headers
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.clone())
        };
        let headers = CorsPolicy::AnyOrigin.headers(
            Some("https://a.example"),
            true,
            Some("authorization, x-stainless-os, content-type"),
        );
        assert_eq!(
            header(&headers, "Access-Control-Allow-Headers").as_deref(),
            Some("authorization, x-stainless-os, content-type")
        );
        assert!(header(&headers, "Access-Control-Allow-Methods")
            .unwrap()
            .contains("POST"));
        let headers = CorsPolicy::AnyOrigin.headers(None, true, Some("x-a\r\nSet-Cookie: 1"));
        assert_eq!(
            header(&headers, "Access-Control-Allow-Headers").as_deref(),
            Some(DEFAULT_ALLOWED_HEADERS)
        );
    }
}
