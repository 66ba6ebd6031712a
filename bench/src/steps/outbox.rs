//! The outbox relay as the steps see it: what is left undelivered after a step, waiting for it
//! to empty, and its delivery rate with no load.

use std::time::{Duration, Instant};

use sea_orm::DatabaseConnection;

use crate::console::say;
use crate::db;
use crate::report::{Backlog, Drain, RelayRate};

/// Waits (bounded) until every outbox event is delivered.
pub async fn drain(db: &DatabaseConnection, step: &str, bound: Duration) -> anyhow::Result<Drain> {
    let backlog = db::outbox_backlog(db).await?;
    let started = Instant::now();
    let mut remaining = backlog;
    while remaining > 0 && started.elapsed() < bound {
        tokio::time::sleep(Duration::from_millis(200)).await;
        remaining = db::outbox_backlog(db).await?;
    }
    let d = Drain {
        step: step.to_string(),
        backlog,
        drained_in_s: (remaining == 0).then(|| started.elapsed().as_secs_f64()),
        remaining,
    };
    say(format!(
        "  outbox after {step}: {backlog} undelivered, {}",
        match d.drained_in_s {
            Some(s) => format!("delivered within {s:.1} s"),
            None => format!("{remaining} left after {:.0} s", bound.as_secs_f64()),
        }
    ));
    Ok(d)
}

pub async fn backlog(db: &DatabaseConnection, step: &str) -> anyhow::Result<Backlog> {
    let undelivered = db::outbox_backlog(db).await?;
    say(format!("  outbox {step}: {undelivered} undelivered"));
    Ok(Backlog {
        step: step.to_string(),
        undelivered,
    })
}

/// Watches the relay deliver, with no load, for `window` (less when the backlog empties).
pub async fn relay_rate(db: &DatabaseConnection, window: Duration) -> anyhow::Result<RelayRate> {
    let before = db::outbox_backlog(db).await?;
    let started = Instant::now();
    let mut after = before;
    while after > 0 && started.elapsed() < window {
        tokio::time::sleep(Duration::from_millis(250)).await;
        after = db::outbox_backlog(db).await?;
    }
    let window_s = started.elapsed().as_secs_f64();
    let rate = RelayRate {
        window_s,
        undelivered_before: before,
        undelivered_after: after,
        delivered_per_s: if window_s > 0.0 {
            before.saturating_sub(after) as f64 / window_s
        } else {
            0.0
        },
    };
    say(format!(
        "  relay: {before} → {after} undelivered in {window_s:.1} s = {:.1} events/s",
        rate.delivered_per_s
    ));
    Ok(rate)
}
