use clap::Parser;

#[derive(Parser)]
#[command(
    name = "koogallery-backoffice",
    version,
    about = "KooGallery back office: the reviewers' web application"
)]
struct Cli {
    #[command(flatten)]
    config: kg_backoffice::Config,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let Cli { config } = Cli::parse();
    let _telemetry = kg_runtime::telemetry::init(kg_backoffice::SERVICE, config.log_format);
    let addr = config.listen_addr;
    let result = match tokio::net::TcpListener::bind(addr).await {
        Ok(listener) => {
            kg_backoffice::run(
                config,
                listener,
                kg_runtime::shutdown::Shutdown::from_signals(),
            )
            .await
        }
        Err(e) => Err(anyhow::anyhow!("cannot listen on {addr}: {e}")),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = format!("{err:#}"), "exiting");
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
