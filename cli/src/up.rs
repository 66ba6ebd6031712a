//! `koogallery up`: the four services in one process, each on its own port, SQLite files in a
//! data folder, Redis when a URL is given (else an in-process lock, said in the log).

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;

use kg_runtime::config::{CommonConfig, LogFormat, ports};
use kg_runtime::shutdown::Shutdown;
use secrecy::SecretString;
use tokio::net::TcpListener;

use crate::demo;
use crate::mesh::{Global, MeshFile};

#[derive(clap::Args)]
pub struct UpArgs {
    /// Address the services bind to.
    #[arg(long, env = "KG_BIND", default_value = "127.0.0.1")]
    bind: IpAddr,
    /// Redis for the registration lock. Unset: an in-process lock.
    #[arg(long, env = "KG_REDIS_URL", hide_env_values = true)]
    redis_url: Option<SecretString>,
    /// Log lines as text or JSON.
    #[arg(long, env = "KG_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Do not serve the example companies' website on 127.0.80.1:8080, and give the website
    /// check no exception to its SSRF guard (examples/application*.yaml then fail the check).
    #[arg(long, env = "KG_NO_DEMO_SITE")]
    no_demo_site: bool,
    /// TEST ONLY: `ip/prefix` list the website check may reach despite the SSRF guard.
    #[arg(
        long,
        env = "KG_WEBSITE_TEST_ALLOWLIST",
        value_delimiter = ',',
        hide = true
    )]
    website_test_allowlist: Vec<String>,
}

pub async fn run(args: UpArgs, global: &Global) -> anyhow::Result<ExitCode> {
    // one process, four services: each service's spans keep its own service.name
    let _telemetry = kg_runtime::telemetry::init_services(
        "koogallery",
        &[
            kg_identity_check::SERVICE,
            kg_registration::SERVICE,
            kg_review::SERVICE,
            kg_notification::SERVICE,
        ],
        args.log_format,
    );
    // the banner is a log line like any other in JSON mode, so every line parses
    let json = args.log_format == LogFormat::Json;
    let banner = |line: String| {
        if json {
            tracing::info!(target: "koogallery::up", "{line}");
        } else {
            println!("{line}");
        }
    };
    let shutdown = Shutdown::from_signals();
    let data_dir = &global.data_dir;
    let base_port = global.base_port.unwrap_or(ports::IDENTITY_CHECK);
    if base_port > u16::MAX - 1003 {
        anyhow::bail!("--base-port {base_port} is too high: the metrics ports are at +1000..+1003");
    }
    let jwt_secret: SecretString = match &global.jwt_secret {
        Some(secret) => secret.clone(),
        None => crate::token::dev_secret(data_dir, true)?.into(),
    };
    let addr = |offset: u16| SocketAddr::new(args.bind, base_port + offset);
    // the defaults otherwise: no database URL (SQLite in the data folder), plaintext on
    // loopback (no TLS), the default rate limit, timeouts and grace period
    let common = |offset: u16| CommonConfig {
        listen_addr: Some(addr(offset)),
        metrics_addr: Some(SocketAddr::new(args.bind, base_port + 1000 + offset)),
        data_dir: data_dir.clone(),
        log_format: args.log_format,
        jwt_secret: Some(jwt_secret.clone()),
        cors_allowed_origins: kg_runtime::config::cors_allowed_origins_from_env(),
        ..Default::default()
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
    // The reviewers' back office (HTTP), on the port after the four services.
    let backoffice_addr = addr(4);
    let backoffice_listener = TcpListener::bind(backoffice_addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {backoffice_addr}: {e}"))?;
    let backoffice = kg_backoffice::Config::local(url(0), url(1), url(2), jwt_secret.clone());

    // The offline demo: the example companies' site, and the one exception to the SSRF guard
    // that lets the website check reach it. Only `up` sets it, in process: the service binaries
    // and the chart have no way to.
    let mut allowlist = args.website_test_allowlist.clone();
    let demo_site = if args.no_demo_site {
        None
    } else if args.bind.is_unspecified() {
        tracing::warn!(
            "--bind {} listens on every interface, so the demo site's address would reach the \
             mesh too: no demo site and no exception to the website check's SSRF guard",
            args.bind
        );
        None
    } else {
        let site: SocketAddr = demo::DEMO_SITE.parse().expect("a socket address");
        allowlist.push(format!("{}/32", site.ip()));
        match demo::bind(site).await {
            Ok(listener) => Some(tokio::spawn(demo::serve(listener))),
            Err(e) => {
                tracing::warn!(
                    "demo site: cannot listen on {site} ({e}); another `koogallery up` may serve it"
                );
                None
            }
        }
    };
    // Clients find this mesh through its data folder (see mesh.rs).
    let client_addr = |offset: u16| {
        let host = if args.bind.is_unspecified() {
            IpAddr::from([127, 0, 0, 1])
        } else {
            args.bind
        };
        SocketAddr::new(host, base_port + offset).to_string()
    };
    MeshFile {
        identity_check: client_addr(0),
        registration: client_addr(1),
        review: client_addr(2),
        notification: client_addr(3),
    }
    .write(data_dir)?;
    let mut next = || listeners.next().expect("four listeners");

    let identity = kg_identity_check::Config {
        common: common(0),
        website_test_allowlist: allowlist,
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
        contact_code_ttl_hours: 24,
        contact_unreachable_failures: 3,
        contact_failure_window_hours: 720,
    };
    // The calendar and the outbox settings come from KG_* variables (KG_CALENDAR_FILE, …)
    let review = kg_review::Config::from_env(common(2), url(0), url(1))?;
    // SMTP/SMS and the delivery settings come from KG_* variables (KG_SMTP_URL, KG_SMS_URL, …)
    let mut notification = kg_notification::Config::from_env(common(3), url(0))?;
    // undeliverable contact addresses are reported to this mesh's registration
    notification.registration_url = url(1);

    if args.redis_url.is_none() {
        tracing::warn!(
            "no --redis-url: registration uses an IN-PROCESS lock (fine for this single process)"
        );
    }
    banner(format!("KooGallery mesh (data in {})", data_dir.display()));
    banner(format!(
        "  clients: koogallery --data-dir {} …   (addresses and token secret from there)",
        data_dir.display()
    ));
    if demo_site.is_some() {
        banner(format!(
            "  demo site http://{}/ (the example applications' website)",
            demo::DEMO_SITE
        ));
    }
    for (name, offset) in [
        ("identity-check", 0),
        ("registration", 1),
        ("review", 2),
        ("notification", 3),
    ] {
        banner(format!(
            "  {name:<15} grpc://{:<22} metrics http://{}/metrics",
            addr(offset),
            SocketAddr::new(args.bind, base_port + 1000 + offset)
        ));
    }

    banner(format!(
        "  back office     http://{backoffice_addr}/   (reviewers; development sign-in)"
    ));

    let results = tokio::join!(
        kg_identity_check::run(identity, next(), shutdown.clone()),
        kg_registration::run(registration, next(), shutdown.clone()),
        kg_review::run(review, next(), shutdown.clone()),
        kg_notification::run(notification, next(), shutdown.clone()),
        kg_backoffice::run(backoffice, backoffice_listener, shutdown.clone()),
    );
    if let Some(site) = demo_site {
        site.abort();
    }
    let mut failed = false;
    for (name, result) in [
        ("identity-check", results.0),
        ("registration", results.1),
        ("review", results.2),
        ("notification", results.3),
        ("backoffice", results.4),
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
