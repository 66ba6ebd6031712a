//! Outgoing gRPC: channels with timeouts, TLS for `https://` peers, a client span and call
//! metrics on every call, trace-context propagation and the service token.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::auth::{Authenticator, Role};
use crate::config::{CommonConfig, ExposeSecret as _};

use tonic::metadata::{AsciiMetadataValue, MetadataMap};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

/// A channel wrapped with [`OutboundInterceptor`] and [`Observed`]; the generated clients take
/// it.
pub type OutboundChannel = Observed<InterceptedService<Channel, OutboundInterceptor>>;

/// Opens a client span around each call (current while the interceptor writes `traceparent`,
/// so the callee's server span is its child) and records `rpc_client_call_duration_seconds`
/// and `rpc_client_active_calls` until the response body ends.
#[derive(Clone)]
pub struct Observed<S> {
    inner: S,
    service: Arc<str>,
    /// The peer's URL: requests carry only the path at this layer.
    peer: http::Uri,
    metrics: crate::metrics::CallMetrics,
}

impl<S> Observed<S> {
    /// `service`: the calling service, whose metrics endpoint reports these calls; `url`: the
    /// peer, for the spans' `server.address` and `server.port`.
    pub fn new(inner: S, service: &str, url: &str) -> Self {
        Self {
            inner,
            service: service.into(),
            peer: url.parse().unwrap_or_default(),
            metrics: crate::metrics::client_metrics(service),
        }
    }
}

impl<S, ResBody> tower::Service<http::Request<tonic::body::Body>> for Observed<S>
where
    S: tower::Service<http::Request<tonic::body::Body>, Response = http::Response<ResBody>>,
    S::Error: Into<tonic::codegen::StdError>,
    S::Future: Send + 'static,
    ResBody: http_body::Body<Data = tonic::codegen::Bytes> + Send + 'static,
    ResBody::Error: Into<tonic::codegen::StdError>,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = tonic::codegen::StdError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let span = crate::telemetry::client_span(&self.service, &self.peer, request.uri().path());
        let mut call = self.metrics.start(request.uri().path(), span.clone());
        // the interceptor runs inside this call: it injects the client span's context
        let future = span.in_scope(|| self.inner.call(request));
        Box::pin(async move {
            match future.await {
                Ok(response) => Ok(crate::metrics::observe_response(
                    call,
                    response.map(tonic::body::Body::new),
                )),
                Err(err) => {
                    let err: tonic::codegen::StdError = err.into();
                    call.finish(error_code(err.as_ref()));
                    Err(err)
                }
            }
        })
    }
}

