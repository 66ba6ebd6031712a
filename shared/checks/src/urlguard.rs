//! SSRF guard for every outbound request made on behalf of user input.
//!
//! The website check fetches a URL the applicant typed, so without a guard an applicant could make
//! the platform fetch `http://169.254.169.254/` (cloud metadata credentials), an internal admin
//! page, or scan the internal network. The guard enforces, for **every hop** including redirects:
//!
//! 1. [`parse_url`]: a plain `http`/`https` URL with a host, no credentials, no control characters,
//!    at most [`MAX_URL_LEN`] bytes. The `url` crate canonicalizes every IPv4 spelling
//!    (`2130706433`, `0x7f.1`, `0177.0.0.1`, `127.1`) to dotted decimal, so the address checks below
//!    see the real address.
//! 2. [`UrlGuard::resolve`]: the host is resolved **once**; if **any** answer is a forbidden address
//!    ([`is_forbidden`]) the URL is refused, otherwise the first answer is returned and the caller
//!    must connect to exactly that address (DNS pinning). A second lookup at connect time could be
//!    answered differently (DNS rebinding), which is why the caller never resolves again.
//!
//! Single-label host names are refused (they only resolve through local search domains), and
//! special-use names (`localhost`, `*.local`, `*.internal`, `*.home.arpa`, `*.onion`) are refused
//! without asking DNS.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use thiserror::Error;
use url::{Host, Url};

use crate::finding::{Finding, codes, quote};

/// Longest URL accepted, in bytes. Browsers and CDNs commonly cap at 2 KiB as well.
pub const MAX_URL_LEN: usize = 2048;

/// Why the guard refused a URL.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum GuardError {
    /// The URL is not an acceptable http(s) URL.
    #[error("invalid URL: {0}")]
    InvalidUrl(String),
    /// The URL's host is, or resolves to, a forbidden address.
    #[error("the address {address} of {host} is not allowed ({reason})")]
    Forbidden {
        /// The host as written in the URL.
        host: String,
        /// The offending address (or the host name for refused names like `localhost`).
        address: String,
        /// Which range the address is in.
        reason: &'static str,
    },
    /// The host could not be resolved.
    #[error("could not resolve {host}: {reason}")]
    DnsFailed {
        /// The host as written in the URL.
        host: String,
        /// What went wrong.
        reason: String,
    },
}

impl GuardError {
    /// The reason code: `WEBSITE_URL_INVALID`, `WEBSITE_ADDRESS_FORBIDDEN` or `WEBSITE_DNS_FAILED`.
    pub fn code(&self) -> &'static str {
        match self {
            GuardError::InvalidUrl(_) => codes::WEBSITE_URL_INVALID,
            GuardError::Forbidden { .. } => codes::WEBSITE_ADDRESS_FORBIDDEN,
            GuardError::DnsFailed { .. } => codes::WEBSITE_DNS_FAILED,
        }
    }

    /// The error as an error finding on `field`.
    pub fn to_finding(&self, field: &str) -> Finding {
        Finding::error(self.code(), field, self.to_string())
    }
}

/// The SSRF guard. [`UrlGuard::default`] is the production guard: it has no exceptions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UrlGuard {
    allow: Vec<(IpAddr, u8)>,
}

impl UrlGuard {
    /// **Test only.** A guard that additionally permits the given networks (address, prefix
    /// length), for example `(127.0.0.1, 32)` so that tests can reach a local test server.
    ///
    /// Only the listed networks are exempt; every other forbidden address stays forbidden, also
    /// after redirects. Never build this from production configuration: an allowlisted network is
    /// reachable by anyone who can submit a website URL.
    pub fn with_test_allowlist(nets: Vec<(IpAddr, u8)>) -> Self {
        Self { allow: nets }
    }

    /// True if `ip` may be connected to: not forbidden, or explicitly allowlisted.
    pub fn permits(&self, ip: IpAddr) -> bool {
        !is_forbidden(ip) || self.is_allowlisted(ip)
    }

    fn is_allowlisted(&self, ip: IpAddr) -> bool {
        self.allow
            .iter()
            .any(|&(net, prefix)| in_network(ip, net, prefix))
    }

