//! ApplyReviewDecision (internal, from review's outbox relay): approve → the application is
//! APPROVED and the seller exists; reject → REJECTED, which frees the entity; request changes →
//! CHANGES_REQUESTED, editable again. Idempotent on the event id; a decision about an application
//! that is no longer pending (withdrawn meanwhile) is acknowledged as SUPERSEDED.

use kg_proto::common::{ReviewDecision, ReviewFeedback};
use kg_proto::registration::apply_review_decision_response::SubjectState;
use kg_proto::registration::{
    ApplyDecisionOutcome, ApplyReviewDecisionRequest, ApplyReviewDecisionResponse,
};
use kg_runtime::error::ServiceError as _;
use prost::Message;
use sea_orm::{ActiveModelTrait, EntityTrait, IntoActiveModel, Set, TransactionTrait};

use crate::app::Registration;
use crate::error::RegistrationError;
use crate::events::EventKind;
use crate::idempotency::Key;
use crate::names::parse_application_name;
use crate::store::{application, name_history, seller, state};
use crate::{outbox, view};

const RPC: &str = "ApplyReviewDecision";

impl Registration {
    pub async fn apply_decision(
        &self,
        req: ApplyReviewDecisionRequest,
    ) -> Result<ApplyReviewDecisionResponse, RegistrationError> {
        let key = Key::new(&req.event_id, RPC, &req).map_err(|_| {
            RegistrationError::field(
                "event_id",
                "EVENT_ID_INVALID",
                "event_id is required (a UUID)",
            )
        })?;
        let decision =
            ReviewDecision::try_from(req.decision).unwrap_or(ReviewDecision::Unspecified);
        if decision == ReviewDecision::Unspecified {
            return Err(RegistrationError::field(
                "decision",
                "DECISION_REQUIRED",
                "decision is required",
            ));
        }
        if decision != ReviewDecision::Approve && req.reason_codes.is_empty() {
            return Err(RegistrationError::field(
                "reason_codes",
                "REASON_REQUIRED",
                "a rejection or a request for changes needs at least one reason code",
            ));
        }
        if req.subject.starts_with("sellers/") {
            return self.apply_modification_decision(&key, &req, decision).await;
        }
        let id = parse_application_name(&req.subject).map_err(|_| {
            RegistrationError::field(
                "subject",
                "SUBJECT_INVALID",
                "expected applications/{application_id} or sellers/{seller_id}/modificationRequests/{modification_request_id}",
            )
        })?;
        let subject = &req.subject;
        key.run(
            &self.db,
            self.apply_application_decision(&key, id, &req, decision),
            |_| async move {
                let app = self.application_by_name(subject).await?;
                Ok(reply(ApplyDecisionOutcome::AlreadyApplied, app))
            },
        )
        .await
    }

    async fn apply_application_decision(
        &self,
        key: &Key,
        id: String,
        req: &ApplyReviewDecisionRequest,
        decision: ReviewDecision,
    ) -> Result<ApplyReviewDecisionResponse, RegistrationError> {
        let txn = self.db.begin().await?;
        let row = application::Entity::find_by_id(id)
            .one(&txn)
            .await?
            .ok_or_else(|| RegistrationError::ApplicationNotFound(req.subject.clone()))?;
        let now = kg_runtime::db::now();
        let record = key.record(&req.subject, now);
        if !state::PENDING.contains(&row.state.as_str()) {
            record.insert(&txn).await?;
            txn.commit().await?;
            return Ok(reply(
                ApplyDecisionOutcome::Superseded,
                view::application(&row)?,
            ));
        }

        let feedback = ReviewFeedback {
            decision: decision as i32,
            reason_codes: req.reason_codes.clone(),
            reasons: Vec::new(),
            comment: req.comment.clone(),
            decide_time: req.decide_time.or(Some(view::timestamp(now))),
        };
        let mut active = row.clone().into_active_model();
        active.update_time = Set(now);
        active.feedback = Set(Some(feedback.encode_to_vec()));
        let kind = match decision {
            ReviewDecision::Approve => {
                let seller_id = uuid::Uuid::now_v7().to_string();
                seller::ActiveModel {
                    seller_id: Set(seller_id.clone()),
                    account_id: Set(row.account_id.clone()),
                    application_id: Set(row.application_id.clone()),
                    entity_key: Set(row.entity_key.clone()),
                    company_name: Set(row.company_name.clone()),
                    state: Set(state::SELLER_ACTIVE.to_string()),
                    profile: Set(row.profile.clone()),
                    logo: Set(row.logo.clone()),
                    create_time: Set(now),
                    update_time: Set(now),
                    exit_time: Set(None),
                    exit_reason: Set(None),
                    exited_by: Set(None),
                }
                .insert(&txn)
                .await?;
                // The name history starts with the name at approval.
                name_history::ActiveModel {
                    seller_id: Set(seller_id.clone()),
                    seq: Set(0),
                    company_name: Set(row.company_name.clone()),
                    change_time: Set(now),
                    modification_id: Set(None),
                }
                .insert(&txn)
                .await?;
                active.state = Set(state::APPROVED.to_string());
                active.seller_id = Set(Some(seller_id));
                active.decide_time = Set(Some(now));
                EventKind::ApplicationApproved
            }
            ReviewDecision::Reject => {
                active.state = Set(state::REJECTED.to_string());
                active.decide_time = Set(Some(now));
                EventKind::ApplicationRejected
            }
            ReviewDecision::RequestChanges => {
                active.state = Set(state::CHANGES_REQUESTED.to_string());
                EventKind::ApplicationChangesRequested
            }
            ReviewDecision::Unspecified => unreachable!("refused above"),
        };
        let updated = active.update(&txn).await?;
        record.insert(&txn).await?;
        // the reviewer who decided; the review service when it did not say
        let actor = if req.reviewer.is_empty() {
            "review"
        } else {
            req.reviewer.as_str()
        };
        outbox::announce(
            &txn,
            kind,
            &row.account_id,
            &req.subject,
            actor,
            &[outbox::NOTIFICATION],
        )
        .await?;
        txn.commit().await?;
        self.committed();
        Ok(reply(
            ApplyDecisionOutcome::Applied,
            view::application(&updated)?,
        ))
    }
}

fn reply(
    outcome: ApplyDecisionOutcome,
    app: kg_proto::registration::Application,
) -> ApplyReviewDecisionResponse {
    ApplyReviewDecisionResponse {
        outcome: outcome as i32,
        subject_state: Some(SubjectState::Application(app)),
        seller: None,
    }
}
