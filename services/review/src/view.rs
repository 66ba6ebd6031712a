//! Stored rows as wire messages, and the small parsers and converters the handlers share.

use chrono::{DateTime, Utc};
use kg_proto::common::{CheckEvidence, CompanyEntity, SellerProfile};
use kg_proto::review::{
    ActorRole, AuditAction, AuditEntry, Decision, ReviewTask, ReviewTaskState, SubjectKind,
};
use kg_runtime::auth::Role;
use kg_runtime::error::ServiceError as _;
use kg_runtime::stored::{self, StoredCorrupt};

use crate::error::ReviewError;
use crate::store::{audit, kind, state, task};

pub const TASKS: &str = "reviewTasks/";

/// Instants are kept to the microsecond: PostgreSQL's precision, so that what is returned is
/// what is stored and read back.
pub fn micros(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

pub fn now() -> DateTime<Utc> {
    micros(Utc::now())
}

pub fn timestamp(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    }
}

/// A wire timestamp as an instant (to the microsecond); `None` when it is not a valid one.
pub fn instant(t: &prost_types::Timestamp) -> Option<DateTime<Utc>> {
    let nanos = u32::try_from(t.nanos).ok().filter(|n| *n < 1_000_000_000)?;
    DateTime::from_timestamp(t.seconds, nanos).map(micros)
}

pub fn duration(micros: i64) -> prost_types::Duration {
    prost_types::Duration {
        seconds: micros.div_euclid(1_000_000),
        nanos: (micros.rem_euclid(1_000_000) * 1_000) as i32,
    }
}

pub fn task_name(task_id: &str) -> String {
    format!("{TASKS}{task_id}")
}

/// `reviewTasks/{uuid}` → the task id (canonical lower-case form).
pub fn parse_task_name(field: &str, name: &str) -> Result<String, ReviewError> {
    name.strip_prefix(TASKS)
        .filter(|id| id.len() == 36)
        .and_then(|id| uuid::Uuid::parse_str(id).ok())
        .map(|id| id.to_string())
        .ok_or_else(|| {
            ReviewError::field(
                field,
                "NAME_INVALID",
                "expected reviewTasks/{task} with the task's UUID",
            )
        })
}

pub fn etag(version: i64) -> String {
    format!("v{version}")
}

/// A stored state as the enum (UNSPECIFIED for anything unknown).
pub fn state_enum(name: &str) -> ReviewTaskState {
    ReviewTaskState::from_str_name(&format!("REVIEW_TASK_STATE_{name}")).unwrap_or_default()
}

/// The stored name of a state; `None` for UNSPECIFIED and unknown numbers.
pub fn state_name(value: i32) -> Option<&'static str> {
    match ReviewTaskState::try_from(value).ok()? {
        ReviewTaskState::Unspecified => None,
        ReviewTaskState::Queued => Some(state::QUEUED),
        ReviewTaskState::Claimed => Some(state::CLAIMED),
        ReviewTaskState::WaitingOnApplicant => Some(state::WAITING_ON_APPLICANT),
        ReviewTaskState::Approved => Some(state::APPROVED),
        ReviewTaskState::Rejected => Some(state::REJECTED),
        ReviewTaskState::Cancelled => Some(state::CANCELLED),
    }
}

pub fn kind_enum(name: &str) -> SubjectKind {
    match name {
        kind::APPLICATION => SubjectKind::Application,
        kind::MODIFICATION_REQUEST => SubjectKind::ModificationRequest,
        _ => SubjectKind::Unspecified,
    }
}

pub fn kind_name(value: i32) -> Option<&'static str> {
    match SubjectKind::try_from(value).ok()? {
        SubjectKind::Unspecified => None,
        SubjectKind::Application => Some(kind::APPLICATION),
        SubjectKind::ModificationRequest => Some(kind::MODIFICATION_REQUEST),
    }
}

