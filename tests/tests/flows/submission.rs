//! SubmitApplication over real gRPC: eligibility (each reason, all at once), materials, the
//! entity rules, idempotency, withdrawal, listing, and failing closed without Redis.

use kg_proto::identity::ImportAccountsRequest;
use kg_proto::identity::identity_check_service_client::IdentityCheckServiceClient;
use kg_proto::registration::registration_service_client::RegistrationServiceClient;
use kg_proto::registration::*;
use kg_runtime::error::DecodedError;
use kg_tests::fixtures::{self, Website};
use kg_tests::mesh::{self, Running, TestDb};
use tonic::Code;
use tonic::transport::Channel;

struct Env {
    identity: Running,
    registration: Running,
    website: Website,
    registration_db: TestDb,
    _identity_db: TestDb,
    reg: RegistrationServiceClient<Channel>,
    idc: IdentityCheckServiceClient<Channel>,
}

impl Env {
    async fn start(redis_url: Option<String>) -> Env {
        Env::start_with(redis_url, |_| {}).await
    }

    async fn start_with(
        redis_url: Option<String>,
        adjust: impl FnOnce(&mut kg_registration::Config),
    ) -> Env {
        let identity_db = mesh::fresh_db().await.unwrap();
        let registration_db = mesh::fresh_db().await.unwrap();
        let identity = mesh::start_identity(&identity_db.url, true).await.unwrap();
        let mut config =
            mesh::registration_config(&registration_db.url, &identity.url(), redis_url);
        adjust(&mut config);
        let registration = mesh::start_registration(config).await.unwrap();
        let website = Website::start().await.unwrap();
        Env {
            reg: RegistrationServiceClient::new(registration.channel().await.unwrap()),
            idc: IdentityCheckServiceClient::new(identity.channel().await.unwrap()),
            identity,
            registration,
            website,
            registration_db,
            _identity_db: identity_db,
        }
    }

