//! The figures block of docs/performance.md, rewritten by every full run.

use std::path::Path;

use super::{Latency, Report, tables};
use crate::console::say;

/// Replaces the figures block of docs/performance.md (when the markers are there).
pub fn update_performance_doc(path: &Path, report: &Report) -> anyhow::Result<()> {
    const BEGIN: &str = "<!-- bench:figures:begin -->";
    const END: &str = "<!-- bench:figures:end -->";
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(());
    };
    let (Some(b), Some(e)) = (text.find(BEGIN), text.find(END)) else {
        return Ok(());
    };
    if e < b {
        return Ok(());
    }
    let m = &report.machine;
    let block = format!(
        "{BEGIN}\nFrom `docs/bench/latest.md`, generated {} on {} CPUs ({}), {} MiB, PostgreSQL {}, \
         commit {}; authentication {}.\n\n{}\n{}\n{}\n{}{}{}",
        report.generated_at,
        m.nproc,
        m.cpu_model,
        m.memory_total_mib,
        m.postgres_version,
        m.git_commit,
        report.settings.auth,
        tables::figures_table(report),
        tables::scales_table(report),
        tables::targets_table(report),
        pipeline_memory_lines(report),
        tables::verification_line(&report.token_verification),
        tables::idle_watchers_line(report),
    );
    let updated = format!("{}{}{}", &text[..b], block, &text[e..]);
    std::fs::write(path, updated)?;
    say(format!("updated the figures in {}", path.display()));
    Ok(())
}

fn pipeline_memory_lines(r: &Report) -> String {
    let p = &r.pipeline;
    let mut s = String::new();
    if p.available {
        let l = |x: &Option<Latency>| {
            x.as_ref().map_or("–".to_string(), |l| {
                format!("p50 {:.1} ms / p95 {:.1} ms", l.p50_ms, l.p95_ms)
            })
        };
        s.push_str(&format!(
            "Pipeline (e): review task {}, notification {}; ",
            l(&p.review_task),
            l(&p.notification)
        ));
    } else {
        s.push_str(&format!(
            "Pipeline (e): not available ({}); ",
            p.reason.as_deref().unwrap_or("not measured")
        ));
    }
    s.push_str(&format!(
        "outbox backlog at the end: {}. Peak memory (VmHWM): {}.\n",
        r.outbox
            .backlog_at_end
            .map_or("–".into(), |n| n.to_string()),
        r.memory
            .iter()
            .map(|m| format!(
                "{} {:.1} MiB",
                m.process,
                m.memory.vm_hwm_kib as f64 / 1024.0
            ))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    s
}
