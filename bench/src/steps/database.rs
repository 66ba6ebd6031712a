//! (b) the database limit: SubmitApplication's transaction alone, issued with sea-orm against a
//! scratch database through a pool like registration's.

use std::sync::Arc;

use kg_registration::store::application;
use sea_orm::DatabaseConnection;

use crate::console::{say, show};
use crate::db;
use crate::load::{Budget, StepResult, drive};
use crate::mesh::Mesh;
use crate::plan::Plan;

/// `tag` and `seed0` keep every step's accounts and entities apart, so no transaction finds
/// its entity taken.
async fn step(
    db: &DatabaseConnection,
    template: &application::Model,
    tag: u64,
    seed0: u64,
    concurrency: usize,
    budget: Budget,
) -> StepResult {
    let db = db.clone();
    let template = Arc::new(template.clone());
    drive(concurrency, budget, move |i, _| {
        let row = db::row_like(
            &template,
            &format!("scratch-{tag}-{i}"),
            seed0 + i,
            kg_registration::store::state::SUBMITTED,
        );
        let db = db.clone();
        async move { db::submit_transaction(&db, row).await }
    })
    .await
}

pub async fn measure(plan: &Plan, mesh: &Mesh, row: &application::Model) -> Vec<StepResult> {
    say("(b) database transaction (scratch database, sea-orm, pool of 20 like registration)");
    let mut out = Vec::new();
    let mut seed = db::DB_STEP_SEED;
    for (tag, &c) in plan.concurrency.iter().enumerate() {
        let tag = tag as u64 * 2;
        let w = step(&mesh.scratch_db, row, tag, seed, c, plan.warmup_budget()).await;
        seed += w.ok + w.error_count() + 1;
        let before = mesh.cpu_snapshot();
        let mut r = step(&mesh.scratch_db, row, tag + 1, seed, c, plan.budget()).await;
        mesh.attach_cpu(&mut r, &before);
        seed += r.ok + r.error_count() + 1;
        show("db txn", &r);
        out.push(r);
    }
    out
}
