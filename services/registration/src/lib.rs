//! registration: applications, sellers and the guarantee that one company entity registers once.

pub mod agreement;
pub mod app;
pub mod contact_enroll;
pub mod contact_handlers;
pub mod contacts;
pub mod decision;
pub mod error;
pub mod events;
pub mod exit;
pub mod feed;
pub mod idempotency;
pub mod lock;
pub mod migrations;
pub mod modification;
pub mod modification_decision;
pub mod modifications;
pub mod names;
pub mod outbox;
pub mod profile_mask;
pub mod queries;
pub mod read_batch;
pub mod reads;
pub mod relay;
pub mod rename;
pub mod resubmit;
pub mod roles;
pub mod sellers;
pub mod service;
pub mod store;
pub mod submit;
pub mod update_info;
pub mod view;
pub mod watch;

use std::time::Duration;

use std::sync::Arc;

use crate::lock::EntityLock;
use kg_proto::identity::identity_check_service_client::IdentityCheckServiceClient;
use kg_proto::notification::notification_service_client::NotificationServiceClient;
use kg_proto::registration::registration_service_server::RegistrationServiceServer;
use kg_proto::review::review_service_client::ReviewServiceClient;
use kg_runtime::config::{CommonConfig, ports};
use kg_runtime::health::Probe;
use kg_runtime::outbox::{OutboxGauges, Relay};
use kg_runtime::server::{ServeOptions, serve};
use kg_runtime::shutdown::Shutdown;
use sea_orm_migration::MigratorTrait;
use secrecy::{ExposeSecret, SecretString};
use tokio::net::TcpListener;

pub use agreement::Agreement;
pub use app::Registration;

pub const SERVICE: &str = "registration";

/// The seller agreement applicants accept (its version and text ship with the service).
pub const AGREEMENT_VERSION: &str = agreement::VERSION;
pub const AGREEMENT_TEXT: &str = agreement::TEXT;

const MAX_MESSAGE_BYTES: usize = 6 * 1024 * 1024;

#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    #[command(flatten)]
    pub common: CommonConfig,

    /// Redis for the entity lock (`redis://host:6379/0`). Unset: an in-process lock, which is
    /// only correct for a single replica (the embedded mesh).
    #[arg(long, env = "KG_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<SecretString>,

    /// identity-check's gRPC URL.
    #[arg(long, env = "KG_IDENTITY_CHECK_URL", default_value_t = format!("http://127.0.0.1:{}", ports::IDENTITY_CHECK))]
    pub identity_check_url: String,

    /// review's gRPC URL (the outbox relay creates review tasks there).
    #[arg(long, env = "KG_REVIEW_URL", default_value_t = format!("http://127.0.0.1:{}", ports::REVIEW))]
    pub review_url: String,

    /// notification's gRPC URL (the outbox relay sends applicant notifications there).
    #[arg(long, env = "KG_NOTIFICATION_URL", default_value_t = format!("http://127.0.0.1:{}", ports::NOTIFICATION))]
    pub notification_url: String,

    /// Longest wait between two delivery attempts of one outbox event, in milliseconds.
    #[arg(long, env = "KG_OUTBOX_MAX_BACKOFF_MS", default_value_t = 30_000)]
    pub outbox_max_backoff_ms: u64,

    /// How long a relay owns the outbox events it took for delivery, in milliseconds. A relay
    /// that dies (kill -9, a lost node) holds its events back this long before another replica
    /// delivers them; keep it above the call timeout.
    #[arg(long, env = "KG_OUTBOX_LEASE_MS", default_value_t = 30_000)]
    pub outbox_lease_ms: u64,

    /// Deadline of each call to another service, in milliseconds.
    #[arg(long, env = "KG_CALL_TIMEOUT_MS", default_value_t = 15_000)]
    pub call_timeout_ms: u64,

    /// How long an entity lock lives unless released, in milliseconds. Keep it longer than the
    /// transaction it guards; the unique indexes still hold if it is not.
    #[arg(long, env = "KG_LOCK_TTL_MS", default_value_t = 30_000)]
    pub lock_ttl_ms: u64,

    /// How long a submission waits for a contended entity lock before ABORTED, in milliseconds.
    #[arg(long, env = "KG_LOCK_WAIT_MS", default_value_t = 2_000)]
    pub lock_wait_ms: u64,

    /// A WatchEvents stream sends a heartbeat after this long without a message, in
    /// milliseconds.
    #[arg(long, env = "KG_WATCH_HEARTBEAT_MS", default_value_t = 30_000)]
    pub watch_heartbeat_ms: u64,

    /// How often this replica looks for events committed by other replicas (to number them and
    /// to stream them), in milliseconds; commits of its own replica are streamed at once.
    #[arg(long, env = "KG_WATCH_POLL_MS", default_value_t = 500)]
    pub watch_poll_ms: u64,

    /// Most WatchEvents streams open at once on this replica; more are RESOURCE_EXHAUSTED
    /// TOO_MANY_STREAMS.
    #[arg(long, env = "KG_WATCH_MAX_STREAMS", default_value_t = 1_000)]
    pub watch_max_streams: usize,

    /// How long a verification code mailed to a contact address is valid, in hours.
    #[arg(long, env = "KG_CONTACT_CODE_TTL_HOURS", default_value_t = 24)]
    pub contact_code_ttl_hours: u32,

    /// Permanent delivery failures of an account's contact addresses, within the window below,
    /// that mark the account unreachable (SELLER_UNREACHABLE event).
    #[arg(long, env = "KG_CONTACT_UNREACHABLE_FAILURES", default_value_t = 3)]
    pub contact_unreachable_failures: u32,

    /// The window of KG_CONTACT_UNREACHABLE_FAILURES, in hours (default 30 days).
    #[arg(long, env = "KG_CONTACT_FAILURE_WINDOW_HOURS", default_value_t = 720)]
    pub contact_failure_window_hours: u32,
}

