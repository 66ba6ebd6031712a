//! ApplyReviewDecision for a modification request. APPROVE applies exactly the reviewed diff to
//! the seller (profile leaves, or the company name plus a name-history entry) in the same
//! transaction that closes the request; REJECT closes it with the feedback and leaves the seller
//! as it was. REQUEST_CHANGES does not apply to modifications. A replayed event id answers
//! ALREADY_APPLIED; a request that is no longer pending (withdrawn, or the seller exited) answers
//! SUPERSEDED.

use kg_proto::common::{ReviewDecision, ReviewFeedback};
use kg_proto::registration::apply_review_decision_response::SubjectState;
use kg_proto::registration::{
    ApplyDecisionOutcome, ApplyReviewDecisionRequest, ApplyReviewDecisionResponse,
};
use kg_runtime::error::ServiceError as _;
use prost::Message;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, PaginatorTrait, QueryFilter, Set,
    TransactionTrait,
};

use crate::app::Registration;
use crate::error::RegistrationError;
use crate::events::EventKind;
use crate::idempotency::Key;
use crate::names::parse_modification_name;
use crate::outbox;
use crate::profile_mask::copy_leaf;
use crate::reads::{name_history_of, seller_details};
use crate::store::{modification, name_history, seller, state};
use crate::view::modification::{changes_of, proposed_profile, view};
use crate::view::seller::live_profile;

impl Registration {
    /// `key`: the event id, as checked by `apply_decision`.
    pub(crate) async fn apply_modification_decision(
        &self,
        key: &Key,
        req: &ApplyReviewDecisionRequest,
        decision: ReviewDecision,
    ) -> Result<ApplyReviewDecisionResponse, RegistrationError> {
        let (seller_id, id) = parse_modification_name(&req.subject).map_err(|_| {
            RegistrationError::field(
                "subject",
                "SUBJECT_INVALID",
                "expected sellers/{seller_id}/modificationRequests/{modification_request_id}",
            )
        })?;
        if decision == ReviewDecision::RequestChanges {
            return Err(RegistrationError::field(
                "decision",
                "DECISION_INVALID",
                "a modification request is approved or rejected; REQUEST_CHANGES applies to applications only",
            ));
        }
        let applied = id.clone();
        key.run(
            &self.db,
            self.apply_modification_decision_once(key, seller_id, id, req, decision),
            |_| async move {
                let row = modification::Entity::find_by_id(applied)
                    .one(&self.db)
                    .await?
                    .ok_or_else(|| RegistrationError::ModificationNotFound(req.subject.clone()))?;
                reply(ApplyDecisionOutcome::AlreadyApplied, &row, None)
            },
        )
        .await
    }

    async fn apply_modification_decision_once(
        &self,
        key: &Key,
        seller_id: String,
        id: String,
        req: &ApplyReviewDecisionRequest,
        decision: ReviewDecision,
    ) -> Result<ApplyReviewDecisionResponse, RegistrationError> {
        let txn = self.db.begin().await?;
        let row = modification::Entity::find_by_id(id)
            .one(&txn)
            .await?
            .filter(|r| r.seller_id == seller_id)
            .ok_or_else(|| RegistrationError::ModificationNotFound(req.subject.clone()))?;
        let now = kg_runtime::db::now();
        key.record(&req.subject, now).insert(&txn).await?;
        if row.state != state::MOD_PENDING {
            let out = reply(ApplyDecisionOutcome::Superseded, &row, None)?;
            txn.commit().await?;
            return Ok(out);
        }
        let live = seller::Entity::find_by_id(seller_id.clone())
            .one(&txn)
            .await?
            .ok_or_else(|| RegistrationError::SellerNotFound(format!("sellers/{seller_id}")))?;

        let feedback = ReviewFeedback {
            decision: decision as i32,
            reason_codes: req.reason_codes.clone(),
            reasons: Vec::new(),
            comment: req.comment.clone(),
            decide_time: req.decide_time.or(Some(crate::view::timestamp(now))),
        };
        let mut active = row.clone().into_active_model();
        active.feedback = Set(Some(feedback.encode_to_vec()));
        active.decide_time = Set(Some(now));
        active.update_time = Set(now);
        let mut changed_seller = None;
        let event_type = match decision {
            ReviewDecision::Approve => {
                active.state = Set(state::MOD_APPROVED.to_string());
                let mut seller_row = live.clone().into_active_model();
                seller_row.update_time = Set(now);
                let event = if row.kind == state::KIND_NAME {
                    let new_name = row.proposed_company_name.clone().unwrap_or_default();
                    // Sellers from before the history was kept get their first entry now.
                    let history = name_history::Entity::find()
                        .filter(name_history::Column::SellerId.eq(seller_id.clone()))
                        .count(&txn)
                        .await?;
                    let mut seq = history as i32;
                    if history == 0 {
                        for h in name_history_of(&txn, &live).await? {
                            name_history::ActiveModel::from(h).insert(&txn).await?;
                            seq += 1;
                        }
                    }
                    name_history::ActiveModel {
                        seller_id: Set(seller_id.clone()),
                        seq: Set(seq),
                        company_name: Set(new_name.clone()),
                        change_time: Set(now),
                        modification_id: Set(Some(row.modification_id.clone())),
                    }
                    .insert(&txn)
                    .await?;
                    seller_row.company_name = Set(new_name);
                    EventKind::SellerRenamed
                } else {
                    // Exactly the reviewed leaves: everything else stays as it is now. A live
                    // profile that does not decode fails the decision (the transaction rolls
                    // back): rebuilding it from an empty one would erase the seller's data.
                    let mut profile = live_profile(&live)?;
                    profile.logo = live.logo.clone().unwrap_or_default();
                    let mut proposed = proposed_profile(&row)?.unwrap_or_default();
                    proposed.logo = row.proposed_logo.clone().unwrap_or_default();
                    for change in changes_of(&row)? {
                        copy_leaf(&mut profile, &proposed, &change.path);
                    }
                    let logo = std::mem::take(&mut profile.logo);
                    seller_row.profile = Set(profile.encode_to_vec());
                    seller_row.logo = Set(Some(logo));
                    EventKind::SellerInfoChanged
                };
                changed_seller = Some(seller_row.update(&txn).await?);
                event
            }
            ReviewDecision::Reject => {
                active.state = Set(state::MOD_REJECTED.to_string());
                EventKind::ModificationRejected
            }
            ReviewDecision::RequestChanges | ReviewDecision::Unspecified => {
                unreachable!("refused above")
            }
        };
        let updated = active.update(&txn).await?;
        // the reviewer who decided; the review service when it did not say
        let actor = if req.reviewer.is_empty() {
            "review"
        } else {
            req.reviewer.as_str()
        };
        outbox::announce(
            &txn,
            event_type,
            &row.account_id,
            &req.subject,
            actor,
            &[outbox::NOTIFICATION],
        )
        .await?;
        let seller_after = match &changed_seller {
            Some(s) => Some(seller_details(&txn, s, false).await?),
            None => None,
        };
        let out = reply(ApplyDecisionOutcome::Applied, &updated, seller_after)?;
        txn.commit().await?;
        self.committed();
        Ok(out)
    }
}

fn reply(
    outcome: ApplyDecisionOutcome,
    row: &modification::Model,
    seller: Option<kg_proto::registration::Seller>,
) -> Result<ApplyReviewDecisionResponse, RegistrationError> {
    Ok(ApplyReviewDecisionResponse {
        outcome: outcome as i32,
        subject_state: Some(SubjectState::ModificationRequest(view(row, false)?)),
        seller,
    })
}
