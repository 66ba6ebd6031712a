//! identity-check's own tables.

use kg_runtime::db::SqlMigration;
use sea_orm::DynIden;
use sea_orm::sea_query::{Alias, IntoIden};
use sea_orm_migration::{MigrationTrait, MigratorTrait};

pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(SqlMigration {
            name: "m0001_accounts_and_checks",
            sql: r#"
CREATE TABLE identity_accounts (
    account_id              VARCHAR(64) PRIMARY KEY,
    verification_type       VARCHAR(16) NOT NULL,
    verified_enterprise_name VARCHAR(256) NOT NULL DEFAULT '',
    registered_address      {json},
    cloud_services_enabled  BOOLEAN NOT NULL,
    csp_program_member      BOOLEAN NOT NULL,
    distribution_partner    BOOLEAN NOT NULL,
    iam_sub_user            BOOLEAN NOT NULL,
    parent_account_id       VARCHAR(64),
    partner_administrator   BOOLEAN NOT NULL,
    email                   VARCHAR(254) NOT NULL DEFAULT '',
    mobile                  VARCHAR(16),
    locale                  VARCHAR(16) NOT NULL DEFAULT 'en',
    verified_country        VARCHAR(2),
    verified_registration_number VARCHAR(64),
    create_time             {ts} NOT NULL,
    update_time             {ts} NOT NULL
);
CREATE TABLE identity_check_results (
    id          VARCHAR(36) PRIMARY KEY,
    kind        VARCHAR(32) NOT NULL,
    subject     VARCHAR(2048) NOT NULL,
    passed      BOOLEAN NOT NULL,
    findings    {json} NOT NULL,
    evidence    {json} NOT NULL,
    check_time  {ts} NOT NULL
);
CREATE INDEX identity_check_results_subject ON identity_check_results (kind, subject)
"#,
        })]
    }

    fn migration_table_name() -> DynIden {
        Alias::new("identity_migrations").into_iden()
    }
}