pub fn agreement() -> Agreement {
    agreement::current()
}

pub async fn migrate(config: &Config) -> anyhow::Result<()> {
    let db = config.common.connect_database(SERVICE).await?;
    migrations::Migrator::up(&db, None).await?;
    Ok(())
}

pub async fn run(config: Config, listener: TcpListener, shutdown: Shutdown) -> anyhow::Result<()> {
    let db = config.common.connect_database(SERVICE).await?;
    migrations::Migrator::up(&db, None).await?;

    let lock = match &config.redis_url {
        Some(url) => EntityLock::redis(url.expose_secret(), "kg:registration:entity:")?,
        None => {
            tracing::warn!(
                "no KG_REDIS_URL: using an in-process entity lock, correct for ONE replica only"
            );
            EntityLock::in_process()
        }
    };
    let timeout = Duration::from_millis(config.call_timeout_ms);
    let mut options =
        ServeOptions::from_config(SERVICE, listener, shutdown.clone(), &config.common)?;
    let auth = options.auth.clone();
    // every outbound call: deadline, TLS for https peers, a service token
    let outbound = |url: &str| config.common.outbound(url, timeout, auth.as_ref(), SERVICE);
    let identity = IdentityCheckServiceClient::new(outbound(&config.identity_check_url)?);
    let deliverer = relay::Deliverer {
        db: db.clone(),
        review: ReviewServiceClient::new(outbound(&config.review_url)?),
        notification: NotificationServiceClient::new(outbound(&config.notification_url)?),
    };
    let mut outbox_relay = Relay::new(db.clone(), migrations::OUTBOX, Arc::new(deliverer));
    outbox_relay.backoff.max = Duration::from_millis(config.outbox_max_backoff_ms);
    outbox_relay.lease = Duration::from_millis(config.outbox_lease_ms.max(1));
    let mut registration = Registration::new(
        db.clone(),
        lock.clone(),
        identity,
        agreement(),
        outbox_relay.notifier(),
        feed::Feed::start(
            db.clone(),
            Duration::from_millis(config.watch_poll_ms.max(1)),
            shutdown.clone(),
        ),
    );
    tokio::spawn(outbox_relay.run(shutdown.clone()));
    let gauges = OutboxGauges::register(
        &mut options.metrics.registry,
        migrations::OUTBOX,
        "Registration events for review and notification",
    );
    tokio::spawn(gauges.keep_fresh(db.clone(), migrations::OUTBOX, shutdown.clone()));
    registration.lock_ttl = Duration::from_millis(config.lock_ttl_ms);
    registration.lock_wait = Duration::from_millis(config.lock_wait_ms);
    registration.watch_heartbeat = Duration::from_millis(config.watch_heartbeat_ms.max(1));
    registration.limit_watch_streams(config.watch_max_streams);
    registration.shutdown = Some(shutdown.clone());
    registration.contacts = contacts::Settings {
        code_ttl: chrono::Duration::hours(i64::from(config.contact_code_ttl_hours.max(1))),
        unreachable_failures: u64::from(config.contact_unreachable_failures.max(1)),
        failure_window: chrono::Duration::hours(i64::from(
            config.contact_failure_window_hours.max(1),
        )),
        ..contacts::Settings::default()
    };
    registration.contact_metrics = Some(contacts::metrics::ContactMetrics::register(
        &mut options.metrics.registry,
    ));

    let service =
        RegistrationServiceServer::new(registration).max_decoding_message_size(MAX_MESSAGE_BYTES);
    options.probes.push(Probe::database(db));
    if matches!(lock, EntityLock::Redis(_)) {
        options.probes.push(lock::probe(lock));
    }
    serve(options, service, roles::allowed).await
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
        let marker = "MARKER-of-a-secret-4711";
        let redis = format!("redis://:{marker}@redis:6379/0");
        let cli = Cli::try_parse_from(["registration", "--redis-url", &redis]).unwrap();
        let debug = format!("{:?}", cli.config);
        assert!(!debug.contains(marker), "{debug}");
        assert_eq!(
            cli.config.redis_url.as_ref().map(|u| u.expose_secret()),
            Some(redis.as_str())
        );
    }
}
