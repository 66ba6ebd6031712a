//! A real PostgreSQL server for tests: one per test that needs to kill or restart it, or one
//! shared instance per test binary ([`shared_postgres`]) with a fresh database per test.

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use sea_orm::{ConnectOptions, ConnectionTrait as _, Database, DatabaseConnection};
use tempfile::TempDir;
use tokio::process::{Child, Command};
use tokio::sync::OnceCell;
use tokio::time::Instant;

use crate::{LogMark, SpawnFailure, free_port, log_tail};

const START_TIMEOUT: Duration = Duration::from_secs(30);
const INITDB_TIMEOUT: Duration = Duration::from_secs(120);
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// What the server log says when a start attempt may succeed if tried again (port taken by
/// someone else, or the previous instance of this data folder still winding down).
const RETRYABLE: &[&str] = &[
    "Address already in use",
    "could not create any TCP/IP sockets",
    "lock file \"postmaster.pid\" already exists",
    "pre-existing shared memory block",
];

/// A PostgreSQL server (`postgres` run directly, not through `pg_ctl`) on
/// `127.0.0.1:<port>`, with trust authentication for the `postgres` role, `fsync=off`,
/// `full_page_writes=off` and `max_connections=300`. `synchronous_commit` stays on, so a
/// commit the server acknowledged survives [`kill`](Self::kill) (not an OS crash). Its data folder is `/tmp/kg-test-pg-XXXXXX/data`; the server log is
/// `postgres.log` beside it.
///
/// Binaries: `$KG_PG_BIN` when set, else the highest `/usr/lib/postgresql/<version>/bin`, else
/// the folder of `initdb` on `PATH`. As root, `initdb` and `postgres` run as the `postgres`
/// OS user (PostgreSQL refuses root) and the folder is handed to that user; otherwise they run
/// as the current user.
///
/// The server runs in its own process group: [`kill`](Self::kill) SIGKILLs the postmaster and
/// all its backends at once, like a crashed container. Dropping the value stops the server
/// (fast shutdown, SIGKILL after 10 s) and removes the folder.
pub struct PostgresServer {
    port: u16,
    child: Option<Child>,
    dir: TempDir,
    bin: PathBuf,
    run_as: Option<(u32, u32)>,
}

impl std::fmt::Debug for PostgresServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresServer")
            .field("port", &self.port)
            .field("pid", &self.pid())
            .field("dir", &self.dir.path())
            .field("bin", &self.bin)
            .finish()
    }
}

/// The folder with `initdb` and `postgres`.
pub fn pg_bin_dir() -> anyhow::Result<PathBuf> {
    if let Ok(dir) = std::env::var("KG_PG_BIN")
        && !dir.trim().is_empty()
    {
        return Ok(PathBuf::from(dir));
    }
    let mut best: Option<(Vec<u32>, PathBuf)> = None;
    if let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") {
        for entry in entries.flatten() {
            let bin = entry.path().join("bin");
            if !bin.join("postgres").is_file() || !bin.join("initdb").is_file() {
                continue;
            }
            let version: Vec<u32> = entry
                .file_name()
                .to_string_lossy()
                .split('.')
                .map(|part| part.parse().unwrap_or(0))
                .collect();
            if best.as_ref().is_none_or(|(v, _)| version > *v) {
                best = Some((version, bin));
            }
        }
    }
    if let Some((_, bin)) = best {
        return Ok(bin);
    }
    if let Some(initdb) = crate::which("initdb")
        && let Ok(real) = std::fs::canonicalize(initdb)
        && let Some(dir) = real.parent()
        && dir.join("postgres").is_file()
    {
        return Ok(dir.to_path_buf());
    }
    bail!(
        "PostgreSQL binaries not found: no /usr/lib/postgresql/*/bin with initdb and postgres, \
         no initdb on PATH (set KG_PG_BIN to the folder holding them)"
    )
}

/// uid and gid of an OS user.
fn lookup_user(name: &str) -> anyhow::Result<(u32, u32)> {
    let c_name = CString::new(name)?;
    // SAFETY: getpwnam_r writes into `pwd` and `buf`, which outlive the call; we only read
    // the numeric fields afterwards.
    unsafe {
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut buf = vec![0 as libc::c_char; 16 * 1024];
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwnam_r(
            c_name.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        );
        if rc != 0 || result.is_null() {
            bail!(
                "running as root, and there is no `{name}` OS user to run PostgreSQL as \
                 (PostgreSQL refuses root): create it (`useradd --system {name}`) or run \
                 the tests as an ordinary user"
            );
        }
        Ok((pwd.pw_uid, pwd.pw_gid))
    }
}

