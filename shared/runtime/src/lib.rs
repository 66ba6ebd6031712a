//! What every KooGallery service shares: configuration, telemetry, the error model, the database,
//! gRPC clients and the server scaffolding (health, reflection, metrics, shutdown).
//!
//! Layers, each module importing only from the layers below it (`scripts/checks/layering.py`
//! fails on a module circle):
//! - leaves: `redact`, `shutdown`, `tls`, `names` (RPC method and status names),
//!   `trace_context` (W3C propagation, the current trace id), `stored` (stored messages decoded
//!   fail-closed);
//! - `error` (the error model), `health` (probes and the health watcher), `telemetry`;
//! - `metrics`, `auth`, `db` (with its health probe), `transport`, `paging`, `idempotency`;
//! - `config`, `ratelimit`, `outbox`;
//! - `client`, `server` and `cli` on top.

pub mod auth;
pub mod cli;
pub mod client;
pub mod config;
pub mod db;
pub mod error;
pub mod health;
pub mod idempotency;
pub mod metrics;
pub mod names;
pub mod outbox;
pub mod paging;
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
