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
    /// Secret that signs tokens. Default: a development secret generated once and kept in
    /// `<data dir>/dev-jwt-secret`, which `koogallery token` and the client commands read.
    #[arg(long, env = "KG_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,
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
    let jwt_secret = match &args.jwt_secret {
        Some(secret) => secret.clone(),
        None => crate::token::dev_secret(&args.data_dir, true)?,
    };
    let addr = |offset: u16| SocketAddr::new(args.bind, args.base_port + offset);
    let common = |offset: u16| CommonConfig {
        listen_addr: Some(addr(offset)),
        metrics_addr: Some(SocketAddr::new(args.bind, args.base_port + 1000 + offset)),
        database_url: None,
        data_dir: args.data_dir.clone(),
        log_format: args.log_format,
        shutdown_grace_secs: 25,
        jwt_secret: Some(jwt_secret.clone()),
        jwt_issuer: kg_runtime::auth::DEFAULT_ISSUER.to_string(),
        jwt_audience: kg_runtime::auth::DEFAULT_AUDIENCE.to_string(),
        jwt_jwks_file: None,
        jwt_signing_key_file: None,
        jwt_signing_kid: None,
        service_token: None,
        // the local mesh is plaintext on loopback
        tls_cert: None,
        tls_key: None,
        tls_client_ca: None,
        tls_ca: None,
        health_listen_addr: None,
        rate_limit_per_sec: kg_runtime::config::DEFAULT_RATE_LIMIT_PER_SEC,
        rate_limit_burst: kg_runtime::config::DEFAULT_RATE_LIMIT_BURST,
        request_timeout_secs: kg_runtime::config::DEFAULT_REQUEST_TIMEOUT_SECS,
        limits: Default::default(),
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
        review_url: url(2),
        notification_url: url(3),
        outbox_max_backoff_ms: 30_000,
        outbox_lease_ms: 30_000,
        watch_heartbeat_ms: 30_000,
        watch_poll_ms: 500,
        watch_max_streams: 1_000,
    };
    // The calendar and the outbox settings come from KG_* variables (KG_CALENDAR_FILE, …)
    let review = kg_review::Config::from_env(common(2), url(0), url(1))?;
    // SMTP/SMS and the delivery settings come from KG_* variables (KG_SMTP_URL, KG_SMS_URL, …)
    let notification = kg_notification::Config::from_env(common(3), url(0))?;

    if args.redis_url.is_none() {
        tracing::warn!(
            "no --redis-url: registration uses an IN-PROCESS lock (fine for this single process)"
        );
    }
    println!("KooGallery mesh (data in {})", args.data_dir.display());
    println!(
        "  tokens: koogallery token --role applicant --subject <account id>   (development only)"
    );
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
