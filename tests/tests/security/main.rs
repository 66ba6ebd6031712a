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

const SECRET: &str = "security-tests-secret-0123456789abcdef";

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
                },
                authorization,
            ))
            .await
            .map(drop),
        other => panic!("no such RPC here: {other}"),
    }
}

#[tokio::test]
async fn bad_credentials_wrong_roles_and_other_accounts_are_refused_and_change_nothing() {
    log_capture();
    let mut env = Env::start().await;
    env.import(vec![
        fixtures::eligible_account("acct-a"),
        fixtures::eligible_account("acct-b"),
    ])
    .await;
    let mine = env.submit_as("acct-a", 801).await;
    let before = env.snapshot("acct-a").await;

    // 1. Credentials: every mutating RPC answers UNAUTHENTICATED, whatever the token claims.
    let other_secret = EncodingKey::from_secret(b"not-the-secret-not-the-secret-xx");
    let mut expired = claims("ops-1", "operator");
    expired["exp"] = (now() - 3600).into();
    expired["nbf"] = (now() - 7200).into();
    let mut future = claims("ops-1", "operator");
    future["nbf"] = (now() + 3600).into();
    let mut wrong_aud = claims("ops-1", "operator");
    wrong_aud["aud"] = "somewhere-else".into();
    let mut wrong_iss = claims("ops-1", "operator");
    wrong_iss["iss"] = "https://idp.example".into();
    let mut no_role = claims("ops-1", "operator");
    no_role.as_object_mut().unwrap().remove("role");
    // an applicant's token whose payload is swapped for an operator's, signature kept
    let applicant = authenticator().mint("acct-b", Role::Applicant, Duration::from_secs(600));
    let forged_payload = hs256(&claims("acct-b", "operator"));
    let tampered = {
        let a: Vec<&str> = applicant.split('.').collect();
        let f: Vec<&str> = forged_payload.split('.').collect();
        format!("{}.{}.{}", a[0], f[1], a[2])
    };
    let bad: Vec<(&str, String, &str)> = vec![
        ("no token", String::new(), "UNAUTHENTICATED"),
        (
            "not a bearer token",
            "Basic b3BzOnBhc3N3b3Jk".into(),
            "UNAUTHENTICATED",
        ),
        ("empty bearer", "Bearer".into(), "UNAUTHENTICATED"),
        (
            "expired",
            format!("Bearer {}", hs256(&expired)),
            "TOKEN_EXPIRED",
        ),
        (
            "wrong signature",
            format!(
                "Bearer {}",
                signed(
                    Algorithm::HS256,
                    None,
                    &other_secret,
                    &claims("ops-1", "operator")
                )
            ),
            "TOKEN_INVALID",
        ),
        (
            "alg none",
            format!("Bearer {}", alg_none(&claims("ops-1", "operator"), None)),
            "TOKEN_INVALID",
        ),
        (
            "wrong audience",
            format!("Bearer {}", hs256(&wrong_aud)),
            "TOKEN_INVALID",
        ),
        (
            "wrong issuer",
            format!("Bearer {}", hs256(&wrong_iss)),
            "TOKEN_INVALID",
        ),
        (
            "not yet valid",
            format!("Bearer {}", hs256(&future)),
            "TOKEN_INVALID",
        ),
        (
            "no role",
            format!("Bearer {}", hs256(&no_role)),
            "TOKEN_INVALID",
        ),
        ("garbage", "Bearer not.a.jwt".into(), "TOKEN_INVALID"),
        (
            "tampered payload",
            format!("Bearer {tampered}"),
            "TOKEN_INVALID",
        ),
    ];
    for (case, authorization, want) in &bad {
        for rpc in RPCS {
            let status = call(&mut env, rpc, authorization, &mine.name)
                .await
                .expect_err(rpc);
            assert_eq!(
                status.code(),
                Code::Unauthenticated,
                "{case}: {rpc}: {status:?}"
            );
            assert_eq!(reason(&status), *want, "{case}: {rpc}");
        }
    }

    // 2. Roles: valid tokens, roles the matrix does not list for the RPC.
    let applicant_a = bearer("acct-a", Role::Applicant);
    let reviewer = bearer("rev-1", Role::Reviewer);
    let operator = bearer("ops-1", Role::Operator);
    let wrong_roles: [(&str, &[&str]); 3] = [
        // applicants do not administer accounts, nor decide, not even on their own application
        (
            applicant_a.as_str(),
            &["UpsertAccount", "ImportAccounts", "ApplyReviewDecision"],
        ),
        // reviewers review: they do not apply, withdraw, administer or apply decisions directly
        (
            reviewer.as_str(),
            &[
                "UpsertAccount",
                "ImportAccounts",
                "SubmitApplication",
                "WithdrawApplication",
                "ApplyReviewDecision",
            ],
        ),
        // decisions come from the review service only
        (
            operator.as_str(),
            &["ApplyReviewDecision", "SubmitApplication"],
        ),
    ];
    for (who, rpcs) in wrong_roles {
        for rpc in rpcs {
            let status = call(&mut env, rpc, who, &mine.name).await.expect_err(rpc);
            assert_eq!(status.code(), Code::PermissionDenied, "{rpc}: {status:?}");
            assert_eq!(reason(&status), "ROLE_NOT_ALLOWED", "{rpc}");
        }
    }

    // 3. Ownership: acct-b and acct-a's application, account and eligibility.
    let applicant_b = bearer("acct-b", Role::Applicant);
    let missing = format!("applications/{}", uuid::Uuid::new_v4());
    let get = |name: &str, who: &str| {
        req(
            GetApplicationRequest {
                name: name.to_string(),
            },
            who,
        )
    };
    let theirs = env
        .reg
        .get_application(get(&mine.name, &applicant_b))
        .await
        .unwrap_err();
    let nobody = env
        .reg
        .get_application(get(&missing, &applicant_b))
        .await
        .unwrap_err();
    assert_eq!(theirs.code(), Code::NotFound, "{theirs:?}");
    assert_eq!(
        (nobody.code(), reason(&nobody)),
        (theirs.code(), reason(&theirs)),
        "another account's application looks exactly like a missing one"
    );
    let withdraw = |name: &str| WithdrawApplicationRequest {
        request_id: uuid::Uuid::new_v4().to_string(),
        name: name.to_string(),
        reason: "not mine".into(),
        ..Default::default()
    };
    let theirs_w = env
        .reg
        .withdraw_application(req(withdraw(&mine.name), &applicant_b))
        .await
        .unwrap_err();
    let nobody_w = env
        .reg
        .withdraw_application(req(withdraw(&missing), &applicant_b))
        .await
        .unwrap_err();
    assert_eq!(theirs_w.code(), Code::NotFound, "{theirs_w:?}");
    assert_eq!(
        (nobody_w.code(), reason(&nobody_w)),
        (theirs_w.code(), reason(&theirs_w))
    );
    assert_eq!(
        reason(&theirs_w),
        reason(&theirs),
        "Get and Withdraw answer alike"
    );
    let status = env
        .reg
        .submit_application(req(
            fixtures::submission("acct-a", 802, &env.website.url("/en")),
            &applicant_b,
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    let status = env
        .reg
        .list_applications(req(
            ListApplicationsRequest {
                account_id: "acct-a".into(),
                ..Default::default()
            },
            &applicant_b,
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    let own = env
        .reg
        .list_applications(req(ListApplicationsRequest::default(), &applicant_b))
        .await
        .unwrap()
        .into_inner();
    assert!(
        own.applications.is_empty(),
        "acct-b sees none of acct-a's applications"
    );
    let status = env
        .idc
        .get_account(req(
            GetAccountRequest {
                name: "accounts/acct-a".into(),
            },
            &applicant_b,
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    let status = env
        .idc
        .check_eligibility(req(
            CheckEligibilityRequest {
                account_id: "acct-a".into(),
            },
            &applicant_b,
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");

    // The owner still sees it, unchanged: nothing above wrote anything.
    let still = env
        .reg
        .get_application(get(&mine.name, &applicant_a))
        .await
        .unwrap()
        .into_inner()
        .application
        .unwrap();
    assert_eq!(still.state, ApplicationState::Submitted as i32);
    let after = env.snapshot("acct-a").await;
    assert_eq!(after, before, "the refused calls changed nothing");
    env.stop().await;
}

/// A P-256 key pair, its PEM (PKCS#8) and its public JWK under `kid`.
fn es256_key(kid: &str) -> (EncodingKey, String, Jwk, String) {
    let pair = rcgen::KeyPair::generate().unwrap();
    let pem = pair.serialize_pem();
    let key = EncodingKey::from_ec_pem(pem.as_bytes()).unwrap();
    let mut jwk = Jwk::from_encoding_key(&key, Algorithm::ES256).unwrap();
    jwk.common.key_id = Some(kid.to_string());
    (key, pem, jwk, pair.public_key_pem())
}

fn write_jwks(path: &Path, keys: &[&Jwk]) {
    let set = JwkSet {
        keys: keys.iter().map(|k| (*k).clone()).collect(),
    };
    std::fs::write(path, serde_json::to_vec_pretty(&set).unwrap()).unwrap();
}

#[tokio::test]
async fn jwks_keys_verify_and_rotate_by_kid() {
    log_capture();
    let dir = tempfile::tempdir().unwrap();
    let jwks = dir.path().join("jwks.json");
    let (idp_old, _, idp_old_jwk, _) = es256_key("idp-2025");
    let (idp_new, _, idp_new_jwk, idp_new_public) = es256_key("idp-2026");
    let (_, svc_pem, svc_jwk, _) = es256_key("mesh-svc-1");
    let svc_key_file = dir.path().join("svc-key.pem");
    std::fs::write(&svc_key_file, &svc_pem).unwrap();
    write_jwks(&jwks, &[&idp_old_jwk, &svc_jwk]);

    // No HS256 secret anywhere: the identity provider's keys verify callers, and registration
    // signs its service tokens with its own key, which identity-check finds in the same JWKS.
    let jwks_only = |db: &str| {
        let mut common = mesh::common(db);
        common.jwt_jwks_file = Some(jwks.clone());
        common
    };
    let identity_db = mesh::fresh_db().await.unwrap();
    let registration_db = mesh::fresh_db().await.unwrap();
    let identity = start_identity(identity_config(jwks_only(&identity_db.url), true)).await;
    let mut config = mesh::registration_config(&registration_db.url, &identity.url(), None);
    config.common = jwks_only(&registration_db.url);
    config.common.jwt_signing_key_file = Some(svc_key_file);
    config.common.jwt_signing_kid = Some("mesh-svc-1".into());
    let registration = mesh::start_registration(config).await.unwrap();
    let website = Website::start().await.unwrap();
    let mut idc = IdentityCheckServiceClient::new(identity.channel().await.unwrap());
    let mut reg = RegistrationServiceClient::new(registration.channel().await.unwrap());

    let token = |key: &EncodingKey, kid: &str, sub: &str, role: &str| {
        format!(
            "Bearer {}",
            signed(Algorithm::ES256, Some(kid), key, &claims(sub, role))
        )
    };
    let old_operator = token(&idp_old, "idp-2025", "ops-1", "operator");
    let old_applicant = token(&idp_old, "idp-2025", "acct-j", "applicant");
    idc.import_accounts(req(
        ImportAccountsRequest {
            request_id: uuid::Uuid::new_v4().to_string(),
            accounts: vec![fixtures::eligible_account("acct-j")],
        },
        &old_operator,
    ))
    .await
    .expect("an ES256 token of a JWKS key verifies");
    // registration → identity-check with registration's own ES256 service token
    let application = reg
        .submit_application(req(
            fixtures::submission("acct-j", 850, &website.url("/en")),
            &old_applicant,
        ))
        .await
        .expect("the submission (and registration's service token) verify")
        .into_inner()
        .application
        .unwrap();
    let status = idc
        .get_account(req(
            GetAccountRequest {
                name: "accounts/acct-j".into(),
            },
            &token(&idp_new, "idp-2026", "ops-1", "operator"),
        ))
        .await
        .unwrap_err();
    assert_eq!(
        status.code(),
        Code::Unauthenticated,
        "a key not yet in the JWKS: {status:?}"
    );

    // Rotate: the new key in, the old one out. The services re-read the file on the kid miss.
    write_jwks(&jwks, &[&idp_new_jwk, &svc_jwk]);
    tokio::time::sleep(kg_runtime::auth::JWKS_MISS_RELOAD_EVERY + Duration::from_millis(200)).await;
    let new_operator = token(&idp_new, "idp-2026", "ops-1", "operator");
    let new_applicant = token(&idp_new, "idp-2026", "acct-j", "applicant");
    idc.get_account(req(
        GetAccountRequest {
            name: "accounts/acct-j".into(),
        },
        &new_operator,
    ))
    .await
    .expect("a token of the new key verifies after the rotation");
    reg.get_application(req(
        GetApplicationRequest {
            name: application.name.clone(),
        },
        &new_applicant,
    ))
    .await
    .expect("on every service");
    for (what, authorization) in [
        ("old key", old_operator.clone()),
        ("old key", old_applicant.clone()),
        // algorithm confusion: HS256 "signed" with the new key's public key as the secret
        (
            "HS256 with the public key",
            format!(
                "Bearer {}",
                signed(
                    Algorithm::HS256,
                    Some("idp-2026"),
                    &EncodingKey::from_secret(idp_new_public.as_bytes()),
                    &claims("ops-1", "operator"),
                )
            ),
        ),
        (
            "alg none with a known kid",
            format!(
                "Bearer {}",
                alg_none(&claims("ops-1", "operator"), Some("idp-2026"))
            ),
        ),
        (
            "the right key, another kid",
            token(&idp_new, "idp-2025", "ops-1", "operator"),
        ),
    ] {
        let status = idc
            .get_account(req(
                GetAccountRequest {
                    name: "accounts/acct-j".into(),
                },
                &authorization,
            ))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{what}: {status:?}");
        let status = reg
            .get_application(req(
                GetApplicationRequest {
                    name: application.name.clone(),
                },
                &authorization,
            ))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{what}: {status:?}");
    }
    // registration's service token still verifies (its key stayed): a second application
    // from another account goes through identity-check.
    idc.import_accounts(req(
        ImportAccountsRequest {
            request_id: uuid::Uuid::new_v4().to_string(),
            accounts: vec![fixtures::eligible_account("acct-k")],
        },
        &new_operator,
    ))
    .await
    .unwrap();
    reg.submit_application(req(
        fixtures::submission("acct-k", 851, &website.url("/en")),
        &token(&idp_new, "idp-2026", "acct-k", "applicant"),
    ))
    .await
    .expect("service tokens keep working across the rotation");

    registration.stop().await.unwrap();
    identity.stop().await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// Property-based hostile input

mod hostile {
    use super::*;
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestCaseError, TestRunner};

    pub const CASES: u32 = 64;

    /// The statuses the contracts document for these RPCs.
    pub fn documented(code: Code) -> bool {
        matches!(
            code,
            Code::Ok
                | Code::InvalidArgument
                | Code::FailedPrecondition
                | Code::NotFound
                | Code::AlreadyExists
                | Code::Aborted
                | Code::PermissionDenied
        )
    }

    /// `PROPTEST_CASES` overrides the per-RPC case count for a longer run.
    pub fn runner() -> TestRunner {
        let cases = std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(CASES);
        TestRunner::new(Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        })
    }

    pub fn check(rpc: &str, result: Result<(), tonic::Status>) -> Result<(), TestCaseError> {
        let code = result
            .err()
            .map(|s| (s.code(), s))
            .map_or(Code::Ok, |(c, s)| {
                if !documented(c) {
                    eprintln!("{rpc}: undocumented status {s:?}");
                }
                c
            });
        if std::env::var_os("KG_SECURITY_TALLY").is_some() {
            eprintln!("CODE {rpc} {code:?}");
        }
        prop_assert!(documented(code), "{} answered {:?}", rpc, code);
        Ok(())
    }

    /// Text of every kind: empty, printable, control characters and NUL, any Unicode, long.
    pub fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            "[a-zA-Z0-9 ._@+-]{1,24}",
            "[\\x00-\\x7f]{0,40}",
            "\\PC{0,40}",
            any::<String>(),
            "[a-z]{200,300}",
        ]
    }

    pub fn id() -> impl Strategy<Value = String> {
        prop_oneof![3 => "acct-[a-z0-9]{1,8}", 1 => text()]
    }

    pub fn email() -> impl Strategy<Value = String> {
        prop_oneof!["[a-z.]{1,10}@[a-z]{1,8}\\.(com|cn|io)", text()]
    }

    pub fn mobile() -> impl Strategy<Value = String> {
        prop_oneof!["\\+?[0-9 ()-]{0,20}", text()]
    }

    /// Website URLs that can never make the service connect anywhere: no scheme (so no URL),
    /// other schemes, or IP-literal / single-label hosts the SSRF guard refuses before any
    /// lookup. (The services run without the test allowlist.)
    pub fn website() -> impl Strategy<Value = String> {
        let host = prop_oneof![
            "127\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}",
            "10\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}",
            "192\\.168\\.[0-9]{1,3}\\.[0-9]{1,3}",
            Just("169.254.169.254".to_string()),
            Just("[::1]".to_string()),
            Just("[::ffff:127.0.0.1]".to_string()),
            Just("[fe80::1]".to_string()),
            Just("0.0.0.0".to_string()),
            Just("2130706433".to_string()),
            Just("0x7f.1".to_string()),
            Just("localhost".to_string()),
            Just("metadata".to_string()),
        ];
        prop_oneof![
            Just(String::new()),
            "[a-zA-Z0-9 ._~%-]{1,40}",
            (
                prop_oneof![Just("http"), Just("https"), Just("HTTP")],
                host,
                "(:[0-9]{1,5})?",
                "[a-zA-Z0-9/._%?=&#-]{0,30}"
            )
                .prop_map(|(scheme, host, port, path)| format!("{scheme}://{host}{port}/{path}")),
            "(ftp|file|javascript|data|gopher|ws):[a-zA-Z0-9/._-]{0,30}",
            Just("http://user:pass@10.0.0.1/".to_string()),
        ]
    }

    pub fn logo() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            Just(Vec::new()),
            proptest::collection::vec(any::<u8>(), 0..2048),
            Just(fixtures::png_logo()),
            // a PNG header that claims a huge image
            Just({
                let mut png = fixtures::png_logo();
                png.truncate(64);
                png[16..24].copy_from_slice(&[0, 0, 0x9c, 0x40, 0, 0, 0x9c, 0x40]);
                png
            }),
        ]
    }

    pub fn entity() -> impl Strategy<Value = Option<CompanyEntity>> {
        proptest::option::of(
            (
                prop_oneof![Just("CN".to_string()), "[A-Z]{2}", text()],
                prop_oneof![
                    (0u64..1000).prop_map(fixtures::uscc),
                    "[0-9A-Z]{18}",
                    text()
                ],
            )
                .prop_map(|(country, registration_number)| CompanyEntity {
                    country,
                    registration_number,
                }),
        )
    }

    pub fn address() -> impl Strategy<Value = Option<PostalAddress>> {
        proptest::option::of(
            (
                text(),
                text(),
                text(),
                proptest::collection::vec(text(), 0..3),
            )
                .prop_map(|(region_code, postal_code, locality, address_lines)| {
                    PostalAddress {
                        region_code,
                        postal_code,
                        locality,
                        address_lines,
                        ..Default::default()
                    }
                }),
        )
    }

    /// Mostly a valid account with one or two fields made hostile (so that the write paths run
    /// with odd but accepted values), sometimes everything arbitrary.
    pub fn account() -> impl Strategy<Value = Account> {
        prop_oneof![
            1 => arbitrary_account(),
            2 => (
                "acct-[a-z0-9]{1,6}",
                proptest::collection::vec((0usize..11, text(), any::<i32>()), 1..3)
            )
                .prop_map(|(id, edits)| {
                    let mut a = fixtures::eligible_account(&id);
                    for (field, value, number) in edits {
                        match field {
                            0 => a.email = value,
                            1 => a.mobile = value,
                            2 => a.locale = value,
                            3 => a.verified_enterprise_name = value,
                            4 => {
                                a.iam_sub_user = true;
                                a.parent_account_id = value;
                            }
                            5 => {
                                if let Some(addr) = a.registered_address.as_mut() {
                                    addr.address_lines = vec![value];
                                }
                            }
                            6 => a.verification_type = number,
                            7 => {
                                a.verified_entity = Some(CompanyEntity {
                                    country: "CN".into(),
                                    registration_number: value,
                                })
                            }
                            8 => a.name = value,
                            9 => a.account_id = value,
                            _ => {
                                if let Some(addr) = a.registered_address.as_mut() {
                                    addr.postal_code = value;
                                }
                            }
                        }
                    }
                    a
                }),
        ]
    }

    prop_compose! {
        pub fn arbitrary_account()(
            account_id in id(),
            name in text(),
            flags in proptest::collection::vec(any::<bool>(), 7),
            verification_type in prop_oneof![0i32..4, any::<i32>()],
            verified_enterprise_name in text(),
            parent_account_id in text(),
            email in email(),
            mobile in mobile(),
            locale in text(),
            registered_address in address(),
            verified_entity in entity(),
        ) -> Account {
            Account {
                name,
                account_id,
                enterprise_verified: flags[0],
                verification_type,
                verified_enterprise_name,
                registered_address,
                cloud_services_enabled: flags[1],
                csp_program_member: flags[2],
                distribution_partner: flags[3],
                iam_sub_user: flags[4],
                parent_account_id,
                partner_administrator: flags[5],
                email,
                mobile,
                locale,
                verified_entity,
                ..Default::default()
            }
        }
    }

    prop_compose! {
        pub fn profile()(
            logo in logo(),
            logo_content_type in prop_oneof![Just("image/png".to_string()), text()],
            website_url in website(),
            introduction in text(),
            contact in proptest::option::of((text(), email(), mobile())),
            customer_service_email in email(),
            customer_service_phone in mobile(),
            registered_address in address(),
            industry in text(),
            product_categories in proptest::collection::vec(text(), 0..4),
        ) -> SellerProfile {
            SellerProfile {
                logo,
                logo_content_type,
                website_url,
                introduction,
                contact: contact.map(|(name, email, mobile)| Contact { name, email, mobile }),
                customer_service_email,
                customer_service_phone,
                registered_address,
                industry,
                product_categories,
                ..Default::default()
            }
        }
    }

    /// Who calls: an operator, or an applicant (one of the known accounts or any id).
    pub fn caller() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(bearer("ops-1", Role::Operator)),
            Just(bearer("acct-p1", Role::Applicant)),
            "[a-z0-9-]{1,12}".prop_map(|s| bearer(&s, Role::Applicant)),
        ]
    }
}

/// Runs `body` on a thread with a large stack: deep generated values and the services' futures
/// in a debug build outgrow the test thread's 2 MiB. The thread lives as long as the test, so
/// what it starts lives as long too.
fn on_big_stack(body: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .name("proptest".into())
        .stack_size(64 * 1024 * 1024)
        .spawn(body)
        .unwrap()
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
}

/// A multi-thread runtime for a plain `#[test]` that drives proptest.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn identity_check_answers_arbitrary_input_with_documented_statuses() {
    log_capture();
    on_big_stack(identity_check_proptest);
}

