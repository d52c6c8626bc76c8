//! Which image URLs the server may fetch, so that a client of the API cannot use it to
//! reach the server's own network (server-side request forgery). A URL's host is checked
//! against `--image-url-domains` (when given), resolved once, and every address it
//! resolves to is checked: loopback, private (RFC 1918), shared (CGNAT), link-local (the
//! cloud metadata address 169.254.169.254 among them), unique-local and site-local IPv6,
//! multicast, broadcast, unspecified, documentation and other reserved ranges are refused,
//! and so is an IPv4 address hidden in an IPv6 one (mapped, compatible, NAT64, 6to4).
//! The fetcher then connects to exactly the addresses vetted here (see `image_fetch`).
//! `--image-url-allow-private` turns the address check off for trusted setups.
//!
//! Hosts written as numbers are read the way the C library reads them (`inet_aton`:
//! `2130706433`, `0177.0.0.1`, `0x7f.1`), so a spelling cannot slip past the check; the
//! addresses a name resolves to are checked whatever the spelling was.
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The fetch rules of one server.
#[derive(Clone, Debug, Default)]
pub struct UrlPolicy {
    /// Skip the address check (`--image-url-allow-private`).
    pub allow_private: bool,
    /// Hosts that may be fetched from (`--image-url-domains`); empty = any host.
    pub domains: Vec<HostPattern>,
}

/// One entry of `--image-url-domains`: an exact host (`images.example.com`, an IP
/// address) or every subdomain of one (`*.example.com`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostPattern {
    Exact(String),
    SubdomainsOf(String),
}

impl HostPattern {
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = normalize_host(text);
        let (pattern, name) = match text.strip_prefix("*.") {
            Some(parent) => (Self::SubdomainsOf(parent.to_owned()), parent),
            None => (Self::Exact(text.clone()), text.as_str()),
        };
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-.:".contains(c));
        if valid {
            Ok(pattern)
        } else {
            Err(format!(
                "'{text}' is not a host name (expected e.g. images.example.com or *.example.com)"
            ))
        }
    }

    fn matches(&self, host: &str) -> bool {
        match self {
            Self::Exact(name) => host == name,
            Self::SubdomainsOf(parent) => host
                .strip_suffix(parent.as_str())
                .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
        }
    }
}

/// Why a URL is not fetched (for the operator's log; clients get a neutral message).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Not http or https.
    Scheme(String),
    /// Not in `--image-url-domains`.
    HostNotAllowed(String),
    /// The host is, or resolves to, an address of a refused range.
    Address {
        host: String,
        address: IpAddr,
        range: &'static str,
    },
    /// The name resolved to no address.
    NoAddress(String),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Scheme(scheme) => write!(f, "scheme '{scheme}' is not http or https"),
            Self::HostNotAllowed(host) => write!(f, "host '{host}' is not in --image-url-domains"),
            Self::Address { host, address, range } => write!(
                f,
                "host '{host}' is {address}, a {range} address (--image-url-allow-private allows it)"
            ),
            Self::NoAddress(host) => write!(f, "host '{host}' resolved to no address"),
        }
    }
}

/// A refusal, or the resolver's own error.
#[derive(Debug)]
pub enum Vetting<E> {
    Refused(Refusal),
    Lookup(E),
}

impl UrlPolicy {
    /// The addresses to connect to for `host` (as written in a URL, IPv6 in brackets) and
    /// `port`: the host's own address when it is written as one, else what `lookup`
    /// resolves it to (called at most once). Every address must pass the address check.
    pub fn vet<E>(
        &self,
        scheme: &str,
        host: &str,
        port: u16,
        lookup: impl FnOnce() -> Result<Vec<SocketAddr>, E>,
    ) -> Result<Vec<SocketAddr>, Vetting<E>> {
        let refuse = |refusal| Err(Vetting::Refused(refusal));
        if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
            return refuse(Refusal::Scheme(scheme.to_owned()));
        }
        let name = normalize_host(host);
        if !self.domains.is_empty() && !self.domains.iter().any(|d| d.matches(&name)) {
            return refuse(Refusal::HostNotAllowed(name));
        }
        let addresses = match literal_address(&name) {
            Some(address) => vec![SocketAddr::new(address, port)],
            None => lookup().map_err(Vetting::Lookup)?,
        };
        if addresses.is_empty() {
            return refuse(Refusal::NoAddress(name));
        }
        if !self.allow_private {
            for address in &addresses {
                if let Some(range) = refused_range(address.ip()) {
                    return refuse(Refusal::Address {
                        host: name,
                        address: address.ip(),
                        range,
                    });
                }
            }
        }
        Ok(addresses)
    }
}

