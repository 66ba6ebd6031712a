//! A real `redis-server` per test, on a free port, that the test can kill, pause and restart.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::time::Instant;

use crate::{LogMark, SpawnFailure, free_port, log_tail};

const START_TIMEOUT: Duration = Duration::from_secs(10);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// A `redis-server` child bound to `127.0.0.1:<port>`, without persistence, working in its
/// own `/tmp/kg-test-redis-XXXXXX` folder (its output goes to `redis.log` there).
///
/// The binary is `$KG_REDIS_SERVER` when set, else `redis-server` from `PATH`.
/// Dropping the value kills the server and removes the folder.
pub struct RedisServer {
    port: u16,
    child: Option<Child>,
    dir: TempDir,
}

impl std::fmt::Debug for RedisServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisServer")
            .field("port", &self.port)
            .field("pid", &self.pid())
            .field("dir", &self.dir.path())
            .finish()
    }
}

fn redis_binary() -> String {
    std::env::var("KG_REDIS_SERVER")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "redis-server".to_owned())
}

impl RedisServer {
    /// Starts `redis-server` on a free port and waits (at most 10 s) until it answers PING.
    pub async fn start() -> anyhow::Result<Self> {
        let dir = crate::test_tempdir("redis")?;
        let mut server = Self {
            port: 0,
            child: None,
            dir,
        };
        let mut last = None;
        for _ in 0..3 {
            server.port = free_port();
            match server.spawn().await {
                Ok(()) => return Ok(server),
                Err(SpawnFailure::Retryable(e)) => last = Some(e),
                Err(SpawnFailure::Fatal(e)) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow!("redis-server did not start")))
    }

    /// The TCP port (stays the same across [`restart`](Self::restart)).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>/`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// The server's pid while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// The working folder.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server's stdout/stderr log.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    /// Whether the child is still running (it may have been killed from outside).
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

    /// Crashes the server: SIGKILL, then reaps it. No-op when it is not running.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            crate::kill_now(&mut child, false)
                .await
                .context("killing redis-server")?;
        }
        Ok(())
    }

    /// Stops the server cleanly: `SHUTDOWN NOSAVE`, then SIGTERM, then SIGKILL, each bounded.
    /// No-op when it is not running.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        if let Some(pid) = child.id() {
            let _ = crate::send_signal(pid, libc::SIGCONT, false);
        }
        let _ = command(self.port, "SHUTDOWN NOSAVE").await;
        if crate::wait_exit(&mut child, STOP_TIMEOUT).await.is_some() {
            return Ok(());
        }
        crate::terminate(&mut child, libc::SIGTERM, false, Duration::from_secs(5))
            .await
            .context("stopping redis-server")
    }

    /// Starts the server again on the same port (stopping it first if it runs), and waits
    /// until it answers PING. Data is not kept (no persistence).
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.stop().await?;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match self.spawn().await {
                Ok(()) => return Ok(()),
                Err(SpawnFailure::Retryable(e)) if Instant::now() < deadline => {
                    tracing::debug!("redis-server restart on port {} retried: {e:#}", self.port);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => {
                    return Err(e
                        .into_error()
                        .context(format!("restarting redis-server on port {}", self.port)));
                }
            }
        }
    }

    /// Freezes the server (SIGSTOP): connections stay open but nothing is answered.
    pub fn pause(&self) -> anyhow::Result<()> {
        let pid = self
            .pid()
            .ok_or_else(|| anyhow!("redis-server is not running"))?;
        crate::send_signal(pid, libc::SIGSTOP, false).context("SIGSTOP redis-server")
    }

    /// Thaws a paused server (SIGCONT).
    pub fn resume(&self) -> anyhow::Result<()> {
        let pid = self
            .pid()
            .ok_or_else(|| anyhow!("redis-server is not running"))?;
        crate::send_signal(pid, libc::SIGCONT, false).context("SIGCONT redis-server")
    }

    async fn spawn(&mut self) -> Result<(), SpawnFailure> {
        if self.child.is_some() {
            return Err(anyhow!("redis-server already runs on port {}", self.port).into());
        }
        let log = self.log_path();
        let mark = LogMark::new(&log);
        let (out, err) = crate::open_log(&log, &format!("redis-server on port {}", self.port))?;
        let bin = redis_binary();
        let mut cmd = Command::new(&bin);
        cmd.arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--daemonize", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true);
        crate::die_with_parent(&mut cmd);
        let child = cmd
            .spawn()
            .with_context(|| format!("spawning `{bin}` (is redis-server installed?)"))?;
        crate::write_child_pid(self.dir.path(), &child);
        let child = self.child.insert(child);

        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait()? {
                self.child = None;
                let e = anyhow!(
                    "redis-server exited ({status}) before answering PING on 127.0.0.1:{}\n{}",
                    self.port,
                    log_tail(&log, 30)
                );
                return Err(if mark.since().contains("Address already in use") {
                    SpawnFailure::Retryable(e)
                } else {
                    SpawnFailure::Fatal(e)
                });
            }
            if matches!(command(self.port, "PING").await, Ok(reply) if reply.starts_with("+PONG")) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                if let Some(mut child) = self.child.take() {
                    let _ = crate::kill_now(&mut child, false).await;
                }
                return Err(anyhow!(
                    "redis-server did not answer PING on 127.0.0.1:{} within {:?}\n{}",
                    self.port,
                    START_TIMEOUT,
                    log_tail(&log, 30)
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Sends one inline command and returns the first reply line (bounded to 1 s).
async fn command(port: u16, cmd: &str) -> anyhow::Result<String> {
    let exchange = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
        stream.write_all(format!("{cmd}\r\n").as_bytes()).await?;
        let mut reply = Vec::new();
        let mut buf = [0u8; 256];
        while !reply.windows(2).any(|w| w == b"\r\n") {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                bail!("connection closed");
            }
            reply.extend_from_slice(&buf[..n]);
        }
        Ok(String::from_utf8_lossy(&reply).into_owned())
    };
    tokio::time::timeout(Duration::from_secs(1), exchange)
        .await
        .map_err(|_| anyhow!("no reply within 1 s"))?
}
