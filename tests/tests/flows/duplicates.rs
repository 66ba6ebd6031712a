//! Duplicate signals over real gRPC (PostgreSQL or SQLite by `KG_TEST_DATABASE`): the other
//! applications and sellers, of other accounts, that share the website's registrable domain,
//! the contact mobile, an email or a similar company name with a task. Warnings only: a task
//! with signals is still approved.
//!
//! The seller case runs end to end (identity-check, registration, review and notification):
//! an approved application is a seller, and a later applicant sharing its website and mobile
//! sees it. The other cases create tasks through CreateReviewTask with the service role, as
//! registration's outbox relay does, so that any website host can be used (the end-to-end
//! website check needs a reachable site: loopback addresses here).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use chrono::Utc;
use kg_proto::common::{Contact, SellerProfile};
use kg_proto::identity::ImportAccountsRequest;
use kg_proto::identity::identity_check_service_client::IdentityCheckServiceClient;
use kg_proto::registration::registration_service_client::RegistrationServiceClient;
use kg_proto::registration::{ApplicationState, GetApplicationRequest};
use kg_proto::review::review_service_client::ReviewServiceClient;
use kg_proto::review::*;
use kg_runtime::auth::{Authenticator, DEFAULT_AUDIENCE, DEFAULT_ISSUER, Role};
use kg_tests::fixtures;
use kg_tests::free_port;
use kg_tests::mesh::{self, Running, TestDb};
use kg_tests::poll;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use DuplicateSignalKind::{ContactEmail, ContactMobile, SimilarCompanyName, WebsiteDomain};

const SECRET: &str = kg_tests::mesh::TEST_SECRET;
const NOWHERE: &str = "http://127.0.0.1:9";

#[derive(Clone)]
struct Bearer(MetadataValue<Ascii>);

impl Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        Ok(request)
    }
}

type Client = ReviewServiceClient<InterceptedService<Channel, Bearer>>;

/// review alone, authentication on.
struct Env {
    review: Running,
    _db: TestDb,
    auth: Authenticator,
    channel: Channel,
}

impl Env {
    async fn start() -> Env {
        let db = mesh::fresh_db().await.unwrap();
        let mut config = mesh::review_config(&db.url, NOWHERE, NOWHERE);
        config.common.jwt_secret = Some(SECRET.into());
        let review = mesh::start_review_with(config).await.unwrap();
        Env {
            channel: review.channel().await.unwrap(),
            review,
            _db: db,
            auth: Authenticator::hs256(SECRET.as_bytes(), DEFAULT_ISSUER, DEFAULT_AUDIENCE),
        }
    }

    fn client(&self, subject: &str, role: Role) -> Client {
        let token = self.auth.mint(subject, role, Duration::from_secs(3600));
        let value: MetadataValue<Ascii> = format!("Bearer {token}").parse().unwrap();
        ReviewServiceClient::with_interceptor(self.channel.clone(), Bearer(value))
    }

    fn reviewer(&self) -> Client {
        self.client("reviewer-dup", Role::Reviewer)
    }

