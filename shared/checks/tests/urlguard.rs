//! SSRF guard with the DEFAULT (production) policy: every internal address form is refused.
//! No test here sends a packet: refused URLs are refused before any connection is attempted.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

use std::net::IpAddr;

use kg_checks::finding::codes;
use kg_checks::urlguard::{GuardError, UrlGuard, forbidden_reason, is_forbidden, parse_url};
use kg_checks::website::WebsiteChecker;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

/// Every spelling of an internal address the guard must refuse.
const SSRF_URLS: &[&str] = &[
    "http://127.0.0.1/",
    "http://127.0.0.1:8080/admin",
    "http://localhost/",
    "http://LOCALHOST./",
    "http://api.localhost/",
    "http://printer.local/",
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://router.home.arpa/",
    "http://10.1.2.3/",
    "http://172.16.0.1/",
    "http://172.31.255.255/",
    "http://192.168.1.1/",
    "http://169.254.169.254/latest/meta-data/",
    "http://100.64.0.1/",
    "http://[::1]/",
    "http://[::]/",
    "http://[fc00::1]/",
    "http://[fd12::1]/",
    "http://[fd00:ec2::254]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:10.0.0.1]/",
    "http://[::ffff:7f00:1]/",
    "http://[::ffff:a9fe:a9fe]/",
    "http://2130706433/",
    "http://0x7f000001/",
    "http://0x7f.1/",
    "http://0177.0.0.1/",
    "http://017700000001/",
    "http://127.1/",
    "http://127.0.1/",
    "http://0/",
    "http://0.0.0.0/",
    "http://[fe80::1]/",
    "http://[fec0::1]/",
    "http://[64:ff9b::a00:1]/",
    "http://[64:ff9b::7f00:1]/",
    "http://[2002:7f00:1::]/",
    "http://[2002:a9fe:a9fe::1]/",
    "http://[ff02::1]/",
    "http://224.0.0.1/",
    "http://255.255.255.255/",
    "http://240.0.0.1/",
    "http://198.18.0.1/",
    "http://192.0.2.1/",
    "http://203.0.113.7/",
    "https://10.0.0.1:443/",
];

