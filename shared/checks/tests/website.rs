//! Website check against local axum servers on 127.0.0.1, reached through the test allowlist
//! `127.0.0.1/32`. Redirects to other internal addresses must still be refused.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use kg_checks::finding::codes;
use kg_checks::urlguard::UrlGuard;
use kg_checks::website::{WebsiteChecker, WebsiteReport};

const ENGLISH_PAGE: &str = r#"<!DOCTYPE html><html><head><title>Acme Cloud Backup</title>
<style>body { font-family: sans-serif }</style><script>var tracking = "统计代码";</script></head>
<body><h1>Acme Cloud Backup</h1><p>We build backup and disaster recovery software for small and
medium businesses. Our product protects your databases and file servers, and it helps you
restore them in minutes. Contact our sales team to start a free trial today.</p></body></html>"#;

const CHINESE_PAGE: &str = r#"<!DOCTYPE html><html lang="zh-CN"><head><title>云备份</title></head>
<body><nav>Home | About</nav><h1>云备份解决方案</h1><p>我们是一家专注于云计算和大数据服务的高科技企业，
为客户提供安全可靠的数据备份与灾难恢复解决方案，帮助企业在数分钟内恢复业务。欢迎联系我们的销售团队。</p></body></html>"#;

const CHINESE_WITH_HREFLANG: &str = r#"<!DOCTYPE html><html lang="zh-CN"><head><title>云备份</title>
<link rel="alternate" hreflang="en" href="/en/"><link rel="alternate" hreflang="zh-CN" href="/"></head>
<body><h1>云备份解决方案</h1><p>我们是一家专注于云计算和大数据服务的高科技企业，为客户提供安全可靠的解决方案。</p></body></html>"#;

fn html(body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
}

fn redirect(to: String) -> Response {
    (StatusCode::FOUND, [(header::LOCATION, to)]).into_response()
}

