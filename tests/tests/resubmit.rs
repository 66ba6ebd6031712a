//! ResubmitApplication over the whole mesh (real gRPC over TCP, real PostgreSQL or SQLite per
//! KG_TEST_DATABASE, authentication on): a reviewer requests changes, the applicant resubmits
//! the masked fields, the review task resumes its stopped clock with the corrected profile, the
//! applicant is notified, and the approval creates the seller with the resubmitted profile; and
//! the refusals (state, ownership, mask, materials, idempotency).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use kg_proto::common::{ReviewDecision, SellerProfile};
use kg_proto::identity::ImportAccountsRequest;
use kg_proto::identity::identity_check_service_client::IdentityCheckServiceClient;
use kg_proto::notification::notification_service_client::NotificationServiceClient;
use kg_proto::notification::{ListNotificationsRequest, NotificationEventType};
use kg_proto::registration::registration_service_client::RegistrationServiceClient;
use kg_proto::registration::*;
use kg_proto::review::review_service_client::ReviewServiceClient;
use kg_proto::review::*;
use kg_review::calendar::WorkingCalendar;
use kg_runtime::auth::{Authenticator, DEFAULT_AUDIENCE, DEFAULT_ISSUER, Role};
use kg_runtime::error::DecodedError;
use kg_tests::fixtures::{self, Website};
use kg_tests::mesh::{self, Running, TestDb};
use kg_tests::{RedisServer, SmtpServer, free_port};
use tonic::Code;
use tonic::transport::Channel;

struct Mesh {
    identity: Running,
    registration: Running,
    review: Running,
    notification: Running,
    _smtp: SmtpServer,
    website: Website,
    /// Set when authentication is on: the helpers then send tokens of the right roles.
    auth: Option<Authenticator>,
    _redis: RedisServer,
    _dbs: Vec<TestDb>,
}

const SECRET: &str = "resubmit-test-secret-with-at-least-32-bytes";

impl Mesh {
    /// The mesh with authentication on (every service shares `secret`) or off.
    async fn start_with(secret: Option<&str>) -> Mesh {
        let common = |db: &str| {
            let mut common = mesh::common(db);
            common.jwt_secret = secret.map(str::to_string);
            common
        };
        let redis = RedisServer::start().await.unwrap();
        let smtp = SmtpServer::start().await.unwrap();
        let website = Website::start().await.unwrap();
        let dbs = vec![
            mesh::fresh_db().await.unwrap(),
            mesh::fresh_db().await.unwrap(),
            mesh::fresh_db().await.unwrap(),
            mesh::fresh_db().await.unwrap(),
        ];
        let identity_config = kg_identity_check::Config {
            common: common(&dbs[0].url),
            website_test_allowlist: vec!["127.0.0.1/32".to_string()],
        };
        let identity = Running::start(mesh::any_port(), move |l, s| {
            kg_identity_check::run(identity_config, l, s)
        })
        .await
        .unwrap();
        let mut notification_config = mesh::notification_config(&dbs[3].url, &identity.url());
        notification_config.common = common(&dbs[3].url);
        notification_config.smtp_url = Some(format!("{}?tls=none", smtp.url()));
        let notification = mesh::start_notification(notification_config).await.unwrap();
        // registration and review call each other: fix review's address first.
        let review_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let mut registration_config = mesh::with_peers(
            mesh::registration_config(&dbs[1].url, &identity.url(), Some(redis.url())),
            &format!("http://{review_addr}"),
            &notification.url(),
        );
        registration_config.common = common(&dbs[1].url);
        let registration = mesh::start_registration(registration_config).await.unwrap();
        let mut config = mesh::review_config(&dbs[2].url, &registration.url(), &identity.url());
        config.common = common(&dbs[2].url);
        let review = Running::start(review_addr, move |l, s| kg_review::run(config, l, s))
            .await
            .unwrap();
        Mesh {
            identity,
            registration,
            review,
            notification,
            _smtp: smtp,
            website,
            auth: secret
                .map(|s| Authenticator::hs256(s.as_bytes(), DEFAULT_ISSUER, DEFAULT_AUDIENCE)),
            _redis: redis,
            _dbs: dbs,
        }
    }

