//! Bounded stalls and transport limits (issue 12), over real gRPC on 127.0.0.1:
//!
//! - a request message above the limit is answered RESOURCE_EXHAUSTED `MESSAGE_TOO_LARGE`;
//! - a connection that never sends the HTTP/2 preface is closed after the handshake timeout, one
//!   with no RPC in flight after the idle timeout, while an open stream keeps its connection;
//! - health turns NOT_SERVING within about a second of a dependency failing or hanging;
//! - SQLite pools carry their busy timeout (PostgreSQL's session timeouts are shown against the
//!   tests' own PostgreSQL server in tests/tests/flows/db_sessions.rs).

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use kg_runtime::db::DbTimeouts;
use kg_runtime::error::DecodedError;
use kg_runtime::health::Probe;
use kg_runtime::server::{ServeOptions, serve};
use kg_runtime::shutdown::{Shutdown, ShutdownTrigger};
use kg_runtime::transport::{ConnectionLimits, MESSAGE_TOO_LARGE};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tonic::body::Body;
use tonic::server::NamedService;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

/// A service that answers UNIMPLEMENTED to everything: the tests talk to health, which every
/// server carries.
#[derive(Clone)]
struct Nothing;

impl NamedService for Nothing {
    const NAME: &'static str = "koogallery.test.v1.Nothing";
}

impl tower::Service<http::Request<Body>> for Nothing {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _request: http::Request<Body>) -> Self::Future {
        std::future::ready(Ok(tonic::Status::unimplemented("nothing here").into_http()))
    }
}

struct Server {
    addr: SocketAddr,
    _trigger: ShutdownTrigger,
}

async fn start(name: &'static str, configure: impl FnOnce(&mut ServeOptions)) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (trigger, shutdown) = Shutdown::new();
    let mut options = ServeOptions::new(name, listener, shutdown);
    configure(&mut options);
    tokio::spawn(async move {
        if let Err(err) = serve(options, Nothing, |_| kg_runtime::auth::roles::EVERYONE).await {
            panic!("server failed: {err}");
        }
    });
    Server {
        addr,
        _trigger: trigger,
    }
}

async fn health_client(addr: SocketAddr) -> HealthClient<Channel> {
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    HealthClient::new(channel)
}

async fn status_of(client: &mut HealthClient<Channel>) -> ServingStatus {
    let response = client
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap();
    response.into_inner().status()
}

// --- message size ------------------------------------------------------------------------------

async fn oversize_status(addr: SocketAddr, bytes: usize) -> tonic::Status {
    let mut client = health_client(addr).await;
    client
        .check(HealthCheckRequest {
            service: "x".repeat(bytes),
        })
        .await
        .expect_err("an oversize message must be refused")
}

#[tokio::test]
async fn an_oversize_message_is_resource_exhausted_with_a_reason() {
    let server = start("identity-check", |_| {}).await;
    // health keeps tonic's default limit of 4 MiB; the layer works for every route alike
    let limit = 4 * 1024 * 1024;
    for bytes in [limit + 1, 100 * 1024 * 1024] {
        let status = oversize_status(server.addr, bytes).await;
        assert_eq!(
            status.code(),
            tonic::Code::ResourceExhausted,
            "{bytes} bytes: {status:?}"
        );
        let decoded = DecodedError::from_status(&status);
        assert_eq!(decoded.reason.as_deref(), Some(MESSAGE_TOO_LARGE));
        assert_eq!(decoded.domain.as_deref(), Some("identity.koogallery.io"));
        assert_eq!(decoded.metadata["limit_bytes"], limit.to_string());
        assert!(
            decoded.metadata["size_bytes"].parse::<usize>().unwrap() > bytes,
            "{decoded:?}"
        );
    }
    // a message within the limit is served as before
    let mut client = health_client(server.addr).await;
    let answer = client
        .check(HealthCheckRequest {
            service: "x".repeat(1024),
        })
        .await
        .unwrap_err();
    assert_eq!(answer.code(), tonic::Code::NotFound, "{answer:?}");
}

// --- handshake and idle timeouts ---------------------------------------------------------------

/// Reads until the server closes the connection (EOF or reset); how long that took.
async fn time_until_closed(mut stream: TcpStream, give_up: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    let closed = tokio::time::timeout(give_up, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue, // the server's SETTINGS
            }
        }
    })
    .await;
    closed.ok().map(|()| started.elapsed())
}

fn short_limits(options: &mut ServeOptions) {
    options.connection_limits = ConnectionLimits {
        handshake_timeout: Some(Duration::from_secs(1)),
        idle_timeout: Some(Duration::from_millis(1500)),
    };
}

#[tokio::test]
async fn a_silent_connection_is_closed_after_the_handshake_timeout() {
    let server = start("registration", short_limits).await;
    let silent = TcpStream::connect(server.addr).await.unwrap();
    let closed = time_until_closed(silent, Duration::from_secs(3)).await;
    let closed = closed.expect("a connection that sent nothing is still open after 3 s");
    assert!(
        closed >= Duration::from_millis(900),
        "closed after {closed:?}"
    );

    // half a preface is no better than none
    let mut slow = TcpStream::connect(server.addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut slow, b"PRI * HTTP/2.0")
        .await
        .unwrap();
    let closed = time_until_closed(slow, Duration::from_secs(3)).await;
    assert!(closed.is_some(), "a half preface kept the connection open");
}

