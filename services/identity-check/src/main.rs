use clap::Parser;

#[derive(Parser)]
#[command(
    name = "koogallery-identity-check",
    version,
    about = "KooGallery identity-check service"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<kg_runtime::cli::Command>,
    #[command(flatten)]
    config: kg_identity_check::Config,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let Cli { command, config } = kg_runtime::config::parse_with_secret_files::<Cli>();
    let _telemetry =
        kg_runtime::telemetry::init(kg_identity_check::SERVICE, config.common.log_format);
    let common = config.common.clone();
    let for_migrate = config.clone();
    kg_runtime::cli::run_service(
        command,
        &common,
        kg_runtime::config::ports::IDENTITY_CHECK,
        || async move { kg_identity_check::migrate(&for_migrate).await },
        |listener, shutdown| kg_identity_check::run(config, listener, shutdown),
    )
    .await
}
