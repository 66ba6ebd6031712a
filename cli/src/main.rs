//! `koogallery`: run the whole mesh in one process, or talk to a running one.

mod apply;
mod events;
mod review;
mod seller;
mod status;
mod token;
mod up;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "koogallery",
    version,
    about = "KooGallery seller-registration mesh"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run all four services in this process on embedded defaults.
    Up(up::UpArgs),
    /// Health and reflected services of every service of a running mesh.
    Status(status::StatusArgs),
    /// Health of one service; exits non-zero unless it is SERVING.
    Health(status::HealthArgs),
    /// Preflight and submit an application described in a YAML file.
    Apply(apply::ApplyArgs),
    /// Reviewer verbs: list, claim, approve, reject, request-changes, reasons, audit.
    Review(review::ReviewArgs),
    /// Seller verbs: show, list, update, rename, exit, modifications list|withdraw.
    Seller(seller::SellerArgs),
    /// Notification deliveries and their status.
    Notifications(review::NotificationsArgs),
    /// Registration's event stream: watch (history, then live; resumable).
    Events(events::EventsArgs),
    /// Mint a bearer token for the local mesh (development only).
    Token(token::TokenArgs),
    /// Account directory operations.
    #[command(subcommand)]
    Accounts(AccountsCommand),
}

#[derive(Subcommand)]
enum AccountsCommand {
    /// Import (upsert) accounts from a YAML file.
    Import(apply::ImportArgs),
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Up(args) => up::run(args).await,
        Command::Status(args) => status::status(args).await,
        Command::Health(args) => status::health(args).await,
        Command::Apply(args) => apply::apply(args).await,
        Command::Token(args) => token::token(args),
        Command::Review(args) => review::review(args).await,
        Command::Seller(args) => seller::seller(args).await,
        Command::Notifications(args) => review::notifications(args).await,
        Command::Events(args) => events::events(args).await,
        Command::Accounts(AccountsCommand::Import(args)) => apply::import(args).await,
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