/// Removes the System V shared-memory segment named in `data/postmaster.pid` when no process
/// is attached to it any more (a PostgreSQL that was SIGKILLed leaves it behind).
pub(crate) fn release_orphaned_shmem(data_dir: &Path) {
    let Ok(text) = std::fs::read_to_string(data_dir.join("postmaster.pid")) else {
        return;
    };
    // Line 7: "<key> <shmid>"
    let Some(line) = text.lines().nth(6) else {
        return;
    };
    let mut parts = line.split_whitespace();
    let (Some(key), Some(id)) = (parts.next(), parts.next()) else {
        return;
    };
    let (Ok(key), Ok(id)) = (key.parse::<libc::key_t>(), id.parse::<libc::c_int>()) else {
        return;
    };
    for _ in 0..50 {
        // SAFETY: shmctl with IPC_STAT fills `ds`; IPC_RMID takes no buffer.
        unsafe {
            let mut ds: libc::shmid_ds = std::mem::zeroed();
            if libc::shmctl(id, libc::IPC_STAT, &mut ds) != 0 || ds.shm_perm.__key != key {
                return; // gone, or the id now names someone else's segment
            }
            if ds.shm_nattch == 0 {
                libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut());
                return;
            }
        }
        // backends of a killed postmaster may still be exiting
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn connect_options(url: String, max_connections: u32, timeout: Duration) -> ConnectOptions {
    let mut opts = ConnectOptions::new(url);
    opts.max_connections(max_connections)
        .min_connections(0)
        .connect_timeout(timeout)
        .acquire_timeout(timeout)
        .sqlx_logging(false);
    opts
}

fn valid_db_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit())
}

impl PostgresServer {
    /// Creates a cluster (`initdb`) in a fresh folder, starts `postgres` on a free port and
    /// waits (at most 30 s) until `SELECT 1` works over TCP.
    pub async fn start() -> anyhow::Result<Self> {
        let bin = pg_bin_dir()?;
        // SAFETY: geteuid has no preconditions.
        let run_as = if unsafe { libc::geteuid() } == 0 {
            Some(lookup_user("postgres")?)
        } else {
            None
        };
        let dir = crate::test_tempdir("pg")?;
        let mut server = Self {
            port: 0,
            child: None,
            dir,
            bin,
            run_as,
        };
        std::fs::create_dir(server.socket_dir()).context("creating the socket folder")?;
        if let Some((uid, gid)) = run_as {
            for path in [server.dir.path().to_path_buf(), server.socket_dir()] {
                std::os::unix::fs::chown(&path, Some(uid), Some(gid))
                    .with_context(|| format!("chown {} to postgres", path.display()))?;
            }
        }
        server.initdb().await?;

        let mut last = None;
        for _ in 0..3 {
            server.port = free_port();
            match server.spawn().await {
                Ok(()) => return Ok(server),
                Err(SpawnFailure::Retryable(e)) => last = Some(e),
                Err(SpawnFailure::Fatal(e)) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow!("postgres did not start")))
    }

