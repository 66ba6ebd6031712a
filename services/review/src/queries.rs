//! GetReviewTask, ListReviewTasks (the queue, by deadline) and ListAuditEntries (oldest first).
//!
//! Pagination is by key (the last row's sort key), so a page never repeats or skips rows that
//! did not move. A page token is base64url JSON of that key and a hash of the filters it was
//! made for: a token used with other filters, or tampered with, is INVALID_PAGE_TOKEN.

use chrono::{DateTime, SecondsFormat, Utc};
use kg_proto::review::{
    ListAuditEntriesRequest, ListAuditEntriesResponse, ListReviewTasksRequest,
    ListReviewTasksResponse, ReviewTask,
};
use kg_runtime::auth::Caller;
use sea_orm::sea_query::{Expr, ExprTrait, Order};
use sea_orm::{
    ColumnTrait, Condition, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};
use serde::{Deserialize, Serialize};

use kg_runtime::error::{CommonError, Violations};
use kg_runtime::paging::{self, Paging};

use crate::error::ReviewError;
use crate::service::Review;
use crate::store::{audit, state, task};
use crate::{signals, view};

/// Where a page of tasks ended: `(deadline, task_id)` of its last task.
#[derive(Serialize, Deserialize)]
struct TaskCursor {
    d: Option<String>,
    i: String,
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

impl Review {
    pub async fn get(&self, name: &str) -> Result<ReviewTask, ReviewError> {
        let id = view::parse_task_name("name", name)?;
        let row = task::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .ok_or_else(|| ReviewError::TaskNotFound(name.to_string()))?;
        let mut tasks = signals::tasks(&self.db, std::slice::from_ref(&row), view::now()).await?;
        match tasks.pop() {
            Some(task) => Ok(task),
            None => Ok(view::task(&row, view::now())?),
        }
    }

    pub async fn list_tasks(
        &self,
        caller: &Caller,
        req: ListReviewTasksRequest,
    ) -> Result<ListReviewTasksResponse, ReviewError> {
        let mut v = Violations::default();
        let size = paging::page_size(req.page_size, &mut v);
        let mut states: Vec<&str> = Vec::new();
        for (i, s) in req.states.iter().enumerate() {
            match view::state_name(*s) {
                Some(name) => states.push(name),
                None => v.add(
                    format!("states[{i}]"),
                    "STATE_INVALID",
                    format!("{s} is not a review task state"),
                ),
            }
        }
        if states.is_empty() {
            states = state::OPEN.to_vec(); // the default view: open tasks
        }
        states.sort_unstable();
        states.dedup();
        let mut kinds: Vec<&str> = Vec::new();
        for (i, k) in req.subject_kinds.iter().enumerate() {
            match view::kind_name(*k) {
                Some(name) => kinds.push(name),
                None => v.add(
                    format!("subject_kinds[{i}]"),
                    "SUBJECT_KIND_INVALID",
                    format!("{k} is not a subject kind"),
                ),
            }
        }
        kinds.sort_unstable();
        kinds.dedup();
        let assignee = match req.assignee.trim() {
            "me" => caller.subject.clone(),
            other => other.to_string(),
        };
        for (field, value, max) in [
            ("assignee", assignee.as_str(), 128),
            ("account_id", req.account_id.as_str(), 64),
            ("subject", req.subject.as_str(), 160),
        ] {
            if value.len() > max {
                v.add(
                    field,
                    "FILTER_TOO_LONG",
                    format!("at most {max} characters"),
                );
            }
        }
        v.check()?;

        let filters = serde_json::json!({
            "states": states,
            "kinds": kinds,
            "assignee": assignee,
            "overdue_only": req.overdue_only,
            "account_id": req.account_id,
            "subject": req.subject,
        });
        let paging = Paging::new(size, &filters);
        let now = view::now();
        let mut condition = Condition::all().add(task::Column::State.is_in(states.clone()));
        if req.overdue_only {
            condition = condition
                .add(task::Column::State.is_in(state::RUNNING))
                .add(task::Column::Deadline.lt(now));
        }
        if !kinds.is_empty() {
            condition = condition.add(task::Column::SubjectKind.is_in(kinds.clone()));
        }
        if !assignee.is_empty() {
            condition = condition.add(task::Column::Assignee.eq(assignee.clone()));
        }
        if !req.account_id.is_empty() {
            condition = condition.add(task::Column::AccountId.eq(req.account_id.clone()));
        }
        if !req.subject.is_empty() {
            condition = condition.add(task::Column::Subject.eq(req.subject.clone()));
        }
        let total = task::Entity::find()
            .filter(condition.clone())
            .count(&self.db)
            .await?;

        let mut query = task::Entity::find().filter(condition);
        if let Some(cursor) = paging.after::<TaskCursor>(&req.page_token)? {
            let after_id = uuid::Uuid::parse_str(&cursor.i)
                .map(|u| u.to_string())
                .map_err(|_| CommonError::InvalidPageToken)?;
            let after = match cursor.d {
                None => Condition::all()
                    .add(task::Column::Deadline.is_null())
                    .add(task::Column::TaskId.gt(after_id)),
                Some(d) => {
                    let d: DateTime<Utc> = DateTime::parse_from_rfc3339(&d)
                        .map_err(|_| ReviewError::from(CommonError::InvalidPageToken))?
                        .with_timezone(&Utc);
                    Condition::any()
                        .add(task::Column::Deadline.is_null())
                        .add(task::Column::Deadline.gt(d))
                        .add(
                            Condition::all()
                                .add(task::Column::Deadline.eq(d))
                                .add(task::Column::TaskId.gt(after_id)),
                        )
                }
            };
            query = query.filter(after);
        }
        let mut rows = query
            .order_by(Expr::col(task::Column::Deadline).is_null(), Order::Asc)
            .order_by_asc(task::Column::Deadline)
            .order_by_asc(task::Column::TaskId)
            .limit(paging.fetch_limit())
            .all(&self.db)
            .await?;
        let next_page_token = paging.finish(&mut rows, |r| TaskCursor {
            d: r.deadline.map(rfc3339),
            i: r.task_id.clone(),
        });
        Ok(ListReviewTasksResponse {
            review_tasks: signals::tasks(&self.db, &rows, now).await?,
            next_page_token,
            total_size: i32::try_from(total).unwrap_or(i32::MAX),
        })
    }

