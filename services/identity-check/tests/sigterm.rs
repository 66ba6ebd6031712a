//! SIGTERM lets in-flight RPCs finish, then the process exits 0. The in-flight RPC is a website
//! check against a local site that answers slowly.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

use std::process::Stdio;
use std::time::{Duration, Instant};

use kg_proto::identity::CheckWebsiteRequest;
use kg_proto::identity::identity_check_service_client::IdentityCheckServiceClient;
use tonic::transport::Endpoint;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

const PAGE: &str = "<html lang=\"en\"><body><p>Slow but English: we sell cloud monitoring tools.</p></body></html>";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn sigterm_lets_in_flight_rpcs_finish_and_exits_zero() {
    let site = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let site_addr = site.local_addr().unwrap();
    let app = axum::Router::new().route(
        "/",
        axum::routing::get(|| async {
            tokio::time::sleep(Duration::from_secs(2)).await;
            axum::response::Html(PAGE)
        }),
    );
    tokio::spawn(async move { axum::serve(site, app).await });

    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_koogallery-identity-check"))
        .env("KG_LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env(
            "KG_DATABASE_URL",
            format!("sqlite://{}?mode=rwc", dir.path().join("id.db").display()),
        )
        .env("KG_WEBSITE_TEST_ALLOWLIST", "127.0.0.1/32")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    let channel = Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect_lazy();
    let started = Instant::now();
    loop {
        let status = HealthClient::new(channel.clone())
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .map(|r| r.into_inner().status);
        if matches!(status, Ok(1)) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "never SERVING: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let mut client = IdentityCheckServiceClient::new(channel);
    let in_flight = tokio::spawn(async move {
        client
            .check_website(CheckWebsiteRequest {
                website_url: format!("http://{site_addr}/"),
            })
            .await
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pid = child.id().unwrap();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());

    let reply = in_flight
        .await
        .unwrap()
        .expect("the in-flight RPC completes after SIGTERM");
    assert_eq!(
        reply.into_inner().outcome,
        kg_proto::common::CheckOutcome::Passed as i32,
        "the slow English site passes"
    );
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("process exits after SIGTERM")
        .unwrap();
    assert_eq!(status.code(), Some(0));
}
