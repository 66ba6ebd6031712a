//! Email over SMTP with lettre's async transport (tokio, rustls with the webpki roots).
//!
//! `KG_SMTP_URL`: `smtp://[user:password@]host[:port][?tls=none|starttls|opportunistic|tls]`
//! (`smtps://…` means `tls=tls`).
//! * `tls=starttls` (the default): plain connection upgraded with STARTTLS, which is required;
//!   default port 587.
//! * `tls=tls`: TLS from the first byte (implicit TLS); default port 465.
//! * `tls=opportunistic`: STARTTLS when the server offers it, else plain text (discouraged).
//! * `tls=none`: plain text only, for a relay on the same host or network; default port 25.
//!
//! User and password are percent-decoded and sent with AUTH when given; logs show the URL with
//! the password replaced by `***`.
//!
//! `KG_SMTP_BOUNCE_ADDRESS` (optional): the envelope sender (`MAIL FROM`) of every email, so
//! that bounce reports of mail the server accepted reach the bounce mailbox (`bounces.rs`);
//! unset, the envelope sender is the `From` address.
//!
//! Classification of failures: a 5xx reply (the server refuses this message or recipient for
//! good) is permanent, except the authentication replies 530/534/535/538, which mean our own
//! configuration is wrong and must not lose the message; 4xx replies, network and TLS errors
//! and timeouts are transient.

use std::time::Duration;

use lettre::address::Envelope;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::PoolConfig;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use crate::outcome::{Accepted, SendError, code};

/// How the connection to the SMTP server is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    None,
    Opportunistic,
    StartTls,
    Implicit,
}

impl TlsMode {
    fn as_str(self) -> &'static str {
        match self {
            TlsMode::None => "none",
            TlsMode::Opportunistic => "opportunistic",
            TlsMode::StartTls => "starttls",
            TlsMode::Implicit => "tls",
        }
    }
}

/// A parsed `KG_SMTP_URL`.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    pub credentials: Option<(String, String)>,
}

impl std::fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl SmtpSettings {
    pub fn parse(raw: &str) -> anyhow::Result<SmtpSettings> {
        // never echo the URL itself: it may hold a password
        let url = url::Url::parse(raw.trim())
            .map_err(|e| anyhow::anyhow!("KG_SMTP_URL is not a URL ({e})"))?;
        let mut tls = match url.scheme() {
            "smtp" => TlsMode::StartTls,
            "smtps" => TlsMode::Implicit,
            other => anyhow::bail!("KG_SMTP_URL: scheme {other:?} is not smtp or smtps"),
        };
        for (key, value) in url.query_pairs() {
            match key.as_ref() {
                "tls" => {
                    tls = match value.as_ref() {
                        "none" => TlsMode::None,
                        "opportunistic" => TlsMode::Opportunistic,
                        "starttls" => TlsMode::StartTls,
                        "tls" | "wrapper" | "implicit" => TlsMode::Implicit,
                        other => anyhow::bail!(
                            "KG_SMTP_URL: tls={other:?} is not none, starttls, opportunistic or tls"
                        ),
                    }
                }
                other => anyhow::bail!("KG_SMTP_URL: unknown parameter {other:?}"),
            }
        }
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| anyhow::anyhow!("KG_SMTP_URL has no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = url.port().unwrap_or(match tls {
            TlsMode::Implicit => 465,
            TlsMode::StartTls => 587,
            TlsMode::None | TlsMode::Opportunistic => 25,
        });
        let decode = |s: &str| {
            url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        let credentials = if url.username().is_empty() {
            None
        } else {
            Some((
                decode(url.username()),
                decode(url.password().unwrap_or_default()),
            ))
        };
        Ok(SmtpSettings {
            host,
            port,
            tls,
            credentials,
        })
    }

    /// The URL for logs: the password is never shown.
    pub fn redacted(&self) -> String {
        let user = match &self.credentials {
            Some((user, _)) => format!("{user}:***@"),
            None => String::new(),
        };
        format!(
            "smtp://{user}{}:{}?tls={}",
            self.host,
            self.port,
            self.tls.as_str()
        )
    }
}

