//! The closed-loop load driver shared by every step: `concurrency` workers, each issuing one
//! request at a time, until the step's duration or request budget runs out, whichever first.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

/// When a step ends: after `duration`, or after `max_requests` requests were started.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub duration: Duration,
    pub max_requests: u64,
}

/// What one measured step produced.
#[derive(Debug, Clone, Serialize)]
pub struct StepResult {
    /// Requests in flight (closed loop: one worker per request in flight).
    pub concurrency: usize,
    /// Requests that succeeded.
    pub ok: u64,
    /// Requests that failed, by gRPC code (or error kind).
    pub errors: BTreeMap<String, u64>,
    /// Wall time of the step, from its start until the last request returned.
    pub elapsed_s: f64,
    /// Successful requests per second of wall time.
    pub throughput_per_s: f64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// CPU milliseconds each process spent per successful request during the step (service
    /// processes, PostgreSQL with all its backends, Redis, and kg-bench itself: load generator
    /// and local website).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub cpu_ms_per_ok: BTreeMap<String, f64>,
    /// CPU used by all of those together, as a share of every CPU of the machine.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_busy_pct: Option<f64>,
    /// CPU used during the step by processes outside the benchmark, as a share of every CPU:
    /// more than a few percent means the figures were disturbed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub foreign_cpu_pct: Option<f64>,
}

impl StepResult {
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// A failed request: a short kind (the gRPC code name) and one example message.
#[derive(Debug, Clone)]
pub struct Failure {
    pub kind: String,
    pub message: String,
}

impl From<tonic::Status> for Failure {
    fn from(s: tonic::Status) -> Self {
        Failure {
            kind: format!("{:?}", s.code()),
            message: s.message().chars().take(300).collect(),
        }
    }
}

impl From<sea_orm::DbErr> for Failure {
    fn from(e: sea_orm::DbErr) -> Self {
        Failure {
            kind: "DbErr".into(),
            message: e.to_string().chars().take(300).collect(),
        }
    }
}

impl Failure {
    pub fn other(kind: &str, message: impl Into<String>) -> Self {
        Failure {
            kind: kind.into(),
            message: message.into(),
        }
    }
}

/// Runs `op(request_index, worker_index)` from `concurrency` workers until the budget runs out.
/// Latencies of successful requests feed the percentiles; failures are counted by kind, and the
/// first message of each kind is printed once.
pub async fn drive<F, Fut>(concurrency: usize, budget: Budget, op: F) -> StepResult
where
    F: Fn(u64, usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), Failure>> + Send + 'static,
{
    let op = Arc::new(op);
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut workers = Vec::with_capacity(concurrency);
    for worker in 0..concurrency {
        let op = op.clone();
        let next = next.clone();
        workers.push(tokio::spawn(async move {
            let mut latencies: Vec<u32> = Vec::new();
            let mut errors: BTreeMap<String, (u64, String)> = BTreeMap::new();
            loop {
                if start.elapsed() >= budget.duration {
                    break;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= budget.max_requests {
                    break;
                }
                let t = Instant::now();
                match op(i, worker).await {
                    Ok(()) => {
                        latencies.push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX))
                    }
                    Err(f) => {
                        let e = errors.entry(f.kind).or_insert((0, f.message));
                        e.0 += 1;
                    }
                }
            }
            (latencies, errors)
        }));
    }
    let mut all: Vec<u32> = Vec::new();
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    let mut examples: BTreeMap<String, String> = BTreeMap::new();
    for w in workers {
        match w.await {
            Ok((lat, errs)) => {
                all.extend(lat);
                for (kind, (n, message)) in errs {
                    *errors.entry(kind.clone()).or_default() += n;
                    examples.entry(kind).or_insert(message);
                }
            }
            Err(e) => *errors.entry(format!("worker panicked: {e}")).or_default() += 1,
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    for (kind, message) in &examples {
        eprintln!(
            "    ! {} × {kind}: {message}",
            errors.get(kind).copied().unwrap_or(0)
        );
    }
    summarize(concurrency, all, errors, elapsed)
}

fn summarize(
    concurrency: usize,
    mut micros: Vec<u32>,
    errors: BTreeMap<String, u64>,
    elapsed_s: f64,
) -> StepResult {
    micros.sort_unstable();
    let ok = micros.len() as u64;
    let mean_ms = if micros.is_empty() {
        0.0
    } else {
        micros.iter().map(|&m| f64::from(m)).sum::<f64>() / micros.len() as f64 / 1000.0
    };
    StepResult {
        concurrency,
        ok,
        errors,
        elapsed_s,
        throughput_per_s: if elapsed_s > 0.0 {
            ok as f64 / elapsed_s
        } else {
            0.0
        },
        mean_ms,
        p50_ms: percentile_ms(&micros, 50.0),
        p95_ms: percentile_ms(&micros, 95.0),
        p99_ms: percentile_ms(&micros, 99.0),
        max_ms: micros.last().map_or(0.0, |&m| f64::from(m) / 1000.0),
        cpu_ms_per_ok: BTreeMap::new(),
        cpu_busy_pct: None,
        foreign_cpu_pct: None,
    }
}

/// Nearest-rank percentile of sorted microseconds, in milliseconds (0 when empty).
pub fn percentile_ms(sorted_micros: &[u32], p: f64) -> f64 {
    if sorted_micros.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted_micros.len() as f64).ceil() as usize;
    let idx = rank.clamp(1, sorted_micros.len()) - 1;
    f64::from(sorted_micros[idx]) / 1000.0
}

/// A well-mixed 64-bit hash of `i` (splitmix64): picks "random" stored rows without a
/// random-number generator, the same picks on every run.
pub fn mix(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let v: Vec<u32> = (1..=100).map(|i| i * 1000).collect();
        assert_eq!(percentile_ms(&v, 50.0), 50.0);
        assert_eq!(percentile_ms(&v, 99.0), 99.0);
        assert_eq!(percentile_ms(&v, 100.0), 100.0);
        assert_eq!(percentile_ms(&[], 50.0), 0.0);
        assert_eq!(percentile_ms(&[7000], 1.0), 7.0);
    }

    #[tokio::test]
    async fn budget_by_count() {
        let r = drive(
            4,
            Budget {
                duration: Duration::from_secs(10),
                max_requests: 20,
            },
            |i, _| async move {
                if i % 5 == 0 {
                    Err(Failure::other("odd", "every fifth"))
                } else {
                    Ok(())
                }
            },
        )
        .await;
        assert_eq!(r.ok, 16);
        assert_eq!(r.error_count(), 4);
    }
}
