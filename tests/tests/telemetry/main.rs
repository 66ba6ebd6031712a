//! The OpenTelemetry tests, in a binary of their own: they install the process-wide tracer
//! provider (and point it at an OTLP receiver this test runs through the environment), which no
//! other test may share.
//!
//! One submission seen by an OTLP receiver this test runs: registration's server span, its
//! client span to identity-check and identity-check's server span in one trace, database spans
//! of both, the website check's HTTP client span, status codes on the RPC spans, span names
//! `package.Service/Method`, and each service under its own `service.name` although both run in
//! this one process (as in `koogallery up`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use tonic::{Request, Response, Status};

#[derive(Clone, Debug)]
struct Seen {
    service: String,
    trace_id: String,
    span_id: String,
    parent_id: String,
    name: String,
    kind: i32,
    attributes: Vec<(String, String)>,
}

impl Seen {
    fn attr(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<Seen>>>,
}

fn text(kv: &KeyValue) -> String {
    match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::DoubleValue(d)) => d.to_string(),
        _ => String::new(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let mut spans = self.spans.lock().unwrap();
        for rs in request.into_inner().resource_spans {
            let service = rs
                .resource
                .iter()
                .flat_map(|r| r.attributes.iter())
                .find(|kv| kv.key == "service.name")
                .map(text)
                .unwrap_or_default();
            for ss in rs.scope_spans {
                for span in ss.spans {
                    spans.push(Seen {
                        service: service.clone(),
                        trace_id: hex(&span.trace_id),
                        span_id: hex(&span.span_id),
                        parent_id: hex(&span.parent_span_id),
                        name: span.name,
                        kind: span.kind,
                        attributes: span
                            .attributes
                            .iter()
                            .map(|kv| (kv.key.clone(), text(kv)))
                            .collect(),
                    });
                }
            }
        }
        Ok(Response::new(ExportTraceServiceResponse::default()))
    }
}

