//! A trace started by a client reaches a second service with the same trace id: the client calls
//! registration, registration calls identity-check, and both services export their server spans
//! over OTLP to a collector this test runs.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tonic::{Request, Response, Status};

#[derive(Clone, Default)]
struct Collector {
    /// (trace id hex, span name)
    spans: Arc<Mutex<Vec<(String, String)>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let mut spans = self.spans.lock().unwrap();
        for rs in request.into_inner().resource_spans {
            for ss in rs.scope_spans {
                for span in ss.spans {
                    spans.push((hex(&span.trace_id), span.name));
                }
            }
        }
        Ok(Response::new(ExportTraceServiceResponse::default()))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_trace_reaches_the_second_service_with_the_same_trace_id() {
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
    let telemetry = kg_runtime::telemetry::init("kg-tests", kg_runtime::config::LogFormat::Text);

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

    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let mut request = Request::new(kg_tests::fixtures::submission(
        "acct-trace",
        7,
        "http://127.0.0.1:9/",
    ));
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{trace_id}-00f067aa0ba902b7-01")
            .parse()
            .unwrap(),
    );
    let mut client =
        kg_proto::registration::registration_service_client::RegistrationServiceClient::new(
            registration.channel().await.unwrap(),
        );
    // The account is unknown, so the submission is refused, after registration asked identity-check.
    let err = client.submit_application(request).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err:?}");

    registration.stop().await.unwrap();
    identity.stop().await.unwrap();
    drop(telemetry); // flushes the batch exporter

    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let spans = collector.spans.lock().unwrap().clone();
        let in_trace: Vec<_> = spans
            .iter()
            .filter(|(t, _)| t == trace_id)
            .map(|(_, n)| n.clone())
            .collect();
        let at_registration = in_trace
            .iter()
            .any(|n| n.contains("RegistrationService/SubmitApplication"));
        let at_identity = in_trace
            .iter()
            .any(|n| n.contains("IdentityCheckService/CheckEligibility"));
        if at_registration && at_identity {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "spans of trace {trace_id}: {in_trace:?}; all: {spans:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
