//! Transport limits the gRPC server (tonic/hyper) does not have by itself:
//!
//! - a **handshake timeout**: a connection that has not sent the 24-byte HTTP/2 connection
//!   preface within the limit (with TLS: has not finished the TLS handshake) is closed;
//! - an **idle-connection timeout**: a connection with no RPC in flight for the limit is closed
//!   (clients reconnect on their next call; an open stream keeps its connection);
//! - **RESOURCE_EXHAUSTED for oversize messages**: tonic refuses a request message above the
//!   service's decoding limit with OUT_OF_RANGE; gRPC's own implementations, and our documents,
//!   say RESOURCE_EXHAUSTED. The answer is rewritten, with an `ErrorInfo` (`MESSAGE_TOO_LARGE`).
//!
//! The timeouts live in an IO wrapper ([`Guarded`]) around each accepted connection, below TLS
//! and HTTP/2: once its deadline has passed and the connection still has nothing to read, the
//! read fails and hyper drops (closes) the connection. Which RPCs are in flight on a connection
//! is known above HTTP/2 only, so [`ConnectionTrackerLayer`] finds the connection's state by
//! the peer address (in practice unique among the open connections of one listener) and holds it "busy" until the
//! response body is finished or dropped. The peer's `TcpConnectInfo` is left as tonic made it
//! (`Request::remote_addr`, `peer_certs` keep working).

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};
use tonic::body::Body;
use tonic::codegen::Bytes;
use tonic::transport::server::{Connected, TcpConnectInfo, TlsConnectInfo};
use tower::{Layer, Service};

/// Length of the HTTP/2 client connection preface (`PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`).
const PREFACE_LEN: u64 = 24;

/// The limits of one listener. `None`: no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnectionLimits {
    pub handshake_timeout: Option<Duration>,
    pub idle_timeout: Option<Duration>,
}

/// What one connection is doing, shared by its IO wrapper and the tracker layer.
struct ConnectionState {
    inner: Mutex<Activity>,
}

struct Activity {
    in_flight: usize,
    /// Since when nothing has been in flight.
    idle_since: Instant,
}

impl ConnectionState {
    fn begin(self: &Arc<Self>) -> InFlight {
        self.inner.lock().expect("connection state").in_flight += 1;
        InFlight(self.clone())
    }
}

/// One RPC in flight; dropping it ends it.
struct InFlight(Arc<ConnectionState>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut activity = self.0.inner.lock().expect("connection state");
        activity.in_flight -= 1;
        if activity.in_flight == 0 {
            activity.idle_since = Instant::now();
        }
    }
}

/// The open connections of one listener, by peer address.
#[derive(Clone, Default)]
pub struct ConnectionRegistry {
    open: Arc<Mutex<HashMap<SocketAddr, Arc<ConnectionState>>>>,
}

impl ConnectionRegistry {
    fn register(&self, peer: SocketAddr, state: &Arc<ConnectionState>) {
        self.open
            .lock()
            .expect("connection registry")
            .insert(peer, state.clone());
    }

    fn unregister(&self, peer: SocketAddr, state: &Arc<ConnectionState>) {
        let mut open = self.open.lock().expect("connection registry");
        if open.get(&peer).is_some_and(|s| Arc::ptr_eq(s, state)) {
            open.remove(&peer);
        }
    }

    fn find(&self, peer: SocketAddr) -> Option<Arc<ConnectionState>> {
        self.open
            .lock()
            .expect("connection registry")
            .get(&peer)
            .cloned()
    }

    /// Connections currently open (for tests and diagnostics).
    pub fn len(&self) -> usize {
        self.open.lock().expect("connection registry").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Wraps an accepted connection in the limits.
    pub fn guard<IO>(&self, io: IO, limits: ConnectionLimits) -> Guarded<IO>
    where
        IO: Connected<ConnectInfo = TcpConnectInfo>,
    {
        let now = Instant::now();
        let state = Arc::new(ConnectionState {
            inner: Mutex::new(Activity {
                in_flight: 0,
                idle_since: now,
            }),
        });
        let peer = io.connect_info().remote_addr();
        if let Some(peer) = peer {
            self.register(peer, &state);
        }
        let mut guarded = Guarded {
            io,
            limits,
            opened: now,
            read: 0,
            state,
            peer,
            registry: self.clone(),
            timer: None,
            closed: None,
        };
        guarded.timer = guarded
            .next_deadline(now)
            .map(|at| Box::pin(tokio::time::sleep_until(at)));
        guarded
    }
}

/// An accepted connection under [`ConnectionLimits`].
pub struct Guarded<IO> {
    io: IO,
    limits: ConnectionLimits,
    opened: Instant,
    /// Bytes read so far (counted up to the preface length).
    read: u64,
    state: Arc<ConnectionState>,
    peer: Option<SocketAddr>,
    registry: ConnectionRegistry,
    timer: Option<Pin<Box<Sleep>>>,
    /// Why the connection was closed, once it was.
    closed: Option<&'static str>,
}

enum Verdict {
    Open(Option<Instant>),
    Close(&'static str),
}

impl<IO> Guarded<IO> {
    /// When the connection must be looked at again (`None`: never, no limit applies).
    fn next_deadline(&self, now: Instant) -> Option<Instant> {
        match self.verdict(now) {
            Verdict::Open(at) => at,
            Verdict::Close(_) => Some(now),
        }
    }