/// Sends email through one SMTP server (a small connection pool).
pub struct EmailSender {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// The envelope sender when it is not `from` (`KG_SMTP_BOUNCE_ADDRESS`).
    bounce_address: Option<Address>,
    message_id_domain: String,
    timeout: Duration,
}

impl EmailSender {
    pub fn new(settings: &SmtpSettings, from: &str, timeout: Duration) -> anyhow::Result<Self> {
        let from: Mailbox = from
            .parse()
            .map_err(|e| anyhow::anyhow!("KG_SMTP_FROM {from:?} is not a mailbox: {e}"))?;
        let tls_parameters = || {
            TlsParameters::new(settings.host.clone())
                .map_err(|e| anyhow::anyhow!("SMTP TLS setup for {}: {e}", settings.host))
        };
        let tls = match settings.tls {
            TlsMode::None => Tls::None,
            TlsMode::Opportunistic => Tls::Opportunistic(tls_parameters()?),
            TlsMode::StartTls => Tls::Required(tls_parameters()?),
            TlsMode::Implicit => Tls::Wrapper(tls_parameters()?),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&settings.host)
            .port(settings.port)
            .tls(tls)
            .timeout(Some(timeout))
            .pool_config(
                PoolConfig::new()
                    .max_size(8)
                    .idle_timeout(Duration::from_secs(30)),
            );
        if let Some((user, password)) = &settings.credentials {
            builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
        }
        Ok(EmailSender {
            transport: builder.build(),
            message_id_domain: from.email.domain().to_string(),
            from,
            bounce_address: None,
            timeout,
        })
    }

    /// Sends every email with `address` as the envelope sender (`MAIL FROM`), so bounce reports
    /// go there; the `From` header stays.
    pub fn with_bounce_address(mut self, address: &str) -> anyhow::Result<Self> {
        let address: Address = address.trim().parse().map_err(|e| {
            anyhow::anyhow!("KG_SMTP_BOUNCE_ADDRESS {address:?} is not an address: {e}")
        })?;
        self.bounce_address = Some(address);
        Ok(self)
    }

    /// The envelope sender: the bounce address when set, else the `From` address.
    pub fn envelope_sender(&self) -> &Address {
        self.bounce_address.as_ref().unwrap_or(&self.from.email)
    }

    /// Sends one message. `Ok` means the server answered 250 to the message data: it took
    /// responsibility for it.
    pub async fn send(
        &self,
        delivery_id: &str,
        to: &str,
        subject: &str,
        body: &str,
    ) -> Result<Accepted, SendError> {
        let address: Address = to.parse().map_err(|_| {
            SendError::permanent(code::SMTP_PERMANENT, "the recipient address is not valid")
        })?;
        // A stable Message-ID per delivery: should a message ever go out twice (see the
        // at-least-once window in dispatcher.rs), mail systems can see it is the same message.
        let message_id = format!("<{delivery_id}@{}>", self.message_id_domain);
        let mut builder = Message::builder()
            .from(self.from.clone())
            .to(Mailbox::new(None, address.clone()));
        if let Some(bounce) = &self.bounce_address {
            let envelope = Envelope::new(Some(bounce.clone()), vec![address])
                .map_err(|e| SendError::permanent(code::TEMPLATE_ERROR, e.to_string()))?;
            builder = builder.envelope(envelope);
        }
        let mut message = builder
            .subject(crate::templates::one_line(subject, 250))
            .message_id(Some(message_id.clone()))
            .header(ContentType::TEXT_PLAIN)
            .body(body.replace("\r\n", "\n"))
            .map_err(|e| SendError::permanent(code::TEMPLATE_ERROR, e.to_string()))?;
        // RFC 3834: an automatic message; auto-responders should not answer it.
        message.headers_mut().insert_raw(HeaderValue::new(
            HeaderName::new_from_ascii_str("Auto-Submitted"),
            "auto-generated".to_string(),
        ));
        let sent = tokio::time::timeout(self.timeout, self.transport.send(message)).await;
        match sent {
            Err(_) => Err(SendError::transient(
                code::TIMEOUT,
                format!(
                    "the SMTP server did not finish within {} ms",
                    self.timeout.as_millis()
                ),
            )),
            Ok(Err(e)) => Err(classify(&e)),
            Ok(Ok(response)) => {
                let text = response.message().collect::<Vec<_>>().join(" ");
                let queued = text
                    .split_once("queued as ")
                    .and_then(|(_, rest)| rest.split_whitespace().next())
                    .map(|id| id.trim_end_matches([';', ',', '.', ')']).to_string())
                    .filter(|id| !id.is_empty());
                Ok(Accepted {
                    provider_message_id: queued.unwrap_or_else(|| {
                        message_id
                            .trim_start_matches('<')
                            .trim_end_matches('>')
                            .to_string()
                    }),
                })
            }
        }
    }
}