/// Audited actions as stored (the `AuditAction` names without the prefix).
pub mod action {
    pub const CREATED: &str = "CREATED";
    pub const CLAIMED: &str = "CLAIMED";
    pub const RELEASED: &str = "RELEASED";
    pub const APPROVED: &str = "APPROVED";
    pub const REJECTED: &str = "REJECTED";
    pub const CHANGES_REQUESTED: &str = "CHANGES_REQUESTED";
    pub const RESUMED: &str = "RESUMED";
    pub const CANCELLED: &str = "CANCELLED";
    pub const CHECKS_RERUN: &str = "CHECKS_RERUN";
    pub const DECISION_DELIVERED: &str = "DECISION_DELIVERED";
}

pub fn action_enum(name: &str) -> AuditAction {
    AuditAction::from_str_name(&format!("AUDIT_ACTION_{name}")).unwrap_or_default()
}

pub fn action_name(value: i32) -> Option<String> {
    match AuditAction::try_from(value).ok()? {
        AuditAction::Unspecified => None,
        other => other
            .as_str_name()
            .strip_prefix("AUDIT_ACTION_")
            .map(str::to_string),
    }
}

pub fn role_name(role: Role) -> &'static str {
    match role {
        Role::Applicant => "APPLICANT",
        Role::Reviewer => "REVIEWER",
        Role::Operator => "OPERATOR",
        Role::Service => "SERVICE",
    }
}

fn role_enum(name: &str) -> ActorRole {
    match name {
        "REVIEWER" => ActorRole::Reviewer,
        "OPERATOR" => ActorRole::Operator,
        "SERVICE" => ActorRole::Service,
        _ => ActorRole::Unspecified,
    }
}

/// Whether a task's clock has run out: QUEUED or CLAIMED with its deadline passed.
pub fn is_overdue(row: &task::Model, now: DateTime<Utc>) -> bool {
    state::RUNNING.contains(&row.state.as_str()) && row.deadline.is_some_and(|d| d < now)
}

// Stored messages are decoded fail-closed (see `kg_runtime::stored`): bytes that do not decode
// are an error, a NULL column stays `None`.

pub fn evidence(row: &task::Model) -> Result<Option<CheckEvidence>, StoredCorrupt> {
    stored::decode_opt(
        row.evidence.as_deref(),
        "review_tasks.evidence",
        &task_name(&row.task_id),
    )
}

pub fn profile(row: &task::Model) -> Result<SellerProfile, StoredCorrupt> {
    stored::decode(
        &row.profile,
        "review_tasks.profile",
        &task_name(&row.task_id),
    )
}

pub fn decision(row: &task::Model) -> Result<Option<Decision>, StoredCorrupt> {
    let decision: Option<Decision> = stored::decode_opt(
        row.decision.as_deref(),
        "review_tasks.decision",
        &task_name(&row.task_id),
    )?;
    Ok(decision.map(|mut d| {
        d.deliver_time = row.deliver_time.map(timestamp);
        d
    }))
}

pub fn task(row: &task::Model, now: DateTime<Utc>) -> Result<ReviewTask, StoredCorrupt> {
    let state = state_enum(&row.state);
    // No deadline while the clock is stopped, nor on a cancelled task.
    let deadline = match row.state.as_str() {
        state::WAITING_ON_APPLICANT | state::CANCELLED => None,
        _ => row.deadline.map(timestamp),
    };
    Ok(ReviewTask {
        name: task_name(&row.task_id),
        subject: row.subject.clone(),
        subject_kind: kind_enum(&row.subject_kind) as i32,
        account_id: row.account_id.clone(),
        company_name: row.company_name.clone(),
        entity: Some(CompanyEntity {
            country: row.country.clone(),
            registration_number: row.registration_number.clone(),
        }),
        state: state as i32,
        assignee: row.assignee.clone().unwrap_or_default(),
        submit_time: Some(timestamp(row.submit_time)),
        deadline,
        overdue: is_overdue(row, now),
        paused_since: row.paused_since.map(timestamp),
        paused_duration: Some(duration(row.paused_micros)),
        evidence: evidence(row)?,
        duplicate_signals: Vec::new(),
        decision: decision(row)?,
        create_time: Some(timestamp(row.create_time)),
        update_time: Some(timestamp(row.update_time)),
        etag: etag(row.version),
        profile: Some(profile(row)?),
        previous_company_name: row.previous_company_name.clone(),
        claim_time: row.claim_time.map(timestamp),
    })
}

