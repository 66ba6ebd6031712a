//! Test harness for the KooGallery seller-registration mesh: starts real servers
//! (Redis, PostgreSQL, an SMTP sink, an SMS-provider stand-in) on free ports so that
//! tests can use them, kill them, pause them and restart them.
//!
//! # Process hygiene
//! * Every external process is spawned with `kill_on_drop`, so dropping its handle kills it.
//! * Every external process also gets `PR_SET_PDEATHSIG = SIGKILL`: the kernel kills it when
//!   the *thread* that spawned it ends. In `#[tokio::test]` (current-thread or multi-thread
//!   flavour) that thread lives as long as the test, so servers die with their test even when
//!   the test binary is killed. Do not start servers from a short-lived helper thread (or from
//!   `spawn_blocking`) and hand them out: they die when that thread does.
//! * Each server works in a temporary folder named `kg-test-<kind>-XXXXXX` under the system
//!   temp dir (`/tmp`). The folder path is on the process's command line, so a test script can
//!   end leftovers with `pkill -f kg-test-`. The folder holds `owner.pid` (the test process) and
//!   `child.pid`; when a test process dies without cleaning up, the next harness start removes
//!   folders whose owner is gone (and kills a leftover child that still runs in one).
//! * Waits are bounded; a timeout or an early exit gives an error naming the process and the
//!   tail of its log.

pub mod cluster;
pub mod faults;
pub mod fixtures;
pub mod full_mesh;
pub mod mesh;
pub mod ports;
pub mod postgres;
pub mod python;
pub mod redis;
pub mod sms;
pub mod smtp;

pub use ports::free_port;
pub use postgres::{PostgresServer, shared_postgres};
pub use python::python;
pub use redis::RedisServer;
pub use sms::{SmsProvider, SmsRequest};
pub use smtp::{ReceivedMail, SmtpServer};

use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::Once;
use std::time::Duration;

use anyhow::Context as _;
use tempfile::TempDir;
use tokio::process::{Child, Command};

/// Runs `start` on a new thread that lives as long as the test process, with its own
/// current-thread tokio runtime that keeps running (so tasks it spawned keep being served),
/// and returns what `start` produced. Use it for servers shared by several tests (kept in a
/// `static`): a server spawned from a test's own thread gets SIGKILL when that test ends
/// (see the crate docs). When `start` fails, the thread ends.
pub async fn start_on_keeper_thread<T, F, Fut>(name: &str, start: F) -> anyhow::Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = tx.send(Err(anyhow::Error::from(e)));
                    return;
                }
            };
            runtime.block_on(async move {
                let result = start().await;
                let started = result.is_ok();
                // a failed send (the caller gave up) drops the result, which stops it
                if tx.send(result).is_ok() && started {
                    std::future::pending::<()>().await;
                }
            });
        })
        .with_context(|| format!("spawning the keeper thread {name}"))?;
    rx.await
        .map_err(|_| anyhow::anyhow!("the keeper thread {name} died"))?
}

/// Prefix of every temporary folder the harness creates (`/tmp/kg-test-<kind>-XXXXXX`).
pub const TEMP_PREFIX: &str = "kg-test-";

/// The last `max_lines` lines of a log file, for error messages. Never fails.
pub fn log_tail(path: &Path, max_lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let lines: Vec<&str> = text.lines().collect();
            let start = lines.len().saturating_sub(max_lines);
            let tail = lines[start..].join("\n");
            if tail.trim().is_empty() {
                format!("({} is empty)", path.display())
            } else {
                format!("--- tail of {} ---\n{tail}", path.display())
            }
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

/// Creates `/tmp/kg-test-<kind>-XXXXXX` with an `owner.pid` file; on the first call in a process
/// it also removes folders left by test processes that no longer run.
pub(crate) fn test_tempdir(kind: &str) -> anyhow::Result<TempDir> {
    static CLEANUP: Once = Once::new();
    CLEANUP.call_once(cleanup_stale_dirs);
    let dir = tempfile::Builder::new()
        .prefix(&format!("{TEMP_PREFIX}{kind}-"))
        .tempdir()
        .context("creating a temporary folder for a test server")?;
    std::fs::write(dir.path().join("owner.pid"), std::process::id().to_string())
        .context("writing owner.pid")?;
    Ok(dir)
}

fn pid_alive(pid: i32) -> bool {
    pid > 0 && Path::new(&format!("/proc/{pid}")).exists()
}

fn read_pid(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path)
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

/// Whether `pid` runs a command line that mentions `dir` (guards against reused pids).
fn runs_in(pid: i32, dir: &Path) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let needle = dir.as_os_str().as_encoded_bytes();
    cmdline.windows(needle.len()).any(|w| w == needle)
}

fn cleanup_stale_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.starts_with(TEMP_PREFIX) {
            continue;
        }
        let path = entry.path();
        let Some(owner) = read_pid(&path.join("owner.pid")) else {
            continue; // being created right now, or not ours
        };
        if pid_alive(owner) {
            continue;
        }
        for pid_file in [path.join("child.pid"), path.join("data/postmaster.pid")] {
            if let Some(pid) = read_pid(&pid_file)
                && runs_in(pid, &path)
            {
                // SAFETY: plain kill(2) on a pid whose command line names the stale folder.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        }
        if name.starts_with(&format!("{TEMP_PREFIX}pg-")) {
            postgres::release_orphaned_shmem(&path.join("data"));
        }
        let _ = std::fs::remove_dir_all(&path);
    }
}

