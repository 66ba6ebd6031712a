//! The transactional outbox: an event row is written in the same transaction as the state change
//! it announces, and a relay delivers it to its destination over gRPC, retrying with exponential
//! backoff and jitter until the receiver acknowledges. Receivers deduplicate on the event id, so
//! a delivery repeated after a crash between "sent" and "marked delivered" does no harm.
//!
//! Every outbox table has the same columns (see [`table_sql`] and [`dead_letter_sql`]); each
//! service owns its own table. Events of one subject reach one destination in the order they
//! were written: a row waits while an earlier row of the same (destination, subject) is
//! undelivered.
//!
//! Several replicas run the relay of one table: a pass first leases the due events it takes
//! (`lease_until`, claimed with `FOR UPDATE SKIP LOCKED` on PostgreSQL), so one relay at a time
//! delivers an event, and each acknowledgement is recorded as it comes. A relay that dies keeps
//! its events only until their lease runs out; another then delivers them again, which the
//! receivers' deduplication absorbs.
//!
//! A receiver that keeps refusing an event as invalid (INVALID_ARGUMENT, NOT_FOUND,
//! FAILED_PRECONDITION, …) will not change its mind by being asked again: after
//! [`Relay::max_refusals`] such answers the event is set aside as a dead letter (`dead_time`),
//! logged at ERROR and counted by [`dead_letters`], and the subject's later events go on.
//! Transient failures (UNAVAILABLE, DEADLINE_EXCEEDED, …) are retried for ever.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Func, LockBehavior, LockType, Order, Query};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, QueryResult};
use tokio::sync::Notify;

use crate::shutdown::Shutdown;

/// The `CREATE TABLE` of an outbox named `table` (placeholders rendered by the migration).
pub fn table_sql(table: &str) -> String {
    format!(
        "CREATE TABLE {table} (
    seq               {{bigserial}},
    event_id          VARCHAR(36) NOT NULL UNIQUE,
    destination       VARCHAR(24) NOT NULL,
    event_type        VARCHAR(48) NOT NULL,
    account_id        VARCHAR(64) NOT NULL,
    subject           VARCHAR(128) NOT NULL,
    payload           {{json}} NOT NULL,
    create_time       {{ts}} NOT NULL,
    delivered_time    {{ts}},
    attempts          INTEGER NOT NULL DEFAULT 0,
    next_attempt_time {{ts}},
    last_error        TEXT
);
CREATE INDEX {table}_pending ON {table} (delivered_time, seq);
CREATE INDEX {table}_subject ON {table} (destination, subject, seq)"
    )
}

/// Adds the dead-letter column to an outbox made by [`table_sql`] (a later migration of each
/// service). Replay a dead letter by clearing it: `UPDATE <table> SET dead_time = NULL,
/// attempts = 0, next_attempt_time = NULL WHERE event_id = '…'`.
pub fn dead_letter_sql(table: &str) -> String {
    format!("ALTER TABLE {table} ADD COLUMN dead_time {{ts}}")
}

/// Adds the lease column to an outbox made by [`table_sql`] (a later migration of each service).
pub fn lease_sql(table: &str) -> String {
    format!("ALTER TABLE {table} ADD COLUMN lease_until {{ts}}")
}

/// One event to deliver.
#[derive(Debug, Clone)]
pub struct OutboxEvent {
    pub seq: i64,
    pub event_id: String,
    pub destination: String,
    pub event_type: String,
    pub account_id: String,
    pub subject: String,
    pub payload: serde_json::Value,
    pub attempts: i32,
    pub create_time: DateTime<Utc>,
}

/// A new event for [`append`].
pub struct NewEvent<'a> {
    pub destination: &'a str,
    pub event_type: &'a str,
    pub account_id: &'a str,
    pub subject: &'a str,
    pub payload: serde_json::Value,
}

/// Writes an event in the caller's transaction; returns its id.
pub async fn append<C: ConnectionTrait>(
    db: &C,
    table: &str,
    event: NewEvent<'_>,
) -> Result<String, DbErr> {
    let mut ids = append_all(db, table, &[event]).await?;
    ids.pop()
        .ok_or_else(|| DbErr::Custom("an appended event got no id".into()))
}

