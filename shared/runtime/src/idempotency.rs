//! Idempotency keys, the part every service shares: a `request_id` (or the `event_id` of an
//! outbox event) names one use of one RPC with one body. A retry with the same key and body
//! gets the first result; the same key with another body or for another RPC is refused
//! (IDEMPOTENCY_KEY_REUSED). Where the keys are stored is each service's own (its table, written
//! in the transaction of the effect the key guards).

use prost::Message;
use sha2::{Digest as _, Sha256};

use crate::error::CommonError;

/// Whether `id` can be a key: 1-64 characters of A-Z, a-z, 0-9, '-' and '_' (a UUID is ideal).
pub fn is_plain_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Checks the key in the request field `field` (`request_id` or `event_id`; the violation's
/// reason is `REQUEST_ID_INVALID` or `EVENT_ID_INVALID`).
pub fn validate_key(field: &str, id: &str) -> Result<(), CommonError> {
    if is_plain_id(id) {
        return Ok(());
    }
    let reason = if field == "event_id" {
        "EVENT_ID_INVALID"
    } else {
        "REQUEST_ID_INVALID"
    };
    Err(CommonError::field(
        field,
        reason,
        format!(
            "{field} is required: 1-64 characters of A-Z, a-z, 0-9, '-' and '_' (a UUID is ideal)"
        ),
    ))
}

/// SHA-256 of the request's encoding, hex. Prost encodes fields in a fixed order, so equal
/// messages hash equally.
pub fn body_hash<M: Message>(request: &M) -> String {
    hex::encode(Sha256::digest(request.encode_to_vec()))
}

/// One use of a key: the RPC it was sent to and the hash of its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyUse<'a> {
    pub rpc: &'a str,
    pub body_sha256: &'a str,
}

impl KeyUse<'_> {
    /// `Ok` when the stored use of the same key (its row's `rpc` and `body_sha256`) is this same
    /// request, so that its result may be replayed; IDEMPOTENCY_KEY_REUSED otherwise.
    pub fn matches(&self, stored_rpc: &str, stored_body_sha256: &str) -> Result<(), CommonError> {
        if self.rpc == stored_rpc && self.body_sha256 == stored_body_sha256 {
            Ok(())
        } else {
            Err(CommonError::IdempotencyKeyReused)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_plain_ids_and_reuse_needs_the_same_rpc_and_body() {
        assert!(validate_key("request_id", "8a1f-req_2").is_ok());
        for bad in ["", "a b", "ü", &"x".repeat(65)] {
            let Err(CommonError::Invalid(v)) = validate_key("event_id", bad) else {
                panic!("{bad:?} accepted");
            };
            assert_eq!(v[0].reason, "EVENT_ID_INVALID");
        }
        let hash = body_hash(&prost_types::Timestamp {
            seconds: 1,
            nanos: 0,
        });
        let first = KeyUse {
            rpc: "Submit",
            body_sha256: &hash,
        };
        assert!(first.matches("Submit", &hash).is_ok());
        for (rpc, body) in [("Withdraw", hash.as_str()), ("Submit", "0f")] {
            assert!(matches!(
                first.matches(rpc, body),
                Err(CommonError::IdempotencyKeyReused)
            ));
        }
    }
}
