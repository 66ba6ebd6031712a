//! Every query of contacts/: reads, and the per-account lock that serializes the writers.

use chrono::{DateTime, Utc};
use kg_proto::common::SellerProfile;
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, Set,
};

use crate::store::{application, contact, contact_failure, reachability, seller};

/// The account's addresses, oldest first.
pub async fn of_account<C: ConnectionTrait>(
    db: &C,
    account_id: &str,
) -> Result<Vec<contact::Model>, DbErr> {
    contact::Entity::find()
        .filter(contact::Column::AccountId.eq(account_id))
        .order_by_asc(contact::Column::CreateTime)
        .order_by_asc(contact::Column::ContactId)
        .all(db)
        .await
}

/// The stored states of a profile's addresses (those not enrolled yet are left out).
pub async fn of_profile<C: ConnectionTrait>(
    db: &C,
    account_id: &str,
    profile: &SellerProfile,
) -> Result<Vec<contact::Model>, DbErr> {
    let wanted = super::addresses(profile);
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let rows = contact::Entity::find()
        .filter(contact::Column::AccountId.eq(account_id))
        .filter(contact::Column::Email.is_in(wanted))
        .all(db)
        .await?;
    Ok(of_profile_among(&rows, profile))
}

/// [`of_profile`] out of rows already read: those of the profile's addresses, in the profile's
/// order (its contact first, then its customer service).
pub fn of_profile_among(rows: &[contact::Model], profile: &SellerProfile) -> Vec<contact::Model> {
    let wanted = super::addresses(profile);
    let mut picked: Vec<contact::Model> = rows
        .iter()
        .filter(|r| wanted.contains(&r.email))
        .cloned()
        .collect();
    picked.sort_by_key(|r| wanted.iter().position(|w| *w == r.email));
    picked
}

/// The stored rows of some addresses of an account (those not enrolled are left out).
pub async fn by_addresses<C: ConnectionTrait>(
    db: &C,
    account_id: &str,
    emails: &[String],
) -> Result<Vec<contact::Model>, DbErr> {
    contact::Entity::find()
        .filter(contact::Column::AccountId.eq(account_id))
        .filter(contact::Column::Email.is_in(emails.iter().cloned()))
        .all(db)
        .await
}

pub async fn by_address<C: ConnectionTrait>(
    db: &C,
    account_id: &str,
    email: &str,
) -> Result<Option<contact::Model>, DbErr> {
    contact::Entity::find()
        .filter(contact::Column::AccountId.eq(account_id))
        .filter(contact::Column::Email.eq(email))
        .one(db)
        .await
}

pub async fn by_id<C: ConnectionTrait>(
    db: &C,
    account_id: &str,
    contact_id: &str,
) -> Result<Option<contact::Model>, DbErr> {
    contact::Entity::find_by_id(contact_id.to_string())
        .filter(contact::Column::AccountId.eq(account_id))
        .one(db)
        .await
}

/// Since when the account is marked unreachable, if it is.
pub async fn unreachable_since<C: ConnectionTrait>(
    db: &C,
    account_id: &str,
) -> Result<Option<DateTime<Utc>>, DbErr> {
    Ok(reachability::Entity::find_by_id(account_id.to_string())
        .one(db)
        .await?
        .and_then(|r| r.unreachable_time))
}

/// Takes the account's reachability row for the rest of the transaction and returns it.
///
/// Reports and verifications of one account decide "unreachable" from a count and a flag; two
/// of them deciding at once on READ COMMITTED could each miss the other's row (write skew). So
/// each writes this row first: the insert-or-touch holds its row lock (PostgreSQL) or the write
/// lock (SQLite) until commit, and the second transaction reads after the first committed.
pub async fn lock_account<C: ConnectionTrait>(
    db: &C,
    account_id: &str,
) -> Result<reachability::Model, DbErr> {
    reachability::Entity::insert(reachability::ActiveModel {
        account_id: Set(account_id.to_string()),
        unreachable_time: Set(None),
        clear_time: Set(None),
    })
    .on_conflict(
        // DO UPDATE (to the same value), not DO NOTHING: only an update locks the row.
        OnConflict::column(reachability::Column::AccountId)
            .update_column(reachability::Column::AccountId)
            .to_owned(),
    )
    .exec_without_returning(db)
    .await?;
    reachability::Entity::find_by_id(account_id.to_string())
        .one(db)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound(format!("reachability of {account_id}")))
}

/// Failures of the account's addresses recorded after `since`.
pub async fn failures_since<C: ConnectionTrait>(
    db: &C,
    account_id: &str,
    since: DateTime<Utc>,
) -> Result<u64, DbErr> {
    contact_failure::Entity::find()
        .filter(contact_failure::Column::AccountId.eq(account_id))
        .filter(contact_failure::Column::FailureTime.gt(since))
        .count(db)
        .await
}

pub async fn failure_seen<C: ConnectionTrait>(db: &C, report_id: &str) -> Result<bool, DbErr> {
    Ok(contact_failure::Entity::find_by_id(report_id.to_string())
        .one(db)
        .await?
        .is_some())
}

/// The company name the account is known by: its seller's, else its latest application's.
pub async fn company_name_of<C: ConnectionTrait>(
    db: &C,
    account_id: &str,
) -> Result<String, DbErr> {
    if let Some(s) = seller::Entity::find()
        .filter(seller::Column::AccountId.eq(account_id))
        .order_by_desc(seller::Column::CreateTime)
        .one(db)
        .await?
    {
        return Ok(s.company_name);
    }
    Ok(application::Entity::find()
        .filter(application::Column::AccountId.eq(account_id))
        .order_by_desc(application::Column::CreateTime)
        .one(db)
        .await?
        .map(|a| a.company_name)
        .unwrap_or_default())
}