fn identity_check_proptest() {
    use hostile::*;
    use proptest::prelude::*;
    let rt = runtime();
    let (identity, _db) = rt.block_on(async {
        let db = mesh::fresh_db().await.unwrap();
        (
            start_identity(identity_config(secured(&db.url), false)).await,
            db,
        )
    });
    let channel = rt.block_on(identity.channel()).unwrap();
    let client = IdentityCheckServiceClient::new(channel);
    let operator = bearer("ops-1", Role::Operator);

    let call = |rpc: &str,
                fut: std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<(), tonic::Status>> + Send>,
    >| { check(rpc, rt.block_on(fut)) };

    runner()
        .run(
            &(any::<Option<()>>(), account(), text()),
            |(some, account, request_id)| {
                let mut c = client.clone();
                let op = operator.clone();
                call(
                    "UpsertAccount",
                    Box::pin(async move {
                        c.upsert_account(req(
                            UpsertAccountRequest {
                                request_id,
                                account: some.map(|_| account),
                            },
                            &op,
                        ))
                        .await
                        .map(drop)
                    }),
                )
            },
        )
        .unwrap();
    runner()
        .run(
            &(proptest::collection::vec(account(), 0..6), text()),
            |(accounts, request_id)| {
                let mut c = client.clone();
                let op = operator.clone();
                call(
                    "ImportAccounts",
                    Box::pin(async move {
                        c.import_accounts(req(
                            ImportAccountsRequest {
                                request_id,
                                accounts,
                            },
                            &op,
                        ))
                        .await
                        .map(drop)
                    }),
                )
            },
        )
        .unwrap();
    runner()
        .run(&(caller(), id()), |(who, account_id)| {
            let mut c = client.clone();
            call(
                "CheckEligibility",
                Box::pin(async move {
                    c.check_eligibility(req(CheckEligibilityRequest { account_id }, &who))
                        .await
                        .map(drop)
                }),
            )
        })
        .unwrap();
    runner()
        .run(
            &(
                caller(),
                entity(),
                proptest::option::of(profile()),
                text(),
                any::<bool>(),
            ),
            |(who, entity, profile, logo_file_name, require_complete)| {
                let mut c = client.clone();
                call(
                    "CheckMaterials",
                    Box::pin(async move {
                        c.check_materials(req(
                            CheckMaterialsRequest {
                                entity,
                                profile,
                                logo_file_name,
                                require_complete,
                                ..Default::default()
                            },
                            &who,
                        ))
                        .await
                        .map(drop)
                    }),
                )
            },
        )
        .unwrap();
    runner()
        .run(&(caller(), entity()), |(who, entity)| {
            let mut c = client.clone();
            call(
                "CheckRegistrationNumber",
                Box::pin(async move {
                    c.check_registration_number(req(
                        CheckRegistrationNumberRequest { entity },
                        &who,
                    ))
                    .await
                    .map(drop)
                }),
            )
        })
        .unwrap();
    runner()
        .run(&(caller(), website()), |(who, website_url)| {
            let mut c = client.clone();
            call(
                "CheckWebsite",
                Box::pin(async move {
                    c.check_website(req(CheckWebsiteRequest { website_url }, &who))
                        .await
                        .map(drop)
                }),
            )
        })
        .unwrap();
    runner()
        .run(
            &(caller(), logo(), text(), text()),
            |(who, logo, content_type, file_name)| {
                let mut c = client.clone();
                call(
                    "CheckLogo",
                    Box::pin(async move {
                        c.check_logo(req(
                            CheckLogoRequest {
                                logo,
                                content_type,
                                file_name,
                            },
                            &who,
                        ))
                        .await
                        .map(drop)
                    }),
                )
            },
        )
        .unwrap();
    rt.block_on(identity.stop()).unwrap();
}

