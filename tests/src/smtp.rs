//! A real SMTP server for tests: `tests/python/smtp_sink.py` (aiosmtpd) on a free port,
//! recording every accepted message.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use serde::{Deserialize, Serialize};
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::time::Instant;

use crate::{LogMark, SpawnFailure, free_port, log_tail};

const START_TIMEOUT: Duration = Duration::from_secs(10);
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// One message the sink accepted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReceivedMail {
    /// The envelope sender (`MAIL FROM`).
    pub mail_from: String,
    /// The envelope recipients (`RCPT TO`).
    pub rcpt_tos: Vec<String>,
    /// The raw message (headers, blank line, body) as sent after `DATA`.
    pub data: String,
}

impl ReceivedMail {
    /// The first header named `name` (case-insensitive), unfolded; not MIME-decoded.
    pub fn header(&self, name: &str) -> Option<String> {
        let mut found: Option<String> = None;
        for line in self.data.lines() {
            if line.is_empty() {
                break; // end of the header block
            }
            if line.starts_with([' ', '\t']) {
                if let Some(value) = found.as_mut() {
                    value.push(' ');
                    value.push_str(line.trim());
                }
                continue;
            }
            if found.is_some() {
                break;
            }
            if let Some((key, value)) = line.split_once(':')
                && key.trim().eq_ignore_ascii_case(name)
            {
                found = Some(value.trim().to_owned());
            }
        }
        found
    }

    /// The `Subject` header.
    pub fn subject(&self) -> Option<String> {
        self.header("Subject")
    }

    /// What follows the header block (raw: not decoded from any transfer encoding).
    pub fn body(&self) -> &str {
        let d = self.data.as_str();
        d.find("\r\n\r\n")
            .map(|i| &d[i + 4..])
            .or_else(|| d.find("\n\n").map(|i| &d[i + 2..]))
            .unwrap_or("")
    }
}

/// An SMTP server on `127.0.0.1:<port>` that accepts every message (no TLS, no AUTH) and
/// records it, run as `<python> -u tests/python/smtp_sink.py` (see [`crate::python`]; it needs
/// `aiosmtpd`). It works in `/tmp/kg-test-smtp-XXXXXX`: `messages.jsonl` holds the messages
/// (kept across [`restart`](Self::restart)), `smtp.log` the process output.
/// Dropping the value kills the process and removes the folder.
pub struct SmtpServer {
    port: u16,
    child: Option<Child>,
    dir: TempDir,
}

impl std::fmt::Debug for SmtpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpServer")
            .field("port", &self.port)
            .field("pid", &self.pid())
            .field("dir", &self.dir.path())
            .finish()
    }
}

fn sink_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("python/smtp_sink.py")
}

impl SmtpServer {
    /// Starts the sink on a free port and waits (at most 10 s) for its `220` greeting.
    pub async fn start() -> anyhow::Result<Self> {
        let dir = crate::test_tempdir("smtp")?;
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
        Err(last.unwrap_or_else(|| anyhow!("the SMTP sink did not start")))
    }

