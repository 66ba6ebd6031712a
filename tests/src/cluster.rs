//! Service replicas as real processes, for fault tests that pause, kill and restart them: each
//! [`Replica`] is one child (`koogallery-registration`, say; the test passes the binary, since
//! only the crate that owns it knows its path) on a fixed port that survives restarts, with its
//! output in `/tmp/kg-test-replica-XXXXXX/replica.log`. Plus the database probes such tests
//! need: the transaction counter of a database and the state of an outbox table.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use sea_orm::{ConnectionTrait as _, DatabaseConnection, DbBackend, Statement};
use tempfile::TempDir;
use tokio::process::{Child, Command};
use tokio::time::Instant;
use tonic_health::pb::health_check_response::ServingStatus;

use crate::{free_port, log_tail, mesh};

const START_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs `bin migrate` against `database_url` (before the replicas start, so they do not race
/// to create the schema).
pub async fn migrate(bin: &Path, database_url: &str) -> anyhow::Result<()> {
    let status = Command::new(bin)
        .arg("migrate")
        .env("KG_DATABASE_URL", database_url)
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .status()
        .await
        .with_context(|| format!("running {} migrate", bin.display()))?;
    if !status.success() {
        bail!("{} migrate failed ({status})", bin.display());
    }
    Ok(())
}

/// One service process on `127.0.0.1:<port>`, configured by environment variables
/// (`KG_LISTEN_ADDR` is set from the port). Spawned with `kill_on_drop` and
/// `PR_SET_PDEATHSIG` (see the crate docs: start and restart it from the test's own thread).
pub struct Replica {
    bin: PathBuf,
    env: Vec<(String, String)>,
    port: u16,
    child: Option<Child>,
    dir: TempDir,
}

impl Replica {
    /// Starts `bin` with `env` on a free port and waits (at most 30 s) until it is SERVING.
    pub async fn start(bin: impl Into<PathBuf>, env: &[(&str, String)]) -> anyhow::Result<Self> {
        let mut replica = Self {
            bin: bin.into(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            port: free_port(),
            child: None,
            dir: crate::test_tempdir("replica")?,
        };
        replica.spawn().await?;
        Ok(replica)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// stdout and stderr of every run of this replica.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("replica.log")
    }

    /// Freezes the process (SIGSTOP): its connections stay open, its transactions and locks
    /// stay held, nothing is answered.
    pub fn pause(&self) -> anyhow::Result<()> {
        let pid = self
            .pid()
            .ok_or_else(|| anyhow!("replica is not running"))?;
        crate::send_signal(pid, libc::SIGSTOP, false).context("SIGSTOP replica")
    }

    /// Thaws a paused process (SIGCONT).
    pub fn resume(&self) -> anyhow::Result<()> {
        let pid = self
            .pid()
            .ok_or_else(|| anyhow!("replica is not running"))?;
        crate::send_signal(pid, libc::SIGCONT, false).context("SIGCONT replica")
    }

    /// Crashes the process (SIGKILL) and reaps it. No-op when it is not running.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            crate::kill_now(&mut child, false)
                .await
                .context("killing replica")?;
        }
        Ok(())
    }

    /// Stops the process (SIGTERM, SIGKILL after 10 s) and reaps it.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            crate::terminate(&mut child, libc::SIGTERM, false, STOP_TIMEOUT)
                .await
                .context("stopping replica")?;
        }
        Ok(())
    }

    /// Starts the process again (killing it first if it runs) with the same environment on the
    /// same port, and waits until it is SERVING.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.kill().await?;
        self.spawn().await
    }

    async fn spawn(&mut self) -> anyhow::Result<()> {
        let log = self.log_path();
        let deadline = Instant::now() + START_TIMEOUT;
        // A restart may find the port still held for a moment by the previous run.
        loop {
            let (out, err) = crate::open_log(&log, &format!("replica on port {}", self.port))?;
            let mut cmd = Command::new(&self.bin);
            cmd.envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .env("KG_LISTEN_ADDR", format!("127.0.0.1:{}", self.port))
                .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
                // names the folder on the command line, so the stale-folder cleanup finds it
                .arg("--data-dir")
                .arg(self.dir.path())
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                .kill_on_drop(true);
            crate::die_with_parent(&mut cmd);
            let child = cmd
                .spawn()
                .with_context(|| format!("spawning {}", self.bin.display()))?;
            crate::write_child_pid(self.dir.path(), &child);
            self.child = Some(child);
            match self.wait_serving(deadline).await {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() < deadline && self.child.is_none() => {
                    tracing::debug!("replica on port {} retried: {e:#}", self.port);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => {
                    self.kill().await.ok();
                    return Err(e);
                }
            }
        }
    }

    /// Waits until the health service says SERVING; clears `child` when the process exited.
    async fn wait_serving(&mut self, deadline: Instant) -> anyhow::Result<()> {
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                bail!(
                    "replica on port {} exited ({status})\n{}",
                    self.port,
                    log_tail(&self.log_path(), 30)
                );
            }
            if let Ok(ServingStatus::Serving) = mesh::health(&self.url(), "").await {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "replica on port {} not SERVING within {START_TIMEOUT:?}\n{}",
                    self.port,
                    log_tail(&self.log_path(), 30)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        // kill_on_drop kills it; a paused process must not be left stopped if that ever fails
        if let Some(pid) = self.pid() {
            let _ = crate::send_signal(pid, libc::SIGCONT, false);
        }
    }
}

