//! identity-check's errors, mapped once to gRPC status.

use kg_runtime::ApiError;
use kg_runtime::error::ErrorReason;
use tonic::Code;

pub const DOMAIN: &str = "identity.koogallery.io";

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("invalid request")]
    Invalid(Vec<(String, &'static str, String)>),
    #[error("account {0} not found")]
    AccountNotFound(String),
    #[error("too many accounts in one import ({0}; at most {1})")]
    ImportTooLarge(usize, usize),
    #[error("the caller does not own this account")]
    NotOwner,
    #[error("database: {0}")]
    Database(#[from] sea_orm::DbErr),
}

impl IdentityError {
    pub fn field(
        field: impl Into<String>,
        reason: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self::Invalid(vec![(field.into(), reason, message.into())])
    }
}

impl From<IdentityError> for tonic::Status {
    fn from(err: IdentityError) -> Self {
        let api = match err {
            IdentityError::Invalid(violations) => {
                let mut api = ApiError::new(
                    Code::InvalidArgument,
                    DOMAIN,
                    ErrorReason::InvalidArgument,
                    format!(
                        "{} invalid field(s); see the field violations",
                        violations.len()
                    ),
                );
                for (field, reason, message) in violations {
                    api = api.with_field_violation(field, reason, message);
                }
                api
            }
            IdentityError::AccountNotFound(id) => ApiError::new(
                Code::NotFound,
                DOMAIN,
                ErrorReason::AccountNotFound,
                format!("account {id:?} does not exist"),
            ),
            IdentityError::ImportTooLarge(n, max) => ApiError::new(
                Code::InvalidArgument,
                DOMAIN,
                ErrorReason::ImportTooLarge,
                format!("{n} accounts in one import; send at most {max} per call"),
            ),
            IdentityError::NotOwner => ApiError::new(
                Code::PermissionDenied,
                DOMAIN,
                ErrorReason::NotAccountOwner,
                "applicants check only their own account",
            ),
            IdentityError::Database(e) => {
                if kg_runtime::db::is_unique_violation(&e) {
                    ApiError::new(
                        Code::Aborted,
                        DOMAIN,
                        ErrorReason::ConcurrentUpdate,
                        "a concurrent update won; retry",
                    )
                } else {
                    ApiError::unavailable(DOMAIN, "database", &e)
                }
            }
        };
        api.into()
    }
}
