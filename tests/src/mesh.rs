//! The services of the mesh, started in this process on port 0 against a fresh database each,
//! with handles to stop and restart them.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use kg_runtime::config::CommonConfig;
use kg_runtime::shutdown::{Shutdown, ShutdownTrigger};
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// The HS256 secret every test mesh with authentication on shares (at least 32 bytes, as the
/// services require). One secret: a token minted by any helper verifies in any test's mesh.
pub const TEST_SECRET: &str = "koogallery-test-secret-0123456789abcdef";

/// The database the integration tests run against: `KG_TEST_DATABASE=sqlite` or `postgres`
/// (the default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

pub fn backend() -> Backend {
    match std::env::var("KG_TEST_DATABASE").as_deref() {
        Ok("sqlite") => Backend::Sqlite,
        _ => Backend::Postgres,
    }
}

/// A fresh, empty database for one service of one test.
pub struct TestDb {
    pub url: String,
    _dir: Option<TempDir>,
}

pub async fn fresh_db() -> anyhow::Result<TestDb> {
    match backend() {
        Backend::Postgres => Ok(TestDb {
            url: crate::shared_postgres().await?.fresh_database().await?,
            _dir: None,
        }),
        Backend::Sqlite => {
            let dir = crate::test_tempdir("sqlite")?;
            let url = format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("db.sqlite").display()
            );
            Ok(TestDb {
                url,
                _dir: Some(dir),
            })
        }
    }
}

pub fn common(database_url: &str) -> CommonConfig {
    CommonConfig {
        database_url: Some(database_url.into()),
        shutdown_grace_secs: 10,
        // tests drive the services hard from one caller; tests/tests/security turns it on
        rate_limit_per_sec: 0.0,
        ..Default::default()
    }
}

/// One service running in this process.
pub struct Running {
    pub addr: SocketAddr,
    trigger: ShutdownTrigger,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// Binds `addr` (port 0 for any), runs the service and waits until it reports SERVING.
    pub async fn start<F, Fut>(addr: SocketAddr, run: F) -> anyhow::Result<Running>
    where
        F: FnOnce(TcpListener, Shutdown) -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let listener = bind_retrying(addr).await?;
        let addr = listener.local_addr()?;
        let (trigger, shutdown) = Shutdown::new();
        let task = tokio::spawn(run(listener, shutdown));
        let running = Running {
            addr,
            trigger,
            task,
        };
        running
            .wait_for(ServingStatus::Serving, Duration::from_secs(20))
            .await?;
        Ok(running)
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn channel(&self) -> anyhow::Result<Channel> {
        channel(&self.url()).await
    }