/// Writes several events in the caller's transaction with one statement (one round trip, where
/// an event for each destination would cost one each); returns their ids in order.
pub async fn append_all<C: ConnectionTrait>(
    db: &C,
    table: &str,
    events: &[NewEvent<'_>],
) -> Result<Vec<String>, DbErr> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let now = Utc::now();
    let mut insert = Query::insert();
    // every column a relay reads but `seq`, which the database assigns
    insert
        .into_table(Alias::new(table))
        .columns(EVENT_COLUMNS[1..].iter().copied().map(Alias::new));
    let mut ids = Vec::with_capacity(events.len());
    for event in events {
        let event_id = uuid::Uuid::now_v7().to_string();
        insert.values_panic([
            event_id.clone().into(),
            event.destination.into(),
            event.event_type.into(),
            event.account_id.into(),
            event.subject.into(),
            event.payload.clone().into(),
            0i32.into(),
            now.into(),
        ]);
        ids.push(event_id);
    }
    db.execute(&insert).await?;
    Ok(ids)
}

/// Events not yet delivered and still being tried (dead letters not included).
pub async fn backlog(db: &DatabaseConnection, table: &str) -> Result<u64, DbErr> {
    count(db, table, Expr::col(Alias::new("dead_time")).is_null()).await
}

/// Events set aside as dead letters (see the module docs).
pub async fn dead_letters(db: &DatabaseConnection, table: &str) -> Result<u64, DbErr> {
    count(db, table, Expr::col(Alias::new("dead_time")).is_not_null()).await
}

async fn count(
    db: &DatabaseConnection,
    table: &str,
    filter: sea_orm::sea_query::SimpleExpr,
) -> Result<u64, DbErr> {
    let select = Query::select()
        .expr_as(Func::count(Expr::col(Alias::new("seq"))), Alias::new("n"))
        .from(Alias::new(table))
        .and_where(Expr::col(Alias::new("delivered_time")).is_null())
        .and_where(filter)
        .to_owned();
    let row = db.query_one(&select).await?;
    let n: i64 = row.and_then(|r| r.try_get("", "n").ok()).unwrap_or(0);
    Ok(u64::try_from(n).unwrap_or(0))
}

/// The gauges of one outbox: events waiting, and dead letters (alert on any).
#[derive(Clone, Default)]
pub struct OutboxGauges {
    pub backlog: prometheus_client::metrics::gauge::Gauge,
    pub dead_letters: prometheus_client::metrics::gauge::Gauge,
}

impl OutboxGauges {
    /// Registers `<table>_backlog` and `<table>_dead_letters`; `what` says what the events are.
    pub fn register(
        registry: &mut prometheus_client::registry::Registry,
        table: &str,
        what: &str,
    ) -> Self {
        let gauges = Self::default();
        registry.register(
            format!("{table}_backlog"),
            format!("{what} not yet acknowledged by their receiver"),
            gauges.backlog.clone(),
        );
        registry.register(
            format!("{table}_dead_letters"),
            format!("{what} refused for good and set aside (alert on any)"),
            gauges.dead_letters.clone(),
        );
        gauges
    }

    pub async fn refresh(&self, db: &DatabaseConnection, table: &str) -> Result<(), DbErr> {
        let backlog = backlog(db, table).await?;
        self.backlog.set(i64::try_from(backlog).unwrap_or(i64::MAX));
        let dead = dead_letters(db, table).await?;
        self.dead_letters
            .set(i64::try_from(dead).unwrap_or(i64::MAX));
        Ok(())
    }

    /// Refreshes the gauges from `table` every 15 s until shutdown (a failed refresh is logged
    /// and tried again next round).
    pub async fn keep_fresh(self, db: DatabaseConnection, table: &'static str, shutdown: Shutdown) {
        loop {
            if let Err(e) = self.refresh(&db, table).await {
                tracing::warn!(error = %e, table, "refreshing the outbox gauges failed");
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(15)) => {},
                _ = shutdown.clone().wait() => return,
            }
        }
    }
}

/// Why a delivery did not go through.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct DeliveryError {
    pub message: String,
    /// Asking again will not help (the receiver refused the event itself, or the event cannot
    /// be built): after [`Relay::max_refusals`] attempts the event becomes a dead letter.
    pub refused: bool,
}

