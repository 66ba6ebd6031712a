//! The service processes under test: spawned from `target/release` with their configuration in
//! the environment, logs in files, killed with the bench (PR_SET_PDEATHSIG) and on drop.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use tokio::process::{Child, Command};
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// Variables that would change what is measured if inherited from the caller's shell.
const SCRUBBED: &[&str] = &[
    "KG_JWT_SECRET",
    "KG_METRICS_ADDR",
    "KG_DATA_DIR",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "KG_LOG_FORMAT",
    "TOKIO_WORKER_THREADS",
    "KG_SMTP_URL",
    "KG_SMS_URL",
    "KG_JWT_JWKS_FILE",
    "KG_JWT_SIGNING_KEY_FILE",
    "KG_TLS_CERT",
    "KG_TLS_KEY",
    "KG_TLS_CLIENT_CA",
    "KG_TLS_CA",
    "KG_HEALTH_LISTEN_ADDR",
    "KG_WATCH_HEARTBEAT_MS",
    "KG_WATCH_POLL_MS",
    "KG_WATCH_MAX_STREAMS",
];

/// One service process.
pub struct Service {
    pub name: String,
    pub addr: String,
    pub log: PathBuf,
    child: Option<Child>,
}

impl Service {
    /// Starts `program args…` with `env` (on top of the inherited environment minus
    /// [`SCRUBBED`]), output appended to `<log_dir>/<name>.log`.
    pub fn spawn(
        name: &str,
        program: &Path,
        args: &[&str],
        env: &[(&str, String)],
        addr: String,
        log_dir: &Path,
    ) -> anyhow::Result<Service> {
        if !program.is_file() {
            bail!(
                "{} is missing: build it first (scripts/bench builds every binary the bench runs)",
                program.display()
            );
        }
        let log = log_dir.join(format!("{name}.log"));
        let out =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone()?;
        let mut cmd = Command::new(program);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true);
        for var in SCRUBBED {
            cmd.env_remove(var);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        // a killed bench leaves no service behind; spawn from the main task only
        kg_tests::die_with_parent(&mut cmd);
        let child = cmd
            .spawn()
            .with_context(|| format!("spawning {}", program.display()))?;
        Ok(Service {
            name: name.to_string(),
            addr,
            log,
            child: Some(child),
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// Waits (bounded) until the overall health status is SERVING.
    pub async fn wait_serving(&mut self, within: Duration) -> anyhow::Result<()> {
        let started = Instant::now();
        let channel = Endpoint::from_shared(self.url())?
            .connect_timeout(Duration::from_secs(1))
            .timeout(Duration::from_secs(2))
            .connect_lazy();
        let mut last = String::from("no answer yet");
        while started.elapsed() < within {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                bail!(
                    "{} exited ({status}) before serving\n{}",
                    self.name,
                    kg_tests::log_tail(&self.log, 30)
                );
            }
            match HealthClient::new(channel.clone())
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await
            {
                Ok(r) if r.get_ref().status == ServingStatus::Serving as i32 => return Ok(()),
                Ok(r) => last = format!("status {}", r.get_ref().status),
                Err(e) => last = format!("{e}"),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!(
            "{} at {} not SERVING within {within:?} (last: {last})\n{}",
            self.name,
            self.addr,
            kg_tests::log_tail(&self.log, 30)
        )
    }

    /// Whether the process still runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(Child::try_wait), Some(Ok(None)))
    }

    /// Peak and current resident memory from `/proc/<pid>/status`.
    pub fn memory(&self) -> Option<Memory> {
        let pid = self.pid()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let field = |key: &str| -> Option<u64> {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        };
        Some(Memory {
            vm_hwm_kib: field("VmHWM:")?,
            vm_rss_kib: field("VmRSS:")?,
        })
    }

    /// SIGTERM (the services drain in-flight RPCs), SIGKILL after `grace`.
    pub async fn stop(&mut self, grace: Duration) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Some(pid) = child.id()
            && let Ok(pid) = i32::try_from(pid)
        {
            // SAFETY: kill(2) on our own child's pid, which we have not reaped yet.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        if tokio::time::timeout(grace, child.wait()).await.is_err() {
            let _ = child.kill().await;
        }
    }
}

#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Memory {
    pub vm_hwm_kib: u64,
    pub vm_rss_kib: u64,
}

/// `connections` channels to `url`, connected now (so connection set-up is not measured).
pub async fn channels(url: &str, connections: usize) -> anyhow::Result<Vec<Channel>> {
    let mut out = Vec::with_capacity(connections);
    for _ in 0..connections.max(1) {
        let channel = Endpoint::from_shared(url.to_string())?
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(30))
            .tcp_nodelay(true)
            .connect()
            .await
            .with_context(|| format!("connecting to {url}"))?;
        out.push(channel);
    }
    Ok(out)
}

/// `connections` channels to `url` for long-lived server streams: like [`channels`], but with
/// no request timeout.
pub async fn stream_channels(url: &str, connections: usize) -> anyhow::Result<Vec<Channel>> {
    let mut out = Vec::with_capacity(connections);
    for _ in 0..connections.max(1) {
        let channel = Endpoint::from_shared(url.to_string())?
            .connect_timeout(Duration::from_secs(3))
            .tcp_nodelay(true)
            .connect()
            .await
            .with_context(|| format!("connecting to {url}"))?;
        out.push(channel);
    }
    Ok(out)
}

/// From `/proc/<pid>/stat`: (parent pid, own utime + stime, reaped children's cutime + cstime),
/// in clock ticks.
fn stat_fields(pid: &str) -> Option<(u32, u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state): ppid is field 4, utime 14, stime 15, cutime 16,
    // cstime 17.
    let num = |i: usize| -> Option<u64> { f.get(i)?.parse().ok() };
    let ppid = u32::try_from(num(1)?).ok()?;
    Some((ppid, num(11)? + num(12)?, num(13)? + num(14)?))
}

/// CPU time (clock ticks) the process has used so far.
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    stat_fields(&pid.to_string()).map(|(_, own, _)| own)
}

/// CPU time (clock ticks) used by `root`, its live children and the children it reaped: a
/// PostgreSQL postmaster and its backends (which leave the postmaster's process group).
pub fn tree_cpu_ticks(root: u32) -> u64 {
    let Some((_, own, reaped)) = stat_fields(&root.to_string()) else {
        return 0;
    };
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return own + reaped;
    };
    let children: u64 = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name();
            let name = name.to_str()?;
            if !name.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let (ppid, ticks, _) = stat_fields(name)?;
            (ppid == root).then_some(ticks)
        })
        .sum();
    own + reaped + children
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`).
pub fn ticks_per_sec() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// Busy CPU time of the whole machine so far (`/proc/stat`: user, nice, system, irq, softirq,
/// steal), in clock ticks.
pub fn system_busy_ticks() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal
    Some([0, 1, 2, 5, 6, 7].iter().filter_map(|&i| f.get(i)).sum())
}
