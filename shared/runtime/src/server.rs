//! The scaffolding every service runs in: one gRPC server with health, reflection (v1 and
//! v1alpha, including the google.rpc error-detail types), grpc-web over HTTP/1.1 on the same
//! port (with CORS for the configured origins), per-RPC metrics and tracing, authentication, per-caller rate limits, a server-side
//! deadline and optional (mutual) TLS, serving until shutdown, then draining in-flight RPCs.
//! With TLS on, an optional plaintext listener serves health only (kubelet probes cannot do TLS).
//!
//! Connections are bounded (see [`crate::transport`]): HTTP/2 and TCP keepalive, a handshake
//! timeout, an idle-connection timeout; a request message above the service's limit is
//! answered RESOURCE_EXHAUSTED `MESSAGE_TOO_LARGE`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use futures::TryStreamExt;
use tokio::net::TcpListener;
use tonic::body::Body;
use tonic::server::NamedService;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;

use crate::config::CommonConfig;
use crate::health::{self, Probe};
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;
use crate::transport::{
    ConnectionLimits, ConnectionRegistry, ConnectionTrackerLayer, MessageSizeLayer,
};

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
    /// How often the probes run ([`health::PROBE_INTERVAL`]).
    pub health_interval: Duration,
    /// How long one probe may take before it counts as failed ([`health::PROBE_TIMEOUT`]).
    pub probe_timeout: Duration,
    /// Verifies bearer tokens; `None` switches authentication off (development only).
    pub auth: Option<crate::auth::Authenticator>,
    /// TLS (and, with a client CA, mutual TLS) on the gRPC port; `None`: plaintext.
    pub tls: Option<tonic::transport::ServerTlsConfig>,
    /// Whether `tls` requires client certificates (for the start-up log).
    pub mutual_tls: bool,
    /// A plaintext listener that serves grpc.health.v1 only.
    pub health_addr: Option<SocketAddr>,
    /// Per-caller token buckets; `None`: no limit.
    pub rate_limit: Option<crate::ratelimit::RateLimiter>,
    /// Longest time one RPC may take (a shorter client `grpc-timeout` wins); `None`: no limit.
    pub request_timeout: Option<Duration>,
    /// HTTP/2 PING interval on quiet connections, also the TCP keepalive idle time; `None`: off.
    pub http2_keepalive_interval: Option<Duration>,
    /// How long a PING may go unanswered before the connection is closed.
    pub http2_keepalive_timeout: Duration,
    /// Handshake and idle-connection timeouts of every accepted connection.
    pub connection_limits: ConnectionLimits,
    /// Origins whose browser pages may call with grpc-web (`*`: any); empty: no CORS.
    pub cors_allowed_origins: Vec<String>,
}

/// `Some(secs)` unless `secs` is 0 (off).
fn secs(secs: u64) -> Option<Duration> {
    (secs > 0).then(|| Duration::from_secs(secs))
}

impl ServeOptions {
    pub fn new(name: &'static str, listener: TcpListener, shutdown: Shutdown) -> Self {
        Self {
            name,
            listener,
            metrics: Metrics::for_service(name),
            metrics_addr: None,
            probes: Vec::new(),
            shutdown,
            grace: Duration::from_secs(25),
            health_interval: health::PROBE_INTERVAL,
            probe_timeout: health::PROBE_TIMEOUT,
            auth: None,
            tls: None,
            mutual_tls: false,
            health_addr: None,
            rate_limit: None,
            request_timeout: Some(Duration::from_secs(
                crate::config::DEFAULT_REQUEST_TIMEOUT_SECS,
            )),
            http2_keepalive_interval: secs(crate::config::DEFAULT_HTTP2_KEEPALIVE_INTERVAL_SECS),
            http2_keepalive_timeout: Duration::from_secs(
                crate::config::DEFAULT_HTTP2_KEEPALIVE_TIMEOUT_SECS,
            ),
            connection_limits: ConnectionLimits {
                handshake_timeout: secs(crate::config::DEFAULT_HANDSHAKE_TIMEOUT_SECS),
                idle_timeout: secs(crate::config::DEFAULT_IDLE_CONNECTION_TIMEOUT_SECS),
            },
            cors_allowed_origins: Vec::new(),
        }
    }

