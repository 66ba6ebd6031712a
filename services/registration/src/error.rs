//! registration's errors: its own, mapped here, and the ones every service shares
//! ([`CommonError`], mapped once by the runtime). Reason codes are listed in
//! `proto/koogallery/registration/v1/registration.proto`.

use kg_runtime::ApiError;
use kg_runtime::error::{
    CommonError, ErrorReason, FieldViolation, PreconditionViolation, ServiceError,
};
use kg_runtime::stored::StoredCorrupt;
use tonic::Code;

pub const DOMAIN: &str = "registration.koogallery.io";

/// Which rule blocked a second registration of one company entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntityRule {
    /// An active seller holds the entity.
    Registered,
    /// A pending application holds it.
    InReview,
    /// Its seller exited: a company entity registers once.
    Barred,
}

#[derive(Debug, thiserror::Error)]
pub enum RegistrationError {
    #[error("materials check failed")]
    MaterialsCheckFailed(Vec<FieldViolation>),
    #[error("account not eligible")]
    NotEligible(Vec<PreconditionViolation>),
    #[error("entity taken: {0:?}")]
    EntityTaken(EntityRule),
    #[error("account already has an open application")]
    ApplicationAlreadyOpen,
    #[error("entity lock held by another request")]
    EntityBusy,
    #[error("lock store unavailable: {0}")]
    LockUnavailable(String),
    #[error("application {0} not found")]
    ApplicationNotFound(String),
    #[error("seller {0} not found")]
    SellerNotFound(String),
    #[error("application is {0}")]
    InvalidState(String),
    #[error("invalid update mask")]
    InvalidUpdateMask(Vec<FieldViolation>),
    #[error("the request changes nothing")]
    NoChanges,
    #[error("seller {0} exited")]
    SellerExited(String),
    #[error("a modification request is already pending: {0}")]
    ModificationAlreadyPending(String),
    #[error("the company entity never changes")]
    EntityImmutable,
    #[error("the new company name is not the account's verified name")]
    CompanyNameNotVerified,
    #[error("modification request {0} not found")]
    ModificationNotFound(String),
    #[error("modification request is {0}")]
    InvalidModificationState(String),
    #[error("invalid resume token")]
    InvalidResumeToken,
    #[error("resume token older than the retained events")]
    ResumeTokenExpired {
        oldest: chrono::DateTime<chrono::Utc>,
    },
    #[error("the server is shutting down")]
    ShuttingDown,
    #[error("too many open event streams (at most {0})")]
    TooManyStreams(usize),
    #[error("contact {0} not found")]
    ContactNotFound(String),
    #[error("the verification code is not the one mailed")]
    VerificationCodeInvalid { attempts_left: i32 },
    #[error("the verification code expired or was tried too often")]
    VerificationCodeExpired,
    #[error("a code was mailed less than a minute ago")]
    ResendTooSoon { retry_after_seconds: i64 },
    #[error(transparent)]
    Common(#[from] CommonError),
}

impl From<sea_orm::DbErr> for RegistrationError {
    fn from(err: sea_orm::DbErr) -> Self {
        Self::Common(err.into())
    }
}

impl From<StoredCorrupt> for RegistrationError {
    fn from(err: StoredCorrupt) -> Self {
        Self::Common(err.into())
    }
}

impl ServiceError for RegistrationError {}

impl From<RegistrationError> for tonic::Status {
    fn from(err: RegistrationError) -> Self {
        use RegistrationError as E;
        let api = match err {
            E::MaterialsCheckFailed(violations) => {
                let codes: Vec<_> = violations.iter().map(|v| v.reason.clone()).collect();
                with_violations(
                    ApiError::new(
                        Code::InvalidArgument,
                        DOMAIN,
                        ErrorReason::MaterialsCheckFailed,
                        format!(
                            "{} material check(s) failed; see the field violations",
                            violations.len()
                        ),
                    )
                    .with_metadata("finding_codes", codes.join(",")),
                    violations,
                )
            }
            E::NotEligible(violations) => {
                let codes: Vec<_> = violations.iter().map(|v| v.kind.clone()).collect();
                let mut api = ApiError::new(
                    Code::FailedPrecondition,
                    DOMAIN,
                    ErrorReason::AccountNotEligible,
                    format!(
                        "the account does not meet {} condition(s) to become a seller",
                        violations.len()
                    ),
                )
                .with_metadata("ineligibility_reasons", codes.join(","));
                api.preconditions = violations;
                api
            }
            // Says which rule blocked it, never whose account holds the entity.
            E::EntityTaken(rule) => {
                let (reason, message) = match rule {
                    EntityRule::Registered => (
                        ErrorReason::EntityAlreadyRegistered,
                        "this company entity is already registered as a seller; a company entity registers once",
                    ),
                    EntityRule::InReview => (
                        ErrorReason::EntityInReview,
                        "an application for this company entity is already under review",
                    ),
                    EntityRule::Barred => (
                        ErrorReason::EntityBarred,
                        "this company entity exited the marketplace and cannot register again",
                    ),
                };
                ApiError::new(Code::AlreadyExists, DOMAIN, reason, message)
            }
            E::ApplicationAlreadyOpen => ApiError::new(
                Code::AlreadyExists,
                DOMAIN,
                ErrorReason::ApplicationAlreadyOpen,
                "this account already has an open or approved application",
            ),
            E::EntityBusy => ApiError::new(
                Code::Aborted,
                DOMAIN,
                ErrorReason::EntityBusy,
                "another request is registering this company entity; retry with the same request_id",
            ),
            E::LockUnavailable(cause) => ApiError::new(
                Code::Unavailable,
                DOMAIN,
                ErrorReason::LockUnavailable,
                "the registration lock is unavailable; nothing was written, retry later",
            )
            .with_metadata(
                "cause",
                if cause.is_empty() {
                    "unknown"
                } else {
                    "lock store"
                },
            ),
            E::ApplicationNotFound(name) => ApiError::new(
                Code::NotFound,
                DOMAIN,
                ErrorReason::ApplicationNotFound,
                format!("{name} does not exist"),
            ),
            E::SellerNotFound(name) => ApiError::new(
                Code::NotFound,
                DOMAIN,
                ErrorReason::SellerNotFound,
                format!("{name} does not exist"),
            ),
            E::InvalidState(state) => ApiError::new(
                Code::FailedPrecondition,
                DOMAIN,
                ErrorReason::InvalidApplicationState,
                format!("the application is {state}; this action is not allowed in that state"),
            )
            .with_metadata("state", state),
            E::InvalidUpdateMask(violations) => with_violations(
                ApiError::new(
                    Code::InvalidArgument,
                    DOMAIN,
                    ErrorReason::InvalidUpdateMask,
                    "update_mask must name at least one editable path of SellerProfile; see the field violations",
                ),
                violations,
            ),
            E::NoChanges => ApiError::new(
                Code::InvalidArgument,
                DOMAIN,
                ErrorReason::NoChanges,
                "the requested values equal the current ones; nothing to review",
            ),
            E::SellerExited(name) => ApiError::new(
                Code::FailedPrecondition,
                DOMAIN,
                ErrorReason::SellerExited,
                format!("{name} exited the marketplace; it can no longer change"),
            )
            .with_precondition(
                "SELLER_EXITED", name, "an exited seller is final"),
            E::ModificationAlreadyPending(pending) => ApiError::new(
                Code::FailedPrecondition,
                DOMAIN,
                ErrorReason::ModificationAlreadyPending,
                format!(
                    "{pending} is still under review; wait for its decision or withdraw it first"
                ),
            )
            .with_metadata("modification_request", pending.clone())
            .with_precondition(
                "MODIFICATION_ALREADY_PENDING",
                pending,
                "one modification request may be pending per seller",
            ),
            E::EntityImmutable => ApiError::new(
                Code::FailedPrecondition,
                DOMAIN,
                ErrorReason::EntityImmutable,
                "the company entity of a seller never changes: a different company entity needs a new account and a new registration",
            ),
            E::CompanyNameNotVerified => ApiError::new(
                Code::FailedPrecondition,
                DOMAIN,
                ErrorReason::CompanyNameNotVerified,
                "the new company name is not the account's verified enterprise name: change and verify it on the My Account page first",
            ),
            E::ModificationNotFound(name) => ApiError::new(
                Code::NotFound,
                DOMAIN,
                ErrorReason::ModificationRequestNotFound,
                format!("{name} does not exist"),
            ),
            E::InvalidModificationState(state) => ApiError::new(
                Code::FailedPrecondition,
                DOMAIN,
                ErrorReason::InvalidModificationState,
                format!(
                    "the modification request is {state}; only a PENDING_REVIEW request can be withdrawn"
                ),
            )
            .with_metadata("state", state),
            E::InvalidResumeToken => ApiError::new(
                Code::InvalidArgument,
                DOMAIN,
                ErrorReason::InvalidResumeToken,
                "resume_token is not one this service returned",
            ),
            E::ResumeTokenExpired { oldest } => ApiError::new(
                Code::OutOfRange,
                DOMAIN,
                ErrorReason::ResumeTokenExpired,
                "the position is older than the retained events; start again from start_time",
            )
            .with_metadata(
                "oldest_available_time",
                oldest.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            ),
            E::ShuttingDown => ApiError::new(
                Code::Unavailable,
                DOMAIN,
                ErrorReason::ServerShuttingDown,
                "the server is shutting down; resume from the last resume_token",
            ),
            E::TooManyStreams(max) => ApiError::new(
                Code::ResourceExhausted,
                DOMAIN,
                ErrorReason::TooManyStreams,
                "this replica has as many event streams open as it serves; retry later or on another replica",
            )
            .with_metadata("max_streams", max.to_string()),
            E::ContactNotFound(name) => ApiError::new(
                Code::NotFound,
                DOMAIN,
                ErrorReason::ContactNotFound,
                format!("{name} does not exist"),
            )
            .with_metadata("name", name),
            E::VerificationCodeInvalid { attempts_left } => ApiError::new(
                Code::InvalidArgument,
                DOMAIN,
                ErrorReason::VerificationCodeInvalid,
                "the code is not the one mailed to this address; check it and try again",
            )
            .with_metadata("attempts_left", attempts_left.to_string()),
            E::VerificationCodeExpired => ApiError::new(
                Code::FailedPrecondition,
                DOMAIN,
                ErrorReason::VerificationCodeExpired,
                "the code ran out or was tried too often; ask for a new one (ResendContactVerification)",
            )
            .with_precondition(
                "VERIFICATION_CODE_EXPIRED",
                "code",
                "a code is valid for 24 hours and 5 attempts",
            ),
            E::ResendTooSoon {
                retry_after_seconds,
            } => ApiError::new(
                Code::ResourceExhausted,
                DOMAIN,
                ErrorReason::VerificationResendTooSoon,
                "a code was mailed to this address less than a minute ago; wait before asking again",
            )
            .with_metadata("retry_after_seconds", retry_after_seconds.to_string()),
            E::Common(common) => common.into_api(DOMAIN),
        };
        api.into()
    }
}

fn with_violations(mut api: ApiError, violations: Vec<FieldViolation>) -> ApiError {
    api.field_violations = violations;
    api
}
