//! notification: email and SMS deliveries of review results and other events.
//!
//! * `SendNotification` (internal, called by the outbox relays) stores one delivery per channel,
//!   idempotently by event id (`send.rs`);
//! * a dispatcher task sends due deliveries with retries and backoff (`dispatcher.rs`) over SMTP
//!   (`email.rs`) and an SMS provider's HTTP API (`sms.rs`), each send ending in an outcome of
//!   `outcome.rs`;
//! * `GetNotification`/`ListNotifications` read the deliveries (`queries.rs`), recipients
//!   always masked (`kg_runtime::redact`);
//! * the texts are data: files in `templates/`, built in and rendered by `templates.rs`;
//! * contact reachability: CONTACT_VERIFICATION mails a code to the address being verified
//!   (`recipient_email`); an email the SMTP server refuses with a 5xx reply (`dispatcher.rs`)
//!   or that comes back as a bounce report in the bounce Maildir (`bounces.rs`, parsed by
//!   `dsn.rs`, `KG_BOUNCE_MAILDIR`, with `KG_SMTP_BOUNCE_ADDRESS` as the envelope sender) is
//!   reported to registration's `ReportContactUndeliverable` through the `notification_outbox`
//!   table and its relay (`outbox.rs`, `KG_REGISTRATION_URL`).
//!
//! A channel without its URL (`KG_SMTP_URL`, `KG_SMS_URL`) is disabled: its deliveries are
//! stored and stay PENDING until a notification service with the channel configured runs.
//!
//! Metrics (besides the common ones): `koogallery_notification_deliveries_open{status,channel}`,
//! `koogallery_notification_delivery_attempts_total{channel,outcome}`,
//! `koogallery_notification_bounce_reports_total{outcome}` (matched, unmatched, temporary,
//! malformed), `koogallery_notification_undeliverable_reports_total{source}` (smtp_refusal,
//! bounce_report), `koogallery_notification_outbox_backlog` and
//! `koogallery_notification_outbox_dead_letters`.

