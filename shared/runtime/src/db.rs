//! Database connection and migrations, the same code on PostgreSQL and SQLite.
//!
//! Migrations are plain SQL written once for both backends; the few type names that differ are
//! written as placeholders (`{ts}`, `{blob}`, `{json}`, `{bigserial}`) and substituted here.

use std::time::Duration;

use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr, SqlErr,
};
use sea_orm_migration::{MigrationName, MigrationTrait, SchemaManager};

/// Connects with a pool sized for a small service. A SQLite file's folder is created first.
pub async fn connect(url: &str) -> Result<DatabaseConnection, DbErr> {
    if let Some(path) = sqlite_path(url)
        && let Some(parent) = std::path::Path::new(path).parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent)
            .map_err(|e| DbErr::Custom(format!("cannot create {}: {e}", parent.display())))?;
    }
    let is_sqlite = url.starts_with("sqlite:");
    let mut options = ConnectOptions::new(url.to_string());
    options
        // One SQLite connection: a deferred transaction that reads and then writes fails at once
        // (SQLITE_BUSY, no waiting) when another connection wrote in between, so writers are
        // serialized here instead. SQLite is the single-process embedded default.
        .max_connections(if is_sqlite { 1 } else { 20 })
        .min_connections(1)
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(5))
        // sqlx pings every connection it hands out by default: one more round trip per query,
        // a quarter of GetApplication's CPU in a profile (docs/performance.md). Only
        // connections idle long enough to have been dropped (a database restart, a proxy) are
        // pinged; a broken busy connection fails its query and is discarded.
        .test_before_acquire_if_idle_for(Duration::from_secs(5))
        .sqlx_logging(false);
    let db = Database::connect(options).await?;
    if is_sqlite {
        // WAL lets readers run beside the single writer; the setting is stored in the file.
        db.execute_unprepared("PRAGMA journal_mode=WAL").await?;
    }
    Ok(db)
}

fn sqlite_path(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next()?;
    (!path.is_empty() && path != ":memory:").then_some(path)
}

/// The current time at the precision every backend stores (microseconds), so a value returned
/// from memory equals the same value read back later.
pub fn now() -> chrono::DateTime<chrono::Utc> {
    use chrono::SubsecRound;
    chrono::Utc::now().trunc_subsecs(6)
}

/// True when the error is a unique-index violation: the final fence against duplicates.
pub fn is_unique_violation(err: &DbErr) -> bool {
    matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_)))
}

/// Answers when the database answers a trivial query.
pub async fn ping(db: &DatabaseConnection) -> bool {
    tokio::time::timeout(Duration::from_secs(2), db.execute_unprepared("SELECT 1"))
        .await
        .is_ok_and(|r| r.is_ok())
}

/// One forward migration: SQL statements separated by `;`, placeholders substituted per backend.
pub struct SqlMigration {
    pub name: &'static str,
    pub sql: &'static str,
}

impl MigrationName for SqlMigration {
    fn name(&self) -> &str {
        self.name
    }
}

#[async_trait::async_trait]
impl MigrationTrait for SqlMigration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        let conn = manager.get_connection();
        for statement in render(self.sql, backend).split(';') {
            if statement.trim().is_empty() {
                continue;
            }
            conn.execute_unprepared(statement).await?;
        }
        Ok(())
    }
}

/// Substitutes the backend-specific type names.
pub fn render(sql: &str, backend: DbBackend) -> String {
    let (ts, blob, json, bigserial) = match backend {
        DbBackend::Postgres => ("TIMESTAMPTZ", "BYTEA", "JSONB", "BIGSERIAL PRIMARY KEY"),
        _ => ("TEXT", "BLOB", "TEXT", "INTEGER PRIMARY KEY AUTOINCREMENT"),
    };
    sql.replace("{ts}", ts)
        .replace("{blob}", blob)
        .replace("{json}", json)
        .replace("{bigserial}", bigserial)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_paths_are_found() {
        assert_eq!(
            sqlite_path("sqlite://data/reg.db?mode=rwc"),
            Some("data/reg.db")
        );
        assert_eq!(sqlite_path("sqlite::memory:"), None);
        assert_eq!(sqlite_path("postgres://x@y/z"), None);
    }

    #[test]
    fn placeholders_follow_the_backend() {
        let sql = "CREATE TABLE t (id {bigserial}, at {ts}, raw {blob})";
        assert!(render(sql, DbBackend::Postgres).contains("TIMESTAMPTZ"));
        assert!(render(sql, DbBackend::Sqlite).contains("AUTOINCREMENT"));
    }
}
