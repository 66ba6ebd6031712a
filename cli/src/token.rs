//! `koogallery token`: mint bearer tokens for the LOCAL mesh. Development only: anyone holding
//! the secret can mint any role; production tokens come from the platform's identity provider.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use kg_runtime::auth::Role;

use crate::mesh::{Global, SECRET_FILE};

#[derive(clap::Args)]
pub struct TokenArgs {
    /// The token's role: applicant, reviewer, operator or service.
    #[arg(long, value_parser = parse_role)]
    role: Role,
    /// The subject: the account id for an applicant, the staff member's id otherwise.
    #[arg(long)]
    subject: String,
    /// The token's lifetime in seconds.
    #[arg(long, default_value_t = 3600)]
    ttl_secs: u64,
}

fn parse_role(s: &str) -> Result<Role, String> {
    match s {
        "applicant" => Ok(Role::Applicant),
        "reviewer" => Ok(Role::Reviewer),
        "operator" => Ok(Role::Operator),
        "service" => Ok(Role::Service),
        _ => Err("one of: applicant, reviewer, operator, service".into()),
    }
}

/// The development secret in `data_dir`, created when `create` and missing.
pub fn dev_secret(data_dir: &Path, create: bool) -> anyhow::Result<String> {
    let path = data_dir.join(SECRET_FILE);
    if let Ok(secret) = std::fs::read_to_string(&path) {
        return Ok(secret.trim().to_string());
    }
    if !create {
        anyhow::bail!(
            "no {} (is `koogallery up` using this data folder?)",
            path.display()
        );
    }
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let secret = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    write_private(&path, &secret)?;
    Ok(secret)
}

fn write_private(path: &Path, secret: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(secret.as_bytes())?;
    Ok(())
}

pub fn token(args: TokenArgs, global: &Global) -> anyhow::Result<ExitCode> {
    let Some(auth) = global.authenticator() else {
        anyhow::bail!(
            "no signing secret: no --jwt-secret/KG_JWT_SECRET and no {} (point --data-dir at \
             the data folder of `koogallery up`)",
            global.data_dir.join(SECRET_FILE).display()
        );
    };
    println!(
        "{}",
        auth.mint(&args.subject, args.role, Duration::from_secs(args.ttl_secs))
    );
    Ok(ExitCode::SUCCESS)
}
