//! Idempotency keys: a retry with the same `request_id` returns the first result; the same id
//! with a different body is refused (IDEMPOTENCY_KEY_REUSED).

use prost::Message;
use sea_orm::{DatabaseConnection, EntityTrait};
use sha2::{Digest, Sha256};

use crate::error::RegistrationError;
use crate::store::request;

pub fn validate_request_id(id: &str) -> Result<(), RegistrationError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        return Ok(());
    }
    Err(RegistrationError::field(
        "request_id",
        "REQUEST_ID_INVALID",
        "request_id is required: 1-64 characters of A-Z, a-z, 0-9, '-' and '_' (a UUID is ideal)",
    ))
}

/// SHA-256 of the request's encoding. Prost encodes fields in a fixed order, so equal messages
/// hash equally.
pub fn body_hash<M: Message>(request: &M) -> String {
    hex::encode(Sha256::digest(request.encode_to_vec()))
}

/// The resource a previous use of this key produced, if any.
pub async fn replay(
    db: &DatabaseConnection,
    request_id: &str,
    rpc: &str,
    body_hash: &str,
) -> Result<Option<String>, RegistrationError> {
    let Some(seen) = request::Entity::find_by_id(request_id.to_string())
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    if seen.rpc != rpc || seen.body_sha256 != body_hash {
        return Err(RegistrationError::IdempotencyKeyReused);
    }
    Ok(Some(seen.resource))
}
