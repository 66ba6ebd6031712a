//! The error model: every service turns its own error enum into an [`ApiError`], and this is the
//! one place an `ApiError` becomes a `tonic::Status` with `google.rpc` details.
//!
//! Each error carries a machine-readable reason (`google.rpc.ErrorInfo.reason`: the name of a
//! `koogallery.common.v1.ErrorReason` value; the type admits no other string) and the domain of the service that raised it (`registration.koogallery.io`). Field problems
//! travel as `BadRequest` violations; failed preconditions (eligibility) as
//! `PreconditionFailure` violations.

use std::collections::HashMap;

pub use kg_proto::common::ErrorReason;

use crate::stored::StoredCorrupt;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldViolation {
    pub field: String,
    pub description: String,
    /// Per-field reason code, e.g. `REGISTRATION_NUMBER_CHECK_CHARACTER`.
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreconditionViolation {
    /// The reason code, e.g. `NOT_ENTERPRISE_VERIFIED`.
    pub kind: String,
    pub subject: String,
    pub description: String,
}

/// A client-facing error. Its message is written for the caller: it never carries internals.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: Code,
    pub domain: &'static str,
    /// The name of an [`ErrorReason`] (set by [`ApiError::new`]).
    pub reason: &'static str,
    pub message: String,
    pub metadata: HashMap<String, String>,
    pub field_violations: Vec<FieldViolation>,
    pub preconditions: Vec<PreconditionViolation>,
}

impl ApiError {
    pub fn new(
        code: Code,
        domain: &'static str,
        reason: ErrorReason,
        message: impl Into<String>,
    ) -> Self {
        Self {
            code,
            domain,
            reason: reason.as_str_name(),
            message: message.into(),
            metadata: HashMap::new(),
            field_violations: Vec::new(),
            preconditions: Vec::new(),
        }
    }

    /// An INTERNAL error whose cause is logged here and never sent to the caller.
    pub fn internal(domain: &'static str, cause: &dyn std::fmt::Display) -> Self {
        // the cause may quote data (a driver's message): scrubbed for logs and trace events
        tracing::error!(error = %crate::redact::scrub(&cause.to_string()), "internal error");
        Self::new(
            Code::Internal,
            domain,
            ErrorReason::Internal,
            "internal error; it has been logged",
        )
    }

    pub fn with_metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    pub fn with_field_violation(
        mut self,
        field: impl Into<String>,
        reason: impl Into<String>,
        description: impl Into<String>,
    ) -> Self {
        self.field_violations.push(FieldViolation {
            field: field.into(),
            reason: reason.into(),
            description: description.into(),
        });
        self
    }

    pub fn with_precondition(
        mut self,
        kind: impl Into<String>,
        subject: impl Into<String>,
        description: impl Into<String>,
    ) -> Self {
        self.preconditions.push(PreconditionViolation {
            kind: kind.into(),
            subject: subject.into(),
            description: description.into(),
        });
        self
    }
}

impl From<ApiError> for Status {
    fn from(err: ApiError) -> Status {
        let mut details = ErrorDetails::new();
        let mut metadata = err.metadata;
        let trace_id = crate::trace_context::current_trace_id();
        if trace_id.bytes().any(|b| b != b'0') {
            metadata.insert("trace_id".to_string(), trace_id);
        }
        details.set_error_info(err.reason, err.domain, metadata);
        for v in err.field_violations {
            // google.rpc.BadRequest.FieldViolation.reason exists in newer protos only; the
            // reason is kept at the start of the description so every client can read it.
            details.add_bad_request_violation(v.field, format!("{}: {}", v.reason, v.description));
        }
        for p in err.preconditions {
            details.add_precondition_failure_violation(p.kind, p.subject, p.description);
        }
        Status::with_error_details(err.code, err.message, details)
    }
}

