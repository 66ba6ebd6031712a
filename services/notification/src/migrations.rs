//! notification's own table: one row per delivery (one event on one channel).
//!
//! * `(event_id, channel)` is unique: the fence that makes SendNotification idempotent, also
//!   when two replicas receive the same event at once.
//! * `recipient` holds the full address (needed to send); `recipient_masked` is what RPCs and
//!   logs show.
//! * `title`/`body` are rendered when the delivery is created, so a template change or a restart
//!   never changes what an already accepted event says.
//! * `lease_until`/`lease_owner`: the claim of a dispatcher (see `dispatcher.rs`); a lease that
//!   ran out (its replica died mid-send) may be claimed again.
//! * `request_sha256`: hash of the SendNotification body, to refuse an event id reused with a
//!   different body (IDEMPOTENCY_KEY_REUSED).
//!
//! `notification_outbox` (m0002, the shared outbox layout of `kg_runtime::outbox` with its
//! dead-letter and lease columns): reports of contact addresses that failed for good (an SMTP
//! 5xx refusal, a bounce report), written in the transaction that records the failure and
//! relayed to registration's `ReportContactUndeliverable` (see `outbox.rs`).

use kg_runtime::db::SqlMigration;
use sea_orm::DynIden;
use sea_orm::sea_query::{Alias, IntoIden};
use sea_orm_migration::{MigrationTrait, MigratorTrait};

/// The outbox of reports to registration.
pub const OUTBOX: &str = "notification_outbox";

pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        // the table, then its dead-letter and lease columns, as one migration
        let outbox: &'static str = Box::leak(
            [
                kg_runtime::outbox::table_sql(OUTBOX),
                kg_runtime::outbox::dead_letter_sql(OUTBOX),
                kg_runtime::outbox::lease_sql(OUTBOX),
            ]
            .join(";\n")
            .into_boxed_str(),
        );
        vec![
            Box::new(SqlMigration {
                name: "m0001_notification",
                sql: r#"
CREATE TABLE notification_deliveries (
    delivery_id         VARCHAR(36) PRIMARY KEY,
    event_id            VARCHAR(64) NOT NULL,
    channel             VARCHAR(8) NOT NULL,
    account_id          VARCHAR(64) NOT NULL,
    event_type          VARCHAR(48) NOT NULL,
    subject             VARCHAR(256) NOT NULL,
    request_sha256      VARCHAR(64) NOT NULL,
    recipient           VARCHAR(320) NOT NULL,
    recipient_masked    VARCHAR(320) NOT NULL,
    template            VARCHAR(64) NOT NULL,
    locale              VARCHAR(8) NOT NULL,
    title               TEXT NOT NULL,
    body                TEXT NOT NULL,
    status              VARCHAR(16) NOT NULL,
    attempts            INTEGER NOT NULL DEFAULT 0,
    last_error          TEXT,
    last_error_code     VARCHAR(32),
    next_attempt_time   {ts} NOT NULL,
    lease_until         {ts},
    lease_owner         VARCHAR(36),
    sent_time           {ts},
    provider_message_id VARCHAR(256),
    create_time         {ts} NOT NULL,
    update_time         {ts} NOT NULL
);
CREATE UNIQUE INDEX notification_deliveries_event_channel
    ON notification_deliveries (event_id, channel);
CREATE INDEX notification_deliveries_due
    ON notification_deliveries (status, next_attempt_time);
CREATE INDEX notification_deliveries_by_account
    ON notification_deliveries (account_id, delivery_id);
CREATE INDEX notification_deliveries_by_subject
    ON notification_deliveries (subject, delivery_id)
"#,
            }),
            Box::new(SqlMigration {
                name: "m0002_notification_outbox",
                sql: outbox,
            }),
        ]
    }

    fn migration_table_name() -> DynIden {
        Alias::new("notification_migrations").into_iden()
    }
}
