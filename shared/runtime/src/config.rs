//! Configuration shared by every service: command-line flags, each with a `KG_*` environment
//! variable behind it (flag > environment > default).
//!
//! This module sits above auth, db, telemetry and tls (it builds their settings) and below
//! client and server: [`CommonConfig::outbound`], which builds a channel from these settings,
//! is defined in [`crate::client`].

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
pub use secrecy::{ExposeSecret, SecretString};

pub use crate::db::{
    DEFAULT_DB_IDLE_IN_TRANSACTION_TIMEOUT_MS, DEFAULT_DB_LOCK_TIMEOUT_MS,
    DEFAULT_DB_STATEMENT_TIMEOUT_MS,
};
pub use crate::telemetry::LogFormat;

/// Settings every service binary accepts. The secrets (see [`SECRET_SETTINGS`]) are
/// [`SecretString`]s: `Debug` prints them redacted, `.expose_secret()` reads them where used.
/// `Default` gives what clap parses from an empty command line and environment.
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
    pub database_url: Option<SecretString>,

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
    pub jwt_secret: Option<SecretString>,

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
    pub service_token: Option<SecretString>,

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

    /// Web origins (`https://console.example.com`, comma-separated, or `*` for any) whose
    /// browser pages may call this service with grpc-web (CORS). Empty (the default): no CORS
    /// headers, so browsers refuse cross-origin calls; grpc-web from other clients still works.
    #[arg(long, env = "KG_CORS_ALLOWED_ORIGINS", value_delimiter = ',', num_args = 0..)]
    pub cors_allowed_origins: Vec<String>,

    /// Database and connection timeouts (KG_DB_*_TIMEOUT_MS, keepalive, handshake, idle).
    #[command(flatten)]
    pub limits: LimitsConfig,
}

impl Default for CommonConfig {
    /// The clap defaults (an empty command line without any `KG_*` variable).
    fn default() -> Self {
        Self {
            listen_addr: None,
            metrics_addr: None,
            database_url: None,
            data_dir: PathBuf::from("data"),
            log_format: LogFormat::Text,
            shutdown_grace_secs: 25,
            jwt_secret: None,
            jwt_issuer: crate::auth::DEFAULT_ISSUER.to_string(),
            jwt_audience: crate::auth::DEFAULT_AUDIENCE.to_string(),
            jwt_jwks_file: None,
            jwt_signing_key_file: None,
            jwt_signing_kid: None,
            service_token: None,
            tls_cert: None,
            tls_key: None,
            tls_client_ca: None,
            tls_ca: None,
            health_listen_addr: None,
            rate_limit_per_sec: DEFAULT_RATE_LIMIT_PER_SEC,
            rate_limit_burst: DEFAULT_RATE_LIMIT_BURST,
            request_timeout_secs: DEFAULT_REQUEST_TIMEOUT_SECS,
            cors_allowed_origins: Vec::new(),
            limits: LimitsConfig::default(),
        }
    }
}

/// KG_CORS_ALLOWED_ORIGINS as [`CommonConfig::cors_allowed_origins`] reads it, for code that
/// builds a `CommonConfig` without clap (`koogallery up`).
pub fn cors_allowed_origins_from_env() -> Vec<String> {
    std::env::var("KG_CORS_ALLOWED_ORIGINS")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .map(String::from)
        .collect()
}

/// The stall bounds every service takes: database session timeouts and the limits of the gRPC
/// server's connections. `Default` gives the documented defaults.
#[derive(Debug, Clone, Args)]
pub struct LimitsConfig {
    /// PostgreSQL `statement_timeout` of every pooled connection, in milliseconds: a statement
    /// running longer is cancelled. 0: no limit.
    #[arg(long, env = "KG_DB_STATEMENT_TIMEOUT_MS", default_value_t = DEFAULT_DB_STATEMENT_TIMEOUT_MS)]
    pub db_statement_timeout_ms: u64,

    /// PostgreSQL `lock_timeout` in milliseconds: a statement waiting longer for a lock fails.
    /// Also SQLite's busy timeout. 0: no limit (SQLite: its driver's default of 5 s).
    #[arg(long, env = "KG_DB_LOCK_TIMEOUT_MS", default_value_t = DEFAULT_DB_LOCK_TIMEOUT_MS)]
    pub db_lock_timeout_ms: u64,