#[tokio::test]
async fn default_guard_refuses_every_ssrf_form() {
    let guard = UrlGuard::default();
    for raw in SSRF_URLS {
        let url = parse_url(raw).unwrap_or_else(|e| panic!("{raw} should parse: {e}"));
        match guard.resolve(&url).await {
            Err(e @ GuardError::Forbidden { .. }) => {
                assert_eq!(e.code(), codes::WEBSITE_ADDRESS_FORBIDDEN);
            }
            other => panic!("{raw} must be forbidden, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn default_website_checker_refuses_every_ssrf_form() {
    let checker = WebsiteChecker::default();
    for raw in SSRF_URLS {
        let report = checker.check(raw).await;
        assert!(!report.passed(), "{raw}");
        assert_eq!(report.findings.len(), 1, "{raw}: {:?}", report.findings);
        assert_eq!(
            report.findings[0].code,
            codes::WEBSITE_ADDRESS_FORBIDDEN,
            "{raw}"
        );
        assert_eq!(
            report.evidence.http_status, None,
            "{raw}: nothing was requested"
        );
        assert_eq!(report.evidence.resolved_address, None, "{raw}");
    }
}

#[test]
fn ipv4_spellings_are_canonicalized_by_the_parser() {
    for (raw, host) in [
        ("http://2130706433/", "127.0.0.1"),
        ("http://0x7f000001/", "127.0.0.1"),
        ("http://0x7f.1/", "127.0.0.1"),
        ("http://0177.0.0.1/", "127.0.0.1"),
        ("http://127.1/", "127.0.0.1"),
        ("http://0/", "0.0.0.0"),
        ("http://[::ffff:127.0.0.1]/", "[::ffff:7f00:1]"),
        ("HTTP://Example.COM:8080/x", "example.com"),
    ] {
        let url = parse_url(raw).unwrap_or_else(|e| panic!("{raw}: {e}"));
        assert_eq!(url.host_str(), Some(host), "{raw}");
    }
}

#[test]
fn forbidden_ranges_and_their_edges() {
    for addr in [
        "0.0.0.0",
        "0.1.2.3",
        "10.0.0.0",
        "10.255.255.255",
        "100.64.0.0",
        "100.127.255.255",
        "127.0.0.1",
        "127.255.255.254",
        "169.254.0.1",
        "169.254.169.254",
        "172.16.0.0",
        "172.31.255.255",
        "192.0.0.8",
        "192.0.2.1",
        "192.88.99.1",
        "192.168.0.1",
        "198.18.0.0",
        "198.19.255.255",
        "198.51.100.1",
        "203.0.113.1",
        "224.0.0.1",
        "239.255.255.255",
        "240.0.0.1",
        "255.255.255.255",
        "::",
        "::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "::ffff:169.254.169.254",
        "::127.0.0.1",
        "::ffff:0:10.0.0.1",
        "64:ff9b::10.0.0.1",
        "64:ff9b:1::1",
        "100::1",
        "2001::1",
        "2001:2::1",
        "2001:db8::1",
        "2002:0a00:0001::1",
        "3fff::1",
        "fc00::1",
        "fd00:ec2::254",
        "fdff:ffff::1",
        "fe80::1",
        "febf::1",
        "fec0::1",
        "ff02::1",
        "4000::1",
    ] {
        assert!(is_forbidden(ip(addr)), "{addr} must be forbidden");
        assert!(forbidden_reason(ip(addr)).is_some());
    }
}

#[test]
fn public_addresses_are_allowed() {
    for addr in [
        "93.184.216.34",
        "8.8.8.8",
        "1.1.1.1",
        "114.114.114.114",
        "9.255.255.255",
        "11.0.0.0",
        "100.63.255.255",
        "100.128.0.0",
        "126.255.255.255",
        "128.0.0.0",
        "169.253.255.255",
        "169.255.0.0",
        "172.15.255.255",
        "172.32.0.0",
        "192.167.255.255",
        "192.169.0.0",
        "198.17.255.255",
        "198.20.0.0",
        "223.255.255.255",
        "2606:4700:4700::1111",
        "2001:4860:4860::8888",
        "2400:cb00::1",
        "::ffff:93.184.216.34",
        "64:ff9b::8.8.8.8",
        "2002:5db8:d822::1",
    ] {
        assert!(!is_forbidden(ip(addr)), "{addr} must be allowed");
    }
}

#[test]
fn parse_url_refusals() {
    let long = format!("https://example.com/{}", "a".repeat(2048));
    for raw in [
        "",
        "   ",
        "example.com",
        "www.example.com/path",
        "ftp://example.com/",
        "file:///etc/passwd",
        "gopher://example.com/",
        "javascript:alert(1)",
        "data:text/html,<h1>x</h1>",
        "http://user:pass@example.com/",
        "http://user@example.com/",
        "http://:pass@example.com/",
        "http:///path",
        "http://intranet/",
        "http://metadata/",
        "http://",
        "http://exa mple.com/",
        "http://example.com/\n",
        "http://exam\tple.com/",
        "http://example.com/\r\nHost: evil",
        "http://example.com/\u{0}",
        "http://example.com/\u{202E}",
        "http://[::1/",
        "http://256.256.256.256/",
        long.as_str(),
    ] {
        let err = parse_url(raw).expect_err(raw);
        assert_eq!(err.code(), codes::WEBSITE_URL_INVALID, "{raw:?}");
    }
}

#[test]
fn parse_url_accepts_normal_urls() {
    for raw in [
        "https://www.example.com",
        "http://example.com:8080/path?q=1#frag",
        " https://example.com/ ",
        "https://例子.测试/",
        "https://1.1.1.1/",
        "https://[2606:4700:4700::1111]/",
    ] {
        assert!(parse_url(raw).is_ok(), "{raw}");
    }
}

#[test]
fn allowlist_is_precise() {
    let guard = UrlGuard::with_test_allowlist(vec![(ip("127.0.0.1"), 32)]);
    assert!(guard.permits(ip("127.0.0.1")));
    for addr in [
        "127.0.0.2",
        "::1",
        "10.0.0.1",
        "169.254.169.254",
        "::ffff:127.0.0.1",
    ] {
        assert!(!guard.permits(ip(addr)), "{addr}");
    }
}

#[tokio::test]
async fn names_resolving_to_loopback_are_refused() {
    // The guard refuses `localhost` by rule; this exercises the DNS path with any other dotted
    // name the machine's /etc/hosts maps to a loopback address, when there is one.
    let hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    let name = hosts
        .lines()
        .filter(|l| l.starts_with("127."))
        .flat_map(|l| l.split_whitespace().skip(1))
        .find(|n| {
            !n.contains("localhost")
                && n.contains('.')
                && n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        })
        .map(str::to_owned);
    let Some(name) = name else {
        eprintln!("no non-localhost loopback name in /etc/hosts; DNS path not exercised");
        return;
    };
    let url = parse_url(&format!("http://{name}/")).expect("url");
    match UrlGuard::default().resolve(&url).await {
        Err(e) => assert_eq!(e.code(), codes::WEBSITE_ADDRESS_FORBIDDEN, "{name}: {e}"),
        Ok(addr) => panic!("{name} resolved to {addr} and was allowed"),
    }
}

#[tokio::test]
async fn unresolvable_names_fail_dns() {
    let checker = WebsiteChecker {
        timeout: std::time::Duration::from_secs(5),
        ..WebsiteChecker::default()
    };
    // .invalid is reserved (RFC 6761) and never resolves.
    let report = checker.check("http://no-such-host.invalid/").await;
    assert_eq!(report.findings.len(), 1);
    assert_eq!(
        report.findings[0].code,
        codes::WEBSITE_DNS_FAILED,
        "{:?}",
        report.findings
    );
}
