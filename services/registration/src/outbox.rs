//! registration's outbox events: each state change writes, in its own transaction, one event per
//! destination that must hear of it. The relay (relay.rs) delivers them.

use kg_runtime::outbox::{NewEvent, append};
use sea_orm::{ConnectionTrait, DbErr};

use crate::migrations::OUTBOX;

pub const REVIEW: &str = "review";
pub const NOTIFICATION: &str = "notification";

/// Writes `event_type` about `subject` for each destination.
pub async fn announce<C: ConnectionTrait>(
    db: &C,
    event_type: &str,
    account_id: &str,
    subject: &str,
    destinations: &[&str],
) -> Result<(), DbErr> {
    for destination in destinations {
        append(
            db,
            OUTBOX,
            NewEvent {
                destination,
                event_type,
                account_id,
                subject,
                payload: serde_json::json!({}),
            },
        )
        .await?;
    }
    Ok(())
}
