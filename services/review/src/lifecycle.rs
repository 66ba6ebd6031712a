//! ResumeReviewTask and CancelReviewTask: what the applicant's side does to a task, reported by
//! registration's outbox relay (service role, deduplicated by event id).
//!
//! Resuming restarts the stopped clock with the working time left (72 hours minus what was used
//! before changes were requested), counting from the effective start of the resubmission.

use chrono::{DateTime, Utc};
use kg_proto::review::{
    CancelReviewTaskRequest, CancelReviewTaskResponse, ResumeReviewTaskRequest, ReviewTask,
};
use kg_runtime::auth::Caller;
use prost::Message;

use kg_runtime::error::ServiceError as _;
use kg_runtime::error::{CommonError, Violations};

use crate::create::{check_profile, check_subject, check_time};
use crate::error::ReviewError;
use crate::service::Review;
use crate::store::{state, task};
use crate::transition::{Change, Key, Plan, Target};
use crate::{clock, idempotency, view};

const RESUMED: &str = "RESUMED";
const CANCELLED: &str = "CANCELLED";
/// The reason of a cancellation, in Unicode scalar values after trimming.
const MAX_REASON: usize = 1000;

fn key_violations(v: &mut Violations, event_id: &str) {
    if let Err(CommonError::Invalid(found)) = idempotency::validate_key("event_id", event_id) {
        v.0.extend(found);
    }
}

fn micros_between(from: DateTime<Utc>, to: DateTime<Utc>) -> i64 {
    (to - from).num_microseconds().unwrap_or(0).max(0)
}

impl Review {
    pub async fn resume(
        &self,
        caller: &Caller,
        req: ResumeReviewTaskRequest,
    ) -> Result<ReviewTask, ReviewError> {
        let mut v = Violations::default();
        key_violations(&mut v, &req.event_id);
        check_subject(&mut v, "subject", &req.subject);
        let resubmitted = check_time(
            &mut v,
            "resubmit_time",
            req.resubmit_time.as_ref(),
            view::now(),
        );
        let profile = check_profile(&mut v, "profile", req.profile.clone(), false);
        v.check()?;
        let Some(resubmitted) = resubmitted else {
            return Err(ReviewError::field(
                "resubmit_time",
                "TIME_INVALID",
                "required",
            ));
        };
        let key = Key::Event {
            event_id: &req.event_id,
            rpc: "ResumeReviewTask",
            hash: idempotency::body_hash(&req),
        };
        let plan = |row: &task::Model, now: DateTime<Utc>| {
            if row.state != state::WAITING_ON_APPLICANT {
                return Err(ReviewError::InvalidState {
                    state: row.state.clone(),
                });
            }
            // A resubmission stamped before the pause (clock skew between services) resumes
            // at the pause: the applicant never gets working time back.
            let paused_since = row.paused_since.unwrap_or(resubmitted);
            let resumed = resubmitted.max(paused_since);
            let (clock_start, deadline) = clock::resume(
                &self.calendar,
                row.used_working_micros,
                resumed,
                &row.subject,
            );
            let mut after = row.clone();
            after.state = state::QUEUED.to_string();
            after.submit_time = resubmitted;
            after.clock_start = clock_start;
            after.deadline = Some(deadline);
            after.paused_micros = row
                .paused_micros
                .saturating_add(micros_between(paused_since, resumed));
            after.paused_since = None;
            after.assignee = None;
            after.claim_time = None;
            if let Some(evidence) = &req.evidence {
                after.evidence = Some(evidence.encode_to_vec());
            }
            if let Some((mut profile, logo)) = profile.clone() {
                if logo.is_some() {
                    after.logo = logo;
                } else {
                    // Logo bytes not sent: keep the stored ones if the logo did not change.
                    let old = view::profile(row)?.logo_sha256;
                    if profile.logo_sha256.is_empty() || profile.logo_sha256 == old {
                        profile.logo_sha256 = old;
                    } else {
                        after.logo = None;
                    }
                }
                after.profile = profile.encode_to_vec();
            }
            after.update_time = now;
            Ok(Plan::Change(Box::new(Change {
                after,
                action: view::action::RESUMED,
                comment: String::new(),
                reason_codes: Vec::new(),
                decision: None,
                outcome: RESUMED,
            })))
        };
        let applied = self
            .change(caller, &key, Target::Subject(&req.subject), &plan)
            .await?;
        Ok(view::task(&applied.row, view::now())?)
    }

    pub async fn cancel(
        &self,
        caller: &Caller,
        req: CancelReviewTaskRequest,
    ) -> Result<CancelReviewTaskResponse, ReviewError> {
        let mut v = Violations::default();
        key_violations(&mut v, &req.event_id);
        check_subject(&mut v, "subject", &req.subject);
        let (reason, length) = view::text(&req.reason);
        if length > MAX_REASON {
            v.add(
                "reason",
                "REASON_TOO_LONG",
                format!("at most {MAX_REASON} characters ({length} given)"),
            );
        }
        v.check()?;
        let key = Key::Event {
            event_id: &req.event_id,
            rpc: "CancelReviewTask",
            hash: idempotency::body_hash(&req),
        };
        let plan = |row: &task::Model, now: DateTime<Utc>| {
            if state::is_final(&row.state) {
                return Ok(Plan::Unchanged); // not an error: returned with cancelled = false
            }
            let mut after = row.clone();
            after.state = state::CANCELLED.to_string();
            if let Some(paused_since) = row.paused_since {
                after.paused_micros = row
                    .paused_micros
                    .saturating_add(micros_between(paused_since, now));
            }
            after.paused_since = None;
            after.deadline = None;
            after.assignee = None;
            after.claim_time = None;
            after.update_time = now;
            Ok(Plan::Change(Box::new(Change {
                after,
                action: view::action::CANCELLED,
                comment: reason.to_string(),
                reason_codes: Vec::new(),
                decision: None,
                outcome: CANCELLED,
            })))
        };
        let applied = self
            .change(caller, &key, Target::Subject(&req.subject), &plan)
            .await?;
        Ok(CancelReviewTaskResponse {
            review_task: Some(view::task(&applied.row, view::now())?),
            cancelled: applied.outcome.as_deref() == Some(CANCELLED),
        })
    }
}