#[test]
fn registration_answers_arbitrary_input_with_documented_statuses() {
    log_capture();
    on_big_stack(registration_proptest);
}

fn registration_proptest() {
    use hostile::*;
    use proptest::prelude::*;
    let rt = runtime();
    // The website check may reach 127.0.0.1 (the fixture site; other loopback ports refuse),
    // nothing else: every generated URL is loopback, private, malformed or not http(s).
    let (identity, registration, site_server, _dbs) = rt.block_on(async {
        let identity_db = mesh::fresh_db().await.unwrap();
        let registration_db = mesh::fresh_db().await.unwrap();
        let identity = start_identity(identity_config(secured(&identity_db.url), true)).await;
        let mut config = mesh::registration_config(&registration_db.url, &identity.url(), None);
        config.common = secured(&registration_db.url);
        let registration = mesh::start_registration(config).await.unwrap();
        let mut idc = IdentityCheckServiceClient::new(identity.channel().await.unwrap());
        // real, eligible accounts, so that submissions get past eligibility
        idc.import_accounts(req(
            ImportAccountsRequest {
                request_id: "seed".into(),
                accounts: (1..=8)
                    .map(|i| fixtures::eligible_account(&format!("acct-p{i}")))
                    .collect(),
            },
            &bearer("ops-1", Role::Operator),
        ))
        .await
        .unwrap();
        let website = Website::start().await.unwrap();
        (
            identity,
            registration,
            website,
            (identity_db, registration_db),
        )
    });
    let client = RegistrationServiceClient::new(rt.block_on(registration.channel()).unwrap());
    let applicant = || {
        prop_oneof![
            (1..=8u8).prop_map(|i| format!("acct-p{i}")),
            "[a-z0-9-]{1,12}",
        ]
    };
    let agreement = proptest::option::of(prop_oneof![
        Just(fixtures::agreement()),
        (text(), text()).prop_map(|(agreement_version, text_sha256)| {
            kg_proto::common::AgreementAcceptance {
                agreement_version,
                text_sha256,
                ..Default::default()
            }
        }),
    ]);
    let arbitrary = (
        applicant(),
        prop_oneof![Just(String::new()), id()],
        text(),
        entity(),
        proptest::option::of(profile()),
        agreement,
        text(),
        text(),
    )
        .prop_map(
            |(
                who,
                account_id,
                request_id,
                entity,
                profile,
                agreement,
                company_name,
                logo_file_name,
            )| {
                let request = SubmitApplicationRequest {
                    request_id,
                    account_id,
                    application: Some(Application {
                        company_name,
                        entity,
                        profile,
                        agreement,
                        ..Default::default()
                    }),
                    logo_file_name,
                };
                (who, request)
            },
        );
    // a complete, valid submission of one of the real accounts with up to two fields made
    // hostile; entities repeat across accounts (ALREADY_EXISTS) and accounts apply twice
    let site = site_server.url("/en");
    let edited = (
        1..=8u8,
        0u64..24,
        proptest::collection::vec((0usize..17, text(), logo(), website()), 0..3),
    )
        .prop_map(move |(i, seed, edits)| {
            let who = format!("acct-p{i}");
            let mut request = fixtures::submission("", seed, &site);
            let app = request.application.as_mut().unwrap();
            let profile = app.profile.as_mut().unwrap();
            for (field, value, logo, url) in edits {
                match field {
                    0 => app.company_name = value,
                    1 => app.entity.as_mut().unwrap().country = value,
                    2 => app.entity.as_mut().unwrap().registration_number = value,
                    3 => profile.introduction = value,
                    4 => profile.contact.as_mut().unwrap().email = value,
                    5 => profile.contact.as_mut().unwrap().mobile = value,
                    6 => profile.contact.as_mut().unwrap().name = value,
                    7 => profile.customer_service_email = value,
                    8 => profile.customer_service_phone = value,
                    9 => profile.logo = logo,
                    10 => profile.logo_content_type = value,
                    11 => app.agreement.as_mut().unwrap().agreement_version = value,
                    12 => request.request_id = value,
                    13 => request.logo_file_name = value,
                    14 => profile.website_url = url,
                    15 => profile.industry = value,
                    _ => profile.product_categories = vec![value],
                }
            }
            (who, request)
        });

    runner()
        .run(
            &prop_oneof![1 => arbitrary, 2 => edited],
            |(who, request)| {
                let mut c = client.clone();
                let fut = async move {
                    c.submit_application(req(request, &bearer(&who, Role::Applicant)))
                        .await
                        .map(drop)
                };
                check("SubmitApplication", rt.block_on(fut))
            },
        )
        .unwrap();
    let existing: Vec<String> = rt.block_on(async {
        client
            .clone()
            .list_applications(req(
                ListApplicationsRequest {
                    page_size: 100,
                    ..Default::default()
                },
                &bearer("ops-1", Role::Operator),
            ))
            .await
            .unwrap()
            .into_inner()
            .applications
            .into_iter()
            .map(|a| a.name)
            .collect()
    });
    assert!(
        !existing.is_empty(),
        "some generated submissions are accepted (the write path ran)"
    );
    let name = prop_oneof![
        1 => text(),
        1 => Just(format!("applications/{}", uuid::Uuid::new_v4())),
        1 => "applications/[a-z0-9-]{0,40}",
        3 => proptest::sample::select(existing),
    ];
    runner()
        .run(
            &(
                prop_oneof![
                    2 => applicant().prop_map(|s| bearer(&s, Role::Applicant)),
                    1 => Just(bearer("ops-1", Role::Operator)),
                ],
                name,
                text(),
                text(),
                text(),
            ),
            |(who, name, request_id, reason, etag)| {
                let mut c = client.clone();
                let fut = async move {
                    c.withdraw_application(req(
                        WithdrawApplicationRequest {
                            request_id,
                            name,
                            reason,
                            etag,
                        },
                        &who,
                    ))
                    .await
                    .map(drop)
                };
                check("WithdrawApplication", rt.block_on(fut))
            },
        )
        .unwrap();
    rt.block_on(async {
        registration.stop().await.unwrap();
        identity.stop().await.unwrap();
    });
}

