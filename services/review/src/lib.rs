//! review: the review queue, reviewers' decisions and the audit trail.
//!
//! * `CreateReviewTask` (internal, from registration's outbox relay) files a task per subject,
//!   idempotently by event id (`create.rs`), due three working days after submission on the
//!   working calendar (`calendar.rs`, `clock.rs`);
//! * reviewers claim and release tasks (`claims.rs`) and decide them (`decisions.rs`); every
//!   change is a version-conditional update (`transition.rs`), so one reviewer holds a task and
//!   one decision is made, and each is audited in its transaction (`audit.rs`);
//! * the applicant's resubmission resumes the stopped clock and a withdrawal cancels the task
//!   (`lifecycle.rs`); checks can be rerun through identity-check (`checks.rs`);
//! * decisions reach registration's ApplyReviewDecision through the outbox (`relay.rs`);
//! * the queue, the audit trail and the rejection-reason catalogue are read in `queries.rs` and
//!   `catalogue.rs` (paged by `kg_runtime::paging`); gauges in `metrics.rs`;
//! * duplicate signals (other accounts' tasks sharing the website's registrable domain, the
//!   contact mobile, an email, or a similar company name) are computed at read time from match
//!   keys stored at creation (`matchkeys.rs`: the pure normalization; `signals.rs`: storage and
//!   lookup).
//!
//! The time zone of deadlines is the calendar file's `timezone` (the shipped China calendar:
//! Asia/Shanghai). There is no separate time-zone setting: a zone belongs with the holidays and
//! working days it dates, so another zone means another calendar file (`KG_CALENDAR_FILE`).

pub mod audit;
pub mod calendar;
pub mod catalogue;
pub mod checks;
pub mod claims;
pub mod clock;
pub mod create;
pub mod decisions;
pub mod error;
pub mod idempotency;
pub mod lifecycle;
pub mod matchkeys;
pub mod metrics;
pub mod migrations;
pub mod queries;
pub mod relay;
pub mod roles;
pub mod service;
pub mod signals;
pub mod store;
pub mod transition;
pub mod view;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{FromArgMatches as _, Parser};
use kg_proto::identity::identity_check_service_client::IdentityCheckServiceClient;
use kg_proto::registration::registration_service_client::RegistrationServiceClient;
use kg_proto::review::review_service_server::ReviewServiceServer;
use kg_runtime::config::{CommonConfig, ports};
use kg_runtime::health::Probe;
use kg_runtime::outbox::Relay;
use kg_runtime::server::{ServeOptions, serve};
use kg_runtime::shutdown::Shutdown;
use sea_orm_migration::MigratorTrait;
use tokio::net::TcpListener;

use crate::calendar::WorkingCalendar;

pub use service::Review;

pub const SERVICE: &str = "review";

/// CreateReviewTask carries the logo (up to 5 MiB) with the profile.
const MAX_MESSAGE_BYTES: usize = 6 * 1024 * 1024;

#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    #[command(flatten)]
    pub common: CommonConfig,

    /// registration's gRPC URL: decisions are delivered to its ApplyReviewDecision.
    #[arg(long, env = "KG_REGISTRATION_URL", default_value_t = format!("http://127.0.0.1:{}", ports::REGISTRATION))]
    pub registration_url: String,

    /// identity-check's gRPC URL: RerunChecks calls its CheckMaterials.
    #[arg(long, env = "KG_IDENTITY_CHECK_URL", default_value_t = format!("http://127.0.0.1:{}", ports::IDENTITY_CHECK))]
    pub identity_check_url: String,

    /// Deadline of each call to another service, in milliseconds.
    #[arg(long, env = "KG_CALL_TIMEOUT_MS", default_value_t = 15_000)]
    pub call_timeout_ms: u64,

    /// Working-day calendar of review deadlines (YAML: time zone, weekend, cut-off, holidays;
    /// see `services/review/src/calendar.rs`). Unset: the shipped calendar of China
    /// (`services/review/calendars/cn.yaml`). A file that does not load stops the service.
    /// Deadlines are computed in the file's `timezone`; there is no separate time-zone setting.
    #[arg(long, env = "KG_CALENDAR_FILE")]
    pub calendar_file: Option<PathBuf>,

    /// Longest wait between two delivery attempts of one decision, in milliseconds.
    #[arg(long, env = "KG_OUTBOX_MAX_BACKOFF_MS", default_value_t = 30_000)]
    pub outbox_max_backoff_ms: u64,

    /// How long a relay owns the outbox events it took for delivery, in milliseconds. A relay
    /// that dies (kill -9, a lost node) holds its events back this long before another replica
    /// delivers them; keep it above the call timeout.
    #[arg(long, env = "KG_OUTBOX_LEASE_MS", default_value_t = 30_000)]
    pub outbox_lease_ms: u64,

    /// How often the gauges (overdue tasks, outbox backlog) are refreshed, in milliseconds.
    #[arg(long, env = "KG_METRICS_REFRESH_MS", default_value_t = 15_000)]
    pub metrics_refresh_ms: u64,

    /// Approval waits until the applicant's contact email and customer-service email are
    /// verified (ApproveReviewTask is FAILED_PRECONDITION CONTACT_NOT_VERIFIED until then).
    #[arg(long, env = "KG_REQUIRE_VERIFIED_CONTACTS", default_value_t = false, action = clap::ArgAction::Set)]
    pub require_verified_contacts: bool,
}

