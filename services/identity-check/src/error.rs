//! identity-check's errors: its own, mapped here, and the ones every service shares
//! ([`CommonError`], mapped once by the runtime).

use kg_runtime::ApiError;
use kg_runtime::error::{CommonError, ErrorReason, ServiceError};
use tonic::Code;

pub const DOMAIN: &str = "identity.koogallery.io";

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("account {0} not found")]
    AccountNotFound(String),
    #[error("too many accounts in one import ({0}; at most {1})")]
    ImportTooLarge(usize, usize),
    #[error(transparent)]
    Common(#[from] CommonError),
}

impl From<sea_orm::DbErr> for IdentityError {
    fn from(err: sea_orm::DbErr) -> Self {
        Self::Common(err.into())
    }
}

impl ServiceError for IdentityError {}

impl From<IdentityError> for tonic::Status {
    fn from(err: IdentityError) -> Self {
        let api = match err {
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
            IdentityError::Common(common) => common.into_api(DOMAIN),
        };
        api.into()
    }
}