// ---------------------------------------------------------------------------------------------
// Mutual TLS

struct Pki {
    dir: tempfile::TempDir,
    ca_pem: String,
}

impl Pki {
    /// A CA, a service certificate for localhost/127.0.0.1 (server and client use) and a client
    /// certificate, all written to a temporary folder; and a second, unrelated CA's client.
    fn generate() -> Pki {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
            KeyPair, KeyUsagePurpose,
        };
        let dir = tempfile::tempdir().unwrap();
        let new_ca = |name: &str| {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.distinguished_name.push(DnType::CommonName, name);
            params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            let cert = params.self_signed(&key).unwrap();
            (cert.pem(), Issuer::new(params, key))
        };
        let leaf = |issuer: &Issuer<'_, KeyPair>,
                    names: Vec<String>,
                    usages: Vec<ExtendedKeyUsagePurpose>| {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(names).unwrap();
            params
                .distinguished_name
                .push(DnType::CommonName, "kg test");
            params.extended_key_usages = usages;
            let cert = params.signed_by(&key, issuer).unwrap();
            (cert.pem(), key.serialize_pem())
        };
        let (ca_pem, ca) = new_ca("kg test CA");
        let (_, rogue) = new_ca("someone else's CA");
        let (server_cert, server_key) = leaf(
            &ca,
            vec!["localhost".into(), "127.0.0.1".into()],
            vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
        );
        let (client_cert, client_key) = leaf(
            &ca,
            vec!["console.test".into()],
            vec![ExtendedKeyUsagePurpose::ClientAuth],
        );
        let (rogue_cert, rogue_key) = leaf(
            &rogue,
            vec!["rogue.test".into()],
            vec![ExtendedKeyUsagePurpose::ClientAuth],
        );
        for (name, pem) in [
            ("ca.pem", &ca_pem),
            ("server.pem", &server_cert),
            ("server.key", &server_key),
            ("client.pem", &client_cert),
            ("client.key", &client_key),
            ("rogue.pem", &rogue_cert),
            ("rogue.key", &rogue_key),
        ] {
            std::fs::write(dir.path().join(name), pem).unwrap();
        }
        Pki { dir, ca_pem }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap()
    }

    /// Mutual TLS for a service: its certificate, clients must show one from the CA, peers
    /// trusted by the CA, and a plaintext health listener.
    fn secure(&self, common: &mut CommonConfig) -> std::net::SocketAddr {
        let health = std::net::SocketAddr::from(([127, 0, 0, 1], kg_tests::free_port()));
        common.tls_cert = Some(self.path("server.pem"));
        common.tls_key = Some(self.path("server.key"));
        common.tls_client_ca = Some(self.path("ca.pem"));
        common.tls_ca = Some(self.path("ca.pem"));
        common.health_listen_addr = Some(health);
        health
    }

    /// A TLS channel to `addr` trusting the CA, presenting `client` (`"client"`, `"rogue"`) or
    /// no certificate.
    fn channel(&self, addr: std::net::SocketAddr, client: Option<&str>) -> Channel {
        let mut tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&self.ca_pem))
            .domain_name("localhost");
        if let Some(name) = client {
            tls = tls.identity(Identity::from_pem(
                self.read(&format!("{name}.pem")),
                self.read(&format!("{name}.key")),
            ));
        }
        Endpoint::from_shared(format!("https://localhost:{}", addr.port()))
            .unwrap()
            .tls_config(tls)
            .unwrap()
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(20))
            .connect_lazy()
    }
}

