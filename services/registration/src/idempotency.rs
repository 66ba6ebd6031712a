//! Idempotency keys: a retry with the same `request_id` returns the first result; the same id
//! with a different body is refused (IDEMPOTENCY_KEY_REUSED).
//!
//! The key is written in the transaction of the effect it guards, so a request either finds the
//! key of an earlier use or makes its effect and writes the key together. [`Key::run`] looks the
//! key up before the work and again when the work fails: a concurrent copy of the same request
//! that committed first makes every later copy fail somehow (a precondition its state now
//! violates, a unique violation on the key or an index, an etag or state mismatch), and those
//! copies answer with its result instead.

use std::future::Future;

use chrono::{DateTime, Utc};
use prost::Message;
use sea_orm::{DatabaseConnection, EntityTrait, Set};

use kg_runtime::error::CommonError;
use kg_runtime::idempotency::{KeyUse, body_hash, validate_key};

use crate::error::RegistrationError;
use crate::store::request;

pub fn validate_request_id(id: &str) -> Result<(), RegistrationError> {
    Ok(validate_key("request_id", id)?)
}

/// One use of an idempotency key: the key, the RPC it was sent to and the hash of the body.
#[derive(Debug, Clone)]
pub struct Key {
    pub request_id: String,
    pub rpc: &'static str,
    pub hash: String,
}

impl Key {
    /// The key of `body`, whose `request_id` (or `event_id`) is `id`; refuses a malformed id.
    pub fn new<M: Message>(
        id: &str,
        rpc: &'static str,
        body: &M,
    ) -> Result<Key, RegistrationError> {
        validate_request_id(id)?;
        Ok(Key {
            request_id: id.to_string(),
            rpc,
            hash: body_hash(body),
        })
    }

    /// The resource an earlier use of this key produced, if any.
    pub async fn replay(
        &self,
        db: &DatabaseConnection,
    ) -> Result<Option<String>, RegistrationError> {
        let Some(seen) = request::Entity::find_by_id(self.request_id.clone())
            .one(db)
            .await?
        else {
            return Ok(None);
        };
        KeyUse {
            rpc: self.rpc,
            body_sha256: &self.hash,
        }
        .matches(&seen.rpc, &seen.body_sha256)?;
        Ok(Some(seen.resource))
    }

    /// The row that remembers this use, producing `resource`; insert it in the effect's
    /// transaction.
    pub fn record(&self, resource: &str, now: DateTime<Utc>) -> request::ActiveModel {
        request::ActiveModel {
            request_id: Set(self.request_id.clone()),
            rpc: Set(self.rpc.to_string()),
            body_sha256: Set(self.hash.clone()),
            resource: Set(resource.to_string()),
            create_time: Set(now),
        }
    }

    /// Runs `work` unless this key was used before; `replayed` turns the stored resource name
    /// into the answer. When `work` fails, the key is looked up again: a concurrent copy of this
    /// request may have committed meanwhile, and its result is the answer.
    pub async fn run<T, Replayed>(
        &self,
        db: &DatabaseConnection,
        work: impl Future<Output = Result<T, RegistrationError>>,
        replayed: impl FnOnce(String) -> Replayed,
    ) -> Result<T, RegistrationError>
    where
        Replayed: Future<Output = Result<T, RegistrationError>>,
    {
        if let Some(resource) = self.replay(db).await? {
            return replayed(resource).await;
        }
        let failure = match work.await {
            Ok(done) => return Ok(done),
            Err(e) => e,
        };
        match self.replay(db).await {
            Ok(Some(resource)) => replayed(resource).await,
            Ok(None) => Err(failure),
            Err(reused @ RegistrationError::Common(CommonError::IdempotencyKeyReused)) => {
                Err(reused)
            }
            // The lookup failed too (the database is gone): the work's error says more.
            Err(_) => Err(failure),
        }
    }
}
