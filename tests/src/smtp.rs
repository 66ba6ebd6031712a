//! A real SMTP server for tests: `tests/python/smtp_sink.py` (aiosmtpd) on a free port,
//! recording every accepted message, and refusing chosen recipients on demand
//! ([`SmtpServer::refuse`]). Also a bounce Maildir ([`Maildir`]) and bounce reports as Postfix
//! writes them ([`dsn`]), for notification's bounce mailbox.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
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
/// (kept across [`restart`](Self::restart)), `smtp.log` the process output, `refuse.json` the
/// recipients it refuses ([`refuse`](Self::refuse), read again at every `RCPT TO`).
/// Dropping the value kills the process and removes the folder.
pub struct SmtpServer {
    port: u16,
    child: Option<Child>,
    dir: TempDir,
    /// Serializes the read-modify-write of `refuse.json` within this process.
    refuse_lock: Mutex<()>,
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
            refuse_lock: Mutex::new(()),
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

    /// The sink's refusals: `{"<lower-cased address>": "<reply>"}`.
    pub fn refuse_path(&self) -> PathBuf {
        self.dir.path().join("refuse.json")
    }

    /// From now on `RCPT TO:<address>` (case-insensitive) is answered with `reply` instead of
    /// `250`: a full SMTP reply line such as `"550 5.1.1 <x@example.com>: User unknown"` (a
    /// permanent refusal) or `"450 4.2.1 Mailbox busy"` (a temporary one). Replaces an earlier
    /// reply for the address. The file is replaced atomically (temporary file + rename), so the
    /// sink never reads half of it.
    pub fn refuse(&self, address: &str, reply: &str) -> anyhow::Result<()> {
        let code = reply.get(..3).unwrap_or_default();
        anyhow::ensure!(
            code.len() == 3 && code.bytes().all(|b| b.is_ascii_digit()),
            "an SMTP reply starts with a three-digit code, not {reply:?}"
        );
        self.update_refusals(|table| {
            table.insert(address.trim().to_lowercase(), reply.to_owned());
        })
    }

    /// Accepts `address` again (undoes [`refuse`](Self::refuse)).
    pub fn accept(&self, address: &str) -> anyhow::Result<()> {
        self.update_refusals(|table| {
            table.remove(&address.trim().to_lowercase());
        })
    }

    fn update_refusals(
        &self,
        change: impl FnOnce(&mut BTreeMap<String, String>),
    ) -> anyhow::Result<()> {
        let _guard = self
            .refuse_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let path = self.refuse_path();
        let mut table: BTreeMap<String, String> = match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).context("parsing refuse.json")?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(e).context("reading refuse.json"),
        };
        change(&mut table);
        write_atomically(&path, serde_json::to_string_pretty(&table)?.as_bytes())
            .context("writing refuse.json")
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
            .arg("--refuse-file")
            .arg(self.refuse_path())
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

/// Writes `path` through a temporary file in the same folder and a rename: readers see the old
/// content or the new one, never a part.
fn write_atomically(path: &Path, content: &[u8]) -> std::io::Result<()> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&tmp, content)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// A Maildir (`new/`, `cur/`, `tmp/`) in a temporary folder, standing for the mailbox an MTA
/// delivers bounce reports into (notification's `KG_BOUNCE_MAILDIR`). Dropping it removes it.
#[derive(Debug)]
pub struct Maildir {
    dir: TempDir,
    seq: AtomicU64,
}

impl Maildir {
    pub fn new() -> anyhow::Result<Maildir> {
        let dir = crate::test_tempdir("maildir")?;
        for sub in ["new", "cur", "tmp"] {
            std::fs::create_dir_all(dir.path().join(sub))
                .with_context(|| format!("creating the Maildir's {sub}/"))?;
        }
        Ok(Maildir {
            dir,
            seq: AtomicU64::new(0),
        })
    }

