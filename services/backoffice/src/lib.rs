//! backoffice: the reviewers' web application. Server-rendered pages (axum + minijinja, no
//! script at all) over the public gRPC APIs of review, registration and identity-check. It owns
//! no database and holds no credential of its own: every call carries the signed-in reviewer's
//! bearer token, so the services authorize and audit the reviewer, never the back office.
//!
//! * `auth.rs`: who is signed in (the auth proxy's `Authorization` header, or the
//!   development sign-in's cookie on a local mesh) and the CSRF token of every form;
//! * `pages/`: the queue (`queue.rs`), the task page and the logo (`task.rs`), the actions
//!   (`actions.rs`) and the development sign-in (`signin.rs`); the router and what the pages
//!   share in `mod.rs`;
//! * `view.rs`: what the templates show, built from the protos (time left, evidence, diffs);
//! * `logo.rs`: the logo's real format by its magic bytes (only PNG and JPEG are served);
//! * `upstream.rs`: the gRPC clients and how a refusal reads.

mod auth;
pub mod logo;
mod pages;
mod upstream;
mod view;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use kg_runtime::auth::{Authenticator, KeySource};
use kg_runtime::config::{LogFormat, ports};
use kg_runtime::shutdown::Shutdown;
use secrecy::{ExposeSecret, SecretString};
use tokio::net::TcpListener;

pub const SERVICE: &str = "backoffice";
/// Port of the back office when none is configured (`koogallery up` takes its own).
pub const DEFAULT_PORT: u16 = 8080;

#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// Address the HTTP server listens on.
    #[arg(long, env = "KG_LISTEN_ADDR", default_value_t = SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT)))]
    pub listen_addr: SocketAddr,

    /// review's gRPC URL.
    #[arg(long, env = "KG_REVIEW_URL", default_value_t = format!("http://127.0.0.1:{}", ports::REVIEW))]
    pub review_url: String,

    /// registration's gRPC URL.
    #[arg(long, env = "KG_REGISTRATION_URL", default_value_t = format!("http://127.0.0.1:{}", ports::REGISTRATION))]
    pub registration_url: String,

    /// identity-check's gRPC URL.
    #[arg(long, env = "KG_IDENTITY_CHECK_URL", default_value_t = format!("http://127.0.0.1:{}", ports::IDENTITY_CHECK))]
    pub identity_check_url: String,

    /// Deadline of each call to a service, in milliseconds.
    #[arg(long, env = "KG_CALL_TIMEOUT_MS", default_value_t = 15_000)]
    pub call_timeout_ms: u64,

    /// HS256 secret the services verify tokens with (at least 32 bytes); the back office
    /// verifies the reviewer's token with the same keys before it calls anything.
    #[arg(long, env = "KG_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<SecretString>,

    /// JWKS file of RS256/ES256 public keys (as the services'); may be combined with the secret.
    #[arg(long, env = "KG_JWT_JWKS_FILE")]
    pub jwt_jwks_file: Option<PathBuf>,

    /// Expected `iss` of tokens.
    #[arg(long, env = "KG_JWT_ISSUER", default_value = kg_runtime::auth::DEFAULT_ISSUER)]
    pub jwt_issuer: String,

    /// Expected `aud` of tokens.
    #[arg(long, env = "KG_JWT_AUDIENCE", default_value = kg_runtime::auth::DEFAULT_AUDIENCE)]
    pub jwt_audience: String,

    /// CA (PEM) trusted for `https://` service URLs.
    #[arg(long, env = "KG_TLS_CA")]
    pub tls_ca: Option<PathBuf>,

    /// Client certificate (PEM) presented to services that require mutual TLS.
    #[arg(long, env = "KG_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,

    /// Private key (PEM) of KG_TLS_CERT.
    #[arg(long, env = "KG_TLS_KEY")]
    pub tls_key: Option<PathBuf>,

    /// DEVELOPMENT ONLY: a sign-in form that mints a reviewer or operator token with
    /// KG_JWT_SECRET for whoever asks. For a local mesh; served only on a loopback address.
    /// In production the platform's auth proxy signs reviewers in and passes
    /// `Authorization: Bearer <token>` on every request.
    #[arg(long, env = "KG_BACKOFFICE_DEV_SIGNIN")]
    pub dev_signin: bool,

    /// Key of the CSRF tokens (at least 32 bytes). Unset: a random key per process, which is
    /// fine for one replica; replicas behind one Ingress need the same key.
    #[arg(long, env = "KG_BACKOFFICE_CSRF_SECRET", hide_env_values = true)]
    pub csrf_secret: Option<SecretString>,

    /// Cookies without the `Secure` attribute (and without the `__Host-` prefix): only for
    /// plain-HTTP development on loopback.
    #[arg(long, env = "KG_BACKOFFICE_INSECURE_COOKIES")]
    pub insecure_cookies: bool,

    /// A task whose deadline is closer than this many hours is marked "at risk".
    #[arg(long, env = "KG_BACKOFFICE_AT_RISK_HOURS", default_value_t = 24)]
    pub at_risk_hours: u64,

    /// Log output format.
    #[arg(long, env = "KG_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

