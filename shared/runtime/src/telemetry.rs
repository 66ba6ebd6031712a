//! Logs, traces and trace-context propagation.
//!
//! Logs go to stdout (text or JSON; colour only when stdout is a terminal). When
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set, spans are also exported over OTLP/gRPC. W3C
//! `traceparent` is read from every incoming request and written to every outgoing one, so one
//! trace follows a request across the mesh.
//!
//! Spans follow the OpenTelemetry semantic conventions: RPC server and client spans named
//! `package.Service/Method` with `rpc.system.name`, `rpc.method` and
//! `rpc.response.status_code`; HTTP client spans (`http.request.method`,
//! `http.response.status_code`); one database span per SQL statement inside a trace.
//!
//! Several services may share a process (`koogallery up`, the tests): spans carry the service
//! they belong to in [`SERVICE_ATTRIBUTE`], and the exporter sends each service's spans under
//! its own `service.name` resource.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::{Duration, SystemTime};

use clap::ValueEnum;
use opentelemetry::trace::{Span as _, SpanKind, TraceContextExt, Tracer, TracerProvider as _};
use opentelemetry::{Key, KeyValue};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::names::Side;
pub use crate::trace_context::{current_trace_id, inject_current};

/// Log output format (`KG_LOG_FORMAT`, [`crate::config::CommonConfig::log_format`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Span attribute naming the service a span belongs to; the exporter turns it into the
/// resource's `service.name` and drops it from the span.
pub const SERVICE_ATTRIBUTE: &str = "kg.service";

/// Flushes pending spans when dropped; keep it alive for the life of the process.
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(err) = provider.shutdown()
        {
            eprintln!("flushing traces failed: {err}");
        }
    }
}

/// Installs the global subscriber for a process that runs one service. Safe to call more than
/// once (tests start several services in one process): later calls keep the first subscriber.
pub fn init(service_name: &str, format: LogFormat) -> TelemetryGuard {
    init_services(service_name, &[], format)
}

/// [`init`] for a process that runs several services (`koogallery up`): spans of each of
/// `services` are exported with that service's name; spans of none (start-up, background work
/// outside a request) with `process_name`.
pub fn init_services(process_name: &str, services: &[&str], format: LogFormat) -> TelemetryGuard {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());

    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,sea_orm=warn,h2=warn,tower=warn"));
    // Every line goes through the redaction scrubber: a second fence behind the call sites,
    // which mask emails, mobiles and tokens themselves (see `crate::redact`).
    let writer = crate::redact::ScrubbingMakeWriter::new(std::io::stdout);
    // colour codes only for a person at a terminal, never into files or log collectors
    let ansi = std::io::stdout().is_terminal();
    let fmt_layer = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_ansi(ansi)
            .with_writer(writer)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_ansi(false)
            .with_current_span(true)
            .with_writer(writer)
            .boxed(),
    };

    let provider = otlp_provider(process_name, services);
    let otel_layer = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("koogallery"))
            .boxed()
    });
    if let Some(p) = &provider {
        opentelemetry::global::set_tracer_provider(p.clone());
    }

    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(fmt_layer)
        .with(otel_layer)
        .try_init()
        .is_ok();
    if installed && provider.is_some() {
        tracing::info!(service = process_name, "exporting traces over OTLP");
    }
    TelemetryGuard {
        provider: if installed { provider } else { None },
    }
}

fn otlp_exporter(endpoint: &str) -> Option<opentelemetry_otlp::SpanExporter> {
    match opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .build()
    {
        Ok(exporter) => Some(exporter),
        Err(err) => {
            eprintln!("OTLP exporter for {endpoint} not started: {err}");
            None
        }
    }
}

fn otlp_provider(process_name: &str, services: &[&str]) -> Option<SdkTracerProvider> {
    let endpoint = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").ok()?;
    if endpoint.trim().is_empty() {
        return None;
    }
    // OTEL_SERVICE_NAME names a one-service process; several services keep their own names
    let name = match std::env::var("OTEL_SERVICE_NAME") {
        Ok(name) if services.len() <= 1 && !name.trim().is_empty() => name,
        _ => process_name.to_string(),
    };
    let mut routes = HashMap::new();
    for service in services {
        routes.insert(
            service.to_string(),
            (service.to_string(), otlp_exporter(&endpoint)?),
        );
    }
    let exporter = RoutingExporter {
        default: (name.clone(), otlp_exporter(&endpoint)?),
        routes,
        single: services.len() <= 1,
    };
    let resource = Resource::builder()
        .with_service_name(name)
        .with_attribute(KeyValue::new("service.namespace", "koogallery"))
        .build();
    Some(
        SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource)
            .build(),
    )
}