pub mod bounces;
pub mod dispatcher;
pub mod dsn;
pub mod email;
pub mod error;
pub mod migrations;
pub mod outbox;
pub mod outcome;
pub mod queries;
pub mod roles;
pub mod send;
pub mod service;
pub mod sms;
pub mod store;
pub mod templates;
pub mod view;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{FromArgMatches as _, Parser};
use kg_proto::identity::identity_check_service_client::IdentityCheckServiceClient;
use kg_proto::notification::notification_service_server::NotificationServiceServer;
use kg_proto::registration::registration_service_client::RegistrationServiceClient;
use kg_runtime::config::{CommonConfig, ports};
use kg_runtime::health::Probe;
use kg_runtime::outbox::{OutboxGauges, Relay};
use kg_runtime::server::{ServeOptions, serve};
use kg_runtime::shutdown::Shutdown;
use sea_orm_migration::MigratorTrait;
use secrecy::{ExposeSecret, SecretString};
use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate::bounces::BounceMailbox;
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

    /// registration's gRPC URL (the outbox relay reports undeliverable contact addresses there).
    #[arg(long, env = "KG_REGISTRATION_URL", default_value_t = format!("http://127.0.0.1:{}", ports::REGISTRATION))]
    pub registration_url: String,

    /// Deadline of each call to another service, in milliseconds.
    #[arg(long, env = "KG_CALL_TIMEOUT_MS", default_value_t = 15_000)]
    pub call_timeout_ms: u64,

    /// Longest wait between two delivery attempts of one outbox event (a report to
    /// registration), in milliseconds.
    #[arg(long, env = "KG_OUTBOX_MAX_BACKOFF_MS", default_value_t = 30_000)]
    pub outbox_max_backoff_ms: u64,

    /// How long a relay owns the outbox events it took for delivery, in milliseconds. A relay
    /// that dies holds its events back this long before another replica delivers them; keep it
    /// above the call timeout.
    #[arg(long, env = "KG_OUTBOX_LEASE_MS", default_value_t = 30_000)]
    pub outbox_lease_ms: u64,

    /// SMTP server: `smtp://[user:password@]host[:port][?tls=none|starttls|opportunistic|tls]`
    /// (`smtps://` = implicit TLS). Default TLS mode: starttls (required). Unset: email is
    /// disabled and email deliveries stay PENDING.
    #[arg(long, env = "KG_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<SecretString>,

    /// Sender of the emails (`From`), a mailbox: `Name <address>` or `address`.
    #[arg(long, env = "KG_SMTP_FROM", default_value = DEFAULT_SMTP_FROM)]
    pub smtp_from: String,

    /// Envelope sender (`MAIL FROM`) of every email: the address whose mail the MTA delivers
    /// into `KG_BOUNCE_MAILDIR`, so bounce reports reach it. Unset: the `From` address.
    #[arg(long, env = "KG_SMTP_BOUNCE_ADDRESS")]
    pub smtp_bounce_address: Option<String>,

    /// Maildir the MTA delivers bounce reports (RFC 3464) into; read every `KG_BOUNCE_POLL_MS`
    /// (`new/`, `cur/` and `tmp/` are created when missing). Unset: no bounce reports are read.
    #[arg(long, env = "KG_BOUNCE_MAILDIR")]
    pub bounce_maildir: Option<PathBuf>,

    /// How often the bounce Maildir is read, in milliseconds.
    #[arg(long, env = "KG_BOUNCE_POLL_MS", default_value_t = 5_000)]
    pub bounce_poll_ms: u64,

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
            let mut sender = EmailSender::new(
                &smtp,
                &config.smtp_from,
                Duration::from_millis(config.smtp_timeout_ms),
            )?;
            if let Some(bounce) = config
                .smtp_bounce_address
                .as_deref()
                .map(str::trim)
                .filter(|a| !a.is_empty())
            {
                sender = sender.with_bounce_address(bounce)?;
            }
            tracing::info!(smtp = %smtp.redacted(), from = %config.smtp_from, envelope_sender = %sender.envelope_sender(), "email channel enabled");
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

    // Reports of undeliverable addresses to registration (notification_outbox and its relay).
    let registration = RegistrationServiceClient::new(config.common.outbound(
        &config.registration_url,
        Duration::from_millis(config.call_timeout_ms),
        auth.as_ref(),
        SERVICE,
    )?);
    let mut relay = Relay::new(
        db.clone(),
        migrations::OUTBOX,
        Arc::new(outbox::Deliverer { registration }),
    );
    relay.backoff.max = Duration::from_millis(config.outbox_max_backoff_ms);
    relay.lease = Duration::from_millis(config.outbox_lease_ms.max(1));
    let reports = relay.notifier();
    let gauges = OutboxGauges::register(
        &mut options.metrics.registry,
        migrations::OUTBOX,
        "Reports of undeliverable contact addresses to registration",
    );
    // the relay and the bounce mailbox run while RPCs are served, and stop with the dispatcher
    let (stop_background, background_shutdown) = Shutdown::new();
    tokio::spawn(relay.run(background_shutdown.clone()));
    tokio::spawn(gauges.keep_fresh(db.clone(), migrations::OUTBOX, background_shutdown.clone()));
    match &config.bounce_maildir {
        Some(maildir) if !maildir.as_os_str().is_empty() => {
            BounceMailbox::prepare(maildir)
                .map_err(|e| anyhow::anyhow!("KG_BOUNCE_MAILDIR {}: {e}", maildir.display()))?;
            let mailbox = BounceMailbox {
                db: db.clone(),
                maildir: maildir.clone(),
                poll: Duration::from_millis(config.bounce_poll_ms.max(10)),
                metrics: metrics.clone(),
                reports: Some(reports.clone()),
            };
            tokio::spawn(mailbox.run(background_shutdown.clone()));
        }
        _ => {
            if config.smtp_bounce_address.is_some() {
                tracing::warn!(
                    "KG_SMTP_BOUNCE_ADDRESS is set but KG_BOUNCE_MAILDIR is not: this replica \
                     reads no bounce reports"
                );
            }
        }
    }

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
        reports: Some(reports),
    };
    let mut dispatcher_task = tokio::spawn(dispatcher.run(dispatcher_shutdown));

    let service =
        NotificationServiceServer::new(service::Notification::new(db, identity, tz, wake));
    let served = serve(options, service, roles::allowed).await;

    stop_dispatcher.trigger();
    stop_background.trigger();
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
    fn reachability_settings_and_their_defaults() {
        let cli = Cli::try_parse_from(["notification"]).unwrap();
        assert_eq!(
            cli.config.registration_url,
            format!(
                "http://127.0.0.1:{}",
                kg_runtime::config::ports::REGISTRATION
            )
        );
        assert_eq!(cli.config.bounce_maildir, None);
        assert_eq!(cli.config.smtp_bounce_address, None);
        assert_eq!(cli.config.bounce_poll_ms, 5_000);
        assert_eq!(
            (cli.config.outbox_max_backoff_ms, cli.config.outbox_lease_ms),
            (30_000, 30_000)
        );
        let cli = Cli::try_parse_from([
            "notification",
            "--registration-url",
            "http://registration:50052",
            "--bounce-maildir",
            "/var/mail/bounces",
            "--bounce-poll-ms",
            "250",
            "--smtp-bounce-address",
            "bounces@koogallery.example",
        ])
        .unwrap();
        assert_eq!(cli.config.registration_url, "http://registration:50052");
        assert_eq!(
            cli.config.bounce_maildir.as_deref(),
            Some(std::path::Path::new("/var/mail/bounces"))
        );
        assert_eq!(cli.config.bounce_poll_ms, 250);
        assert_eq!(
            cli.config.smtp_bounce_address.as_deref(),
            Some("bounces@koogallery.example")
        );
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