/// The status a caller sees for a call that failed below gRPC, as tonic maps it.
fn error_code(err: &(dyn std::error::Error + 'static)) -> tonic::Code {
    let mut source = Some(err);
    while let Some(err) = source {
        if let Some(status) = err.downcast_ref::<tonic::Status>() {
            return status.code();
        }
        if err.is::<tonic::TimeoutExpired>() {
            return tonic::Code::Cancelled;
        }
        source = err.source();
    }
    tonic::Code::Unavailable
}

/// Lifetime of a service token; it is reused until [`SERVICE_TOKEN_RENEW_BEFORE`] before expiry.
pub const SERVICE_TOKEN_TTL: Duration = Duration::from_secs(300);
pub const SERVICE_TOKEN_RENEW_BEFORE: Duration = Duration::from_secs(60);

/// Adds `traceparent` and, when this service holds a signing key, a short-lived
/// `authorization: Bearer <service token>` with the service's own name as subject. The header is
/// marked sensitive (never indexed by HPACK, shown as `Sensitive` by `Debug`).
#[derive(Clone, Default)]
pub struct OutboundInterceptor {
    signer: Option<Arc<Signer>>,
    /// A pre-issued service token (KG_SERVICE_TOKEN), used when there is no signer.
    fixed: Option<AsciiMetadataValue>,
}

struct Signer {
    auth: Authenticator,
    service: String,
    cached: Mutex<Option<(AsciiMetadataValue, Instant)>>,
}

impl Signer {
    fn authorization(&self) -> Option<AsciiMetadataValue> {
        let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((value, renew_at)) = cached.as_ref()
            && Instant::now() < *renew_at
        {
            return Some(value.clone());
        }
        let token = self
            .auth
            .mint(&self.service, Role::Service, SERVICE_TOKEN_TTL);
        if token.is_empty() {
            return None;
        }
        let mut value: AsciiMetadataValue = format!("Bearer {token}").parse().ok()?;
        value.set_sensitive(true);
        *cached = Some((
            value.clone(),
            Instant::now() + SERVICE_TOKEN_TTL - SERVICE_TOKEN_RENEW_BEFORE,
        ));
        Some(value)
    }
}

impl OutboundInterceptor {
    pub fn new(signer: Option<(Authenticator, &str)>) -> Self {
        Self {
            signer: signer.filter(|(a, _)| a.can_mint()).map(|(auth, service)| {
                Arc::new(Signer {
                    auth,
                    service: service.to_string(),
                    cached: Mutex::new(None),
                })
            }),
            fixed: None,
        }
    }

    /// Presents `token` (a service token issued elsewhere, KG_SERVICE_TOKEN) when this process
    /// cannot mint its own.
    pub fn with_fixed_token(mut self, token: Option<&str>) -> anyhow::Result<Self> {
        self.fixed = match token.map(str::trim).filter(|t| !t.is_empty()) {
            None => None,
            Some(token) => {
                let mut value: AsciiMetadataValue = format!("Bearer {token}")
                    .parse()
                    .map_err(|_| anyhow::anyhow!("KG_SERVICE_TOKEN is not a valid header value"))?;
                value.set_sensitive(true);
                Some(value)
            }
        };
        Ok(self)
    }
}

impl Interceptor for OutboundInterceptor {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        let authorization = self
            .signer
            .as_ref()
            .and_then(|s| s.authorization())
            .or_else(|| self.fixed.clone());
        inject(request.metadata_mut(), authorization.as_ref());
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
    channel_with(url, call_timeout, None)
}

/// [`channel`] with TLS for `https://` URLs. An `https://` URL without a TLS configuration (no
/// KG_TLS_CA) is a configuration error: there are no built-in trust roots.
pub fn channel_with(
    url: &str,
    call_timeout: Duration,
    tls: Option<&ClientTlsConfig>,
) -> anyhow::Result<Channel> {
    let mut endpoint = Endpoint::from_shared(url.to_string())
        .map_err(|e| anyhow::anyhow!("invalid service URL {url:?}: {e}"))?
        .connect_timeout(Duration::from_secs(3))
        .timeout(call_timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_while_idle(true);
    if endpoint.uri().scheme_str() == Some("https") {
        let Some(tls) = tls else {
            anyhow::bail!("{url} is https but no CA is configured to trust it (KG_TLS_CA)");
        };
        endpoint = endpoint
            .tls_config(tls.clone())
            .map_err(|e| anyhow::anyhow!("TLS for {url}: {e}"))?;
    }
    Ok(endpoint.connect_lazy())
}

/// A channel plus the interceptor, ready for `XClient::new`; calls count for `service`.
pub fn outbound(
    url: &str,
    call_timeout: Duration,
    signer: Option<(Authenticator, &str)>,
) -> anyhow::Result<OutboundChannel> {
    outbound_with(url, call_timeout, signer, None)
}

/// [`outbound`] with TLS for `https://` URLs (see [`crate::config::CommonConfig::outbound`]).
pub fn outbound_with(
    url: &str,
    call_timeout: Duration,
    signer: Option<(Authenticator, &str)>,
    tls: Option<&ClientTlsConfig>,
) -> anyhow::Result<OutboundChannel> {
    let service = signer.as_ref().map(|(_, s)| *s).unwrap_or("koogallery");
    Ok(Observed::new(
        InterceptedService::new(
            channel_with(url, call_timeout, tls)?,
            OutboundInterceptor::new(signer.clone()),
        ),
        service,
        url,
    ))
}

// Defined here rather than in `config`, which sits below this module: the settings do not
// need to know how a channel is built.
impl CommonConfig {
    /// A channel to another service of the mesh: deadline `call_timeout` on every call, TLS for
    /// `https://` URLs (trusting KG_TLS_CA, presenting this service's certificate), and a
    /// short-lived service token with `service` as subject when `auth` can mint.
    pub fn outbound(
        &self,
        url: &str,
        call_timeout: Duration,
        auth: Option<&Authenticator>,
        service: &str,
    ) -> anyhow::Result<OutboundChannel> {
        let tls = self.tls_files().client()?;
        let interceptor = OutboundInterceptor::new(auth.cloned().map(|a| (a, service)))
            .with_fixed_token(self.service_token.as_ref().map(|t| t.expose_secret()))?;
        Ok(Observed::new(
            InterceptedService::new(channel_with(url, call_timeout, tls.as_ref())?, interceptor),
            service,
            url,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_tokens_are_sensitive_and_reused() {
        let auth = Authenticator::hs256(
            b"0123456789abcdef0123456789abcdef",
            crate::auth::DEFAULT_ISSUER,
            crate::auth::DEFAULT_AUDIENCE,
        );
        let mut interceptor = OutboundInterceptor::new(Some((auth.clone(), "registration")));
        let first = interceptor.call(tonic::Request::new(())).unwrap();
        let second = interceptor.call(tonic::Request::new(())).unwrap();
        let value = first.metadata().get("authorization").unwrap();
        assert!(value.is_sensitive());
        assert!(!format!("{:?}", first.metadata()).contains("Bearer"));
        assert_eq!(value, second.metadata().get("authorization").unwrap());
        let token = value.to_str().unwrap().strip_prefix("Bearer ").unwrap();
        let caller = auth.verify(token).unwrap();
        assert_eq!(
            (caller.subject.as_str(), caller.role),
            ("registration", Role::Service)
        );
    }

    #[tokio::test]
    async fn https_needs_a_ca() {
        let err = channel_with("https://peer:443", Duration::from_secs(1), None).unwrap_err();
        assert!(err.to_string().contains("KG_TLS_CA"), "{err}");
        assert!(channel_with("http://peer:80", Duration::from_secs(1), None).is_ok());
    }
}
