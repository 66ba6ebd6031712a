//! Delivers review's outbox: each decision goes to registration's ApplyReviewDecision, with the
//! outbox event id as the deduplication key, until registration answers OK (APPLIED,
//! ALREADY_APPLIED and SUPERSEDED all count as delivered). The delivery is then recorded on the
//! task (`Decision.deliver_time`) with a DECISION_DELIVERED audit entry, once per event.

use chrono::DateTime;
use kg_proto::common::ReviewDecision;
use kg_proto::registration::registration_service_client::RegistrationServiceClient;
use kg_proto::registration::{ApplyDecisionOutcome, ApplyReviewDecisionRequest};
use kg_runtime::auth::{Caller, Role};
use kg_runtime::client::OutboundChannel;
use kg_runtime::outbox::{Deliver, DeliveryError, OutboxEvent};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, TransactionTrait};
use serde::Deserialize;

use crate::audit::{self, Entry};
use crate::store::task;
use crate::{idempotency, view};

/// The destination of decisions.
pub const REGISTRATION: &str = "registration";
/// The event type of a decision.
pub const DECISION: &str = "DECISION";
/// The inbox marks a decision delivery already audited with this pseudo-RPC.
const DELIVERED: &str = "DecisionDelivered";

/// The outbox payload of a decision.
#[derive(Debug, Deserialize)]
pub struct DecisionPayload {
    pub subject: String,
    pub decision: String,
    #[serde(default)]
    pub reason_codes: Vec<String>,
    #[serde(default)]
    pub comment: String,
    pub reviewer: String,
    pub decide_time: String,
    pub review_task: String,
}

impl DecisionPayload {
    pub fn request(&self, event_id: &str) -> Result<ApplyReviewDecisionRequest, DeliveryError> {
        let decision = match self.decision.as_str() {
            "APPROVE" => ReviewDecision::Approve,
            "REJECT" => ReviewDecision::Reject,
            "REQUEST_CHANGES" => ReviewDecision::RequestChanges,
            other => {
                return Err(DeliveryError::refused(format!(
                    "unknown decision {other:?}"
                )));
            }
        };
        let decide_time = DateTime::parse_from_rfc3339(&self.decide_time)
            .map_err(|e| DeliveryError::refused(format!("bad decide_time: {e}")))?;
        Ok(ApplyReviewDecisionRequest {
            event_id: event_id.to_string(),
            subject: self.subject.clone(),
            decision: decision as i32,
            reason_codes: self.reason_codes.clone(),
            comment: self.comment.clone(),
            reviewer: self.reviewer.clone(),
            decide_time: Some(view::timestamp(decide_time.to_utc())),
            review_task: self.review_task.clone(),
        })
    }
}

pub struct Deliverer {
    pub db: DatabaseConnection,
    pub registration: RegistrationServiceClient<OutboundChannel>,
}

#[async_trait::async_trait]
impl Deliver for Deliverer {
    async fn deliver(&self, event: &OutboxEvent) -> Result<(), DeliveryError> {
        if (event.destination.as_str(), event.event_type.as_str()) != (REGISTRATION, DECISION) {
            // Unknown pairs would block their subject forever; acknowledge and log them.
            tracing::error!(destination = %event.destination, kind = %event.event_type, event = %event.event_id, "no delivery rule; dropping");
            return Ok(());
        }
        // A payload this service wrote and cannot read is a bug: keep the event (it shows in
        // review_outbox_backlog and last_error) rather than lose a decision.
        let payload: DecisionPayload = serde_json::from_value(event.payload.clone())
            .map_err(|e| DeliveryError::refused(format!("unreadable decision payload: {e}")))?;
        let request = payload.request(&event.event_id)?;
        let reply = self
            .registration
            .clone()
            .apply_review_decision(request)
            .await
            .inspect_err(|status| {
                if matches!(
                    status.code(),
                    tonic::Code::InvalidArgument
                        | tonic::Code::NotFound
                        | tonic::Code::FailedPrecondition
                ) {
                    tracing::error!(event = %event.event_id, subject = %event.subject, code = ?status.code(), message = status.message(), "registration refuses the decision; retrying");
                }
            })?
            .into_inner();
        let outcome = ApplyDecisionOutcome::try_from(reply.outcome)
            .unwrap_or_default()
            .as_str_name()
            .trim_start_matches("APPLY_DECISION_OUTCOME_")
            .to_string();
        tracing::info!(event = %event.event_id, subject = %event.subject, %outcome, "decision delivered");
        record_delivery(&self.db, event, &payload, &outcome)
            .await
            .map_err(|e| DeliveryError::retry(format!("database: {e}")))
    }
}

/// Marks the task's latest decision delivered (if this event carried it) and audits the
/// delivery, once per event (the inbox remembers it).
async fn record_delivery(
    db: &DatabaseConnection,
    event: &OutboxEvent,
    payload: &DecisionPayload,
    outcome: &str,
) -> Result<(), DbErr> {
    let Some(task_id) = payload
        .review_task
        .strip_prefix(view::TASKS)
        .map(str::to_string)
    else {
        return Ok(());
    };
    let now = view::now();
    let txn = db.begin().await?;
    match idempotency::remember_event(&txn, &event.event_id, DELIVERED, "", &task_id, outcome, now)
        .await
    {
        Ok(()) => {}
        Err(e) if kg_runtime::db::is_unique_violation(&e) => return Ok(()), // already recorded
        Err(e) => return Err(e),
    }
    task::Entity::update_many()
        .col_expr(task::Column::DeliverTime, Expr::value(Some(now)))
        .col_expr(task::Column::UpdateTime, Expr::value(now))
        .col_expr(
            task::Column::Version,
            Expr::col(task::Column::Version).add(1),
        )
        .filter(task::Column::TaskId.eq(task_id.clone()))
        .filter(task::Column::DecisionEventId.eq(event.event_id.clone()))
        .exec(&txn)
        .await?;
    if let Some(row) = task::Entity::find_by_id(task_id).one(&txn).await? {
        let registration = Caller {
            subject: REGISTRATION.to_string(),
            role: Role::Service,
        };
        audit::record(
            &txn,
            Entry {
                task: &row,
                actor: &registration,
                action: view::action::DECISION_DELIVERED,
                before: Some(&row.state),
                comment: &format!("{} {outcome}", payload.decision),
                reason_codes: &[],
                request_id: &event.event_id,
                at: now,
            },
        )
        .await?;
    }
    txn.commit().await
}
