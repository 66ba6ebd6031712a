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

mod audit;
mod deadlines;
mod decisions;
mod hostile;
mod queue;

const SECRET: &str = kg_tests::mesh::TEST_SECRET;
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
