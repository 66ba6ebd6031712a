//! Which mesh a client command talks to, and how it reports what went wrong.
//!
//! One setting points every command at a mesh: the data folder (`--data-dir`, `KG_DATA_DIR`).
//! `koogallery up` writes its addresses to `<data dir>/mesh.json` and its development token
//! secret to `<data dir>/dev-jwt-secret`; client commands read both from there. Per-service
//! addresses (`--review-addr`, …) and `--base-port` override the file, for meshes that `up` did
//! not start (a deployment), where `--jwt-secret` or `--token` stand in for the secret file.

use std::fmt;
use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use kg_runtime::auth::{Authenticator, DEFAULT_AUDIENCE, DEFAULT_ISSUER, Role};
use kg_runtime::error::DecodedError;
use secrecy::{ExposeSecret, SecretString};
use tonic::transport::{Channel, Endpoint};

pub const MESH_FILE: &str = "mesh.json";
pub const SECRET_FILE: &str = "dev-jwt-secret";

/// The four services, in port order (base port + index).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    IdentityCheck,
    Registration,
    Review,
    Notification,
}

impl Service {
    pub const ALL: [Service; 4] = [
        Service::IdentityCheck,
        Service::Registration,
        Service::Review,
        Service::Notification,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Service::IdentityCheck => "identity-check",
            Service::Registration => "registration",
            Service::Review => "review",
            Service::Notification => "notification",
        }
    }

    pub fn offset(self) -> u16 {
        self as u16
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How records are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// Aligned columns for people.
    Table,
    /// JSON with stable snake_case field names (events watch: one object per line).
    Json,
    /// Only the resource names, one per line, for `$(…)` in scripts.
    Name,
}

/// Options every command accepts, before or after the subcommand.
#[derive(clap::Args, Clone, Debug)]
pub struct Global {
    /// The local mesh's data folder: `koogallery up` keeps its databases, its development token
    /// secret and mesh.json (its addresses) there, and client commands read both from it.
    #[arg(
        long,
        env = "KG_DATA_DIR",
        default_value = "data",
        global = true,
        value_name = "DIR"
    )]
    pub data_dir: PathBuf,
    /// First port of the mesh (identity-check; registration, review and notification follow).
    /// For `up`: where to listen (default 50051). For clients: overrides mesh.json.
    #[arg(long, env = "KG_BASE_PORT", global = true, value_name = "PORT")]
    pub base_port: Option<u16>,
    /// Host of the mesh for client commands given --base-port.
    #[arg(long, env = "KG_HOST", default_value = "127.0.0.1", global = true)]
    pub host: String,
    /// identity-check's address (`host:port`, or `https://host:port` for TLS); overrides
    /// mesh.json and --base-port.
    #[arg(
        long,
        env = "KG_IDENTITY_CHECK_ADDR",
        global = true,
        value_name = "ADDR"
    )]
    pub identity_addr: Option<String>,
    /// registration's address; overrides mesh.json and --base-port.
    #[arg(long, env = "KG_REGISTRATION_ADDR", global = true, value_name = "ADDR")]
    pub registration_addr: Option<String>,
    /// review's address; overrides mesh.json and --base-port.
    #[arg(long, env = "KG_REVIEW_ADDR", global = true, value_name = "ADDR")]
    pub review_addr: Option<String>,
    /// notification's address; overrides mesh.json and --base-port.
    #[arg(long, env = "KG_NOTIFICATION_ADDR", global = true, value_name = "ADDR")]
    pub notification_addr: Option<String>,
    /// HS256 secret that signs tokens (the mesh's KG_JWT_SECRET). Default: the development
    /// secret in the data folder.
    #[arg(long, env = "KG_JWT_SECRET", hide_env_values = true, global = true)]
    pub jwt_secret: Option<SecretString>,
    /// A bearer token issued elsewhere (a deployment's identity provider); sent as it is
    /// instead of tokens minted from a secret.
    #[arg(long, env = "KG_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<SecretString>,
    /// Output format of commands that print records.
    #[arg(
        short,
        long,
        value_enum,
        default_value_t = Output::Table,
        global = true
    )]
    pub output: Output,
}

/// An address and where it came from, for error messages.
#[derive(Clone, Debug)]
pub struct Target {
    pub service: Service,
    pub addr: String,
    pub source: String,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at {} ({})", self.service, self.addr, self.source)
    }
}