pub fn audit_entry(row: &audit::Model) -> AuditEntry {
    let task = task_name(&row.task_id);
    AuditEntry {
        name: format!("{task}/auditEntries/{}", row.entry_id),
        task,
        actor: row.actor.clone(),
        actor_role: role_enum(&row.actor_role) as i32,
        action: action_enum(&row.action) as i32,
        before_state: row
            .before_state
            .as_deref()
            .map(state_enum)
            .unwrap_or_default() as i32,
        after_state: state_enum(&row.after_state) as i32,
        comment: row.comment.clone(),
        reason_codes: row
            .reason_codes
            .split(',')
            .filter(|c| !c.is_empty())
            .map(str::to_string)
            .collect(),
        action_time: Some(timestamp(row.action_time)),
        request_id: row.request_id.clone(),
        subject: row.subject.clone(),
    }
}

/// Trimmed text and its length in Unicode scalar values (the contract's text limits).
pub fn text(value: &str) -> (&str, usize) {
    let trimmed = value.trim();
    (trimmed, trimmed.chars().count())
}

/// Ids of accounts, sellers, applications: 1-64 characters of A-Z, a-z, 0-9, '-' and '_'.
pub use kg_runtime::idempotency::is_plain_id;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_strictly() {
        let id = "0192f0c8-7d2e-7cc1-9a57-3f2b8d0c6a11";
        assert_eq!(
            parse_task_name("name", &format!("reviewTasks/{id}")).unwrap(),
            id
        );
        assert_eq!(
            parse_task_name("name", &format!("reviewTasks/{}", id.to_uppercase())).unwrap(),
            id
        );
        for bad in [
            "",
            "reviewTasks/",
            "reviewTasks/-",
            "reviewtasks/0192f0c8-7d2e-7cc1-9a57-3f2b8d0c6a11",
            "reviewTasks/0192f0c87d2e7cc19a573f2b8d0c6a11",
            "reviewTasks/../0192f0c8-7d2e-7cc1-9a57-3f2b8d0c6a1",
            "applications/0192f0c8-7d2e-7cc1-9a57-3f2b8d0c6a11",
        ] {
            assert!(parse_task_name("name", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn enums_round_trip_through_their_stored_names() {
        for s in 1..=6 {
            let name = state_name(s).unwrap();
            assert_eq!(state_enum(name) as i32, s);
        }
        assert_eq!(state_name(0), None);
        assert_eq!(state_name(99), None);
        for a in 1..=10 {
            let name = action_name(a).unwrap();
            assert_eq!(action_enum(&name) as i32, a);
        }
        assert_eq!(action_name(42), None);
    }

    #[test]
    fn durations_and_instants_keep_microseconds() {
        assert_eq!(
            duration(1_500_000),
            prost_types::Duration {
                seconds: 1,
                nanos: 500_000_000
            }
        );
        let t = instant(&prost_types::Timestamp {
            seconds: 1_700_000_000,
            nanos: 123_456_789,
        })
        .unwrap();
        assert_eq!(t.timestamp_subsec_nanos(), 123_456_000);
        assert!(
            instant(&prost_types::Timestamp {
                seconds: 0,
                nanos: -1
            })
            .is_none()
        );
        assert!(
            instant(&prost_types::Timestamp {
                seconds: i64::MAX,
                nanos: 0
            })
            .is_none()
        );
    }
}
