//! registration's outbox events: each state change writes, in its own transaction, one event per
//! destination that must hear of it, and one event of the WatchEvents log (events.rs). The relay
//! (relay.rs) delivers the outbox rows.

use kg_runtime::outbox::{NewEvent, append_all};
use sea_orm::{ConnectionTrait, DbErr};

use crate::events::{self, EventKind};
use crate::migrations::OUTBOX;

use base64::Engine;
use kg_proto::notification::SendNotificationRequest;
use prost::Message;

pub const REVIEW: &str = "review";
pub const NOTIFICATION: &str = "notification";

/// Writes `kind` about `subject` for each destination, and once to the event log. `actor` is
/// the principal that caused the change (account id, staff id or service).
///
/// Call it as the last write of the transaction: on PostgreSQL the event log holds a lock from
/// here to commit (see events.rs).
pub async fn announce<C: ConnectionTrait>(
    db: &C,
    kind: EventKind,
    account_id: &str,
    subject: &str,
    actor: &str,
    destinations: &[&str],
) -> Result<(), DbErr> {
    let outgoing: Vec<NewEvent<'_>> = destinations
        .iter()
        .map(|destination| NewEvent {
            destination,
            event_type: kind.as_str(),
            account_id,
            subject,
            payload: serde_json::json!({}),
        })
        .collect();
    append_all(db, OUTBOX, &outgoing).await?;
    events::record(db, kind, account_id, subject, actor).await
}

/// The payload key of a frozen SendNotificationRequest (base64 of its encoding): the relay sends
/// exactly these bytes on every attempt (see relay.rs).
pub const FROZEN_REQUEST: &str = "send_notification";

/// An outbox payload holding `request` frozen.
pub fn frozen_payload(request: &SendNotificationRequest) -> serde_json::Value {
    serde_json::json!({
        FROZEN_REQUEST: base64::engine::general_purpose::STANDARD.encode(request.encode_to_vec()),
    })
}