async fn one_i64(db: &DatabaseConnection, sql: &str) -> anyhow::Result<Vec<i64>> {
    let row = db
        .query_one_raw(Statement::from_string(DbBackend::Postgres, sql))
        .await?
        .ok_or_else(|| anyhow!("no row from {sql}"))?;
    let mut values = Vec::new();
    for i in 0.. {
        match row.try_get_by_index::<i64>(i) {
            Ok(v) => values.push(v),
            Err(_) => break,
        }
    }
    Ok(values)
}

/// Transactions committed and rolled back in the connection's database so far, as PostgreSQL's
/// statistics count them (they lag by up to a second: measure over several seconds).
pub async fn transactions(db: &DatabaseConnection) -> anyhow::Result<i64> {
    // each statement runs in its own transaction, so it reads a fresh statistics snapshot
    let v = one_i64(
        db,
        "SELECT (xact_commit + xact_rollback)::bigint FROM pg_stat_database \
         WHERE datname = current_database()",
    )
    .await?;
    v.first()
        .copied()
        .ok_or_else(|| anyhow!("no transaction count"))
}

/// A session inside a transaction, as PostgreSQL sees it.
#[derive(Debug, Clone)]
pub struct OpenTransaction {
    /// State, age and last statement.
    pub summary: String,
    /// It has written (a transaction id is assigned).
    pub wrote: bool,
    /// Granted locks that can hold back other writers: advisory locks and table locks stronger
    /// than ROW EXCLUSIVE (empty when none).
    pub exclusive_locks: String,
}

/// Sessions of the connection's database, other than the caller's, inside a transaction.
pub async fn open_transactions(db: &DatabaseConnection) -> anyhow::Result<Vec<OpenTransaction>> {
    let rows = db
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT a.state || ' for ' || (now() - a.xact_start)::text || ': ' \
                    || left(a.query, 160), \
                    a.backend_xid IS NOT NULL, \
                    coalesce(string_agg(l.locktype || ' ' || l.mode \
                        || coalesce(' ' || l.relation::regclass::text, ''), ', '), '') \
             FROM pg_stat_activity a \
             LEFT JOIN pg_locks l ON l.pid = a.pid AND l.granted \
                  AND (l.locktype = 'advisory' OR (l.locktype = 'relation' AND l.mode NOT IN \
                       ('AccessShareLock', 'RowShareLock', 'RowExclusiveLock'))) \
             WHERE a.datname = current_database() AND a.pid <> pg_backend_pid() \
               AND a.xact_start IS NOT NULL \
             GROUP BY a.pid, a.state, a.xact_start, a.query, a.backend_xid",
        ))
        .await?;
    rows.iter()
        .map(|r| {
            Ok(OpenTransaction {
                summary: r.try_get_by_index(0)?,
                wrote: r.try_get_by_index(1)?,
                exclusive_locks: r.try_get_by_index(2)?,
            })
        })
        .collect()
}

/// Sessions of the connection's database waiting for a lock.
pub async fn lock_waiters(db: &DatabaseConnection) -> anyhow::Result<i64> {
    let v = one_i64(
        db,
        "SELECT count(*)::bigint FROM pg_stat_activity \
         WHERE datname = current_database() AND wait_event_type = 'Lock'",
    )
    .await?;
    Ok(v.first().copied().unwrap_or(0))
}

/// The rows of an outbox table (see kg_runtime::outbox) by fate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OutboxState {
    pub total: i64,
    pub delivered: i64,
    /// Neither delivered nor dead: still to be tried.
    pub pending: i64,
    /// Set aside as dead letters.
    pub dead: i64,
}

impl OutboxState {
    /// Everything delivered, nothing left, nothing dead.
    pub fn drained(&self) -> bool {
        self.pending == 0 && self.dead == 0 && self.delivered == self.total
    }
}

pub async fn outbox_state(db: &DatabaseConnection, table: &str) -> anyhow::Result<OutboxState> {
    let v = one_i64(
        db,
        &format!(
            "SELECT count(*)::bigint, \
             count(*) FILTER (WHERE delivered_time IS NOT NULL)::bigint, \
             count(*) FILTER (WHERE delivered_time IS NULL AND dead_time IS NULL)::bigint, \
             count(*) FILTER (WHERE dead_time IS NOT NULL)::bigint \
             FROM {table}"
        ),
    )
    .await?;
    match v[..] {
        [total, delivered, pending, dead] => Ok(OutboxState {
            total,
            delivered,
            pending,
            dead,
        }),
        _ => bail!("unexpected outbox row: {v:?}"),
    }
}

/// review in this process on a fixed address (one the replicas were told about before it runs).
pub async fn start_review_at(
    addr: std::net::SocketAddr,
    config: kg_review::Config,
) -> anyhow::Result<mesh::Running> {
    mesh::Running::start(addr, move |l, s| kg_review::run(config, l, s)).await
}

/// notification in this process on a fixed address.
pub async fn start_notification_at(
    addr: std::net::SocketAddr,
    config: kg_notification::Config,
) -> anyhow::Result<mesh::Running> {
    mesh::Running::start(addr, move |l, s| kg_notification::run(config, l, s)).await
}
