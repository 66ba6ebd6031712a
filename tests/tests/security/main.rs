//! Security over real gRPC (identity-check and registration on TCP, with keys configured):
//! the negative matrix of credentials, roles and ownership; JWKS keys and their rotation;
//! property-based hostile input against every mutating RPC; mutual TLS; rate limits and
//! deadlines; and a log capture proving that emails, mobiles and tokens are masked.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use kg_proto::common::{CompanyEntity, Contact, PostalAddress, ReviewDecision, SellerProfile};
use kg_proto::identity::identity_check_service_client::IdentityCheckServiceClient;
use kg_proto::identity::*;
use kg_proto::registration::registration_service_client::RegistrationServiceClient;
use kg_proto::registration::*;
use kg_runtime::auth::{Authenticator, DEFAULT_AUDIENCE, DEFAULT_ISSUER, Role};
use kg_runtime::config::CommonConfig;
use kg_runtime::error::DecodedError;
use kg_runtime::shutdown::Shutdown;
use kg_tests::fixtures::{self, Website};
use kg_tests::mesh::{self, Running, TestDb};
use tonic::Code;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

mod fuzz;
mod limits;
mod logs;
mod roles;
mod tls;
mod tokens;

const SECRET: &str = kg_tests::mesh::TEST_SECRET;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn authenticator() -> Authenticator {
    Authenticator::hs256(SECRET.as_bytes(), DEFAULT_ISSUER, DEFAULT_AUDIENCE)
}

/// `Bearer <a valid HS256 token>` for `subject` in `role`.
fn bearer(subject: &str, role: Role) -> String {
    format!(
        "Bearer {}",
        authenticator().mint(subject, role, Duration::from_secs(600))
    )
}

fn claims(subject: &str, role: &str) -> serde_json::Value {
    serde_json::json!({
        "sub": subject, "role": role, "iss": DEFAULT_ISSUER, "aud": DEFAULT_AUDIENCE,
        "exp": now() + 600, "nbf": now() - 1, "iat": now(),
    })
}

/// A token with `claims`, signed by `key` with `alg` (and `kid`).
fn signed(
    alg: Algorithm,
    kid: Option<&str>,
    key: &EncodingKey,
    claims: &serde_json::Value,
) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_string);
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

fn hs256(claims: &serde_json::Value) -> String {
    signed(
        Algorithm::HS256,
        None,
        &EncodingKey::from_secret(SECRET.as_bytes()),
        claims,
    )
}

/// The same claims with `alg: none` and no signature.
fn alg_none(claims: &serde_json::Value, kid: Option<&str>) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut header = serde_json::json!({"alg": "none", "typ": "JWT"});
    if let Some(kid) = kid {
        header["kid"] = kid.into();
    }
    format!(
        "{}.{}.",
        b64.encode(serde_json::to_vec(&header).unwrap()),
        b64.encode(serde_json::to_vec(claims).unwrap())
    )
}

/// A request carrying `authorization` exactly as given ("" = no header).
fn req<T>(message: T, authorization: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if !authorization.is_empty() {
        request
            .metadata_mut()
            .insert("authorization", authorization.parse().unwrap());
    }
    request
}

fn reason(status: &tonic::Status) -> String {
    DecodedError::from_status(status).reason.unwrap_or_default()
}

/// `common` with the test secret: authentication on.
fn secured(db: &str) -> CommonConfig {
    let mut common = mesh::common(db);
    common.jwt_secret = Some(SECRET.into());
    common
}

fn identity_config(common: CommonConfig, allow_loopback: bool) -> kg_identity_check::Config {
    kg_identity_check::Config {
        common,
        website_test_allowlist: if allow_loopback {
            vec!["127.0.0.1/32".to_string()]
        } else {
            Vec::new()
        },
    }
}

async fn start_identity(config: kg_identity_check::Config) -> Running {
    Running::start(mesh::any_port(), move |l, s| {
        kg_identity_check::run(config, l, s)
    })
    .await
    .unwrap()
}

/// identity-check and registration with authentication on, and a website for submissions.
struct Env {
    identity: Running,
    registration: Running,
    website: Website,
    idc: IdentityCheckServiceClient<Channel>,
    reg: RegistrationServiceClient<Channel>,
    _dbs: (TestDb, TestDb),
}

impl Env {
    async fn start() -> Env {
        Self::start_with(|_| {}).await
    }

    async fn start_with(tune: impl Fn(&mut CommonConfig)) -> Env {
        let identity_db = mesh::fresh_db().await.unwrap();
        let registration_db = mesh::fresh_db().await.unwrap();
        let mut common = secured(&identity_db.url);
        tune(&mut common);
        let identity = start_identity(identity_config(common, true)).await;
        let mut config = mesh::registration_config(&registration_db.url, &identity.url(), None);
        config.common = secured(&registration_db.url);
        tune(&mut config.common);
        let registration = mesh::start_registration(config).await.unwrap();
        Env {
            idc: IdentityCheckServiceClient::new(identity.channel().await.unwrap()),
            reg: RegistrationServiceClient::new(registration.channel().await.unwrap()),
            website: Website::start().await.unwrap(),
            identity,
            registration,
            _dbs: (identity_db, registration_db),
        }
    }