    /// PostgreSQL `idle_in_transaction_session_timeout` in milliseconds: a session that sits in
    /// an open transaction this long without a statement (a stalled or paused replica) is ended
    /// by the server, releasing its locks. 0: no limit.
    #[arg(
        long,
        env = "KG_DB_IDLE_IN_TRANSACTION_TIMEOUT_MS",
        default_value_t = DEFAULT_DB_IDLE_IN_TRANSACTION_TIMEOUT_MS
    )]
    pub db_idle_in_transaction_timeout_ms: u64,

    /// Seconds between HTTP/2 PINGs the server sends on a quiet connection (and the idle time
    /// before TCP keepalive probes start); 0 switches both off.
    #[arg(
        long,
        env = "KG_HTTP2_KEEPALIVE_INTERVAL_SECS",
        default_value_t = DEFAULT_HTTP2_KEEPALIVE_INTERVAL_SECS
    )]
    pub http2_keepalive_interval_secs: u64,

    /// Seconds the server waits for the answer to an HTTP/2 PING before closing the connection.
    #[arg(
        long,
        env = "KG_HTTP2_KEEPALIVE_TIMEOUT_SECS",
        default_value_t = DEFAULT_HTTP2_KEEPALIVE_TIMEOUT_SECS
    )]
    pub http2_keepalive_timeout_secs: u64,

    /// Seconds a new connection gets to send the HTTP/2 connection preface (and, with TLS, to
    /// finish the TLS handshake); a connection that has not is closed. 0: no limit.
    #[arg(long, env = "KG_HANDSHAKE_TIMEOUT_SECS", default_value_t = DEFAULT_HANDSHAKE_TIMEOUT_SECS)]
    pub handshake_timeout_secs: u64,

    /// Seconds a connection may stay open without an RPC in flight; then it is closed (clients
    /// reconnect on their next call). Open streams keep their connection. 0: no limit.
    #[arg(
        long,
        env = "KG_IDLE_CONNECTION_TIMEOUT_SECS",
        default_value_t = DEFAULT_IDLE_CONNECTION_TIMEOUT_SECS
    )]
    pub idle_connection_timeout_secs: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            db_statement_timeout_ms: DEFAULT_DB_STATEMENT_TIMEOUT_MS,
            db_lock_timeout_ms: DEFAULT_DB_LOCK_TIMEOUT_MS,
            db_idle_in_transaction_timeout_ms: DEFAULT_DB_IDLE_IN_TRANSACTION_TIMEOUT_MS,
            http2_keepalive_interval_secs: DEFAULT_HTTP2_KEEPALIVE_INTERVAL_SECS,
            http2_keepalive_timeout_secs: DEFAULT_HTTP2_KEEPALIVE_TIMEOUT_SECS,
            handshake_timeout_secs: DEFAULT_HANDSHAKE_TIMEOUT_SECS,
            idle_connection_timeout_secs: DEFAULT_IDLE_CONNECTION_TIMEOUT_SECS,
        }
    }
}

pub const DEFAULT_RATE_LIMIT_PER_SEC: f64 = 50.0;
pub const DEFAULT_RATE_LIMIT_BURST: u32 = 100;
pub const DEFAULT_REQUEST_TIMEOUT_SECS: u64 = 30;
pub const DEFAULT_HTTP2_KEEPALIVE_INTERVAL_SECS: u64 = 30;
pub const DEFAULT_HTTP2_KEEPALIVE_TIMEOUT_SECS: u64 = 10;
pub const DEFAULT_HANDSHAKE_TIMEOUT_SECS: u64 = 10;
pub const DEFAULT_IDLE_CONNECTION_TIMEOUT_SECS: u64 = 300;

impl CommonConfig {
    /// The configured database URL, or the embedded SQLite file `<data_dir>/<service>.db`.
    pub fn database_url_for(&self, service: &str) -> String {
        match &self.database_url {
            Some(url) => url.expose_secret().to_string(),
            None => {
                let path = self.data_dir.join(format!("{service}.db"));
                format!("sqlite://{}?mode=rwc", path.display())
            }
        }
    }

    /// The database timeouts (KG_DB_*_TIMEOUT_MS) for [`crate::db::connect_with`].
    pub fn db_timeouts(&self) -> crate::db::DbTimeouts {
        use std::time::Duration;
        crate::db::DbTimeouts {
            statement: Duration::from_millis(self.limits.db_statement_timeout_ms),
            lock: Duration::from_millis(self.limits.db_lock_timeout_ms),
            idle_in_transaction: Duration::from_millis(
                self.limits.db_idle_in_transaction_timeout_ms,
            ),
        }
    }

