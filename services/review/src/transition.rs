//! How every change of an existing task is made, the same way for all of them:
//!
//! 1. a retry of the same call (same `request_id` of the same caller, or same `event_id`)
//!    returns the task as it is now;
//! 2. the task is read and the change is planned from it (this is where the rules are: who may
//!    act, in which state);
//! 3. one transaction writes the planned row with `UPDATE … WHERE task_id = ? AND version = ?`
//!    (first statement, so SQLite takes its write lock before reading), the audit entry, the
//!    idempotency key and, for a decision, the outbox event;
//! 4. zero rows updated means another change won the race: read again and plan again, so the
//!    loser of two concurrent decisions sees the winner's state and gets its error.

use chrono::{DateTime, Utc};
use kg_runtime::auth::Caller;
use kg_runtime::outbox::{self, NewEvent};
use sea_orm::{ColumnTrait, DbErr, EntityTrait, QueryFilter, TransactionTrait};

use crate::audit::{self, Entry};
use crate::error::ReviewError;
use crate::idempotency;
use crate::migrations::OUTBOX;
use crate::service::Review;
use crate::store::{self, task};
use crate::view;

/// How often a change is planned again after losing a race before giving up (ABORTED).
const ATTEMPTS: usize = 8;

/// The idempotency key of a call.
pub enum Key<'a> {
    /// A staff mutation's `request_id`, remembered per caller.
    Request {
        request_id: &'a str,
        rpc: &'static str,
        hash: String,
    },
    /// An internal call's `event_id`, remembered in the inbox.
    Event {
        event_id: &'a str,
        rpc: &'static str,
        hash: String,
    },
    /// A call that is safe to repeat as it is (RerunChecks).
    None,
}

impl Key<'_> {
    fn id(&self) -> &str {
        match self {
            Key::Request { request_id, .. } => request_id,
            Key::Event { event_id, .. } => event_id,
            Key::None => "",
        }
    }
}

/// Which task a call is about.
pub enum Target<'a> {
    /// By id; `name` for the NOT_FOUND message.
    Id { id: &'a str, name: &'a str },
    /// The task of a subject.
    Subject(&'a str),
}

/// A decision on its way to registration: the outbox payload.
pub struct DecisionEvent {
    pub payload: serde_json::Value,
}

/// One planned change of a task.
pub struct Change {
    pub after: task::Model,
    pub action: &'static str,
    pub comment: String,
    pub reason_codes: Vec<String>,
    pub decision: Option<DecisionEvent>,
    /// Remembered with an event id (for example CANCELLED), returned to its retries.
    pub outcome: &'static str,
}

pub enum Plan {
    /// Nothing to do; the call succeeds with the task as it is (an idempotent repeat).
    Unchanged,
    Change(Box<Change>),
}

/// The task after the call, and the outcome when this call (or its first attempt) changed it.
pub struct Applied {
    pub row: task::Model,
    pub outcome: Option<String>,
}

/// A plan: the rules of one RPC, applied to the task as read at `now`.
pub type Planner<'p> =
    dyn Fn(&task::Model, DateTime<Utc>) -> Result<Plan, ReviewError> + Send + Sync + 'p;

impl Review {
    pub(crate) async fn find_task(&self, target: &Target<'_>) -> Result<task::Model, ReviewError> {
        match target {
            Target::Id { id, name } => task::Entity::find_by_id(id.to_string())
                .one(&self.db)
                .await?
                .ok_or_else(|| ReviewError::TaskNotFound(name.to_string())),
            Target::Subject(subject) => task::Entity::find()
                .filter(task::Column::Subject.eq(*subject))
                .one(&self.db)
                .await?
                .ok_or_else(|| ReviewError::NoTaskForSubject(subject.to_string())),
        }
    }

    async fn replayed(
        &self,
        caller: &Caller,
        key: &Key<'_>,
    ) -> Result<Option<Applied>, ReviewError> {
        let seen = match key {
            Key::Request {
                request_id,
                rpc,
                hash,
            } => idempotency::replay(&self.db, &caller.subject, request_id, rpc, hash)
                .await?
                .map(|task_id| (task_id, None)),
            Key::Event {
                event_id,
                rpc,
                hash,
            } => idempotency::seen_event(&self.db, event_id, rpc, hash)
                .await?
                .map(|seen| (seen.task_id, Some(seen.outcome))),
            Key::None => None,
        };
        let Some((task_id, outcome)) = seen else {
            return Ok(None);
        };
        let name = view::task_name(&task_id);
        let row = self
            .find_task(&Target::Id {
                id: &task_id,
                name: &name,
            })
            .await?;
        Ok(Some(Applied { row, outcome }))
    }

