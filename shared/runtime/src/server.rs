//! The scaffolding every service runs in: one gRPC server with health, reflection (v1 and
//! v1alpha), per-RPC metrics and tracing, serving until shutdown, then draining in-flight RPCs.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::body::Body;
use tonic::server::NamedService;
use tonic::transport::Server;
use tonic_health::ServingStatus;

use crate::health::{self, Probe};
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;

/// Everything a service's server needs besides the service itself.
pub struct ServeOptions {
    /// Short name for logs: `registration`.
    pub name: &'static str,
    pub listener: TcpListener,
    pub metrics: Metrics,
    pub metrics_addr: Option<SocketAddr>,
    pub probes: Vec<Probe>,
    pub shutdown: Shutdown,
    /// How long in-flight RPCs get after shutdown starts.
    pub grace: Duration,
    pub health_interval: Duration,
}

impl ServeOptions {
    pub fn new(name: &'static str, listener: TcpListener, shutdown: Shutdown) -> Self {
        Self {
            name,
            listener,
            metrics: Metrics::default(),
            metrics_addr: None,
            probes: Vec::new(),
            shutdown,
            grace: Duration::from_secs(25),
            health_interval: Duration::from_secs(1),
        }
    }
}

/// Serves `service` until shutdown; returns once in-flight RPCs finished (or the grace ran out).
pub async fn serve<S>(options: ServeOptions, service: S) -> anyhow::Result<()>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
        + NamedService
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    let ServeOptions {
        name,
        listener,
        metrics,
        metrics_addr,
        probes,
        shutdown,
        grace,
        health_interval,
    } = options;
    let addr = listener.local_addr()?;

    let (reporter, health_service) = tonic_health::server::health_reporter();
    // tonic-health starts "" as SERVING; nothing is serving until the dependencies answer.
    reporter
        .set_service_status("", ServingStatus::NotServing)
        .await;
    reporter
        .set_service_status(S::NAME, ServingStatus::NotServing)
        .await;
    tokio::spawn(health::watch(
        reporter,
        vec![S::NAME.to_string()],
        probes,
        health_interval,
        shutdown.clone(),
    ));

    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(kg_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .with_service_name(S::NAME)
        .with_service_name("grpc.health.v1.Health")
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(kg_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .with_service_name(S::NAME)
        .with_service_name("grpc.health.v1.Health")
        .build_v1alpha()?;

    let layer = metrics.layer();
    if let Some(metrics_addr) = metrics_addr {
        let bound = metrics.serve(metrics_addr, shutdown.clone().wait()).await?;
        tracing::info!(service = name, %bound, "metrics on http://{bound}/metrics");
    }

    tracing::info!(service = name, %addr, grpc = S::NAME, "serving");
    let server = Server::builder()
        .trace_fn(crate::telemetry::server_span)
        .layer(layer)
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(service)
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown.clone().wait());
    tokio::pin!(server);

    let grace_over = async {
        shutdown.clone().wait().await;
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        result = &mut server => result?,
        _ = grace_over => {
            tracing::warn!(service = name, "grace period over; abandoning in-flight RPCs");
        }
    }
    tracing::info!(service = name, "stopped");
    Ok(())
}