    /// The Maildir's root (give it as `KG_BOUNCE_MAILDIR` / `Config::bounce_maildir`).
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Delivers one message as an MDA does: written to `tmp/`, then renamed into `new/` under a
    /// unique name (`<unix time>.M<seq>P<pid>.kg-test`). Returns its path in `new/`.
    pub fn deliver(&self, raw: &str) -> anyhow::Result<PathBuf> {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let name = format!("{secs}.M{seq}P{}.kg-test", std::process::id());
        let tmp = self.path().join("tmp").join(&name);
        let new = self.path().join("new").join(&name);
        std::fs::write(&tmp, raw).context("writing a message into the Maildir's tmp/")?;
        std::fs::rename(&tmp, &new).context("moving a message into the Maildir's new/")?;
        Ok(new)
    }

    /// Messages waiting in `new/` (not yet read).
    pub fn new_count(&self) -> usize {
        count_files(&self.path().join("new"))
    }

    /// Messages in `cur/` (read: notification moves each report there once processed).
    pub fn cur_count(&self) -> usize {
        count_files(&self.path().join("cur"))
    }

    /// The names of the files in `cur/`, sorted (a processed report is `<name>:2,S`).
    pub fn cur_names(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.path().join("cur"))
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// Waits until `new/` is empty (every report processed); returns whether it got there in
    /// time.
    pub async fn wait_until_read(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.new_count() == 0 {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

fn count_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                .count()
        })
        .unwrap_or(0)
}