    /// Graceful stop; returns the service's own result.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.trigger.trigger();
        self.task.await.context("service task panicked")?
    }

    pub async fn health(&self) -> anyhow::Result<ServingStatus> {
        health(&self.url(), "").await
    }

    pub async fn wait_for(&self, want: ServingStatus, within: Duration) -> anyhow::Result<()> {
        let started = Instant::now();
        let mut last = None;
        while started.elapsed() < within {
            if self.task.is_finished() {
                anyhow::bail!("service at {} exited while waiting for {want:?}", self.addr);
            }
            match self.health().await {
                Ok(status) if status == want => return Ok(()),
                other => last = Some(format!("{other:?}")),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        anyhow::bail!(
            "service at {} not {want:?} within {within:?}; last: {last:?}",
            self.addr
        )
    }
}

async fn bind_retrying(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    // A restarted service rebinds its old port; the previous listener may need a moment.
    let mut last = None;
    for _ in 0..50 {
        match TcpListener::bind(addr).await {
            Ok(l) => return Ok(l),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(anyhow::anyhow!("cannot bind {addr}: {last:?}"))
}

pub async fn channel(url: &str) -> anyhow::Result<Channel> {
    Ok(Endpoint::from_shared(url.to_string())?
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(30))
        .connect_lazy())
}

pub async fn health(url: &str, service: &str) -> anyhow::Result<ServingStatus> {
    let reply = HealthClient::new(channel(url).await?)
        .check(HealthCheckRequest {
            service: service.to_string(),
        })
        .await?
        .into_inner();
    Ok(ServingStatus::try_from(reply.status).unwrap_or(ServingStatus::Unknown))
}

pub fn any_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

pub async fn start_identity(db: &str, allow_loopback: bool) -> anyhow::Result<Running> {
    let config = kg_identity_check::Config {
        common: common(db),
        website_test_allowlist: if allow_loopback {
            vec!["127.0.0.1/32".to_string()]
        } else {
            Vec::new()
        },
    };
    Running::start(any_port(), move |l, s| kg_identity_check::run(config, l, s)).await
}

pub fn registration_config(
    db: &str,
    identity_url: &str,
    redis_url: Option<String>,
) -> kg_registration::Config {
    kg_registration::Config {
        common: common(db),
        redis_url: redis_url.map(Into::into),
        identity_check_url: identity_url.to_string(),
        call_timeout_ms: 10_000,
        lock_ttl_ms: 30_000,
        lock_wait_ms: 2_000,
        // Nothing listens on port 9 (discard): events wait in the outbox until a test wires
        // the real services with `with_peers`.
        review_url: "http://127.0.0.1:9".to_string(),
        notification_url: "http://127.0.0.1:9".to_string(),
        outbox_max_backoff_ms: 2_000,
        outbox_lease_ms: 30_000,
        watch_heartbeat_ms: 30_000,
        watch_poll_ms: 500,
        watch_max_streams: 1_000,
        contact_code_ttl_hours: 24,
        contact_unreachable_failures: 3,
        contact_failure_window_hours: 720,
    }
}

/// Points registration's outbox relay at running review and notification services.
pub fn with_peers(
    mut config: kg_registration::Config,
    review_url: &str,
    notification_url: &str,
) -> kg_registration::Config {
    config.review_url = review_url.to_string();
    config.notification_url = notification_url.to_string();
    config
}

pub async fn start_registration(config: kg_registration::Config) -> anyhow::Result<Running> {
    Running::start(any_port(), move |l, s| kg_registration::run(config, l, s)).await
}

/// review against `db`, delivering decisions to registration at `registration_url` and
/// rerunning checks at identity-check `identity_url`, with the shipped China calendar, outbox
/// retries at most 1 s apart and the gauges refreshed every 200 ms.
pub fn review_config(db: &str, registration_url: &str, identity_url: &str) -> kg_review::Config {
    kg_review::Config {
        common: common(db),
        registration_url: registration_url.to_string(),
        identity_check_url: identity_url.to_string(),
        call_timeout_ms: 10_000,
        calendar_file: None,
        outbox_max_backoff_ms: 1_000,
        outbox_lease_ms: 30_000,
        metrics_refresh_ms: 200,
        require_verified_contacts: false,
    }
}

/// review alone: nothing listens on port 9 (discard), so decisions wait in its outbox and
/// RerunChecks answers UNAVAILABLE.
pub async fn start_review(db: &str) -> anyhow::Result<Running> {
    let nowhere = "http://127.0.0.1:9";
    start_review_with(review_config(db, nowhere, nowhere)).await
}

pub async fn start_review_with(config: kg_review::Config) -> anyhow::Result<Running> {
    Running::start(any_port(), move |l, s| kg_review::run(config, l, s)).await
}

/// notification against `db`, reading accounts from identity-check at `identity_url`, with
/// both channels disabled (set `smtp_url`/`sms_url`) and retries fast enough for tests
/// (100 ms doubling to 1 s, 10 attempts, a new round every 50 ms).
pub fn notification_config(db: &str, identity_url: &str) -> kg_notification::Config {
    kg_notification::Config {
        common: common(db),
        identity_check_url: identity_url.to_string(),
        // Nothing listens on port 9 (discard): reports wait in the outbox unless a test wires
        // registration in (full_mesh does).
        registration_url: "http://127.0.0.1:9".to_string(),
        call_timeout_ms: 10_000,
        outbox_max_backoff_ms: 1_000,
        outbox_lease_ms: 30_000,
        smtp_bounce_address: None,
        bounce_maildir: None,
        bounce_poll_ms: 200,
        smtp_url: None,
        smtp_from: kg_notification::DEFAULT_SMTP_FROM.to_string(),
        smtp_timeout_ms: 5_000,
        sms_url: None,
        sms_token: None,
        sms_timeout_ms: 5_000,
        max_attempts: 10,
        retry_base_ms: 100,
        retry_max_ms: 1_000,
        lease_ms: 15_000,
        dispatch_interval_ms: 50,
        dispatch_batch: 64,
        dispatch_concurrency: 8,
        timezone: "Asia/Shanghai".to_string(),
    }
}

pub async fn start_notification(config: kg_notification::Config) -> anyhow::Result<Running> {
    Running::start(any_port(), move |l, s| kg_notification::run(config, l, s)).await
}