fn classify(e: &lettre::transport::smtp::Error) -> SendError {
    if e.is_timeout() {
        return SendError::transient(code::TIMEOUT, e.to_string());
    }
    let detail = std::error::Error::source(e)
        .map(ToString::to_string)
        .unwrap_or_default();
    match e.status() {
        Some(status) => {
            let number = status.to_string();
            let message = format!("{number} {detail}").trim().to_string();
            let auth = matches!(number.as_str(), "530" | "534" | "535" | "538");
            if e.is_permanent() && !auth {
                SendError::permanent(code::SMTP_PERMANENT, message)
            } else {
                SendError::transient(code::SMTP_TRANSIENT, message)
            }
        }
        None => SendError::transient(code::SMTP_TRANSIENT, e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_bounce_address_is_the_envelope_sender() {
        let smtp = SmtpSettings::parse("smtp://127.0.0.1:2525?tls=none").unwrap();
        let sender = EmailSender::new(
            &smtp,
            "KooGallery <no-reply@koogallery.example>",
            Duration::from_secs(1),
        )
        .unwrap();
        assert_eq!(
            sender.envelope_sender().to_string(),
            "no-reply@koogallery.example"
        );
        let sender = sender
            .with_bounce_address("bounces@koogallery.example")
            .unwrap();
        assert_eq!(
            sender.envelope_sender().to_string(),
            "bounces@koogallery.example"
        );
        let sender =
            EmailSender::new(&smtp, "no-reply@koogallery.example", Duration::from_secs(1)).unwrap();
        assert!(sender.with_bounce_address("not an address").is_err());
    }

    #[test]
    fn urls() {
        let s = SmtpSettings::parse("smtp://127.0.0.1:2525?tls=none").unwrap();
        assert_eq!(
            (s.host.as_str(), s.port, s.tls, s.credentials),
            ("127.0.0.1", 2525, TlsMode::None, None)
        );
        let s = SmtpSettings::parse("smtp://mailer:p%40ss%2Bw0rd@smtp.example").unwrap();
        assert_eq!(s.port, 587);
        assert_eq!(s.tls, TlsMode::StartTls);
        assert_eq!(
            s.credentials,
            Some(("mailer".to_string(), "p@ss+w0rd".to_string()))
        );
        assert_eq!(
            s.redacted(),
            "smtp://mailer:***@smtp.example:587?tls=starttls"
        );
        assert!(!format!("{s:?}").contains("p@ss"));
        let s = SmtpSettings::parse("smtps://smtp.example").unwrap();
        assert_eq!((s.port, s.tls), (465, TlsMode::Implicit));
        let s = SmtpSettings::parse("smtp://smtp.example:2525?tls=tls").unwrap();
        assert_eq!((s.port, s.tls), (2525, TlsMode::Implicit));
        assert!(SmtpSettings::parse("http://smtp.example").is_err());
        assert!(SmtpSettings::parse("smtp://smtp.example?tls=maybe").is_err());
        let err = SmtpSettings::parse("smtp://u:secret@?x")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("secret"), "{err}");
    }
}