/// A bounce report (RFC 3464 delivery status notification) as Postfix's bounce(8) writes it,
/// CRLF line ends: `multipart/report; report-type=delivery-status` with a `text/plain`
/// explanation, the `message/delivery-status` part (per-message block, then one per-recipient
/// block with `Final-Recipient: rfc822; <final_recipient>`, `Original-Recipient`, `Action:
/// <action>`, `Status: <status>`, and a `Diagnostic-Code` fitting the status class) and a
/// `text/rfc822-headers` part with `Message-ID: <original_message_id>` (give it without the angle
/// brackets, for example `format!("{delivery_id}@koogallery.example")`; brackets are tolerated).
///
/// `dsn(id, "li.wei@example.com", "5.1.1", "failed")` is a permanent failure,
/// `dsn(id, addr, "4.4.1", "delayed")` a temporary one.
pub fn dsn(original_message_id: &str, final_recipient: &str, status: &str, action: &str) -> String {
    let message_id = original_message_id
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>');
    let queue_id = format!(
        "4Z{}",
        uuid::Uuid::new_v4().simple().to_string()[..8].to_ascii_uppercase()
    );
    let boundary = format!("{queue_id}.1772503205/mx.koogallery.example");
    let reply = match status.chars().next() {
        Some('5') => {
            format!("550 {status} <{final_recipient}>: Recipient address rejected: User unknown")
        }
        Some('4') => format!("450 {status} <{final_recipient}>: Mailbox busy, try again later"),
        _ => format!("250 {status} Ok"),
    };
    let (subject, explanation) = if action.eq_ignore_ascii_case("delayed") {
        (
            "Delayed Mail (still being retried)",
            "####################################################################\r\n\
             # THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #\r\n\
             ####################################################################\r\n\
             \r\n\
             Your message could not be delivered for 4 hours.\r\n\
             It will be retried until it is 5 days old.",
        )
    } else {
        (
            "Undelivered Mail Returned to Sender",
            "I'm sorry to have to inform you that your message could not\r\n\
             be delivered to one or more recipients. It's attached below.",
        )
    };
    format!(
        "Return-Path: <>\r\n\
         X-Original-To: bounces@koogallery.example\r\n\
         Delivered-To: bounces@koogallery.example\r\n\
         Received: by mx.koogallery.example (Postfix)\r\n\
         \tid {queue_id}; Tue,  3 Mar 2026 10:00:05 +0800 (CST)\r\n\
         Date: Tue,  3 Mar 2026 10:00:05 +0800 (CST)\r\n\
         From: MAILER-DAEMON@mx.koogallery.example (Mail Delivery System)\r\n\
         Subject: {subject}\r\n\
         To: bounces@koogallery.example\r\n\
         Auto-Submitted: auto-replied\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status;\r\n\
         \tboundary=\"{boundary}\"\r\n\
         Content-Transfer-Encoding: 8bit\r\n\
         Message-Id: <20260303020005.{queue_id}@mx.koogallery.example>\r\n\
         \r\n\
         This is a MIME-encapsulated message.\r\n\
         \r\n\
         --{boundary}\r\n\
         Content-Description: Notification\r\n\
         Content-Type: text/plain; charset=us-ascii\r\n\
         \r\n\
         This is the mail system at host mx.koogallery.example.\r\n\
         \r\n\
         {explanation}\r\n\
         \r\n\
         <{final_recipient}>: host mail.example[203.0.113.5] said: {reply}\r\n\
         \r\n\
         --{boundary}\r\n\
         Content-Description: Delivery report\r\n\
         Content-Type: message/delivery-status\r\n\
         \r\n\
         Reporting-MTA: dns; mx.koogallery.example\r\n\
         X-Postfix-Queue-ID: {queue_id}\r\n\
         X-Postfix-Sender: rfc822; bounces@koogallery.example\r\n\
         Arrival-Date: Tue,  3 Mar 2026 10:00:04 +0800 (CST)\r\n\
         \r\n\
         Final-Recipient: rfc822; {final_recipient}\r\n\
         Original-Recipient: rfc822;{final_recipient}\r\n\
         Action: {action}\r\n\
         Status: {status}\r\n\
         Remote-MTA: dns; mail.example\r\n\
         Diagnostic-Code: smtp; {reply}\r\n\
         \r\n\
         --{boundary}\r\n\
         Content-Description: Undelivered Message Headers\r\n\
         Content-Type: text/rfc822-headers\r\n\
         \r\n\
         Return-Path: <bounces@koogallery.example>\r\n\
         Received: from notification (localhost [127.0.0.1])\r\n\
         \tby mx.koogallery.example (Postfix) with ESMTP id {queue_id}\r\n\
         \tfor <{final_recipient}>; Tue,  3 Mar 2026 10:00:04 +0800 (CST)\r\n\
         From: KooGallery <no-reply@koogallery.example>\r\n\
         To: {final_recipient}\r\n\
         Subject: KooGallery\r\n\
         Message-ID: <{message_id}>\r\n\
         Auto-Submitted: auto-generated\r\n\
         \r\n\
         --{boundary}--\r\n"
    )
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
    use super::{Maildir, ReceivedMail, dsn};

    #[test]
    fn maildir_and_dsn() {
        let maildir = Maildir::new().unwrap();
        for sub in ["new", "cur", "tmp"] {
            assert!(maildir.path().join(sub).is_dir());
        }
        let report = dsn(
            "<0193-d@koogallery.example>",
            "li.wei@example.com",
            "5.1.1",
            "failed",
        );
        assert!(report.contains("Message-ID: <0193-d@koogallery.example>\r\n"));
        assert!(report.contains("Final-Recipient: rfc822; li.wei@example.com\r\n"));
        assert!(report.contains("Diagnostic-Code: smtp; 550 5.1.1 <li.wei@example.com>"));
        assert!(report.contains("Content-Type: message/delivery-status\r\n"));
        assert!(!report.contains("\n\n") && !report.contains(" \\"));
        let path = maildir.deliver(&report).unwrap();
        assert!(path.starts_with(maildir.path().join("new")));
        maildir
            .deliver(&dsn("x@y", "a@b.example", "4.4.1", "delayed"))
            .unwrap();
        assert_eq!((maildir.new_count(), maildir.cur_count()), (2, 0));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), report);
        std::fs::rename(&path, maildir.path().join("cur").join("done:2,S")).unwrap();
        assert_eq!((maildir.new_count(), maildir.cur_count()), (1, 1));
        assert_eq!(maildir.cur_names(), ["done:2,S"]);
    }

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