/// What `up` writes to mesh.json: where each service listens for clients.
#[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
pub struct MeshFile {
    #[serde(rename = "identity-check")]
    pub identity_check: String,
    pub registration: String,
    pub review: String,
    pub notification: String,
}

impl MeshFile {
    fn get(&self, service: Service) -> &str {
        match service {
            Service::IdentityCheck => &self.identity_check,
            Service::Registration => &self.registration,
            Service::Review => &self.review,
            Service::Notification => &self.notification,
        }
    }

    pub fn write(&self, data_dir: &Path) -> anyhow::Result<()> {
        let path = data_dir.join(MESH_FILE);
        std::fs::write(&path, serde_json::to_string_pretty(self)? + "\n")
            .with_context(|| format!("writing {}", path.display()))
    }
}

impl Global {
    /// Where `service` is: its own flag, else --base-port, else mesh.json, else the default port.
    pub fn target(&self, service: Service) -> anyhow::Result<Target> {
        let (explicit, flag) = match service {
            Service::IdentityCheck => (
                &self.identity_addr,
                "--identity-addr/KG_IDENTITY_CHECK_ADDR",
            ),
            Service::Registration => (
                &self.registration_addr,
                "--registration-addr/KG_REGISTRATION_ADDR",
            ),
            Service::Review => (&self.review_addr, "--review-addr/KG_REVIEW_ADDR"),
            Service::Notification => (
                &self.notification_addr,
                "--notification-addr/KG_NOTIFICATION_ADDR",
            ),
        };
        let target = |addr: String, source: String| Target {
            service,
            addr,
            source,
        };
        if let Some(addr) = explicit {
            return Ok(target(addr.clone(), format!("from {flag}")));
        }
        if let Some(base) = self.base_port {
            let port = base
                .checked_add(service.offset())
                .context("--base-port is too high")?;
            return Ok(target(
                format!("{}:{port}", self.host),
                "from --base-port/KG_BASE_PORT".into(),
            ));
        }
        let path = self.data_dir.join(MESH_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let file: MeshFile = serde_json::from_str(&text).with_context(|| {
                    format!("{} is not a mesh file of `koogallery up`", path.display())
                })?;
                Ok(target(
                    file.get(service).to_string(),
                    format!("from {}", path.display()),
                ))
            }
            Err(_) => Ok(target(
                format!(
                    "127.0.0.1:{}",
                    kg_runtime::config::ports::IDENTITY_CHECK + service.offset()
                ),
                format!(
                    "the default port: no {} — point --data-dir at the folder of `koogallery up`",
                    path.display()
                ),
            )),
        }
    }

    /// The secret that signs tokens: --jwt-secret, else the development secret of the data folder.
    fn secret(&self) -> Option<SecretString> {
        self.jwt_secret.clone().or_else(|| {
            std::fs::read_to_string(self.data_dir.join(SECRET_FILE))
                .ok()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .map(SecretString::from)
        })
    }

    pub fn authenticator(&self) -> Option<Authenticator> {
        self.secret().map(|s| {
            Authenticator::hs256(
                s.expose_secret().as_bytes(),
                DEFAULT_ISSUER,
                DEFAULT_AUDIENCE,
            )
        })
    }

    /// `Bearer …` for `subject` in `role`: --token as given, else minted from the secret.
    pub fn bearer(&self, subject: &str, role: Role) -> Option<String> {
        if let Some(token) = &self.token {
            let token = token.expose_secret();
            return Some(format!("Bearer {}", token.trim_start_matches("Bearer ")));
        }
        self.authenticator()
            .map(|a| format!("Bearer {}", a.mint(subject, role, Duration::from_secs(600))))
    }

    /// Why no token could be sent: what was looked for and how to supply it.
    pub fn missing_secret(&self) -> String {
        format!(
            "no token was sent: no --token/KG_TOKEN, no --jwt-secret/KG_JWT_SECRET and no {} \
             (point --data-dir/KG_DATA_DIR at the data folder of `koogallery up`)",
            self.data_dir.join(SECRET_FILE).display()
        )
    }

    /// A channel to `service`, connected now so that a wrong address fails here; `timeout`
    /// bounds each call (`None` for streams).
    pub async fn connect(
        &self,
        service: Service,
        timeout: Option<Duration>,
    ) -> anyhow::Result<Client> {
        let target = self.target(service)?;
        match connect(&target.addr, timeout).await {
            Ok(channel) => Ok(Client { channel, target }),
            Err(err) => anyhow::bail!(
                "cannot reach {target}: UNAVAILABLE: {}",
                root_cause(err.as_ref())
            ),
        }
    }

    /// A channel for unary calls (60 s each).
    pub async fn client(&self, service: Service) -> anyhow::Result<Client> {
        self.connect(service, Some(Duration::from_secs(60))).await
    }

    /// Prints a refused call to stderr: `error: CODE REASON: message`, the details, and a hint
    /// when the call went out without a token.
    pub fn refused(&self, client: &Client, status: &tonic::Status, sent_token: bool) {
        for line in status_lines(status, &client.target) {
            eprintln!("{line}");
        }
        if status.code() == tonic::Code::Unauthenticated && !sent_token {
            eprintln!("  {}", self.missing_secret());
        }
    }
}

