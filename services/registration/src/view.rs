//! Stored rows as wire messages, and small parsers shared by the handlers: the application here,
//! the seller in `view/seller.rs`, the modification request in `view/modification.rs` (a
//! contact's is contacts/view.rs). The bottom layer: it imports only store (and names), so the
//! event log, the relay and the handlers can all build the same messages.

pub mod modification;
pub mod seller;

use chrono::{DateTime, Utc};
use kg_proto::common::{
    AgreementAcceptance, CheckEvidence, CompanyEntity, ReviewFeedback, SellerProfile,
};
use kg_proto::registration::{Application, ApplicationState};
use kg_runtime::stored::{self, StoredCorrupt};

use crate::store::{application, state};

pub fn timestamp(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    }
}

pub fn validate_account_id(id: &str) -> Result<(), String> {
    if kg_runtime::idempotency::is_plain_id(id) {
        Ok(())
    } else {
        Err("account ids are 1-64 characters of A-Z, a-z, 0-9, '-' and '_'".into())
    }
}

pub fn application_state(s: &str) -> ApplicationState {
    match s {
        state::SUBMITTED => ApplicationState::Submitted,
        state::IN_REVIEW => ApplicationState::InReview,
        state::CHANGES_REQUESTED => ApplicationState::ChangesRequested,
        state::APPROVED => ApplicationState::Approved,
        state::REJECTED => ApplicationState::Rejected,
        state::WITHDRAWN => ApplicationState::Withdrawn,
        _ => ApplicationState::Unspecified,
    }
}

pub fn state_name(s: ApplicationState) -> Option<&'static str> {
    Some(match s {
        ApplicationState::Submitted => state::SUBMITTED,
        ApplicationState::InReview => state::IN_REVIEW,
        ApplicationState::ChangesRequested => state::CHANGES_REQUESTED,
        ApplicationState::Approved => state::APPROVED,
        ApplicationState::Rejected => state::REJECTED,
        ApplicationState::Withdrawn => state::WITHDRAWN,
        ApplicationState::Unspecified => return None,
    })
}

/// The application as a wire message. Stored messages that do not decode are an error (see
/// `kg_runtime::stored`); a NULL column stays unset.
pub fn application(row: &application::Model) -> Result<Application, StoredCorrupt> {
    let key = format!("applications/{}", row.application_id);
    let mut profile: SellerProfile =
        stored::decode(&row.profile, "registration_applications.profile", &key)?;
    profile.logo = row.logo.clone().unwrap_or_default();
    let feedback: Option<ReviewFeedback> = stored::decode_opt(
        row.feedback.as_deref(),
        "registration_applications.feedback",
        &key,
    )?;
    let agreement: AgreementAcceptance =
        stored::decode(&row.agreement, "registration_applications.agreement", &key)?;
    let evidence: Option<CheckEvidence> = stored::decode_opt(
        row.evidence.as_deref(),
        "registration_applications.evidence",
        &key,
    )?;
    let is_rejected = row.state == state::REJECTED;
    Ok(Application {
        name: key,
        application_id: row.application_id.clone(),
        account_id: row.account_id.clone(),
        company_name: row.company_name.clone(),
        entity: Some(CompanyEntity {
            country: row.country.clone(),
            registration_number: row.registration_number.clone(),
        }),
        profile: Some(profile),
        agreement: Some(agreement),
        state: application_state(&row.state) as i32,
        evidence,
        rejection: if is_rejected { feedback.clone() } else { None },
        changes_requested: if row.state == state::CHANGES_REQUESTED {
            feedback
        } else {
            None
        },
        review_deadline: row.review_deadline.map(timestamp),
        create_time: Some(timestamp(row.create_time)),
        update_time: Some(timestamp(row.update_time)),
        decide_time: row.decide_time.map(timestamp),
        seller: row
            .seller_id
            .as_ref()
            .map(|id| format!("sellers/{id}"))
            .unwrap_or_default(),
        etag: etag(row.update_time),
        withdraw_reason: row.withdraw_reason.clone().unwrap_or_default(),
        resubmit_time: None,
        resubmit_count: 0,
        contacts: Vec::new(),
    })
}

/// Changes whenever the row changes: the update time to the microsecond.
pub fn etag(update_time: DateTime<Utc>) -> String {
    format!("W/\"{}\"", update_time.timestamp_micros())
}
