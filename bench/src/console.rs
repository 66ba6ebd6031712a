//! Progress on stderr, so that a long run shows where it is and stdout keeps only the figures.

use crate::load::StepResult;

pub fn say(msg: impl AsRef<str>) {
    eprintln!(
        "[kg-bench {}] {}",
        chrono::Utc::now().format("%H:%M:%S"),
        msg.as_ref()
    );
}

pub fn show(label: &str, s: &StepResult) {
    say(format!(
        "  {label} @{}: {:.0}/s, p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms ({} ok, {} errors)",
        s.concurrency,
        s.throughput_per_s,
        s.p50_ms,
        s.p95_ms,
        s.p99_ms,
        s.ok,
        s.error_count()
    ));
}