/// The failures every service meets, whatever its domain. Each service's error enum wraps this
/// one (`Common(#[from] CommonError)`) and maps only its own variants; these are mapped here,
/// once, by [`CommonError::into_api`].
#[derive(Debug, thiserror::Error)]
pub enum CommonError {
    #[error("invalid request")]
    Invalid(Vec<FieldViolation>),
    #[error("invalid page token")]
    InvalidPageToken,
    #[error("idempotency key reused with a different body")]
    IdempotencyKeyReused,
    /// An applicant acting for, or asking about, another account.
    #[error("the caller does not own this account")]
    NotOwner,
    /// No authenticated caller reached the handler (the auth layer did not run).
    #[error("no authenticated caller")]
    NoCaller,
    #[error("etag mismatch")]
    EtagMismatch,
    /// Another service of the mesh answered with an error or not at all.
    #[error("{0} unavailable: {1}")]
    DependencyUnavailable(&'static str, tonic::Status),
    /// A stored message does not decode (logged where it was found); nothing is written.
    #[error(transparent)]
    StoredCorrupt(#[from] StoredCorrupt),
    #[error("database: {0}")]
    Database(#[source] sea_orm::DbErr),
}

/// A database error, unless it carries a stored message that does not decode (see
/// [`crate::stored`]): that one stays STORED_DATA_CORRUPT.
impl From<sea_orm::DbErr> for CommonError {
    fn from(err: sea_orm::DbErr) -> Self {
        match StoredCorrupt::in_db_err(&err) {
            Some(corrupt) => Self::StoredCorrupt(corrupt.clone()),
            None => Self::Database(err),
        }
    }
}

impl CommonError {
    /// One field problem.
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

    /// The status details of this error, raised by the service of `domain`.
    pub fn into_api(self, domain: &'static str) -> ApiError {
        use CommonError as E;
        match self {
            E::Invalid(violations) => {
                let mut api = ApiError::new(
                    Code::InvalidArgument,
                    domain,
                    ErrorReason::InvalidArgument,
                    format!(
                        "{} invalid field(s); see the field violations",
                        violations.len()
                    ),
                );
                api.field_violations = violations;
                api
            }
            E::InvalidPageToken => ApiError::new(
                Code::InvalidArgument,
                domain,
                ErrorReason::InvalidPageToken,
                "page_token is not one this service returned for these filters",
            ),
            E::IdempotencyKeyReused => ApiError::new(
                Code::InvalidArgument,
                domain,
                ErrorReason::IdempotencyKeyReused,
                "the request_id (or event_id) was already used with a different request body; \
                 use a new one",
            ),
            E::NotOwner => ApiError::new(
                Code::PermissionDenied,
                domain,
                ErrorReason::NotAccountOwner,
                "applicants act only for their own account",
            ),
            E::NoCaller => ApiError::new(
                Code::Unauthenticated,
                domain,
                ErrorReason::Unauthenticated,
                "no authenticated caller",
            ),
            E::EtagMismatch => ApiError::new(
                Code::Aborted,
                domain,
                ErrorReason::EtagMismatch,
                "the resource changed since it was read; read it again and retry",
            ),
            E::DependencyUnavailable(service, status) => {
                tracing::warn!(
                    service,
                    code = ?status.code(),
                    message = %crate::redact::scrub(status.message()),
                    "dependency call failed"
                );
                ApiError::new(
                    Code::Unavailable,
                    domain,
                    ErrorReason::DependencyUnavailable,
                    format!("{service} is unavailable; nothing was changed, retry later"),
                )
                .with_metadata("service", service)
            }
            // Logged with its column and key where it was decoded.
            E::StoredCorrupt(_) => ApiError::new(
                Code::Internal,
                domain,
                ErrorReason::StoredDataCorrupt,
                "a stored record this request needs cannot be read; nothing was changed and the \
                 fault has been logged",
            ),
            // A unique index refused the write: a concurrent request wrote first.
            E::Database(e) if crate::db::is_unique_violation(&e) => ApiError::new(
                Code::Aborted,
                domain,
                ErrorReason::ConcurrentUpdate,
                "a concurrent update won; retry",
            ),
            E::Database(e) => {
                tracing::warn!(error = %crate::redact::scrub(&e.to_string()), "database error");
                ApiError::new(
                    Code::Unavailable,
                    domain,
                    ErrorReason::DatabaseUnavailable,
                    "the database does not answer; nothing was changed, retry later",
                )
                .with_metadata("dependency", "database")
            }
        }
    }
}

/// A service's error enum: its own failures, and the ones every service shares ([`CommonError`])
/// in one variant. Each service maps its own variants to a status and hands the rest to
/// [`CommonError::into_api`].
pub trait ServiceError: From<CommonError> + Sized {
    /// INVALID_ARGUMENT with one field violation.
    fn field(
        field: impl Into<String>,
        reason: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        CommonError::field(field, reason, message).into()
    }
}

/// Collects the field problems of one request, to report them all at once.
#[derive(Debug, Default)]
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

    /// `Ok` when nothing was found, else INVALID_ARGUMENT with every violation.
    pub fn check(self) -> Result<(), CommonError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(CommonError::Invalid(self.0))
        }
    }
}

/// The `ErrorInfo.domain` of a service: `"<service>.koogallery.io"`, identity-check being
/// `identity`.
pub fn service_domain(service: &str) -> String {
    let short = match service {
        "identity-check" => "identity",
        other => other,
    };
    format!("{short}.koogallery.io")
}

/// RESOURCE_EXHAUSTED `MESSAGE_TOO_LARGE`: a request message above the service's limit
/// (metadata `size_bytes` and `limit_bytes` when known, and `trace_id`).
pub fn message_too_large(domain: &str, size: Option<u64>, limit: Option<u64>) -> Status {
    let mut metadata = HashMap::new();
    if let Some(size) = size {
        metadata.insert("size_bytes".to_string(), size.to_string());
    }
    if let Some(limit) = limit {
        metadata.insert("limit_bytes".to_string(), limit.to_string());
    }
    let trace_id = crate::trace_context::current_trace_id();
    if trace_id.bytes().any(|b| b != b'0') {
        metadata.insert("trace_id".to_string(), trace_id);
    }
    let message = match limit {
        Some(limit) => {
            format!("the request message is larger than this service accepts ({limit} bytes)")
        }
        None => "the request message is larger than this service accepts".to_string(),
    };
    let mut details = ErrorDetails::new();
    details.set_error_info(ErrorReason::MessageTooLarge.as_str_name(), domain, metadata);
    Status::with_error_details(Code::ResourceExhausted, message, details)
}

