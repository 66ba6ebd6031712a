//! ApproveReviewTask, RejectReviewTask and RequestChanges. Only the task's assignee decides, and
//! only while the task is CLAIMED: the decision is the conditional update of the claimed task
//! (see `transition.rs`), so of two concurrent decisions exactly one is made; the other reads the
//! task again and gets TASK_ALREADY_DECIDED. The decision, its audit entry and its outbox event
//! (to registration's ApplyReviewDecision) are written in one transaction.
//!
//! RequestChanges stops the task's clock: the working time used so far is kept and the task
//! waits on the applicant without a deadline until ResumeReviewTask (see `clock.rs`).

use chrono::{DateTime, SecondsFormat, Utc};
use kg_proto::common::ReviewDecision;
use kg_proto::review::{
    ApproveReviewTaskRequest, Decision, RejectReviewTaskRequest, RequestChangesRequest, ReviewTask,
};
use kg_runtime::auth::Caller;
use prost::Message;
use sea_orm::EntityTrait;

use kg_runtime::error::{CommonError, Violations};

use crate::catalogue::{self, Verdict};
use crate::claims::{check_etag, check_not_own};
use crate::error::ReviewError;
use crate::service::Review;
use crate::store::{kind, state, task};
use crate::transition::{Change, DecisionEvent, Key, Plan, Target};
use crate::{clock, idempotency, view};

/// One decision request, whichever RPC carried it.
struct Decide<'a> {
    rpc: &'static str,
    request_id: &'a str,
    hash: String,
    name: &'a str,
    etag: &'a str,
    outcome: ReviewDecision,
    verdict: Verdict,
}

/// The outbox payload's name of a decision.
fn outcome_name(outcome: ReviewDecision) -> &'static str {
    match outcome {
        ReviewDecision::Approve => "APPROVE",
        ReviewDecision::Reject => "REJECT",
        ReviewDecision::RequestChanges => "REQUEST_CHANGES",
        ReviewDecision::Unspecified => "UNSPECIFIED",
    }
}

fn checked_key(request_id: &str, name: &str) -> (Violations, Option<String>) {
    let mut v = Violations::default();
    if let Err(CommonError::Invalid(found)) = idempotency::validate_key("request_id", request_id) {
        v.0.extend(found);
    }
    let id = match view::parse_task_name("name", name) {
        Ok(id) => Some(id),
        Err(ReviewError::Common(CommonError::Invalid(found))) => {
            v.0.extend(found);
            None
        }
        Err(_) => None,
    };
    (v, id)
}

impl Review {
    pub async fn approve(
        &self,
        caller: &Caller,
        req: ApproveReviewTaskRequest,
    ) -> Result<ReviewTask, ReviewError> {
        let (v, _) = checked_key(&req.request_id, &req.name);
        let verdict = catalogue::verdict(&[], &req.comment, false, v)?;
        self.check_contacts_verified(&req.name).await?;
        self.decide(
            caller,
            Decide {
                rpc: "ApproveReviewTask",
                request_id: &req.request_id,
                hash: idempotency::body_hash(&req),
                name: &req.name,
                etag: &req.etag,
                outcome: ReviewDecision::Approve,
                verdict,
            },
        )
        .await
    }

    pub async fn reject(
        &self,
        caller: &Caller,
        req: RejectReviewTaskRequest,
    ) -> Result<ReviewTask, ReviewError> {
        let (v, _) = checked_key(&req.request_id, &req.name);
        let verdict = catalogue::verdict(&req.reason_codes, &req.comment, true, v)?;
        self.decide(
            caller,
            Decide {
                rpc: "RejectReviewTask",
                request_id: &req.request_id,
                hash: idempotency::body_hash(&req),
                name: &req.name,
                etag: &req.etag,
                outcome: ReviewDecision::Reject,
                verdict,
            },
        )
        .await
    }

    pub async fn ask_for_changes(
        &self,
        caller: &Caller,
        req: RequestChangesRequest,
    ) -> Result<ReviewTask, ReviewError> {
        let (v, _) = checked_key(&req.request_id, &req.name);
        let verdict = catalogue::verdict(&req.reason_codes, &req.comment, true, v)?;
        self.decide(
            caller,
            Decide {
                rpc: "RequestChanges",
                request_id: &req.request_id,
                hash: idempotency::body_hash(&req),
                name: &req.name,
                etag: &req.etag,
                outcome: ReviewDecision::RequestChanges,
                verdict,
            },
        )
        .await
    }

