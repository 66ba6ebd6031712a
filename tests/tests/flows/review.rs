//! ReviewService over real gRPC, with authentication on (reviewers, operators and services each
//! with their own token): deadlines on the working calendar, the queue's order, filters and
//! pages, one claim at a time, exactly one decision under concurrency with exactly one outbox
//! event, no self-review, the rejection-reason catalogue, the clock stopped by RequestChanges
//! and resumed by ResumeReviewTask, cancellation, idempotency by event id and request id, the
//! append-only audit trail, hostile input, RerunChecks through identity-check, the gauges, and a
//! decision delivered to the real registration service.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use kg_proto::common::{CheckEvidence, CheckOutcome, CompanyEntity, ReviewDecision};
use kg_proto::review::review_service_client::ReviewServiceClient;
use kg_proto::review::*;
use kg_review::calendar::WorkingCalendar;
use kg_runtime::auth::{Authenticator, DEFAULT_AUDIENCE, DEFAULT_ISSUER, Role};
use kg_runtime::error::DecodedError;
use kg_tests::fixtures;
use kg_tests::mesh::{self, Running, TestDb};
use kg_tests::poll;
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Query};
use sea_orm::{ConnectionTrait, DatabaseConnection};
use tonic::Code;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

const SECRET: &str = "review-tests-secret-0123456789abcdef-xyz";
/// Nothing listens on port 9: decisions stay in the outbox, RerunChecks is UNAVAILABLE.
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

struct Env {
    review: Running,
    db: TestDb,
    auth: Authenticator,
    channel: Channel,
}

impl Env {
    async fn start() -> Env {
        Env::start_with(|_| {}).await
    }

    async fn start_with(adjust: impl FnOnce(&mut kg_review::Config)) -> Env {
        let db = mesh::fresh_db().await.unwrap();
        let mut config = mesh::review_config(&db.url, NOWHERE, NOWHERE);
        config.common.jwt_secret = Some(SECRET.into());
        adjust(&mut config);
        let review = mesh::start_review_with(config).await.unwrap();
        Env {
            channel: review.channel().await.unwrap(),
            review,
            db,
            auth: Authenticator::hs256(SECRET.as_bytes(), DEFAULT_ISSUER, DEFAULT_AUDIENCE),
        }
    }

    fn client(&self, subject: &str, role: Role) -> Client {
        let token = self.auth.mint(subject, role, Duration::from_secs(3600));
        let value: MetadataValue<Ascii> = format!("Bearer {token}").parse().unwrap();
        ReviewServiceClient::with_interceptor(self.channel.clone(), Bearer(value))
    }

    /// registration's outbox relay, as review sees it.
    fn service(&self) -> Client {
        self.client("registration", Role::Service)
    }

    fn reviewer(&self, subject: &str) -> Client {
        self.client(subject, Role::Reviewer)
    }

    fn operator(&self, subject: &str) -> Client {
        self.client(subject, Role::Operator)
    }

    async fn database(&self) -> DatabaseConnection {
        kg_runtime::db::connect(&self.db.url).await.unwrap()
    }

