//! review's errors: its own, mapped here, and the ones every service shares ([`CommonError`],
//! mapped once by the runtime). Reason codes are listed in
//! `proto/koogallery/review/v1/review.proto`.

use kg_runtime::ApiError;
use kg_runtime::error::{CommonError, ErrorReason, FieldViolation, ServiceError};
use kg_runtime::stored::StoredCorrupt;
use tonic::Code;

pub const DOMAIN: &str = "review.koogallery.io";

#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// Reason codes outside the catalogue (with any other field problems).
    #[error("unknown rejection reason(s) {codes:?}")]
    UnknownReasons {
        codes: Vec<String>,
        violations: Vec<FieldViolation>,
    },
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
    #[error("too many concurrent changes")]
    Contended,
    /// Approval waits for these addresses (`email=STATE`) to be verified.
    #[error("contact addresses not verified: {0}")]
    ContactNotVerified(String),
    #[error(transparent)]
    Common(#[from] CommonError),
}

impl From<sea_orm::DbErr> for ReviewError {
    fn from(err: sea_orm::DbErr) -> Self {
        Self::Common(err.into())
    }
}

impl From<StoredCorrupt> for ReviewError {
    fn from(err: StoredCorrupt) -> Self {
        Self::Common(err.into())
    }
}

impl ServiceError for ReviewError {}

impl From<ReviewError> for tonic::Status {
    fn from(err: ReviewError) -> Self {
        use ReviewError as E;
        let api = match err {
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
            E::Contended => ApiError::new(
                Code::Aborted,
                DOMAIN,
                ErrorReason::ConcurrentModification,
                "the task kept changing while this request ran; retry with the same request_id",
            ),
            E::ContactNotVerified(contacts) => ApiError::new(
                Code::FailedPrecondition,
                DOMAIN,
                ErrorReason::ContactNotVerified,
                "approval waits until the applicant has verified its contact addresses (KG_REQUIRE_VERIFIED_CONTACTS)",
            )
            .with_metadata("contacts", contacts),
            E::Common(common) => common.into_api(DOMAIN),
        };
        api.into()
    }
}

fn precondition(reason: ErrorReason, message: impl Into<String>) -> ApiError {
    ApiError::new(Code::FailedPrecondition, DOMAIN, reason, message)
}
