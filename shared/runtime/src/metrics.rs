//! Prometheus metrics, named as the OpenTelemetry RPC semantic conventions export them, so
//! dashboards built for those conventions work unchanged:
//!
//! - `rpc_server_call_duration_seconds` / `rpc_client_call_duration_seconds`: histograms of
//!   whole calls (until the response body ends: trailers for unary, end of stream for streams),
//!   labels `rpc_system_name`, `rpc_method` (`package.Service/Method`, `_OTHER` for a path no
//!   service here has) and `rpc_response_status_code` (`OK`, `NOT_FOUND`, …);
//! - `rpc_server_active_calls` / `rpc_client_active_calls`: calls in flight;
//! - `process_*`: CPU, memory, file descriptors, threads, start time (read from `/proc`);
//! - `koogallery_build_info{version, revision, service}`: always 1;
//! - the services' own gauges, prefixed `koogallery_`.
//!
//! Served as OpenMetrics text on `GET /metrics`.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use tonic::body::Body;
use tonic::codegen::Bytes;
use tower::{Layer, Service};

pub use crate::names::{Side, code_name, method_label};

/// `rpc_system_name`, `rpc_method`, `rpc_response_status_code`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    pub rpc_system_name: String,
    pub rpc_method: String,
    pub rpc_response_status_code: String,
}

/// `rpc_system_name`, `rpc_method`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodLabels {
    pub rpc_system_name: String,
    pub rpc_method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
    revision: String,
    service: String,
}

/// Call duration and in-flight calls of one side. Cheap to clone (shared families).
#[derive(Clone)]
pub struct CallMetrics {
    side: Side,
    duration: Family<CallLabels, Histogram>,
    active: Family<MethodLabels, Gauge>,
}

/// The OpenTelemetry semantic conventions' advised buckets for RPC durations (seconds).
const DURATION_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

impl CallMetrics {
    fn new(side: Side) -> Self {
        Self {
            side,
            duration: Family::new_with_constructor(|| Histogram::new(DURATION_BUCKETS)),
            active: Family::default(),
        }
    }

    fn register(&self, registry: &mut Registry) {
        let side = match self.side {
            Side::Server => "server",
            Side::Client => "client",
        };
        registry.register_with_unit(
            format!("rpc_{side}_call_duration"),
            format!("Duration of {side}-side RPCs, until the response body (or stream) ended"),
            Unit::Seconds,
            self.duration.clone(),
        );
        registry.register(
            format!("rpc_{side}_active_calls"),
            format!("{side}-side RPCs in flight"),
            self.active.clone(),
        );
    }

    /// Starts measuring one call of `path` (`/package.Service/Method`); `span` gets the status.
    pub fn start(&self, path: &str, span: tracing::Span) -> Call {
        let method = method_label(path);
        let labels = MethodLabels {
            rpc_system_name: "grpc".to_string(),
            rpc_method: method,
        };
        self.active.get_or_create(&labels).inc();
        Call {
            metrics: self.clone(),
            labels,
            started: Instant::now(),
            span,
            done: false,
        }
    }
}

/// One call being measured. Finished once: with the status seen, or CANCELLED when dropped
/// before (the peer went away, or the caller gave up).
pub struct Call {
    metrics: CallMetrics,
    labels: MethodLabels,
    started: Instant,
    span: tracing::Span,
    done: bool,
}

impl Call {
    pub fn finish(&mut self, code: tonic::Code) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let elapsed = self.started.elapsed().as_secs_f64();
        self.metrics.active.get_or_create(&self.labels).dec();
        let name = code_name(code);
        self.metrics
            .duration
            .get_or_create(&CallLabels {
                rpc_system_name: self.labels.rpc_system_name.clone(),
                rpc_method: self.labels.rpc_method.clone(),
                rpc_response_status_code: name.to_string(),
            })
            .observe(elapsed);
        crate::telemetry::record_rpc_status(&self.span, code, self.metrics.side);
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        self.finish(tonic::Code::Cancelled);
    }
}

/// The status code in `grpc-status` of a header or trailer map, if there is one.
fn status_in(headers: &http::HeaderMap) -> Option<tonic::Code> {
    headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .map(tonic::Code::from_i32)
}

/// Finishes `call` on the response: at once for a trailers-only response (status in the
/// headers), else when the body's trailers arrive or the body ends.
pub fn observe_response(mut call: Call, response: http::Response<Body>) -> http::Response<Body> {
    if let Some(code) = status_in(response.headers()) {
        call.finish(code);
        return response;
    }
    response.map(|inner| {
        Body::new(ObservedBody {
            inner,
            call: Some(call),
        })
    })
}

struct ObservedBody {
    inner: Body,
    call: Option<Call>,
}

