//! `kg-bench`: starts PostgreSQL, Redis and the four services (separate processes from
//! `target/release`), drives them, and writes `docs/bench/latest.{md,json}`.
//! See docs/performance.md for what each figure means.

mod db;
mod echo;
mod load;
mod procs;
mod report;
mod watchers;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use kg_proto::identity::identity_check_service_client::IdentityCheckServiceClient;
use kg_proto::identity::{Account, ImportAccountsRequest};
use kg_proto::notification::notification_service_client::NotificationServiceClient;
use kg_proto::notification::{ListNotificationsRequest, NotificationEventType};
use kg_proto::registration::registration_service_client::RegistrationServiceClient;
use kg_proto::registration::{GetApplicationRequest, SubmitApplicationRequest};
use kg_proto::review::ListReviewTasksRequest;
use kg_proto::review::review_service_client::ReviewServiceClient;
use kg_registration::store::application;
use kg_tests::fixtures;
use kg_tests::{PostgresServer, RedisServer, free_port};
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter};
use sea_orm_migration::MigratorTrait;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

use crate::load::{Budget, Failure, StepResult, drive, mix};
use crate::procs::Service;
use crate::report::*;

#[derive(Parser)]
#[command(
    name = "kg-bench",
    about = "Benchmark of the KooGallery mesh: starts PostgreSQL, Redis and the four services from \
             target/release, measures them and writes docs/bench/latest.{md,json}. Run it through \
             scripts/bench, which builds the binaries first."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    args: Args,
}

#[derive(Subcommand)]
enum Command {
    /// Run the benchmark (the default).
    Run,
    /// Serve the one-hop echo (grpc.health.v1.Health/Check) until SIGINT/SIGTERM; the benchmark
    /// starts this itself.
    #[command(hide = true)]
    EchoServer {
        #[arg(long)]
        listen: SocketAddr,
    },
}

#[derive(clap::Args, Clone)]
struct Args {
    /// Smoke run: small scales, short steps (defaults below marked "quick"); writes
    /// docs/bench/quick.{md,json} and leaves docs/performance.md alone.
    #[arg(long)]
    quick: bool,
    /// Numbers of stored applications to measure (c) and (d) at, on a fresh registration
    /// database [default 10000,100000; quick 2000,5000].
    #[arg(long, value_delimiter = ',')]
    scales: Option<Vec<u64>>,
    /// Requests in flight for (a)–(d).
    #[arg(long, value_delimiter = ',', default_values_t = [8usize, 32, 128])]
    concurrency: Vec<usize>,
    /// Requests in flight for the stored-applications steps.
    #[arg(long, default_value_t = 32)]
    scale_concurrency: usize,
    /// Seconds each measured step runs at most [default 10; quick 3].
    #[arg(long)]
    step_secs: Option<f64>,
    /// Seconds of warm-up before each measured step [default 2; quick 1].
    #[arg(long)]
    warmup_secs: Option<f64>,
    /// Requests each step sends at most.
    #[arg(long, default_value_t = 1_000_000)]
    max_requests: u64,
    /// Submissions each SubmitApplication step sends at most (each needs an imported account)
    /// [default 4000; quick 800].
    #[arg(long)]
    max_submits: Option<u64>,
    /// Submissions followed through the asynchronous pipeline [default 48; quick 16].
    #[arg(long)]
    pipeline_samples: Option<u64>,
    /// Client connections (HTTP/2) per target; workers use them round-robin.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Seconds the outbox relay is watched without load after the SubmitApplication steps, to
    /// measure how fast it delivers [default 10; quick 5].
    #[arg(long)]
    relay_window_secs: Option<f64>,
    /// WatchEvents streams held open (each filtered to an account with no events) for step (g),
    /// which measures SubmitApplication without and then with them; 0 skips (g). Registration
    /// runs with KG_WATCH_MAX_STREAMS above this.
    #[arg(long, default_value_t = 1000)]
    idle_watchers: usize,
    /// Requests in flight of the SubmitApplication steps of (g).
    #[arg(long, default_value_t = 4)]
    idle_watchers_concurrency: usize,
    /// Seconds over which (g) counts registration's database transactions with no load, without
    /// and then with the idle streams open.
    #[arg(long, default_value_t = 5.0)]
    idle_tps_secs: f64,
    /// Folder of the service binaries.
    #[arg(long, default_value = "target/release")]
    bin_dir: PathBuf,
    /// Where the report goes.
    #[arg(long, default_value = "docs/bench")]
    out_dir: PathBuf,
    /// Base name of the report files [default latest; quick: quick].
    #[arg(long)]
    out_name: Option<String>,
    /// The page whose figures block (between `<!-- bench:figures:begin -->` and
    /// `<!-- bench:figures:end -->`) is replaced with the new figures; not touched by --quick.
    #[arg(long, default_value = "docs/performance.md")]
    performance_doc: PathBuf,
    /// Folder for the service logs.
    #[arg(long, default_value = "target/bench-logs")]
    log_dir: PathBuf,
}

/// The arguments with the quick/full defaults applied.
#[derive(Clone)]
struct Plan {
    quick: bool,
    scales: Vec<u64>,
    concurrency: Vec<usize>,
    scale_concurrency: usize,
    step: Duration,
    warmup: Duration,
    max_requests: u64,
    max_submits: u64,
    pipeline_samples: u64,
    connections: usize,
    relay_window: Duration,
    idle_watchers: usize,
    idle_concurrency: usize,
    idle_tps_window: Duration,
}

impl Plan {
    fn from(a: &Args) -> Plan {
        let q = a.quick;
        Plan {
            quick: q,
            scales: a.scales.clone().unwrap_or_else(|| {
                if q {
                    vec![2000, 5000]
                } else {
                    vec![10_000, 100_000]
                }
            }),
            concurrency: a.concurrency.clone(),
            scale_concurrency: a.scale_concurrency,
            step: Duration::from_secs_f64(a.step_secs.unwrap_or(if q { 3.0 } else { 10.0 })),
            warmup: Duration::from_secs_f64(a.warmup_secs.unwrap_or(if q { 1.0 } else { 2.0 })),
            max_requests: a.max_requests,
            max_submits: a.max_submits.unwrap_or(if q { 800 } else { 4000 }),
            pipeline_samples: a.pipeline_samples.unwrap_or(if q { 16 } else { 48 }),
            connections: a.connections.max(1),
            relay_window: Duration::from_secs_f64(a.relay_window_secs.unwrap_or(if q {
                5.0
            } else {
                10.0
            })),
            idle_watchers: a.idle_watchers,
            idle_concurrency: a.idle_watchers_concurrency.max(1),
            idle_tps_window: Duration::from_secs_f64(a.idle_tps_secs.max(0.5)),
        }
    }

