//! What every KooGallery service shares: configuration, telemetry, the error model, the database,
//! the entity lock, gRPC clients and the server scaffolding (health, reflection, metrics, shutdown).
//!
//! Layers, each module importing only from the layers below it (`scripts/checks/layering.py`
//! fails on a module circle):
//! - leaves: `redact`, `shutdown`, `tls`, `names` (RPC method and status names),
//!   `trace_context` (W3C propagation, the current trace id);
//! - `error` (the error model), `health` (probes and the health watcher), `telemetry`;
//! - `metrics`, `auth`, `db` and `lock` (each with its own health probe), `transport`;
//! - `config`, `ratelimit`, `outbox`;
//! - `client`, `server`, `cli` and `stored` (whose decoding faults are outbox refusals) on top.

pub mod auth;
pub mod cli;
pub mod client;
pub mod config;
pub mod db;
pub mod error;
pub mod health;
pub mod lock;
pub mod metrics;
pub mod names;
pub mod outbox;
pub mod ratelimit;
pub mod redact;
pub mod server;
pub mod shutdown;
pub mod stored;
pub mod telemetry;
pub mod tls;
pub mod trace_context;
pub mod transport;

pub use error::ApiError;
