//! Prometheus metrics: per-RPC request count, error count and latency, recorded by a tower layer
//! around every gRPC server, plus whatever gauges a service registers. Served as text on
//! `GET /metrics`.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tower::{Layer, Service};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RpcLabels {
    pub service: String,
    pub method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RpcCodeLabels {
    pub service: String,
    pub method: String,
    pub code: String,
}

/// The per-RPC families. Cheap to clone (shared counters).
#[derive(Clone)]
pub struct RpcMetrics {
    requests: Family<RpcCodeLabels, Counter>,
    errors: Family<RpcCodeLabels, Counter>,
    latency: Family<RpcLabels, Histogram>,
}

impl RpcMetrics {
    fn register(registry: &mut Registry) -> Self {
        let requests = Family::<RpcCodeLabels, Counter>::default();
        let errors = Family::<RpcCodeLabels, Counter>::default();
        let latency = Family::<RpcLabels, Histogram>::new_with_constructor(|| {
            // 250 µs … ~8 s
            Histogram::new(exponential_buckets(0.00025, 2.0, 16))
        });
        registry.register(
            "grpc_server_handled",
            "RPCs completed, by gRPC status code",
            requests.clone(),
        );
        registry.register(
            "grpc_server_errors",
            "RPCs completed with a status other than OK",
            errors.clone(),
        );
        registry.register(
            "grpc_server_handling_seconds",
            "RPC latency until response headers",
            latency.clone(),
        );
        Self {
            requests,
            errors,
            latency,
        }
    }

    fn record(&self, path: &str, code: &str, elapsed: f64) {
        let (service, method) = split_path(path);
        let labels = RpcCodeLabels {
            service: service.to_string(),
            method: method.to_string(),
            code: code.to_string(),
        };
        self.requests.get_or_create(&labels).inc();
        if code != "OK" {
            self.errors.get_or_create(&labels).inc();
        }
        self.latency
            .get_or_create(&RpcLabels {
                service: labels.service,
                method: labels.method,
            })
            .observe(elapsed);
    }
}

fn split_path(path: &str) -> (&str, &str) {
    let trimmed = path.trim_start_matches('/');
    trimmed.split_once('/').unwrap_or((trimmed, ""))
}

/// A service's metrics registry. Services add their own gauges before serving.
pub struct Metrics {
    pub registry: Registry,
    rpc: RpcMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("koogallery");
        let rpc = RpcMetrics::register(&mut registry);
        Self { registry, rpc }
    }
}

impl Metrics {
    pub fn layer(&self) -> RpcMetricsLayer {
        RpcMetricsLayer {
            metrics: self.rpc.clone(),
        }
    }

    /// Serves `/metrics` until `shutdown` resolves.
    pub async fn serve(
        self,
        addr: SocketAddr,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<SocketAddr> {
        let registry = Arc::new(self.registry);
        let app = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let registry = registry.clone();
                async move {
                    let mut body = String::new();
                    match prometheus_client::encoding::text::encode(&mut body, &registry) {
                        Ok(()) => (
                            [(
                                http::header::CONTENT_TYPE,
                                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                            )],
                            body,
                        ),
                        Err(_) => (
                            [(http::header::CONTENT_TYPE, "text/plain")],
                            "encoding failed".to_string(),
                        ),
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let bound = listener.local_addr()?;
        tokio::spawn(async move {
            if let Err(err) = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::warn!(error = %err, "metrics endpoint stopped");
            }
        });
        Ok(bound)
    }
}

#[derive(Clone)]
pub struct RpcMetricsLayer {
    metrics: RpcMetrics,
}

impl<S> Layer<S> for RpcMetricsLayer {
    type Service = RpcMetricsService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RpcMetricsService {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

#[derive(Clone)]
pub struct RpcMetricsService<S> {
    inner: S,
    metrics: RpcMetrics,
}

impl<S, B, ResBody> Service<http::Request<B>> for RpcMetricsService<S>
where
    S: Service<http::Request<B>, Response = http::Response<ResBody>> + Send,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let path = request.uri().path().to_string();
        let metrics = self.metrics.clone();
        let started = Instant::now();
        let future = self.inner.call(request);
        Box::pin(async move {
            let result = future.await;
            // Errors from handlers arrive as trailers-only responses, with grpc-status in the
            // headers; a successful unary response puts it in the trailers, so absent means OK.
            let code = match &result {
                Ok(response) => response
                    .headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<i32>().ok())
                    .map(|c| code_name(tonic::Code::from_i32(c)))
                    .unwrap_or("OK"),
                Err(_) => "UNKNOWN",
            };
            metrics.record(&path, code, started.elapsed().as_secs_f64());
            result
        })
    }
}

/// The canonical upper-case name of a gRPC status code, as other gRPC tooling labels it.
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}
