//! Direct database work: the database limit (the transaction SubmitApplication commits, issued
//! with sea-orm against a scratch database), the pre-load of stored applications into
//! registration's own database with batched INSERTs, and the outbox backlog.

use chrono::Utc;
use kg_registration::outbox;
use kg_registration::store::{application, request, seller, state};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    Set, Statement, TransactionTrait,
};

use crate::load::Failure;

/// The company entity key of fixture seed `seed` (country + the normalized number; the fixture
/// codes are already normalized).
pub fn entity_key(seed: u64) -> (String, String) {
    let number = kg_tests::fixtures::uscc(seed);
    (format!("CN:{number}"), number)
}

/// A copy of `template` (a row SubmitApplication stored) for another account and entity.
pub fn row_like(
    template: &application::Model,
    account_id: &str,
    seed: u64,
    state: &str,
) -> application::Model {
    let (key, number) = entity_key(seed);
    let now = Utc::now();
    application::Model {
        application_id: uuid::Uuid::now_v7().to_string(),
        account_id: account_id.to_string(),
        registration_number: number,
        entity_key: key,
        state: state.to_string(),
        create_time: now,
        update_time: now,
        review_task: None,
        review_deadline: None,
        seller_id: None,
        decide_time: None,
        ..template.clone()
    }
}

/// The check-then-insert transaction of `registration::submit::insert`, statement for statement:
/// SELECT the seller by entity key, SELECT an active application by entity key, INSERT the
/// application, INSERT its idempotency key, INSERT one outbox event per destination (review,
/// notification), the watch event (SELECT the application, advisory lock on PostgreSQL, INSERT),
/// COMMIT.
pub async fn submit_transaction(
    db: &DatabaseConnection,
    row: application::Model,
) -> Result<(), Failure> {
    let txn = db.begin().await?;
    let seller = seller::Entity::find()
        .filter(seller::Column::EntityKey.eq(row.entity_key.as_str()))
        .one(&txn)
        .await?;
    let held = application::Entity::find()
        .filter(application::Column::EntityKey.eq(row.entity_key.as_str()))
        .filter(application::Column::State.is_in(state::ACTIVE))
        .one(&txn)
        .await?;
    if seller.is_some() || held.is_some() {
        return Err(Failure::other("EntityTaken", row.entity_key));
    }
    let name = format!("applications/{}", row.application_id);
    let account_id = row.account_id.clone();
    let create_time = row.create_time;
    let active: application::ActiveModel = row.into();
    active.insert(&txn).await?;
    request::ActiveModel {
        request_id: Set(uuid::Uuid::new_v4().to_string()),
        rpc: Set(kg_registration::submit::RPC.to_string()),
        body_sha256: Set("0".repeat(64)),
        resource: Set(name.clone()),
        create_time: Set(create_time),
    }
    .insert(&txn)
    .await?;
    outbox::announce(
        &txn,
        kg_registration::events::EventKind::ApplicationSubmitted,
        &account_id,
        &name,
        &account_id,
        &[outbox::REVIEW, outbox::NOTIFICATION],
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

/// The state of pre-loaded row `n`: 60 % approved (with their seller), 20 % rejected,
/// 10 % withdrawn, 10 % in review, so the partial unique indexes and the sellers table grow
/// the way they do in a marketplace.
fn preload_state(n: u64) -> &'static str {
    match n % 10 {
        0..=5 => state::APPROVED,
        6 | 7 => state::REJECTED,
        8 => state::WITHDRAWN,
        _ => state::IN_REVIEW,
    }
}

/// Stored applications of `registration_applications`.
pub async fn count_applications(db: &DatabaseConnection) -> anyhow::Result<u64> {
    count(db, "SELECT count(*) AS n FROM registration_applications").await
}

/// Outbox events not yet delivered (`delivered_time IS NULL`).
pub async fn outbox_backlog(db: &DatabaseConnection) -> anyhow::Result<u64> {
    count(
        db,
        &format!(
            "SELECT count(*) AS n FROM {} WHERE delivered_time IS NULL",
            kg_registration::migrations::OUTBOX
        ),
    )
    .await
}

pub async fn count(db: &DatabaseConnection, sql: &str) -> anyhow::Result<u64> {
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await?
        .ok_or_else(|| anyhow::anyhow!("no row from {sql}"))?;
    let n: i64 = row.try_get("", "n")?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Inserts rows `first..first+count` of the pre-load (applications, and a seller for each
/// approved one) in multi-row INSERTs of `batch` rows, `parallel` batches at a time; returns the
/// application ids written with their accounts.
pub async fn preload(
    db: &DatabaseConnection,
    template: &application::Model,
    first: u64,
    count: u64,
    batch: u64,
    parallel: usize,
) -> anyhow::Result<Vec<(String, String)>> {
    let mut ids = Vec::with_capacity(count as usize);
    let mut start = first;
    let end = first + count;
    let mut running = tokio::task::JoinSet::new();
    while start < end || !running.is_empty() {
        while start < end && running.len() < parallel.max(1) {
            let stop = (start + batch).min(end);
            let (apps, sellers): (Vec<_>, Vec<_>) = (start..stop)
                .map(|n| {
                    let st = preload_state(n);
                    let mut row =
                        row_like(template, &format!("bench-stored-{n}"), PRELOAD_SEED + n, st);
                    row.company_name = format!("Stored {n} Software Co., Ltd.");
                    let seller = (st == state::APPROVED).then(|| {
                        let seller_id = uuid::Uuid::now_v7().to_string();
                        row.seller_id = Some(seller_id.clone());
                        row.decide_time = Some(row.create_time);
                        seller::Model {
                            seller_id,
                            account_id: row.account_id.clone(),
                            application_id: row.application_id.clone(),
                            entity_key: row.entity_key.clone(),
                            company_name: row.company_name.clone(),
                            state: state::SELLER_ACTIVE.to_string(),
                            profile: row.profile.clone(),
                            logo: row.logo.clone(),
                            create_time: row.create_time,
                            update_time: row.create_time,
                            exit_time: None,
                            exit_reason: None,
                            exited_by: None,
                        }
                    });
                    (row, seller)
                })
                .unzip();
            ids.extend(
                apps.iter()
                    .map(|a| (a.application_id.clone(), a.account_id.clone())),
            );
            let db = db.clone();
            running.spawn(async move {
                let txn = db.begin().await?;
                application::Entity::insert_many(
                    apps.into_iter()
                        .map(application::ActiveModel::from)
                        .collect::<Vec<_>>(),
                )
                .exec(&txn)
                .await?;
                let sellers: Vec<seller::ActiveModel> = sellers
                    .into_iter()
                    .flatten()
                    .map(seller::ActiveModel::from)
                    .collect();
                if !sellers.is_empty() {
                    seller::Entity::insert_many(sellers).exec(&txn).await?;
                }
                txn.commit().await?;
                Ok::<_, sea_orm::DbErr>(())
            });
            start = stop;
        }
        if let Some(done) = running.join_next().await {
            done??;
        }
    }
    db.execute_unprepared("ANALYZE registration_applications, registration_sellers")
        .await?;
    Ok(ids)
}

/// Fixture seeds of pre-loaded entities start here; submissions use seeds below it.
pub const PRELOAD_SEED: u64 = 500_000_000;
/// Fixture seeds of the database-limit transactions (scratch database) start here.
pub const DB_STEP_SEED: u64 = 800_000_000;
