//! SMS through a provider's HTTP API: a generic JSON adapter.
//!
//! Each message is one request:
//!
//! ```text
//! POST $KG_SMS_URL
//! Authorization: Bearer $KG_SMS_TOKEN          (when the token is set)
//! Content-Type: application/json
//!
//! {"to": "+8613800138000", "text": "…", "client_reference": "<delivery id>"}
//! ```
//!
//! * 2xx: accepted; `message_id` of a JSON reply (string or number), when present, is recorded
//!   as the provider's message id.
//! * 400, 404, 410, 413, 422 and other 4xx: the provider refuses this message (for example the
//!   number) for good: the delivery FAILS at once (SMS_PERMANENT).
//! * 401, 403 (our credentials), 408, 425, 429 (rate limit) and 5xx: transient, retried
//!   (SMS_TRANSIENT); so are connection errors; a timeout is TIMEOUT.
//!
//! `client_reference` lets a provider that supports it drop a repeated request (see the
//! at-least-once window in dispatcher.rs). Redirects are not followed.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use tracing::Instrument;

use crate::outcome::{Accepted, SendError, code};

pub struct SmsSender {
    client: reqwest::Client,
    url: reqwest::Url,
    token: Option<SecretString>,
}

impl SmsSender {
    pub fn new(url: &str, token: Option<SecretString>, timeout: Duration) -> anyhow::Result<Self> {
        let url = reqwest::Url::parse(url.trim())
            .map_err(|e| anyhow::anyhow!("KG_SMS_URL is not a URL ({e})"))?;
        if !matches!(url.scheme(), "http" | "https") {
            anyhow::bail!("KG_SMS_URL must be http:// or https://");
        }
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent("koogallery-notification")
            .build()?;
        Ok(SmsSender {
            client,
            url,
            token: token.filter(|t| !t.expose_secret().trim().is_empty()),
        })
    }

    /// The URL for logs: scheme, host, port and path only (a query may carry a key).
    pub fn redacted_url(&self) -> String {
        format!(
            "{}://{}{}{}",
            self.url.scheme(),
            self.url.host_str().unwrap_or_default(),
            self.url.port().map(|p| format!(":{p}")).unwrap_or_default(),
            self.url.path()
        )
    }

    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    pub async fn send(
        &self,
        delivery_id: &str,
        to: &str,
        text: &str,
    ) -> Result<Accepted, SendError> {
        let mut request = self.client.post(self.url.clone()).json(&serde_json::json!({
            "to": to,
            "text": text,
            "client_reference": delivery_id,
        }));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token.expose_secret());
        }
        let span = kg_runtime::telemetry::http_client_span(
            crate::SERVICE,
            "POST",
            &kg_runtime::telemetry::url_lite::Url::new(
                self.url.scheme(),
                self.url.host_str().unwrap_or_default(),
                self.url.port_or_known_default(),
                self.url.path(),
            ),
        );
        let sent = request.send().instrument(span.clone()).await;
        kg_runtime::telemetry::record_http_status(
            &span,
            match &sent {
                Ok(response) => Ok(response.status().as_u16()),
                Err(e) if e.is_timeout() => Err("timeout"),
                Err(e) if e.is_connect() => Err("connect"),
                Err(_) => Err("request"),
            },
        );
        let response = sent.map_err(|e| {
            let e = e.without_url(); // the URL may carry a key in its query
            if e.is_timeout() {
                SendError::transient(code::TIMEOUT, "the SMS provider did not answer in time")
            } else {
                SendError::transient(
                    code::SMS_TRANSIENT,
                    format!("cannot reach the SMS provider: {}", error_chain(&e)),
                )
            }
        })?;
        let status = response.status();
        let body = match response.bytes().await {
            Ok(bytes) => bytes,
            Err(e) if e.is_timeout() => {
                return Err(SendError::transient(
                    code::TIMEOUT,
                    "the SMS provider did not finish its reply in time",
                ));
            }
            Err(_) => Default::default(),
        };
        if status.is_success() {
            let message_id = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| match v.get("message_id") {
                    Some(serde_json::Value::String(s)) => Some(s.clone()),
                    Some(serde_json::Value::Number(n)) => Some(n.to_string()),
                    _ => None,
                })
                .unwrap_or_default();
            return Ok(Accepted {
                provider_message_id: message_id.chars().take(200).collect(),
            });
        }
        let snippet: String = String::from_utf8_lossy(&body).chars().take(200).collect();
        let message = format!("HTTP {}: {}", status.as_u16(), snippet.trim());
        let transient =
            status.is_server_error() || matches!(status.as_u16(), 401 | 403 | 408 | 425 | 429);
        if transient || !status.is_client_error() {
            Err(SendError::transient(code::SMS_TRANSIENT, message))
        } else {
            Err(SendError::permanent(code::SMS_PERMANENT, message))
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
