//! `kg-bench`: starts PostgreSQL, Redis and the four services (separate processes from
//! `target/release`), drives them, and writes `docs/bench/latest.{md,json}`.
//! See docs/performance.md for what each figure means.

mod clients;
mod console;
mod db;
mod echo;
mod load;
mod machine;
mod mesh;
mod plan;
mod procs;
mod report;
mod steps;
mod tokens;
mod verdict;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::{Parser, Subcommand, ValueEnum};

use crate::console::say;
use crate::plan::Plan;
use crate::report::Report;
use crate::tokens::Tokens;

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
    /// Whether the services verify bearer tokens: `on` (every deployment; a random
    /// KG_JWT_SECRET per run, every bench call with a token of its role) or `off` (no
    /// KG_JWT_SECRET: the services' development identity, no token checks).
    #[arg(long, value_enum, default_value_t = Auth::On)]
    auth: Auth,
    /// Token verifications of the in-process measurement of `Authenticator::verify`.
    #[arg(long, default_value_t = 20_000)]
    verifications: u32,
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

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Auth {
    On,
    Off,
}

/// The arguments with the quick/full defaults applied.
fn plan(a: &Args) -> Plan {
    let q = a.quick;
    Plan {
        quick: q,
        auth: a.auth == Auth::On,
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
        verifications: a.verifications.max(1),
        log_dir: a.log_dir.clone(),
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

async fn run(args: Args) -> anyhow::Result<()> {
    let plan = plan(&args);
    let started = Instant::now();
    let load_at_start = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".into());
    if plan.concurrency.is_empty() {
        bail!("--concurrency needs at least one value");
    }
    // Before any server starts: the machine is as quiet as it will be.
    let verification = steps::verify::measure(plan.verifications).await?;
    let tokens = Tokens::new(plan.auth);
    let mut mesh = mesh::start(mesh::Setup {
        bin_dir: &args.bin_dir,
        log_dir: &args.log_dir,
        watchers: plan.idle_watchers,
        tokens: &tokens,
    })
    .await?;
    let outcome = steps::measure(&plan, &mut mesh, &tokens, verification).await;
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
    write(&args, &plan, &report)
}

/// The report files, the figures block of docs/performance.md (full runs only) and the console.
fn write(args: &Args, plan: &Plan, report: &Report) -> anyhow::Result<()> {
    let name = args
        .out_name
        .clone()
        .unwrap_or_else(|| if plan.quick { "quick" } else { "latest" }.into());
    std::fs::create_dir_all(&args.out_dir)?;
    let json_path = args.out_dir.join(format!("{name}.json"));
    let md_path = args.out_dir.join(format!("{name}.md"));
    std::fs::write(&json_path, serde_json::to_string_pretty(report)? + "\n")?;
    std::fs::write(&md_path, report::markdown(report))?;
    say(format!(
        "report: {} and {}",
        md_path.display(),
        json_path.display()
    ));
    if !plan.quick {
        report::update_performance_doc(&args.performance_doc, report)?;
    }
    println!("{}", report::figures_table(report));
    println!("{}", report::scales_table(report));
    println!("{}", report::targets_table(report));
    println!("{}", report::verification_line(&report.token_verification));
    if report.idle_watchers.is_some() {
        println!("{}", report::idle_watchers_line(report));
    }
    Ok(())
}
