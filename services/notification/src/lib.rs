//! notification: email and SMS deliveries of review results and other events.
//!
//! * `SendNotification` (internal, called by the outbox relays) stores one delivery per channel,
//!   idempotently by event id (`send.rs`);
//! * a dispatcher task sends due deliveries with retries and backoff (`dispatcher.rs`) over SMTP
//!   (`email.rs`) and an SMS provider's HTTP API (`sms.rs`);
//! * `GetNotification`/`ListNotifications` read the deliveries (`queries.rs`), recipients
//!   always masked (`mask.rs`);
//! * the texts are data in `templates.rs`.
//!
//! A channel without its URL (`KG_SMTP_URL`, `KG_SMS_URL`) is disabled: its deliveries are
//! stored and stay PENDING until a notification service with the channel configured runs.

pub mod dispatcher;
pub mod email;
pub mod error;
pub mod mask;
pub mod migrations;
pub mod queries;
pub mod send;
pub mod service;
pub mod sms;
pub mod store;
pub mod templates;
pub mod view;

use std::sync::Arc;
use std::time::Duration;

use clap::{FromArgMatches as _, Parser};
use kg_proto::identity::identity_check_service_client::IdentityCheckServiceClient;
use kg_proto::notification::notification_service_server::NotificationServiceServer;
use kg_runtime::config::{CommonConfig, ports};
use kg_runtime::health::Probe;
use kg_runtime::server::{ServeOptions, serve};
use kg_runtime::shutdown::Shutdown;
use sea_orm_migration::MigratorTrait;
use secrecy::{ExposeSecret, SecretString};
use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate::dispatcher::{DeliveryMetrics, Dispatcher, Settings};
use crate::email::{EmailSender, SmtpSettings};
use crate::sms::SmsSender;

pub const SERVICE: &str = "notification";

pub const DEFAULT_SMTP_FROM: &str = "KooGallery <no-reply@koogallery.example>";

#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    #[command(flatten)]
    pub common: CommonConfig,

    /// identity-check's gRPC URL (the account directory: email, mobile, locale).
    #[arg(long, env = "KG_IDENTITY_CHECK_URL", default_value_t = format!("http://127.0.0.1:{}", ports::IDENTITY_CHECK))]
    pub identity_check_url: String,

    /// Deadline of each call to another service, in milliseconds.
    #[arg(long, env = "KG_CALL_TIMEOUT_MS", default_value_t = 15_000)]
    pub call_timeout_ms: u64,

    /// SMTP server: `smtp://[user:password@]host[:port][?tls=none|starttls|opportunistic|tls]`
    /// (`smtps://` = implicit TLS). Default TLS mode: starttls (required). Unset: email is
    /// disabled and email deliveries stay PENDING.
    #[arg(long, env = "KG_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<SecretString>,

    /// Sender of the emails (`From`), a mailbox: `Name <address>` or `address`.
    #[arg(long, env = "KG_SMTP_FROM", default_value = DEFAULT_SMTP_FROM)]
    pub smtp_from: String,

    /// Time one SMTP send may take (connect to the server's final reply), in milliseconds.
    #[arg(long, env = "KG_SMTP_TIMEOUT_MS", default_value_t = 30_000)]
    pub smtp_timeout_ms: u64,

    /// SMS provider endpoint (a JSON POST per message, see `sms.rs`). Unset: SMS is disabled
    /// and SMS deliveries stay PENDING.
    #[arg(long, env = "KG_SMS_URL", hide_env_values = true)]
    pub sms_url: Option<SecretString>,

    /// Bearer token of the SMS provider.
    #[arg(long, env = "KG_SMS_TOKEN", hide_env_values = true)]
    pub sms_token: Option<SecretString>,

    /// Time one SMS request may take, in milliseconds.
    #[arg(long, env = "KG_SMS_TIMEOUT_MS", default_value_t = 10_000)]
    pub sms_timeout_ms: u64,

    /// Attempts per delivery before it FAILS (permanent errors fail at once).
    #[arg(long, env = "KG_DELIVERY_MAX_ATTEMPTS", default_value_t = 10)]
    pub max_attempts: u32,

    /// Delay before the second attempt, in milliseconds; it doubles with each attempt.
    #[arg(long, env = "KG_DELIVERY_RETRY_BASE_MS", default_value_t = 30_000)]
    pub retry_base_ms: u64,

    /// Longest delay between two attempts, in milliseconds.
    #[arg(long, env = "KG_DELIVERY_RETRY_MAX_MS", default_value_t = 3_600_000)]
    pub retry_max_ms: u64,

    /// How long a dispatcher's claim on a delivery holds, in milliseconds; must exceed twice
    /// the SMTP and SMS timeouts. A replica that dies mid-send frees its deliveries after this.
    #[arg(long, env = "KG_DELIVERY_LEASE_MS", default_value_t = 120_000)]
    pub lease_ms: u64,

    /// How often the dispatcher looks for due deliveries, in milliseconds.
    #[arg(long, env = "KG_DISPATCH_INTERVAL_MS", default_value_t = 1_000)]
    pub dispatch_interval_ms: u64,

    /// Deliveries the dispatcher reads per round.
    #[arg(long, env = "KG_DISPATCH_BATCH", default_value_t = 64)]
    pub dispatch_batch: u64,

    /// Deliveries sent at the same time by one replica.
    #[arg(long, env = "KG_DISPATCH_CONCURRENCY", default_value_t = 8)]
    pub dispatch_concurrency: usize,

    /// Time zone (IANA name) review deadlines are shown in.
    #[arg(long, env = "KG_TIMEZONE", default_value = "Asia/Shanghai")]
    pub timezone: String,
}