impl DeliveryError {
    /// A failure worth retrying for ever: the receiver or the database is unavailable.
    pub fn retry(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            refused: false,
        }
    }

    /// The event itself is refused or cannot be delivered.
    pub fn refused(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            refused: true,
        }
    }
}

/// An outbox event whose request cannot be built from a corrupt row is refused (asking again
/// will not repair it): after the relay's refusals it becomes a dead letter, logged and counted,
/// rather than a message sent with empty data.
impl From<crate::stored::StoredCorrupt> for DeliveryError {
    fn from(err: crate::stored::StoredCorrupt) -> Self {
        DeliveryError::refused(err.to_string())
    }
}

impl From<tonic::Status> for DeliveryError {
    fn from(status: tonic::Status) -> Self {
        use tonic::Code;
        let message = format!(
            "{}: {}",
            crate::metrics::code_name(status.code()),
            status.message()
        );
        match status.code() {
            Code::InvalidArgument
            | Code::NotFound
            | Code::AlreadyExists
            | Code::FailedPrecondition
            | Code::OutOfRange
            | Code::Unimplemented => Self::refused(message),
            _ => Self::retry(message),
        }
    }
}

/// What delivers events of one service to their destinations.
#[async_trait::async_trait]
pub trait Deliver: Send + Sync + 'static {
    async fn deliver(&self, event: &OutboxEvent) -> Result<(), DeliveryError>;
}

#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: Duration::from_millis(200),
            max: Duration::from_secs(30),
        }
    }
}

impl Backoff {
    /// The delay before attempt `failed + 1`, after `failed` failed attempts: `base ·
    /// 2^(failed-1)` capped at `max`, then a uniformly random point in its upper half (equal
    /// jitter), so that what failed together does not all come back together.
    pub fn delay(&self, failed: i32) -> Duration {
        let exp = failed.clamp(1, 31) as u32 - 1;
        let capped = self
            .base
            .saturating_mul(2u32.saturating_pow(exp))
            .min(self.max);
        let half = capped / 2;
        half + half.mul_f64(rand::random::<f64>())
    }
}

/// The relay of one outbox table. Poke [`Relay::notifier`] after a commit to deliver at once.
pub struct Relay {
    pub db: DatabaseConnection,
    pub table: String,
    pub deliver: Arc<dyn Deliver>,
    pub backoff: Backoff,
    pub batch: u64,
    /// How many subjects are delivered side by side.
    pub concurrency: usize,
    /// Refusals (see [`DeliveryError::refused`]) after which an event becomes a dead letter.
    pub max_refusals: i32,
    pub idle_poll: Duration,
    /// How long a pass owns the events it claimed; longer than a delivery takes. A relay that
    /// dies holds its events back this long.
    pub lease: Duration,
    notify: Arc<Notify>,
}

impl Relay {
    pub fn new(db: DatabaseConnection, table: &str, deliver: Arc<dyn Deliver>) -> Self {
        Self {
            db,
            table: table.to_string(),
            deliver,
            backoff: Backoff::default(),
            batch: 100,
            concurrency: 16,
            max_refusals: 10,
            idle_poll: Duration::from_millis(250),
            lease: Duration::from_secs(30),
            notify: Arc::new(Notify::new()),
        }
    }

    pub fn notifier(&self) -> Arc<Notify> {
        self.notify.clone()
    }

