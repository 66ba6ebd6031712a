//! Outgoing gRPC: channels with timeouts, trace-context propagation and the service token.

use std::time::Duration;

use tonic::metadata::{AsciiMetadataValue, MetadataMap};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

/// A channel wrapped with [`OutboundInterceptor`]; the generated clients take it.
pub type OutboundChannel = InterceptedService<Channel, OutboundInterceptor>;

/// Adds `traceparent` and, when configured, `authorization: Bearer <service token>`.
#[derive(Clone, Default)]
pub struct OutboundInterceptor {
    authorization: Option<AsciiMetadataValue>,
}

impl OutboundInterceptor {
    pub fn new(service_token: Option<&str>) -> Self {
        let authorization = service_token.and_then(|t| format!("Bearer {t}").parse().ok());
        Self { authorization }
    }
}

impl Interceptor for OutboundInterceptor {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        inject(request.metadata_mut(), self.authorization.as_ref());
        Ok(request)
    }
}

fn inject(metadata: &mut MetadataMap, authorization: Option<&AsciiMetadataValue>) {
    crate::telemetry::inject_current(metadata);
    if let Some(value) = authorization
        && !metadata.contains_key("authorization")
    {
        metadata.insert("authorization", value.clone());
    }
}

/// A lazily connecting channel: the peer may start later; calls fail with UNAVAILABLE until then.
/// Every call gets a deadline, so a hung peer cannot hold a caller forever.
pub fn channel(url: &str, call_timeout: Duration) -> anyhow::Result<Channel> {
    let endpoint = Endpoint::from_shared(url.to_string())
        .map_err(|e| anyhow::anyhow!("invalid service URL {url:?}: {e}"))?
        .connect_timeout(Duration::from_secs(3))
        .timeout(call_timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_while_idle(true);
    Ok(endpoint.connect_lazy())
}

/// A channel plus the interceptor, ready for `XClient::new`.
pub fn outbound(
    url: &str,
    call_timeout: Duration,
    service_token: Option<&str>,
) -> anyhow::Result<OutboundChannel> {
    Ok(InterceptedService::new(
        channel(url, call_timeout)?,
        OutboundInterceptor::new(service_token),
    ))
}
