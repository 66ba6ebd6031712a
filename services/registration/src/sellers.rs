//! GetSeller and ListSellers: sellers exist once their application is approved.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use kg_proto::registration::CompanyNameChange;
use kg_proto::registration::{ListSellersRequest, ListSellersResponse, Seller, SellerState};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::app::Registration;
use crate::error::RegistrationError;
use crate::names::{modification_name, parse_seller_name};
use crate::queries::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
use crate::reads::seller_details;
use crate::store::{modification, name_history, seller, state};
use crate::view::seller::seller_view;
use crate::view::timestamp;

/// `seller_details` for a page of sellers in two queries rather than two per seller.
async fn page_details(
    db: &sea_orm::DatabaseConnection,
    rows: &[seller::Model],
) -> Result<Vec<Seller>, sea_orm::DbErr> {
    let ids: Vec<String> = rows.iter().map(|r| r.seller_id.clone()).collect();
    let history = name_history::Entity::find()
        .filter(name_history::Column::SellerId.is_in(ids.clone()))
        .order_by_asc(name_history::Column::Seq)
        .all(db)
        .await?;
    let pending = modification::Entity::find()
        .filter(modification::Column::SellerId.is_in(ids))
        .filter(modification::Column::State.eq(state::MOD_PENDING))
        .all(db)
        .await?;
    rows.iter()
        .map(|row| {
            let mut out = seller_view(row, false)?;
            out.name_history = history
                .iter()
                .filter(|h| h.seller_id == row.seller_id)
                .map(|h| CompanyNameChange {
                    company_name: h.company_name.clone(),
                    change_time: Some(timestamp(h.change_time)),
                    modification_request: h
                        .modification_id
                        .as_ref()
                        .map(|m| modification_name(&h.seller_id, m))
                        .unwrap_or_default(),
                })
                .collect();
            if out.name_history.is_empty() {
                out.name_history = vec![CompanyNameChange {
                    company_name: row.company_name.clone(),
                    change_time: Some(timestamp(row.create_time)),
                    modification_request: String::new(),
                }];
            }
            out.open_modification_request = pending
                .iter()
                .find(|m| m.seller_id == row.seller_id)
                .map(|m| modification_name(&m.seller_id, &m.modification_id))
                .unwrap_or_default();
            Ok(out)
        })
        .collect()
}

impl Registration {
    pub async fn seller_by_name(&self, name: &str) -> Result<Seller, RegistrationError> {
        let id = parse_seller_name(name)?;
        let row = seller::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .ok_or_else(|| RegistrationError::SellerNotFound(name.to_string()))?;
        Ok(seller_details(&self.db, &row, true).await?)
    }

    pub async fn list_sellers(
        &self,
        req: ListSellersRequest,
    ) -> Result<ListSellersResponse, RegistrationError> {
        if req.page_size < 0 {
            return Err(RegistrationError::field(
                "page_size",
                "PAGE_SIZE_INVALID",
                "page_size must not be negative",
            ));
        }
        let size = match req.page_size as u64 {
            0 => DEFAULT_PAGE_SIZE,
            n => n.min(MAX_PAGE_SIZE),
        };
        let mut query = seller::Entity::find().order_by_asc(seller::Column::SellerId);
        if !req.page_token.is_empty() {
            let after = URL_SAFE_NO_PAD
                .decode(&req.page_token)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .filter(|s| uuid::Uuid::parse_str(s).is_ok())
                .ok_or(RegistrationError::InvalidPageToken)?;
            query = query.filter(seller::Column::SellerId.gt(after));
        }
        if !req.account_id.is_empty() {
            query = query.filter(seller::Column::AccountId.eq(req.account_id.clone()));
        }
        let mut states = Vec::new();
        for s in &req.states {
            match SellerState::try_from(*s) {
                Ok(SellerState::Active) => states.push(state::SELLER_ACTIVE),
                Ok(SellerState::Exited) => states.push(state::SELLER_EXITED),
                _ => {
                    return Err(RegistrationError::field(
                        "states",
                        "STATE_INVALID",
                        "unknown seller state",
                    ));
                }
            }
        }
        if !states.is_empty() {
            query = query.filter(seller::Column::State.is_in(states));
        }
        if !req.registration_number.is_empty() {
            let country = req.country.trim().to_uppercase();
            let number = kg_checks::regnum::normalize(&req.registration_number);
            query = query.filter(seller::Column::EntityKey.eq(format!("{country}:{number}")));
        }
        let mut rows = query.limit(size + 1).all(&self.db).await?;
        let next_page_token = if rows.len() as u64 > size {
            rows.truncate(size as usize);
            rows.last()
                .map(|r| URL_SAFE_NO_PAD.encode(&r.seller_id))
                .unwrap_or_default()
        } else {
            String::new()
        };
        let sellers = page_details(&self.db, &rows).await?;
        Ok(ListSellersResponse {
            sellers,
            next_page_token,
        })
    }
}
