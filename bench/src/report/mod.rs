//! The report: one JSON document with every figure (the types here), its Markdown rendering
//! (`markdown`), the tables it shares with the console and docs/performance.md (`tables`, `page`)
//! and the description of the method (`method`).

mod markdown;
mod method;
mod page;
mod tables;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::load::StepResult;
use crate::procs::Memory;

pub use markdown::markdown;
pub use method::settings;
pub use page::update_performance_doc;
pub use tables::{
    figures_table, idle_watchers_line, scales_table, targets_table, thousands, verification_line,
};

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub generated_at: String,
    pub command: String,
    pub quick: bool,
    /// Whether the run finished every step (false: see `notes`).
    pub complete: bool,
    pub machine: Machine,
    pub settings: Settings,
    /// What verifying one bearer token costs, measured in process.
    pub token_verification: TokenVerification,
    /// (a) the one-hop limit.
    pub echo: Vec<StepResult>,
    /// (b) the database limit.
    pub database: Vec<StepResult>,
    /// (c) SubmitApplication.
    pub submit: Vec<StepResult>,
    /// (d) GetApplication.
    pub get: Vec<StepResult>,
    pub ratios: Vec<Ratio>,
    /// (e) the asynchronous pipeline.
    pub pipeline: Pipeline,
    pub outbox: Outbox,
    /// (c) and (d) at each number of stored applications.
    pub scales: Vec<Scale>,
    /// (f) peak memory of each process.
    pub memory: Vec<ProcessMemory>,
    /// (g) SubmitApplication without and with idle WatchEvents streams open (`--idle-watchers`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_watchers: Option<IdleWatchers>,
    pub targets: Vec<Target>,
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub nproc: usize,
    pub memory_total_mib: u64,
    pub cpu_model: String,
    pub kernel: String,
    pub postgres_version: String,
    pub redis_version: String,
    pub git_commit: String,
    /// 1-minute load average when the run started (before any server).
    pub load_average_at_start: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub concurrencies: Vec<usize>,
    pub scale_concurrency: usize,
    pub scales: Vec<u64>,
    pub step_secs: f64,
    pub warmup_secs: f64,
    pub max_requests: u64,
    pub max_submits: u64,
    pub connections: usize,
    pub pipeline_samples: u64,
    /// Whether the services and the echo verified a bearer token on every call (`--auth`).
    pub auth_on: bool,
    pub auth: String,
    pub echo: String,
    pub database: String,
    pub stored_row: String,
}