    fn check(&self, host: &str, ip: IpAddr) -> Result<(), GuardError> {
        if self.is_allowlisted(ip) {
            return Ok(());
        }
        match forbidden_reason(ip) {
            Some(reason) => Err(GuardError::Forbidden {
                host: host.to_owned(),
                address: ip.to_string(),
                reason,
            }),
            None => Ok(()),
        }
    }

    /// Resolve the URL's host once and return the address to connect to.
    ///
    /// IP-literal hosts are checked directly. Names are resolved with the system resolver; if any
    /// answer is forbidden (and not allowlisted) the URL is refused, since a name that has an
    /// internal address among its answers is either misconfigured or an attack. The caller must
    /// connect to the returned address and nothing else.
    ///
    /// The lookup has no timeout of its own (the system resolver's applies); callers bound it, as
    /// [`crate::website::WebsiteChecker`] does with its overall deadline.
    pub async fn resolve(&self, url: &Url) -> Result<SocketAddr, GuardError> {
        let port = url
            .port_or_known_default()
            .ok_or_else(|| GuardError::InvalidUrl("the URL has no port".to_owned()))?;
        let host = url
            .host()
            .ok_or_else(|| GuardError::InvalidUrl("the URL has no host".to_owned()))?;
        let name = match host {
            Host::Ipv4(v4) => {
                let ip = IpAddr::V4(v4);
                self.check(&v4.to_string(), ip)?;
                return Ok(SocketAddr::new(ip, port));
            }
            Host::Ipv6(v6) => {
                let ip = IpAddr::V6(v6);
                self.check(&format!("[{v6}]"), ip)?;
                return Ok(SocketAddr::new(ip, port));
            }
            Host::Domain(name) => name,
        };

        if let Some(reason) = special_use_name_reason(name) {
            return Err(GuardError::Forbidden {
                host: name.to_owned(),
                address: name.to_owned(),
                reason,
            });
        }

        let answers: Vec<SocketAddr> = match tokio::net::lookup_host((name, port)).await {
            Ok(answers) => answers.collect(),
            Err(e) => {
                return Err(GuardError::DnsFailed {
                    host: name.to_owned(),
                    reason: e.to_string(),
                });
            }
        };
        for answer in &answers {
            self.check(name, answer.ip())?;
        }
        // Every answer passed, so the first is as good as any; keep the resolver's order
        // (RFC 6724 destination address selection).
        answers
            .first()
            .map(|first| SocketAddr::new(first.ip(), port))
            .ok_or_else(|| GuardError::DnsFailed {
                host: name.to_owned(),
                reason: "the name has no addresses".to_owned(),
            })
    }
}

/// Names that by definition never denote a public website, refused without asking DNS:
/// `localhost` and `*.localhost` (RFC 6761), `*.local` (mDNS, RFC 6762), `*.internal` (ICANN
/// private use), `*.home.arpa` (RFC 8375), `*.onion` (RFC 7686).
fn special_use_name_reason(name: &str) -> Option<&'static str> {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let is = |suffix: &str| name == suffix || name.ends_with(&format!(".{suffix}"));
    if is("localhost") {
        Some("localhost names always point at the local machine")
    } else if is("local") || is("internal") || is("home.arpa") {
        Some("private-use domain name")
    } else if is("onion") {
        Some("Tor onion names are not reachable")
    } else {
        None
    }
}