    /// Delivers until shutdown.
    pub async fn run(self, shutdown: Shutdown) {
        loop {
            if shutdown.is_triggered() {
                return;
            }
            let delivered = match self.pass().await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(table = %self.table, error = %e, "outbox pass failed; retrying");
                    0
                }
            };
            if delivered > 0 {
                continue;
            }
            tokio::select! {
                _ = self.notify.notified() => {},
                _ = tokio::time::sleep(self.idle_poll) => {},
                _ = shutdown.clone().wait() => return,
            }
        }
    }

    /// One pass over the due events; returns how many were delivered.
    ///
    /// Events are grouped by (destination, subject): each group is delivered in `seq` order, one
    /// event after the other, and the groups run side by side (at most `concurrency` at once), so
    /// one slow subject does not hold back the others and order within a subject is kept.
    pub async fn pass(&self) -> Result<usize, DbErr> {
        let mut groups: Vec<Vec<OutboxEvent>> = Vec::new();
        let mut index: std::collections::HashMap<(String, String), usize> = Default::default();
        for event in self.claim().await? {
            let key = (event.destination.clone(), event.subject.clone());
            match index.get(&key) {
                Some(&i) => groups[i].push(event),
                None => {
                    index.insert(key, groups.len());
                    groups.push(vec![event]);
                }
            }
        }
        let results: Vec<Result<usize, DbErr>> = futures::stream::iter(groups)
            .map(|group| self.deliver_group(group))
            .buffer_unordered(self.concurrency.max(1))
            .collect()
            .await;
        let mut delivered = 0;
        let mut first_error = None;
        for r in results {
            match r {
                Ok(n) => delivered += n,
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(delivered),
        }
    }

    /// Leases up to `batch` due events that no other relay holds, in `seq` order.
    async fn claim(&self) -> Result<Vec<OutboxEvent>, DbErr> {
        let now = Utc::now();
        let col = |c: &str| Expr::col(Alias::new(c));
        let due = Query::select()
            .column(Alias::new("seq"))
            .from(Alias::new(&self.table))
            .and_where(col("delivered_time").is_null())
            .and_where(col("dead_time").is_null())
            .and_where(
                col("next_attempt_time")
                    .is_null()
                    .or(col("next_attempt_time").lte(now)),
            )
            .and_where(col("lease_until").is_null().or(col("lease_until").lte(now)))
            .order_by(Alias::new("seq"), Order::Asc)
            .limit(self.batch)
            // PostgreSQL: replicas claiming at once take disjoint events (SQLite has one writer
            // and ignores the clause).
            .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
            .to_owned();
        let lease_until = now + chrono::Duration::from_std(self.lease).unwrap_or_default();
        let claim = Query::update()
            .table(Alias::new(&self.table))
            .value(Alias::new("lease_until"), lease_until)
            .and_where(col("seq").in_subquery(due))
            .returning(Query::returning().columns(EVENT_COLUMNS.map(Alias::new)))
            .to_owned();
        let mut events = self
            .db
            .query_all(&claim)
            .await?
            .iter()
            .map(decode)
            .collect::<Result<Vec<_>, _>>()?;
        events.sort_by_key(|e| e.seq);
        Ok(events)
    }

    /// Delivers the events of one (destination, subject) in order, recording each
    /// acknowledgement as it comes; stops at the first that cannot go (an earlier undelivered
    /// event outside this batch, or a failed delivery) and postpones the rest. Returns how many
    /// were delivered.
    async fn deliver_group(&self, group: Vec<OutboxEvent>) -> Result<usize, DbErr> {
        let mut delivered = 0;
        let mut events = group.into_iter();
        let Some(first) = events.next() else {
            return Ok(0);
        };
        // Later events of the group follow `first` in seq order; only `first` can have an
        // earlier pending event that this batch does not hold (one backing off, or leased by
        // another relay).
        let mut stopped = self.has_earlier_pending(&first).await?;
        for event in std::iter::once(first).chain(events) {
            if stopped {
                self.postpone(&event, None).await?;
                continue;
            }
            match self.deliver.deliver(&event).await {
                Ok(()) => {
                    self.mark_delivered(event.seq).await?;
                    delivered += 1;
                }
                Err(e) => {
                    stopped = true;
                    if e.refused && event.attempts + 1 >= self.max_refusals {
                        tracing::error!(event = %event.event_id, destination = %event.destination, subject = %event.subject, kind = %event.event_type, attempts = event.attempts + 1, error = %e, "delivery refused for good; set aside as a dead letter");
                        self.bury(&event, &e.message).await?;
                    } else {
                        tracing::debug!(event = %event.event_id, destination = %event.destination, error = %e, "delivery failed; will retry");
                        self.postpone(&event, Some(&e.message)).await?;
                    }
                }
            }
        }
        Ok(delivered)
    }

    async fn has_earlier_pending(&self, event: &OutboxEvent) -> Result<bool, DbErr> {
        let col = |c: &str| Expr::col(Alias::new(c));
        let select = Query::select()
            .column(Alias::new("seq"))
            .from(Alias::new(&self.table))
            .and_where(col("delivered_time").is_null())
            .and_where(col("dead_time").is_null())
            .and_where(col("destination").eq(event.destination.as_str()))
            .and_where(col("subject").eq(event.subject.as_str()))
            .and_where(col("seq").lt(event.seq))
            .limit(1)
            .to_owned();
        Ok(self.db.query_one(&select).await?.is_some())
    }

    /// Records one acknowledgement. `attempts` counts the successful attempt too.
    async fn mark_delivered(&self, seq: i64) -> Result<(), DbErr> {
        let update = Query::update()
            .table(Alias::new(&self.table))
            .value(Alias::new("delivered_time"), Utc::now())
            .value(
                Alias::new("attempts"),
                Expr::col(Alias::new("attempts")).add(1),
            )
            .value(Alias::new("last_error"), Option::<String>::None)
            .value(Alias::new("lease_until"), Option::<DateTime<Utc>>::None)
            .and_where(Expr::col(Alias::new("seq")).eq(seq))
            .to_owned();
        self.db.execute(&update).await.map(|_| ())
    }

    /// Sets an event aside: it is no longer tried and no longer holds back its subject.
    async fn bury(&self, event: &OutboxEvent, error: &str) -> Result<(), DbErr> {
        let error: String = error.chars().take(500).collect();
        let update = Query::update()
            .table(Alias::new(&self.table))
            .value(Alias::new("attempts"), event.attempts + 1)
            .value(Alias::new("dead_time"), Utc::now())
            .value(Alias::new("last_error"), error)
            .value(Alias::new("lease_until"), Option::<DateTime<Utc>>::None)
            .and_where(Expr::col(Alias::new("seq")).eq(event.seq))
            .to_owned();
        self.db.execute(&update).await.map(|_| ())
    }

    /// A failed attempt (`error` set) counts and backs off; a wait behind an earlier event of the
    /// same subject does not count.
    async fn postpone(&self, event: &OutboxEvent, error: Option<&str>) -> Result<(), DbErr> {
        let attempts = event.attempts + i32::from(error.is_some());
        let delay = match error {
            Some(_) => self.backoff.delay(attempts),
            None => self.backoff.base,
        };
        let next = Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default();
        let mut update = Query::update()
            .table(Alias::new(&self.table))
            .value(Alias::new("attempts"), attempts)
            .value(Alias::new("next_attempt_time"), next)
            .value(Alias::new("lease_until"), Option::<DateTime<Utc>>::None)
            .and_where(Expr::col(Alias::new("seq")).eq(event.seq))
            .to_owned();
        if let Some(error) = error {
            let error: String = error.chars().take(500).collect();
            update.value(Alias::new("last_error"), error);
        }
        self.db.execute(&update).await.map(|_| ())
    }
}