/// Sends each span through the exporter of the service named in its [`SERVICE_ATTRIBUTE`]
/// (each exporter carries that service's resource); spans of no known service go to the
/// process's own. With one service per process everything goes to the one exporter.
#[derive(Debug)]
struct RoutingExporter {
    default: (String, opentelemetry_otlp::SpanExporter),
    routes: HashMap<String, (String, opentelemetry_otlp::SpanExporter)>,
    single: bool,
}

impl SpanExporter for RoutingExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let key = Key::from_static_str(SERVICE_ATTRIBUTE);
        let mut groups: HashMap<Option<String>, Vec<SpanData>> = HashMap::new();
        for mut span in batch {
            let service = span
                .attributes
                .iter()
                .find(|kv| kv.key == key)
                .map(|kv| kv.value.as_str().into_owned());
            span.attributes.retain(|kv| kv.key != key);
            let route = service.filter(|s| !self.single && self.routes.contains_key(s));
            groups.entry(route).or_default().push(span);
        }
        let mut result = Ok(());
        for (route, spans) in groups {
            let exporter = match route.and_then(|r| self.routes.get(&r)) {
                Some((_, exporter)) => exporter,
                None => &self.default.1,
            };
            if let Err(err) = exporter.export(spans).await {
                result = Err(err);
            }
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        let mut result = self.default.1.shutdown_with_timeout(timeout);
        for (_, exporter) in self.routes.values() {
            if let Err(err) = exporter.shutdown_with_timeout(timeout) {
                result = Err(err);
            }
        }
        result
    }

    fn set_resource(&mut self, resource: &Resource) {
        let with_name = |name: &str| {
            Resource::builder_empty()
                .with_attributes(
                    resource
                        .iter()
                        .filter(|(k, _)| k.as_str() != "service.name")
                        .map(|(k, v)| KeyValue::new(k.clone(), v.clone())),
                )
                .with_service_name(name.to_string())
                .build()
        };
        let (name, exporter) = &mut self.default;
        exporter.set_resource(&with_name(name));
        for (name, exporter) in self.routes.values_mut() {
            exporter.set_resource(&with_name(name));
        }
    }
}

/// The span a server opens for each incoming RPC, child of the caller's `traceparent`. The
/// status code is recorded when the call ends ([`record_rpc_status`]).
pub fn server_span(service: &'static str, request: &http::Request<()>) -> tracing::Span {
    let method = crate::names::method_label(request.uri().path());
    let span = tracing::info_span!(
        "grpc.server",
        otel.name = %method,
        otel.kind = "server",
        rpc.system.name = "grpc",
        rpc.method = %method,
        rpc.response.status_code = tracing::field::Empty,
        error.type = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
        kg.service = service,
    );
    let parent = crate::trace_context::extract(request.headers());
    let _ = span.set_parent(parent);
    span
}

/// The span of one outgoing RPC of `path` (child of the current span) from `service` to `peer`.
pub fn client_span(service: &str, peer: &http::Uri, path: &str) -> tracing::Span {
    let uri = peer;
    let method = crate::names::method_label(path);
    tracing::info_span!(
        "grpc.client",
        otel.name = %method,
        otel.kind = "client",
        rpc.system.name = "grpc",
        rpc.method = %method,
        server.address = uri.host().unwrap_or_default(),
        server.port = uri.port_u16().map(i64::from),
        rpc.response.status_code = tracing::field::Empty,
        error.type = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
        kg.service = service,
    )
}

/// Puts the status of an RPC on its span. A server span is an error only for codes that say
/// the server failed (the conventions' rule); a client span for anything but OK.
pub fn record_rpc_status(span: &tracing::Span, code: tonic::Code, side: Side) {
    use tonic::Code::*;
    let name = crate::names::code_name(code);
    span.record("rpc.response.status_code", name);
    let failed = match side {
        Side::Client => code != Ok,
        Side::Server => matches!(
            code,
            Unknown | DeadlineExceeded | Unimplemented | Internal | Unavailable | DataLoss
        ),
    };
    if failed {
        span.record("error.type", name);
        span.record("otel.status_code", "error");
    }
}

/// The span of one outgoing HTTP request (`method` `url`) made by `service`; pass it to
/// [`record_http_status`] when the answer (or the failure) is known. The URL is recorded
/// without query or user info, which may carry keys.
pub fn http_client_span(service: &str, method: &str, url: &url_lite::Url) -> tracing::Span {
    tracing::info_span!(
        "http.client",
        otel.name = method,
        otel.kind = "client",
        http.request.method = method,
        url.full = %url.redacted,
        server.address = %url.host,
        server.port = url.port,
        http.response.status_code = tracing::field::Empty,
        error.type = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
        kg.service = service,
    )
}

