//! A stored modification request as the wire `ModificationRequest`: its kind and state names,
//! its reviewed changes and its proposed profile. Imports only names, store and view.

use kg_proto::common::SellerProfile;
use kg_proto::registration::{
    FieldChange, ModificationKind, ModificationRequest, ModificationState,
};
use kg_runtime::stored::{self, StoredCorrupt};
use serde::{Deserialize, Serialize};

use super::{etag, timestamp};
use crate::names::modification_name;
use crate::store::{modification, state};

/// One changed leaf, as stored (JSON) and as sent (FieldChange).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub path: String,
    pub old: String,
    pub new: String,
}

pub fn kind_of(kind: &str) -> ModificationKind {
    match kind {
        state::KIND_PROFILE => ModificationKind::ProfileUpdate,
        state::KIND_NAME => ModificationKind::CompanyNameChange,
        _ => ModificationKind::Unspecified,
    }
}

pub fn kind_name(kind: ModificationKind) -> Option<&'static str> {
    match kind {
        ModificationKind::ProfileUpdate => Some(state::KIND_PROFILE),
        ModificationKind::CompanyNameChange => Some(state::KIND_NAME),
        ModificationKind::Unspecified => None,
    }
}

pub fn state_of(s: &str) -> ModificationState {
    match s {
        state::MOD_PENDING => ModificationState::PendingReview,
        state::MOD_APPROVED => ModificationState::Approved,
        state::MOD_REJECTED => ModificationState::Rejected,
        state::MOD_WITHDRAWN => ModificationState::Withdrawn,
        _ => ModificationState::Unspecified,
    }
}

pub fn state_name(s: ModificationState) -> Option<&'static str> {
    match s {
        ModificationState::PendingReview => Some(state::MOD_PENDING),
        ModificationState::Approved => Some(state::MOD_APPROVED),
        ModificationState::Rejected => Some(state::MOD_REJECTED),
        ModificationState::Withdrawn => Some(state::MOD_WITHDRAWN),
        ModificationState::Unspecified => None,
    }
}

/// The reviewed field changes of a stored request; a column that does not parse is an error
/// (an empty list would apply, and show, no change at all).
pub fn changes_of(row: &modification::Model) -> Result<Vec<Change>, StoredCorrupt> {
    kg_runtime::stored::decode_json(
        &row.changes,
        "registration_modifications.changes",
        &modification_name(&row.seller_id, &row.modification_id),
    )
}

/// The stored request as a wire message; `with_logo` puts a changed logo's bytes back into
/// `proposed_profile`. Stored messages that do not decode are an error (see
/// `kg_runtime::stored`); a NULL column stays unset.
pub fn view(
    row: &modification::Model,
    with_logo: bool,
) -> Result<ModificationRequest, StoredCorrupt> {
    let name = modification_name(&row.seller_id, &row.modification_id);
    let proposed_profile = proposed_profile(row)?.map(|mut p| {
        if with_logo {
            p.logo = row.proposed_logo.clone().unwrap_or_default();
        }
        p
    });
    let rejection = if row.state == state::MOD_REJECTED {
        stored::decode_opt(
            row.feedback.as_deref(),
            "registration_modifications.feedback",
            &name,
        )?
    } else {
        None
    };
    let evidence = stored::decode_opt(
        row.evidence.as_deref(),
        "registration_modifications.evidence",
        &name,
    )?;
    Ok(ModificationRequest {
        name,
        modification_request_id: row.modification_id.clone(),
        seller: format!("sellers/{}", row.seller_id),
        account_id: row.account_id.clone(),
        kind: kind_of(&row.kind) as i32,
        changes: changes_of(row)?
            .into_iter()
            .map(|c| FieldChange {
                field_path: c.path,
                old_value: c.old,
                new_value: c.new,
            })
            .collect(),
        proposed_profile,
        proposed_company_name: row.proposed_company_name.clone().unwrap_or_default(),
        previous_company_name: row.previous_company_name.clone(),
        state: state_of(&row.state) as i32,
        rejection,
        evidence,
        create_time: Some(timestamp(row.create_time)),
        update_time: Some(timestamp(row.update_time)),
        decide_time: row.decide_time.map(timestamp),
        review_deadline: row.review_deadline.map(timestamp),
        etag: etag(row.update_time),
        withdraw_reason: row.withdraw_reason.clone().unwrap_or_default(),
    })
}

/// The request's proposed profile as stored (without the logo bytes); `None` when the column
/// is NULL (a company name change).
pub fn proposed_profile(row: &modification::Model) -> Result<Option<SellerProfile>, StoredCorrupt> {
    stored::decode_opt(
        row.proposed_profile.as_deref(),
        "registration_modifications.proposed_profile",
        &modification_name(&row.seller_id, &row.modification_id),
    )
}
