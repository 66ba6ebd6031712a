//! review's errors, mapped once to gRPC status. Reason codes are listed in
//! `proto/koogallery/review/v1/review.proto`.

use kg_runtime::ApiError;
use kg_runtime::error::ErrorReason;
use kg_runtime::error::FieldViolation;
use kg_runtime::stored::StoredCorrupt;
use tonic::Code;

pub const DOMAIN: &str = "review.koogallery.io";

#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error("invalid request")]
    Invalid(Vec<FieldViolation>),
    /// Reason codes outside the catalogue (with any other field problems).
    #[error("unknown rejection reason(s) {codes:?}")]
    UnknownReasons {
        codes: Vec<String>,
        violations: Vec<FieldViolation>,
    },
    #[error("request id or event id reused with a different body")]
    IdempotencyKeyReused,
    #[error("invalid page token")]
    InvalidPageToken,
    #[error("review task {0} not found")]
    TaskNotFound(String),
    #[error("no review task for subject {0}")]
    NoTaskForSubject(String),
    #[error("subject already has review task {task}")]
    TaskExists { task: String },
    #[error("task claimed by {assignee}")]
    ClaimedByOther { assignee: String },
    #[error("task claimed by {assignee}; only they or an operator may release it")]
    ReleaseDenied { assignee: String },
    #[error("task not claimed")]
    NotClaimed,
    #[error("task already decided: {state}")]
    AlreadyDecided { state: String },
    #[error("task is {state}")]
    InvalidState { state: String },
    #[error("changes can be requested on applications only")]
    ChangesNotAllowed,
    #[error("reviewer is the task's account")]
    SelfReview,
    #[error("etag mismatch")]
    EtagMismatch,
    #[error("too many concurrent changes")]
    Contended,
    #[error("{0} unavailable: {1}")]
    DependencyUnavailable(&'static str, tonic::Status),
    /// Approval waits for these addresses (`email=STATE`) to be verified.
    #[error("contact addresses not verified: {0}")]
    ContactNotVerified(String),
    /// A stored message does not decode (logged where it was found); nothing is written.
    #[error(transparent)]
    StoredCorrupt(#[from] StoredCorrupt),
    #[error("database: {0}")]
    Database(#[source] sea_orm::DbErr),
}

/// A database error, unless it carries a stored message that does not decode (see
/// `kg_runtime::stored`): that one stays STORED_DATA_CORRUPT.
impl From<sea_orm::DbErr> for ReviewError {
    fn from(err: sea_orm::DbErr) -> Self {
        match StoredCorrupt::in_db_err(&err) {
            Some(corrupt) => Self::StoredCorrupt(corrupt.clone()),
            None => Self::Database(err),
        }
    }
}

impl ReviewError {
    pub fn field(
        field: impl Into<String>,
        reason: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self::Invalid(vec![FieldViolation {
            field: field.into(),
            reason: reason.into(),
            description: message.into(),
        }])
    }
}

/// Collects the field problems of one request.
#[derive(Default)]
pub struct Violations(pub Vec<FieldViolation>);

impl Violations {
    pub fn add(&mut self, field: impl Into<String>, reason: &str, message: impl Into<String>) {
        self.0.push(FieldViolation {
            field: field.into(),
            reason: reason.to_string(),
            description: message.into(),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok` when nothing was found.
    pub fn check(self) -> Result<(), ReviewError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ReviewError::Invalid(self.0))
        }
    }
}

impl From<ReviewError> for tonic::Status {
    fn from(err: ReviewError) -> Self {
        use ReviewError as E;
        let api = match err {
            E::Invalid(violations) => {
                let mut api = ApiError::new(
                    Code::InvalidArgument,
                    DOMAIN,
                    ErrorReason::InvalidArgument,
                    format!(
                        "{} invalid field(s); see the field violations",
                        violations.len()
                    ),
                );
                api.field_violations = violations;
                api
            }
            E::UnknownReasons { codes, violations } => {
                let mut api = ApiError::new(
                    Code::InvalidArgument,
                    DOMAIN,
                    ErrorReason::RejectionReasonUnknown,
                    format!(
                        "reason code(s) {} are not in the rejection-reason catalogue \
                         (ListRejectionReasons)",
                        codes.join(", ")
                    ),
                )
                .with_metadata("code", codes.join(","));
                api.field_violations = violations;
                api
            }
            E::IdempotencyKeyReused => ApiError::new(
                Code::InvalidArgument,
                DOMAIN,
                ErrorReason::IdempotencyKeyReused,
                "the request_id (or event_id) was already used with a different request body; \
                 use a new one",
            ),
            E::InvalidPageToken => ApiError::new(
                Code::InvalidArgument,
                DOMAIN,
                ErrorReason::InvalidPageToken,
                "page_token is not one this service returned for the same filters",
            ),
            E::TaskNotFound(name) => ApiError::new(
                Code::NotFound,
                DOMAIN,
                ErrorReason::ReviewTaskNotFound,
                format!("{name} does not exist"),
            ),
            E::NoTaskForSubject(subject) => ApiError::new(
                Code::NotFound,
                DOMAIN,
                ErrorReason::ReviewTaskNotFound,
                format!("there is no review task for {subject}"),
            )
            .with_metadata("subject", subject),
            E::TaskExists { task } => ApiError::new(
                Code::AlreadyExists,
                DOMAIN,
                ErrorReason::ReviewTaskExists,
                format!("the subject already has a review task ({task}), created by another event"),
            )
            .with_metadata("review_task", task),
            E::ClaimedByOther { assignee } => precondition(
                ErrorReason::TaskClaimedByOther,
                "another reviewer claimed this task; only the assignee may work on it",
            )
            .with_metadata("assignee", assignee),
            E::ReleaseDenied { assignee } => ApiError::new(
                Code::PermissionDenied,
                DOMAIN,
                ErrorReason::TaskClaimedByOther,
                "another reviewer claimed this task; only the assignee or an operator may \
                 release it",
            )
            .with_metadata("assignee", assignee),
            E::NotClaimed => precondition(
                ErrorReason::TaskNotClaimed,
                "the task is not claimed; claim it first (ClaimReviewTask)",
            ),
            E::AlreadyDecided { state } => precondition(
                ErrorReason::TaskAlreadyDecided,
                format!("the task was already decided (it is {state}); the first decision stands"),
            )
            .with_metadata("state", state),
            E::InvalidState { state } => precondition(
                ErrorReason::InvalidTaskState,
                format!("the task is {state}; this action is not allowed in that state"),
            )
            .with_metadata("state", state),
            E::ChangesNotAllowed => precondition(
                ErrorReason::ChangesNotAllowed,
                "changes can be requested on applications only; approve or reject a \
                 modification request",
            ),
            E::SelfReview => ApiError::new(
                Code::PermissionDenied,
                DOMAIN,
                ErrorReason::SelfReview,
                "reviewers may not review their own account's subjects",
            ),
            E::EtagMismatch => ApiError::new(
                Code::Aborted,
                DOMAIN,
                ErrorReason::EtagMismatch,
                "the task changed since it was read; read it again",
            ),
            E::Contended => ApiError::new(
                Code::Aborted,
                DOMAIN,
                ErrorReason::ConcurrentModification,
                "the task kept changing while this request ran; retry with the same request_id",
            ),
            E::DependencyUnavailable(service, status) => {
                tracing::warn!(service, code = ?status.code(), message = status.message(), "dependency call failed");
                ApiError::new(
                    Code::Unavailable,
                    DOMAIN,
                    ErrorReason::DependencyUnavailable,
                    format!("{service} is unavailable; nothing was changed, retry later"),
                )
                .with_metadata("service", service)
            }
            // Logged with its column and key where it was decoded.
            E::ContactNotVerified(contacts) => ApiError::new(
                Code::FailedPrecondition,
                DOMAIN,
                ErrorReason::ContactNotVerified,
                "approval waits until the applicant has verified its contact addresses (KG_REQUIRE_VERIFIED_CONTACTS)",
            )
            .with_metadata("contacts", contacts),
            E::StoredCorrupt(_) => ApiError::new(
                Code::Internal,
                DOMAIN,
                ErrorReason::StoredDataCorrupt,
                "a stored record this request needs cannot be read; nothing was changed and the \
                 fault has been logged",
            ),
            E::Database(e) => {
                tracing::warn!(error = %e, "database error");
                ApiError::new(
                    Code::Unavailable,
                    DOMAIN,
                    ErrorReason::DatabaseUnavailable,
                    "the review database did not answer; retry later",
                )
            }
        };
        api.into()
    }
}

fn precondition(reason: ErrorReason, message: impl Into<String>) -> ApiError {
    ApiError::new(Code::FailedPrecondition, DOMAIN, reason, message)
}