#[derive(Parser)]
struct EnvOnly {
    #[command(flatten)]
    config: Config,
}

impl Config {
    /// The configuration from the `KG_*` environment variables and the defaults (no flags),
    /// with `common` and the peers' URLs given: for `koogallery up`.
    pub fn from_env(
        common: CommonConfig,
        identity_check_url: String,
        registration_url: String,
    ) -> anyhow::Result<Config> {
        let matches = <EnvOnly as clap::CommandFactory>::command()
            .no_binary_name(true)
            .try_get_matches_from(std::iter::empty::<String>())?;
        let mut config = EnvOnly::from_arg_matches(&matches)?.config;
        config.common = common;
        config.identity_check_url = identity_check_url;
        config.registration_url = registration_url;
        Ok(config)
    }

    /// The working calendar: the configured file, or the shipped China calendar.
    pub fn calendar(&self) -> anyhow::Result<WorkingCalendar> {
        match &self.calendar_file {
            Some(path) => WorkingCalendar::from_file(path)
                .map_err(|e| anyhow::anyhow!("KG_CALENDAR_FILE: {e}")),
            None => Ok(WorkingCalendar::china()),
        }
    }
}

pub async fn migrate(config: &Config) -> anyhow::Result<()> {
    let db = config.common.connect_database(SERVICE).await?;
    migrations::Migrator::up(&db, None).await?;
    Ok(())
}

pub async fn run(config: Config, listener: TcpListener, shutdown: Shutdown) -> anyhow::Result<()> {
    let calendar = Arc::new(config.calendar()?);
    tracing::info!(calendar = %calendar, file = ?config.calendar_file, "review deadlines: 3 working days");
    let now = chrono::Utc::now();
    let uncovered = calendar.uncovered_years_between(now, now + chrono::Duration::days(14));
    if !uncovered.is_empty() {
        tracing::warn!(
            uncovered_years = ?uncovered,
            "the working calendar does not cover the coming weeks: deadlines there count \
             weekends only; add that year's holidays to the calendar file"
        );
    }

    let db = config.common.connect_database(SERVICE).await?;
    migrations::Migrator::up(&db, None).await?;

    let timeout = Duration::from_millis(config.call_timeout_ms);
    // Keys, TLS, limits and timeouts from the common configuration.
    let mut options =
        ServeOptions::from_config(SERVICE, listener, shutdown.clone(), &config.common)?;
    let auth = options.auth.clone();
    let identity = IdentityCheckServiceClient::new(config.common.outbound(
        &config.identity_check_url,
        timeout,
        auth.as_ref(),
        SERVICE,
    )?);
    let registration = RegistrationServiceClient::new(config.common.outbound(
        &config.registration_url,
        timeout,
        auth.as_ref(),
        SERVICE,
    )?);

    // The relay runs while RPCs are served and drained (a decision made during the drain is
    // still delivered), and stops after.
    let mut relay = Relay::new(
        db.clone(),
        migrations::OUTBOX,
        Arc::new(relay::Deliverer {
            db: db.clone(),
            registration,
        }),
    );
    relay.backoff.max = Duration::from_millis(config.outbox_max_backoff_ms.max(1));
    relay.lease = Duration::from_millis(config.outbox_lease_ms.max(1));
    let wake = relay.notifier();
    let (stop_relay, relay_shutdown) = Shutdown::new();
    let mut relay_task = tokio::spawn(relay.run(relay_shutdown));

    options.probes.push(Probe::database(db.clone()));
    let gauges = metrics::Gauges::register(&mut options.metrics.registry);
    tokio::spawn(gauges.run(
        db.clone(),
        Duration::from_millis(config.metrics_refresh_ms.max(100)),
        shutdown,
    ));

    let mut review = Review::new(db, calendar, identity, wake);
    if config.require_verified_contacts {
        review.contact_gate = Some(RegistrationServiceClient::new(config.common.outbound(
            &config.registration_url,
            timeout,
            auth.as_ref(),
            SERVICE,
        )?));
    }
    let service = ReviewServiceServer::new(review).max_decoding_message_size(MAX_MESSAGE_BYTES);
    let served = serve(options, service, roles::allowed).await;

    stop_relay.trigger();
    match tokio::time::timeout(timeout + Duration::from_secs(5), &mut relay_task).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "outbox relay task failed"),
        Err(_) => {
            // registration deduplicates on the event id: a delivery cut short is repeated later
            tracing::warn!("outbox relay did not stop in time; abandoning its current delivery");
            relay_task.abort();
        }
    }
    served
}