#[derive(Parser)]
struct EnvOnly {
    #[command(flatten)]
    config: Config,
}

impl Config {
    /// The configuration from the `KG_*` environment variables and the defaults (no flags),
    /// with `common` and identity-check's URL given: for `koogallery up`.
    pub fn from_env(common: CommonConfig, identity_check_url: String) -> anyhow::Result<Config> {
        let matches = <EnvOnly as clap::CommandFactory>::command()
            .no_binary_name(true)
            .try_get_matches_from(std::iter::empty::<String>())?;
        let mut config = EnvOnly::from_arg_matches(&matches)?.config;
        config.common = common;
        config.identity_check_url = identity_check_url;
        Ok(config)
    }

    fn settings(&self) -> anyhow::Result<Settings> {
        let send_timeout = self.smtp_timeout_ms.max(self.sms_timeout_ms);
        anyhow::ensure!(
            self.max_attempts >= 1,
            "KG_DELIVERY_MAX_ATTEMPTS must be at least 1"
        );
        anyhow::ensure!(
            self.retry_base_ms >= 1,
            "KG_DELIVERY_RETRY_BASE_MS must be positive"
        );
        anyhow::ensure!(
            self.retry_max_ms >= self.retry_base_ms,
            "KG_DELIVERY_RETRY_MAX_MS must not be below KG_DELIVERY_RETRY_BASE_MS"
        );
        anyhow::ensure!(
            self.lease_ms > 2 * send_timeout,
            "KG_DELIVERY_LEASE_MS ({}) must exceed twice the SMTP/SMS timeout ({} ms): a send \
             still in flight must never be claimed again",
            self.lease_ms,
            send_timeout
        );
        Ok(Settings {
            max_attempts: self.max_attempts,
            retry_base: Duration::from_millis(self.retry_base_ms),
            retry_max: Duration::from_millis(self.retry_max_ms),
            poll_interval: Duration::from_millis(self.dispatch_interval_ms.max(10)),
            lease: Duration::from_millis(self.lease_ms),
            batch: self.dispatch_batch.max(1),
            concurrency: self.dispatch_concurrency.max(1),
        })
    }
}

pub async fn migrate(config: &Config) -> anyhow::Result<()> {
    let db = config.common.connect_database(SERVICE).await?;
    migrations::Migrator::up(&db, None).await?;
    Ok(())
}

