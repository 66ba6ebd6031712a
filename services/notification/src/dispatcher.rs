//! The dispatcher: a background task (started by `run`, stopped by shutdown) that sends due
//! deliveries and records the outcome.
//!
//! Each round it reads up to `batch` deliveries that are PENDING or RETRYING, due
//! (`next_attempt_time <= now`), on an enabled channel and not leased, then for each one:
//!
//! 1. **claims** it with a conditional UPDATE (`lease_until = now + lease, lease_owner = me
//!    WHERE id = … AND status open AND (lease_until IS NULL OR lease_until < now)`); only the
//!    replica that sees one affected row goes on, so two replicas never send the same delivery
//!    at the same time;
//! 2. **sends** it (SMTP or the SMS provider's HTTP API);
//! 3. **records** the outcome at once: SENT (with `sent_time` and the provider's message id);
//!    RETRYING with `next_attempt_time = now + backoff` (exponential, doubling from
//!    `retry_base` to at most `retry_max`, with equal jitter: a random point in the upper half
//!    of the interval), `last_error` and `last_error_code`; or FAILED when the error is
//!    permanent or this was the last allowed attempt.
//!
//! # Exactly once, as far as SMTP allows
//! The provider's acceptance and our UPDATE to SENT cannot be one atomic step. The window is
//! between the server's `250` after the message data (or the SMS provider's 2xx) and the
//! commit of the SENT update, a few milliseconds. If the process dies (or the database is
//! unreachable for every retry of that update) inside it, the lease runs out and a dispatcher
//! sends the message again: delivery is **at least once**, duplicated only by a crash inside
//! that window. The same holds for a reply that never comes: a connection that breaks or times
//! out after the message data was sent but before the server's final reply leaves it unknown
//! whether the server took the message; it counts as a failed attempt and is retried. The lease (`KG_DELIVERY_LEASE_MS`) must stay longer than the slowest send
//! (`run` enforces lease > 2 × the send timeouts), otherwise a slow send could be claimed
//! again while still in flight. Each email carries a stable `Message-ID`
//! (`<delivery id@sender domain>`) and each SMS request a `client_reference` (the delivery id),
//! so a repeat is recognizable downstream.
//!
//! A graceful shutdown stops claiming and lets the sends in flight finish and be recorded.
//!
//! # Reports of refused addresses
//! An email the SMTP server refuses with a 5xx reply (`SMTP_PERMANENT`, see `email.rs`) means
//! the address is undeliverable: the FAILED update and a report for registration
//! (`outbox.rs`: report id `smtp-{delivery id}`, source SMTP_REFUSAL, the scrubbed reply as
//! detail) are written in one transaction, the report only when the conditional FAILED update
//! took effect (a claim lost meanwhile never reports twice). Nothing else is reported: not a
//! missing recipient, not a template error, not a 4xx or network failure, not the last attempt
//! of transient failures. A refusal the server gives only after accepting the message comes back
//! later as a bounce report (`bounces.rs`).
//!
//! # Disabled channels
//! Without `KG_SMTP_URL` (or `KG_SMS_URL`) the channel is disabled: its deliveries are created
//! as usual and stay PENDING, untouched, until a dispatcher with the channel configured runs.
//! Nothing is lost and nothing counts as an attempt.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt as _;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use sea_orm::{
    ColumnTrait, Condition, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, TransactionTrait,
};
use tokio::sync::Notify;
use tracing::Instrument as _;

use kg_runtime::shutdown::Shutdown;

use crate::email::EmailSender;
use crate::outbox::{self, Report, Source};
// moved to `outcome.rs` (email and SMS use them too); re-exported for existing paths
pub use crate::outcome::{Accepted, SendError, code};
use crate::sms::SmsSender;
use crate::store::{self, channel, delivery, status};

