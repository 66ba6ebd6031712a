//! Writing the audit trail: one append-only entry per action, in the transaction of the action.

use chrono::{DateTime, Utc};
use kg_runtime::auth::Caller;
use sea_orm::{ActiveModelTrait, ConnectionTrait, DbErr, NotSet, Set};

use crate::store::{audit, task};
use crate::view;

/// One audited action on `task` (the row after the action).
pub struct Entry<'a> {
    pub task: &'a task::Model,
    pub actor: &'a Caller,
    pub action: &'static str,
    pub before: Option<&'a str>,
    pub comment: &'a str,
    pub reason_codes: &'a [String],
    /// The request_id or event_id of the call.
    pub request_id: &'a str,
    pub at: DateTime<Utc>,
}

pub async fn record<C: ConnectionTrait>(db: &C, entry: Entry<'_>) -> Result<(), DbErr> {
    audit::ActiveModel {
        seq: NotSet,
        entry_id: Set(uuid::Uuid::now_v7().to_string()),
        task_id: Set(entry.task.task_id.clone()),
        subject: Set(entry.task.subject.clone()),
        actor: Set(entry.actor.subject.clone()),
        actor_role: Set(view::role_name(entry.actor.role).to_string()),
        action: Set(entry.action.to_string()),
        before_state: Set(entry.before.map(str::to_string)),
        after_state: Set(entry.task.state.clone()),
        comment: Set(entry.comment.to_string()),
        reason_codes: Set(entry.reason_codes.join(",")),
        request_id: Set(entry.request_id.to_string()),
        action_time: Set(entry.at),
    }
    .insert(db)
    .await
    .map(|_| ())
}
