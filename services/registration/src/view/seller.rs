//! A stored seller as the wire `Seller` (without what lives in other tables: see
//! `reads::seller_details`), and its live profile. Imports only store and view.

use kg_proto::common::{CompanyEntity, SellerProfile};
use kg_proto::registration::{Seller, SellerState};
use kg_runtime::stored::{self, StoredCorrupt};

use super::{etag, timestamp};
use crate::store::{seller, state};

/// The seller as a wire message; its stored profile must decode (see `kg_runtime::stored`).
pub fn seller_view(row: &seller::Model, with_logo: bool) -> Result<Seller, StoredCorrupt> {
    let mut profile = live_profile(row)?;
    if with_logo {
        profile.logo = row.logo.clone().unwrap_or_default();
    }
    let (country, number) = row
        .entity_key
        .split_once(':')
        .unwrap_or(("", &row.entity_key));
    Ok(Seller {
        name: format!("sellers/{}", row.seller_id),
        seller_id: row.seller_id.clone(),
        account_id: row.account_id.clone(),
        company_name: row.company_name.clone(),
        entity: Some(CompanyEntity {
            country: country.to_string(),
            registration_number: number.to_string(),
        }),
        profile: Some(profile),
        state: if row.state == state::SELLER_EXITED {
            SellerState::Exited
        } else {
            SellerState::Active
        } as i32,
        name_history: Vec::new(),
        create_time: Some(timestamp(row.create_time)),
        update_time: Some(timestamp(row.update_time)),
        exit_time: row.exit_time.map(timestamp),
        open_modification_request: String::new(),
        application: format!("applications/{}", row.application_id),
        exit_reason: row.exit_reason.clone().unwrap_or_default(),
        etag: etag(row.update_time),
        agreement: None,
        contacts: Vec::new(),
        unreachable: false,
    })
}

/// The seller's live profile as stored (without the logo bytes, kept in their own column).
/// Bytes that do not decode are an error, never an empty profile: one written back would
/// erase the seller's information.
pub fn live_profile(row: &seller::Model) -> Result<SellerProfile, StoredCorrupt> {
    stored::decode(
        &row.profile,
        "registration_sellers.profile",
        &format!("sellers/{}", row.seller_id),
    )
}