    fn budget(&self) -> Budget {
        Budget {
            duration: self.step,
            max_requests: self.max_requests,
        }
    }

    fn warmup_budget(&self) -> Budget {
        Budget {
            duration: self.warmup,
            max_requests: self.max_requests,
        }
    }

    fn submit_budget(&self) -> Budget {
        Budget {
            duration: self.step,
            max_requests: self.max_submits,
        }
    }

    fn submit_warmup_budget(&self) -> Budget {
        Budget {
            duration: self.warmup,
            max_requests: (self.max_submits / 4).max(50),
        }
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::EchoServer { listen }) => echo::serve(listen).await,
        Some(Command::Run) | None => run(cli.args).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kg-bench: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn say(msg: impl AsRef<str>) {
    eprintln!(
        "[kg-bench {}] {}",
        chrono::Utc::now().format("%H:%M:%S"),
        msg.as_ref()
    );
}

/// Key of the whole machine's busy time in a CPU snapshot.
const SYSTEM: &str = "(machine)";

/// Registration's database for the stored-applications steps.
const SCALE_DB: &str = "kg_registration_scale";

/// Everything the run started; dropping it stops the services, then Redis and PostgreSQL.
struct Mesh {
    services: Vec<Service>,
    echo: Service,
    website: fixtures::Website,
    /// Registration's database (the one the running registration process uses).
    registration_db: DatabaseConnection,
    /// How registration was started, to start it again on another database.
    registration_env: Vec<(&'static str, String)>,
    bin_dir: PathBuf,
    log_dir: PathBuf,
    scratch_db: DatabaseConnection,
    redis: RedisServer,
    postgres: PostgresServer,
}

impl Mesh {
    fn service(&self, name: &str) -> &Service {
        self.services
            .iter()
            .find(|s| s.name == name)
            .expect("known service")
    }

    /// CPU ticks used so far by each process that takes part.
    fn cpu_snapshot(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for s in self.services.iter().chain(std::iter::once(&self.echo)) {
            if let Some(t) = s.pid().and_then(procs::cpu_ticks) {
                out.insert(s.name.clone(), t);
            }
        }
        if let Some(pid) = self.postgres.pid() {
            out.insert("postgres".into(), procs::tree_cpu_ticks(pid));
        }
        if let Some(t) = self.redis.pid().and_then(procs::cpu_ticks) {
            out.insert("redis".into(), t);
        }
        if let Some(t) = procs::cpu_ticks(std::process::id()) {
            out.insert("kg-bench".into(), t);
        }
        if let Some(t) = procs::system_busy_ticks() {
            out.insert(SYSTEM.into(), t);
        }
        out
    }

    /// Adds the CPU each process used since `before` to `step`.
    fn attach_cpu(&self, step: &mut StepResult, before: &BTreeMap<String, u64>) {
        let after = self.cpu_snapshot();
        let hz = procs::ticks_per_sec();
        let mut total = 0.0;
        for (name, &b) in before {
            if name == SYSTEM {
                continue;
            }
            let Some(&a) = after.get(name) else { continue };
            let secs = a.saturating_sub(b) as f64 / hz;
            total += secs;
            if secs > 0.0 && step.ok > 0 {
                step.cpu_ms_per_ok
                    .insert(name.clone(), secs * 1000.0 / step.ok as f64);
            }
        }
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        if step.elapsed_s > 0.0 {
            step.cpu_busy_pct = Some(total / (step.elapsed_s * cpus) * 100.0);
            if let (Some(&b), Some(&a)) = (before.get(SYSTEM), after.get(SYSTEM)) {
                let system = a.saturating_sub(b) as f64 / hz;
                step.foreign_cpu_pct =
                    Some(((system - total) / (step.elapsed_s * cpus) * 100.0).max(0.0));
            }
        }
    }

    /// Fails when a service process died (with the tail of its log).
    fn check_alive(&mut self) -> anyhow::Result<()> {
        if !self.postgres.is_running() {
            bail!(
                "PostgreSQL died during the run (killed from outside? `scripts/test` ends every \
                 `kg-test-pg-*` server with pkill)\n{}",
                kg_tests::log_tail(&self.postgres.log_path(), 20)
            );
        }
        if !self.redis.is_running() {
            bail!(
                "redis-server died during the run\n{}",
                kg_tests::log_tail(&self.redis.log_path(), 20)
            );
        }
        for s in self
            .services
            .iter_mut()
            .chain(std::iter::once(&mut self.echo))
        {
            if !s.is_running() {
                bail!(
                    "{} died during the run\n{}",
                    s.name,
                    kg_tests::log_tail(&s.log, 40)
                );
            }
        }
        Ok(())
    }

    /// Stops registration and starts it again (same address, Redis and peers) on the empty
    /// database `db` (created at start-up); returns the peak memory of the process that was stopped.
    async fn move_registration(&mut self, db: &str) -> anyhow::Result<Option<procs::Memory>> {
        let url = self.postgres.url(db);
        let i = self
            .services
            .iter()
            .position(|s| s.name == "registration")
            .expect("registration runs");
        let old = &mut self.services[i];
        let peak = old.memory();
        let addr = old.addr.clone();
        old.stop(Duration::from_secs(10)).await;
        let mut env = self.registration_env.clone();
        for (k, v) in env.iter_mut() {
            if *k == "KG_DATABASE_URL" {
                *v = url.clone();
            }
        }
        let mut fresh = Service::spawn(
            "registration",
            &self.bin_dir.join("koogallery-registration"),
            &[],
            &env,
            addr,
            &self.log_dir,
        )?;
        fresh.wait_serving(Duration::from_secs(60)).await?;
        self.services[i] = fresh;
        let _ = self.registration_db.close_by_ref().await;
        self.registration_db = kg_runtime::db::connect(&url).await?;
        Ok(peak)
    }

