//! The one-hop reference: tonic-health's `Check` served by a bare tonic server with the same
//! tower stack as every service as the bench configures them (kg_runtime::server::serve: the
//! 30 s request timeout, kg-runtime's trace span, the per-RPC metrics layer, the auth layer —
//! verifying tokens when `KG_JWT_SECRET` is set, as the services do — and the rate-limit layer,
//! off) and nothing else: no database, no reflection, no health probes. It runs as its own
//! process (`kg-bench echo-server`), like the services, with the same default worker count.
//!
//! The auth layer lets `grpc.health.v1.Health` through without a token (probes carry none), so
//! the measured echo is the same handler under a name of its own, [`SERVICE`]: its calls pass
//! the token check like any RPC of the mesh. The health service itself stays public, for
//! [`crate::procs::Service::wait_serving`].

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::task::{Context, Poll};
use std::time::Duration;

use kg_runtime::auth::{AuthLayer, Authenticator};
use kg_runtime::metrics::Metrics;
use kg_runtime::ratelimit::RateLimitLayer;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::body::Body;
use tonic::codegen::Service;
use tonic::codegen::http::{self, Uri, uri::PathAndQuery};
use tonic::server::NamedService;
use tonic::transport::Server;

use crate::tokens;

/// The gRPC name of the echo.
pub const SERVICE: &str = "koogallery.bench.v1.Echo";
/// The echo's one method, answered by tonic-health's `Check`.
const ECHO_PATH: &str = "/koogallery.bench.v1.Echo/Check";
const HEALTH_CHECK_PATH: &str = "/grpc.health.v1.Health/Check";

pub async fn serve(listen: SocketAddr) -> anyhow::Result<()> {
    let _telemetry =
        kg_runtime::telemetry::init("kg-bench-echo", kg_runtime::config::LogFormat::Text);
    let authenticator = std::env::var(tokens::SECRET_ENV)
        .ok()
        .filter(|s| !s.is_empty())
        .map(|secret| tokens::authenticator(&secret));
    let listener = TcpListener::bind(listen).await?;
    serve_on(listener, authenticator, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
}

async fn serve_on(
    listener: TcpListener,
    authenticator: Option<Authenticator>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    // tonic-health answers Check("") with SERVING from the start: the echo.
    let (_reporter, health) = tonic_health::server::health_reporter();
    let metrics = Metrics::default();
    Server::builder()
        .timeout(Duration::from_secs(30))
        .trace_fn(|request| kg_runtime::telemetry::server_span("kg-bench-echo", request))
        .layer(metrics.layer())
        .layer(AuthLayer::new(authenticator, SERVICE, |_| {
            kg_runtime::auth::roles::EVERYONE
        }))
        .layer(RateLimitLayer::new(None))
        .add_service(health.clone())
        .add_service(Echo(health))
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
        .await?;
    Ok(())
}

/// The health service under the echo's name: routed as [`SERVICE`], answered by `Check`.
#[derive(Clone)]
struct Echo<S>(S);

impl<S> NamedService for Echo<S> {
    const NAME: &'static str = SERVICE;
}

impl<S> Service<http::Request<Body>> for Echo<S>
where
    S: Service<http::Request<Body>, Error = Infallible>,
{
    type Response = S::Response;
    type Error = Infallible;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        *request.uri_mut() = Uri::from_static(HEALTH_CHECK_PATH);
        self.0.call(request)
    }
}

/// The client side: a `HealthClient` over this sends its `Check` to the echo's path, so the
/// echo is driven by tonic-health's own client code.
#[derive(Clone)]
pub struct Route<S>(pub S);

impl<S> Service<http::Request<Body>> for Route<S>
where
    S: Service<http::Request<Body>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        let mut parts = request.uri().clone().into_parts();
        parts.path_and_query = Some(PathAndQuery::from_static(ECHO_PATH));
        if let Ok(uri) = Uri::from_parts(parts) {
            *request.uri_mut() = uri;
        }
        self.0.call(request)
    }
}

#[cfg(test)]
mod tests {
    use tonic::Code;
    use tonic::transport::Channel;
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;

    use super::*;
    use crate::tokens::{Bearer, Tokens};

    async fn start(tokens: &Tokens) -> Channel {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let authenticator = tokens.verifier().cloned();
        tokio::spawn(serve_on(listener, authenticator, std::future::pending()));
        crate::procs::channels(&url, 1).await.unwrap().remove(0)
    }

    async fn echo(channel: &Channel, bearer: Bearer) -> Result<(), Code> {
        let request = HealthCheckRequest {
            service: String::new(),
        };
        HealthClient::with_interceptor(Route(channel.clone()), bearer)
            .check(request)
            .await
            .map(drop)
            .map_err(|s| s.code())
    }

    #[tokio::test]
    async fn with_authentication_the_echo_checks_the_token() {
        let tokens = Tokens::new(true);
        let channel = start(&tokens).await;
        assert_eq!(echo(&channel, tokens.applicant("acct-1")).await, Ok(()));
        assert_eq!(
            echo(&channel, Bearer::default()).await,
            Err(Code::Unauthenticated)
        );
        let other_run = Tokens::new(true).applicant("acct-1");
        assert_eq!(echo(&channel, other_run).await, Err(Code::Unauthenticated));
        // The health service stays public: the bench waits for SERVING without a token.
        let health = HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await;
        assert!(health.is_ok());
    }

    #[tokio::test]
    async fn without_authentication_no_token_is_needed() {
        let tokens = Tokens::new(false);
        let channel = start(&tokens).await;
        assert_eq!(echo(&channel, tokens.applicant("acct-1")).await, Ok(()));
    }
}
