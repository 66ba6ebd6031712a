//! What operators' tools see of a running mesh (identity-check and registration in process, with
//! their metrics endpoints):
//! - `/metrics` carries the OpenTelemetry RPC metrics (server and client side, with method and
//!   status labels, measured to the end of the call: a stream held open for a second counts a
//!   second), `process_*` and `koogallery_build_info`;
//! - a real Prometheus (Debian `prometheus`) scrapes those endpoints with the chart's alert
//!   rules, and the outbox-backlog alert goes pending once events cannot be delivered.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use kg_proto::identity::ImportAccountsRequest;
use kg_proto::identity::identity_check_service_client::IdentityCheckServiceClient;
use kg_proto::registration::WatchEventsRequest;
use kg_proto::registration::registration_service_client::RegistrationServiceClient;
use kg_tests::mesh::{self, Running};
use kg_tests::{fixtures, free_port, poll};

/// GET `path` over plain HTTP/1.0; empty on any failure (the caller polls).
async fn http_get(addr: SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else {
        return String::new();
    };
    let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    if stream.write_all(request.as_bytes()).await.is_err() {
        return String::new();
    }
    let mut body = String::new();
    let _ = stream.read_to_string(&mut body).await;
    body
}

/// The value of the sample whose line starts with `name{` and contains every one of `labels`.
fn sample(body: &str, name: &str, labels: &[&str]) -> Option<f64> {
    body.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .find(|l| labels.iter().all(|want| l.contains(want)))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_the_conventions_and_prometheus_raises_the_backlog_alert() {
    let website = fixtures::Website::start().await.unwrap();
    let identity_db = mesh::fresh_db().await.unwrap();
    let registration_db = mesh::fresh_db().await.unwrap();
    let identity_metrics = local(free_port());
    let registration_metrics = local(free_port());

    let mut identity_config = kg_identity_check::Config {
        common: mesh::common(&identity_db.url),
        website_test_allowlist: vec!["127.0.0.1/32".to_string()],
    };
    identity_config.common.metrics_addr = Some(identity_metrics);
    let identity = Running::start(mesh::any_port(), move |l, s| {
        kg_identity_check::run(identity_config, l, s)
    })
    .await
    .unwrap();
    // review and notification point at port 9 (nothing): the events of a submission stay in
    // registration's outbox, which is the condition the backlog alert is about
    let mut registration_config =
        mesh::registration_config(&registration_db.url, &identity.url(), None);
    registration_config.common.metrics_addr = Some(registration_metrics);
    let registration = mesh::start_registration(registration_config).await.unwrap();

    IdentityCheckServiceClient::new(identity.channel().await.unwrap())
        .import_accounts(ImportAccountsRequest {
            request_id: uuid::Uuid::new_v4().to_string(),
            accounts: vec![fixtures::eligible_account("acct-observe")],
        })
        .await
        .unwrap();
    let mut client = RegistrationServiceClient::new(registration.channel().await.unwrap());
    client
        .submit_application(fixtures::submission(
            "acct-observe",
            15,
            &website.url("/en"),
        ))
        .await
        .unwrap();
    // refused: an unknown account (FAILED_PRECONDITION from identity-check's eligibility)
    let refused = client
        .submit_application(fixtures::submission(
            "acct-unknown",
            16,
            &website.url("/en"),
        ))
        .await
        .unwrap_err();
    assert_eq!(
        refused.code(),
        tonic::Code::FailedPrecondition,
        "{refused:?}"
    );

    // A stream held open ~1.2 s, then dropped by the client: its duration is the stream's,
    // not the time to its response headers.
    let mut stream = client
        .watch_events(WatchEventsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let until = tokio::time::Instant::now() + Duration::from_millis(1200);
    // the submission's events arrive first; read until the time is up
    while let Ok(Ok(Some(_))) = tokio::time::timeout_at(until, stream.message()).await {}
    drop(stream);

    let submit = r#"rpc_method="koogallery.registration.v1.RegistrationService/SubmitApplication""#;
    let watch = r#"rpc_method="koogallery.registration.v1.RegistrationService/WatchEvents""#;
    let eligibility =
        r#"rpc_method="koogallery.identity.v1.IdentityCheckService/CheckEligibility""#;
    let body = poll(
        "the metrics of the calls",
        Duration::from_secs(10),
        || async {
            let body = http_get(registration_metrics, "/metrics").await;
            sample(
                &body,
                "rpc_server_call_duration_seconds_count",
                &[watch, r#"rpc_response_status_code="CANCELLED""#],
            )
            .is_some()
            .then_some(body)
        },
    )
    .await;
    let grpc = r#"rpc_system_name="grpc""#;
    assert_eq!(
        sample(
            &body,
            "rpc_server_call_duration_seconds_count",
            &[grpc, submit, r#"rpc_response_status_code="OK""#]
        ),
        Some(1.0),
        "{body}"
    );
    assert_eq!(
        sample(
            &body,
            "rpc_server_call_duration_seconds_count",
            &[submit, r#"rpc_response_status_code="FAILED_PRECONDITION""#]
        ),
        Some(1.0),
        "{body}"
    );
    // the stream lasted over a second: nothing in the buckets below 1 s
    assert_eq!(
        sample(
            &body,
            "rpc_server_call_duration_seconds_bucket",
            &[watch, r#"le="0.75""#]
        ),
        Some(0.0),
        "{body}"
    );
    assert_eq!(
        sample(&body, "rpc_server_active_calls", &[grpc, watch]),
        Some(0.0),
        "{body}"
    );
    // registration's own calls to identity-check, client side
    let client_calls = sample(
        &body,
        "rpc_client_call_duration_seconds_count",
        &[grpc, eligibility, r#"rpc_response_status_code="OK""#],
    );
    assert!(client_calls.is_some_and(|n| n >= 2.0), "{body}");
    for family in [
        "process_cpu_seconds_total ",
        "process_resident_memory_bytes ",
        "process_open_fds ",
        "process_start_time_seconds ",
        "# UNIT rpc_server_call_duration_seconds seconds",
        "# TYPE rpc_client_call_duration_seconds histogram",
    ] {
        assert!(body.contains(family), "{family} missing: {body}");
    }
    let build = sample(
        &body,
        "koogallery_build_info",
        &[r#"service="registration""#],
    );
    assert_eq!(build, Some(1.0), "{body}");
    assert!(
        body.contains("koogallery_registration_outbox_backlog"),
        "{body}"
    );

    // The backlog gauge is refreshed every 15 s. Prometheus must see it above 0 from its first
    // scrape on: the rule takes the minimum over 15 minutes, so one early 0 keeps it quiet for
    // a quarter of an hour.
    poll(
        "the backlog gauge above 0",
        Duration::from_secs(40),
        || async {
            let body = http_get(registration_metrics, "/metrics").await;
            body.lines()
                .find_map(|l| l.strip_prefix("koogallery_registration_outbox_backlog "))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|v| *v > 0.0)
        },
    )
    .await;

    // A real Prometheus with the chart's rules, scraping both services every second.
    let dir = tempfile::tempdir().unwrap();
    let rules = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../helm/koogallery/files/prometheus-rules.yaml");
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
         rule_files:\n  - {rules}\n\
         scrape_configs:\n\
         \x20 - job_name: registration\n    static_configs:\n      - targets: ['{registration_metrics}']\n\
         \x20 - job_name: identity-check\n    static_configs:\n      - targets: ['{identity_metrics}']\n",
        rules = rules.display()
    );
    std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
    let web = local(free_port());
    let mut prometheus = tokio::process::Command::new("prometheus")
        .arg(format!(
            "--config.file={}",
            dir.path().join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address={web}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("prometheus (Debian package `prometheus`) on PATH");

    // both targets up: Prometheus reads our exposition format
    poll("both targets up", Duration::from_secs(30), || async {
        let body = http_get(web, "/api/v1/query?query=sum(up)").await;
        body.contains(r#""value":["#)
            .then(|| body.contains(r#","2"]"#))
            .and_then(|up| up.then_some(()))
    })
    .await;
    let alerts = poll(
        "KooGalleryOutboxBacklog pending",
        // the rule's subquery steps on whole minutes: up to one before the first point
        Duration::from_secs(120),
        || async {
            let body = http_get(web, "/api/v1/alerts").await;
            (body.contains(r#""alertname":"KooGalleryOutboxBacklog""#)
                && body.contains(r#""outbox":"registration_outbox""#)
                && body.contains(r#""state":"pending""#))
            .then_some(body)
        },
    )
    .await;
    // the mesh has no dead letters: that alert stays quiet
    assert!(!alerts.contains("KooGalleryOutboxDeadLetters"), "{alerts}");

    prometheus.kill().await.unwrap();
    registration.stop().await.unwrap();
    identity.stop().await.unwrap();
}
