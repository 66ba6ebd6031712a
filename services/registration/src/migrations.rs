//! registration's own tables. Nested messages (profile, agreement, evidence, feedback) are stored
//! as protobuf bytes: the contract's own schema, which evolves compatibly.
//!
//! The partial unique indexes are the final fence of "one company entity registers once": an
//! entity key (country + normalized number) and an account appear at most once among applications
//! that are pending or approved. Rejected and withdrawn applications fall out of the index, which
//! frees the entity; approved ones never do (an exited seller keeps its application APPROVED).

use kg_runtime::db::SqlMigration;
use sea_orm::DynIden;
use sea_orm::sea_query::{Alias, IntoIden};
use sea_orm_migration::{MigrationTrait, MigratorTrait};

pub const OUTBOX: &str = "registration_outbox";
pub const EVENTS: &str = "registration_events";

pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        let outbox: &'static str =
            Box::leak(kg_runtime::outbox::table_sql(OUTBOX).into_boxed_str());
        let dead_letters: &'static str =
            Box::leak(kg_runtime::outbox::dead_letter_sql(OUTBOX).into_boxed_str());
        let outbox_leases: &'static str =
            Box::leak(kg_runtime::outbox::lease_sql(OUTBOX).into_boxed_str());
        vec![
            Box::new(SqlMigration {
                name: "m0001_applications",
                sql: r#"
CREATE TABLE registration_applications (
    application_id      VARCHAR(36) PRIMARY KEY,
    account_id          VARCHAR(64) NOT NULL,
    company_name        VARCHAR(256) NOT NULL,
    country             VARCHAR(2) NOT NULL,
    registration_number VARCHAR(64) NOT NULL,
    entity_key          VARCHAR(80) NOT NULL,
    state               VARCHAR(24) NOT NULL,
    profile             {blob} NOT NULL,
    logo                {blob},
    agreement           {blob} NOT NULL,
    evidence            {blob},
    feedback            {blob},
    withdraw_reason     TEXT,
    seller_id           VARCHAR(36),
    create_time         {ts} NOT NULL,
    update_time         {ts} NOT NULL,
    decide_time         {ts},
    review_deadline     {ts},
    review_task         VARCHAR(64)
);
CREATE UNIQUE INDEX registration_applications_entity_once
    ON registration_applications (entity_key)
    WHERE state IN ('SUBMITTED', 'IN_REVIEW', 'CHANGES_REQUESTED', 'APPROVED');
CREATE UNIQUE INDEX registration_applications_account_once
    ON registration_applications (account_id)
    WHERE state IN ('SUBMITTED', 'IN_REVIEW', 'CHANGES_REQUESTED', 'APPROVED');
CREATE INDEX registration_applications_by_account ON registration_applications (account_id, create_time);
CREATE INDEX registration_applications_by_entity ON registration_applications (entity_key);
CREATE TABLE registration_sellers (
    seller_id           VARCHAR(36) PRIMARY KEY,
    account_id          VARCHAR(64) NOT NULL UNIQUE,
    application_id      VARCHAR(36) NOT NULL,
    entity_key          VARCHAR(80) NOT NULL UNIQUE,
    company_name        VARCHAR(256) NOT NULL,
    state               VARCHAR(16) NOT NULL,
    profile             {blob} NOT NULL,
    logo                {blob},
    create_time         {ts} NOT NULL,
    update_time         {ts} NOT NULL,
    exit_time           {ts}
);
CREATE TABLE registration_requests (
    request_id          VARCHAR(64) PRIMARY KEY,
    rpc                 VARCHAR(48) NOT NULL,
    body_sha256         VARCHAR(64) NOT NULL,
    resource            VARCHAR(128) NOT NULL,
    create_time         {ts} NOT NULL
)
"#,
            }),
            Box::new(SqlMigration {
                name: "m0002_outbox",
                sql: outbox,
            }),
            // Modification requests: at most one PENDING_REVIEW per seller (the partial unique
            // index is the fence behind the check in the transaction). Name history keeps every
            // company name of a seller, oldest first.
            Box::new(SqlMigration {
                name: "m0003_modifications",
                sql: r#"
CREATE TABLE registration_modifications (
    modification_id       VARCHAR(36) PRIMARY KEY,
    seller_id             VARCHAR(36) NOT NULL,
    account_id            VARCHAR(64) NOT NULL,
    kind                  VARCHAR(24) NOT NULL,
    state                 VARCHAR(24) NOT NULL,
    changes               TEXT NOT NULL,
    proposed_profile      {blob},
    proposed_logo         {blob},
    proposed_company_name VARCHAR(256),
    previous_company_name VARCHAR(256) NOT NULL,
    evidence              {blob},
    feedback              {blob},
    withdraw_reason       TEXT,
    create_time           {ts} NOT NULL,
    update_time           {ts} NOT NULL,
    decide_time           {ts},
    review_deadline       {ts},
    review_task           VARCHAR(64)
);
CREATE UNIQUE INDEX registration_modifications_one_open
    ON registration_modifications (seller_id)
    WHERE state = 'PENDING_REVIEW';
CREATE INDEX registration_modifications_by_seller
    ON registration_modifications (seller_id, create_time);
CREATE INDEX registration_modifications_by_account
    ON registration_modifications (account_id, create_time);
CREATE TABLE registration_name_history (
    seller_id             VARCHAR(36) NOT NULL,
    seq                   INTEGER NOT NULL,
    company_name          VARCHAR(256) NOT NULL,
    change_time           {ts} NOT NULL,
    modification_id       VARCHAR(36),
    PRIMARY KEY (seller_id, seq)
);
ALTER TABLE registration_sellers ADD COLUMN exit_reason TEXT;
ALTER TABLE registration_sellers ADD COLUMN exited_by VARCHAR(128)
"#,
            }),
            // The WatchEvents log: append-only, one row per state change, written in the
            // change's own transaction (events.rs). `seq` is the stream position.
            Box::new(SqlMigration {
                name: "m0004_events",
                sql: r#"
CREATE TABLE registration_events (
    seq                  {bigserial},
    event_id             VARCHAR(36) NOT NULL UNIQUE,
    event_type           VARCHAR(48) NOT NULL,
    account_id           VARCHAR(64) NOT NULL,
    application          VARCHAR(128) NOT NULL,
    seller               VARCHAR(128) NOT NULL,
    modification_request VARCHAR(192) NOT NULL,
    actor                VARCHAR(128) NOT NULL,
    event_time           {ts} NOT NULL,
    snapshot             {blob}
);
CREATE INDEX registration_events_by_time ON registration_events (event_time);
CREATE INDEX registration_events_by_account ON registration_events (account_id, seq)
"#,
            }),
            // Events a receiver refuses for good are set aside instead of retried for ever.
            Box::new(SqlMigration {
                name: "m0005_outbox_dead_letters",
                sql: dead_letters,
            }),
            // Stream positions given after commit (events.rs): no lock across writers. Rows
            // written before this migration keep their insert order as their position.
            Box::new(SqlMigration {
                name: "m0006_event_positions",
                sql: r#"
ALTER TABLE registration_events ADD COLUMN pos BIGINT;
UPDATE registration_events SET pos = seq;
CREATE UNIQUE INDEX registration_events_by_pos ON registration_events (pos);
CREATE INDEX registration_events_unsequenced ON registration_events (seq) WHERE pos IS NULL
"#,
            }),
            // Relays lease the events they deliver, so one replica delivers an event at a time.
            Box::new(SqlMigration {
                name: "m0007_outbox_leases",
                sql: outbox_leases,
            }),
            // Contact reachability (contacts/): one row per address an account gave, the
            // permanent failures reported for it (report_id deduplicates), and per account
            // whether it is marked unreachable. The reachability row is also the per-account
            // lock that serializes reports and verifications (see contacts/store.rs).
            Box::new(SqlMigration {
                name: "m0008_contacts",
                sql: r#"
CREATE TABLE registration_contacts (
    contact_id          VARCHAR(36) PRIMARY KEY,
    account_id          VARCHAR(64) NOT NULL,
    email               VARCHAR(320) NOT NULL,
    state               VARCHAR(16) NOT NULL,
    code_sha256         VARCHAR(64),
    code_expire_time    {ts},
    code_sent_time      {ts},
    code_attempts       INTEGER NOT NULL DEFAULT 0,
    verify_time         {ts},
    failure_count       INTEGER NOT NULL DEFAULT 0,
    last_failure        TEXT,
    last_failure_source VARCHAR(16),
    last_failure_time   {ts},
    create_time         {ts} NOT NULL,
    update_time         {ts} NOT NULL
);
CREATE UNIQUE INDEX registration_contacts_by_address ON registration_contacts (account_id, email);
CREATE TABLE registration_contact_failures (
    report_id    VARCHAR(64) PRIMARY KEY,
    account_id   VARCHAR(64) NOT NULL,
    contact_id   VARCHAR(36) NOT NULL,
    source       VARCHAR(16) NOT NULL,
    failure_time {ts} NOT NULL
);
CREATE INDEX registration_contact_failures_by_account
    ON registration_contact_failures (account_id, failure_time);
CREATE TABLE registration_reachability (
    account_id       VARCHAR(64) PRIMARY KEY,
    unreachable_time {ts},
    clear_time       {ts}
)
"#,
            }),
        ]
    }

    fn migration_table_name() -> DynIden {
        Alias::new("registration_migrations").into_iden()
    }
}