pub async fn run(config: Config, listener: TcpListener, shutdown: Shutdown) -> anyhow::Result<()> {
    let settings = config.settings()?;
    let tz: chrono_tz::Tz = config.timezone.parse().map_err(|_| {
        anyhow::anyhow!("KG_TIMEZONE {:?} is not an IANA time zone", config.timezone)
    })?;
    let email = match config.smtp_url.as_ref().map(|u| u.expose_secret().trim()) {
        Some(url) if !url.is_empty() => {
            let smtp = SmtpSettings::parse(url)?;
            let sender = EmailSender::new(
                &smtp,
                &config.smtp_from,
                Duration::from_millis(config.smtp_timeout_ms),
            )?;
            tracing::info!(smtp = %smtp.redacted(), from = %config.smtp_from, "email channel enabled");
            Some(Arc::new(sender))
        }
        _ => {
            tracing::warn!(
                "email channel DISABLED: KG_SMTP_URL is not set; email deliveries are stored \
                 and stay PENDING until notification runs with KG_SMTP_URL"
            );
            None
        }
    };
    let sms = match config.sms_url.as_ref().map(|u| u.expose_secret().trim()) {
        Some(url) if !url.is_empty() => {
            let sender = SmsSender::new(
                url,
                config.sms_token.clone(),
                Duration::from_millis(config.sms_timeout_ms),
            )?;
            if !sender.has_token() {
                tracing::warn!("KG_SMS_TOKEN is not set: SMS requests carry no Authorization");
            }
            tracing::info!(sms = %sender.redacted_url(), "SMS channel enabled");
            Some(Arc::new(sender))
        }
        _ => {
            tracing::warn!(
                "SMS channel DISABLED: KG_SMS_URL is not set; SMS deliveries are stored and \
                 stay PENDING until notification runs with KG_SMS_URL"
            );
            None
        }
    };

    let db = config.common.connect_database(SERVICE).await?;
    migrations::Migrator::up(&db, None).await?;

    // with KG_JWT_SECRET: calls carry a service token, and callers must present theirs
    // Keys, TLS, limits and timeouts from the common configuration.
    let mut options = ServeOptions::from_config(SERVICE, listener, shutdown, &config.common)?;
    let auth = options.auth.clone();
    let identity = IdentityCheckServiceClient::new(config.common.outbound(
        &config.identity_check_url,
        Duration::from_millis(config.call_timeout_ms),
        auth.as_ref(),
        SERVICE,
    )?);
    let wake = Arc::new(Notify::new());
    options.probes.push(Probe::database(db.clone()));
    let metrics = DeliveryMetrics::register(&mut options.metrics.registry);

    // The dispatcher runs while RPCs are served and drained, and stops after.
    let (stop_dispatcher, dispatcher_shutdown) = Shutdown::new();
    let dispatcher = Dispatcher {
        db: db.clone(),
        email,
        sms,
        settings,
        wake: wake.clone(),
        metrics,
        owner: uuid::Uuid::new_v4().to_string(),
    };
    let mut dispatcher_task = tokio::spawn(dispatcher.run(dispatcher_shutdown));

    let service =
        NotificationServiceServer::new(service::Notification::new(db, identity, tz, wake));
    let served = serve(options, service).await;

    stop_dispatcher.trigger();
    let finish = Duration::from_millis(config.smtp_timeout_ms.max(config.sms_timeout_ms))
        + Duration::from_secs(5);
    match tokio::time::timeout(finish, &mut dispatcher_task).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "dispatcher task failed"),
        Err(_) => {
            // its claims run out and another dispatcher sends them (at least once)
            tracing::warn!("dispatcher did not finish its sends in time; abandoning them");
            dispatcher_task.abort();
        }
    }
    served
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
        let smtp = format!("smtp://kg:{marker}@mail:587");
        let sms = format!("https://sms.example/v1/messages?key={marker}");
        let cli = Cli::try_parse_from([
            "notification",
            "--smtp-url",
            &smtp,
            "--sms-url",
            &sms,
            "--sms-token",
            marker,
        ])
        .unwrap();
        let debug = format!("{:?}", cli.config);
        assert!(!debug.contains(marker), "{debug}");
        assert_eq!(
            cli.config.sms_token.as_ref().map(|t| t.expose_secret()),
            Some(marker)
        );
        assert_eq!(
            cli.config.smtp_url.as_ref().map(|u| u.expose_secret()),
            Some(smtp.as_str())
        );
    }
}
