//! The one-hop reference: `grpc.health.v1.Health/Check` served by a bare tonic server with the
//! same tower stack as every service as the bench configures them (kg_runtime::server::serve:
//! the 30 s request timeout, kg-runtime's trace span, the per-RPC metrics layer, the auth layer
//! and the rate-limit layer, both switched off) and nothing else: no database, no reflection, no
//! health probes. It runs as its own process (`kg-bench echo-server`), like the services, with
//! the same default worker count.

use std::net::SocketAddr;
use std::time::Duration;

use kg_runtime::auth::AuthLayer;
use kg_runtime::metrics::Metrics;
use kg_runtime::ratelimit::RateLimitLayer;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::Server;

pub async fn serve(listen: SocketAddr) -> anyhow::Result<()> {
    let _telemetry =
        kg_runtime::telemetry::init("kg-bench-echo", kg_runtime::config::LogFormat::Text);
    // tonic-health answers Check("") with SERVING from the start: the echo.
    let (_reporter, health) = tonic_health::server::health_reporter();
    let listener = TcpListener::bind(listen).await?;
    let metrics = Metrics::default();
    Server::builder()
        .timeout(Duration::from_secs(30))
        .trace_fn(|request| kg_runtime::telemetry::server_span("kg-bench-echo", request))
        .layer(metrics.layer())
        .layer(AuthLayer::new(None, "", |_| {
            kg_runtime::auth::roles::EVERYONE
        }))
        .layer(RateLimitLayer::new(None))
        .add_service(health)
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