/// A connected channel and the address it goes to.
#[derive(Clone)]
pub struct Client {
    pub channel: Channel,
    pub target: Target,
}

/// A channel to `addr` (`host:port` is plaintext; `https://host:port` speaks TLS), connected
/// now so that a wrong address fails here; `timeout` bounds each call (`None` for streams).
/// Over TLS the CLI trusts `KG_TLS_CA` and, when the server asks for a client certificate
/// (mutual TLS), presents `KG_TLS_CERT`/`KG_TLS_KEY`: the variables the services read, so the
/// chart's test pod and an operator's shell inside the mesh need nothing else.
pub async fn connect(addr: &str, timeout: Option<Duration>) -> anyhow::Result<Channel> {
    let url = if addr.contains("://") {
        addr.to_string()
    } else {
        format!("http://{addr}")
    };
    let mut endpoint = Endpoint::from_shared(url.clone())?
        .connect_timeout(Duration::from_secs(2))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_while_idle(true);
    if let Some(timeout) = timeout {
        endpoint = endpoint.timeout(timeout);
    }
    if url.starts_with("https://") {
        let Some(tls) = tls_from_env()? else {
            anyhow::bail!("{addr} speaks TLS: set KG_TLS_CA to the CA that signed its certificate");
        };
        endpoint = endpoint.tls_config(tls)?;
    }
    Ok(endpoint.connect().await?)
}

fn tls_from_env() -> anyhow::Result<Option<tonic::transport::ClientTlsConfig>> {
    let path = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(std::path::PathBuf::from)
    };
    kg_runtime::tls::TlsFiles {
        cert: path("KG_TLS_CERT"),
        key: path("KG_TLS_KEY"),
        client_ca: None,
        ca: path("KG_TLS_CA"),
    }
    .client()
}

/// A gRPC code as the protocol spells it: `FAILED_PRECONDITION`, not `FailedPrecondition`.
pub fn code_name(code: tonic::Code) -> String {
    let camel = format!("{code:?}");
    let mut out = String::with_capacity(camel.len() + 4);
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// The innermost error of a chain: transport errors repeat their cause at every layer
/// ("tcp connect error: tcp connect error: Connection refused"), so only the root is worth saying.
pub fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut current = err;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}

/// A refused call as lines: the status with its reason code and message, then the details. A
/// status the client made itself (the connection failed mid-call) names the address instead.
pub fn status_lines(status: &tonic::Status, target: &Target) -> Vec<String> {
    let code = code_name(status.code());
    let d = DecodedError::from_status(status);
    let mut lines = Vec::new();
    match d.reason {
        Some(reason) => lines.push(format!("error: {code} {reason}: {}", status.message())),
        None => {
            // No ErrorInfo: not our server's answer but the transport's (or a proxy's).
            let cause = std::error::Error::source(status)
                .map(root_cause)
                .unwrap_or_else(|| status.message().to_string());
            lines.push(format!("error: {target}: {code}: {cause}"));
        }
    }
    for (kind, subject, description) in &d.preconditions {
        let subject = if subject.is_empty() { "" } else { subject };
        lines.push(format!("  {kind} {subject}: {description}").replace(" :", ":"));
    }
    for (field, description) in &d.field_violations {
        lines.push(format!("  {field}: {description}"));
    }
    lines
}

