//! notification: email and SMS deliveries of review results and other events.

pub mod migrations;
pub mod service;

use std::time::Duration;

use kg_proto::notification::notification_service_server::NotificationServiceServer;
use kg_runtime::config::CommonConfig;
use kg_runtime::health::Probe;
use kg_runtime::server::{ServeOptions, serve};
use kg_runtime::shutdown::Shutdown;
use sea_orm_migration::MigratorTrait;
use tokio::net::TcpListener;

pub const SERVICE: &str = "notification";

#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    #[command(flatten)]
    pub common: CommonConfig,
}

pub async fn migrate(config: &Config) -> anyhow::Result<()> {
    let db = kg_runtime::db::connect(&config.common.database_url_for(SERVICE)).await?;
    migrations::Migrator::up(&db, None).await?;
    Ok(())
}

pub async fn run(config: Config, listener: TcpListener, shutdown: Shutdown) -> anyhow::Result<()> {
    let db = kg_runtime::db::connect(&config.common.database_url_for(SERVICE)).await?;
    migrations::Migrator::up(&db, None).await?;
    let service = NotificationServiceServer::new(service::Notification::new(db.clone()));
    let mut options = ServeOptions::new(SERVICE, listener, shutdown);
    options.metrics_addr = config.common.metrics_addr;
    options.grace = Duration::from_secs(config.common.shutdown_grace_secs);
    options.probes.push(Probe::database(db));
    serve(options, service).await
}
