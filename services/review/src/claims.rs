//! ClaimReviewTask and ReleaseReviewTask: one reviewer at a time. A claim is the conditional
//! update of a QUEUED task (see `transition.rs`): of concurrent claims exactly one wins, the
//! others read the task again and find it claimed by someone else.

use kg_proto::review::{ClaimReviewTaskRequest, ReleaseReviewTaskRequest, ReviewTask};
use kg_runtime::auth::{Caller, Role};

use kg_runtime::error::CommonError;
use kg_runtime::error::ServiceError as _;

use crate::catalogue::MAX_COMMENT;
use crate::error::ReviewError;
use crate::service::Review;
use crate::store::{state, task};
use crate::transition::{Change, Key, Plan, Target};
use crate::{idempotency, view};

/// The etag rule: when the caller sent one, it must be the task's current one.
pub fn check_etag(etag: &str, row: &task::Model) -> Result<(), ReviewError> {
    if etag.is_empty() || etag == view::etag(row.version) {
        Ok(())
    } else {
        Err(ReviewError::from(CommonError::EtagMismatch))
    }
}

/// No reviewer works on their own account's subject.
pub fn check_not_own(caller: &Caller, row: &task::Model) -> Result<(), ReviewError> {
    if caller.subject == row.account_id {
        Err(ReviewError::SelfReview)
    } else {
        Ok(())
    }
}

impl Review {
    pub async fn claim(
        &self,
        caller: &Caller,
        req: ClaimReviewTaskRequest,
    ) -> Result<ReviewTask, ReviewError> {
        idempotency::validate_key("request_id", &req.request_id)?;
        let id = view::parse_task_name("name", &req.name)?;
        let key = Key::Request {
            request_id: &req.request_id,
            rpc: "ClaimReviewTask",
            hash: idempotency::body_hash(&req),
        };
        let plan = |row: &task::Model, now| {
            check_not_own(caller, row)?;
            if row.state == state::CLAIMED && row.assignee.as_deref() == Some(&caller.subject) {
                return Ok(Plan::Unchanged); // claiming a task one holds succeeds
            }
            check_etag(&req.etag, row)?;
            match row.state.as_str() {
                state::QUEUED => {}
                state::CLAIMED => {
                    return Err(ReviewError::ClaimedByOther {
                        assignee: row.assignee.clone().unwrap_or_default(),
                    });
                }
                other => {
                    return Err(ReviewError::InvalidState {
                        state: other.to_string(),
                    });
                }
            }
            let mut after = row.clone();
            after.state = state::CLAIMED.to_string();
            after.assignee = Some(caller.subject.clone());
            after.claim_time = Some(now);
            after.update_time = now;
            Ok(Plan::Change(Box::new(Change {
                after,
                action: view::action::CLAIMED,
                comment: String::new(),
                reason_codes: Vec::new(),
                decision: None,
                outcome: "CLAIMED",
            })))
        };
        let applied = self
            .change(
                caller,
                &key,
                Target::Id {
                    id: &id,
                    name: &req.name,
                },
                &plan,
            )
            .await?;
        Ok(view::task(&applied.row, view::now())?)
    }

    pub async fn release(
        &self,
        caller: &Caller,
        req: ReleaseReviewTaskRequest,
    ) -> Result<ReviewTask, ReviewError> {
        idempotency::validate_key("request_id", &req.request_id)?;
        let id = view::parse_task_name("name", &req.name)?;
        let (comment, length) = view::text(&req.comment);
        if length > MAX_COMMENT {
            return Err(ReviewError::field(
                "comment",
                "COMMENT_TOO_LONG",
                format!("at most {MAX_COMMENT} characters ({length} given)"),
            ));
        }
        let key = Key::Request {
            request_id: &req.request_id,
            rpc: "ReleaseReviewTask",
            hash: idempotency::body_hash(&req),
        };
        let plan = |row: &task::Model, now| {
            if row.state != state::CLAIMED {
                return Err(ReviewError::NotClaimed);
            }
            let assignee = row.assignee.clone().unwrap_or_default();
            if assignee != caller.subject && caller.role != Role::Operator {
                return Err(ReviewError::ReleaseDenied { assignee });
            }
            check_etag(&req.etag, row)?;
            let mut after = row.clone();
            after.state = state::QUEUED.to_string();
            after.assignee = None;
            after.claim_time = None;
            after.update_time = now;
            Ok(Plan::Change(Box::new(Change {
                after,
                action: view::action::RELEASED,
                comment: comment.to_string(),
                reason_codes: Vec::new(),
                decision: None,
                outcome: "RELEASED",
            })))
        };
        let applied = self
            .change(
                caller,
                &key,
                Target::Id {
                    id: &id,
                    name: &req.name,
                },
                &plan,
            )
            .await?;
        Ok(view::task(&applied.row, view::now())?)
    }
}
