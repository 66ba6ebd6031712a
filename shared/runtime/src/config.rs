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
}

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
