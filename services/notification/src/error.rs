//! notification's errors, mapped once to gRPC status. Reason codes are listed in
//! `proto/koogallery/notification/v1/notification.proto`.

use kg_runtime::ApiError;
use kg_runtime::error::ErrorReason;
use kg_runtime::error::FieldViolation;
use tonic::Code;

pub const DOMAIN: &str = "notification.koogallery.io";

#[derive(Debug, thiserror::Error)]
pub enum NotificationError {
    #[error("invalid request")]
    Invalid(Vec<FieldViolation>),
    #[error("event id reused with a different body")]
    IdempotencyKeyReused,
    #[error("template parameter {0} missing")]
    TemplateParameterMissing(&'static str),
    #[error("account {0} not found")]
    AccountNotFound(String),
    #[error("{0} unavailable: {1}")]
    DependencyUnavailable(&'static str, tonic::Status),
    #[error("{0} not found")]
    NotificationNotFound(String),
    #[error("invalid page token")]
    InvalidPageToken,
    #[error("permission denied: {0}")]
    PermissionDenied(&'static str),
    #[error("database: {0}")]
    Database(#[from] sea_orm::DbErr),
}

impl NotificationError {
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

impl From<NotificationError> for tonic::Status {
    fn from(err: NotificationError) -> Self {
        use NotificationError as E;
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
            E::IdempotencyKeyReused => ApiError::new(
                Code::InvalidArgument,
                DOMAIN,
                ErrorReason::IdempotencyKeyReused,
                "event_id was already received with a different request body; \
                 a new event needs a new event_id",
            ),
            E::TemplateParameterMissing(name) => ApiError::new(
                Code::InvalidArgument,
                DOMAIN,
                ErrorReason::TemplateParameterMissing,
                format!("the template of this event type needs template_parameters[{name:?}]"),
            )
            .with_metadata("parameter", name)
            .with_field_violation(
                format!("template_parameters[{name}]"),
                "TEMPLATE_PARAMETER_MISSING",
                "required by the template of this event type",
            ),
            E::AccountNotFound(id) => ApiError::new(
                Code::NotFound,
                DOMAIN,
                ErrorReason::AccountNotFound,
                format!("account {id:?} is not in the account directory; nothing was stored"),
            )
            .with_metadata("account_id", id),
            E::DependencyUnavailable(service, status) => {
                tracing::warn!(service, code = ?status.code(), message = status.message(), "dependency call failed");
                ApiError::new(
                    Code::Unavailable,
                    DOMAIN,
                    ErrorReason::DependencyUnavailable,
                    format!("{service} is unavailable; nothing was stored, retry later"),
                )
                .with_metadata("service", service)
            }
            E::NotificationNotFound(name) => ApiError::new(
                Code::NotFound,
                DOMAIN,
                ErrorReason::NotificationNotFound,
                format!("{name} does not exist"),
            )
            .with_metadata("name", name),
            E::InvalidPageToken => ApiError::new(
                Code::InvalidArgument,
                DOMAIN,
                ErrorReason::InvalidPageToken,
                "page_token is not one this service returned for these filters",
            ),
            E::PermissionDenied(why) => ApiError::new(
                Code::PermissionDenied,
                DOMAIN,
                ErrorReason::PermissionDenied,
                why,
            ),
            E::Database(e) => {
                tracing::warn!(error = %e, "database error");
                ApiError::new(
                    Code::Unavailable,
                    DOMAIN,
                    ErrorReason::DatabaseUnavailable,
                    "the notification database does not answer; retry later",
                )
            }
        };
        api.into()
    }
}