    async fn add_accounts(&mut self, accounts: Vec<kg_proto::identity::Account>) {
        let reply = self
            .idc
            .import_accounts(ImportAccountsRequest {
                request_id: uuid::Uuid::new_v4().to_string(),
                accounts,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(reply.failed_count, 0, "{:?}", reply.errors);
    }

    fn submission(&self, account: &str, seed: u64) -> SubmitApplicationRequest {
        fixtures::submission(account, seed, &self.website.url("/en"))
    }

    async fn submit(
        &mut self,
        request: SubmitApplicationRequest,
    ) -> Result<Application, tonic::Status> {
        self.reg
            .submit_application(request)
            .await
            .map(|r| r.into_inner().application.unwrap())
    }

    async fn list_all(&mut self) -> Vec<Application> {
        self.reg
            .list_applications(ListApplicationsRequest {
                page_size: 500,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .applications
    }

    async fn stop(self) {
        self.registration.stop().await.unwrap();
        self.identity.stop().await.unwrap();
    }
}

fn reasons(status: &tonic::Status) -> DecodedError {
    DecodedError::from_status(status)
}

#[tokio::test]
async fn each_eligibility_failure_gives_its_own_reason_code() {
    let mut env = Env::start(None).await;
    type Flaw = fn(&mut kg_proto::identity::Account);
    let cases: [(&str, Flaw); 6] = [
        ("CLOUD_SERVICES_NOT_ENABLED", |a| {
            a.cloud_services_enabled = false
        }),
        ("NOT_ENTERPRISE_VERIFIED", |a| {
            a.verification_type = kg_proto::identity::VerificationType::Individual as i32;
            a.enterprise_verified = false;
        }),
        ("CSP_PROGRAM_MEMBER", |a| a.csp_program_member = true),
        ("DISTRIBUTION_PARTNER", |a| a.distribution_partner = true),
        ("IAM_SUB_USER", |a| {
            a.iam_sub_user = true;
            a.parent_account_id = "parent-1".into();
        }),
        ("PARTNER_ADMINISTRATOR", |a| a.partner_administrator = true),
    ];
    for (i, (code, flaw)) in cases.iter().enumerate() {
        let id = format!("acct-flaw-{i}");
        let mut account = fixtures::eligible_account(&id);
        flaw(&mut account);
        env.add_accounts(vec![account]).await;
        let err = env
            .submit(env.submission(&id, 100 + i as u64))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition, "{code}: {err:?}");
        let decoded = reasons(&err);
        assert_eq!(decoded.reason.as_deref(), Some("ACCOUNT_NOT_ELIGIBLE"));
        assert_eq!(
            decoded.precondition_kinds(),
            vec![code.to_string()],
            "{code}"
        );
        assert!(
            !decoded.preconditions[0].2.is_empty(),
            "a message saying how to fix it"
        );
    }

    // 1. the account must exist
    let err = env
        .submit(env.submission("acct-nobody", 200))
        .await
        .unwrap_err();
    assert_eq!(
        reasons(&err).precondition_kinds(),
        vec!["ACCOUNT_NOT_FOUND"]
    );

    // 7. not already applying
    env.add_accounts(vec![fixtures::eligible_account("acct-twice")])
        .await;
    env.submit(env.submission("acct-twice", 201)).await.unwrap();
    let err = env
        .submit(env.submission("acct-twice", 202))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(
        reasons(&err).precondition_kinds(),
        vec!["APPLICATION_ALREADY_OPEN"]
    );

    assert_eq!(
        env.list_all().await.len(),
        1,
        "nothing but the one valid application was written"
    );
    env.stop().await;
}

#[tokio::test]
async fn sellers_and_exited_sellers_cannot_apply_again() {
    use sea_orm::{ActiveModelTrait, Set};
    let mut env = Env::start(None).await;
    env.add_accounts(vec![
        fixtures::eligible_account("acct-seller"),
        fixtures::eligible_account("acct-exited"),
    ])
    .await;
    // Sellers come from approvals (the review workflow); here they are written directly.
    let db = kg_runtime::db::connect(&env.registration_db.url)
        .await
        .unwrap();
    for (account, state, seed) in [
        ("acct-seller", "ACTIVE", 300u64),
        ("acct-exited", "EXITED", 301),
    ] {
        kg_registration::store::seller::ActiveModel {
            seller_id: Set(uuid::Uuid::new_v4().to_string()),
            account_id: Set(account.into()),
            application_id: Set(uuid::Uuid::new_v4().to_string()),
            entity_key: Set(format!("CN:{}", fixtures::uscc(seed))),
            company_name: Set("Old Co".into()),
            state: Set(state.into()),
            profile: Set(Vec::new()),
            logo: Set(None),
            create_time: Set(chrono::Utc::now()),
            update_time: Set(chrono::Utc::now()),
            exit_time: Set(None),
            exit_reason: Set(None),
            exited_by: Set(None),
        }
        .insert(&db)
        .await
        .unwrap();
    }
    let err = env
        .submit(env.submission("acct-seller", 310))
        .await
        .unwrap_err();
    assert_eq!(
        reasons(&err).precondition_kinds(),
        vec!["ACCOUNT_ALREADY_SELLER"]
    );
    let err = env
        .submit(env.submission("acct-exited", 311))
        .await
        .unwrap_err();
    assert_eq!(reasons(&err).precondition_kinds(), vec!["ACCOUNT_BARRED"]);

    // Their entities are taken for good, whoever applies with them.
    env.add_accounts(vec![fixtures::eligible_account("acct-new")])
        .await;
    let err = env
        .submit(env.submission("acct-new", 300))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    assert_eq!(
        reasons(&err).reason.as_deref(),
        Some("ENTITY_ALREADY_REGISTERED")
    );
    let err = env
        .submit(env.submission("acct-new", 301))
        .await
        .unwrap_err();
    assert_eq!(reasons(&err).reason.as_deref(), Some("ENTITY_BARRED"));
    env.stop().await;
}

#[tokio::test]
async fn an_account_failing_several_conditions_gets_every_reason_at_once() {
    let mut env = Env::start(None).await;
    let mut account = fixtures::eligible_account("acct-many");
    account.verification_type = kg_proto::identity::VerificationType::Individual as i32;
    account.enterprise_verified = false;
    account.csp_program_member = true;
    account.iam_sub_user = true;
    account.partner_administrator = true;
    env.add_accounts(vec![account]).await;
    let err = env
        .submit(env.submission("acct-many", 1))
        .await
        .unwrap_err();
    let decoded = reasons(&err);
    assert_eq!(
        decoded.precondition_kinds(),
        vec![
            "NOT_ENTERPRISE_VERIFIED",
            "CSP_PROGRAM_MEMBER",
            "IAM_SUB_USER",
            "PARTNER_ADMINISTRATOR"
        ]
    );
    assert_eq!(
        decoded
            .metadata
            .get("ineligibility_reasons")
            .map(String::as_str),
        Some("NOT_ENTERPRISE_VERIFIED,CSP_PROGRAM_MEMBER,IAM_SUB_USER,PARTNER_ADMINISTRATOR")
    );
    env.stop().await;
}

#[tokio::test]
async fn a_complete_application_is_stored_with_its_evidence_and_readable() {
    let mut env = Env::start(None).await;
    env.add_accounts(vec![fixtures::eligible_account("acct-ok")])
        .await;
    let submitted = env.submit(env.submission("acct-ok", 42)).await.unwrap();
    assert_eq!(submitted.state, ApplicationState::Submitted as i32);
    assert_eq!(
        submitted.company_name, "Fuzhou acct-ok Software Co., Ltd.",
        "taken from the verified record"
    );
    assert_eq!(
        submitted.entity.as_ref().unwrap().registration_number,
        fixtures::uscc(42)
    );
    let agreement = submitted.agreement.clone().unwrap();
    assert_eq!(agreement.accepted_by, "accounts/acct-ok");
    assert!(agreement.accepted_time.is_some());

    let fetch = async |view: ApplicationView| {
        env.reg
            .clone()
            .get_application(GetApplicationRequest {
                name: submitted.name.clone(),
                view: view as i32,
            })
            .await
            .unwrap()
            .into_inner()
            .application
            .unwrap()
    };
    // The default (BASIC) view leaves the logo's bytes out and still says which logo it is.
    let basic = fetch(ApplicationView::Unspecified).await;
    let basic_profile = basic.profile.clone().unwrap();
    use sha2::Digest as _;
    assert!(basic_profile.logo.is_empty(), "no logo bytes by default");
    assert_eq!(
        basic_profile.logo_sha256,
        hex::encode(sha2::Sha256::digest(fixtures::png_logo()))
    );
    assert_eq!(basic_profile.logo_content_type, "image/png");
    let fetched = fetch(ApplicationView::Full).await;
    assert_eq!(fetched.name, submitted.name);
    assert_eq!(
        fetched.profile.as_ref().unwrap().logo,
        fixtures::png_logo(),
        "the FULL view has the logo, kept whole"
    );
    let mut without_logo = fetched.clone();
    without_logo.profile.as_mut().unwrap().logo.clear();
    assert_eq!(basic, without_logo, "BASIC is FULL less the logo's bytes");
    let err = env
        .reg
        .get_application(GetApplicationRequest {
            name: submitted.name.clone(),
            view: 99,
        })
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Code::InvalidArgument,
        "an unknown view is refused"
    );
    let website = fetched.evidence.unwrap().website.unwrap();
    assert_eq!(website.final_url, env.website.url("/en"));
    assert_eq!(website.http_status, 200);
    assert!(
        website.resolved_address.starts_with("127.0.0.1"),
        "{website:?}"
    );
    assert!(website.checked_time.is_some());

    let err = env
        .reg
        .get_application(GetApplicationRequest {
            name: format!("applications/{}", uuid::Uuid::new_v4()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(
        reasons(&err).reason.as_deref(),
        Some("APPLICATION_NOT_FOUND")
    );
    let err = env
        .reg
        .get_application(GetApplicationRequest {
            name: "applications/../../etc/passwd".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    env.stop().await;
}

#[tokio::test]
async fn the_same_request_id_returns_the_first_result_and_a_changed_body_is_refused() {
    let mut env = Env::start(None).await;
    env.add_accounts(vec![fixtures::eligible_account("acct-idem")])
        .await;
    let request = env.submission("acct-idem", 7);
    let first = env.submit(request.clone()).await.unwrap();
    let again = env.submit(request.clone()).await.unwrap();
    assert_eq!(first.name, again.name);

    let mut changed = request.clone();
    changed
        .application
        .as_mut()
        .unwrap()
        .profile
        .as_mut()
        .unwrap()
        .introduction = "A different introduction of our cloud software company.".into();
    let err = env.submit(changed).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(
        reasons(&err).reason.as_deref(),
        Some("IDEMPOTENCY_KEY_REUSED")
    );
    assert_eq!(env.list_all().await.len(), 1);
    env.stop().await;
}

#[tokio::test]
async fn a_second_account_with_the_same_entity_learns_the_rule_and_withdrawal_frees_it() {
    let mut env = Env::start(None).await;
    env.add_accounts(vec![
        fixtures::eligible_account("acct-a"),
        fixtures::eligible_account("acct-b"),
    ])
    .await;
    let first = env.submit(env.submission("acct-a", 9)).await.unwrap();
    let err = env.submit(env.submission("acct-b", 9)).await.unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    let decoded = reasons(&err);
    assert_eq!(decoded.reason.as_deref(), Some("ENTITY_IN_REVIEW"));
    assert!(
        !err.message().contains("acct-a"),
        "never reveals the other account: {}",
        err.message()
    );
    assert!(decoded.metadata.values().all(|v| !v.contains("acct-a")));

    let withdraw = WithdrawApplicationRequest {
        request_id: uuid::Uuid::new_v4().to_string(),
        name: first.name.clone(),
        reason: "filed by mistake".into(),
        etag: String::new(),
    };
    let withdrawn = env
        .reg
        .withdraw_application(withdraw.clone())
        .await
        .unwrap()
        .into_inner()
        .application
        .unwrap();
    assert_eq!(withdrawn.state, ApplicationState::Withdrawn as i32);
    let replay = env
        .reg
        .withdraw_application(withdraw)
        .await
        .unwrap()
        .into_inner()
        .application
        .unwrap();
    assert_eq!(
        replay.state,
        ApplicationState::Withdrawn as i32,
        "a retried withdrawal answers the same"
    );

    let second = env.submit(env.submission("acct-b", 9)).await.unwrap();
    assert_eq!(
        second.state,
        ApplicationState::Submitted as i32,
        "the entity was freed"
    );

    let err = env
        .reg
        .withdraw_application(WithdrawApplicationRequest {
            request_id: uuid::Uuid::new_v4().to_string(),
            name: first.name,
            reason: String::new(),
            etag: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(
        reasons(&err).reason.as_deref(),
        Some("INVALID_APPLICATION_STATE")
    );
    env.stop().await;
}

#[tokio::test]
async fn failed_materials_are_reported_field_by_field() {
    let mut env = Env::start(None).await;
    env.add_accounts(vec![fixtures::eligible_account("acct-mat")])
        .await;
    let mut request = fixtures::submission("acct-mat", 11, &env.website.url("/zh"));
    let profile = request
        .application
        .as_mut()
        .unwrap()
        .profile
        .as_mut()
        .unwrap();
    profile.logo = b"GIF89a\x01\x00\x01\x00\x00\x00\x00;".to_vec();
    profile.logo_content_type = "image/gif".into();
    profile.contact.as_mut().unwrap().email = "not-an-email".into();
    profile.introduction = "Visit https://example.com for our products and services today.".into();
    let err = env.submit(request).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let decoded = reasons(&err);
    assert_eq!(decoded.reason.as_deref(), Some("MATERIALS_CHECK_FAILED"));
    let codes = decoded.field_reasons();
    for want in [
        "WEBSITE_NOT_ENGLISH",
        "LOGO_UNSUPPORTED_FORMAT",
        "EMAIL_INVALID",
        "INTRODUCTION_HAS_LINK",
    ] {
        assert!(
            codes.iter().any(|c| c == want),
            "{want} missing from {codes:?}"
        );
    }
    let fields: Vec<_> = decoded
        .field_violations
        .iter()
        .map(|(f, _)| f.as_str())
        .collect();
    assert!(fields.contains(&"profile.website_url"), "{fields:?}");
    assert!(fields.contains(&"profile.contact.email"), "{fields:?}");

    // A malformed registration number is refused before anything else is asked.
    let mut request = env.submission("acct-mat", 12);
    let entity = request
        .application
        .as_mut()
        .unwrap()
        .entity
        .as_mut()
        .unwrap();
    let mut number = entity.registration_number.clone();
    let last = number.pop().unwrap();
    number.push(if last == '0' { '1' } else { '0' });
    entity.registration_number = number;
    let err = env.submit(request).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(
        reasons(&err).field_reasons(),
        vec!["REGISTRATION_NUMBER_CHECK_CHARACTER"]
    );

    let mut request = env.submission("acct-mat", 13);
    request.application.as_mut().unwrap().agreement = None;
    let err = env.submit(request).await.unwrap_err();
    assert_eq!(
        reasons(&err).field_reasons(),
        vec!["AGREEMENT_NOT_ACCEPTED"]
    );

    let mut request = env.submission("acct-mat", 14);
    request.request_id = "no spaces allowed".into();
    let err = env.submit(request).await.unwrap_err();
    assert_eq!(reasons(&err).field_reasons(), vec!["REQUEST_ID_INVALID"]);

    assert!(env.list_all().await.is_empty(), "no half-written record");
    env.stop().await;
}

#[tokio::test]
async fn full_width_and_lower_case_registration_numbers_are_one_entity() {
    let mut env = Env::start(None).await;
    env.add_accounts(vec![
        fixtures::eligible_account("acct-fw1"),
        fixtures::eligible_account("acct-fw2"),
    ])
    .await;
    let canonical = fixtures::uscc(55);
    let mut first = env.submission("acct-fw1", 55);
    // full-width digits and letters, with spaces and a hyphen
    let full_width: String = canonical
        .chars()
        .map(|c| char::from_u32(c as u32 - 0x21 + 0xFF01).unwrap())
        .collect();
    first
        .application
        .as_mut()
        .unwrap()
        .entity
        .as_mut()
        .unwrap()
        .registration_number = format!(
        "{} {}-{}",
        &full_width[..12],
        &full_width[12..30],
        &full_width[30..]
    );
    let app = env.submit(first).await.unwrap();
    assert_eq!(app.entity.unwrap().registration_number, canonical);

    let mut second = env.submission("acct-fw2", 55);
    second
        .application
        .as_mut()
        .unwrap()
        .entity
        .as_mut()
        .unwrap()
        .registration_number = canonical.to_lowercase();
    let err = env.submit(second).await.unwrap_err();
    assert_eq!(reasons(&err).reason.as_deref(), Some("ENTITY_IN_REVIEW"));
    env.stop().await;
}

#[tokio::test]
async fn list_applications_pages_and_filters() {
    let mut env = Env::start(None).await;
    let ids: Vec<String> = (0..5).map(|i| format!("acct-page-{i}")).collect();
    env.add_accounts(
        ids.iter()
            .map(|id| fixtures::eligible_account(id))
            .collect(),
    )
    .await;
    for (i, id) in ids.iter().enumerate() {
        env.submit(env.submission(id, 500 + i as u64))
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = env
            .reg
            .list_applications(ListApplicationsRequest {
                page_size: 2,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(page.applications.len() <= 2);
        seen.extend(page.applications.into_iter().map(|a| a.name));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(seen.len(), 5);
    seen.dedup();
    assert_eq!(seen.len(), 5, "no duplicates across pages");

    let one = env
        .reg
        .list_applications(ListApplicationsRequest {
            account_id: "acct-page-3".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(one.applications.len(), 1);
    assert_eq!(one.applications[0].account_id, "acct-page-3");

    for bad in ["not-base64!", "Zm9v", "' OR 1=1 --"] {
        let err = env
            .reg
            .list_applications(ListApplicationsRequest {
                page_token: bad.into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{bad}");
        assert_eq!(reasons(&err).reason.as_deref(), Some("INVALID_PAGE_TOKEN"));
    }
    env.stop().await;
}

#[tokio::test]
async fn without_redis_submission_fails_closed_and_writes_nothing() {
    let mut redis = kg_tests::RedisServer::start().await.unwrap();
    let mut env = Env::start(Some(redis.url())).await;
    env.add_accounts(vec![
        fixtures::eligible_account("acct-r1"),
        fixtures::eligible_account("acct-r2"),
    ])
    .await;
    env.submit(env.submission("acct-r1", 600)).await.unwrap();

    redis.kill().await.unwrap();
    let err = env
        .submit(env.submission("acct-r2", 601))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert_eq!(reasons(&err).reason.as_deref(), Some("LOCK_UNAVAILABLE"));
    let stored = env.list_all().await.len();
    kg_tests::faults::record(kg_tests::faults::FaultRecord {
        test: "submission",
        fault: "Redis killed: fail closed",
        load: 2,
        faults: 1,
        bad_inputs: 0,
        lost: 0,
        duplicates: stored.saturating_sub(1) as u64,
    });
    assert_eq!(stored, 1, "nothing written while the lock is unavailable");
    env.registration
        .wait_for(
            tonic_health::pb::health_check_response::ServingStatus::NotServing,
            std::time::Duration::from_secs(10),
        )
        .await
        .expect("registration reports NOT_SERVING without Redis");

    redis.restart().await.unwrap();
    env.registration
        .wait_for(
            tonic_health::pb::health_check_response::ServingStatus::Serving,
            std::time::Duration::from_secs(15),
        )
        .await
        .unwrap();
    env.submit(env.submission("acct-r2", 601)).await.unwrap();
    env.stop().await;
}

/// Sends `copies` copies of `request` at once, spread over `replicas`.
async fn submit_concurrently(
    replicas: &[RegistrationServiceClient<Channel>],
    request: &SubmitApplicationRequest,
    copies: usize,
) -> Vec<Result<Application, tonic::Status>> {
    let racers: Vec<_> = (0..copies)
        .map(|i| {
            let mut client = replicas[i % replicas.len()].clone();
            let request = request.clone();
            tokio::spawn(async move {
                client
                    .submit_application(request)
                    .await
                    .map(|r| r.into_inner().application.unwrap())
            })
        })
        .collect();
    let mut results = Vec::new();
    for racer in racers {
        results.push(racer.await.unwrap());
    }
    results
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_identical_submissions_all_get_the_first_result() {
    // Default lock settings: copies on one replica queue on the request's own lock (not the
    // entity lock's 2 s wait) and replay the first result once it is committed.
    let mut env = Env::start_with(None, |_| {}).await;
    env.add_accounts(vec![
        fixtures::eligible_account("acct-race-one"),
        fixtures::eligible_account("acct-race-three"),
    ])
    .await;
    // On PostgreSQL also across three replicas of one database, each with its own in-process
    // entity lock: only the unique indexes and the key stand between them. SQLite serves one
    // process.
    let mut others = Vec::new();
    if mesh::backend() == mesh::Backend::Postgres {
        for _ in 0..2 {
            let config =
                mesh::registration_config(&env.registration_db.url, &env.identity.url(), None);
            others.push(mesh::start_registration(config).await.unwrap());
        }
    }
    let mut all = vec![env.reg.clone()];
    for replica in &others {
        all.push(RegistrationServiceClient::new(
            replica.channel().await.unwrap(),
        ));
    }
    let one = [env.reg.clone()];
    for (account, seed, replicas) in [
        ("acct-race-one", 700, &one[..]),
        ("acct-race-three", 701, &all[..]),
    ] {
        let request = env.submission(account, seed);
        let results = submit_concurrently(replicas, &request, 50).await;
        let names: Vec<String> = results
            .into_iter()
            .map(|r| r.unwrap_or_else(|e| panic!("{account}: every copy succeeds: {e:?}")))
            .map(|app| app.name)
            .collect();
        assert!(
            names.iter().all(|n| *n == names[0]),
            "{account}: one application named by all: {names:?}"
        );
        let stored = env
            .reg
            .list_applications(ListApplicationsRequest {
                account_id: account.into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .applications;
        assert_eq!(stored.len(), 1, "{account}: exactly one stored");
        assert_eq!(stored[0].name, names[0]);

        let mut changed = request.clone();
        changed
            .application
            .as_mut()
            .unwrap()
            .profile
            .as_mut()
            .unwrap()
            .introduction = "A different introduction of our cloud software company.".into();
        let err = env.submit(changed).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
        assert_eq!(
            reasons(&err).reason.as_deref(),
            Some("IDEMPOTENCY_KEY_REUSED")
        );
    }
    for replica in others {
        replica.stop().await.unwrap();
    }
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_identical_withdrawals_all_get_the_withdrawn_application() {
    let mut env = Env::start(None).await;
    env.add_accounts(vec![fixtures::eligible_account("acct-race-withdraw")])
        .await;
    let app = env
        .submit(env.submission("acct-race-withdraw", 710))
        .await
        .unwrap();
    let withdraw = WithdrawApplicationRequest {
        request_id: uuid::Uuid::new_v4().to_string(),
        name: app.name.clone(),
        reason: "filed by mistake".into(),
        etag: app.etag.clone(),
    };
    let racers: Vec<_> = (0..50)
        .map(|_| {
            let mut client = env.reg.clone();
            let withdraw = withdraw.clone();
            tokio::spawn(async move {
                client
                    .withdraw_application(withdraw)
                    .await
                    .map(|r| r.into_inner().application.unwrap())
            })
        })
        .collect();
    for racer in racers {
        let withdrawn = racer
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("every copy succeeds: {e:?}"));
        assert_eq!(withdrawn.name, app.name);
        assert_eq!(withdrawn.state, ApplicationState::Withdrawn as i32);
        assert_eq!(withdrawn.withdraw_reason, "filed by mistake");
    }
    let stored = env.list_all().await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].state, ApplicationState::Withdrawn as i32);

    let err = env
        .reg
        .withdraw_application(WithdrawApplicationRequest {
            reason: "another reason".into(),
            ..withdraw
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert_eq!(
        reasons(&err).reason.as_deref(),
        Some("IDEMPOTENCY_KEY_REUSED")
    );
    env.stop().await;
}

/// GetApplication calls in flight together share one query (read_batch.rs). Each must still get
/// its own application (or NOT_FOUND), with its own account's contact addresses, and a change
/// must be read at once by the next call on any replica — while other reads keep the queue busy.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reads_in_flight_together_each_get_their_own_application_and_the_latest_change() {
    let mut env = Env::start(None).await;
    let accounts: Vec<String> = (0..6).map(|i| format!("acct-read-batch-{i}")).collect();
    env.add_accounts(
        accounts
            .iter()
            .map(|a| fixtures::eligible_account(a))
            .collect(),
    )
    .await;
    let mut apps = Vec::new();
    for (i, account) in accounts.iter().enumerate() {
        apps.push(
            env.submit(env.submission(account, 720 + i as u64))
                .await
                .unwrap(),
        );
    }
    // A second replica of the same database on PostgreSQL (SQLite serves one process).
    let mut other = None;
    let mut reader = env.reg.clone();
    if mesh::backend() == mesh::Backend::Postgres {
        let config = mesh::registration_config(&env.registration_db.url, &env.identity.url(), None);
        let replica = mesh::start_registration(config).await.unwrap();
        reader = RegistrationServiceClient::new(replica.channel().await.unwrap());
        other = Some(replica);
    }
    let get = |client: &RegistrationServiceClient<Channel>, name: String| {
        let mut client = client.clone();
        async move {
            client
                .get_application(GetApplicationRequest {
                    name,
                    ..Default::default()
                })
                .await
                .map(|r| r.into_inner().application.unwrap())
        }
    };

    // 300 reads at once: the six applications in turn, and names that do not exist.
    let missing = "applications/0190a0a0-0000-7000-8000-000000000000".to_string();
    let calls: Vec<_> = (0..300)
        .map(|i| {
            let name = if i % 7 == 6 {
                missing.clone()
            } else {
                apps[i % apps.len()].name.clone()
            };
            let call = get(&reader, name.clone());
            tokio::spawn(async move { (name, call.await) })
        })
        .collect();
    for call in calls {
        let (name, reply) = call.await.unwrap();
        if name == missing {
            assert_eq!(reply.unwrap_err().code(), Code::NotFound, "{name}");
            continue;
        }
        let got = reply.unwrap_or_else(|e| panic!("{name}: {e:?}"));
        let want = apps.iter().find(|a| a.name == name).unwrap();
        assert_eq!(got.name, want.name);
        assert_eq!(got.account_id, want.account_id, "{name}: its own account");
        let mut want = want.clone();
        want.profile.as_mut().unwrap().logo.clear(); // the BASIC view has no logo bytes
        assert_eq!(got.profile, want.profile, "{name}: its own profile");
        assert_eq!(
            got.company_name, want.company_name,
            "{name}: its own company"
        );
        assert!(!got.contacts.is_empty(), "{name}: its contact addresses");
        assert!(
            got.contacts.iter().all(|c| c.account_id == want.account_id),
            "{name}: only its own account's addresses: {:?}",
            got.contacts
        );
    }

    // Read-your-writes: each withdrawal (on the first replica) is read by the very next call
    // (on the other one), while background readers keep that replica's read queue full.
    let busy = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let background: Vec<_> = (0..16)
        .map(|i| {
            let busy = busy.clone();
            let name = apps[i % apps.len()].name.clone();
            let reader = reader.clone();
            tokio::spawn(async move {
                let mut reads = 0u64;
                while busy.load(std::sync::atomic::Ordering::Relaxed) {
                    get(&reader, name.clone()).await.unwrap();
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    for app in &apps {
        let withdrawn = env
            .reg
            .withdraw_application(WithdrawApplicationRequest {
                request_id: uuid::Uuid::new_v4().to_string(),
                name: app.name.clone(),
                reason: "read-your-writes".into(),
                etag: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .application
            .unwrap();
        let read = get(&reader, app.name.clone()).await.unwrap();
        assert_eq!(
            read.state,
            ApplicationState::Withdrawn as i32,
            "{}",
            app.name
        );
        assert_eq!(
            read.etag, withdrawn.etag,
            "{}: the withdrawn version",
            app.name
        );
    }
    busy.store(false, std::sync::atomic::Ordering::Relaxed);
    for task in background {
        assert!(task.await.unwrap() > 0, "the background readers read");
    }
    if let Some(replica) = other {
        replica.stop().await.unwrap();
    }
    env.stop().await;
}