    /// Creates a task as registration's relay does.
    async fn create(&self, a: &Applicant<'_>) -> ReviewTask {
        self.client("registration", Role::Service)
            .create_review_task(CreateReviewTaskRequest {
                event_id: uuid::Uuid::new_v4().to_string(),
                subject: format!("applications/{}", uuid::Uuid::new_v4()),
                subject_kind: SubjectKind::Application as i32,
                account_id: a.account.to_string(),
                company_name: a.company.to_string(),
                entity: Some(fixtures::entity(rand_seed())),
                submit_time: Some(prost_types::Timestamp {
                    seconds: Utc::now().timestamp() - 60,
                    nanos: 0,
                }),
                evidence: None,
                profile: Some(a.profile()),
                previous_company_name: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .review_task
            .unwrap()
    }

    async fn get(&self, task: &ReviewTask) -> ReviewTask {
        self.reviewer()
            .get_review_task(GetReviewTaskRequest {
                name: task.name.clone(),
            })
            .await
            .unwrap()
            .into_inner()
            .review_task
            .unwrap()
    }

    async fn stop(self) {
        self.review.stop().await.unwrap();
    }
}

fn rand_seed() -> u64 {
    u64::from_le_bytes(uuid::Uuid::new_v4().as_bytes()[..8].try_into().unwrap()) % 1_000_000_000
}

/// What an applicant declares (the parts the signals look at).
struct Applicant<'a> {
    account: &'a str,
    company: &'a str,
    website: &'a str,
    mobile: &'a str,
    email: &'a str,
    service_email: &'a str,
}

impl Applicant<'_> {
    fn profile(&self) -> SellerProfile {
        let mut p = fixtures::profile(self.website);
        p.logo = Vec::new(); // CreateReviewTask does not need the bytes
        p.contact = Some(Contact {
            name: "Li Wei".into(),
            email: self.email.into(),
            mobile: self.mobile.into(),
        });
        p.customer_service_email = self.service_email.into();
        p
    }
}

/// (kind, other task, detail) of each signal, in order.
fn summary(task: &ReviewTask) -> Vec<(DuplicateSignalKind, String, String)> {
    task.duplicate_signals
        .iter()
        .map(|s| {
            (
                DuplicateSignalKind::try_from(s.kind).unwrap(),
                s.other_task.clone(),
                s.detail.clone(),
            )
        })
        .collect()
}