    /// Applies the planned change of one task (see the module documentation).
    pub(crate) async fn change(
        &self,
        caller: &Caller,
        key: &Key<'_>,
        target: Target<'_>,
        plan: &Planner<'_>,
    ) -> Result<Applied, ReviewError> {
        if let Some(applied) = self.replayed(caller, key).await? {
            return Ok(applied);
        }
        for _ in 0..ATTEMPTS {
            let before = self.find_task(&target).await?;
            let now = view::now();
            let change = match plan(&before, now) {
                Ok(Plan::Unchanged) => {
                    return Ok(Applied {
                        row: before,
                        outcome: None,
                    });
                }
                Ok(Plan::Change(change)) => *change,
                Err(e) => {
                    // A concurrent retry of this very call may have made the change.
                    if let Some(applied) = self.replayed(caller, key).await? {
                        return Ok(applied);
                    }
                    return Err(e);
                }
            };
            match self.write(caller, key, &before, change, now).await {
                Ok(Some(applied)) => return Ok(applied),
                Ok(None) => continue, // another change won; plan again on the new row
                Err(e) if kg_runtime::db::is_unique_violation(&e) => {
                    // The key was written concurrently by a retry of this call.
                    if let Some(applied) = self.replayed(caller, key).await? {
                        return Ok(applied);
                    }
                    return Err(ReviewError::Contended);
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(ReviewError::Contended)
    }

    async fn write(
        &self,
        caller: &Caller,
        key: &Key<'_>,
        before: &task::Model,
        change: Change,
        now: DateTime<Utc>,
    ) -> Result<Option<Applied>, DbErr> {
        let txn = self.db.begin().await?;
        let Some(mut after) = store::update_if_unchanged(&txn, before, change.after).await? else {
            txn.rollback().await?;
            return Ok(None);
        };
        if after.profile != before.profile || after.company_name != before.company_name {
            // The duplicate-signal keys follow the profile under review.
            crate::signals::replace_keys(&txn, &after).await?;
        }
        audit::record(
            &txn,
            Entry {
                task: &after,
                actor: caller,
                action: change.action,
                before: Some(&before.state),
                comment: &change.comment,
                reason_codes: &change.reason_codes,
                request_id: key.id(),
                at: now,
            },
        )
        .await?;
        match key {
            Key::Request {
                request_id,
                rpc,
                hash,
            } => {
                idempotency::remember_request(
                    &txn,
                    &caller.subject,
                    request_id,
                    rpc,
                    hash,
                    &after.task_id,
                    now,
                )
                .await?
            }
            Key::Event {
                event_id,
                rpc,
                hash,
            } => {
                idempotency::remember_event(
                    &txn,
                    event_id,
                    rpc,
                    hash,
                    &after.task_id,
                    change.outcome,
                    now,
                )
                .await?
            }
            Key::None => {}
        }
        let decided = change.decision.is_some();
        if let Some(decision) = change.decision {
            let event_id = outbox::append(
                &txn,
                OUTBOX,
                NewEvent {
                    destination: crate::relay::REGISTRATION,
                    event_type: crate::relay::DECISION,
                    account_id: &after.account_id,
                    subject: &after.subject,
                    payload: decision.payload,
                },
            )
            .await?;
            task::Entity::update_many()
                .col_expr(
                    task::Column::DecisionEventId,
                    sea_orm::sea_query::Expr::value(Some(event_id.clone())),
                )
                .filter(task::Column::TaskId.eq(after.task_id.clone()))
                .exec(&txn)
                .await?;
            after.decision_event_id = Some(event_id);
        }
        txn.commit().await?;
        if decided {
            self.outbox.notify_one();
        }
        Ok(Some(Applied {
            row: after,
            outcome: Some(change.outcome.to_string()),
        }))
    }
}