/// Parse and vet a URL typed by a user or received in a `Location` header.
///
/// Accepts only absolute `http`/`https` URLs with a host, without user info (`user:pass@`), with no
/// control characters or whitespace, at most [`MAX_URL_LEN`] bytes, whose host is an IP address
/// or a fully qualified (dotted) domain name. Surrounding spaces are trimmed. Any port is allowed
/// (the address check is what matters).
pub fn parse_url(raw: &str) -> Result<Url, GuardError> {
    let raw = raw.trim_matches(' ');
    if raw.is_empty() {
        return Err(GuardError::InvalidUrl("the URL is empty".to_owned()));
    }
    if raw.len() > MAX_URL_LEN {
        return Err(GuardError::InvalidUrl(format!(
            "the URL is {} bytes long; at most {MAX_URL_LEN} are allowed",
            raw.len()
        )));
    }
    // The url crate silently drops tabs and newlines, which hides smuggling attempts; refuse them.
    if let Some(c) = raw
        .chars()
        .find(|&c| c.is_control() || c.is_whitespace() || crate::finding::is_invisible(c))
    {
        return Err(GuardError::InvalidUrl(format!(
            "the URL contains the character {}, which is not allowed",
            crate::finding::describe_char(c)
        )));
    }
    let url = Url::parse(raw).map_err(|e| {
        GuardError::InvalidUrl(format!(
            "{} is not a valid absolute URL ({e}); write it as https://www.example.com/",
            quote(raw, 100)
        ))
    })?;
    match url.scheme() {
        "http" | "https" => {}
        other => {
            return Err(GuardError::InvalidUrl(format!(
                "only http and https URLs are allowed, not {}",
                quote(other, 20)
            )));
        }
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(GuardError::InvalidUrl(
            "the URL must not contain a user name or password".to_owned(),
        ));
    }
    match url.host() {
        None => return Err(GuardError::InvalidUrl("the URL has no host".to_owned())),
        Some(Host::Domain(name))
            if !name.trim_end_matches('.').contains('.')
                && special_use_name_reason(name).is_none() =>
        {
            // Single-label names ("intranet", "metadata") only resolve through the local search
            // domains, i.e. to internal hosts; a public website always has a dotted name.
            // (`localhost` passes here so that the guard refuses it as a forbidden address.)
            return Err(GuardError::InvalidUrl(format!(
                "the host {} is not a fully qualified domain name (expected something like www.example.com)",
                quote(name, 100)
            )));
        }
        Some(_) => {}
    }
    Ok(url)
}

/// True if connecting to `ip` on behalf of a user is forbidden. See [`forbidden_reason`].
pub fn is_forbidden(ip: IpAddr) -> bool {
    forbidden_reason(ip).is_some()
}

/// The reason `ip` is forbidden, or `None` for an ordinary public unicast address.
///
/// IPv4: `0.0.0.0/8` (this network, unspecified), `10/8`, `172.16/12`, `192.168/16` (private),
/// `100.64/10` (shared / carrier-grade NAT), `127/8` (loopback), `169.254/16` (link-local, cloud
/// metadata `169.254.169.254`), `192.0.0/24` (IETF protocol assignments), `192.0.2/24`,
/// `198.51.100/24`, `203.0.113/24` (documentation), `192.88.99/24` (6to4 relay anycast),
/// `198.18/15` (benchmarking), `224/4` (multicast), `240/4` (reserved, including the broadcast
/// `255.255.255.255`).
///
/// IPv6: anything outside global unicast `2000::/3` is forbidden (unspecified `::`, loopback `::1`,
/// unique-local `fc00::/7` including the metadata address `fd00:ec2::254`, link-local
/// `fe80::/10`, site-local `fec0::/10`, multicast `ff00::/8`, discard `100::/64`, …), except the
/// forms that embed an IPv4 address, which are judged by that address: IPv4-mapped
/// `::ffff:a.b.c.d`, IPv4-compatible `::a.b.c.d`, IPv4-translated `::ffff:0:a.b.c.d` and NAT64
/// `64:ff9b::/96`. Inside `2000::/3`: `2001::/23` (IETF protocol assignments: Teredo,
/// benchmarking, ORCHID), `2001:db8::/32` and `3fff::/20` (documentation) are forbidden, and 6to4
/// `2002::/16` is judged by its embedded IPv4 address. The local-use NAT64 prefix `64:ff9b:1::/48`
/// is forbidden.
pub fn forbidden_reason(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => v4_forbidden_reason(v4),
        IpAddr::V6(v6) => v6_forbidden_reason(v6),
    }
}