    /// With KG_REQUIRE_VERIFIED_CONTACTS: every contact address of the task's profile must be
    /// VERIFIED at registration. (Checked before the decision's transaction; an address that
    /// fails later is registration's reachability to handle, not a reason to undo approval.)
    async fn check_contacts_verified(&self, name: &str) -> Result<(), ReviewError> {
        let Some(registration) = &self.contact_gate else {
            return Ok(());
        };
        let id = view::parse_task_name("name", name)?;
        let Some(row) = task::Entity::find_by_id(id).one(&self.db).await? else {
            return Ok(()); // the decision reports REVIEW_TASK_NOT_FOUND
        };
        let profile: kg_proto::common::SellerProfile = kg_runtime::stored::decode(
            &row.profile,
            "review_tasks.profile",
            &format!("reviewTasks/{}", row.task_id),
        )?;
        let contact = profile.contact.as_ref().map(|c| c.email.as_str());
        let mut wanted: Vec<String> = [contact.unwrap_or(""), &profile.customer_service_email]
            .iter()
            .map(|e| e.trim().to_lowercase())
            .filter(|e| !e.is_empty())
            .collect();
        wanted.dedup();
        let known = registration
            .clone()
            .list_contacts(kg_proto::registration::ListContactsRequest {
                account_id: row.account_id.clone(),
            })
            .await
            .map_err(|s| ReviewError::from(CommonError::DependencyUnavailable("registration", s)))?
            .into_inner()
            .contacts;
        let mut missing = Vec::new();
        for email in &wanted {
            let state = known
                .iter()
                .find(|c| &c.email == email)
                .map_or("UNKNOWN", |c| {
                    kg_proto::registration::ContactState::try_from(c.state).map_or("UNKNOWN", |s| {
                        s.as_str_name().trim_start_matches("CONTACT_STATE_")
                    })
                });
            if state != "VERIFIED" {
                missing.push(format!("{}={state}", kg_runtime::redact::email(email)));
            }
        }
        if missing.is_empty() {
            Ok(())
        } else {
            Err(ReviewError::ContactNotVerified(missing.join(",")))
        }
    }

    async fn decide(&self, caller: &Caller, d: Decide<'_>) -> Result<ReviewTask, ReviewError> {
        let id = view::parse_task_name("name", d.name)?;
        let key = Key::Request {
            request_id: d.request_id,
            rpc: d.rpc,
            hash: d.hash.clone(),
        };
        let plan = |row: &task::Model, now: DateTime<Utc>| self.plan_decision(caller, &d, row, now);
        let applied = self
            .change(
                caller,
                &key,
                Target::Id {
                    id: &id,
                    name: d.name,
                },
                &plan,
            )
            .await?;
        Ok(view::task(&applied.row, view::now())?)
    }

    fn plan_decision(
        &self,
        caller: &Caller,
        d: &Decide<'_>,
        row: &task::Model,
        now: DateTime<Utc>,
    ) -> Result<Plan, ReviewError> {
        check_not_own(caller, row)?;
        if d.outcome == ReviewDecision::RequestChanges
            && row.subject_kind == kind::MODIFICATION_REQUEST
        {
            return Err(ReviewError::ChangesNotAllowed);
        }
        match row.state.as_str() {
            state::CLAIMED => {
                let assignee = row.assignee.clone().unwrap_or_default();
                if assignee != caller.subject {
                    return Err(ReviewError::ClaimedByOther { assignee });
                }
            }
            state::QUEUED => return Err(ReviewError::NotClaimed),
            state::APPROVED | state::REJECTED | state::WAITING_ON_APPLICANT => {
                return Err(ReviewError::AlreadyDecided {
                    state: row.state.clone(),
                });
            }
            other => {
                return Err(ReviewError::InvalidState {
                    state: other.to_string(),
                });
            }
        }
        check_etag(d.etag, row)?;

        let decision = Decision {
            outcome: d.outcome as i32,
            reason_codes: d.verdict.reason_codes.clone(),
            reasons: d
                .verdict
                .reason_codes
                .iter()
                .filter_map(|c| catalogue::reason(c))
                .collect(),
            comment: d.verdict.comment.clone(),
            reviewer: caller.subject.clone(),
            decide_time: Some(view::timestamp(now)),
            deliver_time: None,
        };
        let mut after = row.clone();
        let action = match d.outcome {
            ReviewDecision::Approve => {
                after.state = state::APPROVED.to_string();
                view::action::APPROVED
            }
            ReviewDecision::Reject => {
                after.state = state::REJECTED.to_string();
                view::action::REJECTED
            }
            _ => {
                // The clock stops; the task waits on the applicant and leaves the reviewer.
                after.state = state::WAITING_ON_APPLICANT.to_string();
                after.used_working_micros = clock::stop(
                    &self.calendar,
                    row.clock_start,
                    row.used_working_micros,
                    now,
                );
                after.paused_since = Some(now);
                after.deadline = None;
                after.assignee = None;
                after.claim_time = None;
                view::action::CHANGES_REQUESTED
            }
        };
        after.decision = Some(decision.encode_to_vec());
        after.decision_event_id = None;
        after.deliver_time = None;
        after.update_time = now;
        let payload = serde_json::json!({
            "subject": row.subject,
            "decision": outcome_name(d.outcome),
            "reason_codes": d.verdict.reason_codes,
            "comment": d.verdict.comment,
            "reviewer": caller.subject,
            "decide_time": now.to_rfc3339_opts(SecondsFormat::Micros, true),
            "review_task": view::task_name(&row.task_id),
        });
        Ok(Plan::Change(Box::new(Change {
            after,
            action,
            comment: d.verdict.comment.clone(),
            reason_codes: d.verdict.reason_codes.clone(),
            decision: Some(DecisionEvent { payload }),
            outcome: action,
        })))
    }
}