/// An English website on a loopback address of its own (127.0.0.2, 127.0.0.3, …).
async fn website(ip: [u8; 4]) -> SocketAddr {
    use axum::response::Html;
    use axum::routing::get;
    let app = axum::Router::new().route("/en", get(|| async { Html(fixtures::ENGLISH_PAGE) }));
    let listener = tokio::net::TcpListener::bind(SocketAddr::from((ip, 0)))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

/// The whole mesh, authentication off (as in e2e.rs); identity-check may reach 127.0.0.0/8.
struct Mesh {
    identity: Running,
    registration: Running,
    review: Running,
    notification: Running,
    _dbs: Vec<TestDb>,
}

impl Mesh {
    async fn start() -> Mesh {
        let dbs = vec![
            mesh::fresh_db().await.unwrap(),
            mesh::fresh_db().await.unwrap(),
            mesh::fresh_db().await.unwrap(),
            mesh::fresh_db().await.unwrap(),
        ];
        let identity_config = kg_identity_check::Config {
            common: mesh::common(&dbs[0].url),
            website_test_allowlist: vec!["127.0.0.0/8".to_string()],
        };
        let identity = Running::start(mesh::any_port(), move |l, s| {
            kg_identity_check::run(identity_config, l, s)
        })
        .await
        .unwrap();
        let notification =
            mesh::start_notification(mesh::notification_config(&dbs[3].url, &identity.url()))
                .await
                .unwrap();
        let review_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let registration = mesh::start_registration(mesh::with_peers(
            mesh::registration_config(&dbs[1].url, &identity.url(), None),
            &format!("http://{review_addr}"),
            &notification.url(),
        ))
        .await
        .unwrap();
        let review_config = mesh::review_config(&dbs[2].url, &registration.url(), &identity.url());
        let review = Running::start(review_addr, move |l, s| kg_review::run(review_config, l, s))
            .await
            .unwrap();
        Mesh {
            identity,
            registration,
            review,
            notification,
            _dbs: dbs,
        }
    }

    async fn reg(&self) -> RegistrationServiceClient<Channel> {
        RegistrationServiceClient::new(self.registration.channel().await.unwrap())
    }

    async fn rev(&self) -> ReviewServiceClient<Channel> {
        ReviewServiceClient::new(self.review.channel().await.unwrap())
    }

    /// Submits an application and waits for its review task.
    async fn submit(&self, a: &Applicant<'_>, seed: u64) -> (String, ReviewTask) {
        let mut request = fixtures::submission(a.account, seed, a.website);
        let application = request.application.as_mut().unwrap();
        let logo = application.profile.as_ref().unwrap().logo.clone();
        let mut profile = a.profile();
        profile.logo = logo;
        application.profile = Some(profile);
        let app = self
            .reg()
            .await
            .submit_application(request)
            .await
            .unwrap()
            .into_inner()
            .application
            .unwrap();
        let task = poll("the review task", Duration::from_secs(30), || async {
            self.rev()
                .await
                .list_review_tasks(ListReviewTasksRequest {
                    subject: app.name.clone(),
                    states: vec![ReviewTaskState::Queued as i32],
                    ..Default::default()
                })
                .await
                .ok()?
                .into_inner()
                .review_tasks
                .into_iter()
                .next()
        })
        .await;
        (app.name, task)
    }

    async fn get(&self, task: &ReviewTask) -> ReviewTask {
        self.rev()
            .await
            .get_review_task(GetReviewTaskRequest {
                name: task.name.clone(),
            })
            .await
            .unwrap()
            .into_inner()
            .review_task
            .unwrap()
    }

    /// Claims and approves a task, then waits until registration applied the decision.
    async fn approve(&self, task: &ReviewTask, application: &str) {
        let mut rev = self.rev().await;
        rev.claim_review_task(ClaimReviewTaskRequest {
            request_id: uuid::Uuid::new_v4().to_string(),
            name: task.name.clone(),
            etag: String::new(),
        })
        .await
        .unwrap();
        let approved = rev
            .approve_review_task(ApproveReviewTaskRequest {
                request_id: uuid::Uuid::new_v4().to_string(),
                name: task.name.clone(),
                comment: "verified".into(),
                etag: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .review_task
            .unwrap();
        assert_eq!(approved.state, ReviewTaskState::Approved as i32);
        poll(
            "the application APPROVED",
            Duration::from_secs(30),
            || async {
                let a = self
                    .reg()
                    .await
                    .get_application(GetApplicationRequest {
                        name: application.to_string(),
                        ..Default::default()
                    })
                    .await
                    .ok()?
                    .into_inner()
                    .application?;
                (a.state == ApplicationState::Approved as i32).then_some(())
            },
        )
        .await;
    }

    async fn stop(self) {
        self.review.stop().await.unwrap();
        self.registration.stop().await.unwrap();
        self.notification.stop().await.unwrap();
        self.identity.stop().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_applicant_sharing_a_sellers_website_and_mobile_is_flagged_and_still_approved() {
    let m = Mesh::start().await;
    // Two sites on one address (the port does not matter), one on another address.
    let (seller_site, dup_site, other_site) = (
        website([127, 0, 0, 2]).await,
        website([127, 0, 0, 2]).await,
        website([127, 0, 0, 3]).await,
    );
    let mut accounts = Vec::new();
    for (id, name) in [
        ("acct-dup-seller", "Alpha Orchard Software Co., Ltd."),
        ("acct-dup-applicant", "Brightwave Digital Co., Ltd."),
        ("acct-dup-other", "Zenith Harbor Data Limited"),
    ] {
        let mut account = fixtures::eligible_account(id);
        account.verified_enterprise_name = name.into();
        accounts.push(account);
    }
    IdentityCheckServiceClient::new(m.identity.channel().await.unwrap())
        .import_accounts(ImportAccountsRequest {
            request_id: "import-duplicates".into(),
            accounts,
        })
        .await
        .unwrap();

    // The seller: an application of another account, approved.
    let seller_url = format!("http://{seller_site}/en");
    let seller = Applicant {
        account: "acct-dup-seller",
        company: "",
        website: &seller_url,
        mobile: "+86 138 0013 8000",
        email: "li.wei@alpha.example.com",
        service_email: "support@alpha.example.com",
    };
    let (seller_app, seller_task) = m.submit(&seller, 501).await;
    assert!(
        m.get(&seller_task).await.duplicate_signals.is_empty(),
        "the first application has nothing to duplicate"
    );
    m.approve(&seller_task, &seller_app).await;

    // The applicant: the same website address (another port) and the same mobile, written
    // differently; its own emails and name.
    let dup_url = format!("http://{dup_site}/en");
    let applicant = Applicant {
        account: "acct-dup-applicant",
        company: "",
        website: &dup_url,
        mobile: "+8613800138000",
        email: "ops@brightwave.example.com",
        service_email: "help@brightwave.example.com",
    };
    let (dup_app, dup_task) = m.submit(&applicant, 502).await;
    let other_url = format!("http://{other_site}/en");
    let unrelated = Applicant {
        account: "acct-dup-other",
        company: "",
        website: &other_url,
        mobile: "+8613912345678",
        email: "desk@zenith.example.com",
        service_email: "care@zenith.example.com",
    };
    let (_, other_task) = m.submit(&unrelated, 503).await;

    let flagged = m.get(&dup_task).await;
    assert_eq!(
        summary(&flagged),
        vec![
            (
                WebsiteDomain,
                seller_task.name.clone(),
                "127.0.0.2".to_string()
            ),
            (
                ContactMobile,
                seller_task.name.clone(),
                "+8613800138000".to_string()
            ),
        ],
        "{:#?}",
        flagged.duplicate_signals
    );
    for s in &flagged.duplicate_signals {
        assert_eq!(
            s.other_subject, seller_app,
            "the other subject is the seller's application"
        );
        assert_eq!(s.similarity, 1.0);
    }
    // The list shows the same signals.
    let listed = m
        .rev()
        .await
        .list_review_tasks(ListReviewTasksRequest::default())
        .await
        .unwrap()
        .into_inner()
        .review_tasks;
    let listed: HashMap<_, _> = listed.into_iter().map(|t| (t.name.clone(), t)).collect();
    assert_eq!(
        listed[&dup_task.name].duplicate_signals,
        flagged.duplicate_signals
    );
    assert!(listed[&other_task.name].duplicate_signals.is_empty());
    assert!(m.get(&other_task).await.duplicate_signals.is_empty());
    // The seller's (approved) task shows the later applicant too: signals are computed when read.
    assert_eq!(
        summary(&m.get(&seller_task).await),
        vec![
            (
                WebsiteDomain,
                dup_task.name.clone(),
                "127.0.0.2".to_string()
            ),
            (
                ContactMobile,
                dup_task.name.clone(),
                "+8613800138000".to_string()
            ),
        ]
    );

    // A warning, never a block: the applicant is approved and becomes a seller too.
    m.approve(&flagged, &dup_app).await;
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn domains_emails_and_similar_names_across_accounts_strongest_first() {
    let env = Env::start().await;
    let first = env
        .create(&Applicant {
            account: "acct-a",
            company: "Acme Cloud Computing Co., Ltd.",
            website: "https://shop.acme.com.cn/",
            mobile: "+8613700000001",
            email: "Sales@Acme-Cloud.example",
            service_email: "support@acme-cloud.example",
        })
        .await;
    // Another account: same registrable domain (www. vs shop.), the first's customer-service
    // email as its contact email in other case, and a name one typo away.
    let similar = env
        .create(&Applicant {
            account: "acct-b",
            company: "ACME Cloud Computting Limited",
            website: "https://www.acme.com.cn/en",
            mobile: "+8613700000002",
            email: "SUPPORT@acme-cloud.example",
            service_email: "service@acme-b.example",
        })
        .await;
    // Another account: the same name in full-width forms with a Chinese legal form; a website
    // under another public suffix (com.co is not com.cn).
    let same_name = env
        .create(&Applicant {
            account: "acct-c",
            company: "Ａｃｍｅ　Ｃｌｏｕｄ　Ｃｏｍｐｕｔｉｎｇ有限公司",
            website: "https://acme.com.co/",
            mobile: "+8613700000003",
            email: "c@acme-c.example",
            service_email: "cs@acme-c.example",
        })
        .await;
    // The first account's own second task: identical on every key, never a signal.
    let own = env
        .create(&Applicant {
            account: "acct-a",
            company: "Acme Cloud Computing Co., Ltd.",
            website: "https://shop.acme.com.cn/",
            mobile: "+8613700000001",
            email: "sales@acme-cloud.example",
            service_email: "support@acme-cloud.example",
        })
        .await;
    let unrelated = env
        .create(&Applicant {
            account: "acct-d",
            company: "Zenith Harbor Data Ltd",
            website: "https://www.zenith-harbor.example.org/",
            mobile: "+8613700000004",
            email: "desk@zenith.example.org",
            service_email: "care@zenith.example.org",
        })
        .await;

    let got = env.get(&first).await;
    assert_eq!(
        summary(&got),
        vec![
            (WebsiteDomain, similar.name.clone(), "acme.com.cn".into()),
            (
                ContactEmail,
                similar.name.clone(),
                "support@acme-cloud.example".into()
            ),
            (
                SimilarCompanyName,
                same_name.name.clone(),
                same_name.company_name.clone()
            ),
            (
                SimilarCompanyName,
                similar.name.clone(),
                similar.company_name.clone()
            ),
        ],
        "{:#?}",
        got.duplicate_signals
    );
    let sims: Vec<f64> = got.duplicate_signals.iter().map(|s| s.similarity).collect();
    assert_eq!(sims[..3], [1.0, 1.0, 1.0]);
    assert!(
        sims[3] >= 0.9 && sims[3] < 1.0,
        "a similar name is below 1: {}",
        sims[3]
    );
    assert!(
        got.duplicate_signals
            .iter()
            .all(|s| s.other_subject.starts_with("applications/"))
    );
    assert_eq!(got.duplicate_signals[0].other_subject, similar.subject);

    // The account's own other task is never a signal, either way round.
    let own_got = env.get(&own).await;
    for task in [&got, &own_got] {
        assert!(
            task.duplicate_signals
                .iter()
                .all(|s| s.other_task != first.name && s.other_task != own.name),
            "{:#?}",
            task.duplicate_signals
        );
    }
    assert_eq!(summary(&own_got).len(), 4);
    assert!(env.get(&unrelated).await.duplicate_signals.is_empty());
    // The later similar task shows both of acct-a's tasks.
    let similar_got = env.get(&similar).await;
    let others: Vec<&str> = similar_got
        .duplicate_signals
        .iter()
        .map(|s| s.other_task.as_str())
        .collect();
    assert!(others.contains(&first.name.as_str()) && others.contains(&own.name.as_str()));

    // A list page carries the same signals as each task read alone.
    let page = env
        .reviewer()
        .list_review_tasks(ListReviewTasksRequest::default())
        .await
        .unwrap()
        .into_inner()
        .review_tasks;
    assert_eq!(page.len(), 5);
    for listed in &page {
        let alone = env.get(listed).await;
        assert_eq!(
            listed.duplicate_signals, alone.duplicate_signals,
            "{}",
            listed.name
        );
    }

    // Never a hard block: the flagged task is claimed and approved.
    let mut reviewer = env.reviewer();
    reviewer
        .claim_review_task(ClaimReviewTaskRequest {
            request_id: uuid::Uuid::new_v4().to_string(),
            name: first.name.clone(),
            etag: String::new(),
        })
        .await
        .unwrap();
    let approved = reviewer
        .approve_review_task(ApproveReviewTaskRequest {
            request_id: uuid::Uuid::new_v4().to_string(),
            name: first.name.clone(),
            comment: "a different company despite the similar name".into(),
            etag: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .review_task
        .unwrap();
    assert_eq!(approved.state, ReviewTaskState::Approved as i32);
    // Approved tasks still show (and are shown as) signals.
    assert_eq!(summary(&env.get(&first).await), summary(&got));
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hot_domain_gives_at_most_twenty_signals() {
    let env = Env::start().await;
    let mut tasks = Vec::new();
    // More tasks on the domain than are read per key (50): the hot key is read on its own.
    for i in 0..60 {
        let account = format!("acct-hot-{i:02}");
        let company = format!("Company number {i} of {}", uuid::Uuid::new_v4());
        let mobile = format!("+86137{i:08}");
        let email = format!("contact-{i}@hot-{i}.example");
        tasks.push(
            env.create(&Applicant {
                account: &account,
                company: &company,
                website: &format!("https://shop{i}.hosting.example.com/"),
                mobile: &mobile,
                email: &email,
                service_email: &email,
            })
            .await,
        );
    }
    let got = env.get(&tasks[0]).await;
    assert_eq!(got.duplicate_signals.len(), 20);
    // The oldest others first.
    let others: Vec<&str> = got
        .duplicate_signals
        .iter()
        .map(|s| s.other_task.as_str())
        .collect();
    let oldest: Vec<&str> = tasks[1..21].iter().map(|t| t.name.as_str()).collect();
    assert_eq!(others, oldest);
    assert!(
        got.duplicate_signals
            .iter()
            .all(|s| s.kind == WebsiteDomain as i32 && s.detail == "example.com")
    );
    let page = env
        .reviewer()
        .list_review_tasks(ListReviewTasksRequest {
            page_size: 60,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .review_tasks;
    assert_eq!(page.len(), 60);
    assert!(page.iter().all(|t| t.duplicate_signals.len() == 20));
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resubmitted_profile_replaces_the_keys() {
    let env = Env::start().await;
    let first = env
        .create(&Applicant {
            account: "acct-r1",
            company: "Northwind Traders",
            website: "https://www.northwind.example.net/",
            mobile: "+8613600000001",
            email: "hello@northwind.example.net",
            service_email: "help@northwind.example.net",
        })
        .await;
    let second = Applicant {
        account: "acct-r2",
        company: "Southwind Shipping",
        website: "https://www.southwind.example.org/",
        mobile: "+8613600000002",
        email: "hello@southwind.example.org",
        service_email: "help@southwind.example.org",
    };
    let second_task = env.create(&second).await;
    assert!(env.get(&second_task).await.duplicate_signals.is_empty());

    let mut reviewer = env.reviewer();
    reviewer
        .claim_review_task(ClaimReviewTaskRequest {
            request_id: uuid::Uuid::new_v4().to_string(),
            name: second_task.name.clone(),
            etag: String::new(),
        })
        .await
        .unwrap();
    reviewer
        .request_changes(RequestChangesRequest {
            request_id: uuid::Uuid::new_v4().to_string(),
            name: second_task.name.clone(),
            reason_codes: vec!["WEBSITE_NOT_ENGLISH".into()],
            comment: "Please give an English website.".into(),
            etag: String::new(),
        })
        .await
        .unwrap();
    // The applicant resubmits with the first one's website and mobile.
    let changed = Applicant {
        website: "https://en.northwind.example.net/",
        mobile: "+86 136 0000 0001",
        ..second
    };
    env.client("registration", Role::Service)
        .resume_review_task(ResumeReviewTaskRequest {
            event_id: uuid::Uuid::new_v4().to_string(),
            subject: second_task.subject.clone(),
            resubmit_time: Some(prost_types::Timestamp {
                seconds: Utc::now().timestamp(),
                nanos: 0,
            }),
            evidence: None,
            profile: Some(changed.profile()),
        })
        .await
        .unwrap();
    assert_eq!(
        summary(&env.get(&second_task).await),
        vec![
            (WebsiteDomain, first.name.clone(), "example.net".into()),
            (ContactMobile, first.name.clone(), "+8613600000001".into()),
        ]
    );
    assert_eq!(
        summary(&env.get(&first).await),
        vec![
            (
                WebsiteDomain,
                second_task.name.clone(),
                "example.net".into()
            ),
            (
                ContactMobile,
                second_task.name.clone(),
                "+8613600000001".into()
            ),
        ]
    );
    env.stop().await;
}
