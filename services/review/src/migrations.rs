//! review's own tables. Nested messages (entity-free profile, evidence, decision) are stored as
//! protobuf bytes: the contract's own schema, which evolves compatibly.
//!
//! - `review_tasks`: one row per subject (the unique index on `subject` is the final fence of
//!   "one task per application or modification request"). `version` is the optimistic
//!   concurrency token behind every state change and the etag: each change is an
//!   `UPDATE … WHERE task_id = ? AND version = ?` whose affected-row count decides the winner.
//!   `deadline` is NULL while the clock is stopped (WAITING_ON_APPLICANT) and on CANCELLED
//!   tasks; `clock_start` and `used_working_micros` carry the stopped clock (see `clock.rs`).
//! - `review_audit`: append-only; triggers refuse UPDATE and DELETE on both backends.
//! - `review_inbox`: event ids of internal calls already processed (CreateReviewTask,
//!   ResumeReviewTask, CancelReviewTask) and of decision deliveries already audited.
//! - `review_requests`: idempotency keys (`request_id`) of the staff mutations, per caller.
//! - `review_outbox`: decisions on their way to registration (`kg_runtime::outbox`).
//! - `review_task_keys`: the match keys of duplicate signals (`matchkeys.rs`, `signals.rs`), one
//!   row per task, kind and key, looked up by `(kind, match_key)`. Migration m0003 creates it and
//!   fills it in for the tasks created before it.

use std::sync::OnceLock;

use kg_runtime::db::SqlMigration;
use sea_orm::sea_query::{Alias, IntoIden};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, DynIden};
use sea_orm_migration::{MigrationName, MigrationTrait, MigratorTrait, SchemaManager};

/// The outbox table of decisions.
pub const OUTBOX: &str = "review_outbox";

const TABLES: &str = r#"
CREATE TABLE review_tasks (
    task_id               VARCHAR(36) PRIMARY KEY,
    subject               VARCHAR(160) NOT NULL UNIQUE,
    subject_kind          VARCHAR(32) NOT NULL,
    account_id            VARCHAR(64) NOT NULL,
    company_name          VARCHAR(256) NOT NULL,
    previous_company_name VARCHAR(256) NOT NULL,
    country               VARCHAR(2) NOT NULL,
    registration_number   VARCHAR(64) NOT NULL,
    state                 VARCHAR(32) NOT NULL,
    assignee              VARCHAR(128),
    claim_time            {ts},
    submit_time           {ts} NOT NULL,
    deadline              {ts},
    clock_start           {ts} NOT NULL,
    used_working_micros   BIGINT NOT NULL,
    paused_since          {ts},
    paused_micros         BIGINT NOT NULL,
    evidence              {blob},
    profile               {blob} NOT NULL,
    logo                  {blob},
    decision              {blob},
    decision_event_id     VARCHAR(36),
    deliver_time          {ts},
    version               BIGINT NOT NULL,
    create_time           {ts} NOT NULL,
    update_time           {ts} NOT NULL
);
CREATE INDEX review_tasks_queue ON review_tasks (deadline, task_id);
CREATE INDEX review_tasks_by_state ON review_tasks (state, deadline);
CREATE INDEX review_tasks_by_account ON review_tasks (account_id);
CREATE INDEX review_tasks_by_assignee ON review_tasks (assignee);
CREATE TABLE review_audit (
    seq                   {bigserial},
    entry_id              VARCHAR(36) NOT NULL UNIQUE,
    task_id               VARCHAR(36) NOT NULL,
    subject               VARCHAR(160) NOT NULL,
    actor                 VARCHAR(128) NOT NULL,
    actor_role            VARCHAR(16) NOT NULL,
    action                VARCHAR(32) NOT NULL,
    before_state          VARCHAR(32),
    after_state           VARCHAR(32) NOT NULL,
    comment               TEXT NOT NULL,
    reason_codes          TEXT NOT NULL,
    request_id            VARCHAR(64) NOT NULL,
    action_time           {ts} NOT NULL
);
CREATE INDEX review_audit_by_task ON review_audit (task_id, seq);
CREATE INDEX review_audit_by_actor ON review_audit (actor, seq);
CREATE TABLE review_inbox (
    event_id              VARCHAR(64) PRIMARY KEY,
    rpc                   VARCHAR(32) NOT NULL,
    body_sha256           VARCHAR(64) NOT NULL,
    task_id               VARCHAR(36) NOT NULL,
    outcome               VARCHAR(24) NOT NULL,
    receive_time          {ts} NOT NULL
);
CREATE TABLE review_requests (
    request_id            VARCHAR(64) NOT NULL,
    caller                VARCHAR(128) NOT NULL,
    rpc                   VARCHAR(32) NOT NULL,
    body_sha256           VARCHAR(64) NOT NULL,
    task_id               VARCHAR(36) NOT NULL,
    create_time           {ts} NOT NULL,
    PRIMARY KEY (request_id, caller)
);
"#;

pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        // `table_sql` is built at run time; SqlMigration takes `&'static str`.
        static SQL: OnceLock<String> = OnceLock::new();
        let sql = SQL.get_or_init(|| format!("{TABLES}{}", kg_runtime::outbox::table_sql(OUTBOX)));
        static DEAD_LETTERS: OnceLock<String> = OnceLock::new();
        let dead_letters = DEAD_LETTERS.get_or_init(|| kg_runtime::outbox::dead_letter_sql(OUTBOX));
        static LEASES: OnceLock<String> = OnceLock::new();
        let leases = LEASES.get_or_init(|| kg_runtime::outbox::lease_sql(OUTBOX));
        vec![
            Box::new(SqlMigration {
                name: "m0001_review",
                sql,
            }),
            Box::new(AppendOnlyAudit),
            Box::new(DuplicateKeys),
            // Decisions registration refuses for good are set aside instead of retried for ever.
            Box::new(SqlMigration {
                name: "m0004_outbox_dead_letters",
                sql: dead_letters,
            }),
            // Relays lease the decisions they deliver: one replica delivers an event at a time.
            Box::new(SqlMigration {
                name: "m0005_outbox_leases",
                sql: leases,
            }),
        ]
    }

    fn migration_table_name() -> DynIden {
        Alias::new("review_migrations").into_iden()
    }
}

/// Triggers that make `review_audit` append-only. Trigger syntax differs between the backends
/// (and PL/pgSQL bodies contain `;`), so this one is not a [`SqlMigration`].
pub struct AppendOnlyAudit;

impl MigrationName for AppendOnlyAudit {
    fn name(&self) -> &str {
        "m0002_audit_append_only"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for AppendOnlyAudit {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let conn = manager.get_connection();
        let statements: &[&str] = match manager.get_database_backend() {
            DbBackend::Postgres => &[
                "CREATE FUNCTION review_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS \
                 $$ BEGIN RAISE EXCEPTION 'review_audit is append-only'; END $$",
                "CREATE TRIGGER review_audit_append_only BEFORE UPDATE OR DELETE ON review_audit \
                 FOR EACH ROW EXECUTE FUNCTION review_audit_append_only()",
            ],
            _ => &[
                "CREATE TRIGGER review_audit_no_update BEFORE UPDATE ON review_audit \
                 BEGIN SELECT RAISE(ABORT, 'review_audit is append-only'); END",
                "CREATE TRIGGER review_audit_no_delete BEFORE DELETE ON review_audit \
                 BEGIN SELECT RAISE(ABORT, 'review_audit is append-only'); END",
            ],
        };
        for statement in statements {
            conn.execute_unprepared(statement).await?;
        }
        Ok(())
    }
}

/// The table of match keys, filled in for the tasks that already exist.
pub struct DuplicateKeys;

impl MigrationName for DuplicateKeys {
    fn name(&self) -> &str {
        "m0003_duplicate_keys"
    }
}

/// Tasks read per round while filling in the keys.
const BACKFILL_BATCH: u64 = 500;

#[async_trait::async_trait]
impl MigrationTrait for DuplicateKeys {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

        use crate::store::task;

        let conn = manager.get_connection();
        for statement in [
            "CREATE TABLE review_task_keys (
                task_id     VARCHAR(36) NOT NULL,
                kind        VARCHAR(16) NOT NULL,
                match_key   VARCHAR(320) NOT NULL,
                account_id  VARCHAR(64) NOT NULL,
                name_norm   TEXT,
                PRIMARY KEY (task_id, kind, match_key)
            )",
            "CREATE INDEX review_task_keys_lookup ON review_task_keys (kind, match_key, task_id)",
        ] {
            conn.execute_unprepared(statement).await?;
        }
        // Only the columns the keys come from: never the logo bytes.
        let mut after = String::new();
        loop {
            let rows: Vec<(String, String, String, Vec<u8>)> = task::Entity::find()
                .select_only()
                .column(task::Column::TaskId)
                .column(task::Column::AccountId)
                .column(task::Column::CompanyName)
                .column(task::Column::Profile)
                .filter(task::Column::TaskId.gt(after.clone()))
                .order_by_asc(task::Column::TaskId)
                .limit(BACKFILL_BATCH)
                .into_tuple()
                .all(conn)
                .await?;
            let Some(last) = rows.last() else { break };
            after = last.0.clone();
            for (task_id, account_id, company_name, profile) in &rows {
                crate::signals::write_keys(conn, task_id, account_id, company_name, profile)
                    .await?;
            }
        }
        Ok(())
    }
}