/// Runs `call`, telling stderr what it waits for when the call can take seconds; on a terminal
/// the line counts the seconds.
pub async fn with_progress<F: std::future::Future>(label: &str, call: F) -> F::Output {
    let terminal = std::io::stderr().is_terminal();
    eprintln!("{label} …");
    if !terminal {
        return call.await;
    }
    let started = Instant::now();
    let ticker = async {
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            eprint!("\r  {} s", started.elapsed().as_secs());
        }
    };
    let out = tokio::select! {
        out = call => out,
        _ = ticker => unreachable!("the ticker never ends"),
    };
    if started.elapsed() >= Duration::from_secs(1) {
        eprintln!("\r  done in {:.1} s", started.elapsed().as_secs_f64());
    }
    out
}

/// Asks on the terminal before something permanent; `--yes` answers for scripts.
pub fn confirm(question: &str, yes: bool) -> anyhow::Result<()> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        anyhow::bail!(
            "{question} This cannot be undone: pass --yes to confirm (no terminal to ask on)"
        );
    }
    eprint!("{question} This cannot be undone. Type yes to go on: ");
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    if answer.trim().eq_ignore_ascii_case("yes") {
        Ok(())
    } else {
        anyhow::bail!("not confirmed; nothing was changed")
    }
}

/// `prefix/id` for an id given bare, the name unchanged when it already has the prefix.
pub fn resource(prefix: &str, id: &str) -> String {
    if id.starts_with(&format!("{prefix}/")) {
        id.to_string()
    } else {
        format!("{prefix}/{id}")
    }
}

/// An RFC 3339 time (UTC, seconds) for JSON, or null.
pub fn json_time(t: &Option<prost_types::Timestamp>) -> serde_json::Value {
    t.as_ref()
        .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32))
        .map(|t| serde_json::Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)))
        .unwrap_or(serde_json::Value::Null)
}

/// A time for tables: `2026-01-31 08:00 UTC`, or `-`.
pub fn table_time(t: &Option<prost_types::Timestamp>) -> String {
    t.as_ref()
        .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32))
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| "-".into())
}

/// A proto enum value's name without its type prefix (`SUBMITTED`), or the raw number.
pub fn enum_name(name: Option<&str>, prefix: &str, raw: i32) -> String {
    name.map(|n| n.trim_start_matches(prefix).to_string())
        .unwrap_or_else(|| raw.to_string())
}

/// Prints `value` as pretty JSON on stdout.
pub fn print_json(value: &serde_json::Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("JSON values serialize")
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_spelled_as_the_protocol_does() {
        assert_eq!(
            code_name(tonic::Code::FailedPrecondition),
            "FAILED_PRECONDITION"
        );
        assert_eq!(code_name(tonic::Code::Unavailable), "UNAVAILABLE");
        assert_eq!(code_name(tonic::Code::Ok), "OK");
        assert_eq!(
            code_name(tonic::Code::DeadlineExceeded),
            "DEADLINE_EXCEEDED"
        );
    }

    #[test]
    fn addresses_come_from_flags_then_base_port_then_the_mesh_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut g = Global {
            data_dir: dir.path().to_path_buf(),
            base_port: None,
            host: "127.0.0.1".into(),
            identity_addr: None,
            registration_addr: None,
            review_addr: Some("10.0.0.9:443".into()),
            notification_addr: None,
            jwt_secret: None,
            token: None,
            output: Output::Table,
        };
        let t = g.target(Service::Registration).unwrap();
        assert_eq!(t.addr, "127.0.0.1:50052");
        assert!(
            t.source.contains("no ") && t.source.contains("--data-dir"),
            "{}",
            t.source
        );
        MeshFile {
            identity_check: "127.0.0.1:6000".into(),
            registration: "127.0.0.1:6001".into(),
            review: "127.0.0.1:6002".into(),
            notification: "127.0.0.1:6003".into(),
        }
        .write(dir.path())
        .unwrap();
        assert_eq!(
            g.target(Service::Registration).unwrap().addr,
            "127.0.0.1:6001"
        );
        assert_eq!(g.target(Service::Review).unwrap().addr, "10.0.0.9:443");
        g.base_port = Some(7000);
        assert_eq!(
            g.target(Service::Notification).unwrap().addr,
            "127.0.0.1:7003"
        );
        assert!(g.bearer("x", Role::Operator).is_none());
        assert!(g.missing_secret().contains("dev-jwt-secret"));
        std::fs::write(dir.path().join(SECRET_FILE), "s".repeat(40)).unwrap();
        assert!(
            g.bearer("x", Role::Operator)
                .unwrap()
                .starts_with("Bearer ")
        );
    }
}
