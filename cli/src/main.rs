//! `koogallery`: run the whole mesh in one process, or talk to a running one.

mod apply;
mod contacts;
mod demo;
mod events;
mod mesh;
mod review;
mod seller;
mod status;
mod table;
mod token;
mod up;

use clap::{CommandFactory as _, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "koogallery",
    version,
    about = "KooGallery seller-registration mesh",
    after_help = "Client commands find the mesh through its data folder (--data-dir, KG_DATA_DIR): \
                  `koogallery up` writes its addresses and token secret there."
)]
struct Cli {
    #[command(flatten)]
    global: mesh::Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run all four services in this process on embedded defaults, with the offline demo site.
    Up(up::UpArgs),
    /// Health and reflected services of every service of a running mesh.
    Status(status::StatusArgs),
    /// Health of one service; exits non-zero unless it is SERVING.
    Health(status::HealthArgs),
    /// Preflight and submit (or resubmit) an application described in a YAML file.
    Apply(apply::ApplyArgs),
    /// Reviewer verbs: list, claim, approve, reject, request-changes, reasons, audit.
    Review(review::ReviewArgs),
    /// Seller verbs: show, list, update, rename, exit, modifications list|withdraw.
    Seller(seller::SellerArgs),
    /// Contact email addresses: list their state, verify with the mailed code, resend a code.
    Contacts(contacts::ContactsArgs),
    /// Notification deliveries: what was sent to whom, and their status.
    #[command(subcommand)]
    Notifications(review::NotificationsCommand),
    /// Registration's event stream: watch (history, then live; resumable).
    Events(events::EventsArgs),
    /// Mint a bearer token for the local mesh (development only).
    Token(token::TokenArgs),
    /// Account directory operations.
    #[command(subcommand)]
    Accounts(AccountsCommand),
    /// Print a shell completion script (for example: koogallery completions bash >
    /// /etc/bash_completion.d/koogallery).
    Completions {
        /// The shell to complete in.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Subcommand)]
enum AccountsCommand {
    /// Import (upsert) accounts from a YAML file; also the local way to change an account's
    /// verified enterprise name (see examples/accounts-renamed.yaml).
    Import(apply::ImportArgs),
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let Cli { global, command } = Cli::parse();
    let g = &global;
    let result = match command {
        Command::Up(args) => up::run(args, g).await,
        Command::Status(args) => status::status(args, g).await,
        Command::Health(args) => status::health(args).await,
        Command::Apply(args) => apply::apply(args, g).await,
        Command::Token(args) => token::token(args, g),
        Command::Review(args) => review::review(args, g).await,
        Command::Seller(args) => seller::seller(args, g).await,
        Command::Contacts(args) => contacts::contacts(args, g).await,
        Command::Notifications(command) => review::notifications(command, g).await,
        Command::Events(args) => events::events(args, g).await,
        Command::Accounts(AccountsCommand::Import(args)) => apply::import(args, g).await,
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "koogallery",
                &mut std::io::stdout(),
            );
            Ok(std::process::ExitCode::SUCCESS)
        }
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every argument of every command, subcommand and flag says what it is for.
    #[test]
    fn every_argument_of_every_command_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>, seen: &mut usize) {
            if cmd.get_about().is_none() && !path.is_empty() {
                missing.push(format!("{path} (the command itself)"));
            }
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                *seen += 1;
                let text = arg
                    .get_help()
                    .or(arg.get_long_help())
                    .map(|h| h.to_string());
                if text.is_none_or(|t| t.trim().is_empty()) {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), missing, seen);
            }
        }
        let mut cmd = Cli::command();
        cmd.build();
        let (mut missing, mut seen) = (Vec::new(), 0);
        walk(&cmd, "", &mut missing, &mut seen);
        assert!(
            seen > 60,
            "only {seen} arguments found: is the walk complete?"
        );
        assert!(missing.is_empty(), "without help text: {missing:#?}");
    }

    #[test]
    fn global_options_are_accepted_after_the_subcommand() {
        let cli = Cli::try_parse_from([
            "koogallery",
            "review",
            "list",
            "--data-dir",
            "/tmp/m",
            "-o",
            "json",
        ])
        .unwrap();
        assert_eq!(cli.global.data_dir, std::path::Path::new("/tmp/m"));
        assert_eq!(cli.global.output, mesh::Output::Json);
    }

    #[test]
    fn completions_are_a_script() {
        let mut out = Vec::new();
        clap_complete::generate(
            clap_complete::Shell::Bash,
            &mut Cli::command(),
            "koogallery",
            &mut out,
        );
        let script = String::from_utf8(out).unwrap();
        assert!(script.contains("complete -F") && script.contains("request-changes"));
    }
}