impl Config {
    /// The back office of a local mesh (`koogallery up`): the services' URLs and the mesh's
    /// HS256 secret, development sign-in on, cookies without `Secure` (plain HTTP on loopback).
    pub fn local(
        identity_check_url: String,
        registration_url: String,
        review_url: String,
        jwt_secret: impl Into<SecretString>,
    ) -> Config {
        Config {
            listen_addr: SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT)),
            review_url,
            registration_url,
            identity_check_url,
            call_timeout_ms: 15_000,
            jwt_secret: Some(jwt_secret.into()),
            jwt_jwks_file: None,
            jwt_issuer: kg_runtime::auth::DEFAULT_ISSUER.to_string(),
            jwt_audience: kg_runtime::auth::DEFAULT_AUDIENCE.to_string(),
            tls_ca: None,
            tls_cert: None,
            tls_key: None,
            dev_signin: true,
            csrf_secret: None,
            insecure_cookies: true,
            at_risk_hours: 24,
            log_format: LogFormat::Text,
        }
    }

    fn authenticator(&self) -> anyhow::Result<Authenticator> {
        if let Some(secret) = &self.jwt_secret
            && secret.expose_secret().len() < 32
        {
            anyhow::bail!("KG_JWT_SECRET must be at least 32 bytes");
        }
        if self.jwt_secret.is_none() && self.jwt_jwks_file.is_none() {
            // The services may run without keys (everyone an operator); the back office may not:
            // it would have no reviewer identity to forward.
            anyhow::bail!(
                "the back office needs the services' token keys: set KG_JWT_SECRET or KG_JWT_JWKS_FILE"
            );
        }
        Authenticator::new(
            KeySource {
                hs256_secret: self
                    .jwt_secret
                    .as_ref()
                    .map(|s| s.expose_secret().as_bytes().to_vec()),
                jwks_file: self.jwt_jwks_file.clone(),
                signing_key_pem: None,
            },
            &self.jwt_issuer,
            &self.jwt_audience,
        )
    }
}

/// Everything a request handler needs.
pub(crate) struct App {
    pub auth: Authenticator,
    /// Development sign-in is served (configured, a secret to mint with, and loopback).
    pub dev_signin: bool,
    pub csrf_key: Vec<u8>,
    pub secure_cookies: bool,
    pub at_risk: chrono::Duration,
    pub upstream: upstream::Upstream,
    pub templates: minijinja::Environment<'static>,
}

/// Serves the back office on `listener` until `shutdown`.
pub async fn run(config: Config, listener: TcpListener, shutdown: Shutdown) -> anyhow::Result<()> {
    let local = listener.local_addr()?;
    let auth = config.authenticator()?;
    let mut dev_signin = config.dev_signin;
    if dev_signin && config.jwt_secret.is_none() {
        anyhow::bail!("KG_BACKOFFICE_DEV_SIGNIN needs KG_JWT_SECRET to mint tokens with");
    }
    if dev_signin && !local.ip().is_loopback() {
        // Anyone who reaches the form becomes a reviewer: never on a routable address.
        tracing::error!(
            %local,
            "development sign-in is served only on a loopback address: switched OFF"
        );
        dev_signin = false;
    }
    let csrf_key = match config.csrf_secret.as_ref().map(|s| s.expose_secret()) {
        Some(secret) if secret.len() < 32 => {
            anyhow::bail!("KG_BACKOFFICE_CSRF_SECRET must be at least 32 bytes")
        }
        Some(secret) => secret.as_bytes().to_vec(),
        None => rand::random::<[u8; 32]>().to_vec(),
    };
    let tls = kg_runtime::tls::TlsFiles {
        cert: config.tls_cert.clone(),
        key: config.tls_key.clone(),
        client_ca: None,
        ca: config.tls_ca.clone(),
    }
    .client()?;
    let timeout = Duration::from_millis(config.call_timeout_ms);
    let upstream = upstream::Upstream {
        review: kg_runtime::client::channel_with(&config.review_url, timeout, tls.as_ref())?,
        registration: kg_runtime::client::channel_with(
            &config.registration_url,
            timeout,
            tls.as_ref(),
        )?,
        identity: kg_runtime::client::channel_with(
            &config.identity_check_url,
            timeout,
            tls.as_ref(),
        )?,
    };
    let app = Arc::new(App {
        auth,
        dev_signin,
        csrf_key,
        secure_cookies: !config.insecure_cookies,
        at_risk: chrono::Duration::hours(i64::try_from(config.at_risk_hours).unwrap_or(24)),
        upstream,
        templates: pages::templates()?,
    });
    if dev_signin {
        tracing::warn!(
            "DEVELOPMENT sign-in is ON: anyone reaching http://{local}/signin can act as a reviewer"
        );
    }
    tracing::info!(url = %format!("http://{local}/"), "back office serving");
    axum::serve(listener, pages::router(app))
        .with_graceful_shutdown(shutdown.wait())
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use secrecy::ExposeSecret;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        config: super::Config,
    }

    #[test]
    fn debug_prints_no_secret() {
        let marker = "MARKER-of-a-secret-0123456789abcdef";
        let cli = Cli::try_parse_from([
            "backoffice",
            "--jwt-secret",
            marker,
            "--csrf-secret",
            marker,
        ])
        .unwrap();
        let debug = format!("{:?}", cli.config);
        assert!(!debug.contains(marker), "{debug}");
        assert_eq!(
            cli.config.csrf_secret.as_ref().map(|s| s.expose_secret()),
            Some(marker)
        );
        let local = super::Config::local(String::new(), String::new(), String::new(), marker);
        let debug = format!("{local:?}");
        assert!(!debug.contains(marker), "{debug}");
    }
}
