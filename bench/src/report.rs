//! The report: one JSON document with every figure, and a Markdown rendering of it.

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