/// What a test or a client reads back out of a `Status`.
#[derive(Debug, Clone, Default)]
pub struct DecodedError {
    pub reason: Option<String>,
    pub domain: Option<String>,
    pub metadata: HashMap<String, String>,
    /// `(field, "REASON: description")`.
    pub field_violations: Vec<(String, String)>,
    /// `(type, subject, description)`.
    pub preconditions: Vec<(String, String, String)>,
}

impl DecodedError {
    pub fn from_status(status: &Status) -> Self {
        let mut out = DecodedError::default();
        if let Some(info) = status.get_details_error_info() {
            out.reason = Some(info.reason);
            out.domain = Some(info.domain);
            out.metadata = info.metadata;
        }
        if let Some(bad) = status.get_details_bad_request() {
            out.field_violations = bad
                .field_violations
                .into_iter()
                .map(|v| (v.field, v.description))
                .collect();
        }
        if let Some(pre) = status.get_details_precondition_failure() {
            out.preconditions = pre
                .violations
                .into_iter()
                .map(|v| (v.r#type, v.subject, v.description))
                .collect();
        }
        out
    }

    /// Reason codes of the field violations (the part before `:`).
    pub fn field_reasons(&self) -> Vec<String> {
        self.field_violations
            .iter()
            .map(|(_, d)| d.split(':').next().unwrap_or_default().to_string())
            .collect()
    }

    pub fn precondition_kinds(&self) -> Vec<String> {
        self.preconditions
            .iter()
            .map(|(t, _, _)| t.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_round_trips_reason_and_violations() {
        let err = ApiError::new(
            Code::InvalidArgument,
            "registration.koogallery.io",
            ErrorReason::InvalidArgument,
            "the application has 1 invalid field",
        )
        .with_field_violation(
            "entity.registration_number",
            "REGISTRATION_NUMBER_LENGTH",
            "18 characters expected",
        )
        .with_precondition("NOT_ENTERPRISE_VERIFIED", "accounts/a1", "verify first");
        let status: Status = err.into();
        assert_eq!(status.code(), Code::InvalidArgument);
        let decoded = DecodedError::from_status(&status);
        assert_eq!(decoded.reason.as_deref(), Some("INVALID_ARGUMENT"));
        assert_eq!(
            decoded.domain.as_deref(),
            Some("registration.koogallery.io")
        );
        assert_eq!(decoded.field_reasons(), vec!["REGISTRATION_NUMBER_LENGTH"]);
        assert_eq!(
            decoded.precondition_kinds(),
            vec!["NOT_ENTERPRISE_VERIFIED"]
        );
    }

    /// The one mapping of the shared failures: code, reason and metadata, whatever the service.
    #[test]
    fn common_errors_map_to_one_status_each() {
        let table: Vec<(CommonError, Code, &str)> = vec![
            (
                CommonError::field("page_size", "PAGE_SIZE_INVALID", "negative"),
                Code::InvalidArgument,
                "INVALID_ARGUMENT",
            ),
            (
                CommonError::InvalidPageToken,
                Code::InvalidArgument,
                "INVALID_PAGE_TOKEN",
            ),
            (
                CommonError::IdempotencyKeyReused,
                Code::InvalidArgument,
                "IDEMPOTENCY_KEY_REUSED",
            ),
            (
                CommonError::NotOwner,
                Code::PermissionDenied,
                "NOT_ACCOUNT_OWNER",
            ),
            (
                CommonError::NoCaller,
                Code::Unauthenticated,
                "UNAUTHENTICATED",
            ),
            (CommonError::EtagMismatch, Code::Aborted, "ETAG_MISMATCH"),
            (
                CommonError::DependencyUnavailable("identity-check", Status::unavailable("down")),
                Code::Unavailable,
                "DEPENDENCY_UNAVAILABLE",
            ),
            (
                sea_orm::DbErr::Custom("connection refused".into()).into(),
                Code::Unavailable,
                "DATABASE_UNAVAILABLE",
            ),
        ];
        for (err, code, reason) in table {
            let status: Status = err.into_api("x.koogallery.io").into();
            let decoded = DecodedError::from_status(&status);
            assert_eq!(
                (status.code(), decoded.reason.as_deref()),
                (code, Some(reason))
            );
            assert_eq!(decoded.domain.as_deref(), Some("x.koogallery.io"));
            if reason == "DATABASE_UNAVAILABLE" {
                assert_eq!(decoded.metadata["dependency"], "database");
                assert!(
                    !status.message().contains("refused"),
                    "the cause stays in the log"
                );
            }
            if reason == "DEPENDENCY_UNAVAILABLE" {
                assert_eq!(decoded.metadata["service"], "identity-check");
            }
        }
    }

    #[test]
    fn internal_errors_hide_their_cause() {
        let status: Status =
            ApiError::internal("x.koogallery.io", &"password=hunter2 at db.rs:12").into();
        assert_eq!(status.code(), Code::Internal);
        assert!(!status.message().contains("hunter2"));
    }
}
