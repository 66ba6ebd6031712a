//! An in-process HTTP server standing in for the SMS provider.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// One request the stand-in received.
#[derive(Debug, Clone, PartialEq)]
pub struct SmsRequest {
    /// HTTP method.
    pub method: String,
    /// Path and query, as requested.
    pub path: String,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
    /// The JSON body; a body that is not JSON is kept as a JSON string.
    pub body: serde_json::Value,
    /// The status the stand-in answered (200, 400, 405 or 503).
    pub status: u16,
}

#[derive(Default)]
struct Shared {
    requests: Mutex<Vec<SmsRequest>>,
    failing: AtomicBool,
    next_id: AtomicU64,
}

/// An HTTP/1.1 server on `127.0.0.1:<port>` (a task in the current tokio runtime). It answers
/// a `POST` with a JSON body on any path with `200 {"message_id": "sms-<n>", "status":
/// "accepted"}`; while [`set_failing`](Self::set_failing) is on, with `503`; a body that is not
/// JSON gets `400`, another method `405`. Every request is recorded.
/// Dropping the value shuts the server down.
pub struct SmsProvider {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for SmsProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmsProvider")
            .field("addr", &self.addr)
            .finish()
    }
}

impl SmsProvider {
    /// Binds 127.0.0.1 on a port chosen by the kernel and starts serving.
    pub async fn start() -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .context("binding the SMS provider stand-in")?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&shared));
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
            if let Err(e) = served {
                tracing::warn!("SMS provider stand-in stopped: {e}");
            }
        });
        Ok(Self {
            addr,
            shared,
            shutdown: Some(tx),
            task,
        })
    }

    /// `http://127.0.0.1:<port>` (no trailing slash; any path is accepted).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The bodies of the requests that were accepted (answered 200), oldest first.
    pub fn messages(&self) -> Vec<serde_json::Value> {
        self.requests()
            .into_iter()
            .filter(|r| r.status == 200)
            .map(|r| r.body)
            .collect()
    }

    /// Every request received (also refused ones), oldest first.
    pub fn requests(&self) -> Vec<SmsRequest> {
        lock(&self.shared.requests).clone()
    }

    /// While on, every request is answered `503 Service Unavailable` (and recorded).
    pub fn set_failing(&self, failing: bool) {
        self.shared.failing.store(failing, Ordering::SeqCst);
    }

    /// Waits until at least `count` messages were accepted; returns all accepted messages.
    pub async fn wait_for_messages(
        &self,
        count: usize,
        timeout: Duration,
    ) -> anyhow::Result<Vec<serde_json::Value>> {
        let deadline = Instant::now() + timeout;
        loop {
            let messages = self.messages();
            if messages.len() >= count {
                return Ok(messages);
            }
            if Instant::now() >= deadline {
                return Err(anyhow!(
                    "the SMS provider stand-in accepted {} message(s) within {timeout:?}, \
                     expected at least {count} ({} request(s) in all)",
                    messages.len(),
                    self.requests().len()
                ));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl Drop for SmsProvider {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.task.abort();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn json_response(status: StatusCode, body: serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let parsed = serde_json::from_slice::<serde_json::Value>(&body);
    let (status, reply) = if method != Method::POST {
        (
            StatusCode::METHOD_NOT_ALLOWED,
            serde_json::json!({"error": "method not allowed"}),
        )
    } else if shared.failing.load(Ordering::SeqCst) {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"error": "unavailable"}),
        )
    } else if parsed.is_err() {
        (
            StatusCode::BAD_REQUEST,
            serde_json::json!({"error": "body is not JSON"}),
        )
    } else {
        let n = shared.next_id.fetch_add(1, Ordering::SeqCst) + 1;
        (
            StatusCode::OK,
            serde_json::json!({"message_id": format!("sms-{n}"), "status": "accepted"}),
        )
    };
    let request = SmsRequest {
        method: method.to_string(),
        path: uri
            .path_and_query()
            .map_or_else(|| uri.path().to_owned(), |p| p.as_str().to_owned()),
        authorization: headers
            .get(header::AUTHORIZATION)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
        body: parsed.unwrap_or_else(|_| {
            serde_json::Value::String(String::from_utf8_lossy(&body).into_owned())
        }),
        status: status.as_u16(),
    };
    lock(&shared.requests).push(request);
    json_response(status, reply)
}