/// Sends `sig` to `pid` (or to the process group `-pid` when `group`).
pub(crate) fn send_signal(pid: u32, sig: libc::c_int, group: bool) -> io::Result<()> {
    let target = i32::try_from(pid).map_err(|_| io::Error::other("pid out of range"))?;
    let target = if group { -target } else { target };
    // SAFETY: kill(2) has no memory-safety preconditions.
    if unsafe { libc::kill(target, sig) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Makes the child get SIGKILL when the spawning thread ends (see the crate docs), so a killed
/// test binary (or bench) leaves no server behind.
pub fn die_with_parent(cmd: &mut Command) {
    // SAFETY: getpid() before the fork; in the child only async-signal-safe calls
    // (prctl, getppid) are made.
    let parent = unsafe { libc::getpid() };
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(io::Error::last_os_error());
            }
            if libc::getppid() != parent {
                return Err(io::Error::other("parent exited during spawn"));
            }
            Ok(())
        });
    }
}

/// Opens (append) a log file to hand to a child as stdout and stderr, after writing a header line.
pub(crate) fn open_log(
    path: &Path,
    header: &str,
) -> anyhow::Result<(std::fs::File, std::fs::File)> {
    use std::io::Write as _;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening log file {}", path.display()))?;
    writeln!(file, "=== kg-tests: {header} ===")?;
    let second = file.try_clone()?;
    Ok((file, second))
}

/// Records the child's pid in `dir/child.pid` (used by the stale-folder cleanup).
pub(crate) fn write_child_pid(dir: &Path, child: &Child) {
    if let Some(pid) = child.id() {
        let _ = std::fs::write(dir.join("child.pid"), pid.to_string());
    }
}

/// Waits at most `timeout` for the child to exit.
pub(crate) async fn wait_exit(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    tokio::time::timeout(timeout, child.wait()).await.ok()?.ok()
}

/// Stops a child: `sig` first (to the group when `group`), SIGKILL after `grace`; always reaps it.
pub(crate) async fn terminate(
    child: &mut Child,
    sig: libc::c_int,
    group: bool,
    grace: Duration,
) -> io::Result<()> {
    if let Some(pid) = child.id() {
        let _ = send_signal(pid, libc::SIGCONT, group); // a paused process must see the signal
        let _ = send_signal(pid, sig, group);
        if wait_exit(child, grace).await.is_some() {
            return Ok(());
        }
        let _ = send_signal(pid, libc::SIGKILL, group);
    }
    kill_now(child, group).await
}

/// Kills a child (and its process group when `group`) with SIGKILL and reaps it.
pub(crate) async fn kill_now(child: &mut Child, group: bool) -> io::Result<()> {
    if let Some(pid) = child.id() {
        let _ = send_signal(pid, libc::SIGKILL, group);
    }
    let _ = child.kill().await;
    child.wait().await.map(|_| ())
}

/// Resolves a program name: an explicit path, else the first match on `PATH`.
pub(crate) fn which(program: &str) -> Option<PathBuf> {
    let p = Path::new(program);
    if p.components().count() > 1 {
        return p.exists().then(|| p.to_path_buf());
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(program))
        .find(|c| c.is_file())
}

/// A position in a log file, to read what a child wrote after it.
pub(crate) struct LogMark {
    path: PathBuf,
    offset: u64,
}

impl LogMark {
    pub(crate) fn new(path: &Path) -> Self {
        let offset = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        Self {
            path: path.to_path_buf(),
            offset,
        }
    }

    /// What was appended since the mark.
    pub(crate) fn since(&self) -> String {
        let bytes = std::fs::read(&self.path).unwrap_or_default();
        let start = usize::try_from(self.offset)
            .unwrap_or(usize::MAX)
            .min(bytes.len());
        String::from_utf8_lossy(&bytes[start..]).into_owned()
    }
}

/// Why a spawn attempt failed: worth retrying (port taken, previous instance still winding
/// down) or not.
pub(crate) enum SpawnFailure {
    Retryable(anyhow::Error),
    Fatal(anyhow::Error),
}

impl From<anyhow::Error> for SpawnFailure {
    fn from(e: anyhow::Error) -> Self {
        SpawnFailure::Fatal(e)
    }
}

impl From<io::Error> for SpawnFailure {
    fn from(e: io::Error) -> Self {
        SpawnFailure::Fatal(e.into())
    }
}

impl SpawnFailure {
    pub(crate) fn into_error(self) -> anyhow::Error {
        match self {
            SpawnFailure::Retryable(e) | SpawnFailure::Fatal(e) => e,
        }
    }
}

/// Calls `probe` every 100 ms until it gives a value; fails the test after `within`, naming
/// `what` it waited for.
pub async fn poll<T, F, Fut>(what: &str, within: std::time::Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = std::time::Instant::now();
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(started.elapsed() < within, "timed out waiting for {what}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// The next `n` events of a WatchEvents stream (heartbeats skipped); panics when they do not
/// all arrive `within`, or the stream fails or ends first.
pub async fn next_events(
    stream: &mut tonic::Streaming<kg_proto::registration::WatchEventsResponse>,
    n: usize,
    within: std::time::Duration,
) -> Vec<kg_proto::registration::RegistrationEvent> {
    use kg_proto::registration::watch_events_response::Item;
    let deadline = tokio::time::Instant::now() + within;
    let mut out = Vec::new();
    while out.len() < n {
        let message = tokio::time::timeout_at(deadline, stream.message())
            .await
            .unwrap_or_else(|_| panic!("only {} of {n} events arrived", out.len()))
            .expect("stream failed")
            .expect("stream ended");
        if let Some(Item::Event(event)) = message.item {
            out.push(event);
        }
    }
    out
}
