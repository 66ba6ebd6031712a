//! What the figures say against the targets: the ratios, the Targets table, and the notes on
//! missed targets, errors and steps other processes disturbed.

use crate::load::StepResult;
use crate::plan::Plan;
use crate::report::{self, Ratio, Report, Target};

/// Fills in the ratios, targets and the notes they call for, after every step ran.
pub fn judge(report: &mut Report, plan: &Plan) {
    report.ratios = ratios(plan, report);
    report.targets = targets(plan, report);
    let missed: Vec<&str> = report
        .targets
        .iter()
        .filter(|t| t.met == Some(false))
        .map(|t| t.name.as_str())
        .collect();
    let verdict = if missed.is_empty() {
        "Every target was met.".to_string()
    } else {
        format!("Targets MISSED (for profiling): {}.", missed.join("; "))
    };
    report.notes.push(verdict);
    let errors = error_notes(report);
    report.notes.extend(errors);
    if let Some(note) = disturbed_note(report) {
        report.notes.push(note);
    }
    report.notes.push(
        "Everything runs on the same machine: the load generator, the local website, PostgreSQL, \
         Redis and the four services share its CPUs, so the figures are CPU-bound upper limits \
         of this box, not of a deployment."
            .into(),
    );
    report.notes.push(
        "SMTP and SMS are not configured for notification (KG_SMTP_URL / KG_SMS_URL unset): its \
         deliveries are created and listed but not sent; (e) measures until the delivery exists."
            .into(),
    );
}

fn ratios(plan: &Plan, r: &Report) -> Vec<Ratio> {
    plan.concurrency
        .iter()
        .map(|&c| {
            let t = |v: &[StepResult]| {
                v.iter()
                    .find(|s| s.concurrency == c)
                    .map(|s| s.throughput_per_s)
            };
            let div = |a: Option<f64>, b: Option<f64>| match (a, b) {
                (Some(a), Some(b)) if b > 0.0 => Some(a / b),
                _ => None,
            };
            Ratio {
                concurrency: c,
                submit_over_database: div(t(&r.submit), t(&r.database)),
                get_over_echo: div(t(&r.get), t(&r.echo)),
            }
        })
        .collect()
}

fn targets(plan: &Plan, r: &Report) -> Vec<Target> {
    let mut targets = Vec::new();
    for x in &r.ratios {
        targets.push(Target {
            name: format!("(c)/(b) at {} in flight", x.concurrency),
            target: "≥ 0.5".into(),
            measured: x
                .submit_over_database
                .map_or("–".into(), |v| format!("{v:.2}")),
            met: x.submit_over_database.map(|v| v >= 0.5),
        });
    }
    for x in &r.ratios {
        targets.push(Target {
            name: format!("(d)/(a) at {} in flight", x.concurrency),
            target: "≥ 0.5".into(),
            measured: x.get_over_echo.map_or("–".into(), |v| format!("{v:.2}")),
            met: x.get_over_echo.map(|v| v >= 0.5),
        });
    }
    // Issue 18 asks for 25 ms at 8 in flight; the earlier target (issue 12) at 32 stays listed,
    // and the stored-applications steps run at `--scale-concurrency`.
    let p99_within_25_ms = |s: Option<&StepResult>, in_flight: usize, label: &str| Target {
        name: format!("submit p99 at {in_flight} in flight{label}"),
        target: "≤ 25 ms".into(),
        measured: s.map_or("–".into(), |s| format!("{:.1} ms", s.p99_ms)),
        met: s.map(|s| s.p99_ms <= 25.0 && s.ok > 0),
    };
    for in_flight in [8, 32] {
        let step = r.submit.iter().find(|s| s.concurrency == in_flight);
        targets.push(p99_within_25_ms(step, in_flight, ""));
    }
    for sc in &r.scales {
        targets.push(p99_within_25_ms(
            sc.submit.as_ref(),
            plan.scale_concurrency,
            &format!(", {} stored", sc.stored),
        ));
    }
    if let Some(w) = &r.idle_watchers {
        targets.push(Target {
            name: format!(
                "submit @{} with {} idle WatchEvents streams / without",
                w.concurrency,
                report::thousands(w.streams)
            ),
            target: "≥ 0.9".into(),
            measured: format!(
                "{:.0}/s vs {:.0}/s ({}){}",
                w.submit_with.throughput_per_s,
                w.submit_without.throughput_per_s,
                w.ratio.map_or("–".into(), |x| format!("{x:.2}")),
                if w.complete() {
                    String::new()
                } else {
                    format!(", only {} streams open", w.still_open_after)
                }
            ),
            met: w.ratio.map(|x| x >= 0.9 && w.complete()),
        });
    }
    for m in &r.memory {
        if m.process.starts_with("echo") {
            continue;
        }
        let mib = m.memory.vm_hwm_kib as f64 / 1024.0;
        targets.push(Target {
            name: format!("peak memory of {}", m.process),
            target: "< 50 MiB".into(),
            measured: format!("{mib:.1} MiB"),
            met: Some(mib < 50.0),
        });
    }
    targets
}

fn error_notes(r: &Report) -> Vec<String> {
    let mut notes = Vec::new();
    for (label, steps) in [
        ("echo", &r.echo),
        ("database", &r.database),
        ("submit", &r.submit),
        ("get", &r.get),
    ] {
        for s in steps.iter() {
            if s.error_count() > 0 {
                notes.push(format!(
                    "{label} at {} in flight had errors: {:?}",
                    s.concurrency, s.errors
                ));
            }
        }
    }
    if let Some(w) = &r.idle_watchers {
        for (label, s) in [
            ("(g) submit without the idle streams", &w.submit_without),
            ("(g) submit with the idle streams", &w.submit_with),
        ] {
            if s.error_count() > 0 {
                notes.push(format!(
                    "{label} at {} in flight had errors: {:?}",
                    s.concurrency, s.errors
                ));
            }
        }
    }
    notes
}

/// Other processes' CPU above 10 % of the machine makes a step's figures suspect.
fn disturbed_note(r: &Report) -> Option<String> {
    let disturbed: Vec<String> = [
        ("echo", &r.echo),
        ("database", &r.database),
        ("submit", &r.submit),
        ("get", &r.get),
    ]
    .iter()
    .flat_map(|(label, steps)| {
        steps.iter().filter_map(move |s| {
            s.foreign_cpu_pct
                .filter(|&p| p > 10.0)
                .map(|p| format!("{label} at {} in flight ({p:.0} %)", s.concurrency))
        })
    })
    .chain(r.scales.iter().flat_map(|sc| {
        [("submit", &sc.submit), ("get", &sc.get)]
            .into_iter()
            .filter_map(|(label, s)| {
                let p = s.as_ref()?.foreign_cpu_pct.filter(|&p| p > 10.0)?;
                Some(format!("{label} with {} stored ({p:.0} %)", sc.stored))
            })
            .collect::<Vec<_>>()
    }))
    .chain(r.idle_watchers.iter().flat_map(|w| {
        [("without", &w.submit_without), ("with", &w.submit_with)]
            .into_iter()
            .filter_map(|(label, s)| {
                let p = s.foreign_cpu_pct.filter(|&p| p > 10.0)?;
                Some(format!("(g) submit {label} the idle streams ({p:.0} %)"))
            })
            .collect::<Vec<_>>()
    }))
    .collect();
    (!disturbed.is_empty()).then(|| {
        format!(
            "DISTURBED: processes outside the benchmark used more than 10 % of the machine's CPU \
             during: {}. Run again on a quiet machine before trusting those figures.",
            disturbed.join(", ")
        )
    })
}