/// A service started on its own (the harness's `Running` checks health over plaintext on the
/// gRPC port, which TLS closes): waits for SERVING on the plaintext health listener.
struct TlsService {
    addr: std::net::SocketAddr,
    trigger: kg_runtime::shutdown::ShutdownTrigger,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl TlsService {
    async fn start<F, Fut>(health: std::net::SocketAddr, run: F) -> TlsService
    where
        F: FnOnce(tokio::net::TcpListener, Shutdown) -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (trigger, shutdown) = Shutdown::new();
        let task = tokio::spawn(run(listener, shutdown));
        let url = format!("http://{health}");
        for _ in 0..200 {
            assert!(!task.is_finished(), "the service exited: {:?}", task.await);
            if let Ok(tonic_health::pb::health_check_response::ServingStatus::Serving) =
                mesh::health(&url, "").await
            {
                return TlsService {
                    addr,
                    trigger,
                    task,
                };
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the service at {addr} never reported SERVING on {health}");
    }

    async fn stop(self) {
        self.trigger.trigger();
        self.task.await.unwrap().unwrap();
    }
}

#[tokio::test]
async fn with_mutual_tls_only_clients_with_a_certificate_from_the_ca_get_in() {
    log_capture();
    let pki = Pki::generate();
    let identity_db = mesh::fresh_db().await.unwrap();
    let registration_db = mesh::fresh_db().await.unwrap();
    let website = Website::start().await.unwrap();

    let mut identity_common = secured(&identity_db.url);
    let identity_health = pki.secure(&mut identity_common);
    let config = identity_config(identity_common, true);
    let identity = TlsService::start(identity_health, move |l, s| {
        kg_identity_check::run(config, l, s)
    })
    .await;
    // registration calls identity-check over https, presenting its certificate
    let mut config = mesh::registration_config(
        &registration_db.url,
        &format!("https://localhost:{}", identity.addr.port()),
        None,
    );
    config.common = secured(&registration_db.url);
    let registration_health = pki.secure(&mut config.common);
    let registration = TlsService::start(registration_health, move |l, s| {
        kg_registration::run(config, l, s)
    })
    .await;

    let operator = bearer("ops-1", Role::Operator);
    let upsert = |id: &str| {
        req(
            UpsertAccountRequest {
                request_id: uuid::Uuid::new_v4().to_string(),
                account: Some(fixtures::eligible_account(id)),
            },
            &operator,
        )
    };

    // no client certificate; a certificate from another CA; plaintext: all refused
    for (what, channel) in [
        ("no certificate", pki.channel(identity.addr, None)),
        (
            "another CA's certificate",
            pki.channel(identity.addr, Some("rogue")),
        ),
        (
            "plaintext",
            mesh::channel(&format!("http://{}", identity.addr))
                .await
                .unwrap(),
        ),
    ] {
        let err = IdentityCheckServiceClient::new(channel)
            .upsert_account(upsert("acct-intruder"))
            .await
            .unwrap_err();
        assert_ne!(err.code(), Code::Ok, "{what}");
        assert!(
            matches!(
                err.code(),
                Code::Unavailable | Code::Unknown | Code::Internal | Code::Cancelled
            ),
            "{what}: a transport failure, not an answer of the service: {err:?}"
        );
    }

    // a certificate from the CA gets through, end to end
    let mut idc = IdentityCheckServiceClient::new(pki.channel(identity.addr, Some("client")));
    idc.upsert_account(upsert("acct-tls")).await.unwrap();
    let status = idc
        .get_account(req(
            GetAccountRequest {
                name: "accounts/acct-intruder".into(),
            },
            &operator,
        ))
        .await
        .unwrap_err();
    assert_eq!(
        status.code(),
        Code::NotFound,
        "the refused clients wrote nothing"
    );
    // the token is still required inside the TLS session
    let status = idc.upsert_account(req(
        UpsertAccountRequest {
            request_id: uuid::Uuid::new_v4().to_string(),
            account: Some(fixtures::eligible_account("acct-x")),
        },
        "",
    ));
    assert_eq!(status.await.unwrap_err().code(), Code::Unauthenticated);

    let mut reg = RegistrationServiceClient::new(pki.channel(registration.addr, Some("client")));
    let application = reg
        .submit_application(req(
            fixtures::submission("acct-tls", 870, &website.url("/en")),
            &bearer("acct-tls", Role::Applicant),
        ))
        .await
        .expect("registration reaches identity-check over mutual TLS")
        .into_inner()
        .application
        .unwrap();
    assert_eq!(application.state, ApplicationState::Submitted as i32);
    let err = RegistrationServiceClient::new(pki.channel(registration.addr, None))
        .get_application(req(
            GetApplicationRequest {
                name: application.name,
            },
            &bearer("acct-tls", Role::Applicant),
        ))
        .await
        .unwrap_err();
    assert_ne!(err.code(), Code::Ok);

    // health: over TLS with a certificate on the gRPC port, and in plaintext on the probe port
    let status = tonic_health::pb::health_client::HealthClient::new(
        pki.channel(identity.addr, Some("client")),
    )
    .check(tonic_health::pb::HealthCheckRequest::default())
    .await
    .unwrap()
    .into_inner()
    .status;
    assert_eq!(
        status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    // the plaintext listener serves health only
    let err = IdentityCheckServiceClient::new(
        mesh::channel(&format!("http://{identity_health}"))
            .await
            .unwrap(),
    )
    .get_account(req(
        GetAccountRequest {
            name: "accounts/acct-tls".into(),
        },
        &operator,
    ))
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented, "{err:?}");

    // The CLI speaks the same TLS from the same variables (the chart's test pod runs
    // `koogallery health` like this): with the client certificate it gets in; without one the
    // handshake refuses it; without a CA it says what is missing.
    let addr = format!("https://localhost:{}", identity.addr.port());
    let (ok, out) = koogallery(
        &["health", "--addr", &addr],
        &[
            ("KG_TLS_CA", pki.path("ca.pem")),
            ("KG_TLS_CERT", pki.path("client.pem")),
            ("KG_TLS_KEY", pki.path("client.key")),
        ],
    )
    .await;
    assert!(ok && out.contains("SERVING"), "{out}");
    let (ok, out) = koogallery(
        &["health", "--addr", &addr],
        &[("KG_TLS_CA", pki.path("ca.pem"))],
    )
    .await;
    assert!(
        !ok && !out.contains("SERVING"),
        "no client certificate: {out}"
    );
    let (ok, out) = koogallery(&["health", "--addr", &addr], &[]).await;
    assert!(!ok && out.contains("KG_TLS_CA"), "{out}");

    registration.stop().await;
    identity.stop().await;
}

/// Runs the `koogallery` binary of this build (next to the test binaries; `cargo test
/// --workspace` builds it) with only the given KG_TLS_* variables: (success, stdout + stderr).
async fn koogallery(args: &[&str], env: &[(&str, PathBuf)]) -> (bool, String) {
    let deps = std::env::current_exe().unwrap();
    let bin = deps
        .parent()
        .and_then(|d| d.parent())
        .map(|d| d.join(format!("koogallery{}", std::env::consts::EXE_SUFFIX)))
        .unwrap();
    assert!(
        bin.is_file(),
        "{} is missing: build the CLI first (cargo build -p koogallery)",
        bin.display()
    );
    let mut command = tokio::process::Command::new(bin);
    command.args(args);
    for name in ["KG_TLS_CA", "KG_TLS_CERT", "KG_TLS_KEY", "KG_TLS_CLIENT_CA"] {
        command.env_remove(name);
    }
    for (name, value) in env {
        command.env(name, value);
    }
    let out = tokio::time::timeout(Duration::from_secs(30), command.output())
        .await
        .expect("koogallery health did not finish within 30 s")
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

// ---------------------------------------------------------------------------------------------
// Limits

#[tokio::test]
async fn a_caller_over_its_rate_gets_resource_exhausted_with_retry_info() {
    log_capture();
    use tonic_types::StatusExt as _;
    let db = mesh::fresh_db().await.unwrap();
    let mut common = secured(&db.url);
    common.rate_limit_per_sec = 1.0;
    common.rate_limit_burst = 3;
    let identity = start_identity(identity_config(common, false)).await;
    let mut idc = IdentityCheckServiceClient::new(identity.channel().await.unwrap());
    let check = |who: &str| {
        req(
            CheckRegistrationNumberRequest {
                entity: Some(fixtures::entity(1)),
            },
            who,
        )
    };
    let greedy = bearer("acct-greedy", Role::Applicant);
    for _ in 0..3 {
        idc.check_registration_number(check(&greedy)).await.unwrap();
    }
    let status = idc
        .check_registration_number(check(&greedy))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_eq!(reason(&status), "RATE_LIMITED");
    let delay = status
        .get_details_retry_info()
        .and_then(|r| r.retry_delay)
        .expect("RetryInfo");
    assert!(
        delay > Duration::ZERO && delay <= Duration::from_secs(1),
        "{delay:?}"
    );
    // others have their own buckets; services and health are not limited
    idc.check_registration_number(check(&bearer("acct-other", Role::Applicant)))
        .await
        .unwrap();
    for _ in 0..10 {
        idc.check_registration_number(check(&bearer("registration", Role::Service)))
            .await
            .unwrap();
        identity.health().await.unwrap();
    }
    // the bucket refills
    tokio::time::sleep(delay + Duration::from_millis(50)).await;
    idc.check_registration_number(check(&greedy)).await.unwrap();
    identity.stop().await.unwrap();
}

#[tokio::test]
async fn the_server_ends_an_rpc_at_its_deadline() {
    log_capture();
    // a "website" that accepts connections and never answers
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let db = mesh::fresh_db().await.unwrap();
    let mut common = secured(&db.url);
    common.request_timeout_secs = 1;
    let identity = start_identity(identity_config(common, true)).await;
    let mut idc = IdentityCheckServiceClient::new(identity.channel().await.unwrap());
    let started = std::time::Instant::now();
    let status = idc
        .check_website(req(
            CheckWebsiteRequest {
                website_url: format!("http://{silent_addr}/"),
            },
            &bearer("acct-1", Role::Applicant),
        ))
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert_eq!(status.code(), Code::Cancelled, "{status:?}");
    assert!(
        took < Duration::from_secs(5),
        "ended by the server's 1 s deadline, not the website check's 10 s: {took:?}"
    );
    // and a client's shorter grpc-timeout is honoured too
    let mut request = req(
        CheckWebsiteRequest {
            website_url: format!("http://{silent_addr}/"),
        },
        &bearer("acct-1", Role::Applicant),
    );
    request.set_timeout(Duration::from_millis(300));
    let started = std::time::Instant::now();
    let status = idc.check_website(request).await.unwrap_err();
    assert!(
        matches!(status.code(), Code::DeadlineExceeded | Code::Cancelled),
        "{status:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    identity.stop().await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// Logs

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

/// The services run on this test's thread (current-thread runtime), so their logs are captured.
#[tokio::test(flavor = "current_thread")]
async fn logs_show_emails_mobiles_and_tokens_only_masked() {
    let capture = log_capture();
    CAPTURING.with(|c| c.set(true));

    let email = "li.wei@example.com";
    let mobile = "+8613800138000";
    let mut env = Env::start().await;
    let operator_token = authenticator().mint("ops-1", Role::Operator, Duration::from_secs(600));
    let applicant_token =
        authenticator().mint("acct-log", Role::Applicant, Duration::from_secs(600));
    let forged_token = signed(
        Algorithm::HS256,
        None,
        &EncodingKey::from_secret(b"forged-forged-forged-forged-forged"),
        &claims("ops-1", "operator"),
    );

    // account directory changes log the account's email and mobile (masked)
    let mut account = fixtures::eligible_account("acct-log");
    account.email = email.into();
    account.mobile = mobile.into();
    env.idc
        .upsert_account(req(
            UpsertAccountRequest {
                request_id: uuid::Uuid::new_v4().to_string(),
                account: Some(account.clone()),
            },
            &format!("Bearer {operator_token}"),
        ))
        .await
        .unwrap();
    account.account_id = "acct-log-2".into();
    env.idc
        .import_accounts(req(
            ImportAccountsRequest {
                request_id: uuid::Uuid::new_v4().to_string(),
                accounts: vec![account],
            },
            &format!("Bearer {operator_token}"),
        ))
        .await
        .unwrap();
    // a submission carrying the same contact data, through both services
    let mut submission = fixtures::submission("acct-log", 880, &env.website.url("/en"));
    if let Some(profile) = submission
        .application
        .as_mut()
        .and_then(|a| a.profile.as_mut())
    {
        profile.contact = Some(Contact {
            name: "Li Wei".into(),
            email: email.into(),
            mobile: mobile.into(),
        });
    }
    env.reg
        .submit_application(req(submission, &format!("Bearer {applicant_token}")))
        .await
        .unwrap();
    // refusals are logged with the token's fingerprint
    let status = env
        .idc
        .import_accounts(req(
            ImportAccountsRequest::default(),
            &format!("Bearer {applicant_token}"),
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    let status = env
        .idc
        .get_account(req(
            GetAccountRequest {
                name: "accounts/acct-log".into(),
            },
            &format!("Bearer {forged_token}"),
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    // an internal error whose cause (a driver's message) quotes personal data and a token
    let _ = kg_runtime::ApiError::internal(
        "test.koogallery.io",
        &format!(
            "duplicate key value (email)=({email}) mobile {mobile} while handling Bearer {operator_token}"
        ),
    );
    env.stop().await;
    CAPTURING.with(|c| c.set(false));

    let logs = capture.text();
    if let Some(path) = std::env::var_os("KG_SECURITY_LOG_DUMP") {
        std::fs::write(path, &logs).unwrap();
    }
    assert!(
        logs.len() > 10_000,
        "the capture saw the services' logs ({} bytes)",
        logs.len()
    );
    for raw in [
        email,
        mobile,
        "+86 138 0013 8000",
        operator_token.as_str(),
        applicant_token.as_str(),
        forged_token.as_str(),
        SECRET,
    ] {
        if let Some(at) = logs.find(raw) {
            let line_start = logs[..at].rfind('\n').map_or(0, |i| i + 1);
            let line_end = logs[at..].find('\n').map_or(logs.len(), |i| at + i);
            panic!(
                "{raw:?} appears in the logs:\n{}",
                &logs[line_start..line_end]
            );
        }
    }
    // the signatures alone would identify the tokens too
    for token in [&operator_token, &applicant_token, &forged_token] {
        let signature = token.rsplit('.').next().unwrap();
        assert!(
            !logs.contains(signature),
            "a token signature is in the logs"
        );
    }
    assert!(
        logs.contains("email=l***@example.com"),
        "the masked email is logged"
    );
    assert!(
        logs.contains("mobile=+86*******8000"),
        "the masked mobile is logged"
    );
    for token in [&applicant_token, &forged_token] {
        let fingerprint = kg_runtime::redact::token(token);
        assert!(
            logs.contains(&fingerprint),
            "refusals log the token fingerprint {fingerprint}"
        );
    }
    let _ = std::io::stderr().flush();
}