async fn start_server() -> SocketAddr {
    let app = Router::new()
        .route("/", get(|| async { html(ENGLISH_PAGE) }))
        .route("/zh", get(|| async { html(CHINESE_PAGE) }))
        .route(
            "/zh-hreflang",
            get(|| async { html(CHINESE_WITH_HREFLANG) }),
        )
        .route(
            "/zh-content-language",
            get(|| async {
                (
                    [
                        (header::CONTENT_TYPE, "text/html"),
                        (header::CONTENT_LANGUAGE, "zh-CN, en"),
                    ],
                    CHINESE_PAGE,
                )
            }),
        )
        .route(
            "/gbk",
            get(|| async {
                let (bytes, _, _) = encoding_rs::GBK.encode(CHINESE_PAGE);
                (
                    [(header::CONTENT_TYPE, "text/html; charset=GBK")],
                    bytes.into_owned(),
                )
            }),
        )
        .route(
            "/negotiate",
            get(|headers: HeaderMap| async move {
                let wants_english = headers
                    .get(header::ACCEPT_LANGUAGE)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.starts_with("en"));
                html(if wants_english {
                    ENGLISH_PAGE
                } else {
                    CHINESE_PAGE
                })
            }),
        )
        .route(
            "/not-found",
            get(|| async { (StatusCode::NOT_FOUND, "gone") }),
        )
        .route(
            "/to-private",
            get(|| async { redirect("http://10.0.0.1/".into()) }),
        )
        .route(
            "/to-metadata",
            get(|| async { redirect("http://169.254.169.254/latest/meta-data/".into()) }),
        )
        .route(
            "/to-protocol-relative",
            get(|| async { redirect("//10.0.0.1/admin".into()) }),
        )
        .route(
            "/to-file",
            get(|| async { redirect("file:///etc/passwd".into()) }),
        )
        .route("/to-relative", get(|| async { redirect("/".into()) }))
        .route("/loop", get(|| async { redirect("/loop".into()) }))
        .route(
            "/chain/{n}",
            get(|Path(n): Path<u32>| async move {
                if n == 0 {
                    html(ENGLISH_PAGE)
                } else {
                    redirect(format!("/chain/{}", n - 1))
                }
            }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                html(ENGLISH_PAGE)
            }),
        )
        .route(
            "/huge",
            get(|| async {
                // An endless English body: the check must stop reading at the cap.
                let chunk = Bytes::from(ENGLISH_PAGE.repeat(64));
                let stream =
                    futures::stream::repeat_with(move || Ok::<_, Infallible>(chunk.clone()));
                (
                    [(header::CONTENT_TYPE, "text/html")],
                    Body::from_stream(stream),
                )
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind test server");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

fn checker() -> WebsiteChecker {
    WebsiteChecker {
        guard: UrlGuard::with_test_allowlist(vec![(IpAddr::V4(Ipv4Addr::LOCALHOST), 32)]),
        timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(2),
        ..WebsiteChecker::default()
    }
}

fn codes_of(report: &WebsiteReport) -> Vec<&'static str> {
    report.findings.iter().map(|f| f.code).collect()
}

#[tokio::test]
async fn english_page_passes() {
    let addr = start_server().await;
    let url = format!("http://{addr}/");
    let report = checker().check(&url).await;
    assert!(report.passed(), "{:?}", report.findings);
    let ev = &report.evidence;
    assert_eq!(ev.requested_url, url);
    assert_eq!(ev.final_url.as_deref(), Some(url.as_str()));
    assert_eq!(ev.http_status, Some(200));
    assert_eq!(
        ev.resolved_address.as_deref(),
        Some(addr.to_string().as_str())
    );
    assert_eq!(ev.detected_language.as_deref(), Some("en"));
    assert_eq!(ev.english_signal, Some("visible text"));
    assert!(ev.redirects.is_empty());
    assert!(!ev.body_truncated);
    assert_eq!(ev.body_bytes, ENGLISH_PAGE.len());
}

#[tokio::test]
async fn chinese_page_fails_not_english() {
    let addr = start_server().await;
    let report = checker().check(&format!("http://{addr}/zh")).await;
    assert_eq!(codes_of(&report), [codes::WEBSITE_NOT_ENGLISH]);
    assert_eq!(report.evidence.detected_language.as_deref(), Some("zh"));
    assert!(
        report.findings[0].message.contains("zh-CN"),
        "{}",
        report.findings[0].message
    );
}

#[tokio::test]
async fn gbk_encoded_chinese_page_is_decoded_and_fails() {
    let addr = start_server().await;
    let report = checker().check(&format!("http://{addr}/gbk")).await;
    assert_eq!(codes_of(&report), [codes::WEBSITE_NOT_ENGLISH]);
    assert_eq!(report.evidence.detected_language.as_deref(), Some("zh"));
}

#[tokio::test]
async fn chinese_page_with_english_hreflang_passes() {
    let addr = start_server().await;
    let report = checker().check(&format!("http://{addr}/zh-hreflang")).await;
    assert!(report.passed(), "{:?}", report.findings);
    assert_eq!(report.evidence.english_signal, Some("hreflang alternate"));
}

#[tokio::test]
async fn english_content_language_header_passes() {
    let addr = start_server().await;
    let report = checker()
        .check(&format!("http://{addr}/zh-content-language"))
        .await;
    assert!(report.passed(), "{:?}", report.findings);
    assert_eq!(
        report.evidence.content_language.as_deref(),
        Some("zh-CN, en")
    );
    assert_eq!(
        report.evidence.english_signal,
        Some("content-language header")
    );
}

#[tokio::test]
async fn english_is_requested_with_accept_language() {
    let addr = start_server().await;
    let report = checker().check(&format!("http://{addr}/negotiate")).await;
    assert!(report.passed(), "{:?}", report.findings);
}

#[tokio::test]
async fn closed_port_is_unreachable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let report = checker().check(&format!("http://{addr}/")).await;
    assert_eq!(codes_of(&report), [codes::WEBSITE_UNREACHABLE]);
    assert!(
        report.findings[0].message.contains("connection failed"),
        "{}",
        report.findings[0].message
    );
}

#[tokio::test]
async fn slow_server_times_out_within_budget() {
    let addr = start_server().await;
    let checker = WebsiteChecker {
        timeout: Duration::from_millis(800),
        ..checker()
    };
    let started = Instant::now();
    let report = checker.check(&format!("http://{addr}/slow")).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(codes_of(&report), [codes::WEBSITE_UNREACHABLE]);
    assert!(
        report.findings[0].message.contains("in time"),
        "{}",
        report.findings[0].message
    );
}

#[tokio::test]
async fn http_error_status_fails() {
    let addr = start_server().await;
    let report = checker().check(&format!("http://{addr}/not-found")).await;
    assert_eq!(codes_of(&report), [codes::WEBSITE_HTTP_STATUS]);
    assert_eq!(report.evidence.http_status, Some(404));
    assert!(report.findings[0].message.contains("404"));
}

#[tokio::test]
async fn redirect_to_private_address_is_refused() {
    let addr = start_server().await;
    for (path, target) in [
        ("/to-private", "http://10.0.0.1/"),
        ("/to-metadata", "http://169.254.169.254/latest/meta-data/"),
        ("/to-protocol-relative", "http://10.0.0.1/admin"),
    ] {
        let report = checker().check(&format!("http://{addr}{path}")).await;
        assert_eq!(
            codes_of(&report),
            [codes::WEBSITE_ADDRESS_FORBIDDEN],
            "{path}"
        );
        assert_eq!(report.evidence.redirects, [target], "{path}");
        assert!(
            report.findings[0].message.contains("redirect 1"),
            "{}",
            report.findings[0].message
        );
        // The refused hop was never requested: the last response is the redirect itself.
        assert_eq!(
            report.evidence.resolved_address.as_deref(),
            Some(addr.to_string().as_str())
        );
    }
}

#[tokio::test]
async fn redirect_to_other_loopback_forms_is_refused_despite_the_allowlist() {
    let addr = start_server().await;
    let port = addr.port();
    for target in [
        format!("http://127.0.0.2:{port}/"),
        format!("http://localhost:{port}/"),
        format!("http://[::1]:{port}/"),
        format!("http://[::ffff:127.0.0.1]:{port}/"),
        format!("http://0x7f.0.0.2:{port}/"),
        format!("http://2130706434:{port}/"),
    ] {
        let app_addr = start_redirector(target.clone()).await;
        let report = checker().check(&format!("http://{app_addr}/")).await;
        assert_eq!(
            codes_of(&report),
            [codes::WEBSITE_ADDRESS_FORBIDDEN],
            "{target}"
        );
    }
}

async fn start_redirector(target: String) -> SocketAddr {
    let app = Router::new().route("/", get(move || async move { redirect(target) }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

#[tokio::test]
async fn redirect_to_non_http_scheme_is_invalid() {
    let addr = start_server().await;
    let report = checker().check(&format!("http://{addr}/to-file")).await;
    assert_eq!(codes_of(&report), [codes::WEBSITE_URL_INVALID]);
}

#[tokio::test]
async fn allowed_redirects_are_followed_and_recorded() {
    let addr = start_server().await;
    let report = checker().check(&format!("http://{addr}/to-relative")).await;
    assert!(report.passed(), "{:?}", report.findings);
    assert_eq!(report.evidence.redirects, [format!("http://{addr}/")]);
    assert_eq!(report.evidence.final_url, Some(format!("http://{addr}/")));

    // Exactly max_redirects (5) hops is fine.
    let report = checker().check(&format!("http://{addr}/chain/5")).await;
    assert!(report.passed(), "{:?}", report.findings);
    assert_eq!(report.evidence.redirects.len(), 5);
}

#[tokio::test]
async fn too_many_redirects() {
    let addr = start_server().await;
    let report = checker().check(&format!("http://{addr}/loop")).await;
    assert_eq!(codes_of(&report), [codes::WEBSITE_TOO_MANY_REDIRECTS]);
    assert_eq!(report.evidence.redirects.len(), 5);
    assert_eq!(report.evidence.http_status, Some(302));

    let report = checker().check(&format!("http://{addr}/chain/6")).await;
    assert_eq!(codes_of(&report), [codes::WEBSITE_TOO_MANY_REDIRECTS]);
}

#[tokio::test]
async fn endless_body_is_capped() {
    let addr = start_server().await;
    let checker = WebsiteChecker {
        max_body_bytes: 256 * 1024,
        ..checker()
    };
    let started = Instant::now();
    let report = checker.check(&format!("http://{addr}/huge")).await;
    assert!(report.passed(), "{:?}", report.findings);
    assert_eq!(report.evidence.body_bytes, 256 * 1024);
    assert!(report.evidence.body_truncated);
    assert!(started.elapsed() < Duration::from_secs(4));

    // The default cap is 1 MiB.
    let report = super_default_cap(addr).await;
    assert_eq!(report.evidence.body_bytes, 1024 * 1024);
    assert!(report.evidence.body_truncated);
}

async fn super_default_cap(addr: SocketAddr) -> WebsiteReport {
    checker().check(&format!("http://{addr}/huge")).await
}

#[tokio::test]
async fn invalid_urls_are_reported_without_any_request() {
    for raw in [
        "",
        "not a url",
        "ftp://example.com/",
        "http://user:pw@example.com/",
    ] {
        let report = checker().check(raw).await;
        assert_eq!(codes_of(&report), [codes::WEBSITE_URL_INVALID], "{raw:?}");
        assert_eq!(report.evidence.resolved_address, None);
    }
}
