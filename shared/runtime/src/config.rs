//! Configuration shared by every service: command-line flags, each with a `KG_*` environment
//! variable behind it (flag > environment > default).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, ValueEnum};

/// Settings every service binary accepts.
#[derive(Debug, Clone, Args)]
pub struct CommonConfig {
    /// Address the gRPC server listens on.
    #[arg(long, env = "KG_LISTEN_ADDR")]
    pub listen_addr: Option<SocketAddr>,

    /// Address of the Prometheus metrics endpoint (`/metrics`); unset disables it.
    #[arg(long, env = "KG_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,

    /// Database URL: `postgres://…` or `sqlite://path?mode=rwc`. Defaults to a SQLite file in
    /// the data folder.
    #[arg(long, env = "KG_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// Folder for embedded SQLite databases when no database URL is given.
    #[arg(long, env = "KG_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,

    /// Log output format.
    #[arg(long, env = "KG_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Seconds that in-flight RPCs get to finish after SIGTERM/SIGINT.
    #[arg(long, env = "KG_SHUTDOWN_GRACE_SECS", default_value_t = 25)]
    pub shutdown_grace_secs: u64,

    /// HS256 secret (at least 32 bytes) that signs and verifies bearer tokens. Unset: no
    /// authentication at all (local development only; the service warns at start-up).
    #[arg(long, env = "KG_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// Expected `iss` of tokens.
    #[arg(long, env = "KG_JWT_ISSUER", default_value = crate::auth::DEFAULT_ISSUER)]
    pub jwt_issuer: String,

    /// Expected `aud` of tokens.
    #[arg(long, env = "KG_JWT_AUDIENCE", default_value = crate::auth::DEFAULT_AUDIENCE)]
    pub jwt_audience: String,

    /// JWKS file of RS256/ES256 public keys that verify tokens (keys chosen by `kid`). The file
    /// is re-read when it changes (checked every 30 s, and when a token names an unknown `kid`),
    /// so keys rotate without a restart. May be combined with KG_JWT_SECRET.
    #[arg(long, env = "KG_JWT_JWKS_FILE")]
    pub jwt_jwks_file: Option<PathBuf>,

    /// PEM private key (PKCS#8, RSA or P-256) that signs this service's outbound service tokens
    /// when there is no KG_JWT_SECRET; its public half must be in the peers' JWKS.
    #[arg(long, env = "KG_JWT_SIGNING_KEY_FILE")]
    pub jwt_signing_key_file: Option<PathBuf>,

    /// `kid` of KG_JWT_SIGNING_KEY_FILE in the JWKS.
    #[arg(long, env = "KG_JWT_SIGNING_KID")]
    pub jwt_signing_kid: Option<String>,

    /// A service token issued elsewhere, presented on calls to other services when this process
    /// cannot mint its own (no KG_JWT_SECRET and no KG_JWT_SIGNING_KEY_FILE).
    #[arg(long, env = "KG_SERVICE_TOKEN", hide_env_values = true)]
    pub service_token: Option<String>,

    /// PEM certificate chain of this service; with KG_TLS_KEY the gRPC port speaks TLS only.
    #[arg(long, env = "KG_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of KG_TLS_CERT.
    #[arg(long, env = "KG_TLS_KEY")]
    pub tls_key: Option<PathBuf>,

    /// Mutual TLS: clients must present a certificate signed by this CA (PEM).
    #[arg(long, env = "KG_TLS_CLIENT_CA")]
    pub tls_client_ca: Option<PathBuf>,

    /// CA (PEM) that outbound clients trust for `https://` peers.
    #[arg(long, env = "KG_TLS_CA")]
    pub tls_ca: Option<PathBuf>,

    /// Plaintext listener serving only grpc.health.v1 (for kubelet gRPC probes, which cannot do
    /// TLS). Unset: none.
    #[arg(long, env = "KG_HEALTH_LISTEN_ADDR")]
    pub health_listen_addr: Option<SocketAddr>,

    /// Requests per second each caller (role + subject) may make; 0 switches the limit off. The
    /// `service` role is not limited.
    #[arg(long, env = "KG_RATE_LIMIT_PER_SEC", default_value_t = DEFAULT_RATE_LIMIT_PER_SEC)]
    pub rate_limit_per_sec: f64,

    /// Requests a caller may make at once before the per-second rate applies.
    #[arg(long, env = "KG_RATE_LIMIT_BURST", default_value_t = DEFAULT_RATE_LIMIT_BURST)]
    pub rate_limit_burst: u32,

    /// Longest time the server gives one RPC (a shorter `grpc-timeout` from the client wins);
    /// 0: no server-side limit.
    #[arg(long, env = "KG_REQUEST_TIMEOUT_SECS", default_value_t = DEFAULT_REQUEST_TIMEOUT_SECS)]
    pub request_timeout_secs: u64,
}