const SERVER: i32 = 2;
const CLIENT: i32 = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_submission_gives_client_server_database_and_http_spans_per_service() {
    let collector = Collector::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let collector_addr = listener.local_addr().unwrap();
    let server = collector.clone();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(server))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await
    });
    // SAFETY: set before any other thread of this test binary reads the environment.
    unsafe {
        std::env::set_var(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://{collector_addr}"),
        )
    };
    let telemetry = kg_runtime::telemetry::init_services(
        "kg-tests",
        &[kg_identity_check::SERVICE, kg_registration::SERVICE],
        kg_runtime::config::LogFormat::Text,
    );

    let website = kg_tests::fixtures::Website::start().await.unwrap();
    let identity_db = kg_tests::mesh::fresh_db().await.unwrap();
    let registration_db = kg_tests::mesh::fresh_db().await.unwrap();
    let identity = kg_tests::mesh::start_identity(&identity_db.url, true)
        .await
        .unwrap();
    let registration = kg_tests::mesh::start_registration(kg_tests::mesh::registration_config(
        &registration_db.url,
        &identity.url(),
        None,
    ))
    .await
    .unwrap();
    kg_proto::identity::identity_check_service_client::IdentityCheckServiceClient::new(
        identity.channel().await.unwrap(),
    )
    .import_accounts(kg_proto::identity::ImportAccountsRequest {
        request_id: "import-trace".to_string(),
        accounts: vec![kg_tests::fixtures::eligible_account("acct-trace")],
    })
    .await
    .unwrap();

    let trace_id = "5bf92f3577b34da6a3ce929d0e0e4737";
    let mut request = Request::new(kg_tests::fixtures::submission(
        "acct-trace",
        8,
        &website.url("/en"),
    ));
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{trace_id}-00f067aa0ba902b7-01")
            .parse()
            .unwrap(),
    );
    kg_proto::registration::registration_service_client::RegistrationServiceClient::new(
        registration.channel().await.unwrap(),
    )
    .submit_application(request)
    .await
    .unwrap();

    // A trace started by a client reaches the second service with the same trace id also when
    // the request is refused: the account is unknown, so registration refuses the submission
    // after asking identity-check.
    let refused_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let mut request = Request::new(kg_tests::fixtures::submission(
        "acct-trace-unknown",
        7,
        "http://127.0.0.1:9/",
    ));
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{refused_trace}-00f067aa0ba902b7-01")
            .parse()
            .unwrap(),
    );
    let err = kg_proto::registration::registration_service_client::RegistrationServiceClient::new(
        registration.channel().await.unwrap(),
    )
    .submit_application(request)
    .await
    .unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err:?}");

    registration.stop().await.unwrap();
    identity.stop().await.unwrap();
    drop(telemetry); // flushes the batch exporters

    let submit = "koogallery.registration.v1.RegistrationService/SubmitApplication";
    let eligibility = "koogallery.identity.v1.IdentityCheckService/CheckEligibility";
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let spans = loop {
        let spans: Vec<Seen> = collector
            .spans
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.trace_id == trace_id)
            .cloned()
            .collect();
        let has = |service: &str, name: &str, kind: i32| {
            spans
                .iter()
                .any(|s| s.service == service && s.name == name && s.kind == kind)
        };
        if has("registration", submit, SERVER)
            && has("registration", eligibility, CLIENT)
            && has("identity-check", eligibility, SERVER)
            && spans
                .iter()
                .any(|s| s.service == "identity-check" && s.name == "GET")
        {
            break spans;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "spans of trace {trace_id}: {spans:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let find = |service: &str, name: &str, kind: i32| {
        spans
            .iter()
            .find(|s| s.service == service && s.name == name && s.kind == kind)
            .unwrap()
    };
    let server = find("registration", submit, SERVER);
    let client = find("registration", eligibility, CLIENT);
    let callee = find("identity-check", eligibility, SERVER);
    // the client span sits between registration's server span and identity-check's
    assert_eq!(client.parent_id, server.span_id, "{spans:#?}");
    assert_eq!(callee.parent_id, client.span_id, "{spans:#?}");
    for span in [server, client, callee] {
        assert_eq!(span.attr("rpc.system.name"), Some("grpc"), "{span:?}");
        assert_eq!(
            span.attr("rpc.response.status_code"),
            Some("OK"),
            "{span:?}"
        );
        assert!(
            span.attr("kg.service").is_none(),
            "routing key left on {span:?}"
        );
    }
    assert_eq!(server.attr("rpc.method"), Some(submit));
    assert_eq!(client.attr("server.address"), Some("127.0.0.1"));
    assert!(spans.iter().all(|s| !s.name.starts_with('/')), "{spans:#?}");
    // database spans of each service, children within the trace
    for service in ["registration", "identity-check"] {
        let db = spans
            .iter()
            .filter(|s| s.service == service && s.attr("db.system.name").is_some())
            .collect::<Vec<_>>();
        assert!(!db.is_empty(), "no database span of {service}: {spans:#?}");
        assert!(
            db.iter()
                .all(|s| s.kind == CLIENT && s.attr("db.query.text").is_some())
        );
    }
    assert!(
        spans
            .iter()
            .any(|s| s.service == "registration" && s.name.starts_with("INSERT")),
        "{spans:#?}"
    );
    // the website check's HTTP request
    let http = spans
        .iter()
        .find(|s| s.service == "identity-check" && s.name == "GET")
        .unwrap();
    assert_eq!(http.kind, CLIENT);
    assert_eq!(
        http.attr("http.response.status_code"),
        Some("200"),
        "{http:?}"
    );

    // the refused submission's trace: registration's server span and identity-check's
    let refused: Vec<Seen> = collector
        .spans
        .lock()
        .unwrap()
        .iter()
        .filter(|s| s.trace_id == refused_trace)
        .cloned()
        .collect();
    assert!(
        refused
            .iter()
            .any(|s| s.service == "registration" && s.name == submit && s.kind == SERVER),
        "{refused:#?}"
    );
    assert!(
        refused
            .iter()
            .any(|s| s.service == "identity-check" && s.name == eligibility && s.kind == SERVER),
        "{refused:#?}"
    );
}