impl ObservedBody {
    fn finish(&mut self, code: tonic::Code) {
        if let Some(mut call) = self.call.take() {
            call.finish(code);
        }
    }
}

impl http_body::Body for ObservedBody {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(trailers) = frame.trailers_ref() {
                    // a gRPC response always ends with grpc-status; missing is a broken peer
                    let code = status_in(trailers).unwrap_or(tonic::Code::Unknown);
                    self.finish(code);
                }
            }
            Poll::Ready(Some(Err(status))) => {
                let code = status.code();
                self.finish(code);
            }
            Poll::Ready(None) => self.finish(tonic::Code::Unknown),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The client-side families of one service, shared by all its channels. Kept per service name
/// so that `koogallery up` (four services, one process) reports each service's calls on its own
/// endpoint.
pub fn client_metrics(service: &str) -> CallMetrics {
    static CLIENTS: OnceLock<Mutex<HashMap<String, CallMetrics>>> = OnceLock::new();
    let mut clients = CLIENTS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    clients
        .entry(service.to_string())
        .or_insert_with(|| CallMetrics::new(Side::Client))
        .clone()
}

/// A service's metrics. Services register their own gauges in `registry` before serving.
pub struct Metrics {
    /// The services' own metrics, prefixed `koogallery_`.
    pub registry: Registry,
    /// Convention-named metrics (rpc_*, process_*), no prefix.
    standard: Registry,
    server: CallMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::for_service("koogallery")
    }
}

impl Metrics {
    /// Server and client call metrics, process metrics and build information of `service`.
    pub fn for_service(service: &str) -> Self {
        let mut registry = Registry::with_prefix("koogallery");
        registry.register(
            "build_info",
            "Build of the running binary (always 1)",
            ConstGaugeInfo(BuildLabels {
                version: env!("CARGO_PKG_VERSION").to_string(),
                // set by the image build (Dockerfile ARG); local builds say "unknown"
                revision: option_env!("KG_GIT_SHA").unwrap_or("unknown").to_string(),
                service: service.to_string(),
            }),
        );
        let mut standard = Registry::default();
        let server = CallMetrics::new(Side::Server);
        server.register(&mut standard);
        client_metrics(service).register(&mut standard);
        standard.register_collector(Box::new(ProcessCollector));
        Self {
            registry,
            standard,
            server,
        }
    }

    pub fn layer(&self) -> RpcMetricsLayer {
        RpcMetricsLayer {
            metrics: self.server.clone(),
        }
    }

    /// The exposition text (OpenMetrics) of every family.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        use prometheus_client::encoding::text;
        let mut body = String::new();
        text::encode_registry(&mut body, &self.standard)?;
        text::encode_registry(&mut body, &self.registry)?;
        text::encode_eof(&mut body)?;
        Ok(body)
    }

    /// Serves `/metrics` until `shutdown` resolves.
    pub async fn serve(
        self,
        addr: SocketAddr,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<SocketAddr> {
        let metrics = Arc::new(self);
        let app = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let metrics = metrics.clone();
                async move {
                    match metrics.encode() {
                        Ok(body) => (
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

/// An info-style gauge: one series, value 1, the information in its labels.
#[derive(Debug)]
struct ConstGaugeInfo(BuildLabels);

impl EncodeMetric for ConstGaugeInfo {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::MetricEncoder,
    ) -> Result<(), std::fmt::Error> {
        encoder.encode_family(&self.0)?.encode_gauge(&1i64)
    }
    fn metric_type(&self) -> prometheus_client::metrics::MetricType {
        prometheus_client::metrics::MetricType::Gauge
    }
}

/// `process_*` as the Prometheus client libraries name them, read from `/proc/self` on each
/// scrape (Linux only; elsewhere the families are simply absent).
#[derive(Debug)]
struct ProcessCollector;

/// USER_HZ: the unit of the CPU times in /proc/<pid>/stat, fixed at 100 by the kernel's ABI.
const CLOCK_TICKS_PER_SEC: f64 = 100.0;

/// What `/proc/self` says about this process.
#[derive(Debug, Default, PartialEq)]
pub struct ProcessStats {
    pub cpu_seconds: f64,
    pub resident_bytes: u64,
    pub virtual_bytes: u64,
    pub threads: u64,
    pub start_time_seconds: f64,
    pub open_fds: u64,
    pub max_fds: Option<u64>,
}

impl ProcessStats {
    pub fn read() -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let boot = std::fs::read_to_string("/proc/stat").ok()?;
        let mut stats = parse_stat(&stat, &status, &boot)?;
        stats.open_fds = std::fs::read_dir("/proc/self/fd")
            .map(|d| d.count() as u64)
            .unwrap_or(0);
        stats.max_fds = std::fs::read_to_string("/proc/self/limits")
            .ok()
            .and_then(|limits| {
                limits
                    .lines()
                    .find(|l| l.starts_with("Max open files"))
                    .and_then(|l| l.split_whitespace().nth(3))
                    .and_then(|v| v.parse().ok())
            });
        Some(stats)
    }
}

/// Parses `/proc/self/stat` (after the parenthesised command name, which may hold spaces),
/// `VmRSS` of `/proc/self/status` and `btime` of `/proc/stat`.
fn parse_stat(stat: &str, status: &str, boot: &str) -> Option<ProcessStats> {
    // fields after "pid (comm) ": state is field 3, so index i here is field i + 3
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<u64>().ok());
    let utime = field(14)?;
    let stime = field(15)?;
    let threads = field(20)?;
    let start_ticks = field(22)?;
    let virtual_bytes = field(23)?;
    let resident_kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    let btime = boot
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse::<u64>().ok())?;
    Some(ProcessStats {
        cpu_seconds: (utime + stime) as f64 / CLOCK_TICKS_PER_SEC,
        resident_bytes: resident_kb * 1024,
        virtual_bytes,
        threads,
        start_time_seconds: btime as f64 + start_ticks as f64 / CLOCK_TICKS_PER_SEC,
        open_fds: 0,
        max_fds: None,
    })
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(stats) = ProcessStats::read() else {
            return Ok(());
        };
        let counter = ConstCounter::new(stats.cpu_seconds);
        counter.encode(encoder.encode_descriptor(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds",
            None,
            counter.metric_type(),
        )?)?;
        let mut gauge = |name: &str, help: &str, value: f64| -> Result<(), std::fmt::Error> {
            let gauge = ConstGauge::new(value);
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)
        };
        gauge(
            "process_resident_memory_bytes",
            "Resident memory size in bytes",
            stats.resident_bytes as f64,
        )?;
        gauge(
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes",
            stats.virtual_bytes as f64,
        )?;
        gauge(
            "process_threads",
            "Number of OS threads in the process",
            stats.threads as f64,
        )?;
        gauge(
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds",
            stats.start_time_seconds,
        )?;
        gauge(
            "process_open_fds",
            "Number of open file descriptors",
            stats.open_fds as f64,
        )?;
        if let Some(max) = stats.max_fds {
            gauge(
                "process_max_fds",
                "Maximum number of open file descriptors",
                max as f64,
            )?;
        }
        Ok(())
    }
}

