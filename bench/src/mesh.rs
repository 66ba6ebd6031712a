//! The mesh under test: private PostgreSQL and Redis servers, the four services and the echo
//! server as processes, the local website, and the database connections the bench reads with.
//! Dropping it stops the services, then Redis and PostgreSQL.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use kg_tests::fixtures;
use kg_tests::{PostgresServer, RedisServer, free_port};
use sea_orm::DatabaseConnection;
use sea_orm_migration::MigratorTrait;

use crate::console::say;
use crate::load::StepResult;
use crate::procs::{self, Service};
use crate::tokens::Tokens;

/// Key of the whole machine's busy time in a CPU snapshot.
pub const SYSTEM: &str = "(machine)";

/// Registration's first database (the one of (c), (d) and (g)).
pub const MAIN_DB: &str = "kg_registration";

/// Registration's database for the stored-applications steps.
pub const SCALE_DB: &str = "kg_registration_scale";

pub struct Mesh {
    pub services: Vec<Service>,
    pub echo: Service,
    pub website: fixtures::Website,
    /// Registration's database (the one the running registration process uses).
    pub registration_db: DatabaseConnection,
    /// How registration was started, to start it again on another database.
    registration_env: Env,
    bin_dir: PathBuf,
    log_dir: PathBuf,
    pub scratch_db: DatabaseConnection,
    redis: RedisServer,
    postgres: PostgresServer,
}

/// A service's configuration, as its process gets it: environment variables.
type Env = Vec<(&'static str, String)>;

/// What [`start`] needs besides the servers.
pub struct Setup<'a> {
    pub bin_dir: &'a Path,
    pub log_dir: &'a Path,
    /// Idle WatchEvents streams (g) will hold open at once.
    pub watchers: usize,
    pub tokens: &'a Tokens,
}

pub async fn start(setup: Setup<'_>) -> anyhow::Result<Mesh> {
    let log_dir = setup.log_dir;
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
    say(format!(
        "starting the services from {} (logs in {}; authentication {})",
        setup.bin_dir.display(),
        log_dir.display(),
        if setup.tokens.on() { "on" } else { "off" }
    ));
    let (services, registration_env) = spawn_services(&setup, &postgres, &redis)?;
    let echo_addr = format!("127.0.0.1:{}", free_port());
    let me = std::env::current_exe().context("locating kg-bench itself")?;
    let mut echo_env = vec![("RUST_LOG", "warn".to_string())];
    echo_env.extend(setup.tokens.service_env());
    let echo = Service::spawn(
        "echo",
        &me,
        &["echo-server", "--listen", &echo_addr],
        &echo_env,
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
        bin_dir: setup.bin_dir.to_path_buf(),
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

/// Starts the four services, configured by environment like in a deployment; returns them and
/// registration's environment.
fn spawn_services(
    setup: &Setup<'_>,
    postgres: &PostgresServer,
    redis: &RedisServer,
) -> anyhow::Result<(Vec<Service>, Env)> {
    let addr = || format!("127.0.0.1:{}", free_port());
    let (idc_addr, reg_addr, rev_addr, not_addr) = (addr(), addr(), addr(), addr());
    let url = |a: &str| format!("http://{a}");
    let common = |listen: &str, db: &str| {
        let mut env = vec![
            ("KG_LISTEN_ADDR", listen.to_string()),
            ("KG_DATABASE_URL", postgres.url(db)),
            ("RUST_LOG", "warn".to_string()),
            ("KG_SHUTDOWN_GRACE_SECS", "3".to_string()),
            // The per-caller rate limit would be the figure otherwise: capacity is measured.
            ("KG_RATE_LIMIT_PER_SEC", "0".to_string()),
        ];
        env.extend(setup.tokens.service_env());
        env
    };
    let spawn = |name: &str, binary: &str, env: &[(&str, String)], addr: &str| {
        Service::spawn(
            name,
            &setup.bin_dir.join(binary),
            &[],
            env,
            addr.to_string(),
            setup.log_dir,
        )
    };
    let mut services = Vec::new();
    let mut env = common(&idc_addr, "kg_identity");
    env.push(("KG_WEBSITE_TEST_ALLOWLIST", "127.0.0.1/32".to_string()));
    services.push(spawn(
        "identity-check",
        "koogallery-identity-check",
        &env,
        &idc_addr,
    )?);
    let mut env = common(&rev_addr, "kg_review");
    env.push(("KG_REGISTRATION_URL", url(&reg_addr)));
    env.push(("KG_IDENTITY_CHECK_URL", url(&idc_addr)));
    services.push(spawn("review", "koogallery-review", &env, &rev_addr)?);
    let mut env = common(&not_addr, "kg_notification");
    env.push(("KG_IDENTITY_CHECK_URL", url(&idc_addr)));
    services.push(spawn(
        "notification",
        "koogallery-notification",
        &env,
        &not_addr,
    )?);
    let mut registration_env = common(&reg_addr, MAIN_DB);
    registration_env.push(("KG_REDIS_URL", redis.url()));
    registration_env.push(("KG_IDENTITY_CHECK_URL", url(&idc_addr)));
    registration_env.push(("KG_REVIEW_URL", url(&rev_addr)));
    registration_env.push(("KG_NOTIFICATION_URL", url(&not_addr)));
    // (g) holds `watchers` streams open at once: room for them and a few more.
    registration_env.push((
        "KG_WATCH_MAX_STREAMS",
        (setup.watchers + 100).max(1000).to_string(),
    ));
    services.push(spawn(
        "registration",
        "koogallery-registration",
        &registration_env,
        &reg_addr,
    )?);
    Ok((services, registration_env))
}

impl Mesh {
    pub fn service(&self, name: &str) -> &Service {
        self.services
            .iter()
            .find(|s| s.name == name)
            .expect("known service")
    }

    /// CPU ticks used so far by each process that takes part.
    pub fn cpu_snapshot(&self) -> BTreeMap<String, u64> {
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
    pub fn attach_cpu(&self, step: &mut StepResult, before: &BTreeMap<String, u64>) {
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
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
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

    /// Stops registration and starts it again (same address, Redis, peers and secret) on the
    /// empty database `db` (created at start-up); returns the peak memory of the process that
    /// was stopped.
    pub async fn move_registration(&mut self, db: &str) -> anyhow::Result<Option<procs::Memory>> {
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

    pub async fn stop(mut self) {
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