/// `Authenticator::verify` timed on one thread: the CPU each service spends on the token of
/// every request it receives when authentication is on.
#[derive(Debug, Clone, Serialize)]
pub struct TokenVerification {
    pub algorithm: String,
    pub token_bytes: usize,
    pub verifications: u64,
    pub elapsed_s: f64,
    /// Verifications per second of one core.
    pub per_s: f64,
    /// Microseconds per verification (wall time / verifications).
    pub mean_us: f64,
    pub p50_us: f64,
    pub p99_us: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Ratio {
    pub concurrency: usize,
    /// (c) throughput / (b) throughput.
    pub submit_over_database: Option<f64>,
    /// (d) throughput / (a) throughput.
    pub get_over_echo: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Latency {
    pub n: usize,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub max_ms: f64,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Pipeline {
    pub available: bool,
    /// Why not, when not available.
    pub reason: Option<String>,
    pub samples: u64,
    pub concurrency: usize,
    /// Submit reply → review task listed by ListReviewTasks(subject).
    pub review_task: Option<Latency>,
    /// Submit reply → APPLICATION_RECEIVED delivery listed by ListNotifications(subject).
    pub notification: Option<Latency>,
    pub review_timeouts: u64,
    pub notification_timeouts: u64,
    pub timeout_s: f64,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Outbox {
    /// Undelivered events of `registration_outbox` when each load step stopped (the relay keeps
    /// delivering in the background; the bench does not wait for it between steps).
    pub after_steps: Vec<Backlog>,
    /// The relay watched with no load, right after the SubmitApplication steps.
    pub relay: Option<RelayRate>,
    /// Undelivered events of the first registration database when registration moved to the
    /// database of the stored-applications steps (left undelivered: that database is retired).
    pub backlog_at_switch: Option<u64>,
    /// Undelivered events at the end of the run (the stored-applications database).
    pub backlog_at_end: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Backlog {
    pub step: String,
    pub undelivered: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct RelayRate {
    pub window_s: f64,
    pub undelivered_before: u64,
    pub undelivered_after: u64,
    /// Events delivered per second during the window (both destinations together).
    pub delivered_per_s: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Drain {
    pub step: String,
    pub backlog: u64,
    pub drained_in_s: Option<f64>,
    pub remaining: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Scale {
    /// The target of `--scales`.
    pub target: u64,
    /// Applications stored when the measurement started.
    pub stored: u64,
    /// Rows inserted by the pre-load for this scale and how long it took.
    pub preloaded: u64,
    pub preload_s: f64,
    pub submit: Option<StepResult>,
    pub get: Option<StepResult>,
}

/// (g): SubmitApplication at `concurrency` in flight without, then with, `streams` WatchEvents
/// streams open, each filtered to an account that has no events (`acct-idle-<i>`).
#[derive(Debug, Clone, Serialize)]
pub struct IdleWatchers {
    /// Streams asked for (`--idle-watchers`).
    pub streams: usize,
    /// Requests in flight of both SubmitApplication steps (`--idle-watchers-concurrency`).
    pub concurrency: usize,
    /// Registration's database, whose transactions are counted.
    pub database: String,
    /// Streams whose WatchEvents call returned its response headers.
    pub opened: usize,
    /// Streams that failed to open, by gRPC code.
    pub open_errors: BTreeMap<String, u64>,
    /// Seconds until every stream had opened or failed.
    pub open_s: f64,
    /// Streams still open when the SubmitApplication step with them ended.
    pub still_open_after: usize,
    /// Streams that ended early, by how (`ended` or the gRPC code).
    pub ended: BTreeMap<String, u64>,
    /// Heartbeats all streams received while open.
    pub heartbeats_received: u64,
    /// Events all streams received (0 expected: their accounts have none).
    pub events_received: u64,
    /// No streams, no load (after the outbox drained).
    pub without_streams: IdleWindow,
    /// Only the idle streams open, no load (after the outbox drained).
    pub with_streams: IdleWindow,
    pub submit_without: StepResult,
    pub submit_with: StepResult,
    /// submit_with throughput / submit_without throughput. Target ≥ 0.9.
    pub ratio: Option<f64>,
}

/// A window with no requests: transactions of registration's database and CPU per process.
#[derive(Debug, Clone, Serialize)]
pub struct IdleWindow {
    /// Undelivered outbox events left by the drain just before the window (the relay's work
    /// then counts in the window too; 0 when the drain finished within its bound).
    pub outbox_undelivered: u64,
    pub window_s: f64,
    /// `pg_stat_database` xact_commit + xact_rollback delta of the database over the window.
    pub transactions: u64,
    pub transactions_per_s: f64,
    /// CPU each process used over the window, in percent of one CPU.
    pub cpu_pct_of_one_cpu: BTreeMap<String, f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProcessMemory {
    pub process: String,
    pub pid: u32,
    #[serde(flatten)]
    pub memory: Memory,
}

#[derive(Debug, Clone, Serialize)]
pub struct Target {
    pub name: String,
    pub target: String,
    pub measured: String,
    /// None: not measured.
    pub met: Option<bool>,
}

impl IdleWatchers {
    /// Every stream opened and stayed open through the step with them.
    pub fn complete(&self) -> bool {
        self.opened == self.streams && self.still_open_after == self.streams
    }
}
