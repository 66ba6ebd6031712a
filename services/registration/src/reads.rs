//! Reads that put together a subject from several tables, shared by the handlers and the
//! event log (events.rs snapshots): a seller with its name history and its pending
//! modification request. The storage layer: it imports only names, store and view.

use kg_proto::registration::{CompanyNameChange, Seller};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};

use crate::names::modification_name;
use crate::store::{modification, name_history, seller, state};
use crate::view::seller::seller_view;
use crate::view::timestamp;

/// Every company name of a seller, oldest first. A seller created before names were recorded
/// has no rows: its one name is its current one, since its creation.
pub async fn name_history_of<C: ConnectionTrait>(
    db: &C,
    row: &seller::Model,
) -> Result<Vec<name_history::Model>, sea_orm::DbErr> {
    let rows = name_history::Entity::find()
        .filter(name_history::Column::SellerId.eq(row.seller_id.clone()))
        .order_by_asc(name_history::Column::Seq)
        .all(db)
        .await?;
    if !rows.is_empty() {
        return Ok(rows);
    }
    Ok(vec![name_history::Model {
        seller_id: row.seller_id.clone(),
        seq: 0,
        company_name: row.company_name.clone(),
        change_time: row.create_time,
        modification_id: None,
    }])
}

/// The seller with what lives in other tables: its name history and its pending request.
pub async fn seller_details<C: ConnectionTrait>(
    db: &C,
    row: &seller::Model,
    with_logo: bool,
) -> Result<Seller, sea_orm::DbErr> {
    let mut out = seller_view(row, with_logo)?;
    out.name_history = name_history_of(db, row)
        .await?
        .into_iter()
        .map(|h| CompanyNameChange {
            company_name: h.company_name,
            change_time: Some(timestamp(h.change_time)),
            modification_request: h
                .modification_id
                .map(|m| modification_name(&h.seller_id, &m))
                .unwrap_or_default(),
        })
        .collect();
    out.open_modification_request = pending_of(db, &row.seller_id)
        .await?
        .map(|m| modification_name(&m.seller_id, &m.modification_id))
        .unwrap_or_default();
    Ok(out)
}

/// The pending request of a seller, if any.
pub async fn pending_of<C: ConnectionTrait>(
    db: &C,
    seller_id: &str,
) -> Result<Option<modification::Model>, sea_orm::DbErr> {
    modification::Entity::find()
        .filter(modification::Column::SellerId.eq(seller_id))
        .filter(modification::Column::State.eq(state::MOD_PENDING))
        .one(db)
        .await
}