/// What [`http_client_span`] records of a URL.
pub mod url_lite {
    pub struct Url {
        pub redacted: String,
        pub host: String,
        pub port: i64,
    }

    impl Url {
        /// `scheme://host:port/path` of `url`, without user info, query or fragment.
        pub fn new(scheme: &str, host: &str, port: Option<u16>, path: &str) -> Self {
            let port = port.unwrap_or(if scheme == "https" { 443 } else { 80 });
            Self {
                redacted: format!("{scheme}://{host}:{port}{path}"),
                host: host.to_string(),
                port: i64::from(port),
            }
        }
    }
}

/// Puts the HTTP outcome on a [`http_client_span`]: the status code, or the kind of failure
/// (`timeout`, `connect`, …) when there was no answer. 4xx/5xx and failures mark the span as an
/// error.
pub fn record_http_status(span: &tracing::Span, outcome: Result<u16, &str>) {
    match outcome {
        Ok(status) => {
            span.record("http.response.status_code", i64::from(status));
            if status >= 400 {
                span.record("error.type", status.to_string());
                span.record("otel.status_code", "error");
            }
        }
        Err(kind) => {
            span.record("error.type", kind);
            span.record("otel.status_code", "error");
        }
    }
}

/// One span per SQL statement `db` runs inside a trace (the statement's own start and
/// duration, `db.query.text` with placeholders, never the values). Statements outside a trace
/// (pollers, relays between requests) make no spans: they would bury the traces that matter.
pub fn trace_statements(db: &mut sea_orm::DatabaseConnection, service: &str) {
    let system = match db.get_database_backend() {
        sea_orm::DbBackend::Postgres => "postgresql",
        sea_orm::DbBackend::Sqlite => "sqlite",
        _ => "other_sql",
    };
    let service = service.to_string();
    db.set_metric_callback(move |info| {
        let parent = tracing::Span::current().context();
        if !parent.span().span_context().is_valid() {
            return;
        }
        let end = SystemTime::now();
        let start = end.checked_sub(info.elapsed).unwrap_or(end);
        let (operation, collection) = sql_summary(&info.statement.sql);
        let name = match &collection {
            Some(table) => format!("{operation} {table}"),
            None => operation.clone(),
        };
        let mut attributes = vec![
            KeyValue::new("db.system.name", system),
            KeyValue::new("db.operation.name", operation),
            KeyValue::new("db.query.text", info.statement.sql.clone()),
            KeyValue::new(SERVICE_ATTRIBUTE, service.clone()),
        ];
        if let Some(table) = collection {
            attributes.push(KeyValue::new("db.collection.name", table));
        }
        if info.failed {
            attributes.push(KeyValue::new("error.type", "db_error"));
        }
        let tracer = opentelemetry::global::tracer("koogallery");
        let mut span = tracer
            .span_builder(name)
            .with_kind(SpanKind::Client)
            .with_start_time(start)
            .with_attributes(attributes)
            .start_with_context(&tracer, &parent);
        if info.failed {
            span.set_status(opentelemetry::trace::Status::error("statement failed"));
        }
        span.end_with_timestamp(end);
    });
}

/// The operation (`SELECT`, `INSERT`, …) and the first table a statement names.
fn sql_summary(sql: &str) -> (String, Option<String>) {
    let words: Vec<&str> = sql.split_whitespace().collect();
    let operation = words
        .first()
        .map(|w| w.to_ascii_uppercase())
        .unwrap_or_default();
    let after = |keyword: &str| {
        words
            .iter()
            .position(|w| w.eq_ignore_ascii_case(keyword))
            .and_then(|i| words.get(i + 1))
    };
    let table = match operation.as_str() {
        "SELECT" | "DELETE" => after("FROM"),
        "INSERT" => after("INTO"),
        "UPDATE" => words.get(1),
        _ => None,
    }
    .map(|t| {
        t.trim_matches(|c: char| c == '"' || c == '`' || c == '(' || c == ',')
            .to_string()
    })
    .filter(|t| !t.is_empty());
    (operation, table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_are_summarised_by_operation_and_table() {
        assert_eq!(
            sql_summary(r#"SELECT "a"."id" FROM "applications" AS "a" WHERE x = $1"#),
            ("SELECT".to_string(), Some("applications".to_string()))
        );
        assert_eq!(
            sql_summary(r#"INSERT INTO "outbox" ("id") VALUES ($1)"#),
            ("INSERT".to_string(), Some("outbox".to_string()))
        );
        assert_eq!(sql_summary("BEGIN"), ("BEGIN".to_string(), None));
    }
}