    async fn import(&mut self, accounts: Vec<Account>) {
        let reply = self
            .idc
            .import_accounts(req(
                ImportAccountsRequest {
                    request_id: uuid::Uuid::new_v4().to_string(),
                    accounts,
                },
                &bearer("ops-1", Role::Operator),
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(reply.failed_count, 0, "{:?}", reply.errors);
    }

    async fn submit_as(&mut self, account: &str, seed: u64) -> Application {
        self.reg
            .submit_application(req(
                fixtures::submission(account, seed, &self.website.url("/en")),
                &bearer(account, Role::Applicant),
            ))
            .await
            .unwrap()
            .into_inner()
            .application
            .unwrap()
    }

    /// Everything the tests could have changed: all applications, and account `id`.
    async fn snapshot(&mut self, id: &str) -> (Vec<Application>, Account) {
        let applications = self
            .reg
            .list_applications(req(
                ListApplicationsRequest {
                    page_size: 500,
                    ..Default::default()
                },
                &bearer("ops-1", Role::Operator),
            ))
            .await
            .unwrap()
            .into_inner()
            .applications;
        let account = self
            .idc
            .get_account(req(
                GetAccountRequest {
                    name: format!("accounts/{id}"),
                },
                &bearer("ops-1", Role::Operator),
            ))
            .await
            .unwrap()
            .into_inner()
            .account
            .unwrap();
        (applications, account)
    }

    async fn stop(self) {
        self.registration.stop().await.unwrap();
        self.identity.stop().await.unwrap();
    }
}

/// The mutating RPCs of the two services (and one read), by name.
const RPCS: [&str; 6] = [
    "UpsertAccount",
    "ImportAccounts",
    "SubmitApplication",
    "WithdrawApplication",
    "ApplyReviewDecision",
    "GetApplication",
];

/// Calls `rpc` with `authorization`, aimed at acct-a's data (`application` is acct-a's).
async fn call(
    env: &mut Env,
    rpc: &str,
    authorization: &str,
    application: &str,
) -> Result<(), tonic::Status> {
    let mut account = fixtures::eligible_account("acct-a");
    account.email = "attacker@example.com".into();
    match rpc {
        "UpsertAccount" => env
            .idc
            .upsert_account(req(
                UpsertAccountRequest {
                    request_id: uuid::Uuid::new_v4().to_string(),
                    account: Some(account),
                },
                authorization,
            ))
            .await
            .map(drop),
        "ImportAccounts" => env
            .idc
            .import_accounts(req(
                ImportAccountsRequest {
                    request_id: uuid::Uuid::new_v4().to_string(),
                    accounts: vec![account],
                },
                authorization,
            ))
            .await
            .map(drop),
        "SubmitApplication" => {
            let submission = fixtures::submission("acct-b", 900, &env.website.url("/en"));
            env.reg
                .submit_application(req(submission, authorization))
                .await
                .map(drop)
        }
        "WithdrawApplication" => env
            .reg
            .withdraw_application(req(
                WithdrawApplicationRequest {
                    request_id: uuid::Uuid::new_v4().to_string(),
                    name: application.to_string(),
                    reason: "gone".into(),
                    ..Default::default()
                },
                authorization,
            ))
            .await
            .map(drop),
        "ApplyReviewDecision" => env
            .reg
            .apply_review_decision(req(
                ApplyReviewDecisionRequest {
                    event_id: uuid::Uuid::new_v4().to_string(),
                    subject: application.to_string(),
                    decision: ReviewDecision::Approve as i32,
                    reviewer: "rev-1".into(),
                    ..Default::default()
                },
                authorization,
            ))
            .await
            .map(drop),
        "GetApplication" => env
            .reg
            .get_application(req(
                GetApplicationRequest {
                    name: application.to_string(),
                    ..Default::default()
                },
                authorization,
            ))
            .await
            .map(drop),
        other => panic!("no such RPC here: {other}"),
    }
}

/// Collects everything the fmt layer writes.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

thread_local! {
    /// Whether this thread's events go to the capture.
    static CAPTURING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The log capture, installed once as this test binary's global subscriber: everything down
/// to TRACE, for every target (tonic, h2, hyper, sqlx included), from the threads that asked
/// for it ([`CAPTURING`]), written without the production scrubber (what appears masked was
/// masked where it was logged).
///
/// Every test of this binary installs it first thing: tracing caches each callsite's interest
/// globally when the callsite is first hit, so a callsite first hit by another test before the
/// subscriber existed would stay muted for the capturing test too.
fn log_capture() -> Capture {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    static CAPTURE: std::sync::OnceLock<Capture> = std::sync::OnceLock::new();
    CAPTURE
        .get_or_init(|| {
            let capture = Capture::default();
            let writer = capture.clone();
            tracing_subscriber::registry()
                .with(
                    tracing_subscriber::fmt::layer()
                        .with_ansi(false)
                        .with_writer(move || writer.clone())
                        // dynamic: decided per event, never cached per callsite
                        .with_filter(tracing_subscriber::filter::dynamic_filter_fn(|_, _| {
                            CAPTURING.with(|c| c.get())
                        })),
                )
                .init();
            capture
        })
        .clone()
}
