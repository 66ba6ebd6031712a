//! Website check: the company website must be reachable over HTTP(S) and serve English.
//!
//! Every hop goes through the [`UrlGuard`]: the URL is vetted, its host resolved once and checked
//! against the forbidden ranges, and the HTTP client is pinned to exactly that address (a fixed
//! resolver override, plus a DNS resolver that can only ever answer with that address, plus no
//! proxy), so a DNS answer cannot change between the check and the connection. Redirects are
//! followed by hand, re-validating each `Location` the same way, up to
//! [`WebsiteChecker::max_redirects`]. The whole check, DNS included, runs within
//! [`WebsiteChecker::timeout`]; the body is read up to [`WebsiteChecker::max_body_bytes`] and the
//! rest ignored.
//!
//! The site counts as English if any of these holds, checked in this order (the first that holds
//! is recorded in [`WebsiteEvidence::english_signal`]):
//! 1. the `Content-Language` header lists an English tag;
//! 2. `<html lang="en…">`;
//! 3. `<meta http-equiv="Content-Language" content="en…">`;
//! 4. a `<link rel="alternate" hreflang="en…">` announces an English version;
//! 5. the visible text (markup, scripts, styles and `<noscript>` removed) is detected as English by
//!    [`lang::is_english_text`].

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use encoding_rs::Encoding;
use reqwest::header::{self, HeaderMap, HeaderValue};
use serde::Serialize;
use tokio::time::{Instant, timeout_at};
use tracing::Instrument;
use url::{Host, Url};

use crate::finding::{self, Finding, codes, quote};
use crate::lang;
use crate::urlguard::{GuardError, MAX_URL_LEN, UrlGuard, parse_url};

/// Field name used in the findings.
pub const FIELD_WEBSITE: &str = "website";

/// Sent so that site operators can recognise the check in their logs.
pub const USER_AGENT: &str =
    "Mozilla/5.0 (compatible; KooGallerySellerCheck/1.0; +seller website verification)";

/// Configuration of the website check.
#[derive(Debug, Clone)]
pub struct WebsiteChecker {
    /// Address policy; [`UrlGuard::default`] in production.
    pub guard: UrlGuard,
    /// Budget for the whole check: DNS, connects, redirects and body (default 10 s).
    pub timeout: Duration,
    /// Budget for one TCP (and TLS) connect (default 5 s).
    pub connect_timeout: Duration,
    /// Redirects followed before giving up (default 5).
    pub max_redirects: usize,
    /// Body bytes read at most; the rest is ignored, not an error (default 1 MiB).
    pub max_body_bytes: usize,
}

impl Default for WebsiteChecker {
    fn default() -> Self {
        Self {
            guard: UrlGuard::default(),
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            max_redirects: 5,
            max_body_bytes: 1024 * 1024,
        }
    }
}

/// What the check found.
#[derive(Debug, Clone, Serialize)]
pub struct WebsiteReport {
    /// Problems; empty when the site passed.
    pub findings: Vec<Finding>,
    /// What was observed, for the reviewer and the audit trail.
    pub evidence: WebsiteEvidence,
}

impl WebsiteReport {
    /// True when there is no error finding.
    pub fn passed(&self) -> bool {
        finding::passed(&self.findings)
    }
}

/// What the check observed.
#[derive(Debug, Clone, Serialize)]
pub struct WebsiteEvidence {
    /// The URL as submitted (control characters replaced, cut at 2048 characters).
    pub requested_url: String,
    /// The URL of the last response received (after redirects), if any response was received.
    pub final_url: Option<String>,
    /// Status of the last response received.
    pub http_status: Option<u16>,
    /// The address connected to for the last hop (`ip:port`).
    pub resolved_address: Option<String>,
    /// Language detected in the visible text (ISO 639-1 where one exists).
    pub detected_language: Option<String>,
    /// The `Content-Language` header of the final response.
    pub content_language: Option<String>,
    /// Every redirect target followed, in order.
    pub redirects: Vec<String>,
    /// When the check started.
    pub checked_at: DateTime<Utc>,
    /// Body bytes read.
    pub body_bytes: usize,
    /// True when the body was longer than the cap (or cut by the deadline) and only a prefix read.
    pub body_truncated: bool,
    /// Which signal showed the site is English (see the module docs), if any.
    pub english_signal: Option<&'static str>,
}