    async fn stop(mut self) {
        let grace = Duration::from_secs(5);
        for s in self.services.iter_mut().rev() {
            s.stop(grace).await;
        }
        self.echo.stop(grace).await;
        let _ = self.registration_db.close_by_ref().await;
        let _ = self.scratch_db.close_by_ref().await;
        let _ = self.redis.stop().await;
        let _ = self.postgres.stop().await;
    }
}

/// Registration's first database (the one of (c), (d) and (g)).
const MAIN_DB: &str = "kg_registration";

async fn start_mesh(bin_dir: &Path, log_dir: &Path, watchers: usize) -> anyhow::Result<Mesh> {
    std::fs::create_dir_all(log_dir).with_context(|| format!("creating {}", log_dir.display()))?;
    say("starting PostgreSQL and Redis (private servers on free ports)");
    let (postgres, redis) = tokio::join!(PostgresServer::start(), RedisServer::start());
    let (postgres, redis) = (postgres?, redis?);
    for name in [
        "kg_identity",
        MAIN_DB,
        "kg_review",
        "kg_notification",
        "kg_scratch",
        SCALE_DB,
    ] {
        postgres.create_database(name).await?;
    }
    let website = fixtures::Website::start().await?;

    let addr = || format!("127.0.0.1:{}", free_port());
    let (idc_addr, reg_addr, rev_addr, not_addr, echo_addr) =
        (addr(), addr(), addr(), addr(), addr());
    let url = |a: &str| format!("http://{a}");
    let common = |listen: &str, db: &str| {
        vec![
            ("KG_LISTEN_ADDR", listen.to_string()),
            ("KG_DATABASE_URL", postgres.url(db)),
            ("RUST_LOG", "warn".to_string()),
            ("KG_SHUTDOWN_GRACE_SECS", "3".to_string()),
            // The per-caller rate limit would be the figure otherwise: capacity is measured.
            ("KG_RATE_LIMIT_PER_SEC", "0".to_string()),
        ]
    };
    let bin = |name: &str| bin_dir.join(name);
    say(format!(
        "starting the services from {} (logs in {})",
        bin_dir.display(),
        log_dir.display()
    ));
    let mut services = Vec::new();
    let mut env = common(&idc_addr, "kg_identity");
    env.push(("KG_WEBSITE_TEST_ALLOWLIST", "127.0.0.1/32".to_string()));
    services.push(Service::spawn(
        "identity-check",
        &bin("koogallery-identity-check"),
        &[],
        &env,
        idc_addr.clone(),
        log_dir,
    )?);
    let mut env = common(&rev_addr, "kg_review");
    env.push(("KG_REGISTRATION_URL", url(&reg_addr)));
    env.push(("KG_IDENTITY_CHECK_URL", url(&idc_addr)));
    services.push(Service::spawn(
        "review",
        &bin("koogallery-review"),
        &[],
        &env,
        rev_addr.clone(),
        log_dir,
    )?);
    let mut env = common(&not_addr, "kg_notification");
    env.push(("KG_IDENTITY_CHECK_URL", url(&idc_addr)));
    services.push(Service::spawn(
        "notification",
        &bin("koogallery-notification"),
        &[],
        &env,
        not_addr.clone(),
        log_dir,
    )?);
    let mut registration_env = common(&reg_addr, MAIN_DB);
    registration_env.push(("KG_REDIS_URL", redis.url()));
    registration_env.push(("KG_IDENTITY_CHECK_URL", url(&idc_addr)));
    registration_env.push(("KG_REVIEW_URL", url(&rev_addr)));
    registration_env.push(("KG_NOTIFICATION_URL", url(&not_addr)));
    // (g) holds `watchers` streams open at once: room for them and a few more.
    registration_env.push((
        "KG_WATCH_MAX_STREAMS",
        (watchers + 100).max(1000).to_string(),
    ));
    services.push(Service::spawn(
        "registration",
        &bin("koogallery-registration"),
        &[],
        &registration_env,
        reg_addr.clone(),
        log_dir,
    )?);
    let me = std::env::current_exe().context("locating kg-bench itself")?;
    let echo = Service::spawn(
        "echo",
        &me,
        &["echo-server", "--listen", &echo_addr],
        &[("RUST_LOG", "warn".to_string())],
        echo_addr.clone(),
        log_dir,
    )?;
    let registration_db = kg_runtime::db::connect(&postgres.url(MAIN_DB)).await?;
    // (b) runs with the pool registration itself uses (kg_runtime::db::connect).
    let scratch_db = kg_runtime::db::connect(&postgres.url("kg_scratch")).await?;
    kg_registration::migrations::Migrator::up(&scratch_db, None).await?;
    let mut mesh = Mesh {
        services,
        echo,
        website,
        registration_db,
        registration_env,
        bin_dir: bin_dir.to_path_buf(),
        log_dir: log_dir.to_path_buf(),
        scratch_db,
        redis,
        postgres,
    };
    for s in mesh
        .services
        .iter_mut()
        .chain(std::iter::once(&mut mesh.echo))
    {
        s.wait_serving(Duration::from_secs(60)).await?;
    }
    say("all services SERVING");
    Ok(mesh)
}

/// The gRPC clients, `connections` channels each.
struct Clients {
    echo: Vec<Channel>,
    registration: Vec<Channel>,
    identity: Channel,
    review: Channel,
    notification: Channel,
}

impl Clients {
    async fn new(mesh: &Mesh, connections: usize) -> anyhow::Result<Clients> {
        Ok(Clients {
            echo: procs::channels(&mesh.echo.url(), connections).await?,
            registration: procs::channels(&mesh.service("registration").url(), connections).await?,
            identity: procs::channels(&mesh.service("identity-check").url(), 1)
                .await?
                .remove(0),
            review: procs::channels(&mesh.service("review").url(), 1)
                .await?
                .remove(0),
            notification: procs::channels(&mesh.service("notification").url(), 1)
                .await?
                .remove(0),
        })
    }
}

/// Hands out account prefixes and entity seeds that no other step uses.
struct Ids {
    next_seed: u64,
    next_batch: u64,
}

impl Ids {
    /// A fresh account prefix and seed range for `n` submissions.
    fn take(&mut self, n: u64) -> (String, u64) {
        let prefix = format!("bench-{}", self.next_batch);
        let seed = self.next_seed;
        self.next_batch += 1;
        self.next_seed += n;
        assert!(self.next_seed < db::PRELOAD_SEED, "seed ranges overlap");
        (prefix, seed)
    }
}

/// Imports `n` eligible accounts `<prefix>-0 … <prefix>-(n-1)` through ImportAccounts.
async fn import_accounts(identity: &Channel, prefix: &str, n: u64) -> anyhow::Result<()> {
    let mut client = IdentityCheckServiceClient::new(identity.clone());
    let mut i = 0;
    while i < n {
        let end = (i + 1000).min(n);
        let accounts: Vec<Account> = (i..end)
            .map(|k| fixtures::eligible_account(&format!("{prefix}-{k}")))
            .collect();
        let reply = client
            .import_accounts(ImportAccountsRequest {
                request_id: uuid::Uuid::new_v4().to_string(),
                accounts,
            })
            .await
            .context("ImportAccounts")?
            .into_inner();
        if reply.failed_count > 0 {
            bail!("ImportAccounts refused accounts: {:?}", reply.errors);
        }
        i = end;
    }
    Ok(())
}

/// One SubmitApplication step (warm-up included when `warmup` is set); the names of the
/// applications created go to `names`. With `cpu`, the step's CPU use is attached, counted from
/// after the accounts are imported (importing them is not part of SubmitApplication).
async fn submit_step(
    clients: &Clients,
    ids: &mut Ids,
    template: &SubmitApplicationRequest,
    concurrency: usize,
    budget: Budget,
    names: &Arc<Mutex<Vec<String>>>,
    cpu: Option<&Mesh>,
) -> anyhow::Result<StepResult> {
    let (prefix, seed0) = ids.take(budget.max_requests);
    import_accounts(&clients.identity, &prefix, budget.max_requests).await?;
    let before = cpu.map(|mesh| {
        say(format!("  submitting at {concurrency} in flight"));
        mesh.cpu_snapshot()
    });
    let channels = Arc::new(clients.registration.clone());
    let template = Arc::new(template.clone());
    let names = names.clone();
    let step = drive(concurrency, budget, move |i, w| {
        let mut client = RegistrationServiceClient::new(channels[w % channels.len()].clone());
        let mut req = (*template).clone();
        req.request_id = uuid::Uuid::new_v4().to_string();
        req.account_id = format!("{prefix}-{i}");
        if let Some(app) = req.application.as_mut() {
            app.entity = Some(fixtures::entity(seed0 + i));
        }
        let names = names.clone();
        async move {
            let reply = client.submit_application(req).await?.into_inner();
            let app = reply
                .application
                .ok_or_else(|| Failure::other("NoApplication", "reply without application"))?;
            names.lock().expect("names").push(app.name);
            Ok(())
        }
    })
    .await;
    let mut step = step;
    if let (Some(mesh), Some(before)) = (cpu, before) {
        mesh.attach_cpu(&mut step, &before);
    }
    Ok(step)
}

async fn get_step(
    clients: &Clients,
    names: Arc<Vec<String>>,
    concurrency: usize,
    budget: Budget,
    salt: u64,
) -> StepResult {
    let channels = Arc::new(clients.registration.clone());
    drive(concurrency, budget, move |i, w| {
        let mut client = RegistrationServiceClient::new(channels[w % channels.len()].clone());
        let name = names[(mix(i ^ salt) % names.len() as u64) as usize].clone();
        async move {
            client
                .get_application(GetApplicationRequest {
                    name,
                    ..Default::default()
                })
                .await?;
            Ok(())
        }
    })
    .await
}

async fn echo_step(clients: &Clients, concurrency: usize, budget: Budget) -> StepResult {
    let channels = Arc::new(clients.echo.clone());
    drive(concurrency, budget, move |_, w| {
        let mut client = HealthClient::new(channels[w % channels.len()].clone());
        async move {
            client
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await?;
            Ok(())
        }
    })
    .await
}

async fn database_step(
    db: &DatabaseConnection,
    template: &application::Model,
    tag: u64,
    seed0: u64,
    concurrency: usize,
    budget: Budget,
) -> StepResult {
    let db = db.clone();
    let template = Arc::new(template.clone());
    drive(concurrency, budget, move |i, _| {
        let row = db::row_like(
            &template,
            &format!("scratch-{tag}-{i}"),
            seed0 + i,
            kg_registration::store::state::SUBMITTED,
        );
        let db = db.clone();
        async move { db::submit_transaction(&db, row).await }
    })
    .await
}

/// Waits (bounded) until every outbox event is delivered.
async fn drain(db: &DatabaseConnection, step: &str, bound: Duration) -> anyhow::Result<Drain> {
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

async fn backlog(db: &DatabaseConnection, step: &str) -> anyhow::Result<Backlog> {
    let undelivered = db::outbox_backlog(db).await?;
    say(format!("  outbox {step}: {undelivered} undelivered"));
    Ok(Backlog {
        step: step.to_string(),
        undelivered,
    })
}

/// Watches the relay deliver, with no load, for `window` (less when the backlog empties).
async fn relay_rate(db: &DatabaseConnection, window: Duration) -> anyhow::Result<RelayRate> {
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

fn show(label: &str, s: &StepResult) {
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

/// (e): submissions followed until review and notification list them.
async fn pipeline(
    clients: &Clients,
    ids: &mut Ids,
    template: &SubmitApplicationRequest,
    samples: u64,
    timeout: Duration,
) -> anyhow::Result<Pipeline> {
    let concurrency = 8usize.min(samples.max(1) as usize);
    let mut out = Pipeline {
        samples,
        concurrency,
        timeout_s: timeout.as_secs_f64(),
        ..Default::default()
    };
    // Do both services answer the list calls at all?
    let probe = "applications/00000000-0000-0000-0000-000000000000".to_string();
    let mut review = ReviewServiceClient::new(clients.review.clone());
    let mut notification = NotificationServiceClient::new(clients.notification.clone());
    let mut missing = Vec::new();
    if let Err(s) = review
        .list_review_tasks(ListReviewTasksRequest {
            subject: probe.clone(),
            page_size: 1,
            ..Default::default()
        })
        .await
    {
        missing.push(format!(
            "review answers ListReviewTasks with {:?} ({})",
            s.code(),
            s.message()
        ));
    }
    if let Err(s) = notification
        .list_notifications(ListNotificationsRequest {
            subject: probe,
            page_size: 1,
            ..Default::default()
        })
        .await
    {
        missing.push(format!(
            "notification answers ListNotifications with {:?} ({})",
            s.code(),
            s.message()
        ));
    }
    if !missing.is_empty() {
        out.reason = Some(missing.join("; "));
        return Ok(out);
    }

    // One probe submission first: when nothing arrives, say so instead of waiting per sample.
    let (review_ms, notification_ms) = follow(clients, ids, template, 1, 1, timeout).await?;
    if review_ms.is_empty() && notification_ms.is_empty() {
        out.reason = Some(format!(
            "neither a review task nor a notification appeared within {:.0} s of a submission \
             (the outbox relay could not deliver; see target/bench-logs)",
            timeout.as_secs_f64()
        ));
        return Ok(out);
    }
    let (review_ms, notification_ms) =
        follow(clients, ids, template, samples, concurrency, timeout).await?;
    out.available = true;
    out.review_timeouts = samples - review_ms.len() as u64;
    out.notification_timeouts = samples - notification_ms.len() as u64;
    out.review_task = summary(review_ms);
    out.notification = summary(notification_ms);
    Ok(out)
}

fn summary(mut micros: Vec<u32>) -> Option<Latency> {
    if micros.is_empty() {
        return None;
    }
    micros.sort_unstable();
    Some(Latency {
        n: micros.len(),
        p50_ms: load::percentile_ms(&micros, 50.0),
        p95_ms: load::percentile_ms(&micros, 95.0),
        max_ms: f64::from(*micros.last().expect("non-empty")) / 1000.0,
    })
}

/// Submits `samples` applications, `concurrency` at a time, and polls review and notification
/// every 10 ms until each lists it; returns the delays (µs) that were seen within `timeout`.
async fn follow(
    clients: &Clients,
    ids: &mut Ids,
    template: &SubmitApplicationRequest,
    samples: u64,
    concurrency: usize,
    timeout: Duration,
) -> anyhow::Result<(Vec<u32>, Vec<u32>)> {
    let (prefix, seed0) = ids.take(samples);
    import_accounts(&clients.identity, &prefix, samples).await?;
    let review_ms = Arc::new(Mutex::new(Vec::new()));
    let notification_ms = Arc::new(Mutex::new(Vec::new()));
    let (r_out, n_out) = (review_ms.clone(), notification_ms.clone());
    let registration = clients.registration[0].clone();
    let review = clients.review.clone();
    let notification = clients.notification.clone();
    let template = Arc::new(template.clone());
    let step = drive(
        concurrency,
        Budget {
            duration: Duration::from_secs(3600),
            max_requests: samples,
        },
        move |i, _| {
            let mut reg = RegistrationServiceClient::new(registration.clone());
            let mut rev = ReviewServiceClient::new(review.clone());
            let mut not = NotificationServiceClient::new(notification.clone());
            let mut req = (*template).clone();
            req.request_id = uuid::Uuid::new_v4().to_string();
            req.account_id = format!("{prefix}-{i}");
            if let Some(app) = req.application.as_mut() {
                app.entity = Some(fixtures::entity(seed0 + i));
            }
            let (r_out, n_out) = (r_out.clone(), n_out.clone());
            async move {
                let app = reg
                    .submit_application(req)
                    .await?
                    .into_inner()
                    .application
                    .unwrap_or_default();
                let t0 = Instant::now();
                let (mut task_at, mut note_at) = (None, None);
                while (task_at.is_none() || note_at.is_none()) && t0.elapsed() < timeout {
                    if task_at.is_none() {
                        let tasks = rev
                            .list_review_tasks(ListReviewTasksRequest {
                                subject: app.name.clone(),
                                page_size: 10,
                                ..Default::default()
                            })
                            .await?
                            .into_inner();
                        if !tasks.review_tasks.is_empty() {
                            task_at = Some(t0.elapsed());
                        }
                    }
                    if note_at.is_none() {
                        let notes = not
                            .list_notifications(ListNotificationsRequest {
                                subject: app.name.clone(),
                                page_size: 10,
                                ..Default::default()
                            })
                            .await?
                            .into_inner();
                        if notes.notifications.iter().any(|n| {
                            n.event_type == NotificationEventType::ApplicationReceived as i32
                        }) {
                            note_at = Some(t0.elapsed());
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                let us = |d: Duration| u32::try_from(d.as_micros()).unwrap_or(u32::MAX);
                if let Some(d) = task_at {
                    r_out.lock().expect("lock").push(us(d));
                }
                if let Some(d) = note_at {
                    n_out.lock().expect("lock").push(us(d));
                }
                Ok(())
            }
        },
    )
    .await;
    if step.error_count() > 0 {
        say(format!("  pipeline: {:?}", step.errors));
    }
    let r = std::mem::take(&mut *review_ms.lock().expect("lock"));
    let n = std::mem::take(&mut *notification_ms.lock().expect("lock"));
    Ok((r, n))
}

fn read_first(path: &str, key: &str) -> Option<String> {
    std::fs::read_to_string(path).ok()?.lines().find_map(|l| {
        l.strip_prefix(key)
            .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_string())
    })
}

async fn machine(mesh: &Mesh) -> Machine {
    let git = std::process::Command::new("git")
        .args(["describe", "--always", "--dirty"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let pg = async {
        let r = mesh
            .registration_db
            .query_one_raw(sea_orm::Statement::from_string(
                mesh.registration_db.get_database_backend(),
                "SELECT current_setting('server_version') AS v",
            ))
            .await
            .ok()??;
        r.try_get::<String>("", "v").ok()
    }
    .await
    .unwrap_or_else(|| "unknown".into());
    let redis = std::process::Command::new(
        std::env::var("KG_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into()),
    )
    .arg("--version")
    .output()
    .ok()
    .and_then(|o| {
        String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .find_map(|w| w.strip_prefix("v=").map(str::to_string))
    })
    .unwrap_or_else(|| "unknown".into());
    Machine {
        nproc: std::thread::available_parallelism().map_or(0, |n| n.get()),
        memory_total_mib: read_first("/proc/meminfo", "MemTotal")
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .map_or(0, |kib| kib / 1024),
        cpu_model: read_first("/proc/cpuinfo", "model name").unwrap_or_else(|| "unknown".into()),
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown".into()),
        postgres_version: pg,
        redis_version: redis,
        git_commit: git,
        load_average_at_start: String::new(),
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let plan = Plan::from(&args);
    let started = Instant::now();
    let load_at_start = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".into());
    if plan.concurrency.is_empty() {
        bail!("--concurrency needs at least one value");
    }
    let mut mesh = start_mesh(&args.bin_dir, &args.log_dir, plan.idle_watchers).await?;
    let outcome = measure(&plan, &args, &mut mesh).await;
    let mut report = match outcome {
        Ok(r) => r,
        Err(e) => {
            // A dead server explains most failures: say that first.
            let e = match mesh.check_alive() {
                Err(dead) => e.context(format!("{dead:#}")),
                Ok(()) => e,
            };
            mesh.stop().await;
            return Err(e);
        }
    };
    mesh.stop().await;
    report.machine.load_average_at_start = load_at_start;
    report.notes.push(format!(
        "The whole run took {:.0} s (start-up and shutdown included, build excluded).",
        started.elapsed().as_secs_f64()
    ));

    let name = args
        .out_name
        .clone()
        .unwrap_or_else(|| if plan.quick { "quick" } else { "latest" }.into());
    std::fs::create_dir_all(&args.out_dir)?;
    let json_path = args.out_dir.join(format!("{name}.json"));
    let md_path = args.out_dir.join(format!("{name}.md"));
    std::fs::write(&json_path, serde_json::to_string_pretty(&report)? + "\n")?;
    std::fs::write(&md_path, report::markdown(&report))?;
    say(format!(
        "report: {} and {}",
        md_path.display(),
        json_path.display()
    ));
    if !plan.quick {
        update_performance_doc(&args.performance_doc, &report)?;
    }
    println!("{}", report::figures_table(&report));
    println!("{}", report::scales_table(&report));
    println!("{}", report::targets_table(&report));
    if report.idle_watchers.is_some() {
        println!("{}", report::idle_watchers_line(&report));
    }
    Ok(())
}

/// Replaces the figures block of docs/performance.md (when the markers are there).
fn update_performance_doc(path: &Path, report: &Report) -> anyhow::Result<()> {
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
         commit {}; authentication {}.\n\n{}\n{}\n{}\n{}{}",
        report.generated_at,
        m.nproc,
        m.cpu_model,
        m.memory_total_mib,
        m.postgres_version,
        m.git_commit,
        report.settings.auth,
        report::figures_table(report),
        report::scales_table(report),
        report::targets_table(report),
        pipeline_memory_lines(report),
        report::idle_watchers_line(report),
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

async fn measure(plan: &Plan, args: &Args, mesh: &mut Mesh) -> anyhow::Result<Report> {
    let clients = Clients::new(mesh, plan.connections).await?;
    let mut ids = Ids {
        next_seed: 1,
        next_batch: 0,
    };
    let submitted = Arc::new(Mutex::new(Vec::<String>::new()));
    let template = fixtures::submission("template", 0, &mesh.website.url("/en"));
    let mut notes = Vec::new();
    let mut outbox = Outbox::default();

    // A first submission gives the row template for (b) and the pre-load: a real stored row.
    say("first submissions (template row)");
    let first = submit_step(
        &clients,
        &mut ids,
        &template,
        4,
        Budget {
            duration: Duration::from_secs(30),
            max_requests: 8,
        },
        &submitted,
        None,
    )
    .await?;
    if first.ok == 0 {
        bail!(
            "SubmitApplication fails: {:?} (see {})",
            first.errors,
            args.log_dir.display()
        );
    }
    let stored_row = application::Entity::find()
        .filter(application::Column::AccountId.like("bench-%"))
        .one(&mesh.registration_db)
        .await?
        .context("no stored application after the first submissions")?;
    let row_bytes = stored_row.profile.len()
        + stored_row.logo.as_ref().map_or(0, Vec::len)
        + stored_row.agreement.len()
        + stored_row.evidence.as_ref().map_or(0, Vec::len);

    // (e) first, while the relay is idle: the pipeline's own latency, not a queue's.
    say("(e) asynchronous pipeline (idle relay)");
    let idle = drain(
        &mesh.registration_db,
        "first submissions",
        Duration::from_secs(30),
    )
    .await?;
    let pipeline_timeout = Duration::from_secs(if plan.quick { 15 } else { 30 });
    let pipe = pipeline(
        &clients,
        &mut ids,
        &template,
        plan.pipeline_samples,
        pipeline_timeout,
    )
    .await?;
    if idle.remaining > 0 {
        notes.push(format!(
            "(e) started with {} undelivered outbox events (the relay had not delivered the \
             first submissions within 30 s).",
            idle.remaining
        ));
    }
    match (&pipe.review_task, &pipe.notification, &pipe.reason) {
        (_, _, Some(reason)) => say(format!("  not available: {reason}")),
        (r, n, None) => say(format!(
            "  review task p50 {:?} ms, notification p50 {:?} ms",
            r.as_ref().map(|l| l.p50_ms),
            n.as_ref().map(|l| l.p50_ms)
        )),
    }

    // (a) one-hop echo.
    say("(a) one-hop echo");
    let mut echo = Vec::new();
    for &c in &plan.concurrency {
        echo_step(&clients, c, plan.warmup_budget()).await;
        let before = mesh.cpu_snapshot();
        let mut r = echo_step(&clients, c, plan.budget()).await;
        mesh.attach_cpu(&mut r, &before);
        show("echo", &r);
        echo.push(r);
    }
    mesh.check_alive()?;

    // (b) the database limit.
    say("(b) database transaction (scratch database, sea-orm, pool of 20 like registration)");
    let mut database = Vec::new();
    let mut db_seed = db::DB_STEP_SEED;
    for (tag, &c) in plan.concurrency.iter().enumerate() {
        let tag = tag as u64 * 2;
        let w = database_step(
            &mesh.scratch_db,
            &stored_row,
            tag,
            db_seed,
            c,
            plan.warmup_budget(),
        )
        .await;
        db_seed += w.ok + w.error_count() + 1;
        let before = mesh.cpu_snapshot();
        let mut r = database_step(
            &mesh.scratch_db,
            &stored_row,
            tag + 1,
            db_seed,
            c,
            plan.budget(),
        )
        .await;
        mesh.attach_cpu(&mut r, &before);
        db_seed += r.ok + r.error_count() + 1;
        show("db txn", &r);
        database.push(r);
    }

    // (c) SubmitApplication.
    say("(c) SubmitApplication");
    let mut submit = Vec::new();
    for &c in &plan.concurrency {
        submit_step(
            &clients,
            &mut ids,
            &template,
            c,
            plan.submit_warmup_budget(),
            &submitted,
            None,
        )
        .await?;
        let r = submit_step(
            &clients,
            &mut ids,
            &template,
            c,
            plan.submit_budget(),
            &submitted,
            Some(mesh),
        )
        .await?;
        show("submit", &r);
        if r.ok >= plan.max_submits {
            notes.push(format!(
                "SubmitApplication at {c} in flight ended by the submission budget ({}) before {} s.",
                plan.max_submits,
                plan.step.as_secs_f64()
            ));
        }
        submit.push(r);
        outbox.after_steps.push(
            backlog(
                &mesh.registration_db,
                &format!("after submit at {c} in flight"),
            )
            .await?,
        );
        mesh.check_alive()?;
    }
    outbox.relay = Some(relay_rate(&mesh.registration_db, plan.relay_window).await?);

    // (d) GetApplication over what (c) stored.
    say("(d) GetApplication");
    let names = Arc::new(submitted.lock().expect("lock").clone());
    let mut get = Vec::new();
    for (k, &c) in plan.concurrency.iter().enumerate() {
        get_step(
            &clients,
            names.clone(),
            c,
            plan.warmup_budget(),
            1000 + k as u64,
        )
        .await;
        let before = mesh.cpu_snapshot();
        let mut r = get_step(&clients, names.clone(), c, plan.budget(), k as u64).await;
        mesh.attach_cpu(&mut r, &before);
        show("get", &r);
        get.push(r);
    }
    mesh.check_alive()?;

    if let Ok(n) = db::count(
        &mesh.registration_db,
        "SELECT count(*) AS n FROM pg_stat_activity WHERE backend_type = 'client backend'",
    )
    .await
    {
        say(format!("  PostgreSQL client connections open: {n}"));
    }

    // (g) SubmitApplication without and with idle WatchEvents streams open (issue 12), on the
    // first database, before registration moves.
    let idle_watchers = if plan.idle_watchers > 0 {
        say(format!(
            "(g) SubmitApplication at {} in flight without and with {} idle WatchEvents streams",
            plan.idle_concurrency, plan.idle_watchers
        ));
        let w = watchers::measure(
            plan, mesh, MAIN_DB, &clients, &mut ids, &template, &submitted,
        )
        .await?;
        for (label, s) in [("without", &w.submit_without), ("with", &w.submit_with)] {
            if s.ok >= plan.max_submits {
                notes.push(format!(
                    "(g) SubmitApplication {label} the idle streams ended by the submission \
                     budget ({}) before {} s.",
                    plan.max_submits,
                    plan.step.as_secs_f64()
                ));
            }
        }
        if !w.complete() {
            notes.push(format!(
                "(g) asked for {} idle WatchEvents streams: {} opened (failed: {:?}), {} still \
                 open after the SubmitApplication step with them (ended: {:?}).",
                w.streams, w.opened, w.open_errors, w.still_open_after, w.ended
            ));
        }
        if w.events_received > 0 {
            notes.push(format!(
                "(g) the idle streams received {} events although their accounts have none.",
                w.events_received
            ));
        }
        mesh.check_alive()?;
        Some(w)
    } else {
        None
    };

    // Stored applications: registration moves to a fresh database, which is pre-loaded to each
    // scale in turn; (c) and (d) at the scale concurrency after each.
    let mut scales = Vec::new();
    let mut first_registration_peak = None;
    if !plan.scales.is_empty() {
        outbox.backlog_at_switch = Some(db::outbox_backlog(&mesh.registration_db).await?);
        say("registration moves to a fresh database for the stored-applications steps");
        first_registration_peak = mesh.move_registration(SCALE_DB).await?;
    }
    let scale_submitted = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut preloaded_ids: Vec<String> = Vec::new();
    let mut next_preload = 0u64;
    for &target in &plan.scales {
        let stored = db::count_applications(&mesh.registration_db).await?;
        let need = target.saturating_sub(stored);
        say(format!(
            "stored applications: {stored}; pre-loading {need} to reach {target}"
        ));
        let t = Instant::now();
        if need > 0 {
            let ids_written = db::preload(
                &mesh.registration_db,
                &stored_row,
                next_preload,
                need,
                500,
                2,
            )
            .await?;
            next_preload += need;
            preloaded_ids.extend(ids_written);
        }
        let preload_s = t.elapsed().as_secs_f64();
        say(format!("  pre-load took {preload_s:.1} s"));
        let c = plan.scale_concurrency;
        submit_step(
            &clients,
            &mut ids,
            &template,
            c,
            plan.submit_warmup_budget(),
            &scale_submitted,
            None,
        )
        .await?;
        let stored_at_measure = db::count_applications(&mesh.registration_db).await?;
        let s = submit_step(
            &clients,
            &mut ids,
            &template,
            c,
            plan.submit_budget(),
            &scale_submitted,
            Some(mesh),
        )
        .await?;
        show(&format!("submit ({stored_at_measure} stored)"), &s);
        outbox.after_steps.push(
            backlog(
                &mesh.registration_db,
                &format!("after submit at {c} in flight, {stored_at_measure} stored"),
            )
            .await?,
        );
        let mut all: Vec<String> = preloaded_ids
            .iter()
            .map(|id| format!("applications/{id}"))
            .collect();
        all.extend(scale_submitted.lock().expect("lock").iter().cloned());
        let all = Arc::new(all);
        get_step(&clients, all.clone(), c, plan.warmup_budget(), target ^ 7).await;
        let before = mesh.cpu_snapshot();
        let mut g = get_step(&clients, all, c, plan.budget(), target).await;
        mesh.attach_cpu(&mut g, &before);
        show(&format!("get ({stored_at_measure} stored)"), &g);
        mesh.check_alive()?;
        scales.push(Scale {
            target,
            stored: stored_at_measure,
            preloaded: need,
            preload_s,
            submit: Some(s),
            get: Some(g),
        });
    }

    // (f) peak memory, and the backlog left.
    let mut memory = Vec::new();
    for s in mesh.services.iter().chain(std::iter::once(&mesh.echo)) {
        if let (Some(pid), Some(m)) = (s.pid(), s.memory()) {
            memory.push(ProcessMemory {
                process: if s.name == "echo" {
                    "echo (kg-bench echo-server, reference)".into()
                } else {
                    s.name.clone()
                },
                pid,
                memory: m,
            });
        }
    }
    if let Some(old) = first_registration_peak
        && let Some(m) = memory.iter_mut().find(|m| m.process == "registration")
        && old.vm_hwm_kib > m.memory.vm_hwm_kib
    {
        m.memory.vm_hwm_kib = old.vm_hwm_kib;
    }
    if first_registration_peak.is_some() {
        notes.push(
            "registration ran as two processes (the second on the stored-applications database); \
             its peak memory is the larger VmHWM of the two."
                .into(),
        );
    }
    outbox.backlog_at_end = Some(db::outbox_backlog(&mesh.registration_db).await?);

    let ratios: Vec<Ratio> = plan
        .concurrency
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
                submit_over_database: div(t(&submit), t(&database)),
                get_over_echo: div(t(&get), t(&echo)),
            }
        })
        .collect();

    let mut targets = Vec::new();
    for r in &ratios {
        targets.push(Target {
            name: format!("(c)/(b) at {} in flight", r.concurrency),
            target: "≥ 0.5".into(),
            measured: r
                .submit_over_database
                .map_or("–".into(), |x| format!("{x:.2}")),
            met: r.submit_over_database.map(|x| x >= 0.5),
        });
    }
    for r in &ratios {
        targets.push(Target {
            name: format!("(d)/(a) at {} in flight", r.concurrency),
            target: "≥ 0.5".into(),
            measured: r.get_over_echo.map_or("–".into(), |x| format!("{x:.2}")),
            met: r.get_over_echo.map(|x| x >= 0.5),
        });
    }
    let p99_at_32 = |s: Option<&StepResult>, label: &str| Target {
        name: format!("submit p99 at 32 in flight{label}"),
        target: "≤ 25 ms".into(),
        measured: s.map_or("–".into(), |s| format!("{:.1} ms", s.p99_ms)),
        met: s.map(|s| s.p99_ms <= 25.0 && s.ok > 0),
    };
    targets.push(p99_at_32(submit.iter().find(|s| s.concurrency == 32), ""));
    if plan.scale_concurrency == 32 {
        for sc in &scales {
            targets.push(p99_at_32(
                sc.submit.as_ref(),
                &format!(", {} stored", sc.stored),
            ));
        }
    }
    if let Some(w) = &idle_watchers {
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
    for m in &memory {
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
    let missed: Vec<&str> = targets
        .iter()
        .filter(|t| t.met == Some(false))
        .map(|t| t.name.as_str())
        .collect();
    if missed.is_empty() {
        notes.push("Every target was met.".into());
    } else {
        notes.push(format!(
            "Targets MISSED (for profiling): {}.",
            missed.join("; ")
        ));
    }
    for (label, steps) in [
        ("echo", &echo),
        ("database", &database),
        ("submit", &submit),
        ("get", &get),
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
    if let Some(w) = &idle_watchers {
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
    let disturbed: Vec<String> = [
        ("echo", &echo),
        ("database", &database),
        ("submit", &submit),
        ("get", &get),
    ]
    .iter()
    .flat_map(|(label, steps)| {
        steps.iter().filter_map(move |s| {
            s.foreign_cpu_pct
                .filter(|&p| p > 10.0)
                .map(|p| format!("{label} at {} in flight ({p:.0} %)", s.concurrency))
        })
    })
    .chain(scales.iter().flat_map(|sc| {
        [("submit", &sc.submit), ("get", &sc.get)]
            .into_iter()
            .filter_map(|(label, s)| {
                let p = s.as_ref()?.foreign_cpu_pct.filter(|&p| p > 10.0)?;
                Some(format!("{label} with {} stored ({p:.0} %)", sc.stored))
            })
            .collect::<Vec<_>>()
    }))
    .chain(idle_watchers.iter().flat_map(|w| {
        [("without", &w.submit_without), ("with", &w.submit_with)]
            .into_iter()
            .filter_map(|(label, s)| {
                let p = s.foreign_cpu_pct.filter(|&p| p > 10.0)?;
                Some(format!("(g) submit {label} the idle streams ({p:.0} %)"))
            })
            .collect::<Vec<_>>()
    }))
    .collect();
    if !disturbed.is_empty() {
        notes.push(format!(
            "DISTURBED: processes outside the benchmark used more than 10 % of the machine's CPU \
             during: {}. Run again on a quiet machine before trusting those figures.",
            disturbed.join(", ")
        ));
    }
    notes.push(
        "Everything runs on the same machine: the load generator, the local website, PostgreSQL, \
         Redis and the four services share its CPUs, so the figures are CPU-bound upper limits \
         of this box, not of a deployment."
            .into(),
    );
    notes.push(
        "SMTP and SMS are not configured for notification (KG_SMTP_URL / KG_SMS_URL unset): its \
         deliveries are created and listed but not sent; (e) measures until the delivery exists."
            .into(),
    );

    let command = std::iter::once("kg-bench".to_string())
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ");
    Ok(Report {
        generated_at: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
        command: if plan.quick {
            format!("scripts/bench --quick ({command})")
        } else {
            format!("scripts/bench ({command})")
        },
        quick: plan.quick,
        complete: true,
        machine: machine(mesh).await,
        settings: Settings {
            concurrencies: plan.concurrency.clone(),
            scale_concurrency: plan.scale_concurrency,
            scales: plan.scales.clone(),
            step_secs: plan.step.as_secs_f64(),
            warmup_secs: plan.warmup.as_secs_f64(),
            max_requests: plan.max_requests,
            max_submits: plan.max_submits,
            connections: plan.connections,
            pipeline_samples: plan.pipeline_samples,
            auth: "off (no KG_JWT_SECRET): token checks are not measured; per-caller rate \
                   limit off (KG_RATE_LIMIT_PER_SEC=0)"
                .into(),
            echo: "grpc.health.v1.Health/Check(\"\") from tonic-health, served by a bare tonic \
                   Server in its own process (`kg-bench echo-server`) with the services' tower \
                   stack (30 s request timeout, kg-runtime trace span, per-RPC metrics layer, \
                   auth and rate-limit layers off); no database, reflection or probes. Driven by the same client code, channels and \
                   concurrency as the mesh."
                .into(),
            database: "the check-then-insert transaction of SubmitApplication (SELECT seller by \
                       entity_key, SELECT active application by entity_key, INSERT application, \
                       INSERT idempotency key, INSERT two outbox rows, COMMIT) with sea-orm and \
                       registration's own entities, against a scratch database migrated with \
                       kg_registration::migrations::Migrator, through a pool made by \
                       kg_runtime::db::connect (20 connections, as registration). PostgreSQL from \
                       the test harness: fsync=off, full_page_writes=off, synchronous_commit on."
                .into(),
            stored_row: format!(
                "copies of a row SubmitApplication stored ({row_bytes} bytes of profile, logo, \
                 agreement and evidence); pre-loaded rows are 60 % APPROVED (each with its \
                 seller row), 20 % REJECTED, 10 % WITHDRAWN, 10 % IN_REVIEW, written in \
                 multi-row INSERTs of 500, then ANALYZE. GetApplication reads random stored \
                 applications (pre-loaded and submitted)."
            ),
        },
        echo,
        database,
        submit,
        get,
        ratios,
        pipeline: pipe,
        outbox,
        scales,
        memory,
        idle_watchers,
        targets,
        notes,
    })
}
