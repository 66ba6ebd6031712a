//! gRPC health that tells the truth: NOT_SERVING until every dependency (the database, Redis)
//! answers, and back to NOT_SERVING while one stops answering or the process is shutting down.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::shutdown::Shutdown;

/// A named dependency check. The probes of this crate's dependencies are built next to what
/// they probe, so that this module needs neither: [`Probe::database`] in [`crate::db`],
/// registration's lock probe in its `lock.rs`.
#[derive(Clone)]
pub struct Probe {
    pub name: &'static str,
    check: Arc<dyn Fn() -> BoxFuture<'static, bool> + Send + Sync>,
}

impl Probe {
    pub fn new<F, Fut>(name: &'static str, check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = bool> + Send + 'static,
    {
        Self {
            name,
            check: Arc::new(move || Box::pin(check())),
        }
    }

    pub async fn check(&self) -> bool {
        (self.check)().await
    }
}

/// How often the dependencies are probed by default: with [`PROBE_TIMEOUT`], a dependency that
/// stops answering turns health NOT_SERVING within about 0.75 s.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(250);

/// How long one probe may take before it counts as a failure.
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

/// Polls the probes every `interval` (all of them at once, each bounded by `timeout`) and
/// publishes the result for `""` and for each gRPC service name. One failed or late probe turns
/// health NOT_SERVING; the next round in which every probe answers turns it SERVING again.
pub async fn watch(
    reporter: HealthReporter,
    service_names: Vec<String>,
    probes: Vec<Probe>,
    interval: Duration,
    timeout: Duration,
    shutdown: Shutdown,
) {
    let mut last: Option<bool> = None;
    loop {
        let round = tokio::time::Instant::now();
        let results = futures::future::join_all(probes.iter().map(|probe| async move {
            let answered = tokio::time::timeout(timeout, probe.check())
                .await
                .unwrap_or(false);
            (probe.name, answered)
        }))
        .await;
        let mut healthy = true;
        for (name, answered) in results {
            if !answered {
                if last != Some(false) {
                    tracing::warn!(dependency = name, "dependency not answering; NOT_SERVING");
                }
                healthy = false;
            }
        }
        if shutdown.is_triggered() {
            healthy = false;
        }
        if last != Some(healthy) {
            let status = if healthy {
                ServingStatus::Serving
            } else {
                ServingStatus::NotServing
            };
            for name in std::iter::once("").chain(service_names.iter().map(String::as_str)) {
                reporter.set_service_status(name, status).await;
            }
            if healthy && last.is_some() {
                tracing::info!("dependencies answer again; SERVING");
            }
            last = Some(healthy);
        }
        if shutdown.is_triggered() {
            return;
        }
        // rounds start `interval` apart (a slow round is followed at once by the next)
        tokio::select! {
            _ = tokio::time::sleep_until(round + interval) => {},
            _ = shutdown.clone().wait() => {},
        }
    }
}
