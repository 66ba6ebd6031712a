//! The report: one JSON document with every figure, and a Markdown rendering of it.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::load::StepResult;
use crate::procs::Memory;

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub generated_at: String,
    pub command: String,
    pub quick: bool,
    /// Whether the run finished every step (false: see `notes`).
    pub complete: bool,
    pub machine: Machine,
    pub settings: Settings,
    /// (a) the one-hop limit.
    pub echo: Vec<StepResult>,
    /// (b) the database limit.
    pub database: Vec<StepResult>,
    /// (c) SubmitApplication.
    pub submit: Vec<StepResult>,
    /// (d) GetApplication.
    pub get: Vec<StepResult>,
    pub ratios: Vec<Ratio>,
    /// (e) the asynchronous pipeline.
    pub pipeline: Pipeline,
    pub outbox: Outbox,
    /// (c) and (d) at each number of stored applications.
    pub scales: Vec<Scale>,
    /// (f) peak memory of each process.
    pub memory: Vec<ProcessMemory>,
    /// (g) SubmitApplication without and with idle WatchEvents streams open (`--idle-watchers`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_watchers: Option<IdleWatchers>,
    pub targets: Vec<Target>,
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub nproc: usize,
    pub memory_total_mib: u64,
    pub cpu_model: String,
    pub kernel: String,
    pub postgres_version: String,
    pub redis_version: String,
    pub git_commit: String,
    /// 1-minute load average when the run started (before any server).
    pub load_average_at_start: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub concurrencies: Vec<usize>,
    pub scale_concurrency: usize,
    pub scales: Vec<u64>,
    pub step_secs: f64,
    pub warmup_secs: f64,
    pub max_requests: u64,
    pub max_submits: u64,
    pub connections: usize,
    pub pipeline_samples: u64,
    pub auth: String,
    pub echo: String,
    pub database: String,
    pub stored_row: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Ratio {
    pub concurrency: usize,
    /// (c) throughput / (b) throughput.
    pub submit_over_database: Option<f64>,
    /// (d) throughput / (a) throughput.
    pub get_over_echo: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Latency {
    pub n: usize,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub max_ms: f64,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Pipeline {
    pub available: bool,
    /// Why not, when not available.
    pub reason: Option<String>,
    pub samples: u64,
    pub concurrency: usize,
    /// Submit reply → review task listed by ListReviewTasks(subject).
    pub review_task: Option<Latency>,
    /// Submit reply → APPLICATION_RECEIVED delivery listed by ListNotifications(subject).
    pub notification: Option<Latency>,
    pub review_timeouts: u64,
    pub notification_timeouts: u64,
    pub timeout_s: f64,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Outbox {
    /// Undelivered events of `registration_outbox` when each load step stopped (the relay keeps
    /// delivering in the background; the bench does not wait for it between steps).
    pub after_steps: Vec<Backlog>,
    /// The relay watched with no load, right after the SubmitApplication steps.
    pub relay: Option<RelayRate>,
    /// Undelivered events of the first registration database when registration moved to the
    /// database of the stored-applications steps (left undelivered: that database is retired).
    pub backlog_at_switch: Option<u64>,
    /// Undelivered events at the end of the run (the stored-applications database).
    pub backlog_at_end: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Backlog {
    pub step: String,
    pub undelivered: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct RelayRate {
    pub window_s: f64,
    pub undelivered_before: u64,
    pub undelivered_after: u64,
    /// Events delivered per second during the window (both destinations together).
    pub delivered_per_s: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Drain {
    pub step: String,
    pub backlog: u64,
    pub drained_in_s: Option<f64>,
    pub remaining: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Scale {
    /// The target of `--scales`.
    pub target: u64,
    /// Applications stored when the measurement started.
    pub stored: u64,
    /// Rows inserted by the pre-load for this scale and how long it took.
    pub preloaded: u64,
    pub preload_s: f64,
    pub submit: Option<StepResult>,
    pub get: Option<StepResult>,
}

/// (g): SubmitApplication at `concurrency` in flight without, then with, `streams` WatchEvents
/// streams open, each filtered to an account that has no events (`acct-idle-<i>`).
#[derive(Debug, Clone, Serialize)]
pub struct IdleWatchers {
    /// Streams asked for (`--idle-watchers`).
    pub streams: usize,
    /// Requests in flight of both SubmitApplication steps (`--idle-watchers-concurrency`).
    pub concurrency: usize,
    /// Registration's database, whose transactions are counted.
    pub database: String,
    /// Streams whose WatchEvents call returned its response headers.
    pub opened: usize,
    /// Streams that failed to open, by gRPC code.
    pub open_errors: BTreeMap<String, u64>,
    /// Seconds until every stream had opened or failed.
    pub open_s: f64,
    /// Streams still open when the SubmitApplication step with them ended.
    pub still_open_after: usize,
    /// Streams that ended early, by how (`ended` or the gRPC code).
    pub ended: BTreeMap<String, u64>,
    /// Heartbeats all streams received while open.
    pub heartbeats_received: u64,
    /// Events all streams received (0 expected: their accounts have none).
    pub events_received: u64,
    /// No streams, no load (after the outbox drained).
    pub without_streams: IdleWindow,
    /// Only the idle streams open, no load (after the outbox drained).
    pub with_streams: IdleWindow,
    pub submit_without: StepResult,
    pub submit_with: StepResult,
    /// submit_with throughput / submit_without throughput. Target ≥ 0.9.
    pub ratio: Option<f64>,
}

/// A window with no requests: transactions of registration's database and CPU per process.
#[derive(Debug, Clone, Serialize)]
pub struct IdleWindow {
    /// Undelivered outbox events left by the drain just before the window (the relay's work
    /// then counts in the window too; 0 when the drain finished within its bound).
    pub outbox_undelivered: u64,
    pub window_s: f64,
    /// `pg_stat_database` xact_commit + xact_rollback delta of the database over the window.
    pub transactions: u64,
    pub transactions_per_s: f64,
    /// CPU each process used over the window, in percent of one CPU.
    pub cpu_pct_of_one_cpu: BTreeMap<String, f64>,
}

/// 1000 → "1,000".
pub fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// The headline of (g): "submit @4 with 1,000 idle WatchEvents streams: X/s vs Y/s without
/// (ratio R)".
pub fn idle_watchers_headline(w: &IdleWatchers) -> String {
    format!(
        "submit @{} with {} idle WatchEvents streams: {:.0}/s vs {:.0}/s without (ratio {})",
        w.concurrency,
        thousands(w.opened),
        w.submit_with.throughput_per_s,
        w.submit_without.throughput_per_s,
        opt(w.ratio, f2)
    )
}

/// (g) in one line, for the figures block of docs/performance.md and the console.
pub fn idle_watchers_line(r: &Report) -> String {
    let Some(w) = &r.idle_watchers else {
        return String::new();
    };
    let mut s = format!(
        "Idle watchers (g): {}; database transactions/s with only the streams open {:.1} vs {:.1} \
         with none",
        idle_watchers_headline(w),
        w.with_streams.transactions_per_s,
        w.without_streams.transactions_per_s
    );
    if !w.complete() {
        let _ = write!(
            s,
            " — **only {} of {} streams opened, {} still open at the end**",
            w.opened, w.streams, w.still_open_after
        );
    }
    s.push_str(".\n");
    s
}

fn idle_watchers_section(w: &IdleWatchers) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "**{}** — target ≥ 0.9.\n", idle_watchers_headline(w));
    let cpu = |x: &IdleWindow, p: &str| {
        opt(x.cpu_pct_of_one_cpu.get(p).copied(), |v| {
            format!("{v:.1} %")
        })
    };
    let lat = |s: &StepResult| format!("{} / {} / {}", f1(s.p50_ms), f1(s.p95_ms), f1(s.p99_ms));
    let _ = writeln!(
        out,
        "| | no streams | {} idle streams open |\n|---|---:|---:|",
        thousands(w.opened)
    );
    let _ = writeln!(
        out,
        "| SubmitApplication @{}, throughput | {:.0}/s | {:.0}/s |",
        w.concurrency, w.submit_without.throughput_per_s, w.submit_with.throughput_per_s
    );
    let _ = writeln!(
        out,
        "| submit p50 / p95 / p99 ms | {} | {} |",
        lat(&w.submit_without),
        lat(&w.submit_with)
    );
    let _ = writeln!(
        out,
        "| no load: `{}` transactions/s (`pg_stat_database`, {:.0} s) | {:.1} | **{:.1}** |",
        w.database,
        w.with_streams.window_s,
        w.without_streams.transactions_per_s,
        w.with_streams.transactions_per_s
    );
    if w.without_streams.outbox_undelivered + w.with_streams.outbox_undelivered > 0 {
        let _ = writeln!(
            out,
            "| undelivered outbox events left just before the window | {} | {} |",
            w.without_streams.outbox_undelivered, w.with_streams.outbox_undelivered
        );
    }
    for p in ["registration", "postgres"] {
        let _ = writeln!(
            out,
            "| no load: {p} CPU, % of one CPU | {} | {} |",
            cpu(&w.without_streams, p),
            cpu(&w.with_streams, p)
        );
    }
    let _ = writeln!(
        out,
        "\nStreams: {} of {} opened (each `WatchEvents{{account_id: \"acct-idle-<i>\"}}`, an \
         account with no events) in {:.1} s{}; {} still open after the step with them{}; \
         {} heartbeats and {} events received (0 events expected).",
        w.opened,
        w.streams,
        w.open_s,
        if w.open_errors.is_empty() {
            String::new()
        } else {
            format!(", failed: {:?}", w.open_errors)
        },
        w.still_open_after,
        if w.ended.is_empty() {
            String::new()
        } else {
            format!(" (ended: {:?})", w.ended)
        },
        w.heartbeats_received,
        w.events_received
    );
    out
}

#[derive(Debug, Clone, Serialize)]
pub struct ProcessMemory {
    pub process: String,
    pub pid: u32,
    #[serde(flatten)]
    pub memory: Memory,
}

#[derive(Debug, Clone, Serialize)]
pub struct Target {
    pub name: String,
    pub target: String,
    pub measured: String,
    /// None: not measured.
    pub met: Option<bool>,
}

fn f1(x: f64) -> String {
    format!("{x:.1}")
}

fn f2(x: f64) -> String {
    format!("{x:.2}")
}

fn by_c(steps: &[StepResult], c: usize) -> Option<&StepResult> {
    steps.iter().find(|s| s.concurrency == c)
}

fn opt<T>(v: Option<T>, f: impl Fn(T) -> String) -> String {
    v.map_or_else(|| "–".to_string(), f)
}

fn met(m: Option<bool>) -> &'static str {
    match m {
        Some(true) => "met",
        Some(false) => "**MISSED**",
        None => "not measured",
    }
}

/// The main figures table (also copied into docs/performance.md).
pub fn figures_table(r: &Report) -> String {
    let cs = &r.settings.concurrencies;
    let mut out = String::new();
    let _ = write!(out, "| figure |");
    for c in cs {
        let _ = write!(out, " {c} in flight |");
    }
    out.push('\n');
    out.push_str("|---|");
    for _ in cs {
        out.push_str("---:|");
    }
    out.push('\n');
    let mut row = |label: &str, f: &dyn Fn(usize) -> String| {
        let _ = write!(out, "| {label} |");
        for &c in cs {
            let _ = write!(out, " {} |", f(c));
        }
        out.push('\n');
    };
    let tput = |steps: &[StepResult], c: usize| {
        opt(by_c(steps, c), |s| format!("{:.0}/s", s.throughput_per_s))
    };
    let lat = |steps: &[StepResult], c: usize| {
        opt(by_c(steps, c), |s| {
            format!("{} / {} / {}", f1(s.p50_ms), f1(s.p95_ms), f1(s.p99_ms))
        })
    };
    row("(a) one-hop echo, throughput", &|c| tput(&r.echo, c));
    row("(a) echo p50 / p95 / p99 ms", &|c| lat(&r.echo, c));
    row("(b) database transaction, throughput", &|c| {
        tput(&r.database, c)
    });
    row("(b) transaction p50 / p95 / p99 ms", &|c| {
        lat(&r.database, c)
    });
    row("(c) SubmitApplication, throughput", &|c| tput(&r.submit, c));
    row("(c) submit p50 / p95 / p99 ms", &|c| lat(&r.submit, c));
    row("(d) GetApplication, throughput", &|c| tput(&r.get, c));
    row("(d) get p50 / p95 / p99 ms", &|c| lat(&r.get, c));
    let ratio = |c: usize, f: &dyn Fn(&Ratio) -> Option<f64>| {
        opt(r.ratios.iter().find(|x| x.concurrency == c).and_then(f), f2)
    };
    row("(c)/(b), target ≥ 0.5", &|c| {
        ratio(c, &|x| x.submit_over_database)
    });
    row("(d)/(a), target ≥ 0.5", &|c| {
        ratio(c, &|x| x.get_over_echo)
    });
    out
}

pub fn scales_table(r: &Report) -> String {
    let mut out = String::from(
        "| stored applications | (c) submit/s | submit p50 / p95 / p99 ms | (d) get/s | get p50 / p95 / p99 ms |\n|---:|---:|---:|---:|---:|\n",
    );
    for s in &r.scales {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            s.stored,
            opt(s.submit.as_ref(), |x| format!("{:.0}", x.throughput_per_s)),
            opt(s.submit.as_ref(), |x| format!(
                "{} / {} / {}",
                f1(x.p50_ms),
                f1(x.p95_ms),
                f1(x.p99_ms)
            )),
            opt(s.get.as_ref(), |x| format!("{:.0}", x.throughput_per_s)),
            opt(s.get.as_ref(), |x| format!(
                "{} / {} / {}",
                f1(x.p50_ms),
                f1(x.p95_ms),
                f1(x.p99_ms)
            )),
        );
    }
    if let [first, .., last] = r.scales.as_slice() {
        let change = |a: Option<&StepResult>, b: Option<&StepResult>, f: fn(&StepResult) -> f64| {
            match (a, b) {
                (Some(a), Some(b)) if f(a) > 0.0 => {
                    format!("{:+.0} %", (f(b) / f(a) - 1.0) * 100.0)
                }
                _ => "–".into(),
            }
        };
        let _ = writeln!(
            out,
            "| change {} → {} | {} | p99 {} | {} | p99 {} |",
            first.stored,
            last.stored,
            change(first.submit.as_ref(), last.submit.as_ref(), |s| s
                .throughput_per_s),
            change(first.submit.as_ref(), last.submit.as_ref(), |s| s.p99_ms),
            change(first.get.as_ref(), last.get.as_ref(), |s| s
                .throughput_per_s),
            change(first.get.as_ref(), last.get.as_ref(), |s| s.p99_ms),
        );
    }
    out
}

pub fn targets_table(r: &Report) -> String {
    let mut out = String::from("| target | required | measured | verdict |\n|---|---|---|---|\n");
    for t in &r.targets {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            t.name,
            t.target,
            t.measured,
            met(t.met)
        );
    }
    out
}

fn steps_table(title: &str, steps: &[StepResult]) -> String {
    let mut out = format!(
        "#### {title}\n\n| in flight | ok | errors | seconds | per second | mean ms | p50 ms | p95 ms | p99 ms | max ms |\n|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|\n"
    );
    for s in steps {
        let errors = if s.errors.is_empty() {
            "0".to_string()
        } else {
            s.errors
                .iter()
                .map(|(k, n)| format!("{n} {k}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {:.0} | {} | {} | {} | {} | {} |",
            s.concurrency,
            s.ok,
            errors,
            f1(s.elapsed_s),
            s.throughput_per_s,
            f2(s.mean_ms),
            f2(s.p50_ms),
            f2(s.p95_ms),
            f2(s.p99_ms),
            f2(s.max_ms)
        );
    }
    out
}

pub fn markdown(r: &Report) -> String {
    let m = &r.machine;
    let s = &r.settings;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# KooGallery mesh benchmark{}\n",
        if r.quick { " (quick smoke run)" } else { "" }
    );
    let _ = writeln!(
        out,
        "Generated by `kg-bench` at {} — command: `{}`{}.\n",
        r.generated_at,
        r.command,
        if r.complete {
            ""
        } else {
            " — **INCOMPLETE RUN, see the notes**"
        }
    );
    let _ = writeln!(
        out,
        "Machine: {} CPUs ({}), {} MiB memory, Linux {}, load average {} at the start; \
         PostgreSQL {}; Redis {}; commit {}.\n",
        m.nproc,
        m.cpu_model,
        m.memory_total_mib,
        m.kernel,
        m.load_average_at_start,
        m.postgres_version,
        m.redis_version,
        m.git_commit
    );
    let _ = writeln!(
        out,
        "Authentication: **{}**. Steps: {} s each after {} s of warm-up (or {} requests, {} submissions, \
         whichever first); {} client connections per target; closed loop (each request in flight is \
         one worker that sends the next request when the previous one returns).\n",
        s.auth, s.step_secs, s.warmup_secs, s.max_requests, s.max_submits, s.connections
    );
    out.push_str("## Figures\n\n");
    out.push_str(&figures_table(r));
    out.push_str("\nThroughput is successful requests per second of wall time; latencies are measured at the client.\n\n");
    out.push_str("## Targets\n\n");
    out.push_str(&targets_table(r));
    out.push('\n');
    let _ = writeln!(
        out,
        "## Stored applications\n\n(c) and (d) at {} in flight as the registration database grows \
         (pre-loaded with batched INSERTs, not through gRPC).\n",
        s.scale_concurrency
    );
    out.push_str(&scales_table(r));
    for sc in &r.scales {
        let _ = writeln!(
            out,
            "\n- target {}: {} rows pre-loaded in {:.1} s, {} stored when measured",
            sc.target, sc.preloaded, sc.preload_s, sc.stored
        );
    }
    out.push_str("\n## Asynchronous pipeline (e)\n\n");
    let p = &r.pipeline;
    if p.available {
        let lat = |l: &Option<Latency>| {
            opt(l.as_ref(), |l| {
                format!(
                    "p50 {} ms, p95 {} ms, max {} ms ({} samples)",
                    f1(l.p50_ms),
                    f1(l.p95_ms),
                    f1(l.max_ms),
                    l.n
                )
            })
        };
        let _ = writeln!(
            out,
            "{} submissions, {} in flight, each followed by polling every 10 ms (bound {} s); \
             time from the SubmitApplication reply until the item is listed.\n\n\
             | item | latency | timed out |\n|---|---|---:|\n\
             | review task (ListReviewTasks, `subject`) | {} | {} |\n\
             | notification APPLICATION_RECEIVED (ListNotifications, `subject`) | {} | {} |",
            p.samples,
            p.concurrency,
            p.timeout_s,
            lat(&p.review_task),
            p.review_timeouts,
            lat(&p.notification),
            p.notification_timeouts
        );
    } else {
        let _ = writeln!(
            out,
            "**Not available**: {}",
            p.reason.as_deref().unwrap_or("not measured")
        );
    }
    out.push_str(
        "\n## Outbox backlog\n\n| when | undelivered `registration_outbox` events |\n|---|---:|\n",
    );
    for b in &r.outbox.after_steps {
        let _ = writeln!(out, "| {} | {} |", b.step, b.undelivered);
    }
    if let Some(n) = r.outbox.backlog_at_switch {
        let _ = writeln!(
            out,
            "| first database, when registration moved to the stored-applications database | {n} |"
        );
    }
    let _ = writeln!(
        out,
        "| end of the run | **{}** |",
        opt(r.outbox.backlog_at_end, |n| n.to_string())
    );
    if let Some(rr) = &r.outbox.relay {
        let _ = writeln!(
            out,
            "\nRelay with no load, watched for {:.0} s after the SubmitApplication steps: {} → {} \
             undelivered, **{:.1} events delivered per second** (review and notification \
             together; each submission writes two).",
            rr.window_s, rr.undelivered_before, rr.undelivered_after, rr.delivered_per_s
        );
    }
    if let Some(w) = &r.idle_watchers {
        out.push_str("\n## Idle WatchEvents streams (g)\n\n");
        out.push_str(&idle_watchers_section(w));
    }
    out.push_str(
        "\n## Peak memory (f)\n\n| process | VmHWM MiB | VmRSS at end MiB |\n|---|---:|---:|\n",
    );
    for pm in &r.memory {
        let _ = writeln!(
            out,
            "| {} | {:.1} | {:.1} |",
            pm.process,
            pm.memory.vm_hwm_kib as f64 / 1024.0,
            pm.memory.vm_rss_kib as f64 / 1024.0
        );
    }
    out.push_str("\n## Where the CPU goes\n\n");
    out.push_str(&cpu_table(r));
    out.push_str("\n## Every step\n\n");
    out.push_str(&steps_table("(a) one-hop echo", &r.echo));
    out.push('\n');
    out.push_str(&steps_table("(b) database transaction", &r.database));
    out.push('\n');
    out.push_str(&steps_table("(c) SubmitApplication", &r.submit));
    out.push('\n');
    out.push_str(&steps_table("(d) GetApplication", &r.get));
    if let Some(w) = &r.idle_watchers {
        out.push('\n');
        out.push_str(&steps_table(
            "(g) SubmitApplication, no streams",
            std::slice::from_ref(&w.submit_without),
        ));
        out.push('\n');
        out.push_str(&steps_table(
            &format!(
                "(g) SubmitApplication, {} idle WatchEvents streams",
                thousands(w.opened)
            ),
            std::slice::from_ref(&w.submit_with),
        ));
    }
    for sc in &r.scales {
        let steps: Vec<StepResult> = sc.submit.iter().cloned().collect();
        out.push('\n');
        out.push_str(&steps_table(
            &format!("(c) SubmitApplication, {} stored", sc.stored),
            &steps,
        ));
        let steps: Vec<StepResult> = sc.get.iter().cloned().collect();
        out.push('\n');
        out.push_str(&steps_table(
            &format!("(d) GetApplication, {} stored", sc.stored),
            &steps,
        ));
    }
    out.push_str("\n## Method\n\n");
    let _ = writeln!(out, "- echo: {}", s.echo);
    let _ = writeln!(out, "- database: {}", s.database);
    let _ = writeln!(out, "- stored rows: {}", s.stored_row);
    if !r.notes.is_empty() {
        out.push_str("\n## Notes\n\n");
        for n in &r.notes {
            let _ = writeln!(out, "- {n}");
        }
    }
    out
}

const CPU_COLUMNS: [&str; 8] = [
    "identity-check",
    "registration",
    "review",
    "notification",
    "postgres",
    "redis",
    "echo",
    "kg-bench",
];

/// CPU milliseconds per successful request of each process, per measured step.
pub fn cpu_table(r: &Report) -> String {
    let mut out = String::from(
        "CPU milliseconds per successful request, by process, during each measured step \
         (`/proc/<pid>/stat`; postgres counts the postmaster and all its backends; kg-bench is the \
         load generator and the local website). Busy: all of them together as a share of all \
         CPUs; other: CPU used by processes outside the benchmark (anything above a few percent \
         disturbed the step).\n\n| step | in flight | busy | other |",
    );
    for c in CPU_COLUMNS {
        let _ = write!(out, " {c} |");
    }
    out.push_str("\n|---|---:|---:|---:|");
    for _ in CPU_COLUMNS {
        out.push_str("---:|");
    }
    out.push('\n');
    let mut rows: Vec<(String, &StepResult)> = Vec::new();
    for (label, steps) in [
        ("(a) echo", &r.echo),
        ("(b) database", &r.database),
        ("(c) submit", &r.submit),
        ("(d) get", &r.get),
    ] {
        rows.extend(steps.iter().map(|s| (label.to_string(), s)));
    }
    if let Some(w) = &r.idle_watchers {
        rows.push(("(g) submit, no streams".into(), &w.submit_without));
        rows.push((
            format!("(g) submit, {} idle streams", thousands(w.opened)),
            &w.submit_with,
        ));
    }
    for sc in &r.scales {
        if let Some(s) = &sc.submit {
            rows.push((format!("(c) submit, {} stored", sc.stored), s));
        }
        if let Some(s) = &sc.get {
            rows.push((format!("(d) get, {} stored", sc.stored), s));
        }
    }
    for (label, s) in rows {
        let _ = write!(
            out,
            "| {label} | {} | {} | {} |",
            s.concurrency,
            opt(s.cpu_busy_pct, |p| format!("{p:.0} %")),
            opt(s.foreign_cpu_pct, |p| format!("{p:.0} %"))
        );
        for c in CPU_COLUMNS {
            let _ = write!(
                out,
                " {} |",
                opt(s.cpu_ms_per_ok.get(c).copied(), |v| if v >= 0.05 {
                    format!("{v:.2}")
                } else {
                    "·".into()
                })
            );
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::thousands;

    #[test]
    fn thousands_separator() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
