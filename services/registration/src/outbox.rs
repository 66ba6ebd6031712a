//! The outbox: events written in the same transaction as the state change they announce. A relay
//! (the review-workflow issue) delivers them to review and notification; WatchEvents will read them.

use chrono::Utc;
use sea_orm::{ActiveModelTrait, ConnectionTrait, DbErr, NotSet, Set};

use crate::store::outbox;

pub async fn append<C: ConnectionTrait>(
    db: &C,
    event_type: &str,
    account_id: &str,
    subject: &str,
) -> Result<String, DbErr> {
    let event_id = uuid::Uuid::now_v7().to_string();
    outbox::ActiveModel {
        seq: NotSet,
        event_id: Set(event_id.clone()),
        event_type: Set(event_type.to_string()),
        account_id: Set(account_id.to_string()),
        subject: Set(subject.to_string()),
        payload: Set(serde_json::json!({})),
        create_time: Set(Utc::now()),
        delivered_time: Set(None),
        attempts: Set(0),
    }
    .insert(db)
    .await?;
    Ok(event_id)
}
