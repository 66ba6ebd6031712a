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
    // secrets may come as files (KG_JWT_SECRET_FILE, KG_BACKOFFICE_CSRF_SECRET_FILE), as the
    // chart mounts them
    let Cli { config } = kg_runtime::config::parse_with_secret_files::<Cli>();
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