    /// Options with everything [`CommonConfig`] says: metrics address, shutdown grace,
    /// authentication (KG_JWT_*), TLS (KG_TLS_*), the health-only listener, rate limits, the
    /// request timeout, keepalive and the connection timeouts. A service that calls others
    /// takes its signer from `options.auth`.
    pub fn from_config(
        name: &'static str,
        listener: TcpListener,
        shutdown: Shutdown,
        common: &CommonConfig,
    ) -> anyhow::Result<Self> {
        let mut options = Self::new(name, listener, shutdown);
        options.metrics_addr = common.metrics_addr;
        options.grace = Duration::from_secs(common.shutdown_grace_secs);
        options.auth = common.authenticator()?;
        let tls = common.tls_files();
        options.tls = tls.server()?;
        options.mutual_tls = tls.mutual();
        options.health_addr = common.health_listen_addr;
        options.rate_limit =
            crate::ratelimit::RateLimiter::new(common.rate_limit_per_sec, common.rate_limit_burst);
        options.request_timeout = secs(common.request_timeout_secs);
        let limits = &common.limits;
        options.http2_keepalive_interval = secs(limits.http2_keepalive_interval_secs);
        options.http2_keepalive_timeout = Duration::from_secs(limits.http2_keepalive_timeout_secs);
        options.connection_limits = ConnectionLimits {
            handshake_timeout: secs(limits.handshake_timeout_secs),
            idle_timeout: secs(limits.idle_connection_timeout_secs),
        };
        options.cors_allowed_origins = common.cors_allowed_origins.clone();
        Ok(options)
    }
}

/// Serves `service` until shutdown, to the callers its role table `roles` admits; returns once
/// in-flight RPCs finished (or the grace ran out).
pub async fn serve<S>(
    options: ServeOptions,
    service: S,
    roles: crate::auth::RoleTable,
) -> anyhow::Result<()>
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
        probe_timeout,
        auth,
        tls,
        mutual_tls,
        health_addr,
        rate_limit,
        request_timeout,
        http2_keepalive_interval,
        http2_keepalive_timeout,
        connection_limits,
        cors_allowed_origins,
    } = options;
    let cors = cors_layer(&cors_allowed_origins)?;
    if auth.is_none() {
        tracing::warn!(
            service = name,
            "AUTHENTICATION IS OFF (no KG_JWT_SECRET or KG_JWT_JWKS_FILE): every caller is trusted; local development only"
        );
    }
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
        probe_timeout,
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

    if let Some(health_addr) = health_addr {
        let health_listener = TcpListener::bind(health_addr).await.map_err(|e| {
            anyhow::anyhow!("cannot listen on {health_addr} (KG_HEALTH_LISTEN_ADDR): {e}")
        })?;
        let bound = health_listener.local_addr()?;
        tracing::info!(service = name, %bound, "health only (plaintext) on {bound}");
        let registry = ConnectionRegistry::default();
        let health_only = Server::builder()
            .http2_keepalive_interval(http2_keepalive_interval)
            .http2_keepalive_timeout(Some(http2_keepalive_timeout))
            .layer(ConnectionTrackerLayer::new(registry.clone()))
            .add_service(health_service.clone())
            .serve_with_incoming_shutdown(
                guarded_incoming(
                    health_listener,
                    http2_keepalive_interval,
                    registry,
                    connection_limits,
                ),
                shutdown.clone().wait(),
            );
        tokio::spawn(async move {
            if let Err(err) = health_only.await {
                tracing::error!(error = %err, "health listener stopped");
            }
        });
    }

    let scheme = match (&tls, mutual_tls) {
        (None, _) => "plaintext",
        (Some(_), false) => "TLS",
        (Some(_), true) => "mutual TLS",
    };
    tracing::info!(
        service = name,
        %addr,
        grpc = S::NAME,
        transport = scheme,
        rate_limited = rate_limit.is_some(),
        "serving"
    );
    let mut builder = Server::builder()
        // grpc-web arrives over HTTP/1.1 (browsers' fetch); gRPC clients keep HTTP/2
        .accept_http1(true)
        .http2_keepalive_interval(http2_keepalive_interval)
        .http2_keepalive_timeout(Some(http2_keepalive_timeout));
    if let Some(mut tls) = tls {
        if let Some(handshake) = connection_limits.handshake_timeout {
            tls = tls.timeout(handshake);
        }
        builder = builder
            .tls_config(tls)
            .map_err(|e| anyhow::anyhow!("TLS configuration: {e}"))?;
    }
    if let Some(timeout) = request_timeout {
        builder = builder.timeout(timeout);
    }
    let registry = ConnectionRegistry::default();
    let server = builder
        .trace_fn(move |request| crate::telemetry::server_span(name, request))
        // outermost: an RPC counts as in flight on its connection until its body is done
        .layer(ConnectionTrackerLayer::new(registry.clone()))
        // CORS answers preflights before authentication (they carry no token); then grpc-web
        // becomes plain gRPC, so that every layer below sees one protocol
        .layer(tower::util::option_layer(cors))
        .layer(tonic_web::GrpcWebLayer::new())
        .layer(layer)
        .layer(crate::auth::AuthLayer::new(auth, S::NAME, roles))
        .layer(crate::ratelimit::RateLimitLayer::new(rate_limit))
        // innermost, so metrics and traces see the status the caller gets
        .layer(MessageSizeLayer::new(crate::error::service_domain(name)))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(service)
        .serve_with_incoming_shutdown(
            guarded_incoming(
                listener,
                http2_keepalive_interval,
                registry,
                connection_limits,
            ),
            shutdown.clone().wait(),
        );
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