/// Lower case, without IPv6 brackets or a final dot.
fn normalize_host(host: &str) -> String {
    let host = host.trim();
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase()
}

/// The address a host names without a lookup: an IPv6 literal, or IPv4 in any spelling
/// `inet_aton` accepts (1 to 4 parts, each decimal, octal with a leading 0 or hex with 0x;
/// the last part fills the remaining bytes).
pub fn literal_address(host: &str) -> Option<IpAddr> {
    let host = normalize_host(host);
    if let Ok(v6) = host.parse::<Ipv6Addr>() {
        return Some(IpAddr::V6(v6));
    }
    let parts: Vec<u32> = host
        .split('.')
        .map(parse_inet_aton_number)
        .collect::<Option<_>>()?;
    let (last, leading) = parts.split_last()?;
    if leading.len() > 3 || leading.iter().any(|&p| p > 255) {
        return None;
    }
    let last_bits = 8 * (4 - leading.len() as u32);
    if last_bits < 32 && *last >= 1 << last_bits {
        return None;
    }
    let value = leading
        .iter()
        .enumerate()
        .fold(*last, |acc, (i, &part)| acc | part << (24 - 8 * i));
    Some(IpAddr::V4(Ipv4Addr::from(value)))
}

fn parse_inet_aton_number(part: &str) -> Option<u32> {
    let (digits, radix) =
        if let Some(hex) = part.strip_prefix("0x").or_else(|| part.strip_prefix("0X")) {
            (hex, 16)
        } else if part.len() > 1 && part.starts_with('0') {
            (&part[1..], 8)
        } else {
            (part, 10)
        };
    if digits.is_empty() {
        // "0x" alone is 0 to inet_aton; an empty part is not a number.
        return (radix == 16).then_some(0);
    }
    if !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    u32::from_str_radix(digits, radix).ok()
}

/// The name of the refused range `address` is in, `None` for a public address.
pub fn refused_range(address: IpAddr) -> Option<&'static str> {
    match address {
        IpAddr::V4(v4) => refused_ipv4_range(v4),
        IpAddr::V6(v6) => refused_ipv6_range(v6),
    }
}

fn refused_ipv4_range(address: Ipv4Addr) -> Option<&'static str> {
    const RANGES: &[([u8; 4], u32, &str)] = &[
        ([0, 0, 0, 0], 8, "\"this network\" (unspecified)"),
        ([10, 0, 0, 0], 8, "private (RFC 1918)"),
        ([100, 64, 0, 0], 10, "shared (carrier-grade NAT)"),
        ([127, 0, 0, 0], 8, "loopback"),
        ([169, 254, 0, 0], 16, "link-local (cloud metadata)"),
        ([172, 16, 0, 0], 12, "private (RFC 1918)"),
        ([192, 0, 0, 0], 24, "IETF protocol assignment"),
        ([192, 0, 2, 0], 24, "documentation"),
        ([192, 88, 99, 0], 24, "6to4 relay"),
        ([192, 168, 0, 0], 16, "private (RFC 1918)"),
        ([198, 18, 0, 0], 15, "benchmarking"),
        ([198, 51, 100, 0], 24, "documentation"),
        ([203, 0, 113, 0], 24, "documentation"),
        ([224, 0, 0, 0], 4, "multicast"),
        ([255, 255, 255, 255], 32, "broadcast"),
        ([240, 0, 0, 0], 4, "reserved"),
    ];
    let bits = u32::from(address);
    RANGES.iter().find_map(|&(start, prefix, name)| {
        let mask = u32::MAX << (32 - prefix);
        (bits & mask == u32::from_be_bytes(start)).then_some(name)
    })
}