impl WebsiteEvidence {
    fn new(raw_url: &str) -> Self {
        Self {
            requested_url: raw_url
                .chars()
                .take(MAX_URL_LEN)
                .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
                .collect(),
            final_url: None,
            http_status: None,
            resolved_address: None,
            detected_language: None,
            content_language: None,
            redirects: Vec::new(),
            checked_at: Utc::now(),
            body_bytes: 0,
            body_truncated: false,
            english_signal: None,
        }
    }
}

fn error(code: &'static str, message: impl Into<String>) -> Finding {
    Finding::error(code, FIELD_WEBSITE, message)
}

impl WebsiteChecker {
    /// Check a website URL as typed by the applicant. Never panics and never takes (much) longer
    /// than [`WebsiteChecker::timeout`].
    pub async fn check(&self, raw_url: &str) -> WebsiteReport {
        let mut evidence = WebsiteEvidence::new(raw_url);
        let deadline = Instant::now() + self.timeout;
        // The inner steps all honour the deadline; the outer bound is a backstop.
        let backstop = deadline + Duration::from_secs(1);
        let findings = match timeout_at(backstop, self.run(raw_url, deadline, &mut evidence)).await
        {
            Ok(findings) => findings,
            Err(_) => vec![self.timed_out()],
        };
        WebsiteReport { findings, evidence }
    }

    fn timed_out(&self) -> Finding {
        error(
            codes::WEBSITE_UNREACHABLE,
            format!(
                "the website did not respond in time (timeout {} s)",
                self.timeout.as_secs_f64()
            ),
        )
    }

