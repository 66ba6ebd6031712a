//! What every KooGallery service shares: configuration, telemetry, the error model, the database,
//! the entity lock, gRPC clients and the server scaffolding (health, reflection, metrics, shutdown).

pub mod cli;
pub mod client;
pub mod config;
pub mod db;
pub mod error;
pub mod health;
pub mod lock;
pub mod metrics;
pub mod server;
pub mod shutdown;
pub mod telemetry;

pub use error::ApiError;