/// Tuning of the dispatcher.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Attempts before a delivery FAILS.
    pub max_attempts: u32,
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// How often due deliveries are looked for (a new delivery wakes the dispatcher at once).
    pub poll_interval: Duration,
    /// How long a claim holds.
    pub lease: Duration,
    /// Deliveries read per round.
    pub batch: u64,
    /// Deliveries sent at the same time.
    pub concurrency: usize,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BacklogLabels {
    status: String,
    channel: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AttemptLabels {
    channel: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabels {
    source: String,
}

/// The dispatcher's metrics: the open deliveries (PENDING/RETRYING) per channel, refreshed
/// each round, and the attempts by outcome; and those of contact reachability: the bounce
/// reports read by outcome, and the undeliverable addresses reported to registration by source.
#[derive(Clone, Default)]
pub struct DeliveryMetrics {
    backlog: Family<BacklogLabels, Gauge>,
    attempts: Family<AttemptLabels, Counter>,
    bounce_reports: Family<OutcomeLabels, Counter>,
    undeliverable_reports: Family<SourceLabels, Counter>,
}

impl DeliveryMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register(
            "notification_deliveries_open",
            "Deliveries waiting to be sent (status PENDING or RETRYING), by channel",
            metrics.backlog.clone(),
        );
        registry.register(
            "notification_delivery_attempts",
            "Delivery attempts by channel and outcome (sent, retrying, failed)",
            metrics.attempts.clone(),
        );
        registry.register(
            "notification_bounce_reports",
            "Bounce reports read from the bounce mailbox, by outcome (matched, unmatched, \
             temporary, malformed)",
            metrics.bounce_reports.clone(),
        );
        registry.register(
            "notification_undeliverable_reports",
            "Undeliverable contact addresses reported to registration, by source (smtp_refusal, \
             bounce_report)",
            metrics.undeliverable_reports.clone(),
        );
        for outcome in ["matched", "unmatched", "temporary", "malformed"] {
            let _ = metrics.bounce_reports.get_or_create(&OutcomeLabels {
                outcome: outcome.to_string(),
            });
        }
        for source in [Source::SmtpRefusal, Source::BounceReport] {
            let _ = metrics.undeliverable_reports.get_or_create(&SourceLabels {
                source: source.label().to_string(),
            });
        }
        metrics
    }

    /// Counts one bounce report by outcome.
    pub fn bounce_report(&self, outcome: &str) {
        self.bounce_reports
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_string(),
            })
            .inc();
    }

    /// Counts one report appended for registration.
    pub fn undeliverable_reported(&self, source: Source) {
        self.undeliverable_reports
            .get_or_create(&SourceLabels {
                source: source.label().to_string(),
            })
            .inc();
    }

    fn attempt(&self, channel: &str, outcome: &str) {
        self.attempts
            .get_or_create(&AttemptLabels {
                channel: channel.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
    }

    fn set_backlog(&self, counts: &[(String, String, i64)]) {
        for s in status::OPEN {
            for c in [channel::EMAIL, channel::SMS] {
                let n = counts
                    .iter()
                    .find(|(st, ch, _)| st == s && ch == c)
                    .map_or(0, |(_, _, n)| *n);
                self.backlog
                    .get_or_create(&BacklogLabels {
                        status: s.to_string(),
                        channel: c.to_string(),
                    })
                    .set(n);
            }
        }
    }
}

pub struct Dispatcher {
    pub db: DatabaseConnection,
    pub email: Option<Arc<EmailSender>>,
    pub sms: Option<Arc<SmsSender>>,
    pub settings: Settings,
    pub wake: Arc<Notify>,
    pub metrics: DeliveryMetrics,
    /// Identifies this dispatcher's claims.
    pub owner: String,
    /// Wakes the relay of `notification_outbox` after a report was committed.
    pub reports: Option<Arc<Notify>>,
}

impl Dispatcher {
    fn channels(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.email.is_some() {
            out.push(channel::EMAIL);
        }
        if self.sms.is_some() {
            out.push(channel::SMS);
        }
        out
    }

    /// Runs until `shutdown`; the sends in flight then finish and are recorded.
    pub async fn run(self, shutdown: Shutdown) {
        let mut last_gauge: Option<tokio::time::Instant> = None;
        tracing::info!(owner = %self.owner, "dispatcher started");
        loop {
            if shutdown.is_triggered() {
                break;
            }
            let full = match self.round(&shutdown).await {
                Ok(n) => n as u64 >= self.settings.batch,
                Err(e) => {
                    tracing::warn!(error = %e, "dispatcher round failed; retrying");
                    false
                }
            };
            if last_gauge.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                match store::open_counts(&self.db).await {
                    Ok(counts) => self.metrics.set_backlog(&counts),
                    Err(e) => tracing::debug!(error = %e, "backlog gauge not refreshed"),
                }
                last_gauge = Some(tokio::time::Instant::now());
            }
            if full {
                continue; // more may be due right now
            }
            tokio::select! {
                _ = tokio::time::sleep(self.settings.poll_interval) => {}
                _ = self.wake.notified() => {}
                _ = shutdown.clone().wait() => {}
            }
        }
        tracing::info!(owner = %self.owner, "dispatcher stopped");
    }

    /// One round: the due deliveries, sent concurrently. Returns how many were due.
    async fn round(&self, shutdown: &Shutdown) -> Result<usize, DbErr> {
        let channels = self.channels();
        if channels.is_empty() {
            return Ok(0);
        }
        let now = store::now();
        let due = delivery::Entity::find()
            .filter(delivery::Column::Status.is_in(status::OPEN))
            .filter(delivery::Column::NextAttemptTime.lte(now))
            .filter(delivery::Column::Channel.is_in(channels))
            .filter(
                Condition::any()
                    .add(delivery::Column::LeaseUntil.is_null())
                    .add(delivery::Column::LeaseUntil.lt(now)),
            )
            .order_by_asc(delivery::Column::NextAttemptTime)
            .order_by_asc(delivery::Column::DeliveryId)
            .limit(self.settings.batch)
            .all(&self.db)
            .await?;
        let n = due.len();
        futures::stream::iter(due)
            .for_each_concurrent(self.settings.concurrency.max(1), |row| async move {
                if !shutdown.is_triggered() {
                    self.attempt(row).await;
                }
            })
            .await;
        Ok(n)
    }

    async fn attempt(&self, row: delivery::Model) {
        let now = store::now();
        let lease_until = store::truncate(now + self.settings.lease);
        match store::claim(&self.db, &row.delivery_id, &self.owner, now, lease_until).await {
            Ok(true) => {}
            Ok(false) => return, // another dispatcher has it, or it changed meanwhile
            Err(e) => {
                tracing::warn!(delivery = %row.delivery_id, error = %e, "cannot claim a delivery");
                return;
            }
        }
        let attempts = row.attempts.saturating_add(1);
        let span = tracing::info_span!(
            "deliver",
            delivery = %row.delivery_id,
            event_id = %row.event_id,
            channel = %row.channel,
            recipient = %row.recipient_masked,
            attempt = attempts,
        );
        self.attempt_claimed(row, attempts).instrument(span).await;
    }

    async fn attempt_claimed(&self, row: delivery::Model, attempts: i32) {
        let result = self.send(&row).await;
        // ---- at-least-once window: the provider has the message, SENT is not yet stored ----
        let now = store::now();
        match result {
            Ok(accepted) => {
                self.metrics.attempt(&row.channel, "sent");
                self.record_sent(&row, attempts, &accepted, now).await;
            }
            Err(err) => {
                let message: String =
                    kg_runtime::redact::hide(&err.message, &row.recipient, &row.recipient_masked)
                        .chars()
                        .take(1000)
                        .collect();
                let give_up = err.permanent || attempts as u32 >= self.settings.max_attempts;
                let (new_status, next) = if give_up {
                    (status::FAILED, now)
                } else {
                    let delay = kg_runtime::outbox::Backoff {
                        base: self.settings.retry_base,
                        max: self.settings.retry_max,
                    }
                    .delay(attempts);
                    (status::RETRYING, store::truncate(now + delay))
                };
                self.metrics
                    .attempt(&row.channel, if give_up { "failed" } else { "retrying" });
                if give_up {
                    tracing::warn!(code = err.code, error = %message, "delivery failed");
                } else {
                    tracing::info!(code = err.code, error = %message, next_attempt = %next, "delivery attempt failed; will retry");
                }
                // a 5xx refusal of an email: the address is undeliverable, tell registration
                let report = (row.channel == channel::EMAIL && err.is_smtp_refusal()).then(|| {
                    Report::new(
                        Source::SmtpRefusal,
                        &row.delivery_id,
                        &row.account_id,
                        &row.recipient,
                        &message,
                    )
                });
                let failed = Failed {
                    new_status,
                    attempts,
                    error: &message,
                    code: err.code,
                    next,
                    now,
                };
                match self.record_failed(&row, &failed, report.as_ref()).await {
                    Ok(1) => {
                        if report.is_some() {
                            self.metrics.undeliverable_reported(Source::SmtpRefusal);
                            if let Some(reports) = &self.reports {
                                reports.notify_one();
                            }
                        }
                    }
                    Ok(_) => tracing::warn!("the claim ran out before the attempt was recorded"),
                    // the lease runs out and the delivery is tried again: nothing is lost
                    Err(e) => tracing::warn!(error = %e, "cannot record a failed attempt"),
                }
            }
        }
    }

    /// Stores a failed attempt; with `report`, in one transaction with the report, appended
    /// only when the conditional update took effect. Returns the rows updated.
    async fn record_failed(
        &self,
        row: &delivery::Model,
        failed: &Failed<'_>,
        report: Option<&Report>,
    ) -> Result<u64, DbErr> {
        let Some(report) = report else {
            return store::mark_failed(
                &self.db,
                &row.delivery_id,
                &self.owner,
                failed.new_status,
                failed.attempts,
                failed.error,
                failed.code,
                failed.next,
                failed.now,
            )
            .await;
        };
        let txn = self.db.begin().await?;
        let n = store::mark_failed(
            &txn,
            &row.delivery_id,
            &self.owner,
            failed.new_status,
            failed.attempts,
            failed.error,
            failed.code,
            failed.next,
            failed.now,
        )
        .await?;
        if n == 1 {
            outbox::append_report(&txn, report).await?;
        }
        txn.commit().await?;
        if n == 1 {
            tracing::info!(report = %report.report_id, "refused address reported for registration");
        }
        Ok(n)
    }

    async fn send(&self, row: &delivery::Model) -> Result<Accepted, SendError> {
        if row.recipient.is_empty() {
            return Err(SendError::permanent(
                code::RECIPIENT_MISSING,
                "the account has no address for this channel",
            ));
        }
        match row.channel.as_str() {
            channel::EMAIL => match &self.email {
                Some(email) => {
                    email
                        .send(&row.delivery_id, &row.recipient, &row.title, &row.body)
                        .await
                }
                None => Err(SendError::transient(
                    code::SMTP_TRANSIENT,
                    "email is disabled",
                )),
            },
            channel::SMS => match &self.sms {
                Some(sms) => sms.send(&row.delivery_id, &row.recipient, &row.body).await,
                None => Err(SendError::transient(code::SMS_TRANSIENT, "SMS is disabled")),
            },
            other => Err(SendError::permanent(
                code::TEMPLATE_ERROR,
                format!("unknown channel {other:?}"),
            )),
        }
    }

    /// Stores SENT. The message is out: this update is retried (briefly) so that a database
    /// hiccup does not turn into a second send when the lease runs out.
    async fn record_sent(
        &self,
        row: &delivery::Model,
        attempts: i32,
        accepted: &Accepted,
        now: DateTime<Utc>,
    ) {
        let mut wait = Duration::from_millis(100);
        for _ in 0..8 {
            match store::mark_sent(
                &self.db,
                &row.delivery_id,
                attempts,
                &accepted.provider_message_id,
                now,
            )
            .await
            {
                Ok(_) => {
                    tracing::info!(provider_message_id = %accepted.provider_message_id, "delivery sent");
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot record SENT yet; retrying");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
            }
        }
        tracing::error!(
            "sent, but SENT could not be stored: the delivery may be sent again when its lease runs out"
        );
    }
}

/// A failed attempt to record.
struct Failed<'a> {
    new_status: &'a str,
    attempts: i32,
    error: &'a str,
    code: &'a str,
    next: DateTime<Utc>,
    now: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_refusal_is_reported_once_with_its_failed_update() {
        use sea_orm::{ActiveModelTrait as _, ConnectionTrait as _, IntoActiveModel as _};
        use sea_orm_migration::MigratorTrait as _;
        let db = sea_orm::Database::connect("sqlite::memory:").await.unwrap();
        crate::migrations::Migrator::up(&db, None).await.unwrap();
        let now = store::now();
        let row = delivery::Model {
            delivery_id: "d1".into(),
            event_id: "e1".into(),
            channel: channel::EMAIL.into(),
            account_id: "acct-1".into(),
            event_type: "CONTACT_VERIFICATION".into(),
            subject: String::new(),
            request_sha256: String::new(),
            recipient: "li.wei@acme.example".into(),
            recipient_masked: "l***@acme.example".into(),
            template: "contact_verification/v1".into(),
            locale: "en".into(),
            title: "t".into(),
            body: "b".into(),
            status: status::PENDING.into(),
            attempts: 0,
            last_error: None,
            last_error_code: None,
            next_attempt_time: now,
            lease_until: None,
            lease_owner: None,
            sent_time: None,
            provider_message_id: None,
            create_time: now,
            update_time: now,
        };
        row.clone().into_active_model().insert(&db).await.unwrap();
        let dispatcher = Dispatcher {
            db: db.clone(),
            email: None,
            sms: None,
            settings: Settings {
                max_attempts: 3,
                retry_base: Duration::from_millis(10),
                retry_max: Duration::from_millis(100),
                poll_interval: Duration::from_millis(10),
                lease: Duration::from_secs(60),
                batch: 10,
                concurrency: 1,
            },
            wake: Arc::new(Notify::new()),
            metrics: DeliveryMetrics::default(),
            owner: "me".into(),
            reports: None,
        };
        let lease = store::truncate(now + Duration::from_secs(60));
        assert!(store::claim(&db, "d1", "me", now, lease).await.unwrap());
        let report = Report::new(
            Source::SmtpRefusal,
            "d1",
            "acct-1",
            "li.wei@acme.example",
            "550 5.1.1 <l***@acme.example>: unknown",
        );
        let failed = Failed {
            new_status: status::FAILED,
            attempts: 1,
            error: "550 5.1.1 <l***@acme.example>: unknown",
            code: code::SMTP_PERMANENT,
            next: now,
            now,
        };
        assert_eq!(
            dispatcher
                .record_failed(&row, &failed, Some(&report))
                .await
                .unwrap(),
            1
        );
        // a second record (a claim lost meanwhile) changes nothing and reports nothing
        assert_eq!(
            dispatcher
                .record_failed(&row, &failed, Some(&report))
                .await
                .unwrap(),
            0
        );
        let rows = db
            .query_all_raw(sea_orm::Statement::from_string(
                db.get_database_backend(),
                "SELECT destination, event_type, payload FROM notification_outbox",
            ))
            .await
            .unwrap();
        assert_eq!(rows.len(), 1);
        let payload: serde_json::Value = rows[0].try_get("", "payload").unwrap();
        assert_eq!(payload["report_id"], "smtp-d1");
        assert_eq!(payload["source"], "SMTP_REFUSAL");
        assert_eq!(payload["email"], "li.wei@acme.example");
        assert_eq!(payload["notification"], "notifications/d1");
        let stored = delivery::Entity::find_by_id("d1")
            .one(&db)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.status, status::FAILED);
        assert_eq!(
            stored.last_error_code.as_deref(),
            Some(code::SMTP_PERMANENT)
        );
    }

    #[test]
    fn only_5xx_replies_are_refusals() {
        let p = |code, m: &str| SendError::permanent(code, m);
        assert!(p(code::SMTP_PERMANENT, "550 5.1.1 unknown user").is_smtp_refusal());
        assert!(p(code::SMTP_PERMANENT, "554").is_smtp_refusal());
        assert!(!p(code::SMTP_PERMANENT, "the recipient address is not valid").is_smtp_refusal());
        assert!(!p(code::RECIPIENT_MISSING, "550 x").is_smtp_refusal());
        assert!(!p(code::TEMPLATE_ERROR, "550 x").is_smtp_refusal());
        assert!(!p(code::SMTP_PERMANENT, "5501 x").is_smtp_refusal());
        assert!(
            !SendError::transient(code::SMTP_TRANSIENT, "550 5.1.1 x").is_smtp_refusal(),
            "only permanent failures"
        );
        assert!(!SendError::transient(code::SMTP_TRANSIENT, "451 4.3.0 x").is_smtp_refusal());
    }
}