    async fn run(
        &self,
        raw_url: &str,
        deadline: Instant,
        ev: &mut WebsiteEvidence,
    ) -> Vec<Finding> {
        let mut url = match parse_url(raw_url) {
            Ok(url) => url,
            Err(e) => return vec![e.to_finding(FIELD_WEBSITE)],
        };
        let mut redirects = 0usize;
        let response = loop {
            let addr = match timeout_at(deadline, self.guard.resolve(&url)).await {
                Ok(Ok(addr)) => addr,
                Ok(Err(e)) => return vec![hop_finding(&e, redirects, &url)],
                Err(_) => {
                    return vec![error(
                        codes::WEBSITE_DNS_FAILED,
                        format!("resolving {} timed out", url.host_str().unwrap_or("")),
                    )];
                }
            };
            ev.resolved_address = Some(addr.to_string());

            let client = match self.client_for(&url, addr) {
                Ok(client) => client,
                Err(e) => {
                    return vec![error(
                        codes::WEBSITE_UNREACHABLE,
                        format!("could not set up the HTTP client: {}", error_chain(&e)),
                    )];
                }
            };
            let span = http_span(&url);
            let sent = timeout_at(deadline, client.get(url.clone()).send())
                .instrument(span.clone())
                .await;
            record_http_outcome(&span, &sent);
            let response = match sent {
                Ok(Ok(response)) => response,
                Ok(Err(e)) if e.is_connect() && e.is_timeout() => {
                    return vec![error(
                        codes::WEBSITE_UNREACHABLE,
                        format!(
                            "connecting to the website {} ({addr}) timed out (connect timeout {} s)",
                            quote(url.as_str(), 200),
                            self.connect_timeout.as_secs_f64()
                        ),
                    )];
                }
                Ok(Err(e)) if e.is_timeout() => return vec![self.timed_out()],
                Ok(Err(e)) => return vec![unreachable(&e, &url, addr)],
                Err(_) => return vec![self.timed_out()],
            };

            let status = response.status();
            let location = response.headers().get(header::LOCATION).cloned();
            match (status.is_redirection(), location) {
                (true, Some(location)) => {
                    if redirects >= self.max_redirects {
                        ev.final_url = Some(url.to_string());
                        ev.http_status = Some(status.as_u16());
                        return vec![error(
                            codes::WEBSITE_TOO_MANY_REDIRECTS,
                            format!(
                                "the website redirected more than {} times (last: {})",
                                self.max_redirects,
                                quote(url.as_str(), 200)
                            ),
                        )];
                    }
                    let next = match next_hop(&url, &location) {
                        Ok(next) => next,
                        Err(e) => return vec![hop_finding(&e, redirects + 1, &url)],
                    };
                    ev.redirects.push(next.to_string());
                    redirects += 1;
                    url = next;
                }
                _ => break response,
            }
        };

        let status = response.status();
        ev.final_url = Some(url.to_string());
        ev.http_status = Some(status.as_u16());
        if !status.is_success() {
            return vec![error(
                codes::WEBSITE_HTTP_STATUS,
                format!(
                    "the website answered with HTTP status {}{} at {}",
                    status.as_u16(),
                    status
                        .canonical_reason()
                        .map(|r| format!(" {r}"))
                        .unwrap_or_default(),
                    quote(url.as_str(), 200)
                ),
            )];
        }

        let headers = response.headers().clone();
        let content_language = header_text(&headers, header::CONTENT_LANGUAGE);
        ev.content_language = content_language.clone();
        let charset = header_text(&headers, header::CONTENT_TYPE).and_then(|ct| charset_param(&ct));

        let (body, truncated) = match read_capped(response, self.max_body_bytes, deadline).await {
            Ok(read) => read,
            Err(e) => {
                return vec![error(
                    codes::WEBSITE_UNREACHABLE,
                    format!("reading the page failed: {}", error_chain(&e)),
                )];
            }
        };
        ev.body_bytes = body.len();
        ev.body_truncated = truncated;

        let text = decode_body(&body, charset.as_deref());
        let page = html::scan(&text);
        let guess = lang::is_english_text(&page.text);
        ev.detected_language = guess.lang.clone();

        ev.english_signal = if content_language
            .as_deref()
            .is_some_and(lang::language_list_has_english)
        {
            Some("content-language header")
        } else if page
            .html_lang
            .as_deref()
            .is_some_and(lang::language_tag_is_english)
        {
            Some("html lang attribute")
        } else if page
            .meta_content_language
            .as_deref()
            .is_some_and(lang::language_list_has_english)
        {
            Some("meta content-language")
        } else if page.hreflang_english {
            Some("hreflang alternate")
        } else if guess.english {
            Some("visible text")
        } else {
            None
        };
        if ev.english_signal.is_some() {
            return Vec::new();
        }

        let mut seen = Vec::new();
        seen.push(match &content_language {
            Some(cl) => format!("Content-Language {}", quote(cl, 40)),
            None => "no Content-Language header".to_owned(),
        });
        seen.push(match &page.html_lang {
            Some(l) => format!("<html lang={}>", quote(l, 40)),
            None => "no <html lang>".to_owned(),
        });
        seen.push("no English hreflang alternate".to_owned());
        seen.push(match &guess.lang {
            Some(l) => format!("visible text detected as {l}"),
            None => "no readable visible text".to_owned(),
        });
        vec![error(
            codes::WEBSITE_NOT_ENGLISH,
            format!(
                "the website does not appear to support English ({}); provide a website with an English version",
                seen.join(", ")
            ),
        )]
    }

    /// A client that can only ever connect to `addr`: redirects off, proxies off, the host pinned
    /// by a resolve override and, as a second lock, a DNS resolver that answers every name with
    /// `addr`.
    fn client_for(&self, url: &Url, addr: SocketAddr) -> Result<reqwest::Client, reqwest::Error> {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static(
                "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
            ),
        );
        headers.insert(
            header::ACCEPT_LANGUAGE,
            HeaderValue::from_static("en-US,en;q=0.9"),
        );
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(self.connect_timeout)
            .timeout(self.timeout)
            .user_agent(USER_AGENT)
            .default_headers(headers)
            .dns_resolver(Arc::new(PinnedResolver(addr)));
        if let Some(Host::Domain(domain)) = url.host() {
            builder = builder.resolve(domain, addr);
        }
        builder.build()
    }
}

/// A DNS resolver that answers every name with the one address the guard validated.
struct PinnedResolver(SocketAddr);

