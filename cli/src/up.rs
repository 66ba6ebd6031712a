//! `koogallery up`: the four services in one process, each on its own port, SQLite files in a
//! data folder, Redis when a URL is given (else an in-process lock, said in the log).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use kg_runtime::config::{CommonConfig, LogFormat, ports};
use kg_runtime::shutdown::Shutdown;
use tokio::net::TcpListener;

#[derive(clap::Args)]
pub struct UpArgs {
    /// Folder for the services' SQLite files.
    #[arg(long, env = "KG_DATA_DIR", default_value = "data")]
    data_dir: PathBuf,
    /// Address the services bind to.
    #[arg(long, env = "KG_BIND", default_value = "127.0.0.1")]
    bind: IpAddr,
    /// First port; the services take four consecutive ports (identity-check, registration,
    /// review, notification). Metrics follow at port + 1000.
    #[arg(long, env = "KG_BASE_PORT", default_value_t = ports::IDENTITY_CHECK)]
    base_port: u16,
    /// Redis for the registration lock. Unset: an in-process lock.
    #[arg(long, env = "KG_REDIS_URL", hide_env_values = true)]
    redis_url: Option<String>,
    #[arg(long, env = "KG_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// TEST ONLY: `ip/prefix` list the website check may reach despite the SSRF guard.
    #[arg(
        long,
        env = "KG_WEBSITE_TEST_ALLOWLIST",
        value_delimiter = ',',
        hide = true
    )]
    website_test_allowlist: Vec<String>,
}

pub async fn run(args: UpArgs) -> anyhow::Result<ExitCode> {
    let _telemetry = kg_runtime::telemetry::init("koogallery", args.log_format);
    let shutdown = Shutdown::from_signals();
    let addr = |offset: u16| SocketAddr::new(args.bind, args.base_port + offset);
    let common = |offset: u16| CommonConfig {
        listen_addr: Some(addr(offset)),
        metrics_addr: Some(SocketAddr::new(args.bind, args.base_port + 1000 + offset)),
        database_url: None,
        data_dir: args.data_dir.clone(),
        log_format: args.log_format,
        shutdown_grace_secs: 25,
    };
    let url = |offset: u16| format!("http://{}", addr(offset));

    let mut listeners = Vec::new();
    for offset in 0..4 {
        let a = addr(offset);
        listeners.push(
            TcpListener::bind(a)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on {a}: {e}"))?,
        );
    }
    let mut listeners = listeners.into_iter();
    let mut next = || listeners.next().expect("four listeners");

    let identity = kg_identity_check::Config {
        common: common(0),
        website_test_allowlist: args.website_test_allowlist.clone(),
    };
    let registration = kg_registration::Config {
        common: common(1),
        redis_url: args.redis_url.clone(),
        identity_check_url: url(0),
        call_timeout_ms: 15_000,
        lock_ttl_ms: 30_000,
        lock_wait_ms: 2_000,
    };
    let review = kg_review::Config { common: common(2) };
    let notification = kg_notification::Config { common: common(3) };

    if args.redis_url.is_none() {
        tracing::warn!(
            "no --redis-url: registration uses an IN-PROCESS lock (fine for this single process)"
        );
    }
    println!("KooGallery mesh (data in {})", args.data_dir.display());
    for (name, offset) in [
        ("identity-check", 0),
        ("registration", 1),
        ("review", 2),
        ("notification", 3),
    ] {
        println!(
            "  {name:<15} grpc://{:<22} metrics http://{}/metrics",
            addr(offset),
            SocketAddr::new(args.bind, args.base_port + 1000 + offset)
        );
    }

    let results = tokio::join!(
        kg_identity_check::run(identity, next(), shutdown.clone()),
        kg_registration::run(registration, next(), shutdown.clone()),
        kg_review::run(review, next(), shutdown.clone()),
        kg_notification::run(notification, next(), shutdown.clone()),
    );
    let mut failed = false;
    for (name, result) in [
        ("identity-check", results.0),
        ("registration", results.1),
        ("review", results.2),
        ("notification", results.3),
    ] {
        if let Err(err) = result {
            eprintln!("{name}: {err:#}");
            failed = true;
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
