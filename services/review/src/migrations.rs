//! review's own tables.

use kg_runtime::db::SqlMigration;
use sea_orm::DynIden;
use sea_orm::sea_query::{Alias, IntoIden};
use sea_orm_migration::{MigrationTrait, MigratorTrait};

pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(SqlMigration {
            name: "m0001_review",
            sql: r#"
CREATE TABLE review_tasks (
    task_id         VARCHAR(36) PRIMARY KEY,
    subject         VARCHAR(128) NOT NULL UNIQUE,
    subject_kind    VARCHAR(32) NOT NULL,
    account_id      VARCHAR(64) NOT NULL,
    company_name    VARCHAR(256) NOT NULL,
    state           VARCHAR(32) NOT NULL,
    assignee        VARCHAR(128),
    submit_time     {ts} NOT NULL,
    deadline        {ts} NOT NULL,
    evidence        {blob},
    create_time     {ts} NOT NULL,
    update_time     {ts} NOT NULL
);
CREATE INDEX review_tasks_queue ON review_tasks (state, deadline);
CREATE TABLE review_audit (
    seq             {bigserial},
    task_id         VARCHAR(36) NOT NULL,
    actor           VARCHAR(128) NOT NULL,
    actor_role      VARCHAR(32) NOT NULL,
    action          VARCHAR(32) NOT NULL,
    before_state    VARCHAR(32),
    after_state     VARCHAR(32),
    comment         TEXT,
    action_time     {ts} NOT NULL
);
CREATE TABLE review_inbox (
    event_id        VARCHAR(36) PRIMARY KEY,
    receive_time    {ts} NOT NULL
)
"#,
        })]
    }

    fn migration_table_name() -> DynIden {
        Alias::new("review_migrations").into_iden()
    }
}
