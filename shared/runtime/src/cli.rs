//! The thin `main` every service binary shares: `serve` (the default) or `migrate`.

use std::future::Future;
use std::process::ExitCode;

use tokio::net::TcpListener;

use crate::config::CommonConfig;
use crate::shutdown::Shutdown;

#[derive(Debug, Clone, Copy, clap::Subcommand)]
pub enum Command {
    /// Serve gRPC (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
}

pub async fn run_service<M, MF, R, RF>(
    command: Option<Command>,
    common: &CommonConfig,
    default_port: u16,
    migrate: M,
    run: R,
) -> ExitCode
where
    M: FnOnce() -> MF,
    MF: Future<Output = anyhow::Result<()>>,
    R: FnOnce(TcpListener, Shutdown) -> RF,
    RF: Future<Output = anyhow::Result<()>>,
{
    let result = match command.unwrap_or(Command::Serve) {
        Command::Migrate => migrate()
            .await
            .map(|()| tracing::info!("migrations applied")),
        Command::Serve => {
            let addr = common.listen_addr_or(default_port);
            match TcpListener::bind(addr).await {
                Ok(listener) => run(listener, Shutdown::from_signals()).await,
                Err(e) => Err(anyhow::anyhow!("cannot listen on {addr}: {e}")),
            }
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = format!("{err:#}"), "exiting");
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
