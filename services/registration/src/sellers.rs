//! GetSeller and ListSellers: sellers exist once their application is approved.

use kg_proto::registration::CompanyNameChange;
use kg_proto::registration::{ListSellersRequest, ListSellersResponse, Seller, SellerState};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use kg_runtime::error::ServiceError as _;
use kg_runtime::error::Violations;
use kg_runtime::paging::{self, Paging};

use crate::app::Registration;
use crate::error::RegistrationError;
use crate::names::{modification_name, parse_seller_name};
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
        let mut violations = Violations::default();
        let size = paging::page_size(req.page_size, &mut violations);
        violations.check()?;
        let paging = Paging::new(size, &(&req.account_id, &req.states));
        let mut query = seller::Entity::find().order_by_asc(seller::Column::SellerId);
        if let Some(after) = paging.after::<uuid::Uuid>(&req.page_token)? {
            query = query.filter(seller::Column::SellerId.gt(after.to_string()));
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
        let mut rows = query.limit(paging.fetch_limit()).all(&self.db).await?;
        let next_page_token = paging.finish(&mut rows, |r| r.seller_id.clone());
        let sellers = page_details(&self.db, &rows).await?;
        Ok(ListSellersResponse {
            sellers,
            next_page_token,
        })
    }
}