    async fn idc(&self) -> IdentityCheckServiceClient<Channel> {
        IdentityCheckServiceClient::new(self.identity.channel().await.unwrap())
    }

    async fn reg(&self) -> RegistrationServiceClient<Channel> {
        RegistrationServiceClient::new(self.registration.channel().await.unwrap())
    }

    async fn rev(&self) -> ReviewServiceClient<Channel> {
        ReviewServiceClient::new(self.review.channel().await.unwrap())
    }

    async fn notifications(&self) -> NotificationServiceClient<Channel> {
        NotificationServiceClient::new(self.notification.channel().await.unwrap())
    }

    async fn stop(self) {
        self.review.stop().await.unwrap();
        self.registration.stop().await.unwrap();
        self.notification.stop().await.unwrap();
        self.identity.stop().await.unwrap();
    }

    /// `message` as `subject` in `role` (a bearer token when authentication is on).
    fn as_<T>(&self, message: T, subject: &str, role: Role) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Some(auth) = &self.auth {
            let token = auth.mint(subject, role, Duration::from_secs(600));
            request
                .metadata_mut()
                .insert("authorization", format!("Bearer {token}").parse().unwrap());
        }
        request
    }

    fn operator<T>(&self, message: T) -> tonic::Request<T> {
        self.as_(message, "ops-1", Role::Operator)
    }

    fn reviewer<T>(&self, message: T) -> tonic::Request<T> {
        self.as_(message, "reviewer-1", Role::Reviewer)
    }

    async fn import(&self, account: kg_proto::identity::Account) {
        self.idc()
            .await
            .import_accounts(self.operator(ImportAccountsRequest {
                request_id: uuid::Uuid::new_v4().to_string(),
                accounts: vec![account],
            }))
            .await
            .unwrap();
    }

    /// The review task of `subject`, once registration's relay has created it.
    async fn task_of(&self, subject: &str) -> ReviewTask {
        poll("the review task", Duration::from_secs(30), || async {
            self.rev()
                .await
                .list_review_tasks(self.reviewer(ListReviewTasksRequest {
                    subject: subject.to_string(),
                    ..Default::default()
                }))
                .await
                .ok()?
                .into_inner()
                .review_tasks
                .into_iter()
                .next()
        })
        .await
    }

    /// A reviewer claims the task of `subject` and approves it (or rejects it with a reason).
    async fn decide(&self, subject: &str, approve: bool) -> ReviewTask {
        let task = self.task_of(subject).await;
        let mut rev = self.rev().await;
        rev.claim_review_task(self.reviewer(ClaimReviewTaskRequest {
            request_id: uuid::Uuid::new_v4().to_string(),
            name: task.name.clone(),
            etag: String::new(),
        }))
        .await
        .unwrap();
        if approve {
            rev.approve_review_task(self.reviewer(ApproveReviewTaskRequest {
                request_id: uuid::Uuid::new_v4().to_string(),
                name: task.name.clone(),
                comment: "verified".into(),
                etag: String::new(),
            }))
            .await
            .unwrap();
        } else {
            rev.reject_review_task(self.reviewer(RejectReviewTaskRequest {
                request_id: uuid::Uuid::new_v4().to_string(),
                name: task.name.clone(),
                reason_codes: vec!["WEBSITE_NOT_ENGLISH".into()],
                comment: "The website must be in English.".into(),
                etag: String::new(),
            }))
            .await
            .unwrap();
        }
        task
    }

    async fn notified(&self, account_id: &str, kind: NotificationEventType) -> bool {
        let list = self
            .notifications()
            .await
            .list_notifications(self.operator(ListNotificationsRequest {
                account_id: account_id.to_string(),
                page_size: 100,
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner()
            .notifications;
        list.iter().any(|n| n.event_type == kind as i32)
    }

    async fn wait_notified(&self, account_id: &str, kind: NotificationEventType) {
        poll(&format!("{kind:?}"), Duration::from_secs(30), || async {
            self.notified(account_id, kind).await.then_some(())
        })
        .await
    }
}

async fn poll<T, F, Fut>(what: &str, within: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(started.elapsed() < within, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn decoded(status: &tonic::Status) -> DecodedError {
    DecodedError::from_status(status)
}

fn mask(paths: &[&str]) -> Option<prost_types::FieldMask> {
    Some(prost_types::FieldMask {
        paths: paths.iter().map(|p| p.to_string()).collect(),
    })
}

fn at(t: &Option<prost_types::Timestamp>) -> DateTime<Utc> {
    let t = t.as_ref().expect("a timestamp");
    DateTime::from_timestamp(t.seconds, t.nanos as u32).unwrap()
}

#[track_caller]
fn expect_error(err: tonic::Status, code: Code, reason: &str) -> DecodedError {
    assert_eq!(err.code(), code, "{err:?}");
    let d = decoded(&err);
    assert_eq!(d.reason.as_deref(), Some(reason), "{err:?}");
    d
}

fn resubmission(
    app: &Application,
    profile: SellerProfile,
    paths: &[&str],
) -> ResubmitApplicationRequest {
    ResubmitApplicationRequest {
        request_id: uuid::Uuid::new_v4().to_string(),
        name: app.name.clone(),
        profile: Some(profile),
        update_mask: mask(paths),
        etag: app.etag.clone(),
        logo_file_name: String::new(),
    }
}

impl Mesh {
    fn applicant<T>(&self, message: T, account_id: &str) -> tonic::Request<T> {
        self.as_(message, account_id, Role::Applicant)
    }

    async fn application(&self, name: &str) -> Application {
        self.reg()
            .await
            .get_application(self.operator(GetApplicationRequest {
                name: name.to_string(),
            }))
            .await
            .unwrap()
            .into_inner()
            .application
            .unwrap()
    }

    async fn application_in(&self, name: &str, state: ApplicationState) -> Application {
        poll(&format!("{state:?}"), Duration::from_secs(30), || async {
            let a = self.application(name).await;
            (a.state == state as i32).then_some(a)
        })
        .await
    }

    /// A fresh eligible account submits; returns the application once it is IN_REVIEW.
    async fn submitted(&self, account_id: &str, seed: u64) -> Application {
        self.import(fixtures::eligible_account(account_id)).await;
        let app = self
            .reg()
            .await
            .submit_application(self.applicant(
                fixtures::submission(account_id, seed, &self.website.url("/en")),
                account_id,
            ))
            .await
            .unwrap()
            .into_inner()
            .application
            .unwrap();
        self.application_in(&app.name, ApplicationState::InReview)
            .await
    }

    async fn review_task(&self, name: &str) -> ReviewTask {
        self.rev()
            .await
            .get_review_task(self.reviewer(GetReviewTaskRequest {
                name: name.to_string(),
            }))
            .await
            .unwrap()
            .into_inner()
            .review_task
            .unwrap()
    }

    /// A reviewer claims the task of `subject` and requests changes; returns the waiting task
    /// and the application once registration has applied the decision.
    async fn request_changes(&self, subject: &str) -> (ReviewTask, Application) {
        let task = self.task_of(subject).await;
        let mut rev = self.rev().await;
        rev.claim_review_task(self.reviewer(ClaimReviewTaskRequest {
            request_id: uuid::Uuid::new_v4().to_string(),
            name: task.name.clone(),
            etag: String::new(),
        }))
        .await
        .unwrap();
        let waiting = rev
            .request_changes(self.reviewer(RequestChangesRequest {
                request_id: uuid::Uuid::new_v4().to_string(),
                name: task.name.clone(),
                reason_codes: vec!["WEBSITE_NOT_ENGLISH".into()],
                comment: "Please describe the products in the introduction.".into(),
                etag: String::new(),
            }))
            .await
            .unwrap()
            .into_inner()
            .review_task
            .unwrap();
        let app = self
            .application_in(subject, ApplicationState::ChangesRequested)
            .await;
        (waiting, app)
    }

    async fn count_notified(&self, account_id: &str, kind: NotificationEventType) -> usize {
        self.notifications()
            .await
            .list_notifications(self.operator(ListNotificationsRequest {
                account_id: account_id.to_string(),
                page_size: 100,
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner()
            .notifications
            .iter()
            .filter(|n| n.event_type == kind as i32)
            .count()
    }
}

/// Must-show 1: changes requested → the applicant resubmits the masked fields → the review task
/// is QUEUED again with its clock resumed and the new profile → the applicant is notified → the
/// approval creates the seller with the resubmitted profile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resubmission_resumes_the_review_and_the_seller_gets_the_corrected_profile() {
    let m = Mesh::start_with(Some(SECRET)).await;
    let account = "acct-resubmit-1";
    let calendar = WorkingCalendar::china();
    let app = m.submitted(account, 701).await;
    let first = m.task_of(&app.name).await;
    let first_deadline = at(&first.deadline);
    assert_eq!(at(&app.review_deadline), first_deadline);

    let (waiting, before) = m.request_changes(&app.name).await;
    assert_eq!(waiting.state, ReviewTaskState::WaitingOnApplicant as i32);
    assert!(waiting.deadline.is_none(), "the clock is stopped");
    let paused = at(&waiting.paused_since);
    assert_eq!(
        before.changes_requested.as_ref().unwrap().decision,
        ReviewDecision::RequestChanges as i32
    );
    assert_eq!(
        m.review_task(&first.name).await.state,
        ReviewTaskState::WaitingOnApplicant as i32
    );
    m.wait_notified(account, NotificationEventType::ChangesRequested)
        .await;
    // Some time passes while the task waits on the applicant.
    tokio::time::sleep(Duration::from_millis(300)).await;

    // The request carries other changes too; only the masked ones count.
    let mut corrected = before.profile.clone().unwrap();
    corrected.introduction =
        "Example Software builds monitoring, backup and alerting tools for cloud teams.".into();
    corrected.website_url = m.website.url("/en?resubmitted=1");
    corrected.industry = "outside the mask".into();
    corrected.customer_service_email = "outside@example.com".into();
    let resubmitted = m
        .reg()
        .await
        .resubmit_application(m.applicant(
            resubmission(&before, corrected.clone(), &["introduction", "website_url"]),
            account,
        ))
        .await
        .unwrap()
        .into_inner()
        .application
        .unwrap();
    let mut expected = before.profile.clone().unwrap();
    expected.introduction = corrected.introduction.clone();
    expected.website_url = corrected.website_url.clone();
    assert_eq!(resubmitted.state, ApplicationState::Submitted as i32);
    assert_eq!(
        resubmitted.profile.as_ref().unwrap(),
        &expected,
        "exactly the masked fields changed"
    );
    assert!(resubmitted.changes_requested.is_none());
    assert_ne!(resubmitted.etag, before.etag);
    assert_eq!(resubmitted.entity, before.entity);
    assert_eq!(resubmitted.company_name, before.company_name);

    // The relay resumes the task; the application is in review again with the new deadline.
    let in_review = m
        .application_in(&app.name, ApplicationState::InReview)
        .await;
    assert_eq!(in_review.profile.as_ref().unwrap(), &expected);
    assert_eq!(
        m.task_of(&app.name).await.name,
        first.name,
        "the same task, resumed"
    );
    let task = m.review_task(&first.name).await;
    assert_eq!(task.state, ReviewTaskState::Queued as i32);
    assert!(task.assignee.is_empty() && task.paused_since.is_none());
    let resumed_at = at(&task.submit_time);
    assert!(resumed_at >= paused, "{resumed_at} < {paused}");
    let paused_for = task.paused_duration.unwrap();
    assert!(
        paused_for.seconds > 0 || paused_for.nanos > 0,
        "{paused_for:?}"
    );
    // Review's rule: the working time left (72 hours minus what was used before the pause),
    // counted from the resubmission; so the deadline moves later by the working time the task
    // waited, never earlier.
    let used =
        calendar.working_time_between(calendar.effective_start(at(&first.submit_time)), paused);
    let deadline = at(&task.deadline);
    assert_eq!(
        deadline,
        calendar.resume_deadline(resumed_at, chrono::Duration::hours(72) - used)
    );
    assert!(deadline >= first_deadline, "{deadline} < {first_deadline}");
    assert_eq!(at(&in_review.review_deadline), deadline);
    let reviewed = task.profile.unwrap();
    assert_eq!(reviewed.introduction, expected.introduction);
    assert_eq!(reviewed.website_url, expected.website_url);
    assert_eq!(reviewed.industry, expected.industry);
    assert_eq!(reviewed.logo_sha256, expected.logo_sha256);
    m.wait_notified(account, NotificationEventType::ApplicationResubmitted)
        .await;

    // The reviewer approves: the seller has the resubmitted profile.
    m.decide(&app.name, true).await;
    let approved = m
        .application_in(&app.name, ApplicationState::Approved)
        .await;
    let seller = m
        .reg()
        .await
        .get_seller(m.operator(GetSellerRequest {
            name: approved.seller.clone(),
        }))
        .await
        .unwrap()
        .into_inner()
        .seller
        .unwrap();
    assert_eq!(seller.profile.unwrap(), expected);
    m.wait_notified(account, NotificationEventType::ApplicationApproved)
        .await;
    m.stop().await;
}

/// Must-show 2: the refusals, and idempotency on request_id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resubmission_refusals_and_idempotency() {
    let m = Mesh::start_with(Some(SECRET)).await;
    let account = "acct-resubmit-2";
    let app = m.submitted(account, 702).await;
    let mut reg = m.reg().await;
    let mut corrected = app.profile.clone().unwrap();
    corrected.introduction = "Example Software builds cloud tools, now described in full.".into();

    // Only CHANGES_REQUESTED can be resubmitted.
    let err = reg
        .resubmit_application(m.applicant(
            resubmission(&app, corrected.clone(), &["introduction"]),
            account,
        ))
        .await
        .unwrap_err();
    let d = expect_error(err, Code::FailedPrecondition, "INVALID_APPLICATION_STATE");
    assert_eq!(
        d.metadata.get("state").map(String::as_str),
        Some("IN_REVIEW")
    );

    let (_, before) = m.request_changes(&app.name).await;

    // Another applicant's application does not exist for them.
    m.import(fixtures::eligible_account("acct-resubmit-other"))
        .await;
    let err = reg
        .resubmit_application(m.applicant(
            resubmission(&before, corrected.clone(), &["introduction"]),
            "acct-resubmit-other",
        ))
        .await
        .unwrap_err();
    expect_error(err, Code::NotFound, "APPLICATION_NOT_FOUND");

    // Unknown and output-only mask paths.
    for paths in [&["entity"][..], &["logo_sha256"], &["introduction", "nope"]] {
        let err = reg
            .resubmit_application(
                m.applicant(resubmission(&before, corrected.clone(), paths), account),
            )
            .await
            .unwrap_err();
        expect_error(err, Code::InvalidArgument, "INVALID_UPDATE_MASK");
    }
    // An empty mask replaces the whole profile (per the proto): a partial profile then empties
    // required materials and is refused field by field.
    let partial = SellerProfile {
        introduction: corrected.introduction.clone(),
        ..Default::default()
    };
    let err = reg
        .resubmit_application(m.applicant(resubmission(&before, partial, &[]), account))
        .await
        .unwrap_err();
    let d = expect_error(err, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert!(
        d.field_violations
            .iter()
            .any(|(field, why)| field == "profile.website_url" && why.starts_with("FIELD_REQUIRED")),
        "{d:?}"
    );

    // A failing material (a Chinese website) is refused as at submission; nothing changes.
    let mut chinese = corrected.clone();
    chinese.website_url = m.website.url("/zh");
    let err = reg
        .resubmit_application(m.applicant(
            resubmission(&before, chinese, &["introduction", "website_url"]),
            account,
        ))
        .await
        .unwrap_err();
    let d = expect_error(err, Code::InvalidArgument, "MATERIALS_CHECK_FAILED");
    assert!(
        d.field_violations
            .iter()
            .any(|(field, _)| field == "profile.website_url"),
        "{d:?}"
    );
    // A stale etag is refused.
    let mut stale = resubmission(&before, corrected.clone(), &["introduction"]);
    stale.etag = "W/\"1\"".into();
    let err = reg
        .resubmit_application(m.applicant(stale, account))
        .await
        .unwrap_err();
    expect_error(err, Code::Aborted, "ETAG_MISMATCH");
    let unchanged = m.application(&app.name).await;
    assert_eq!(unchanged, before, "nothing changed");

    // The same request_id replayed returns the first result; a changed body is refused.
    let request = resubmission(&before, corrected.clone(), &["introduction"]);
    let first = reg
        .resubmit_application(m.applicant(request.clone(), account))
        .await
        .unwrap()
        .into_inner()
        .application
        .unwrap();
    assert_eq!(first.state, ApplicationState::Submitted as i32);
    assert_eq!(
        first.profile.as_ref().unwrap().introduction,
        corrected.introduction
    );
    let replay = reg
        .resubmit_application(m.applicant(request.clone(), account))
        .await
        .unwrap()
        .into_inner()
        .application
        .unwrap();
    assert_eq!(replay.name, first.name);
    assert_eq!(replay.profile, first.profile);
    assert!(
        replay.state == ApplicationState::Submitted as i32
            || replay.state == ApplicationState::InReview as i32,
        "{:?}",
        replay.state
    );
    // Another applicant replaying the key learns nothing.
    let err = reg
        .resubmit_application(m.applicant(request.clone(), "acct-resubmit-other"))
        .await
        .unwrap_err();
    expect_error(err, Code::NotFound, "APPLICATION_NOT_FOUND");
    let mut changed = request.clone();
    changed.profile.as_mut().unwrap().introduction = "Another body under the same key.".into();
    let err = reg
        .resubmit_application(m.applicant(changed, account))
        .await
        .unwrap_err();
    expect_error(err, Code::InvalidArgument, "IDEMPOTENCY_KEY_REUSED");
    // A second resubmission (new key) finds the application back in review.
    let err = reg
        .resubmit_application(m.applicant(
            resubmission(&before, corrected.clone(), &["introduction"]),
            account,
        ))
        .await
        .unwrap_err();
    expect_error(err, Code::FailedPrecondition, "INVALID_APPLICATION_STATE");

    // Exactly one resubmission happened: one notification, the task resumed once.
    let in_review = m
        .application_in(&app.name, ApplicationState::InReview)
        .await;
    assert_eq!(
        in_review.profile.unwrap().introduction,
        corrected.introduction
    );
    m.wait_notified(account, NotificationEventType::ApplicationResubmitted)
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        m.count_notified(account, NotificationEventType::ApplicationResubmitted)
            .await,
        1
    );
    let task = m.task_of(&app.name).await;
    assert_eq!(task.state, ReviewTaskState::Queued as i32);
    m.stop().await;
}
