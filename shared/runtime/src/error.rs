//! The error model: every service turns its own error enum into an [`ApiError`], and this is the
//! one place an `ApiError` becomes a `tonic::Status` with `google.rpc` details.
//!
//! Each error carries a machine-readable reason (`google.rpc.ErrorInfo.reason`: the name of a
//! `koogallery.common.v1.ErrorReason` value; the type admits no other string) and the domain of the service that raised it (`registration.koogallery.io`). Field problems
//! travel as `BadRequest` violations; failed preconditions (eligibility) as
//! `PreconditionFailure` violations.

use std::collections::HashMap;

pub use kg_proto::common::ErrorReason;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

#[derive(Debug, Clone, PartialEq, Eq)]
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

    /// UNAVAILABLE for a dependency that does not answer; the caller may retry.
    pub fn unavailable(domain: &'static str, what: &str, cause: &dyn std::fmt::Display) -> Self {
        tracing::warn!(
            dependency = what,
            error = %crate::redact::scrub(&cause.to_string()),
            "dependency unavailable"
        );
        Self::new(
            Code::Unavailable,
            domain,
            ErrorReason::DependencyUnavailable,
            format!("{what} is unavailable; retry later"),
        )
        .with_metadata("dependency", what)
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

    #[test]
    fn internal_errors_hide_their_cause() {
        let status: Status =
            ApiError::internal("x.koogallery.io", &"password=hunter2 at db.rs:12").into();
        assert_eq!(status.code(), Code::Internal);
        assert!(!status.message().contains("hunter2"));
    }
}