impl reqwest::dns::Resolve for PinnedResolver {
    fn resolve(&self, _name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let addr = self.0;
        let answer: Pin<Box<dyn Future<Output = _> + Send>> = Box::pin(async move {
            let addrs: reqwest::dns::Addrs = Box::new(std::iter::once(addr));
            Ok(addrs)
        });
        answer
    }
}

/// Resolve a `Location` header against the current URL and vet the result.
fn next_hop(current: &Url, location: &HeaderValue) -> Result<Url, GuardError> {
    let location = location.to_str().map_err(|_| {
        GuardError::InvalidUrl("the redirect Location header is not valid text".to_owned())
    })?;
    let joined = current.join(location.trim()).map_err(|e| {
        GuardError::InvalidUrl(format!(
            "the redirect target {} is not a valid URL ({e})",
            quote(location, 200)
        ))
    })?;
    parse_url(joined.as_str())
}

/// A guard refusal as a finding, saying whether it happened on a redirect.
fn hop_finding(e: &GuardError, redirects: usize, url: &Url) -> Finding {
    if redirects == 0 {
        e.to_finding(FIELD_WEBSITE)
    } else {
        error(
            e.code(),
            format!(
                "redirect {redirects} (from {}) refused: {e}",
                quote(url.as_str(), 200)
            ),
        )
    }
}

fn unreachable(e: &reqwest::Error, url: &Url, addr: SocketAddr) -> Finding {
    let what = if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    error(
        codes::WEBSITE_UNREACHABLE,
        format!(
            "the website {} ({addr}) is unreachable: {what}: {}",
            quote(url.as_str(), 200),
            error_chain(e)
        ),
    )
}

/// An error and its sources, joined, so that "connection refused" or "certificate expired" shows.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    let joined = parts.join(": ");
    joined.chars().take(500).collect()
}

fn header_text(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().chars().take(200).collect::<String>())
        .filter(|v| !v.is_empty())
}

/// The `charset` parameter of a `Content-Type` value.
fn charset_param(content_type: &str) -> Option<String> {
    content_type.split(';').skip(1).find_map(|param| {
        let (name, value) = param.split_once('=')?;
        name.trim().eq_ignore_ascii_case("charset").then(|| {
            value
                .trim()
                .trim_matches(|c| c == '"' || c == '\'')
                .to_owned()
        })
    })
}

/// Read at most `cap` body bytes before `deadline`. Hitting the cap or the deadline after some
/// bytes arrived is not an error: the prefix is enough to judge the language.
async fn read_capped(
    mut response: reqwest::Response,
    cap: usize,
    deadline: Instant,
) -> Result<(Vec<u8>, bool), reqwest::Error> {
    let mut body = Vec::with_capacity(cap.min(64 * 1024));
    loop {
        let chunk = match timeout_at(deadline, response.chunk()).await {
            Ok(Ok(Some(chunk))) => chunk,
            Ok(Ok(None)) => return Ok((body, false)),
            Ok(Err(e)) if body.is_empty() => return Err(e),
            Ok(Err(_)) | Err(_) => return Ok((body, true)),
        };
        let room = cap.saturating_sub(body.len());
        if chunk.len() > room {
            body.extend_from_slice(chunk.get(..room).unwrap_or_default());
            return Ok((body, true));
        }
        body.extend_from_slice(&chunk);
    }
}

/// Decode the body: a BOM wins, then the header charset, then a `<meta charset>` in the first
/// 4 KiB, then UTF-8. Undecodable bytes become U+FFFD.
fn decode_body(body: &[u8], header_charset: Option<&str>) -> String {
    if let Some((encoding, bom_len)) = Encoding::for_bom(body) {
        let rest = body.get(bom_len..).unwrap_or_default();
        return encoding.decode_without_bom_handling(rest).0.into_owned();
    }
    let declared = header_charset
        .and_then(|label| Encoding::for_label(label.as_bytes()))
        .or_else(|| {
            let head = String::from_utf8_lossy(body.get(..4096).unwrap_or(body));
            html::scan(&head)
                .meta_charset
                .and_then(|label| Encoding::for_label(label.as_bytes()))
        });
    // A page cannot really be UTF-16 without a BOM (WHATWG treats such labels as UTF-8).
    let encoding = match declared {
        Some(e) if e == encoding_rs::UTF_16LE || e == encoding_rs::UTF_16BE => encoding_rs::UTF_8,
        Some(e) => e,
        None => encoding_rs::UTF_8,
    };
    encoding.decode_without_bom_handling(body).0.into_owned()
}