    pub async fn list_audit(
        &self,
        req: ListAuditEntriesRequest,
    ) -> Result<ListAuditEntriesResponse, ReviewError> {
        let mut v = Violations::default();
        let size = paging::page_size(req.page_size, &mut v);
        let task_id = if req.parent == "reviewTasks/-" {
            None
        } else {
            match view::parse_task_name("parent", &req.parent) {
                Ok(id) => Some(id),
                Err(ReviewError::Common(CommonError::Invalid(found))) => {
                    v.0.extend(found);
                    None
                }
                Err(e) => return Err(e),
            }
        };
        if req.actor.len() > 128 {
            v.add("actor", "FILTER_TOO_LONG", "at most 128 characters");
        }
        let mut actions = Vec::new();
        for (i, a) in req.actions.iter().enumerate() {
            match view::action_name(*a) {
                Some(name) => actions.push(name),
                None => v.add(
                    format!("actions[{i}]"),
                    "ACTION_INVALID",
                    format!("{a} is not an audit action"),
                ),
            }
        }
        actions.sort_unstable();
        actions.dedup();
        let mut bound = |field: &str, t: &Option<prost_types::Timestamp>| match t {
            None => None,
            Some(t) => {
                let parsed = view::instant(t);
                if parsed.is_none() {
                    v.add(field, "TIME_INVALID", "not a valid timestamp");
                }
                parsed
            }
        };
        let start = bound("start_time", &req.start_time);
        let end = bound("end_time", &req.end_time);
        if let (Some(s), Some(e)) = (start, end)
            && s > e
        {
            v.add(
                "end_time",
                "TIME_RANGE_INVALID",
                "end_time must not be before start_time",
            );
        }
        v.check()?;

        if let Some(id) = &task_id
            && task::Entity::find_by_id(id.clone())
                .one(&self.db)
                .await?
                .is_none()
        {
            return Err(ReviewError::TaskNotFound(req.parent.clone()));
        }

        let filters = serde_json::json!({
            "task": task_id,
            "actor": req.actor,
            "actions": actions,
            "start": start.map(rfc3339),
            "end": end.map(rfc3339),
        });
        let paging = Paging::new(size, &filters);
        let mut query = audit::Entity::find();
        if let Some(id) = task_id {
            query = query.filter(audit::Column::TaskId.eq(id));
        }
        if !req.actor.is_empty() {
            query = query.filter(audit::Column::Actor.eq(req.actor.clone()));
        }
        if !actions.is_empty() {
            query = query.filter(audit::Column::Action.is_in(actions));
        }
        if let Some(start) = start {
            query = query.filter(audit::Column::ActionTime.gte(start));
        }
        if let Some(end) = end {
            query = query.filter(audit::Column::ActionTime.lt(end));
        }
        if let Some(after) = paging.after::<i64>(&req.page_token)? {
            query = query.filter(audit::Column::Seq.gt(after));
        }
        let mut rows = query
            .order_by_asc(audit::Column::Seq)
            .limit(paging.fetch_limit())
            .all(&self.db)
            .await?;
        let next_page_token = paging.finish(&mut rows, |r| r.seq);
        Ok(ListAuditEntriesResponse {
            audit_entries: rows.iter().map(view::audit_entry).collect(),
            next_page_token,
        })
    }
}