    /// Connects to this service's database with the configured timeouts.
    pub async fn connect_database(
        &self,
        service: &str,
    ) -> Result<sea_orm::DatabaseConnection, sea_orm::DbErr> {
        let mut db =
            crate::db::connect_with(&self.database_url_for(service), &self.db_timeouts()).await?;
        crate::telemetry::trace_statements(&mut db, service);
        Ok(db)
    }

    /// The token verifier, or `None` when no key is configured (authentication off). A secret
    /// too short to be safe, an unreadable JWKS or signing key is a configuration error.
    pub fn authenticator(&self) -> anyhow::Result<Option<crate::auth::Authenticator>> {
        if let Some(secret) = &self.jwt_secret
            && secret.expose_secret().len() < 32
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
                secret.expose_secret().as_bytes(),
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
            hs256_secret: self
                .jwt_secret
                .as_ref()
                .map(|s| s.expose_secret().as_bytes().to_vec()),
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

    /// The listen address, or `127.0.0.1:<default_port>`.
    pub fn listen_addr_or(&self, default_port: u16) -> SocketAddr {
        self.listen_addr
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], default_port)))
    }
}

/// Settings that hold secrets. Each `KG_X` may instead be given as a file: `KG_X_FILE` names a
/// file whose content (without a trailing newline) is the value, so that Kubernetes can mount
/// the secret from a Secret volume instead of putting it in the environment.
pub const SECRET_SETTINGS: &[&str] = &[
    "KG_DATABASE_URL",
    "KG_JWT_SECRET",
    "KG_SERVICE_TOKEN",
    "KG_REDIS_URL",
    "KG_SMTP_URL",
    "KG_SMS_URL",
    "KG_SMS_TOKEN",
    "KG_BACKOFFICE_CSRF_SECRET",
];

/// Parses the command line of `C` like `C::parse()`, taking every secret setting `C` has (see
/// [`SECRET_SETTINGS`]) from its `KG_X_FILE` when that is set. Precedence: flag, then `KG_X`
/// or `KG_X_FILE` (setting both is an error), then the default.
pub fn parse_with_secret_files<C: clap::Parser>() -> C {
    let command = match command_with_secret_files::<C>(|name| std::env::var(name).ok()) {
        Ok(command) => command,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::exit(2);
        }
    };
    C::from_arg_matches(&command.get_matches()).unwrap_or_else(|e| e.exit())
}

