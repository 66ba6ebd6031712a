//! notification's errors: its own, mapped here, and the ones every service shares
//! ([`CommonError`], mapped once by the runtime). Reason codes are listed in
//! `proto/koogallery/notification/v1/notification.proto`.

use kg_runtime::ApiError;
use kg_runtime::error::{CommonError, ErrorReason, ServiceError};
use tonic::Code;

pub const DOMAIN: &str = "notification.koogallery.io";

#[derive(Debug, thiserror::Error)]
pub enum NotificationError {
    #[error("template parameter {0} missing")]
    TemplateParameterMissing(&'static str),
    #[error("account {0} not found")]
    AccountNotFound(String),
    #[error("{0} not found")]
    NotificationNotFound(String),
    #[error(transparent)]
    Common(#[from] CommonError),
}

impl From<sea_orm::DbErr> for NotificationError {
    fn from(err: sea_orm::DbErr) -> Self {
        Self::Common(err.into())
    }
}

impl ServiceError for NotificationError {}

impl From<NotificationError> for tonic::Status {
    fn from(err: NotificationError) -> Self {
        use NotificationError as E;
        let api = match err {
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
            E::NotificationNotFound(name) => ApiError::new(
                Code::NotFound,
                DOMAIN,
                ErrorReason::NotificationNotFound,
                format!("{name} does not exist"),
            )
            .with_metadata("name", name),
            E::Common(common) => common.into_api(DOMAIN),
        };
        api.into()
    }
}