    /// The TCP port (stays the same across [`restart`](Self::restart)).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://postgres@127.0.0.1:<port>/<db>`
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// The postmaster's pid (also its process group id) while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// The temporary folder (`/tmp/kg-test-pg-XXXXXX`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The cluster's data folder.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The server log (stdout and stderr of `postgres`, across restarts).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    fn socket_dir(&self) -> PathBuf {
        self.dir.path().join("sock")
    }

    /// Whether the postmaster is still running.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut().map(Child::try_wait) {
            Some(Ok(None)) => true,
            Some(_) => {
                self.child = None;
                false
            }
            None => false,
        }
    }

    /// Connects to database `db` (pool of at most 5, 5 s connect timeout, no SQL logging).
    pub async fn connect(&self, db: &str) -> anyhow::Result<DatabaseConnection> {
        Database::connect(connect_options(self.url(db), 5, Duration::from_secs(5)))
            .await
            .with_context(|| format!("connecting to {}", self.url(db)))
    }

    /// Creates database `name` (lowercase letters, digits and `_`, at most 63) and returns
    /// its URL.
    pub async fn create_database(&self, name: &str) -> anyhow::Result<String> {
        if !valid_db_name(name) {
            bail!("invalid database name {name:?}: use lowercase letters, digits and _ (max 63)");
        }
        let admin = self.connect("postgres").await?;
        let created = admin
            .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
            .await
            .with_context(|| format!("CREATE DATABASE {name} on port {}", self.port));
        let _ = admin.close().await;
        created?;
        Ok(self.url(name))
    }

    /// Creates a database with a unique name (`t_<uuid>`) and returns its URL.
    pub async fn fresh_database(&self) -> anyhow::Result<String> {
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        self.create_database(&name).await
    }

    /// Stops the server cleanly (SIGINT = fast shutdown, SIGKILL to the group after 30 s)
    /// and reaps it. No-op when it is not running.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            crate::terminate(&mut child, libc::SIGINT, true, STOP_TIMEOUT)
                .await
                .context("stopping postgres")?;
        }
        Ok(())
    }

    /// Crashes the server: SIGKILL to the postmaster and all its backends, then reaps it.
    /// No-op when it is not running.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            crate::kill_now(&mut child, true)
                .await
                .context("killing postgres")?;
        }
        Ok(())
    }

    /// Starts the server again on the same port with the same data folder (stopping it first
    /// if it runs) and waits (at most 30 s) until `SELECT 1` works. After [`kill`](Self::kill)
    /// PostgreSQL runs crash recovery; committed data is kept.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.stop().await?;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match self.spawn().await {
                Ok(()) => return Ok(()),
                Err(SpawnFailure::Retryable(e)) if Instant::now() < deadline => {
                    tracing::debug!("postgres restart on port {} retried: {e:#}", self.port);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => {
                    return Err(e
                        .into_error()
                        .context(format!("restarting postgres on port {}", self.port)));
                }
            }
        }
    }

    /// Freezes the postmaster and all backends (SIGSTOP to the group): connections stay open
    /// and nothing is answered.
    pub fn pause(&self) -> anyhow::Result<()> {
        let pid = self
            .pid()
            .ok_or_else(|| anyhow!("postgres is not running"))?;
        crate::send_signal(pid, libc::SIGSTOP, true).context("SIGSTOP postgres")
    }

    /// Thaws a paused server (SIGCONT to the group).
    pub fn resume(&self) -> anyhow::Result<()> {
        let pid = self
            .pid()
            .ok_or_else(|| anyhow!("postgres is not running"))?;
        crate::send_signal(pid, libc::SIGCONT, true).context("SIGCONT postgres")
    }

    /// A command for a PostgreSQL binary, run as the right user, in its own process group,
    /// killed on drop and with the parent thread.
    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.bin.join(program));
        cmd.current_dir(self.dir.path())
            .env("LC_ALL", "C")
            .env_remove("PGDATA")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .process_group(0);
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid).gid(gid).env("HOME", self.dir.path());
        }
        crate::die_with_parent(&mut cmd);
        cmd
    }

    async fn initdb(&self) -> anyhow::Result<()> {
        let log = self.dir.path().join("initdb.log");
        let (out, err) = crate::open_log(&log, "initdb")?;
        let mut cmd = self.command("initdb");
        cmd.arg("-D")
            .arg(self.data_dir())
            .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C"])
            .arg("--no-sync")
            .stdout(out)
            .stderr(err);
        let mut child = cmd
            .spawn()
            .with_context(|| format!("spawning {}", self.bin.join("initdb").display()))?;
        match crate::wait_exit(&mut child, INITDB_TIMEOUT).await {
            Some(status) if status.success() => Ok(()),
            Some(status) => bail!("initdb failed ({status})\n{}", log_tail(&log, 30)),
            None => {
                let _ = crate::kill_now(&mut child, true).await;
                bail!(
                    "initdb did not finish within {INITDB_TIMEOUT:?}\n{}",
                    log_tail(&log, 30)
                )
            }
        }
    }

    /// One `SELECT 1` over TCP on the `postgres` database, bounded to ~3 s.
    async fn probe(&self) -> anyhow::Result<()> {
        let attempt = async {
            let db = Database::connect(connect_options(
                self.url("postgres"),
                1,
                Duration::from_secs(2),
            ))
            .await?;
            let result = db.execute_unprepared("SELECT 1").await;
            let _ = db.close().await;
            result.map(|_| ())
        };
        tokio::time::timeout(Duration::from_secs(3), attempt)
            .await
            .map_err(|_| anyhow!("SELECT 1 timed out"))?
            .map_err(Into::into)
    }

    async fn spawn(&mut self) -> Result<(), SpawnFailure> {
        if self.child.is_some() {
            return Err(anyhow!("postgres already runs on port {}", self.port).into());
        }
        let log = self.log_path();
        let mark = LogMark::new(&log);
        let (out, err) = crate::open_log(&log, &format!("postgres on port {}", self.port))?;
        let mut cmd = self.command("postgres");
        cmd.arg("-D")
            .arg(self.data_dir())
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-k")
            .arg(self.socket_dir())
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args(["-c", "fsync=off"])
            // synchronous_commit stays on: with fsync=off a commit costs one write(2), and
            // a commit acknowledged before a SIGKILL of the server must survive it.
            .args(["-c", "full_page_writes=off"])
            .args(["-c", "max_connections=300"])
            .stdout(out)
            .stderr(err);
        let child = cmd
            .spawn()
            .with_context(|| format!("spawning {}", self.bin.join("postgres").display()))?;
        crate::write_child_pid(self.dir.path(), &child);
        self.child = Some(child);

        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let exited = match self.child.as_mut().map(Child::try_wait) {
                Some(Ok(None)) => None,
                Some(Ok(Some(status))) => Some(status.to_string()),
                Some(Err(e)) => Some(format!("wait failed: {e}")),
                None => Some("gone".to_owned()),
            };
            if let Some(status) = exited {
                self.child = None;
                let e = anyhow!(
                    "postgres exited ({status}) before accepting SELECT 1 on 127.0.0.1:{}\n{}",
                    self.port,
                    log_tail(&log, 30)
                );
                let new_output = mark.since();
                return Err(if RETRYABLE.iter().any(|p| new_output.contains(p)) {
                    SpawnFailure::Retryable(e)
                } else {
                    SpawnFailure::Fatal(e)
                });
            }
            let probe_error = match self.probe().await {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                if let Some(mut child) = self.child.take() {
                    let _ = crate::kill_now(&mut child, true).await;
                }
                return Err(anyhow!(
                    "postgres did not accept SELECT 1 on 127.0.0.1:{} within {START_TIMEOUT:?} \
                     (last error: {probe_error:#})\n{}",
                    self.port,
                    log_tail(&log, 30)
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take()
            && let Some(pid) = child.id()
        {
            let _ = crate::send_signal(pid, libc::SIGCONT, true);
            let _ = crate::send_signal(pid, libc::SIGINT, false);
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while let Ok(None) = child.try_wait() {
                if std::time::Instant::now() >= deadline {
                    let _ = crate::send_signal(pid, libc::SIGKILL, true);
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        release_orphaned_shmem(&self.data_dir());
        // `dir` (a TempDir) is removed after this.
    }
}

/// The pid and folder of the shared instance, for the exit handler.
static SHARED_EXIT: OnceLock<(u32, PathBuf)> = OnceLock::new();

extern "C" fn stop_shared_at_exit() {
    let Some((pid, dir)) = SHARED_EXIT.get() else {
        return;
    };
    let Ok(pid) = i32::try_from(*pid) else {
        return;
    };
    // SAFETY: kill/waitpid on our own child; nothing here can unwind.
    unsafe {
        libc::kill(-pid, libc::SIGCONT);
        libc::kill(pid, libc::SIGINT);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut status = 0;
        // SAFETY: as above.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r != 0 {
            break; // reaped, or not our child any more
        }
        if std::time::Instant::now() >= deadline {
            // SAFETY: as above.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    release_orphaned_shmem(&dir.join("data"));
    let _ = std::fs::remove_dir_all(dir);
}

static SHARED: OnceCell<PostgresServer> = OnceCell::const_new();

/// A PostgreSQL server shared by all tests of this test binary, started on first use.
/// Tests must not stop it: take a [`PostgresServer::fresh_database`] each and leave the
/// server alone; tests that kill or restart PostgreSQL start their own [`PostgresServer`].
///
/// It is started from a dedicated thread that lives as long as the process (so the
/// parent-death signal only fires when the test binary ends), stopped by an `atexit` handler
/// when the binary exits normally, and killed by the kernel when the binary is killed; a
/// folder left behind that way is removed by the next harness start.
pub async fn shared_postgres() -> anyhow::Result<&'static PostgresServer> {
    SHARED
        .get_or_try_init(|| async {
            let server =
                crate::start_on_keeper_thread("kg-shared-postgres", PostgresServer::start).await?;
            if let Some(pid) = server.pid() {
                let _ = SHARED_EXIT.set((pid, server.dir().to_path_buf()));
                // SAFETY: registering a plain extern "C" fn that cannot unwind.
                unsafe {
                    libc::atexit(stop_shared_at_exit);
                }
            }
            Ok(server)
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::valid_db_name;

    #[test]
    fn database_names() {
        assert!(valid_db_name("t_0123abc"));
        assert!(valid_db_name("registration"));
        assert!(!valid_db_name(""));
        assert!(!valid_db_name("1abc"));
        assert!(!valid_db_name("a\"b"));
        assert!(!valid_db_name("Upper"));
        assert!(!valid_db_name(&"a".repeat(64)));
    }
}