    /// `127.0.0.1`
    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    /// The TCP port (stays the same across [`restart`](Self::restart)).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `smtp://127.0.0.1:<port>`
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// The sink's pid while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// The working folder.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The sink's stdout/stderr log.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("smtp.log")
    }

    fn messages_path(&self) -> PathBuf {
        self.dir.path().join("messages.jsonl")
    }

    fn reject_flag(&self) -> PathBuf {
        self.dir.path().join("reject")
    }

    /// Every message accepted so far, oldest first (also those accepted before a restart).
    pub fn messages(&self) -> Vec<ReceivedMail> {
        let Ok(text) = std::fs::read_to_string(self.messages_path()) else {
            return Vec::new();
        };
        text.split_inclusive('\n')
            .filter(|line| line.ends_with('\n')) // a line still being written is skipped
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    /// Waits until at least `count` messages were accepted; returns them all.
    pub async fn wait_for_messages(
        &self,
        count: usize,
        timeout: Duration,
    ) -> anyhow::Result<Vec<ReceivedMail>> {
        let deadline = Instant::now() + timeout;
        loop {
            let messages = self.messages();
            if messages.len() >= count {
                return Ok(messages);
            }
            if Instant::now() >= deadline {
                return Err(anyhow!(
                    "the SMTP sink on port {} received {} message(s) within {timeout:?}, \
                     expected at least {count}\n{}",
                    self.port,
                    messages.len(),
                    log_tail(&self.log_path(), 20)
                ));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// While on, `RCPT TO` and `DATA` get `451 4.3.0` (a temporary failure).
    pub fn set_rejecting(&self, on: bool) -> anyhow::Result<()> {
        let flag = self.reject_flag();
        if on {
            std::fs::write(&flag, b"1").context("creating the reject flag")?;
        } else if let Err(e) = std::fs::remove_file(&flag)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            return Err(e).context("removing the reject flag");
        }
        Ok(())
    }

    /// Whether the process is still running.
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

    /// Crashes the sink (SIGKILL) and reaps it. No-op when it is not running.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            crate::kill_now(&mut child, false)
                .await
                .context("killing the SMTP sink")?;
        }
        Ok(())
    }

    /// Stops the sink (SIGTERM, SIGKILL after 5 s) and reaps it. No-op when it is not running.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            crate::terminate(&mut child, libc::SIGTERM, false, STOP_TIMEOUT)
                .await
                .context("stopping the SMTP sink")?;
        }
        Ok(())
    }

    /// Starts the sink again on the same port (stopping it first if it runs).
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.stop().await?;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match self.spawn().await {
                Ok(()) => return Ok(()),
                Err(SpawnFailure::Retryable(e)) if Instant::now() < deadline => {
                    tracing::debug!("SMTP sink restart on port {} retried: {e:#}", self.port);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => {
                    return Err(e
                        .into_error()
                        .context(format!("restarting the SMTP sink on port {}", self.port)));
                }
            }
        }
    }

    /// Freezes the sink (SIGSTOP): connections are accepted by the kernel but never greeted.
    pub fn pause(&self) -> anyhow::Result<()> {
        let pid = self
            .pid()
            .ok_or_else(|| anyhow!("the SMTP sink is not running"))?;
        crate::send_signal(pid, libc::SIGSTOP, false).context("SIGSTOP the SMTP sink")
    }

    /// Thaws a paused sink (SIGCONT).
    pub fn resume(&self) -> anyhow::Result<()> {
        let pid = self
            .pid()
            .ok_or_else(|| anyhow!("the SMTP sink is not running"))?;
        crate::send_signal(pid, libc::SIGCONT, false).context("SIGCONT the SMTP sink")
    }

    async fn spawn(&mut self) -> Result<(), SpawnFailure> {
        if self.child.is_some() {
            return Err(anyhow!("the SMTP sink already runs on port {}", self.port).into());
        }
        let log = self.log_path();
        let mark = LogMark::new(&log);
        let (out, err) = crate::open_log(&log, &format!("smtp_sink on port {}", self.port))?;
        let python = crate::python();
        let mut cmd = Command::new(&python);
        cmd.arg("-u")
            .arg(sink_script())
            .args(["--host", "127.0.0.1"])
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--out")
            .arg(self.messages_path())
            .arg("--reject-flag")
            .arg(self.reject_flag())
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true);
        crate::die_with_parent(&mut cmd);
        let child = cmd
            .spawn()
            .with_context(|| format!("spawning `{python}` for the SMTP sink (set KG_PYTHON)"))?;
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
                let new_output = mark.since();
                let hint = if new_output.contains("No module named 'aiosmtpd'") {
                    format!(
                        "\n(`{python}` has no aiosmtpd: install it, or point KG_PYTHON at a \
                         Python that has it)"
                    )
                } else {
                    String::new()
                };
                let e = anyhow!(
                    "the SMTP sink (`{python}` {}) exited ({status}) before greeting on \
                     127.0.0.1:{}{hint}\n{}",
                    sink_script().display(),
                    self.port,
                    log_tail(&log, 30)
                );
                return Err(
                    if new_output
                        .to_ascii_lowercase()
                        .contains("address already in use")
                    {
                        SpawnFailure::Retryable(e)
                    } else {
                        SpawnFailure::Fatal(e)
                    },
                );
            }
            if greets(self.port).await {
                return Ok(());
            }
            if Instant::now() >= deadline {
                if let Some(mut child) = self.child.take() {
                    let _ = crate::kill_now(&mut child, false).await;
                }
                return Err(anyhow!(
                    "the SMTP sink did not greet on 127.0.0.1:{} within {START_TIMEOUT:?}\n{}",
                    self.port,
                    log_tail(&log, 30)
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Whether an SMTP server on the port sends a `220` greeting (then says QUIT).
async fn greets(port: u16) -> bool {
    let exchange = async {
        let stream = TcpStream::connect(("127.0.0.1", port)).await?;
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line).await?;
        if line.starts_with("220") {
            let _ = reader.get_mut().write_all(b"QUIT\r\n").await;
            let mut bye = String::new();
            let _ = reader.read_line(&mut bye).await;
            Ok::<bool, std::io::Error>(true)
        } else {
            Ok(false)
        }
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(1), exchange).await,
        Ok(Ok(true))
    )
}

#[cfg(test)]
mod tests {
    use super::ReceivedMail;

    #[test]
    fn headers_and_body() {
        let mail = ReceivedMail {
            mail_from: "a@example.com".into(),
            rcpt_tos: vec!["b@example.com".into()],
            data: "From: a@example.com\r\nSubject: Your application\r\n  was received\r\n\
                   To: b@example.com\r\n\r\nHello\r\nthere\r\n"
                .into(),
        };
        assert_eq!(
            mail.subject().as_deref(),
            Some("Your application was received")
        );
        assert_eq!(mail.header("to").as_deref(), Some("b@example.com"));
        assert_eq!(mail.header("Cc"), None);
        assert_eq!(mail.body(), "Hello\r\nthere\r\n");
    }
}