/// A TCP stream that records when the server closed it.
struct Watched {
    inner: TcpStream,
    closed: Arc<AtomicBool>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        match &result {
            Poll::Ready(Ok(())) if buf.filled().len() == before && buf.remaining() > 0 => {
                self.closed.store(true, Ordering::SeqCst)
            }
            Poll::Ready(Err(_)) => self.closed.store(true, Ordering::SeqCst),
            _ => {}
        }
        result
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A health client on one connection whose closing by the server sets the returned flag.
async fn watched_client(addr: SocketAddr) -> (HealthClient<Channel>, Arc<AtomicBool>) {
    let closed = Arc::new(AtomicBool::new(false));
    let flag = closed.clone();
    let connector = tower::service_fn(move |_: http::Uri| {
        let closed = flag.clone();
        async move {
            let inner = TcpStream::connect(addr).await?;
            Ok::<_, io::Error>(TokioIo::new(Watched { inner, closed }))
        }
    });
    let channel = Endpoint::from_static("http://kg.test")
        .connect_with_connector(connector)
        .await
        .unwrap();
    (HealthClient::new(channel), closed)
}

async fn wait_for(flag: &AtomicBool, within: Duration) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < within {
        if flag.load(Ordering::SeqCst) {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

#[tokio::test]
async fn an_idle_connection_is_closed_and_an_open_stream_keeps_its_own() {
    let server = start("review", short_limits).await;

    // one call, then nothing: closed 1.5 s later, not before
    let (mut client, closed) = watched_client(server.addr).await;
    status_of(&mut client).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(
        !closed.load(Ordering::SeqCst),
        "closed before the idle timeout"
    );
    let after = wait_for(&closed, Duration::from_secs(3)).await;
    assert!(after.is_some(), "an idle connection is still open");

    // an open stream (health Watch) for longer than the idle timeout: the connection stays
    let (mut client, closed) = watched_client(server.addr).await;
    let mut stream = client
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let first: HealthCheckResponse = stream.message().await.unwrap().unwrap();
    assert!(first.status >= 0);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        !closed.load(Ordering::SeqCst),
        "a connection with an open stream was closed as idle"
    );
    // the stream ends: from then on the idle clock runs
    drop(stream);
    let after = wait_for(&closed, Duration::from_secs(4)).await;
    assert!(
        after.is_some(),
        "the connection stayed open after its stream ended"
    );
}

// --- health ------------------------------------------------------------------------------------

const UP: u8 = 0;
const DOWN: u8 = 1;
const HANGING: u8 = 2;

async fn wait_for_status(
    client: &mut HealthClient<Channel>,
    wanted: ServingStatus,
    within: Duration,
) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < within {
        if status_of(client).await == wanted {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

#[tokio::test]
async fn health_follows_a_failing_or_hanging_dependency_within_a_second() {
    let mode = Arc::new(AtomicU8::new(UP));
    let probe_mode = mode.clone();
    let probe = Probe::new("database", move || {
        let mode = probe_mode.clone();
        async move {
            match mode.load(Ordering::SeqCst) {
                UP => true,
                DOWN => false,
                _ => {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    true
                }
            }
        }
    });
    // the defaults: PROBE_INTERVAL and PROBE_TIMEOUT
    let server = start("notification", |options| options.probes.push(probe)).await;
    let mut client = health_client(server.addr).await;
    assert!(
        wait_for_status(&mut client, ServingStatus::Serving, Duration::from_secs(3))
            .await
            .is_some(),
        "never SERVING"
    );

    for failure in [DOWN, HANGING] {
        mode.store(failure, Ordering::SeqCst);
        let took = wait_for_status(
            &mut client,
            ServingStatus::NotServing,
            Duration::from_secs(3),
        )
        .await
        .expect("still SERVING 3 s after the dependency failed");
        assert!(
            took <= Duration::from_millis(1200),
            "mode {failure}: NOT_SERVING after {took:?}"
        );
        mode.store(UP, Ordering::SeqCst);
        let back = wait_for_status(&mut client, ServingStatus::Serving, Duration::from_secs(3))
            .await
            .expect("not SERVING again");
        assert!(
            back <= Duration::from_millis(1200),
            "SERVING after {back:?}"
        );
    }

    // a short outage (well under the old 1 s period plus 2 s timeout) is seen too
    mode.store(DOWN, Ordering::SeqCst);
    let seen = wait_for_status(
        &mut client,
        ServingStatus::NotServing,
        Duration::from_millis(1500),
    )
    .await;
    mode.store(UP, Ordering::SeqCst);
    assert!(seen.is_some(), "a 1.5 s outage was never reported");
}

// --- database timeouts -------------------------------------------------------------------------

#[tokio::test]
async fn sqlite_waits_the_lock_timeout_for_a_busy_database() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("busy.db").display());
    let timeouts = DbTimeouts {
        lock: Duration::from_millis(1234),
        ..DbTimeouts::default()
    };
    let db = kg_runtime::db::connect_with(&url, &timeouts).await.unwrap();
    assert_eq!(show_pragma(&db, "busy_timeout").await, 1234);
    let db = kg_runtime::db::connect(&url).await.unwrap();
    assert_eq!(show_pragma(&db, "busy_timeout").await, 5000);
}

async fn show_pragma(db: &DatabaseConnection, pragma: &str) -> i64 {
    let row = db
        .query_one_raw(Statement::from_string(
            DbBackend::Sqlite,
            format!("PRAGMA {pragma}"),
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get_by_index::<i64>(0).unwrap()
}
