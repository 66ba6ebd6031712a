//! The tables and lines the report, the console and docs/performance.md's figures block share,
//! and the formatting helpers of the whole report.

use std::fmt::Write as _;

use super::{IdleWatchers, Ratio, Report, TokenVerification};
use crate::load::StepResult;

/// "p50 / p95 / p99" of a step, in milliseconds.
pub(super) fn percentiles(s: &StepResult) -> String {
    format!("{} / {} / {}", f1(s.p50_ms), f1(s.p95_ms), f1(s.p99_ms))
}

pub(super) fn f1(x: f64) -> String {
    format!("{x:.1}")
}

pub(super) fn f2(x: f64) -> String {
    format!("{x:.2}")
}

pub(super) fn by_c(steps: &[StepResult], c: usize) -> Option<&StepResult> {
    steps.iter().find(|s| s.concurrency == c)
}

pub(super) fn opt<T>(v: Option<T>, f: impl Fn(T) -> String) -> String {
    v.map_or_else(|| "–".to_string(), f)
}

pub(super) fn met(m: Option<bool>) -> &'static str {
    match m {
        Some(true) => "met",
        Some(false) => "**MISSED**",
        None => "not measured",
    }
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

/// The cost of one token verification in one line, for the figures block and the console.
pub fn verification_line(v: &TokenVerification) -> String {
    format!(
        "Token verification: {} µs per {} verify on one core ({:.0} verifications/s; p99 {} µs; \
         {} tokens of {} bytes, in process).\n",
        f2(v.mean_us),
        v.algorithm,
        v.per_s,
        f2(v.p99_us),
        v.verifications,
        v.token_bytes
    )
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
    let lat = |steps: &[StepResult], c: usize| opt(by_c(steps, c), percentiles);
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
            opt(s.submit.as_ref(), percentiles),
            opt(s.get.as_ref(), |x| format!("{:.0}", x.throughput_per_s)),
            opt(s.get.as_ref(), percentiles),
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
