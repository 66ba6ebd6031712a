//! Idempotency: staff mutations carry a `request_id`, remembered per caller with the RPC and a
//! hash of the body (`review_requests`); internal, event-driven RPCs carry the outbox
//! `event_id` of the sender, remembered in the inbox (`review_inbox`). A retry with the same key
//! and body returns the task as it is now without repeating the effect; the same key with a
//! different body is refused (IDEMPOTENCY_KEY_REUSED). The key is written in the same
//! transaction as the change it guards.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, Set};

use kg_runtime::idempotency::KeyUse;

use crate::error::ReviewError;
use crate::store::{inbox, request};

pub use kg_runtime::idempotency::{body_hash, validate_key};

/// The task a previous use of this caller's `request_id` acted on, if any.
pub async fn replay(
    db: &DatabaseConnection,
    caller: &str,
    request_id: &str,
    rpc: &str,
    body_hash: &str,
) -> Result<Option<String>, ReviewError> {
    let Some(seen) = request::Entity::find_by_id((request_id.to_string(), caller.to_string()))
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    KeyUse {
        rpc,
        body_sha256: body_hash,
    }
    .matches(&seen.rpc, &seen.body_sha256)?;
    Ok(Some(seen.task_id))
}

pub async fn remember_request<C: ConnectionTrait>(
    db: &C,
    caller: &str,
    request_id: &str,
    rpc: &str,
    body_hash: &str,
    task_id: &str,
    at: DateTime<Utc>,
) -> Result<(), DbErr> {
    request::ActiveModel {
        request_id: Set(request_id.to_string()),
        caller: Set(caller.to_string()),
        rpc: Set(rpc.to_string()),
        body_sha256: Set(body_hash.to_string()),
        task_id: Set(task_id.to_string()),
        create_time: Set(at),
    }
    .insert(db)
    .await
    .map(|_| ())
}

/// What an event already processed produced: its task and outcome.
pub struct Seen {
    pub task_id: String,
    pub outcome: String,
}

pub async fn seen_event(
    db: &DatabaseConnection,
    event_id: &str,
    rpc: &str,
    body_hash: &str,
) -> Result<Option<Seen>, ReviewError> {
    let Some(seen) = inbox::Entity::find_by_id(event_id.to_string())
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    KeyUse {
        rpc,
        body_sha256: body_hash,
    }
    .matches(&seen.rpc, &seen.body_sha256)?;
    Ok(Some(Seen {
        task_id: seen.task_id,
        outcome: seen.outcome,
    }))
}

pub async fn remember_event<C: ConnectionTrait>(
    db: &C,
    event_id: &str,
    rpc: &str,
    body_hash: &str,
    task_id: &str,
    outcome: &str,
    at: DateTime<Utc>,
) -> Result<(), DbErr> {
    inbox::ActiveModel {
        event_id: Set(event_id.to_string()),
        rpc: Set(rpc.to_string()),
        body_sha256: Set(body_hash.to_string()),
        task_id: Set(task_id.to_string()),
        outcome: Set(outcome.to_string()),
        receive_time: Set(at),
    }
    .insert(db)
    .await
    .map(|_| ())
}
