//! Storage of deliveries: the entity, the stored names of statuses and channels, and the
//! conditional updates the dispatcher uses to claim and settle deliveries.

use chrono::{DateTime, Utc};
use sea_orm::entity::prelude::*;
use sea_orm::sea_query::Query;
use sea_orm::{Condition, ConnectionTrait, DbErr, Statement};

pub mod delivery {
    use super::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "notification_deliveries")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub delivery_id: String,
        pub event_id: String,
        pub channel: String,
        pub account_id: String,
        pub event_type: String,
        pub subject: String,
        pub request_sha256: String,
        /// The full address. Never returned, never logged: see `recipient_masked`.
        pub recipient: String,
        pub recipient_masked: String,
        pub template: String,
        pub locale: String,
        /// The email subject line (empty for SMS).
        pub title: String,
        pub body: String,
        pub status: String,
        pub attempts: i32,
        pub last_error: Option<String>,
        pub last_error_code: Option<String>,
        pub next_attempt_time: DateTime<Utc>,
        pub lease_until: Option<DateTime<Utc>>,
        pub lease_owner: Option<String>,
        pub sent_time: Option<DateTime<Utc>>,
        pub provider_message_id: Option<String>,
        pub create_time: DateTime<Utc>,
        pub update_time: DateTime<Utc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Delivery statuses as stored.
pub mod status {
    pub const PENDING: &str = "PENDING";
    pub const SENT: &str = "SENT";
    pub const RETRYING: &str = "RETRYING";
    pub const FAILED: &str = "FAILED";
    /// Accepted by the SMTP server (SENT), then reported undeliverable by a bounce report.
    pub const BOUNCED: &str = "BOUNCED";
    /// The statuses the dispatcher works on.
    pub const OPEN: [&str; 2] = [PENDING, RETRYING];
}

/// Channels as stored.
pub mod channel {
    pub const EMAIL: &str = "EMAIL";
    pub const SMS: &str = "SMS";
}

/// Timestamps are stored to the microsecond (PostgreSQL's precision), so a value read back
/// compares equal to the value written on both backends.
pub fn now() -> DateTime<Utc> {
    truncate(Utc::now())
}

pub fn truncate(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

use delivery::Column as Col;

/// Claims one delivery for `owner` until `lease_until`: succeeds only while the delivery is
/// still open and nobody else holds a live lease. Two replicas racing for one row both run this
/// UPDATE; the database serializes them and exactly one sees one affected row.
pub async fn claim<C: ConnectionTrait>(
    db: &C,
    delivery_id: &str,
    owner: &str,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let update = Query::update()
        .table(delivery::Entity)
        .value(Col::LeaseUntil, lease_until)
        .value(Col::LeaseOwner, owner)
        .and_where(Col::DeliveryId.eq(delivery_id))
        .and_where(Col::Status.is_in(status::OPEN))
        .and_where(Col::NextAttemptTime.lte(now))
        .cond_where(
            Condition::any()
                .add(Col::LeaseUntil.is_null())
                .add(Col::LeaseUntil.lt(now)),
        )
        .to_owned();
    let result = db.execute(&update).await?;
    Ok(result.rows_affected() == 1)
}

/// Records that the provider accepted the message. No lease condition: once a provider
/// accepted it, SENT is the truth even if our lease ran out meanwhile.
pub async fn mark_sent<C: ConnectionTrait>(
    db: &C,
    delivery_id: &str,
    attempts: i32,
    provider_message_id: &str,
    now: DateTime<Utc>,
) -> Result<u64, DbErr> {
    let update = Query::update()
        .table(delivery::Entity)
        .value(Col::Status, status::SENT)
        .value(Col::Attempts, attempts)
        .value(Col::SentTime, now)
        .value(Col::ProviderMessageId, provider_message_id)
        .value(Col::LeaseUntil, Option::<DateTime<Utc>>::None)
        .value(Col::LeaseOwner, Option::<String>::None)
        .value(Col::UpdateTime, now)
        .and_where(Col::DeliveryId.eq(delivery_id))
        .and_where(Col::Status.ne(status::SENT))
        .to_owned();
    Ok(db.execute(&update).await?.rows_affected())
}

/// Records a failed attempt (RETRYING with the next due time, or FAILED), only while `owner`
/// still holds the claim, so a replica whose lease ran out cannot overwrite another's result.
#[allow(clippy::too_many_arguments)]
pub async fn mark_failed<C: ConnectionTrait>(
    db: &C,
    delivery_id: &str,
    owner: &str,
    new_status: &str,
    attempts: i32,
    error: &str,
    error_code: &str,
    next_attempt_time: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<u64, DbErr> {
    let update = Query::update()
        .table(delivery::Entity)
        .value(Col::Status, new_status)
        .value(Col::Attempts, attempts)
        .value(Col::LastError, error)
        .value(Col::LastErrorCode, error_code)
        .value(Col::NextAttemptTime, next_attempt_time)
        .value(Col::LeaseUntil, Option::<DateTime<Utc>>::None)
        .value(Col::LeaseOwner, Option::<String>::None)
        .value(Col::UpdateTime, now)
        .and_where(Col::DeliveryId.eq(delivery_id))
        .and_where(Col::LeaseOwner.eq(owner))
        .and_where(Col::Status.is_in(status::OPEN))
        .to_owned();
    Ok(db.execute(&update).await?.rows_affected())
}

/// Records that a sent email bounced: SENT → BOUNCED, only while the delivery is a SENT email
/// (a report that arrives twice, or on two replicas at once, changes it once).
pub async fn mark_bounced<C: ConnectionTrait>(
    db: &C,
    delivery_id: &str,
    error: &str,
    error_code: &str,
    now: DateTime<Utc>,
) -> Result<u64, DbErr> {
    let update = Query::update()
        .table(delivery::Entity)
        .value(Col::Status, status::BOUNCED)
        .value(Col::LastError, error)
        .value(Col::LastErrorCode, error_code)
        .value(Col::UpdateTime, now)
        .and_where(Col::DeliveryId.eq(delivery_id))
        .and_where(Col::Channel.eq(channel::EMAIL))
        .and_where(Col::Status.eq(status::SENT))
        .to_owned();
    Ok(db.execute(&update).await?.rows_affected())
}

/// Open deliveries by status and channel, for the backlog gauge.
pub async fn open_counts<C: ConnectionTrait>(db: &C) -> Result<Vec<(String, String, i64)>, DbErr> {
    let backend = db.get_database_backend();
    let rows = db
        .query_all_raw(Statement::from_string(
            backend,
            "SELECT status, channel, COUNT(*) AS n FROM notification_deliveries \
             WHERE status IN ('PENDING', 'RETRYING') GROUP BY status, channel",
        ))
        .await?;
    let mut out = Vec::new();
    for row in rows {
        let status: String = row.try_get("", "status")?;
        let channel: String = row.try_get("", "channel")?;
        let n: i64 = row.try_get("", "n")?;
        out.push((status, channel, n));
    }
    Ok(out)
}