/// `C`'s command with each secret setting whose `KG_X_FILE` is set (as `env` says) defaulting
/// to the file's content.
pub fn command_with_secret_files<C: clap::CommandFactory>(
    env: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<clap::Command> {
    let mut command = C::command();
    let mut found = Vec::new();
    for arg in command.get_arguments() {
        let Some(name) = arg.get_env().and_then(|e| e.to_str()) else {
            continue;
        };
        if !SECRET_SETTINGS.contains(&name) {
            continue;
        }
        let file_var = format!("{name}_FILE");
        let Some(path) = env(&file_var).filter(|p| !p.trim().is_empty()) else {
            continue;
        };
        if env(name).is_some() {
            anyhow::bail!("set {name} or {file_var}, not both");
        }
        let value = std::fs::read_to_string(&path)
            .map_err(|e| anyhow::anyhow!("cannot read {file_var} {path}: {e}"))?;
        // editors and `kubectl create secret --from-file` often leave a final newline
        let value = value.trim_end_matches(['\n', '\r']).to_string();
        found.push((arg.get_id().clone(), value));
    }
    for (id, value) in found {
        // read once per process start; clap keeps &'static defaults
        let value: &'static str = Box::leak(value.into_boxed_str());
        command = command.mut_arg(id, |a| a.default_value(value).hide_default_value(true));
    }
    Ok(command)
}

/// Default ports of the local mesh (`koogallery up`).
pub mod ports {
    pub const IDENTITY_CHECK: u16 = 50051;
    pub const REGISTRATION: u16 = 50052;
    pub const REVIEW: u16 = 50053;
    pub const NOTIFICATION: u16 = 50054;
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        common: CommonConfig,
    }

    #[test]
    fn secrets_come_from_files() {
        use clap::FromArgMatches;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("database-url");
        std::fs::write(&file, "postgres://u:p@db/kg\n").unwrap();
        let path = file.display().to_string();
        let env = |name: &str| (name == "KG_DATABASE_URL_FILE").then(|| path.clone());
        let matches = command_with_secret_files::<Cli>(env)
            .unwrap()
            .try_get_matches_from(["kg"])
            .unwrap();
        let cli = Cli::from_arg_matches(&matches).unwrap();
        assert_eq!(
            cli.common.database_url.as_ref().map(|u| u.expose_secret()),
            Some("postgres://u:p@db/kg")
        );
        // a flag still wins over the file
        let matches = command_with_secret_files::<Cli>(env)
            .unwrap()
            .try_get_matches_from(["kg", "--database-url", "sqlite://x"])
            .unwrap();
        let cli = Cli::from_arg_matches(&matches).unwrap();
        assert_eq!(
            cli.common.database_url.as_ref().map(|u| u.expose_secret()),
            Some("sqlite://x")
        );
        // both the variable and the file: refused, not silently one of them
        let both = |name: &str| match name {
            "KG_DATABASE_URL_FILE" => Some(path.clone()),
            "KG_DATABASE_URL" => Some("postgres://other".to_string()),
            _ => None,
        };
        let err = command_with_secret_files::<Cli>(both).unwrap_err();
        assert!(err.to_string().contains("not both"), "{err}");
        // a missing file is an error that names the setting
        let missing = |name: &str| (name == "KG_JWT_SECRET_FILE").then(|| "/nonexistent".into());
        let err = command_with_secret_files::<Cli>(missing).unwrap_err();
        assert!(err.to_string().contains("KG_JWT_SECRET_FILE"), "{err}");
    }

    #[test]
    fn limits_default_and_take_flags() {
        let cli = Cli::try_parse_from(["kg"]).unwrap();
        let defaults = LimitsConfig::default();
        assert_eq!(
            cli.common.limits.db_statement_timeout_ms,
            defaults.db_statement_timeout_ms
        );
        assert_eq!(cli.common.limits.idle_connection_timeout_secs, 300);
        assert_eq!(
            cli.common.db_timeouts(),
            crate::db::DbTimeouts::default(),
            "the flags' defaults are the library's"
        );
        let cli = Cli::try_parse_from([
            "kg",
            "--db-lock-timeout-ms",
            "250",
            "--handshake-timeout-secs",
            "0",
        ])
        .unwrap();
        assert_eq!(cli.common.db_timeouts().lock.as_millis(), 250);
        assert_eq!(cli.common.limits.handshake_timeout_secs, 0);
    }

    #[test]
    fn debug_prints_no_secret() {
        let marker = "MARKER-of-a-secret-4711";
        let mut config = CommonConfig {
            database_url: Some(format!("postgres://kg:{marker}@db/kg").into()),
            jwt_secret: Some(marker.into()),
            service_token: Some(marker.into()),
            ..Default::default()
        };
        let debug = format!("{config:?}");
        assert!(!debug.contains(marker), "{debug}");
        // and the parsed form, every secret setting of CommonConfig given as a flag
        let cli = Cli::try_parse_from([
            "kg",
            "--database-url",
            &format!("postgres://kg:{marker}@db/kg"),
            "--jwt-secret",
            marker,
            "--service-token",
            marker,
        ])
        .unwrap();
        let debug = format!("{:?}", cli.common);
        assert!(!debug.contains(marker), "{debug}");
        assert_eq!(
            cli.common.jwt_secret.as_ref().map(|s| s.expose_secret()),
            Some(marker)
        );
        // the values are there for whoever exposes them
        config.data_dir = PathBuf::from("elsewhere");
        assert_eq!(
            config.database_url_for("x"),
            format!("postgres://kg:{marker}@db/kg")
        );
    }

    #[test]
    fn default_is_what_clap_parses_from_nothing() {
        use clap::{CommandFactory, FromArgMatches};
        // no KG_* variable of the test's environment may leak into the comparison
        let command = Cli::command().mut_args(|a| a.env(None::<&str>));
        let matches = command.try_get_matches_from(["kg"]).unwrap();
        let parsed = Cli::from_arg_matches(&matches).unwrap().common;
        assert_eq!(
            format!("{:?}", CommonConfig::default()),
            format!("{parsed:?}")
        );
    }
}