    fn verdict(&self, now: Instant) -> Verdict {
        if self.read < PREFACE_LEN
            && let Some(limit) = self.limits.handshake_timeout
        {
            let deadline = self.opened + limit;
            return if now >= deadline {
                Verdict::Close("no HTTP/2 preface within the handshake timeout")
            } else {
                Verdict::Open(Some(deadline))
            };
        }
        let Some(limit) = self.limits.idle_timeout else {
            return Verdict::Open(None);
        };
        if self.peer.is_none() {
            // not tracked (no peer address): in-flight RPCs are unknown
            return Verdict::Open(None);
        }
        let activity = self.state.inner.lock().expect("connection state");
        if activity.in_flight > 0 {
            // look again later; the idle clock starts when the last RPC ends
            return Verdict::Open(Some(now + limit));
        }
        let deadline = activity.idle_since + limit;
        if now >= deadline {
            Verdict::Close("no RPC within the idle-connection timeout")
        } else {
            Verdict::Open(Some(deadline))
        }
    }

    /// Called when a read found nothing: polls the timer, closing the connection when due.
    fn poll_limits(&mut self, cx: &mut Context<'_>) -> Option<&'static str> {
        loop {
            let timer = self.timer.as_mut()?;
            if timer.as_mut().poll(cx).is_pending() {
                return None;
            }
            let now = Instant::now();
            match self.verdict(now) {
                Verdict::Close(why) => {
                    tracing::debug!(peer = ?self.peer, reason = why, "closing connection");
                    self.closed = Some(why);
                    self.timer = None;
                    return Some(why);
                }
                Verdict::Open(None) => {
                    self.timer = None;
                    return None;
                }
                Verdict::Open(Some(at)) => {
                    if let Some(timer) = self.timer.as_mut() {
                        timer.as_mut().reset(at);
                    }
                }
            }
        }
    }

    fn closed_error(why: &'static str) -> io::Error {
        io::Error::new(io::ErrorKind::TimedOut, why)
    }
}

impl<IO> Drop for Guarded<IO> {
    fn drop(&mut self) {
        if let Some(peer) = self.peer {
            self.registry.unregister(peer, &self.state);
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Guarded<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(why) = this.closed {
            return Poll::Ready(Err(Self::closed_error(why)));
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let n = (buf.filled().len() - before) as u64;
                if this.read < PREFACE_LEN {
                    this.read = this.read.saturating_add(n);
                    if this.read >= PREFACE_LEN && this.timer.is_some() {
                        // handshake done: from now on the idle rule decides
                        match this.next_deadline(Instant::now()) {
                            Some(at) => {
                                if let Some(timer) = this.timer.as_mut() {
                                    timer.as_mut().reset(at);
                                }
                            }
                            None => this.timer = None,
                        }
                    }
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match this.poll_limits(cx) {
                Some(why) => Poll::Ready(Err(Self::closed_error(why))),
                None => Poll::Pending,
            },
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Guarded<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(why) = this.closed {
            return Poll::Ready(Err(Self::closed_error(why)));
        }
        Pin::new(&mut this.io).poll_write(cx, data)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(why) = this.closed {
            return Poll::Ready(Err(Self::closed_error(why)));
        }
        Pin::new(&mut this.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

impl<IO> Connected for Guarded<IO>
where
    IO: Connected<ConnectInfo = TcpConnectInfo>,
{
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

/// Marks each RPC as in flight on its connection from the request until its response body is
/// finished (or dropped), so the idle-connection timeout spares connections with open streams.
#[derive(Clone)]
pub struct ConnectionTrackerLayer {
    registry: ConnectionRegistry,
}

impl ConnectionTrackerLayer {
    pub fn new(registry: ConnectionRegistry) -> Self {
        Self { registry }
    }
}

impl<S> Layer<S> for ConnectionTrackerLayer {
    type Service = ConnectionTracker<S>;
    fn layer(&self, inner: S) -> Self::Service {
        ConnectionTracker {
            inner,
            registry: self.registry.clone(),
        }
    }
}

#[derive(Clone)]
pub struct ConnectionTracker<S> {
    inner: S,
    registry: ConnectionRegistry,
}

fn peer_of<B>(request: &http::Request<B>) -> Option<SocketAddr> {
    let extensions = request.extensions();
    extensions
        .get::<TcpConnectInfo>()
        .and_then(TcpConnectInfo::remote_addr)
        .or_else(|| {
            extensions
                .get::<TlsConnectInfo<TcpConnectInfo>>()
                .and_then(|info| info.get_ref().remote_addr())
        })
}

impl<S, B> Service<http::Request<B>> for ConnectionTracker<S>
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
        let in_flight = peer_of(&request)
            .and_then(|peer| self.registry.find(peer))
            .map(|state| state.begin());
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await?;
            Ok(match in_flight {
                None => response,
                Some(in_flight) => response.map(|body| {
                    Body::new(TrackedBody {
                        inner: body,
                        _in_flight: in_flight,
                    })
                }),
            })
        })
    }
}

/// A response body that keeps its RPC in flight until it is finished or dropped.
struct TrackedBody {
    inner: Body,
    _in_flight: InFlight,
}

impl http_body::Body for TrackedBody {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The `ErrorInfo.reason` of a message above the service's size limit.
pub const MESSAGE_TOO_LARGE: &str = "MESSAGE_TOO_LARGE";

/// Turns tonic's OUT_OF_RANGE "decoded message length too large" into RESOURCE_EXHAUSTED with
/// `ErrorInfo` reason [`MESSAGE_TOO_LARGE`] (metadata `size_bytes`, `limit_bytes`).
#[derive(Clone)]
pub struct MessageSizeLayer {
    domain: Arc<str>,
}

impl MessageSizeLayer {
    /// `domain`: the service's `ErrorInfo.domain`, e.g. `registration.koogallery.io`.
    pub fn new(domain: impl Into<Arc<str>>) -> Self {
        Self {
            domain: domain.into(),
        }
    }
}

impl<S> Layer<S> for MessageSizeLayer {
    type Service = MessageSize<S>;
    fn layer(&self, inner: S) -> Self::Service {
        MessageSize {
            inner,
            domain: self.domain.clone(),
        }
    }
}

#[derive(Clone)]
pub struct MessageSize<S> {
    inner: S,
    domain: Arc<str>,
}

impl<S, B> Service<http::Request<B>> for MessageSize<S>
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
        let response = self.inner.call(request);
        let domain = self.domain.clone();
        Box::pin(async move {
            let response = response.await?;
            Ok(rewrite_too_large(response, &domain))
        })
    }
}

/// The rewrite itself: only a trailers-only answer (the status in the headers, which is how
/// tonic refuses a request message before the handler runs) with OUT_OF_RANGE and tonic's
/// size message is touched.
pub fn rewrite_too_large(response: http::Response<Body>, domain: &str) -> http::Response<Body> {
    let is_out_of_range = response
        .headers()
        .get("grpc-status")
        .is_some_and(|v| v.as_bytes() == b"11");
    if !is_out_of_range {
        return response;
    }
    let Some(status) = tonic::Status::from_header_map(response.headers()) else {
        return response;
    };
    let Some((size, limit)) = parse_too_large(status.message()) else {
        return response;
    };
    tracing::info!(
        size_bytes = size,
        limit_bytes = limit,
        "refused: message too large"
    );
    crate::error::message_too_large(domain, size, limit).into_http()
}

/// `(size, limit)` from tonic's "Error, decoded message length too large: found {size} bytes,
/// the limit is: {limit} bytes" (and the "encoded" twin); `None` for any other message.
fn parse_too_large(message: &str) -> Option<(Option<u64>, Option<u64>)> {
    if !message.contains("message length too large") {
        return None;
    }
    let number_after = |marker: &str| -> Option<u64> {
        let rest = &message[message.find(marker)? + marker.len()..];
        let digits: String = rest
            .trim_start()
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    };
    Some((number_after("found"), number_after("the limit is:")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tonic_size_messages_are_recognised() {
        assert_eq!(
            parse_too_large(
                "Error, decoded message length too large: found 104857600 bytes, the limit is: 6291456 bytes"
            ),
            Some((Some(104_857_600), Some(6_291_456)))
        );
        assert_eq!(parse_too_large("index out of range"), None);
    }

    #[test]
    fn only_out_of_range_size_answers_are_rewritten() {
        let too_large = tonic::Status::out_of_range(
            "Error, decoded message length too large: found 10 bytes, the limit is: 5 bytes",
        )
        .into_http::<Body>();
        let rewritten = rewrite_too_large(too_large, "x.koogallery.io");
        let status = tonic::Status::from_header_map(rewritten.headers()).unwrap();
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        let decoded = crate::error::DecodedError::from_status(&status);
        assert_eq!(decoded.reason.as_deref(), Some(MESSAGE_TOO_LARGE));
        assert_eq!(decoded.domain.as_deref(), Some("x.koogallery.io"));
        assert_eq!(decoded.metadata["limit_bytes"], "5");
        assert_eq!(decoded.metadata["size_bytes"], "10");

        let other = tonic::Status::out_of_range("page past the end").into_http::<Body>();
        let kept = rewrite_too_large(other, "x.koogallery.io");
        let status = tonic::Status::from_header_map(kept.headers()).unwrap();
        assert_eq!(status.code(), tonic::Code::OutOfRange);
    }
}