#[derive(Clone)]
pub struct RpcMetricsLayer {
    metrics: CallMetrics,
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

/// Measures each incoming call until its response body ends, and puts its status on the
/// server span.
#[derive(Clone)]
pub struct RpcMetricsService<S> {
    inner: S,
    metrics: CallMetrics,
}

impl<S, B> Service<http::Request<B>> for RpcMetricsService<S>
where
    S: Service<http::Request<B>, Response = http::Response<Body>> + Send,
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
        let future = self.inner.call(request);
        Box::pin(async move {
            // tonic enters the server span (trace_fn) while polling this future, not in `call`
            let mut call = metrics.start(&path, tracing::Span::current());
            match future.await {
                Ok(response) => Ok(observe_response(call, response)),
                Err(err) => {
                    call.finish(tonic::Code::Unknown);
                    Err(err)
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_is_parsed_past_a_command_with_spaces() {
        let stat = "42 (kg (a) b) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 7 0 1000 \
                    123456789 300 18446744073709551615";
        let status = "Name:\tkg\nVmRSS:\t   2048 kB\n";
        let boot = "cpu 1 2 3\nbtime 1700000000\n";
        let stats = parse_stat(stat, status, boot).unwrap();
        assert_eq!(stats.cpu_seconds, 3.0);
        assert_eq!(stats.threads, 7);
        assert_eq!(stats.virtual_bytes, 123456789);
        assert_eq!(stats.resident_bytes, 2048 * 1024);
        assert_eq!(stats.start_time_seconds, 1700000010.0);
    }

    #[test]
    fn exposition_names_follow_the_conventions() {
        let metrics = Metrics::for_service("unit-test");
        let mut call = metrics
            .server
            .start("/grpc.health.v1.Health/Check", tracing::Span::none());
        call.finish(tonic::Code::NotFound);
        let text = metrics.encode().unwrap();
        assert!(text.contains(
            r#"rpc_server_call_duration_seconds_count{rpc_system_name="grpc",rpc_method="grpc.health.v1.Health/Check",rpc_response_status_code="NOT_FOUND"} 1"#
        ), "{text}");
        assert!(
            text.contains("# UNIT rpc_server_call_duration_seconds seconds"),
            "{text}"
        );
        assert!(text.contains("koogallery_build_info{"), "{text}");
        assert!(text.contains("process_cpu_seconds_total"), "{text}");
        assert!(text.contains("process_resident_memory_bytes"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
