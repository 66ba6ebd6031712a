//! notification's own tables.

use kg_runtime::db::SqlMigration;
use sea_orm::DynIden;
use sea_orm::sea_query::{Alias, IntoIden};
use sea_orm_migration::{MigrationTrait, MigratorTrait};

pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(SqlMigration {
            name: "m0001_notification",
            sql: r#"
CREATE TABLE notification_deliveries (
    delivery_id     VARCHAR(36) PRIMARY KEY,
    event_id        VARCHAR(64) NOT NULL,
    channel         VARCHAR(8) NOT NULL,
    account_id      VARCHAR(64) NOT NULL,
    recipient       VARCHAR(254) NOT NULL,
    template        VARCHAR(64) NOT NULL,
    status          VARCHAR(16) NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    next_attempt_time {ts},
    sent_time       {ts},
    create_time     {ts} NOT NULL,
    UNIQUE (event_id, channel)
)
"#,
        })]
    }

    fn migration_table_name() -> DynIden {
        Alias::new("notification_migrations").into_iden()
    }
}