/// The columns a relay reads of an event; `append_all` writes them all but `seq`.
const EVENT_COLUMNS: [&str; 9] = [
    "seq",
    "event_id",
    "destination",
    "event_type",
    "account_id",
    "subject",
    "payload",
    "attempts",
    "create_time",
];

fn decode(row: &QueryResult) -> Result<OutboxEvent, DbErr> {
    Ok(OutboxEvent {
        seq: row.try_get("", "seq")?,
        event_id: row.try_get("", "event_id")?,
        destination: row.try_get("", "destination")?,
        event_type: row.try_get("", "event_type")?,
        account_id: row.try_get("", "account_id")?,
        subject: row.try_get("", "subject")?,
        payload: row.try_get("", "payload")?,
        attempts: row.try_get("", "attempts")?,
        create_time: row.try_get("", "create_time")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_within_jitter_and_caps() {
        let b = Backoff {
            base: Duration::from_secs(30),
            max: Duration::from_secs(3600),
        };
        for _ in 0..100 {
            let first = b.delay(1);
            assert!(first >= b.base / 2 && first <= b.base, "{first:?}");
            let third = b.delay(3);
            assert!(third >= Duration::from_secs(60) && third <= Duration::from_secs(120));
            let late = b.delay(40);
            assert!(late >= b.max / 2 && late <= b.max, "{late:?}");
        }
    }
}