/// The CORS policy for `origins` (`None` when empty: CORS off). Browsers may send what grpc-web
/// sends (POST with the grpc-web headers and a bearer token) and read the gRPC status trailers
/// that grpc-web puts in headers for trailers-only replies. No credentials (cookies): callers
/// authenticate with the `authorization` header.
pub fn cors_layer(origins: &[String]) -> anyhow::Result<Option<tower_http::cors::CorsLayer>> {
    use http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderName};
    use tower_http::cors::{AllowOrigin, CorsLayer};
    if origins.is_empty() {
        return Ok(None);
    }
    let allow_origin = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        let parsed = origins
            .iter()
            .map(|o| {
                http::HeaderValue::from_str(o.trim_end_matches('/')).map_err(|_| {
                    anyhow::anyhow!("KG_CORS_ALLOWED_ORIGINS: {o:?} is not a valid origin")
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        AllowOrigin::list(parsed)
    };
    let header = HeaderName::from_static;
    Ok(Some(
        CorsLayer::new()
            .allow_origin(allow_origin)
            .allow_methods([http::Method::POST])
            .allow_headers([
                CONTENT_TYPE,
                AUTHORIZATION,
                header("x-grpc-web"),
                header("x-user-agent"),
                header("grpc-timeout"),
            ])
            .expose_headers([
                header("grpc-status"),
                header("grpc-message"),
                header("grpc-status-details-bin"),
            ])
            .max_age(Duration::from_secs(24 * 60 * 60)),
    ))
}

/// The accepted connections of `listener`: TCP_NODELAY (small unary replies must not wait out
/// Nagle and delayed ACKs, ~40 ms), TCP keepalive, and the handshake and idle timeouts.
fn guarded_incoming(
    listener: TcpListener,
    tcp_keepalive: Option<Duration>,
    registry: ConnectionRegistry,
    limits: ConnectionLimits,
) -> impl futures::Stream<Item = std::io::Result<crate::transport::Guarded<tokio::net::TcpStream>>>
+ Send
+ 'static {
    TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .with_keepalive(tcp_keepalive)
        .map_ok(move |tcp| registry.guard(tcp, limits))
}
