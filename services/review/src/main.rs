use clap::Parser;

#[derive(Parser)]
#[command(
    name = "koogallery-review",
    version,
    about = "KooGallery review service"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<kg_runtime::cli::Command>,
    #[command(flatten)]
    config: kg_review::Config,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let Cli { command, config } = kg_runtime::config::parse_with_secret_files::<Cli>();
    let _telemetry = kg_runtime::telemetry::init(kg_review::SERVICE, config.common.log_format);
    let common = config.common.clone();
    let for_migrate = config.clone();
    kg_runtime::cli::run_service(
        command,
        &common,
        kg_runtime::config::ports::REVIEW,
        || async move { kg_review::migrate(&for_migrate).await },
        |listener, shutdown| kg_review::run(config, listener, shutdown),
    )
    .await
}