    async fn create(&self, request: CreateReviewTaskRequest) -> ReviewTask {
        self.service()
            .create_review_task(request)
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

fn rid() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn ts(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    }
}

fn at(t: &Option<prost_types::Timestamp>) -> DateTime<Utc> {
    let t = t.as_ref().expect("a timestamp");
    DateTime::from_timestamp(t.seconds, t.nanos as u32).unwrap()
}

/// A Beijing wall time, for example "2026-11-20T10:00:00".
fn beijing(local: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(&format!("{local}+08:00"))
        .unwrap()
        .to_utc()
}

fn application() -> String {
    format!("applications/{}", uuid::Uuid::new_v4())
}

fn modification() -> String {
    format!(
        "sellers/{}/modificationRequests/{}",
        uuid::Uuid::new_v4(),
        uuid::Uuid::new_v4()
    )
}

fn evidence() -> CheckEvidence {
    CheckEvidence {
        outcome: CheckOutcome::Passed as i32,
        ..Default::default()
    }
}

/// What registration's relay sends for a subject submitted at `submitted`.
fn creation(subject: &str, account: &str, submitted: DateTime<Utc>) -> CreateReviewTaskRequest {
    let kind = if subject.starts_with("applications/") {
        SubjectKind::Application
    } else {
        SubjectKind::ModificationRequest
    };
    CreateReviewTaskRequest {
        event_id: rid(),
        subject: subject.to_string(),
        subject_kind: kind as i32,
        account_id: account.to_string(),
        company_name: format!("Fuzhou {account} Software Co., Ltd."),
        entity: Some(fixtures::entity(submitted.timestamp() as u64 % 1_000_000)),
        submit_time: Some(ts(submitted)),
        evidence: Some(evidence()),
        profile: Some(fixtures::profile("https://example.com/en")),
        previous_company_name: String::new(),
    }
}

/// Unpadded base64url, for forging page tokens.
fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

fn decoded(status: &tonic::Status) -> DecodedError {
    DecodedError::from_status(status)
}

/// Asserts the code and the ErrorInfo reason of an error.
#[track_caller]
fn expect<T: std::fmt::Debug>(
    result: Result<T, tonic::Status>,
    code: Code,
    reason: &str,
) -> DecodedError {
    let status = result.expect_err("an error");
    assert_eq!(status.code(), code, "{status:?}");
    let d = decoded(&status);
    assert_eq!(d.reason.as_deref(), Some(reason), "{status:?}");
    d
}

async fn claim(client: &mut Client, task: &ReviewTask) -> Result<ReviewTask, tonic::Status> {
    client
        .claim_review_task(ClaimReviewTaskRequest {
            request_id: rid(),
            name: task.name.clone(),
            etag: String::new(),
        })
        .await
        .map(|r| r.into_inner().review_task.unwrap())
}

async fn approve(client: &mut Client, task: &ReviewTask) -> Result<ReviewTask, tonic::Status> {
    client
        .approve_review_task(ApproveReviewTaskRequest {
            request_id: rid(),
            name: task.name.clone(),
            comment: "Welcome to KooGallery.".into(),
            etag: String::new(),
        })
        .await
        .map(|r| r.into_inner().review_task.unwrap())
}

fn rejection(task: &ReviewTask, codes: &[&str], comment: &str) -> RejectReviewTaskRequest {
    RejectReviewTaskRequest {
        request_id: rid(),
        name: task.name.clone(),
        reason_codes: codes.iter().map(|c| c.to_string()).collect(),
        comment: comment.to_string(),
        etag: String::new(),
    }
}

fn changes(task: &ReviewTask, codes: &[&str], comment: &str) -> RequestChangesRequest {
    RequestChangesRequest {
        request_id: rid(),
        name: task.name.clone(),
        reason_codes: codes.iter().map(|c| c.to_string()).collect(),
        comment: comment.to_string(),
        etag: String::new(),
    }
}

async fn get(client: &mut Client, name: &str) -> ReviewTask {
    client
        .get_review_task(GetReviewTaskRequest { name: name.into() })
        .await
        .unwrap()
        .into_inner()
        .review_task
        .unwrap()
}

async fn audit(client: &mut Client, parent: &str) -> Vec<AuditEntry> {
    let mut out = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .list_audit_entries(ListAuditEntriesRequest {
                parent: parent.into(),
                page_size: 3,
                page_token: token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        out.extend(page.audit_entries);
        if page.next_page_token.is_empty() {
            return out;
        }
        token = page.next_page_token;
    }
}

fn actions(entries: &[AuditEntry]) -> Vec<AuditAction> {
    entries
        .iter()
        .map(|e| AuditAction::try_from(e.action).unwrap())
        .collect()
}

/// The outbox events of a subject: `(event_type, payload)`.
async fn outbox(db: &DatabaseConnection, subject: &str) -> Vec<(String, serde_json::Value)> {
    let select = Query::select()
        .columns(["event_type", "payload", "destination"].map(Alias::new))
        .from(Alias::new("review_outbox"))
        .and_where(Expr::col(Alias::new("subject")).eq(subject))
        .to_owned();
    db.query_all(&select)
        .await
        .unwrap()
        .iter()
        .map(|row| {
            assert_eq!(
                row.try_get::<String>("", "destination").unwrap(),
                "registration"
            );
            (
                row.try_get("", "event_type").unwrap(),
                row.try_get("", "payload").unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_task_is_due_three_working_days_after_submission() {
    let env = Env::start().await;
    let calendar = WorkingCalendar::china();
    let cases = [
        // Friday 10:00 → Wednesday 10:00
        ("2026-11-20T10:00:00", "2026-11-25T10:00:00"),
        // Monday 10:00 → Thursday 10:00
        ("2026-11-16T10:00:00", "2026-11-19T10:00:00"),
        // Friday 18:00, after the 17:30 cut-off → counts from Monday → Thursday 00:00
        ("2026-11-20T18:00:00", "2026-11-26T00:00:00"),
        // Saturday → the end of Wednesday
        ("2026-11-21T15:00:00", "2026-11-26T00:00:00"),
        // Wednesday before National Day (1–7 October): Wed 8 h, Thu 8th, Fri 9th, make-up Sat 10th
        ("2026-09-30T16:00:00", "2026-10-10T16:00:00"),
    ];
    for (submitted, due) in cases {
        let submitted = beijing(submitted);
        assert_eq!(calendar.deadline(submitted, 3), beijing(due));
        let request = creation(&application(), "acct-deadline", submitted);
        let reply = env
            .service()
            .create_review_task(request.clone())
            .await
            .unwrap()
            .into_inner();
        assert!(reply.created);
        let task = reply.review_task.unwrap();
        assert_eq!(at(&task.deadline), beijing(due), "{submitted}");
        assert_eq!(at(&task.submit_time), submitted);
        assert_eq!(task.state, ReviewTaskState::Queued as i32);
        assert_eq!(task.overdue, beijing(due) < Utc::now());
        assert!(task.assignee.is_empty() && task.decision.is_none());
        assert!(task.name.starts_with("reviewTasks/"));
        assert_eq!(task.subject, request.subject);
        assert_eq!(task.subject_kind, SubjectKind::Application as i32);
        assert_eq!(task.entity, request.entity);
        assert_eq!(task.evidence, Some(evidence()));
        // The profile comes back without the logo bytes, with their hash.
        let profile = task.profile.clone().unwrap();
        assert!(profile.logo.is_empty());
        assert_eq!(profile.logo_sha256.len(), 64);
        assert_eq!(
            profile.website_url,
            request.profile.as_ref().unwrap().website_url
        );
        assert!(!task.etag.is_empty());

        let mut reviewer = env.reviewer("reviewer-1");
        assert_eq!(get(&mut reviewer, &task.name).await, task);
        let entries = audit(&mut reviewer, &task.name).await;
        assert_eq!(actions(&entries), vec![AuditAction::Created]);
        let created = &entries[0];
        assert_eq!(created.actor, "registration");
        assert_eq!(created.actor_role, ActorRole::Service as i32);
        assert_eq!(created.before_state, ReviewTaskState::Unspecified as i32);
        assert_eq!(created.after_state, ReviewTaskState::Queued as i32);
        assert_eq!(created.request_id, request.event_id);
        assert_eq!(created.subject, request.subject);
        assert_eq!(created.task, task.name);
    }
    env.stop().await;
}

#[tokio::test]
async fn the_queue_is_ordered_by_deadline_with_filters_and_pages() {
    let env = Env::start().await;
    let calendar = WorkingCalendar::china();
    let mut service = env.service();
    let mut reviewer = env.reviewer("reviewer-q");
    let now = DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap();
    let specs = [
        ("a", application(), "acct-1", beijing("2026-11-20T10:00:00")),
        ("b", application(), "acct-2", beijing("2026-11-16T10:00:00")),
        (
            "c",
            modification(),
            "acct-3",
            beijing("2026-11-20T10:00:00"),
        ),
        (
            "d",
            application(),
            "acct-1",
            now - chrono::Duration::minutes(5),
        ),
        (
            "e",
            modification(),
            "acct-4",
            beijing("2026-11-17T09:00:00"),
        ),
        (
            "f",
            application(),
            "acct-5",
            now - chrono::Duration::minutes(5),
        ),
        (
            "g",
            application(),
            "acct-6",
            now - chrono::Duration::minutes(5),
        ),
    ];
    let mut tasks = std::collections::HashMap::new();
    for (key, subject, account, submitted) in &specs {
        let task = env.create(creation(subject, account, *submitted)).await;
        assert_eq!(at(&task.deadline), calendar.deadline(*submitted, 3));
        tasks.insert(*key, task);
    }
    // f waits on the applicant (no deadline: last), g is cancelled (not open: not listed).
    let mut other = env.reviewer("reviewer-other");
    claim(&mut other, &tasks["f"]).await.unwrap();
    other
        .request_changes(changes(
            &tasks["f"],
            &["LOGO_UNCLEAR"],
            "A clearer logo, please.",
        ))
        .await
        .unwrap();
    service
        .cancel_review_task(CancelReviewTaskRequest {
            event_id: rid(),
            subject: tasks["g"].subject.clone(),
            reason: "withdrawn".into(),
        })
        .await
        .unwrap();

    // Expected order: deadline, then name (ties: a and c).
    let mut open: Vec<&ReviewTask> = ["a", "b", "c", "d", "e"]
        .iter()
        .map(|k| &tasks[k])
        .collect();
    open.sort_by_key(|t| (at(&t.deadline), t.name.clone()));
    let mut expected: Vec<String> = open.iter().map(|t| t.name.clone()).collect();
    expected.push(tasks["f"].name.clone());

    let list = |client: &mut Client, request: ListReviewTasksRequest| {
        let mut client = client.clone();
        async move {
            let mut names = Vec::new();
            let mut request = request;
            loop {
                let page = client
                    .list_review_tasks(request.clone())
                    .await
                    .unwrap()
                    .into_inner();
                names.push((page.review_tasks, page.total_size));
                if page.next_page_token.is_empty() {
                    break;
                }
                request.page_token = page.next_page_token;
            }
            names
        }
    };
    let pages = list(
        &mut reviewer,
        ListReviewTasksRequest {
            page_size: 2,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(pages.len(), 3);
    assert!(pages.iter().all(|(_, total)| *total == 6));
    let names: Vec<String> = pages
        .iter()
        .flat_map(|(tasks, _)| tasks.iter().map(|t| t.name.clone()))
        .collect();
    assert_eq!(names, expected);
    let waiting = pages.last().unwrap().0.last().unwrap();
    assert_eq!(waiting.state, ReviewTaskState::WaitingOnApplicant as i32);
    assert!(waiting.deadline.is_none() && waiting.paused_since.is_some());

    let names_of = |request: ListReviewTasksRequest| {
        let mut client = reviewer.clone();
        async move {
            let page = client
                .list_review_tasks(request)
                .await
                .unwrap()
                .into_inner();
            assert!(page.next_page_token.is_empty());
            assert_eq!(page.total_size as usize, page.review_tasks.len());
            page.review_tasks
                .into_iter()
                .map(|t| t.name)
                .collect::<Vec<_>>()
        }
    };
    let names_in = |keys: &[&str]| {
        let mut picked: Vec<&ReviewTask> = keys.iter().map(|k| &tasks[k]).collect();
        picked.sort_by_key(|t| (t.deadline.map(|_| at(&t.deadline)), t.name.clone()));
        picked.iter().map(|t| t.name.clone()).collect::<Vec<_>>()
    };
    assert_eq!(
        names_of(ListReviewTasksRequest {
            subject_kinds: vec![SubjectKind::ModificationRequest as i32],
            ..Default::default()
        })
        .await,
        names_in(&["c", "e"])
    );
    assert_eq!(
        names_of(ListReviewTasksRequest {
            account_id: "acct-1".into(),
            ..Default::default()
        })
        .await,
        names_in(&["a", "d"])
    );
    assert_eq!(
        names_of(ListReviewTasksRequest {
            subject: tasks["b"].subject.clone(),
            ..Default::default()
        })
        .await,
        vec![tasks["b"].name.clone()]
    );
    let overdue: Vec<&str> = ["a", "b", "c", "d", "e"]
        .into_iter()
        .filter(|k| at(&tasks[k].deadline) < Utc::now())
        .collect();
    assert!(overdue.len() >= 3, "the fixed November tasks are overdue");
    let listed = names_of(ListReviewTasksRequest {
        overdue_only: true,
        ..Default::default()
    })
    .await;
    assert_eq!(listed, names_in(&overdue));
    assert_eq!(
        names_of(ListReviewTasksRequest {
            states: vec![ReviewTaskState::Cancelled as i32],
            ..Default::default()
        })
        .await,
        vec![tasks["g"].name.clone()]
    );
    assert_eq!(
        names_of(ListReviewTasksRequest {
            states: vec![
                ReviewTaskState::WaitingOnApplicant as i32,
                ReviewTaskState::Cancelled as i32
            ],
            ..Default::default()
        })
        .await,
        names_in(&["f", "g"])
    );
    // "me": the caller's claims.
    claim(&mut reviewer.clone(), &tasks["e"]).await.unwrap();
    let mine = names_of(ListReviewTasksRequest {
        assignee: "me".into(),
        ..Default::default()
    })
    .await;
    assert_eq!(mine, vec![tasks["e"].name.clone()]);
    assert_eq!(
        names_of(ListReviewTasksRequest {
            assignee: "reviewer-q".into(),
            states: vec![ReviewTaskState::Claimed as i32],
            ..Default::default()
        })
        .await,
        mine
    );

    // A page token belongs to the filters it was made for.
    let first = reviewer
        .list_review_tasks(ListReviewTasksRequest {
            page_size: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!first.next_page_token.is_empty());
    expect(
        reviewer
            .list_review_tasks(ListReviewTasksRequest {
                page_size: 1,
                page_token: first.next_page_token.clone(),
                account_id: "acct-1".into(),
                ..Default::default()
            })
            .await,
        Code::InvalidArgument,
        "INVALID_PAGE_TOKEN",
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_reviewer_holds_a_task_at_a_time() {
    let env = Env::start().await;
    let task = env
        .create(creation(&application(), "acct-claims", Utc::now()))
        .await;
    let mut a = env.reviewer("reviewer-a");
    let mut b = env.reviewer("reviewer-b");

    let claimed = claim(&mut a, &task).await.unwrap();
    assert_eq!(claimed.state, ReviewTaskState::Claimed as i32);
    assert_eq!(claimed.assignee, "reviewer-a");
    assert!(claimed.claim_time.is_some());
    assert_ne!(claimed.etag, task.etag);
    // Claiming a task one holds succeeds and changes nothing.
    assert_eq!(claim(&mut a, &task).await.unwrap(), claimed);

    let d = expect(
        claim(&mut b, &task).await,
        Code::FailedPrecondition,
        "TASK_CLAIMED_BY_OTHER",
    );
    assert_eq!(
        d.metadata.get("assignee").map(String::as_str),
        Some("reviewer-a")
    );
    expect(
        approve(&mut b, &task).await,
        Code::FailedPrecondition,
        "TASK_CLAIMED_BY_OTHER",
    );
    let release = |name: &str| ReleaseReviewTaskRequest {
        request_id: rid(),
        name: name.to_string(),
        comment: "handing over".into(),
        etag: String::new(),
    };
    expect(
        b.release_review_task(release(&task.name)).await,
        Code::PermissionDenied,
        "TASK_CLAIMED_BY_OTHER",
    );
    // Operators may release anyone's claim.
    let released = env
        .operator("operator-1")
        .release_review_task(release(&task.name))
        .await
        .unwrap()
        .into_inner()
        .review_task
        .unwrap();
    assert_eq!(released.state, ReviewTaskState::Queued as i32);
    assert!(released.assignee.is_empty() && released.claim_time.is_none());
    expect(
        b.release_review_task(release(&task.name)).await,
        Code::FailedPrecondition,
        "TASK_NOT_CLAIMED",
    );
    expect(
        approve(&mut a, &task).await,
        Code::FailedPrecondition,
        "TASK_NOT_CLAIMED",
    );
    // A stale etag: the task changed since it was read.
    expect(
        b.claim_review_task(ClaimReviewTaskRequest {
            request_id: rid(),
            name: task.name.clone(),
            etag: claimed.etag.clone(),
        })
        .await,
        Code::Aborted,
        "ETAG_MISMATCH",
    );
    let by_b = b
        .claim_review_task(ClaimReviewTaskRequest {
            request_id: rid(),
            name: task.name.clone(),
            etag: released.etag.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .review_task
        .unwrap();
    assert_eq!(by_b.assignee, "reviewer-b");
    // The assignee releases its own claim.
    b.release_review_task(release(&task.name)).await.unwrap();

    // Twenty reviewers claim one task at once: one wins.
    let fresh = env
        .create(creation(&application(), "acct-race", Utc::now()))
        .await;
    let mut racers = Vec::new();
    for i in 0..20 {
        let mut client = env.reviewer(&format!("racer-{i}"));
        let fresh = fresh.clone();
        racers.push(tokio::spawn(
            async move { claim(&mut client, &fresh).await },
        ));
    }
    let mut winners = Vec::new();
    for racer in racers {
        match racer.await.unwrap() {
            Ok(task) => winners.push(task.assignee),
            Err(status) => {
                assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
                assert_eq!(
                    decoded(&status).reason.as_deref(),
                    Some("TASK_CLAIMED_BY_OTHER")
                );
            }
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    let now = get(&mut a, &fresh.name).await;
    assert_eq!(now.assignee, winners[0]);
    let claims = audit(&mut a, &fresh.name).await;
    assert_eq!(
        actions(&claims),
        vec![AuditAction::Created, AuditAction::Claimed]
    );
    assert_eq!(claims[1].actor, winners[0]);

    // Roles: applicants have no access; reviewers cannot create tasks.
    let mut applicant = env.client("acct-claims", Role::Applicant);
    expect(
        applicant
            .get_review_task(GetReviewTaskRequest {
                name: task.name.clone(),
            })
            .await,
        Code::PermissionDenied,
        "ROLE_NOT_ALLOWED",
    );
    expect(
        a.create_review_task(creation(&application(), "acct-x", Utc::now()))
            .await,
        Code::PermissionDenied,
        "ROLE_NOT_ALLOWED",
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_decisions_make_exactly_one_decision_and_one_outbox_event() {
    let env = Env::start().await;
    let db = env.database().await;
    for round in 0..3 {
        let task = env
            .create(creation(
                &application(),
                &format!("acct-dec-{round}"),
                Utc::now(),
            ))
            .await;
        let mut a = env.reviewer("reviewer-a");
        claim(&mut a, &task).await.unwrap();
        let mut racers = Vec::new();
        for i in 0..24 {
            let mut client = if i % 6 == 5 {
                env.reviewer("reviewer-b")
            } else {
                a.clone()
            };
            let task = task.clone();
            racers.push(tokio::spawn(async move {
                match i % 3 {
                    0 => approve(&mut client, &task).await,
                    1 => client
                        .reject_review_task(rejection(
                            &task,
                            &["WEBSITE_NOT_ENGLISH"],
                            "The website must be in English.",
                        ))
                        .await
                        .map(|r| r.into_inner().review_task.unwrap()),
                    _ => client
                        .request_changes(changes(
                            &task,
                            &["LOGO_UNCLEAR", "MATERIALS_INCOMPLETE"],
                            "Upload a clear logo.",
                        ))
                        .await
                        .map(|r| r.into_inner().review_task.unwrap()),
                }
            }));
        }
        let mut decided = Vec::new();
        for racer in racers {
            match racer.await.unwrap() {
                Ok(task) => decided.push(task),
                Err(status) => {
                    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
                    let reason = decoded(&status).reason.unwrap();
                    assert!(
                        reason == "TASK_ALREADY_DECIDED" || reason == "TASK_CLAIMED_BY_OTHER",
                        "{reason}"
                    );
                }
            }
        }
        assert_eq!(decided.len(), 1, "exactly one decision");
        let winner = &decided[0];
        let decision = winner.decision.clone().unwrap();
        assert_eq!(decision.reviewer, "reviewer-a");
        assert!(decision.deliver_time.is_none());

        let events = outbox(&db, &task.subject).await;
        assert_eq!(events.len(), 1, "exactly one outbox event: {events:?}");
        let (event_type, payload) = &events[0];
        assert_eq!(event_type, "DECISION");
        let expected_decision = match ReviewTaskState::try_from(winner.state).unwrap() {
            ReviewTaskState::Approved => "APPROVE",
            ReviewTaskState::Rejected => "REJECT",
            ReviewTaskState::WaitingOnApplicant => "REQUEST_CHANGES",
            other => panic!("unexpected state {other:?}"),
        };
        assert_eq!(payload["decision"], expected_decision);
        assert_eq!(payload["subject"], task.subject);
        assert_eq!(payload["review_task"], task.name);
        assert_eq!(payload["reviewer"], "reviewer-a");
        assert_eq!(payload["comment"], decision.comment);
        assert_eq!(
            payload["reason_codes"],
            serde_json::json!(decision.reason_codes)
        );
        let decide_time =
            DateTime::parse_from_rfc3339(payload["decide_time"].as_str().unwrap()).unwrap();
        assert_eq!(decide_time.to_utc(), at(&decision.decide_time));
        assert_eq!(
            ReviewDecision::try_from(decision.outcome)
                .unwrap()
                .as_str_name(),
            format!("REVIEW_DECISION_{expected_decision}")
        );

        let entries = audit(&mut a, &task.name).await;
        let decisions: Vec<_> = actions(&entries)
            .into_iter()
            .filter(|a| {
                matches!(
                    a,
                    AuditAction::Approved | AuditAction::Rejected | AuditAction::ChangesRequested
                )
            })
            .collect();
        assert_eq!(decisions.len(), 1, "{entries:?}");
    }
    // Nothing listens for registration here: every decision is still in the outbox.
    assert_eq!(
        kg_runtime::outbox::backlog(&db, "review_outbox")
            .await
            .unwrap(),
        3
    );
    env.stop().await;
}

#[tokio::test]
async fn reviewers_never_review_their_own_account() {
    let env = Env::start().await;
    let task = env
        .create(creation(&application(), "staff-7", Utc::now()))
        .await;
    let mut own = env.reviewer("staff-7");
    expect(
        claim(&mut own, &task).await,
        Code::PermissionDenied,
        "SELF_REVIEW",
    );
    expect(
        env.operator("staff-7")
            .claim_review_task(ClaimReviewTaskRequest {
                request_id: rid(),
                name: task.name.clone(),
                etag: String::new(),
            })
            .await,
        Code::PermissionDenied,
        "SELF_REVIEW",
    );
    expect(
        approve(&mut own, &task).await,
        Code::PermissionDenied,
        "SELF_REVIEW",
    );
    expect(
        own.reject_review_task(rejection(&task, &["OTHER"], "no"))
            .await,
        Code::PermissionDenied,
        "SELF_REVIEW",
    );
    expect(
        own.request_changes(changes(&task, &["OTHER"], "no")).await,
        Code::PermissionDenied,
        "SELF_REVIEW",
    );
    expect(
        own.rerun_checks(RerunChecksRequest {
            name: task.name.clone(),
        })
        .await,
        Code::PermissionDenied,
        "SELF_REVIEW",
    );
    // Someone else reviews it; its account's staff member still cannot decide it.
    let mut other = env.reviewer("staff-8");
    claim(&mut other, &task).await.unwrap();
    expect(
        approve(&mut own, &task).await,
        Code::PermissionDenied,
        "SELF_REVIEW",
    );
    let approved = approve(&mut other, &task).await.unwrap();
    assert_eq!(approved.state, ReviewTaskState::Approved as i32);
    assert_eq!(
        approved.assignee, "staff-8",
        "kept as the deciding reviewer"
    );
    env.stop().await;
}

#[tokio::test]
async fn rejections_need_catalogue_reasons_and_a_comment() {
    let env = Env::start().await;
    let mut reviewer = env.reviewer("reviewer-r");

    // The catalogue: codes, English and Chinese titles, ordered by code, in pages.
    let all = reviewer
        .list_rejection_reasons(ListRejectionReasonsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(all.next_page_token.is_empty());
    let codes: Vec<&str> = all.reasons.iter().map(|r| r.code.as_str()).collect();
    for code in [
        "WEBSITE_NOT_ENGLISH",
        "WEBSITE_UNREACHABLE",
        "LOGO_UNCLEAR",
        "MATERIALS_INCOMPLETE",
        "COMPANY_INFO_MISMATCH",
        "BUSINESS_SCOPE_NOT_ALLOWED",
        "DUPLICATE_ENTITY",
        "OTHER",
    ] {
        assert!(codes.contains(&code), "{code} in {codes:?}");
    }
    let mut sorted = codes.clone();
    sorted.sort();
    assert_eq!(codes, sorted);
    assert!(all.reasons.iter().all(|r| !r.title_en.is_empty()
        && !r.title_zh.is_empty()
        && !r.description_en.is_empty()
        && !r.title_zh.is_ascii()));
    let mut paged = Vec::new();
    let mut token = String::new();
    loop {
        let page = reviewer
            .list_rejection_reasons(ListRejectionReasonsRequest {
                page_size: 5,
                page_token: token,
            })
            .await
            .unwrap()
            .into_inner();
        assert!(page.reasons.len() <= 5);
        paged.extend(page.reasons);
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(paged, all.reasons);

    let task = env
        .create(creation(&application(), "acct-reject", Utc::now()))
        .await;
    let claimed = claim(&mut reviewer, &task).await.unwrap();

    let d = expect(
        reviewer
            .reject_review_task(rejection(&task, &[], "Please fix."))
            .await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    assert_eq!(d.field_reasons(), vec!["REASON_CODES_MISSING"]);
    assert_eq!(d.field_violations[0].0, "reason_codes");
    let d = expect(
        reviewer
            .reject_review_task(rejection(&task, &["WEBSITE_NOT_ENGLISH"], "   "))
            .await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    assert_eq!(d.field_reasons(), vec!["COMMENT_MISSING"]);
    assert_eq!(d.field_violations[0].0, "comment");
    let d = expect(
        reviewer
            .reject_review_task(rejection(&task, &["OTHER", "NOT_A_REASON"], ""))
            .await,
        Code::InvalidArgument,
        "REJECTION_REASON_UNKNOWN",
    );
    assert_eq!(
        d.metadata.get("code").map(String::as_str),
        Some("NOT_A_REASON")
    );
    let mut reasons = d.field_reasons();
    reasons.sort();
    assert_eq!(reasons, vec!["COMMENT_MISSING", "REJECTION_REASON_UNKNOWN"]);
    assert!(
        d.field_violations
            .iter()
            .any(|(field, _)| field == "reason_codes[1]")
    );
    let d = expect(
        reviewer
            .reject_review_task(rejection(&task, &["OTHER"], &"x".repeat(2001)))
            .await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    assert_eq!(d.field_reasons(), vec!["COMMENT_TOO_LONG"]);
    let eleven = [
        "ADDRESS_INVALID",
        "BUSINESS_SCOPE_NOT_ALLOWED",
        "COMPANY_INFO_MISMATCH",
        "CONTACT_INVALID",
        "CUSTOMER_SERVICE_EMAIL_INVALID",
        "DUPLICATE_ENTITY",
        "INTRODUCTION_INADEQUATE",
        "LOGO_UNCLEAR",
        "MATERIALS_INCOMPLETE",
        "OTHER",
        "WEBSITE_UNREACHABLE",
    ];
    let d = expect(
        reviewer
            .reject_review_task(rejection(&task, &eleven, "too many"))
            .await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    assert_eq!(d.field_reasons(), vec!["TOO_MANY_REASON_CODES"]);
    let d = expect(
        reviewer
            .reject_review_task(rejection(&task, &["OTHER", "OTHER"], "twice"))
            .await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    assert_eq!(d.field_reasons(), vec!["REASON_CODE_DUPLICATE"]);
    expect(
        reviewer
            .request_changes(changes(&task, &["website_not_english"], "lower case"))
            .await,
        Code::InvalidArgument,
        "REJECTION_REASON_UNKNOWN",
    );
    let d = expect(
        reviewer
            .request_changes(changes(&task, &["OTHER"], ""))
            .await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    assert_eq!(d.field_reasons(), vec!["COMMENT_MISSING"]);
    let d = expect(
        reviewer
            .approve_review_task(ApproveReviewTaskRequest {
                request_id: rid(),
                name: task.name.clone(),
                comment: "x".repeat(2001),
                etag: String::new(),
            })
            .await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    assert_eq!(d.field_reasons(), vec!["COMMENT_TOO_LONG"]);
    // Nothing changed.
    assert_eq!(get(&mut reviewer, &task.name).await, claimed);

    let rejected = reviewer
        .reject_review_task(rejection(
            &task,
            &["WEBSITE_NOT_ENGLISH", "LOGO_UNCLEAR"],
            "  The website must serve English; the logo is blurred.  ",
        ))
        .await
        .unwrap()
        .into_inner()
        .review_task
        .unwrap();
    assert_eq!(rejected.state, ReviewTaskState::Rejected as i32);
    let decision = rejected.decision.unwrap();
    assert_eq!(decision.outcome, ReviewDecision::Reject as i32);
    assert_eq!(
        decision.reason_codes,
        vec!["WEBSITE_NOT_ENGLISH", "LOGO_UNCLEAR"]
    );
    assert_eq!(decision.reasons.len(), 2);
    assert_eq!(decision.reasons[0].code, "WEBSITE_NOT_ENGLISH");
    assert!(!decision.reasons[1].title_zh.is_empty());
    assert_eq!(
        decision.comment,
        "The website must serve English; the logo is blurred."
    );
    expect(
        approve(&mut reviewer, &task).await,
        Code::FailedPrecondition,
        "TASK_ALREADY_DECIDED",
    );
    env.stop().await;
}

/// A submission instant whose clock has run between 1 and 2 working hours by now, so that
/// RequestChanges now uses some working time (never a restart in disguise).
fn recent_submission(calendar: &WorkingCalendar) -> DateTime<Utc> {
    let now = Utc::now();
    let mut submitted = now;
    for _ in 0..(24 * 14) {
        submitted -= chrono::Duration::hours(1);
        let used = calendar.working_time_between(calendar.effective_start(submitted), now);
        if used >= chrono::Duration::hours(1) {
            return DateTime::from_timestamp(submitted.timestamp(), 0).unwrap();
        }
    }
    panic!("no working hour in two weeks");
}

#[tokio::test]
async fn request_changes_stops_the_clock_and_resume_continues_it() {
    let env = Env::start().await;
    let calendar = WorkingCalendar::china();
    let mut reviewer = env.reviewer("reviewer-c");
    let mut service = env.service();
    let db = env.database().await;

    let submitted = recent_submission(&calendar);
    let task = env
        .create(creation(&application(), "acct-changes", submitted))
        .await;
    assert_eq!(at(&task.deadline), calendar.deadline(submitted, 3));
    claim(&mut reviewer, &task).await.unwrap();
    let waiting = reviewer
        .request_changes(changes(
            &task,
            &["WEBSITE_NOT_ENGLISH"],
            "Please add an English version of the website.",
        ))
        .await
        .unwrap()
        .into_inner()
        .review_task
        .unwrap();
    assert_eq!(waiting.state, ReviewTaskState::WaitingOnApplicant as i32);
    assert!(waiting.deadline.is_none(), "the clock is stopped");
    assert!(!waiting.overdue);
    assert!(waiting.assignee.is_empty());
    let paused = at(&waiting.paused_since);
    assert_eq!(
        waiting.decision.as_ref().unwrap().outcome,
        ReviewDecision::RequestChanges as i32
    );
    let events = outbox(&db, &task.subject).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].1["decision"], "REQUEST_CHANGES");
    assert_eq!(
        events[0].1["reason_codes"],
        serde_json::json!(["WEBSITE_NOT_ENGLISH"])
    );

    // While it waits nobody decides it.
    expect(
        approve(&mut reviewer, &task).await,
        Code::FailedPrecondition,
        "TASK_ALREADY_DECIDED",
    );
    expect(
        claim(&mut reviewer, &task).await,
        Code::FailedPrecondition,
        "INVALID_TASK_STATE",
    );

    // The applicant resubmits 30 minutes later: the clock continues with what was left.
    let resubmitted = paused + chrono::Duration::minutes(30);
    let resume = ResumeReviewTaskRequest {
        event_id: rid(),
        subject: task.subject.clone(),
        resubmit_time: Some(ts(resubmitted)),
        evidence: Some(CheckEvidence {
            outcome: CheckOutcome::Warning as i32,
            ..Default::default()
        }),
        profile: Some(fixtures::profile("https://example.com/en-new")),
    };
    let resumed = service
        .resume_review_task(resume.clone())
        .await
        .unwrap()
        .into_inner()
        .review_task
        .unwrap();
    let used = calendar.working_time_between(calendar.effective_start(submitted), paused);
    assert!(used >= chrono::Duration::hours(1), "{used}");
    let expected = calendar.resume_deadline(resubmitted, chrono::Duration::hours(72) - used);
    assert_eq!(at(&resumed.deadline), expected);
    assert_ne!(
        at(&resumed.deadline),
        calendar.deadline(resubmitted, 3),
        "resumed, not restarted"
    );
    assert_eq!(resumed.state, ReviewTaskState::Queued as i32);
    assert!(resumed.paused_since.is_none() && resumed.assignee.is_empty());
    assert_eq!(at(&resumed.submit_time), resubmitted);
    assert_eq!(
        resumed.paused_duration,
        Some(prost_types::Duration {
            seconds: 1800,
            nanos: 0
        })
    );
    assert_eq!(
        resumed.evidence.as_ref().unwrap().outcome,
        CheckOutcome::Warning as i32
    );
    let profile = resumed.profile.clone().unwrap();
    assert_eq!(profile.website_url, "https://example.com/en-new");
    assert!(profile.logo.is_empty() && profile.logo_sha256.len() == 64);
    // The same event again: the same task, resumed once.
    let again = service
        .resume_review_task(resume.clone())
        .await
        .unwrap()
        .into_inner()
        .review_task
        .unwrap();
    assert_eq!(again.deadline, resumed.deadline);
    assert_eq!(again.etag, resumed.etag);
    expect(
        service
            .resume_review_task(ResumeReviewTaskRequest {
                event_id: rid(),
                ..resume.clone()
            })
            .await,
        Code::FailedPrecondition,
        "INVALID_TASK_STATE",
    );
    expect(
        service
            .resume_review_task(ResumeReviewTaskRequest {
                event_id: rid(),
                subject: application(),
                ..resume.clone()
            })
            .await,
        Code::NotFound,
        "REVIEW_TASK_NOT_FOUND",
    );

    // Stopped a second time: the second stretch adds to the first.
    claim(&mut reviewer, &task).await.unwrap();
    let second = reviewer
        .request_changes(changes(&task, &["LOGO_UNCLEAR"], "And the logo."))
        .await
        .unwrap()
        .into_inner()
        .review_task
        .unwrap();
    let paused_again = at(&second.paused_since);
    let used_again =
        used + calendar.working_time_between(calendar.effective_start(resubmitted), paused_again);
    let resubmitted_again = paused_again + chrono::Duration::minutes(5);
    let resumed_again = service
        .resume_review_task(ResumeReviewTaskRequest {
            event_id: rid(),
            subject: task.subject.clone(),
            resubmit_time: Some(ts(resubmitted_again)),
            evidence: None,
            profile: None,
        })
        .await
        .unwrap()
        .into_inner()
        .review_task
        .unwrap();
    assert_eq!(
        at(&resumed_again.deadline),
        calendar.resume_deadline(resubmitted_again, chrono::Duration::hours(72) - used_again)
    );
    assert_eq!(
        resumed_again.paused_duration,
        Some(prost_types::Duration {
            seconds: 1800 + 300,
            nanos: 0
        })
    );
    assert_eq!(
        resumed_again.profile, resumed.profile,
        "kept when not resent"
    );
    assert_eq!(outbox(&db, &task.subject).await.len(), 2);

    // Changes are for applications only.
    let modification_task = env
        .create(creation(&modification(), "acct-seller", Utc::now()))
        .await;
    claim(&mut reviewer, &modification_task).await.unwrap();
    expect(
        reviewer
            .request_changes(changes(&modification_task, &["OTHER"], "no"))
            .await,
        Code::FailedPrecondition,
        "CHANGES_NOT_ALLOWED",
    );
    env.stop().await;
}

#[tokio::test]
async fn cancelling_closes_an_open_task_once() {
    let env = Env::start().await;
    let mut service = env.service();
    let mut reviewer = env.reviewer("reviewer-x");

    let task = env
        .create(creation(&application(), "acct-cancel", Utc::now()))
        .await;
    claim(&mut reviewer, &task).await.unwrap();
    let cancel = CancelReviewTaskRequest {
        event_id: rid(),
        subject: task.subject.clone(),
        reason: "The applicant withdrew the application.".into(),
    };
    let first = service
        .cancel_review_task(cancel.clone())
        .await
        .unwrap()
        .into_inner();
    assert!(first.cancelled);
    let cancelled = first.review_task.unwrap();
    assert_eq!(cancelled.state, ReviewTaskState::Cancelled as i32);
    assert!(cancelled.deadline.is_none() && cancelled.assignee.is_empty());
    // The same event again: the same answer.
    let again = service
        .cancel_review_task(cancel.clone())
        .await
        .unwrap()
        .into_inner();
    assert!(again.cancelled);
    assert_eq!(again.review_task.unwrap().etag, cancelled.etag);
    // Another event: already final, not an error.
    let later = service
        .cancel_review_task(CancelReviewTaskRequest {
            event_id: rid(),
            ..cancel.clone()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!later.cancelled);
    assert_eq!(later.review_task.unwrap().etag, cancelled.etag);
    expect(
        service
            .cancel_review_task(CancelReviewTaskRequest {
                reason: "something else".into(),
                ..cancel.clone()
            })
            .await,
        Code::InvalidArgument,
        "IDEMPOTENCY_KEY_REUSED",
    );
    expect(
        approve(&mut reviewer, &task).await,
        Code::FailedPrecondition,
        "INVALID_TASK_STATE",
    );
    expect(
        claim(&mut reviewer, &task).await,
        Code::FailedPrecondition,
        "INVALID_TASK_STATE",
    );
    expect(
        service
            .cancel_review_task(CancelReviewTaskRequest {
                event_id: rid(),
                subject: application(),
                reason: String::new(),
            })
            .await,
        Code::NotFound,
        "REVIEW_TASK_NOT_FOUND",
    );
    let entries = audit(&mut reviewer, &task.name).await;
    assert_eq!(
        actions(&entries),
        vec![
            AuditAction::Created,
            AuditAction::Claimed,
            AuditAction::Cancelled
        ]
    );
    let last = entries.last().unwrap();
    assert_eq!(last.comment, cancel.reason);
    assert_eq!(last.request_id, cancel.event_id);
    assert_eq!(last.before_state, ReviewTaskState::Claimed as i32);
    assert_eq!(last.after_state, ReviewTaskState::Cancelled as i32);

    // A task waiting on the applicant is cancelled too, its pause closed.
    let waiting = env
        .create(creation(&application(), "acct-cancel-2", Utc::now()))
        .await;
    claim(&mut reviewer, &waiting).await.unwrap();
    reviewer
        .request_changes(changes(&waiting, &["OTHER"], "more"))
        .await
        .unwrap();
    let closed = service
        .cancel_review_task(CancelReviewTaskRequest {
            event_id: rid(),
            subject: waiting.subject.clone(),
            reason: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(closed.cancelled);
    let closed = closed.review_task.unwrap();
    assert!(closed.paused_since.is_none());
    assert!(closed.paused_duration.is_some());
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn creating_a_task_is_idempotent_on_the_event_id() {
    let env = Env::start().await;
    let mut service = env.service();
    let request = creation(&application(), "acct-idem", Utc::now());
    let first = service
        .create_review_task(request.clone())
        .await
        .unwrap()
        .into_inner();
    assert!(first.created);
    let second = service
        .create_review_task(request.clone())
        .await
        .unwrap()
        .into_inner();
    assert!(!second.created);
    assert_eq!(second.review_task, first.review_task);
    let name = first.review_task.unwrap().name;

    let d = expect(
        service
            .create_review_task(CreateReviewTaskRequest {
                company_name: "Another Co., Ltd.".into(),
                ..request.clone()
            })
            .await,
        Code::InvalidArgument,
        "IDEMPOTENCY_KEY_REUSED",
    );
    assert!(d.field_violations.is_empty());
    let d = expect(
        service
            .create_review_task(CreateReviewTaskRequest {
                event_id: rid(),
                ..request.clone()
            })
            .await,
        Code::AlreadyExists,
        "REVIEW_TASK_EXISTS",
    );
    assert_eq!(d.metadata.get("review_task"), Some(&name));

    // Twenty deliveries of one event at once: one task.
    let racing = creation(&application(), "acct-idem-race", Utc::now());
    let mut racers = Vec::new();
    for _ in 0..20 {
        let mut client = service.clone();
        let racing = racing.clone();
        racers.push(tokio::spawn(async move {
            client
                .create_review_task(racing)
                .await
                .map(|r| r.into_inner())
        }));
    }
    let mut created = 0;
    let mut names = HashSet::new();
    for racer in racers {
        let reply = racer.await.unwrap().unwrap();
        created += usize::from(reply.created);
        names.insert(reply.review_task.unwrap().name);
    }
    assert_eq!(created, 1);
    assert_eq!(names.len(), 1);
    let mut reviewer = env.reviewer("reviewer-i");
    let listed = reviewer
        .list_review_tasks(ListReviewTasksRequest {
            subject: racing.subject.clone(),
            states: vec![ReviewTaskState::Queued as i32],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.total_size, 1);
    let name = names.into_iter().next().unwrap();
    assert_eq!(
        actions(&audit(&mut reviewer, &name).await),
        vec![AuditAction::Created]
    );
    env.stop().await;
}

#[tokio::test]
async fn staff_mutations_are_idempotent_on_the_request_id() {
    let env = Env::start().await;
    let db = env.database().await;
    let mut reviewer = env.reviewer("reviewer-idem");
    let task = env
        .create(creation(&application(), "acct-req", Utc::now()))
        .await;
    claim(&mut reviewer, &task).await.unwrap();
    let request = ApproveReviewTaskRequest {
        request_id: rid(),
        name: task.name.clone(),
        comment: "Approved.".into(),
        etag: String::new(),
    };
    let first = reviewer
        .approve_review_task(request.clone())
        .await
        .unwrap()
        .into_inner();
    let second = reviewer
        .approve_review_task(request.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first, second);
    expect(
        reviewer
            .approve_review_task(ApproveReviewTaskRequest {
                comment: "Approved!".into(),
                ..request.clone()
            })
            .await,
        Code::InvalidArgument,
        "IDEMPOTENCY_KEY_REUSED",
    );
    // The same request id used by another reviewer is that reviewer's own key.
    expect(
        env.reviewer("reviewer-else")
            .approve_review_task(request.clone())
            .await,
        Code::FailedPrecondition,
        "TASK_ALREADY_DECIDED",
    );
    assert_eq!(outbox(&db, &task.subject).await.len(), 1);
    let approvals = actions(&audit(&mut reviewer, &task.name).await)
        .into_iter()
        .filter(|a| *a == AuditAction::Approved)
        .count();
    assert_eq!(approvals, 1);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_copies_of_one_approval_all_get_the_first_result() {
    let env = Env::start().await;
    let db = env.database().await;
    let mut reviewer = env.reviewer("reviewer-copies");
    let task = env
        .create(creation(&application(), "acct-copies", Utc::now()))
        .await;
    claim(&mut reviewer, &task).await.unwrap();
    // On PostgreSQL the copies are spread over three replicas of one database (SQLite serves
    // one process).
    let mut replicas = vec![reviewer.clone()];
    let mut others = Vec::new();
    if mesh::backend() == mesh::Backend::Postgres {
        for _ in 0..2 {
            let mut config = mesh::review_config(&env.db.url, NOWHERE, NOWHERE);
            config.common.jwt_secret = Some(SECRET.into());
            let replica = mesh::start_review_with(config).await.unwrap();
            let token = env
                .auth
                .mint("reviewer-copies", Role::Reviewer, Duration::from_secs(3600));
            let value: MetadataValue<Ascii> = format!("Bearer {token}").parse().unwrap();
            replicas.push(ReviewServiceClient::with_interceptor(
                replica.channel().await.unwrap(),
                Bearer(value),
            ));
            others.push(replica);
        }
    }
    let request = ApproveReviewTaskRequest {
        request_id: rid(),
        name: task.name.clone(),
        comment: "Approved.".into(),
        etag: String::new(),
    };
    let racers: Vec<_> = (0..30)
        .map(|i| {
            let mut client = replicas[i % replicas.len()].clone();
            let request = request.clone();
            tokio::spawn(async move { client.approve_review_task(request).await })
        })
        .collect();
    let mut answers = Vec::new();
    for racer in racers {
        let reply = racer
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("every copy succeeds: {e:?}"))
            .into_inner();
        answers.push(reply.review_task.unwrap());
    }
    for answer in &answers {
        assert_eq!(answer.state, ReviewTaskState::Approved as i32);
        assert_eq!(answer.decision, answers[0].decision, "one decision");
    }
    assert_eq!(outbox(&db, &task.subject).await.len(), 1);
    let approvals = actions(&audit(&mut reviewer, &task.name).await)
        .into_iter()
        .filter(|a| *a == AuditAction::Approved)
        .count();
    assert_eq!(approvals, 1, "one audit entry");
    for replica in others {
        replica.stop().await.unwrap();
    }
    env.stop().await;
}

#[tokio::test]
async fn the_audit_trail_records_every_action_in_order() {
    let env = Env::start().await;
    let mut service = env.service();
    let mut a = env.reviewer("reviewer-a");
    let mut b = env.reviewer("reviewer-b");
    let task = env
        .create(creation(&application(), "acct-audit", Utc::now()))
        .await;
    let claim_a = ClaimReviewTaskRequest {
        request_id: rid(),
        name: task.name.clone(),
        etag: String::new(),
    };
    a.claim_review_task(claim_a.clone()).await.unwrap();
    a.release_review_task(ReleaseReviewTaskRequest {
        request_id: rid(),
        name: task.name.clone(),
        comment: "Out for lunch".into(),
        etag: String::new(),
    })
    .await
    .unwrap();
    claim(&mut b, &task).await.unwrap();
    b.request_changes(changes(&task, &["LOGO_UNCLEAR"], "A sharper logo."))
        .await
        .unwrap();
    let resume_event = rid();
    service
        .resume_review_task(ResumeReviewTaskRequest {
            event_id: resume_event.clone(),
            subject: task.subject.clone(),
            resubmit_time: Some(ts(Utc::now())),
            evidence: Some(evidence()),
            profile: Some(fixtures::profile("https://example.com/en")),
        })
        .await
        .unwrap();
    claim(&mut a, &task).await.unwrap();
    a.reject_review_task(rejection(
        &task,
        &["DUPLICATE_ENTITY"],
        "This company is already a seller.",
    ))
    .await
    .unwrap();

    let entries = audit(&mut a, &task.name).await;
    use AuditAction as A;
    use ReviewTaskState as S;
    let expected = [
        (
            A::Created,
            "registration",
            ActorRole::Service,
            S::Unspecified,
            S::Queued,
        ),
        (
            A::Claimed,
            "reviewer-a",
            ActorRole::Reviewer,
            S::Queued,
            S::Claimed,
        ),
        (
            A::Released,
            "reviewer-a",
            ActorRole::Reviewer,
            S::Claimed,
            S::Queued,
        ),
        (
            A::Claimed,
            "reviewer-b",
            ActorRole::Reviewer,
            S::Queued,
            S::Claimed,
        ),
        (
            A::ChangesRequested,
            "reviewer-b",
            ActorRole::Reviewer,
            S::Claimed,
            S::WaitingOnApplicant,
        ),
        (
            A::Resumed,
            "registration",
            ActorRole::Service,
            S::WaitingOnApplicant,
            S::Queued,
        ),
        (
            A::Claimed,
            "reviewer-a",
            ActorRole::Reviewer,
            S::Queued,
            S::Claimed,
        ),
        (
            A::Rejected,
            "reviewer-a",
            ActorRole::Reviewer,
            S::Claimed,
            S::Rejected,
        ),
    ];
    assert_eq!(entries.len(), expected.len(), "{entries:#?}");
    for (entry, (action, actor, role, before, after)) in entries.iter().zip(expected) {
        assert_eq!(entry.action, action as i32, "{entry:?}");
        assert_eq!(entry.actor, actor, "{entry:?}");
        assert_eq!(entry.actor_role, role as i32, "{entry:?}");
        assert_eq!(entry.before_state, before as i32, "{entry:?}");
        assert_eq!(entry.after_state, after as i32, "{entry:?}");
        assert_eq!(entry.task, task.name);
        assert_eq!(entry.subject, task.subject);
        assert!(
            entry
                .name
                .starts_with(&format!("{}/auditEntries/", task.name))
        );
        assert!(!entry.request_id.is_empty());
    }
    assert!(
        entries
            .windows(2)
            .all(|w| at(&w[0].action_time) <= at(&w[1].action_time))
    );
    assert_eq!(entries[1].request_id, claim_a.request_id);
    assert_eq!(entries[2].comment, "Out for lunch");
    assert_eq!(entries[4].reason_codes, vec!["LOGO_UNCLEAR"]);
    assert_eq!(entries[5].request_id, resume_event);
    assert_eq!(entries[7].reason_codes, vec!["DUPLICATE_ENTITY"]);
    assert_eq!(entries[7].comment, "This company is already a seller.");

    // Across tasks, filtered.
    let other = env
        .create(creation(&application(), "acct-audit-2", Utc::now()))
        .await;
    claim(&mut b, &other).await.unwrap();
    let by_b = a
        .list_audit_entries(ListAuditEntriesRequest {
            parent: "reviewTasks/-".into(),
            actor: "reviewer-b".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .audit_entries;
    assert_eq!(
        actions(&by_b),
        vec![A::Claimed, A::ChangesRequested, A::Claimed]
    );
    assert_eq!(by_b[2].task, other.name);
    let claims = a
        .list_audit_entries(ListAuditEntriesRequest {
            parent: "reviewTasks/-".into(),
            actions: vec![A::Claimed as i32],
            start_time: Some(ts(at(&entries[3].action_time))),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .audit_entries;
    assert_eq!(claims.len(), 3);
    let before_end = a
        .list_audit_entries(ListAuditEntriesRequest {
            parent: task.name.clone(),
            end_time: Some(ts(at(&entries[1].action_time))),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .audit_entries;
    assert_eq!(actions(&before_end), vec![A::Created]);

    // Append-only, even for someone with the database password.
    let db = env.database().await;
    for sql in [
        "UPDATE review_audit SET actor = 'nobody'",
        "DELETE FROM review_audit",
    ] {
        assert!(db.execute_unprepared(sql).await.is_err(), "{sql}");
    }
    assert_eq!(audit(&mut a, &task.name).await, entries);
    env.stop().await;
}

#[tokio::test]
async fn hostile_input_gets_clear_errors_never_internal() {
    let env = Env::start().await;
    let mut reviewer = env.reviewer("reviewer-h");
    let mut service = env.service();
    let task = env
        .create(creation(&application(), "acct-hostile", Utc::now()))
        .await;
    let mut errors: Vec<tonic::Status> = Vec::new();

    let long = "x".repeat(100_000);
    for name in [
        "",
        "reviewTasks/",
        "reviewTasks/-",
        "reviewTasks/abc",
        "reviewTasks/../../etc/passwd",
        "reviewTasks/' OR 1=1 --",
        "reviewTasks/\u{0}",
        "applications/0192f0c8-7d2e-7cc1-9a57-3f2b8d0c6a11",
        long.as_str(),
    ] {
        let err = reviewer
            .get_review_task(GetReviewTaskRequest { name: name.into() })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{name:?}");
        let d = decoded(&err);
        assert_eq!(d.field_reasons(), vec!["NAME_INVALID"], "{name:?}");
        assert_eq!(d.field_violations[0].0, "name");
        errors.push(err);
        let err = claim(
            &mut reviewer,
            &ReviewTask {
                name: name.into(),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{name:?}");
        errors.push(err);
    }
    let unknown = "reviewTasks/00000000-0000-7000-8000-000000000000";
    expect(
        reviewer
            .get_review_task(GetReviewTaskRequest {
                name: unknown.into(),
            })
            .await,
        Code::NotFound,
        "REVIEW_TASK_NOT_FOUND",
    );
    expect(
        claim(
            &mut reviewer,
            &ReviewTask {
                name: unknown.into(),
                ..Default::default()
            },
        )
        .await,
        Code::NotFound,
        "REVIEW_TASK_NOT_FOUND",
    );
    expect(
        reviewer
            .list_audit_entries(ListAuditEntriesRequest {
                parent: unknown.into(),
                ..Default::default()
            })
            .await,
        Code::NotFound,
        "REVIEW_TASK_NOT_FOUND",
    );
    let d = expect(
        reviewer
            .list_audit_entries(ListAuditEntriesRequest {
                parent: "reviewTasks/*".into(),
                actions: vec![77],
                page_size: -1,
                ..Default::default()
            })
            .await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    let mut reasons = d.field_reasons();
    reasons.sort();
    assert_eq!(
        reasons,
        vec!["ACTION_INVALID", "NAME_INVALID", "PAGE_SIZE_INVALID"]
    );

    // Page tokens: garbage, tampered, oversized.
    let b64 = |s: &str| base64url(s.as_bytes());
    for token in [
        "!!!".to_string(),
        "bm90IGpzb24".to_string(),
        b64(r#"{"f":"0000","d":null,"i":"00000000-0000-7000-8000-000000000000"}"#),
        b64(r#"{"f":1}"#),
        "A".repeat(5000),
    ] {
        expect(
            reviewer
                .list_review_tasks(ListReviewTasksRequest {
                    page_token: token.clone(),
                    ..Default::default()
                })
                .await,
            Code::InvalidArgument,
            "INVALID_PAGE_TOKEN",
        );
        expect(
            reviewer
                .list_audit_entries(ListAuditEntriesRequest {
                    parent: "reviewTasks/-".into(),
                    page_token: token.clone(),
                    ..Default::default()
                })
                .await,
            Code::InvalidArgument,
            "INVALID_PAGE_TOKEN",
        );
        expect(
            reviewer
                .list_rejection_reasons(ListRejectionReasonsRequest {
                    page_token: token,
                    ..Default::default()
                })
                .await,
            Code::InvalidArgument,
            "INVALID_PAGE_TOKEN",
        );
    }
    let d = expect(
        reviewer
            .list_review_tasks(ListReviewTasksRequest {
                page_size: -5,
                states: vec![0, 42],
                subject_kinds: vec![9],
                account_id: long.clone(),
                ..Default::default()
            })
            .await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    let mut reasons = d.field_reasons();
    reasons.sort();
    assert_eq!(
        reasons,
        vec![
            "FILTER_TOO_LONG",
            "PAGE_SIZE_INVALID",
            "STATE_INVALID",
            "STATE_INVALID",
            "SUBJECT_KIND_INVALID"
        ]
    );
    // A huge page size is capped, not refused.
    reviewer
        .list_review_tasks(ListReviewTasksRequest {
            page_size: i32::MAX,
            ..Default::default()
        })
        .await
        .unwrap();

    // Keys.
    for request_id in ["", "has space", "ü", long.as_str()] {
        let d = expect(
            reviewer
                .claim_review_task(ClaimReviewTaskRequest {
                    request_id: request_id.into(),
                    name: task.name.clone(),
                    etag: String::new(),
                })
                .await,
            Code::InvalidArgument,
            "INVALID_ARGUMENT",
        );
        assert_eq!(d.field_reasons(), vec!["REQUEST_ID_INVALID"]);
    }
    claim(&mut reviewer, &task).await.unwrap();
    let d = expect(
        reviewer
            .reject_review_task(RejectReviewTaskRequest {
                request_id: String::new(),
                name: "nope".into(),
                reason_codes: vec!["DROP TABLE review_tasks".into(); 3],
                comment: long.clone(),
                etag: String::new(),
            })
            .await,
        Code::InvalidArgument,
        "REJECTION_REASON_UNKNOWN",
    );
    let mut reasons = d.field_reasons();
    reasons.sort();
    reasons.dedup();
    assert_eq!(
        reasons,
        vec![
            "COMMENT_TOO_LONG",
            "NAME_INVALID",
            "REJECTION_REASON_UNKNOWN",
            "REQUEST_ID_INVALID"
        ]
    );
    expect(
        reviewer
            .release_review_task(ReleaseReviewTaskRequest {
                request_id: rid(),
                name: task.name.clone(),
                comment: "字".repeat(2001),
                etag: String::new(),
            })
            .await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );

    // A creation with everything wrong names every field.
    let d = expect(
        service
            .create_review_task(CreateReviewTaskRequest {
                event_id: "not an id!".into(),
                subject: "applications/../sellers".into(),
                subject_kind: 7,
                account_id: String::new(),
                company_name: " ".into(),
                entity: Some(CompanyEntity {
                    country: "China".into(),
                    registration_number: "<script>".into(),
                }),
                submit_time: Some(prost_types::Timestamp {
                    seconds: 0,
                    nanos: -5,
                }),
                evidence: None,
                profile: None,
                previous_company_name: long.clone(),
            })
            .await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    assert_eq!(d.field_reasons(), vec!["EVENT_ID_INVALID"]);
    let d = expect(
        service
            .create_review_task(CreateReviewTaskRequest {
                event_id: rid(),
                subject: "applications/../sellers".into(),
                subject_kind: 7,
                account_id: String::new(),
                company_name: " ".into(),
                entity: Some(CompanyEntity {
                    country: "China".into(),
                    registration_number: "<script>".into(),
                }),
                submit_time: Some(prost_types::Timestamp {
                    seconds: 0,
                    nanos: -5,
                }),
                evidence: None,
                profile: None,
                previous_company_name: long.clone(),
            })
            .await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    let mut fields: Vec<String> = d.field_violations.iter().map(|(f, _)| f.clone()).collect();
    fields.sort();
    assert_eq!(
        fields,
        vec![
            "account_id",
            "company_name",
            "entity.country",
            "entity.registration_number",
            "previous_company_name",
            "profile",
            "subject",
            "subject_kind",
            "submit_time"
        ]
    );
    let mut mismatched = creation(&modification(), "acct-h", Utc::now());
    mismatched.subject_kind = SubjectKind::Application as i32;
    let d = expect(
        service.create_review_task(mismatched).await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    assert_eq!(d.field_reasons(), vec!["SUBJECT_KIND_MISMATCH"]);
    let mut future = creation(&application(), "acct-h", Utc::now());
    future.submit_time = Some(ts(Utc::now() + chrono::Duration::days(30)));
    let d = expect(
        service.create_review_task(future).await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    assert_eq!(d.field_reasons(), vec!["TIME_INVALID"]);
    let d = expect(
        service
            .cancel_review_task(CancelReviewTaskRequest {
                event_id: rid(),
                subject: task.subject.clone(),
                reason: "r".repeat(1001),
            })
            .await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    assert_eq!(d.field_reasons(), vec!["REASON_TOO_LONG"]);
    let d = expect(
        service
            .resume_review_task(ResumeReviewTaskRequest {
                event_id: rid(),
                subject: "applications/x/y".into(),
                resubmit_time: None,
                evidence: None,
                profile: None,
            })
            .await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    let mut reasons = d.field_reasons();
    reasons.sort();
    assert_eq!(reasons, vec!["SUBJECT_INVALID", "TIME_INVALID"]);

    // Nothing answered INTERNAL, and every error said why.
    for err in errors {
        assert_ne!(err.code(), Code::Internal);
        assert!(decoded(&err).reason.is_some(), "{err:?}");
    }
    // The task is untouched by all of that but the claim.
    assert_eq!(
        get(&mut reviewer, &task.name).await.state,
        ReviewTaskState::Claimed as i32
    );
    env.stop().await;
}

#[tokio::test]
async fn rerun_checks_replaces_the_evidence_through_identity_check() {
    let identity_db = mesh::fresh_db().await.unwrap();
    let identity = mesh::start_identity(&identity_db.url, true).await.unwrap();
    let website = fixtures::Website::start().await.unwrap();
    let identity_url = identity.url();
    let env = Env::start_with(|config| config.identity_check_url = identity_url).await;
    let mut request = creation(&application(), "acct-rerun", Utc::now());
    request.profile = Some(fixtures::profile(&website.url("/zh")));
    let task = env.create(request).await;
    assert_eq!(task.evidence, Some(evidence()));

    let mut reviewer = env.reviewer("reviewer-rerun");
    let reply = reviewer
        .rerun_checks(RerunChecksRequest {
            name: task.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let fresh = reply.evidence.unwrap();
    assert_eq!(
        reply.review_task.as_ref().unwrap().evidence.as_ref(),
        Some(&fresh)
    );
    let website_evidence = fresh.website.clone().expect("the website was checked");
    assert_eq!(website_evidence.requested_url, website.url("/zh"));
    assert!(fresh.logo.is_some(), "the stored logo was checked");
    assert!(
        fresh
            .findings
            .iter()
            .any(|f| f.code == "WEBSITE_NOT_ENGLISH"),
        "{:?}",
        fresh.findings
    );
    assert_eq!(fresh.outcome, CheckOutcome::Failed as i32);
    assert_eq!(
        actions(&audit(&mut reviewer, &task.name).await),
        vec![AuditAction::Created, AuditAction::ChecksRerun]
    );

    // A task claimed by someone else is theirs to recheck.
    let mut other = env.reviewer("reviewer-other");
    claim(&mut other, &task).await.unwrap();
    expect(
        reviewer
            .rerun_checks(RerunChecksRequest {
                name: task.name.clone(),
            })
            .await,
        Code::FailedPrecondition,
        "TASK_CLAIMED_BY_OTHER",
    );
    // identity-check down: UNAVAILABLE, nothing changed.
    identity.stop().await.unwrap();
    let d = expect(
        other
            .rerun_checks(RerunChecksRequest {
                name: task.name.clone(),
            })
            .await,
        Code::Unavailable,
        "DEPENDENCY_UNAVAILABLE",
    );
    assert_eq!(
        d.metadata.get("service").map(String::as_str),
        Some("identity-check")
    );
    // Final tasks are not rechecked.
    approve(&mut other, &task).await.unwrap();
    expect(
        other
            .rerun_checks(RerunChecksRequest {
                name: task.name.clone(),
            })
            .await,
        Code::FailedPrecondition,
        "INVALID_TASK_STATE",
    );
    env.stop().await;
}

async fn scrape(addr: std::net::SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else {
        return String::new();
    };
    let request = format!("GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    if stream.write_all(request.as_bytes()).await.is_err() {
        return String::new();
    }
    let mut body = String::new();
    let _ = stream.read_to_string(&mut body).await;
    body
}

#[tokio::test]
async fn gauges_count_overdue_tasks_and_the_outbox_backlog() {
    let metrics = std::net::SocketAddr::from(([127, 0, 0, 1], kg_tests::free_port()));
    let env = Env::start_with(|config| config.common.metrics_addr = Some(metrics)).await;
    let overdue = env
        .create(creation(
            &application(),
            "acct-m1",
            beijing("2026-11-02T10:00:00"),
        ))
        .await;
    assert!(overdue.overdue);
    let fresh = env
        .create(creation(&application(), "acct-m2", Utc::now()))
        .await;
    assert!(!fresh.overdue);
    poll("overdue gauge", Duration::from_secs(10), || async {
        let body = scrape(metrics).await;
        (body.contains("koogallery_review_overdue_tasks 1")
            && body.contains("koogallery_review_outbox_backlog 0")
            && body.contains("koogallery_review_outbox_dead_letters 0"))
        .then_some(())
    })
    .await;
    let mut reviewer = env.reviewer("reviewer-m");
    claim(&mut reviewer, &overdue).await.unwrap();
    approve(&mut reviewer, &overdue).await.unwrap();
    poll("backlog gauge", Duration::from_secs(10), || async {
        let body = scrape(metrics).await;
        (body.contains("koogallery_review_overdue_tasks 0")
            && body.contains("koogallery_review_outbox_backlog 1")
            && body.contains("koogallery_review_outbox_dead_letters 0"))
        .then_some(())
    })
    .await;
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decision_reaches_registration_through_the_outbox() {
    use kg_proto::identity::ImportAccountsRequest;
    use kg_proto::identity::identity_check_service_client::IdentityCheckServiceClient;
    use kg_proto::registration::registration_service_client::RegistrationServiceClient;
    use kg_proto::registration::{ApplicationState, GetApplicationRequest};

    // Authentication off (every caller is the development operator): registration and review
    // call each other as in `koogallery up`.
    let (identity_db, registration_db, review_db) = (
        mesh::fresh_db().await.unwrap(),
        mesh::fresh_db().await.unwrap(),
        mesh::fresh_db().await.unwrap(),
    );
    let website = fixtures::Website::start().await.unwrap();
    let identity = mesh::start_identity(&identity_db.url, true).await.unwrap();
    let review_addr = std::net::SocketAddr::from(([127, 0, 0, 1], kg_tests::free_port()));
    let registration = mesh::start_registration(mesh::with_peers(
        mesh::registration_config(&registration_db.url, &identity.url(), None),
        &format!("http://{review_addr}"),
        NOWHERE,
    ))
    .await
    .unwrap();
    let config = mesh::review_config(&review_db.url, &registration.url(), &identity.url());
    let review = Running::start(review_addr, move |l, s| kg_review::run(config, l, s))
        .await
        .unwrap();

    let account = "acct-delivery";
    IdentityCheckServiceClient::new(identity.channel().await.unwrap())
        .import_accounts(ImportAccountsRequest {
            request_id: rid(),
            accounts: vec![fixtures::eligible_account(account)],
        })
        .await
        .unwrap();
    let mut reg = RegistrationServiceClient::new(registration.channel().await.unwrap());
    let app = reg
        .submit_application(fixtures::submission(account, 4242, &website.url("/en")))
        .await
        .unwrap()
        .into_inner()
        .application
        .unwrap();

    let mut rev = ReviewServiceClient::new(review.channel().await.unwrap());
    let task = poll("the review task", Duration::from_secs(20), || {
        let mut rev = rev.clone();
        let subject = app.name.clone();
        async move {
            rev.list_review_tasks(ListReviewTasksRequest {
                subject,
                ..Default::default()
            })
            .await
            .ok()?
            .into_inner()
            .review_tasks
            .pop()
        }
    })
    .await;
    assert_eq!(task.account_id, account);
    assert_eq!(
        at(&task.deadline),
        WorkingCalendar::china().deadline(at(&task.submit_time), 3)
    );

    rev.claim_review_task(ClaimReviewTaskRequest {
        request_id: rid(),
        name: task.name.clone(),
        etag: String::new(),
    })
    .await
    .unwrap();
    rev.approve_review_task(ApproveReviewTaskRequest {
        request_id: rid(),
        name: task.name.clone(),
        comment: "Welcome.".into(),
        etag: String::new(),
    })
    .await
    .unwrap();

    let delivered = poll("the delivery", Duration::from_secs(20), || {
        let mut rev = rev.clone();
        let name = task.name.clone();
        async move {
            let task = rev
                .get_review_task(GetReviewTaskRequest { name })
                .await
                .ok()?
                .into_inner()
                .review_task?;
            task.decision.as_ref()?.deliver_time?;
            Some(task)
        }
    })
    .await;
    assert_eq!(delivered.state, ReviewTaskState::Approved as i32);
    let entries = rev
        .list_audit_entries(ListAuditEntriesRequest {
            parent: task.name.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .audit_entries;
    let delivery: Vec<&AuditEntry> = entries
        .iter()
        .filter(|e| e.action == AuditAction::DecisionDelivered as i32)
        .collect();
    assert_eq!(delivery.len(), 1, "{entries:#?}");
    assert_eq!(delivery[0].actor, "registration");
    assert_eq!(delivery[0].actor_role, ActorRole::Service as i32);
    assert_eq!(delivery[0].comment, "APPROVE APPLIED");
    let db = kg_runtime::db::connect(&review_db.url).await.unwrap();
    assert_eq!(
        kg_runtime::outbox::backlog(&db, "review_outbox")
            .await
            .unwrap(),
        0
    );
    let applied = reg
        .get_application(GetApplicationRequest {
            name: app.name.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .application
        .unwrap();
    assert_eq!(applied.state, ApplicationState::Approved as i32);

    review.stop().await.unwrap();
    registration.stop().await.unwrap();
    identity.stop().await.unwrap();
}

#[tokio::test]
async fn a_calendar_file_sets_the_working_days_and_a_bad_one_stops_the_service() {
    let dir = std::env::temp_dir().join(format!("kg-review-calendar-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    // A Sunday-to-Thursday week in Dubai, no cut-off, one holiday.
    let good = dir.join("ae.yaml");
    std::fs::write(
        &good,
        "timezone: Asia/Dubai\nweekend: [Friday, Saturday]\nholidays: [2026-11-23]\n",
    )
    .unwrap();
    let path = good.clone();
    let env = Env::start_with(move |config| config.calendar_file = Some(path)).await;
    // Thursday 2026-11-19 10:00 Dubai: Thu 14 h, (Fri, Sat off), Sun 24 h, (Mon holiday),
    // Tue 24 h, Wed 10 h → Wednesday 2026-11-25 10:00 Dubai.
    let submitted = DateTime::parse_from_rfc3339("2026-11-19T10:00:00+04:00")
        .unwrap()
        .to_utc();
    let due = DateTime::parse_from_rfc3339("2026-11-25T10:00:00+04:00")
        .unwrap()
        .to_utc();
    assert_eq!(
        WorkingCalendar::from_file(&good)
            .unwrap()
            .deadline(submitted, 3),
        due
    );
    let task = env
        .create(creation(&application(), "acct-dubai", submitted))
        .await;
    assert_eq!(at(&task.deadline), due);
    env.stop().await;

    let bad = dir.join("bad.yaml");
    std::fs::write(&bad, "timezone: Mars/Olympus_Mons\n").unwrap();
    let db = mesh::fresh_db().await.unwrap();
    let mut config = mesh::review_config(&db.url, NOWHERE, NOWHERE);
    config.calendar_file = Some(bad);
    let started = mesh::start_review_with(config).await;
    assert!(
        started.is_err(),
        "a calendar that does not load stops the service"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
