//! identity-check: the account directory, eligibility of an account to become a seller, and the
//! checks of the application's materials.

pub mod account_store;
pub mod accounts;
pub mod convert;
pub mod eligibility;
pub mod error;
pub mod materials;
pub mod migrations;
pub mod roles;
pub mod service;

use std::net::IpAddr;

use kg_checks::logo::LogoPolicy;
use kg_checks::urlguard::UrlGuard;
use kg_checks::website::WebsiteChecker;
use kg_proto::identity::identity_check_service_server::IdentityCheckServiceServer;
use kg_runtime::config::CommonConfig;
use kg_runtime::health::Probe;
use kg_runtime::server::{ServeOptions, serve};
use kg_runtime::shutdown::Shutdown;
use sea_orm_migration::MigratorTrait;
use tokio::net::TcpListener;

pub const SERVICE: &str = "identity-check";

/// Logo uploads ride in CheckLogo/CheckMaterials: 5 MB of image plus the rest of the message.
const MAX_MESSAGE_BYTES: usize = 6 * 1024 * 1024;

#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    #[command(flatten)]
    pub common: CommonConfig,

    /// TEST ONLY: addresses (`ip/prefix`, comma-separated) the website check may reach even though
    /// they are private or loopback. Never set in production.
    #[arg(
        long,
        env = "KG_WEBSITE_TEST_ALLOWLIST",
        value_delimiter = ',',
        hide = true
    )]
    pub website_test_allowlist: Vec<String>,
}

pub async fn migrate(config: &Config) -> anyhow::Result<()> {
    let db = config.common.connect_database(SERVICE).await?;
    migrations::Migrator::up(&db, None).await?;
    Ok(())
}

pub async fn run(config: Config, listener: TcpListener, shutdown: Shutdown) -> anyhow::Result<()> {
    let db = config.common.connect_database(SERVICE).await?;
    migrations::Migrator::up(&db, None).await?;

    let guard = if config.website_test_allowlist.is_empty() {
        UrlGuard::default()
    } else {
        tracing::warn!(allow = ?config.website_test_allowlist, "website check TEST allowlist is set");
        UrlGuard::with_test_allowlist(parse_allowlist(&config.website_test_allowlist)?)
    };
    let checker = materials::MaterialsChecker {
        website: WebsiteChecker {
            guard,
            ..WebsiteChecker::default()
        },
        logo: LogoPolicy::default(),
    };

    let service = IdentityCheckServiceServer::new(service::IdentityCheck::new(db.clone(), checker))
        .max_decoding_message_size(MAX_MESSAGE_BYTES);
    let mut options = ServeOptions::from_config(SERVICE, listener, shutdown, &config.common)?;
    options.probes.push(Probe::database(db));
    serve(options, service, roles::allowed).await
}

fn parse_allowlist(entries: &[String]) -> anyhow::Result<Vec<(IpAddr, u8)>> {
    entries
        .iter()
        .map(|entry| {
            let (ip, prefix) = entry.split_once('/').unwrap_or((entry, "32"));
            let ip: IpAddr = ip.trim().parse()?;
            let prefix: u8 = prefix.trim().parse()?;
            Ok((ip, prefix))
        })
        .collect()
}