pub const DEFAULT_RATE_LIMIT_PER_SEC: f64 = 50.0;
pub const DEFAULT_RATE_LIMIT_BURST: u32 = 100;
pub const DEFAULT_REQUEST_TIMEOUT_SECS: u64 = 30;

impl CommonConfig {
    /// The configured database URL, or the embedded SQLite file `<data_dir>/<service>.db`.
    pub fn database_url_for(&self, service: &str) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => {
                let path = self.data_dir.join(format!("{service}.db"));
                format!("sqlite://{}?mode=rwc", path.display())
            }
        }
    }

    /// The token verifier, or `None` when no key is configured (authentication off). A secret
    /// too short to be safe, an unreadable JWKS or signing key is a configuration error.
    pub fn authenticator(&self) -> anyhow::Result<Option<crate::auth::Authenticator>> {
        if let Some(secret) = &self.jwt_secret
            && secret.len() < 32
        {
            anyhow::bail!("KG_JWT_SECRET must be at least 32 bytes");
        }
        if self.jwt_secret.is_none() && self.jwt_jwks_file.is_none() {
            if self.jwt_signing_key_file.is_some() {
                anyhow::bail!("KG_JWT_SIGNING_KEY_FILE needs KG_JWT_JWKS_FILE to verify with");
            }
            return Ok(None);
        }
        if let Some(secret) = &self.jwt_secret
            && self.jwt_jwks_file.is_none()
            && self.jwt_signing_key_file.is_none()
        {
            return Ok(Some(crate::auth::Authenticator::hs256(
                secret.as_bytes(),
                &self.jwt_issuer,
                &self.jwt_audience,
            )));
        }
        let signing_key_pem = match &self.jwt_signing_key_file {
            None => None,
            Some(path) => {
                let pem = std::fs::read(path).map_err(|e| {
                    anyhow::anyhow!(
                        "cannot read KG_JWT_SIGNING_KEY_FILE {}: {e}",
                        path.display()
                    )
                })?;
                let kid = self.jwt_signing_kid.clone().ok_or_else(|| {
                    anyhow::anyhow!("KG_JWT_SIGNING_KEY_FILE needs KG_JWT_SIGNING_KID")
                })?;
                Some((pem, kid))
            }
        };
        let keys = crate::auth::KeySource {
            hs256_secret: self.jwt_secret.as_ref().map(|s| s.as_bytes().to_vec()),
            jwks_file: self.jwt_jwks_file.clone(),
            signing_key_pem,
        };
        let authenticator =
            crate::auth::Authenticator::new(keys, &self.jwt_issuer, &self.jwt_audience)?;
        if !authenticator.can_mint() && self.service_token.is_none() {
            tracing::warn!(
                "no KG_JWT_SECRET, KG_JWT_SIGNING_KEY_FILE or KG_SERVICE_TOKEN: calls to other services carry no service token"
            );
        }
        Ok(Some(authenticator))
    }

    /// The certificate files (TLS is on when a certificate is configured).
    pub fn tls_files(&self) -> crate::tls::TlsFiles {
        crate::tls::TlsFiles {
            cert: self.tls_cert.clone(),
            key: self.tls_key.clone(),
            client_ca: self.tls_client_ca.clone(),
            ca: self.tls_ca.clone(),
        }
    }

    /// A channel to another service of the mesh: deadline `call_timeout` on every call, TLS for
    /// `https://` URLs (trusting KG_TLS_CA, presenting this service's certificate), and a
    /// short-lived service token with `service` as subject when `auth` can mint.
    pub fn outbound(
        &self,
        url: &str,
        call_timeout: std::time::Duration,
        auth: Option<&crate::auth::Authenticator>,
        service: &str,
    ) -> anyhow::Result<crate::client::OutboundChannel> {
        let tls = self.tls_files().client()?;
        let interceptor =
            crate::client::OutboundInterceptor::new(auth.cloned().map(|a| (a, service)))
                .with_fixed_token(self.service_token.as_deref())?;
        Ok(tonic::service::interceptor::InterceptedService::new(
            crate::client::channel_with(url, call_timeout, tls.as_ref())?,
            interceptor,
        ))
    }

    /// The listen address, or `127.0.0.1:<default_port>`.
    pub fn listen_addr_or(&self, default_port: u16) -> SocketAddr {
        self.listen_addr
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], default_port)))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Default ports of the local mesh (`koogallery up`).
pub mod ports {
    pub const IDENTITY_CHECK: u16 = 50051;
    pub const REGISTRATION: u16 = 50052;
    pub const REVIEW: u16 = 50053;
    pub const NOTIFICATION: u16 = 50054;
}