fn v4_forbidden_reason(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    match (a, b, c) {
        (0, _, _) => Some("\"this network\" / unspecified address"),
        (10, _, _) => Some("private network"),
        (100, 64..=127, _) => Some("shared address space (carrier-grade NAT)"),
        (127, _, _) => Some("loopback address"),
        (169, 254, _) => Some("link-local address (includes cloud metadata services)"),
        (172, 16..=31, _) => Some("private network"),
        (192, 0, 0) => Some("IETF protocol assignment"),
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => Some("documentation address"),
        (192, 88, 99) => Some("6to4 relay anycast address"),
        (192, 168, _) => Some("private network"),
        (198, 18..=19, _) => Some("benchmarking address"),
        (224..=239, _, _) => Some("multicast address"),
        (240..=255, _, _) => Some("reserved or broadcast address"),
        _ => None,
    }
}

fn v6_forbidden_reason(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    if ip.is_unspecified() {
        return Some("unspecified address");
    }
    if ip.is_loopback() {
        return Some("loopback address");
    }
    // Forms that carry an IPv4 address in their low 32 bits are judged by that address: a
    // dual-stack socket connecting to ::ffff:127.0.0.1 reaches 127.0.0.1.
    let embedded_low = Ipv4Addr::new(
        (s[6] >> 8) as u8,
        (s[6] & 0xff) as u8,
        (s[7] >> 8) as u8,
        (s[7] & 0xff) as u8,
    );
    let is_mapped = s[..5] == [0; 5] && s[5] == 0xffff;
    let is_compatible = s[..6] == [0; 6];
    let is_translated = s[..4] == [0; 4] && s[4] == 0xffff && s[5] == 0;
    let is_nat64 = s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0; 4];
    if is_mapped || is_compatible || is_translated || is_nat64 {
        return v4_forbidden_reason(embedded_low);
    }
    if s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1 {
        return Some("local-use NAT64 prefix");
    }
    if s[0] == 0x2002 {
        // 6to4: 2002:AABB:CCDD::/48 embeds AA.BB.CC.DD.
        let embedded = Ipv4Addr::new(
            (s[1] >> 8) as u8,
            (s[1] & 0xff) as u8,
            (s[2] >> 8) as u8,
            (s[2] & 0xff) as u8,
        );
        return v4_forbidden_reason(embedded);
    }
    // Everything below is decided on the high bits.
    if s[0] & 0xe000 != 0x2000 {
        return Some(match s[0] {
            x if x & 0xfe00 == 0xfc00 => "unique-local address",
            x if x & 0xffc0 == 0xfe80 => "link-local address",
            x if x & 0xffc0 == 0xfec0 => "site-local address",
            x if x & 0xff00 == 0xff00 => "multicast address",
            _ => "reserved address (outside global unicast 2000::/3)",
        });
    }
    if s[0] == 0x2001 && s[1] < 0x0200 {
        return Some("IETF protocol assignment (Teredo, benchmarking, ORCHID)");
    }
    if s[0] == 0x2001 && s[1] == 0x0db8 {
        return Some("documentation address");
    }
    if s[0] & 0xfff0 == 0x3ff0 {
        return Some("documentation address");
    }
    None
}

/// True if `ip` is inside `net`/`prefix` (same address family only; prefixes longer than the
/// address are clamped).
fn in_network(ip: IpAddr, net: IpAddr, prefix: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let prefix = u32::from(prefix.min(32));
            let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let prefix = u32::from(prefix.min(128));
            let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    #[test]
    fn networks() {
        assert!(in_network(ip("127.0.0.1"), ip("127.0.0.1"), 32));
        assert!(!in_network(ip("127.0.0.2"), ip("127.0.0.1"), 32));
        assert!(in_network(ip("10.9.8.7"), ip("10.0.0.0"), 8));
        assert!(in_network(ip("1.2.3.4"), ip("0.0.0.0"), 0));
        assert!(in_network(ip("::1"), ip("::1"), 128));
        assert!(!in_network(ip("::1"), ip("127.0.0.1"), 32));
    }

    #[test]
    fn allowlist_exempts_only_listed_networks() {
        let guard = UrlGuard::with_test_allowlist(vec![(ip("127.0.0.1"), 32)]);
        assert!(guard.permits(ip("127.0.0.1")));
        assert!(!guard.permits(ip("127.0.0.2")));
        assert!(!guard.permits(ip("10.0.0.1")));
        assert!(!guard.permits(ip("::1")));
        assert!(!UrlGuard::default().permits(ip("127.0.0.1")));
    }
}