pub(crate) mod html;

/// The OpenTelemetry HTTP client span of one request (one per redirect hop), without the
/// query, which may carry keys. Only identity-check runs the website check.
fn http_span(url: &Url) -> tracing::Span {
    let port = url.port_or_known_default().unwrap_or(0);
    let host = url.host_str().unwrap_or_default();
    tracing::info_span!(
        "http.client",
        otel.name = "GET",
        otel.kind = "client",
        http.request.method = "GET",
        url.full = %format!("{}://{host}:{port}{}", url.scheme(), url.path()),
        server.address = host,
        server.port = i64::from(port),
        http.response.status_code = tracing::field::Empty,
        error.type = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
        kg.service = "identity-check",
    )
}

type Sent = Result<Result<reqwest::Response, reqwest::Error>, tokio::time::error::Elapsed>;

fn record_http_outcome(span: &tracing::Span, sent: &Sent) {
    let failure = match sent {
        Ok(Ok(response)) => {
            let status = response.status().as_u16();
            span.record("http.response.status_code", i64::from(status));
            (status >= 400).then(|| status.to_string())
        }
        Ok(Err(e)) if e.is_timeout() => Some("timeout".to_string()),
        Ok(Err(e)) if e.is_connect() => Some("connect".to_string()),
        Ok(Err(_)) => Some("request".to_string()),
        Err(_) => Some("timeout".to_string()),
    };
    if let Some(kind) = failure {
        span.record("error.type", kind);
        span.record("otel.status_code", "error");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The client built for a hop must connect to the validated address and nowhere else, even
    /// for a name that does not exist in DNS: proof that no second lookup happens.
    #[tokio::test]
    async fn client_connects_only_to_the_pinned_address() {
        let app = axum::Router::new().route(
            "/",
            axum::routing::get(|headers: axum::http::HeaderMap| async move {
                headers
                    .get("host")
                    .and_then(|h| h.to_str().ok())
                    .unwrap_or("")
                    .to_owned()
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });

        let url =
            Url::parse(&format!("http://pinned.example.invalid:{}/", addr.port())).expect("url");
        let client = WebsiteChecker::default()
            .client_for(&url, addr)
            .expect("client");
        let response = client
            .get(url.clone())
            .send()
            .await
            .expect("pinned request");
        let host = response.text().await.expect("body");
        assert_eq!(host, format!("pinned.example.invalid:{}", addr.port()));
    }

    proptest::proptest! {
        #[test]
        fn html_scan_and_decoding_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let text = decode_body(&bytes, None);
            let _ = html::scan(&text);
            let _ = decode_body(&bytes, Some("gbk"));
            let _ = decode_body(&bytes, Some("utf-16"));
        }

        #[test]
        fn html_scan_never_panics_on_markup(text in "[<>/=\"' a-zA-Z!&#;x0-9é中-]{0,200}") {
            let _ = html::scan(&text);
        }
    }

    #[test]
    fn charset_parameter() {
        assert_eq!(
            charset_param("text/html; charset=\"GBK\"").as_deref(),
            Some("GBK")
        );
        assert_eq!(charset_param("text/html").as_deref(), None);
    }

    #[test]
    fn decodes_gbk_and_bom() {
        let (gbk, _, _) = encoding_rs::GBK.encode("我们是一家云计算公司");
        assert_eq!(decode_body(&gbk, Some("gbk")), "我们是一家云计算公司");
        let mut meta = b"<meta charset=\"gb2312\">".to_vec();
        meta.extend_from_slice(&gbk);
        assert!(decode_body(&meta, None).ends_with("我们是一家云计算公司"));
        let bom = [0xEF, 0xBB, 0xBF, b'h', b'i'];
        assert_eq!(decode_body(&bom, Some("gbk")), "hi");
    }
}