fn refused_ipv6_range(address: Ipv6Addr) -> Option<&'static str> {
    let bits = u128::from(address);
    let embedded_ipv4 = |shift: u32| Ipv4Addr::from((bits >> shift) as u32);
    let in_prefix = |start: u128, prefix: u32| bits >> (128 - prefix) == start >> (128 - prefix);
    if bits == 0 {
        return Some("unspecified");
    }
    if bits == 1 {
        return Some("loopback");
    }
    // IPv4-mapped (::ffff:a.b.c.d) and NAT64 (64:ff9b::a.b.c.d) reach the IPv4 address.
    if in_prefix(0xffff << 32, 96) || in_prefix(0x64_ff9b << 96, 96) {
        return refused_ipv4_range(embedded_ipv4(0));
    }
    // 6to4 (2002:aabb:ccdd::/48) routes to the IPv4 address in bits 16..48.
    if in_prefix(0x2002 << 112, 16) {
        return refused_ipv4_range(embedded_ipv4(80));
    }
    const RANGES: &[(u128, u32, &str)] = &[
        (0x0064_ff9b_0001 << 80, 48, "local-use NAT64"),
        (0, 8, "reserved (IPv4-compatible)"),
        (0x0100 << 112, 64, "discard-only"),
        (0x2001_0db8 << 96, 32, "documentation"),
        (
            0x2001 << 112,
            23,
            "IETF protocol assignment (Teredo included)",
        ),
        (0x3fff << 112, 20, "documentation"),
        (0xfc00 << 112, 7, "unique-local"),
        (0xfe80 << 112, 10, "link-local"),
        (0xfec0 << 112, 10, "site-local"),
        (0xff00 << 112, 8, "multicast"),
    ];
    RANGES
        .iter()
        .find_map(|&(start, prefix, name)| in_prefix(start, prefix).then_some(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an IP address")
    }

    #[test]
    fn every_refused_ipv4_range_is_refused_and_public_addresses_pass() {
        for (address, range) in [
            ("0.0.0.0", "unspecified"),
            ("0.1.2.3", "unspecified"),
            ("10.0.0.1", "RFC 1918"),
            ("10.255.255.255", "RFC 1918"),
            ("100.64.0.1", "carrier-grade NAT"),
            ("100.127.255.254", "carrier-grade NAT"),
            ("127.0.0.1", "loopback"),
            ("127.255.0.9", "loopback"),
            ("169.254.169.254", "link-local"),
            ("169.254.0.1", "link-local"),
            ("172.16.0.1", "RFC 1918"),
            ("172.31.255.255", "RFC 1918"),
            ("192.0.0.8", "IETF"),
            ("192.0.2.10", "documentation"),
            ("192.168.1.1", "RFC 1918"),
            ("198.18.0.1", "benchmarking"),
            ("198.19.255.255", "benchmarking"),
            ("198.51.100.7", "documentation"),
            ("203.0.113.200", "documentation"),
            ("224.0.0.1", "multicast"),
            ("239.255.255.250", "multicast"),
            ("240.0.0.1", "reserved"),
            ("255.255.255.255", "broadcast"),
        ] {
            let found = refused_range(ip(address));
            assert!(
                found.is_some_and(|name| name.contains(range)),
                "{address}: {found:?}, expected {range}"
            );
        }
        for public in [
            "1.1.1.1",
            "8.8.8.8",
            "9.255.255.255",
            "11.0.0.0",
            "100.63.255.255",
            "100.128.0.0",
            "126.255.255.255",
            "128.0.0.0",
            "169.253.255.255",
            "172.15.255.255",
            "172.32.0.0",
            "192.167.255.255",
            "192.169.0.0",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.255",
        ] {
            assert_eq!(refused_range(ip(public)), None, "{public}");
        }
    }

    #[test]
    fn every_refused_ipv6_range_is_refused_and_ipv4_inside_ipv6_is_checked() {
        for (address, range) in [
            ("::", "unspecified"),
            ("::1", "loopback"),
            ("fe80::1", "link-local"),
            ("febf:ffff::1", "link-local"),
            ("fc00::1", "unique-local"),
            ("fd12:3456::1", "unique-local"),
            ("fec0::1", "site-local"),
            ("feff::1", "site-local"),
            ("ff02::1", "multicast"),
            ("ff05::1:3", "multicast"),
            ("2001:db8::1", "documentation"),
            ("3fff::1", "documentation"),
            ("100::1", "discard"),
            ("2001::1", "Teredo"),
            ("64:ff9b:1::1", "NAT64"),
            // IPv4 inside IPv6.
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:169.254.169.254", "link-local"),
            ("::ffff:10.1.2.3", "RFC 1918"),
            ("::ffff:0.0.0.0", "unspecified"),
            ("::127.0.0.1", "IPv4-compatible"),
            ("64:ff9b::192.168.0.1", "RFC 1918"),
            ("64:ff9b::7f00:1", "loopback"),
            ("2002:7f00:1::1", "loopback"),
            ("2002:a9fe:a9fe::", "link-local"),
        ] {
            let found = refused_range(ip(address));
            assert!(
                found.is_some_and(|name| name.contains(range)),
                "{address}: {found:?}, expected {range}"
            );
        }
        for public in [
            "2606:4700:4700::1111",
            "2a00:1450:4001::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
            "fbff:ffff::1",
            "2001:200::1",
        ] {
            assert_eq!(refused_range(ip(public)), None, "{public}");
        }
    }

    #[test]
    fn numeric_hosts_are_read_as_inet_aton_reads_them() {
        for (spelling, address) in [
            ("2130706433", "127.0.0.1"),
            ("0177.0.0.1", "127.0.0.1"),
            ("0x7f.0.0.1", "127.0.0.1"),
            ("0X7F000001", "127.0.0.1"),
            ("017700000001", "127.0.0.1"),
            ("127.1", "127.0.0.1"),
            ("127.0.1", "127.0.0.1"),
            ("0x7f.1", "127.0.0.1"),
            ("169.254.43518", "169.254.169.254"),
            ("2852039166", "169.254.169.254"),
            ("0251.0376.0251.0376", "169.254.169.254"),
            ("0", "0.0.0.0"),
            ("10.0.0.1.", "10.0.0.1"),
            ("[::1]", "::1"),
            ("[::ffff:7f00:1]", "::ffff:127.0.0.1"),
            ("8.8.8.8", "8.8.8.8"),
        ] {
            assert_eq!(literal_address(spelling), Some(ip(address)), "{spelling}");
        }
        for name in [
            "example.com",
            "1.2.3.4.5",
            "256.0.0.1",
            "1.2.3.256",
            "1.2.65536",
            "08.0.0.1",
            "1..2",
            "",
            "4294967296",
            "127.0.0.1x",
        ] {
            assert_eq!(literal_address(name), None, "{name}");
        }
    }

    /// A resolver that answers from a table and counts its lookups.
    struct FakeResolver {
        names: HashMap<&'static str, Vec<&'static str>>,
        lookups: std::cell::Cell<usize>,
    }

    impl FakeResolver {
        fn new(names: &[(&'static str, &[&'static str])]) -> Self {
            Self {
                names: names.iter().map(|(n, a)| (*n, a.to_vec())).collect(),
                lookups: std::cell::Cell::new(0),
            }
        }

        fn vet(&self, policy: &UrlPolicy, host: &str) -> Result<Vec<SocketAddr>, Vetting<String>> {
            policy.vet("https", host, 443, || {
                self.lookups.set(self.lookups.get() + 1);
                self.names
                    .get(normalize_host(host).as_str())
                    .map(|addresses| {
                        addresses
                            .iter()
                            .map(|a| SocketAddr::new(ip(a), 443))
                            .collect()
                    })
                    .ok_or_else(|| format!("{host}: not found"))
            })
        }
    }

    fn refused_range_of<E: fmt::Debug>(result: Result<Vec<SocketAddr>, Vetting<E>>) -> String {
        match result {
            Err(Vetting::Refused(Refusal::Address { range, .. })) => range.to_owned(),
            other => panic!("expected an address refusal, got {other:?}"),
        }
    }

    #[test]
    fn names_are_resolved_once_and_every_address_is_checked() {
        let resolver = FakeResolver::new(&[
            (
                "images.example.com",
                &["93.184.216.34", "2606:2800:220:1::1"],
            ),
            ("metadata.evil.test", &["169.254.169.254"]),
            ("mixed.evil.test", &["93.184.216.34", "10.0.0.5"]),
            ("mapped.evil.test", &["::ffff:192.168.0.1"]),
            ("v6-local.evil.test", &["fd00::1"]),
            ("nothing.test", &[]),
        ]);
        let policy = UrlPolicy::default();
        let vetted = resolver
            .vet(&policy, "Images.Example.COM.")
            .expect("public");
        assert_eq!(vetted.len(), 2);
        assert_eq!(vetted[0], "93.184.216.34:443".parse().unwrap());
        assert_eq!(resolver.lookups.get(), 1);
        for (name, range) in [
            ("metadata.evil.test", "link-local"),
            ("mixed.evil.test", "RFC 1918"),
            ("mapped.evil.test", "RFC 1918"),
            ("v6-local.evil.test", "unique-local"),
        ] {
            assert!(
                refused_range_of(resolver.vet(&policy, name)).contains(range),
                "{name}"
            );
        }
        assert!(matches!(
            resolver.vet(&policy, "nothing.test"),
            Err(Vetting::Refused(Refusal::NoAddress(_)))
        ));
        assert!(matches!(
            resolver.vet(&policy, "missing.test"),
            Err(Vetting::Lookup(_))
        ));
        // Literal addresses, in any spelling, are never looked up.
        let lookups = resolver.lookups.get();
        for literal in [
            "127.0.0.1",
            "2130706433",
            "0177.1",
            "[::1]",
            "[::ffff:a9fe:a9fe]",
        ] {
            refused_range_of(resolver.vet(&policy, literal));
        }
        assert_eq!(resolver.lookups.get(), lookups);
    }

    #[test]
    fn allow_private_skips_the_address_check_but_not_the_domain_list() {
        let resolver = FakeResolver::new(&[("intranet.test", &["10.1.2.3"])]);
        let open = UrlPolicy {
            allow_private: true,
            domains: Vec::new(),
        };
        assert!(resolver.vet(&open, "intranet.test").is_ok());
        assert!(resolver.vet(&open, "127.0.0.1").is_ok());
        let listed = UrlPolicy {
            allow_private: true,
            domains: vec![HostPattern::parse("intranet.test").unwrap()],
        };
        assert!(resolver.vet(&listed, "INTRANET.test").is_ok());
        let lookups = resolver.lookups.get();
        assert!(matches!(
            resolver.vet(&listed, "127.0.0.1"),
            Err(Vetting::Refused(Refusal::HostNotAllowed(_)))
        ));
        assert_eq!(resolver.lookups.get(), lookups, "refused before any lookup");
    }

    #[test]
    fn domain_patterns_match_exact_hosts_or_subdomains() {
        let policy = UrlPolicy {
            allow_private: false,
            domains: ["images.example.com", "*.cdn.example.net", "93.184.216.34"]
                .iter()
                .map(|d| HostPattern::parse(d).unwrap())
                .collect(),
        };
        let resolver = FakeResolver::new(&[
            ("images.example.com", &["93.184.216.34"]),
            ("a.cdn.example.net", &["93.184.216.35"]),
            ("x.y.cdn.example.net", &["93.184.216.36"]),
            ("cdn.example.net", &["93.184.216.37"]),
            ("evilcdn.example.net", &["93.184.216.38"]),
            ("example.com", &["93.184.216.39"]),
        ]);
        for allowed in [
            "images.example.com",
            "a.cdn.example.net",
            "x.y.cdn.example.net",
            "93.184.216.34",
        ] {
            assert!(resolver.vet(&policy, allowed).is_ok(), "{allowed}");
        }
        for refused in [
            "cdn.example.net",
            "evilcdn.example.net",
            "example.com",
            "93.184.216.35",
        ] {
            assert!(
                matches!(
                    resolver.vet(&policy, refused),
                    Err(Vetting::Refused(Refusal::HostNotAllowed(_)))
                ),
                "{refused}"
            );
        }
        // A listed host that resolves to a private address is still refused.
        let resolver = FakeResolver::new(&[("images.example.com", &["192.168.1.20"])]);
        refused_range_of(resolver.vet(&policy, "images.example.com"));
        assert!(HostPattern::parse("bad host/").is_err());
        assert!(HostPattern::parse("*.").is_err());
    }

    #[test]
    fn only_http_and_https_are_fetched() {
        let policy = UrlPolicy::default();
        for scheme in ["ftp", "file", "gopher", "socks5"] {
            let result = policy.vet::<String>(scheme, "example.com", 80, || Ok(Vec::new()));
            assert!(
                matches!(result, Err(Vetting::Refused(Refusal::Scheme(_)))),
                "{scheme}"
            );
        }
    }
}
