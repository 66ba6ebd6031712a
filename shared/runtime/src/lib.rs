//! What every KooGallery service shares: configuration, telemetry, the error model, the database,
//! the entity lock, gRPC clients and the server scaffolding (health, reflection, metrics, shutdown).

pub mod auth;
pub mod cli;
pub mod client;
pub mod config;
pub mod db;
pub mod error;
pub mod health;
pub mod lock;
pub mod metrics;
pub mod outbox;
pub mod ratelimit;
pub mod redact;
pub mod server;
pub mod shutdown;
pub mod stored;
pub mod telemetry;
pub mod tls;
pub mod transport;

pub use error::ApiError;
