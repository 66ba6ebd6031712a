//! Database connection and migrations, the same code on PostgreSQL and SQLite.
//!
//! Migrations are plain SQL written once for both backends; the few type names that differ are
//! written as placeholders (`{ts}`, `{blob}`, `{json}`, `{bigserial}`) and substituted here.

use std::time::Duration;

use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr, SqlErr,
};
use sea_orm_migration::{MigrationName, MigrationTrait, SchemaManager};

use crate::health::{PROBE_TIMEOUT, Probe};

/// Server-side bounds on what one pooled connection may hold. Zero switches a bound off.
///
/// On PostgreSQL they are session settings sent in the start-up packet of every connection
/// (`options=-c …`, no extra round trip), so they hold for every statement on the pool:
/// `statement_timeout` cancels a runaway statement, `lock_timeout` fails a statement that
/// waits too long for a row or table lock, and `idle_in_transaction_session_timeout` ends the
/// session of a client that opened a transaction and stopped talking (a replica paused or
/// partitioned mid-transaction), so its locks are released instead of held for ever. On SQLite
/// `lock` is the busy timeout and the others do not apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DbTimeouts {
    pub statement: Duration,
    pub lock: Duration,
    pub idle_in_transaction: Duration,
}

/// The defaults of [`DbTimeouts`] (and of the KG_DB_*_TIMEOUT_MS flags, which
/// [`crate::config`] re-exports), in milliseconds.
pub const DEFAULT_DB_STATEMENT_TIMEOUT_MS: u64 = 10_000;
pub const DEFAULT_DB_LOCK_TIMEOUT_MS: u64 = 5_000;
pub const DEFAULT_DB_IDLE_IN_TRANSACTION_TIMEOUT_MS: u64 = 5_000;

impl Default for DbTimeouts {
    fn default() -> Self {
        Self {
            statement: Duration::from_millis(DEFAULT_DB_STATEMENT_TIMEOUT_MS),
            lock: Duration::from_millis(DEFAULT_DB_LOCK_TIMEOUT_MS),
            idle_in_transaction: Duration::from_millis(DEFAULT_DB_IDLE_IN_TRANSACTION_TIMEOUT_MS),
        }
    }
}

impl DbTimeouts {
    /// The PostgreSQL session settings, in milliseconds (`0` = off, as PostgreSQL reads it).
    pub fn postgres_settings(&self) -> [(&'static str, String); 3] {
        [
            ("statement_timeout", self.statement.as_millis().to_string()),
            ("lock_timeout", self.lock.as_millis().to_string()),
            (
                "idle_in_transaction_session_timeout",
                self.idle_in_transaction.as_millis().to_string(),
            ),
        ]
    }
}

/// Connects with a pool sized for a small service and the default [`DbTimeouts`]. A SQLite
/// file's folder is created first.
pub async fn connect(url: &str) -> Result<DatabaseConnection, DbErr> {
    connect_with(url, &DbTimeouts::default()).await
}

/// [`connect`] with the given timeouts (a service passes `CommonConfig::db_timeouts()`).
pub async fn connect_with(url: &str, timeouts: &DbTimeouts) -> Result<DatabaseConnection, DbErr> {
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
    // Appended after any `options` of the URL: PostgreSQL applies `-c` settings in order, so
    // the configured values win.
    let settings = timeouts.postgres_settings();
    options.map_sqlx_postgres_opts(move |pg| pg.options(settings.clone()));
    // SQLite waits this long for another process's write lock (0: keep the driver's 5 s).
    if !timeouts.lock.is_zero() {
        let busy = timeouts.lock;
        options.map_sqlx_sqlite_opts(move |sqlite| sqlite.busy_timeout(busy));
    }
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

/// Answers when the database answers a trivial query within [`PROBE_TIMEOUT`].
pub async fn ping(db: &DatabaseConnection) -> bool {
    tokio::time::timeout(PROBE_TIMEOUT, db.execute_unprepared("SELECT 1"))
        .await
        .is_ok_and(|r| r.is_ok())
}

impl Probe {
    /// The database's health probe: [`ping`].
    pub fn database(db: DatabaseConnection) -> Self {
        Self::new("database", move || {
            let db = db.clone();
            async move { ping(&db).await }
        })
    }
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
    fn postgres_settings_are_milliseconds() {
        let timeouts = DbTimeouts {
            statement: Duration::from_secs(10),
            lock: Duration::from_millis(1500),
            idle_in_transaction: Duration::ZERO,
        };
        let settings = timeouts.postgres_settings();
        assert_eq!(settings[0], ("statement_timeout", "10000".to_string()));
        assert_eq!(settings[1], ("lock_timeout", "1500".to_string()));
        assert_eq!(
            settings[2],
            ("idle_in_transaction_session_timeout", "0".to_string())
        );
    }

    #[test]
    fn placeholders_follow_the_backend() {
        let sql = "CREATE TABLE t (id {bigserial}, at {ts}, raw {blob})";
        assert!(render(sql, DbBackend::Postgres).contains("TIMESTAMPTZ"));
        assert!(render(sql, DbBackend::Sqlite).contains("AUTOINCREMENT"));
    }
}
