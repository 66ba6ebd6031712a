//! Stored applications: registration moves to a fresh database, which is pre-loaded to each
//! scale in turn (batched INSERTs, not gRPC); (c) and (d) at the scale concurrency after each.

use std::time::Instant;

use kg_registration::store::application;

use super::context::{Ctx, Owned, Stored};
use super::{get, outbox, submit};
use crate::console::{say, show};
use crate::db;
use crate::mesh::{Mesh, SCALE_DB};
use crate::procs::Memory;
use crate::report::Scale;

/// The scales, and the peak memory of the registration process that was stopped for them.
pub struct Scales {
    pub scales: Vec<Scale>,
    pub first_registration_peak: Option<Memory>,
}

pub async fn measure(
    ctx: &mut Ctx<'_>,
    mesh: &mut Mesh,
    row: &application::Model,
) -> anyhow::Result<Scales> {
    let mut out = Scales {
        scales: Vec::new(),
        first_registration_peak: None,
    };
    if ctx.plan.scales.is_empty() {
        return Ok(out);
    }
    ctx.outbox.backlog_at_switch = Some(db::outbox_backlog(&mesh.registration_db).await?);
    say("registration moves to a fresh database for the stored-applications steps");
    out.first_registration_peak = mesh.move_registration(SCALE_DB).await?;
    let mut stored = Growing {
        row,
        preloaded: Vec::new(),
        next_preload: 0,
        submitted: Stored::default(),
    };
    for &target in &ctx.plan.scales {
        out.scales.push(one(ctx, mesh, &mut stored, target).await?);
    }
    Ok(out)
}

/// What the stored-applications database holds so far.
struct Growing<'a> {
    /// The row the pre-load copies.
    row: &'a application::Model,
    preloaded: Vec<Owned>,
    next_preload: u64,
    /// What the scale steps' submissions stored.
    submitted: Stored,
}

/// Pre-loads up to `target`, then (c) and (d) over everything stored.
async fn one(
    ctx: &mut Ctx<'_>,
    mesh: &mut Mesh,
    stored: &mut Growing<'_>,
    target: u64,
) -> anyhow::Result<Scale> {
    let plan = ctx.plan;
    let before = db::count_applications(&mesh.registration_db).await?;
    let need = target.saturating_sub(before);
    say(format!(
        "stored applications: {before}; pre-loading {need} to reach {target}"
    ));
    let t = Instant::now();
    if need > 0 {
        let written = db::preload(
            &mesh.registration_db,
            stored.row,
            stored.next_preload,
            need,
            500,
            2,
        )
        .await?;
        stored.next_preload += need;
        stored
            .preloaded
            .extend(written.into_iter().map(|(id, account_id)| Owned {
                name: format!("applications/{id}"),
                account_id,
            }));
    }
    let preload_s = t.elapsed().as_secs_f64();
    say(format!("  pre-load took {preload_s:.1} s"));
    let c = plan.scale_concurrency;
    let into = stored.submitted.clone();
    submit::step(ctx, c, plan.submit_warmup_budget(), &into, None).await?;
    let stored_at_measure = db::count_applications(&mesh.registration_db).await?;
    let s = submit::step(ctx, c, plan.submit_budget(), &into, Some(mesh)).await?;
    show(&format!("submit ({stored_at_measure} stored)"), &s);
    let left = outbox::backlog(
        &mesh.registration_db,
        &format!("after submit at {c} in flight, {stored_at_measure} stored"),
    )
    .await?;
    ctx.outbox.after_steps.push(left);
    let drained =
        outbox::drain(&mesh.registration_db, "the submit step", super::DRAIN_BOUND).await?;
    ctx.notes.push(super::drained_note(
        &format!("(d) with {stored_at_measure} stored"),
        &drained,
    ));
    let all = stored
        .preloaded
        .iter()
        .cloned()
        .chain(stored.submitted.snapshot());
    let targets = get::targets(&ctx.clients.tokens, all);
    get::step(
        &ctx.clients,
        targets.clone(),
        c,
        plan.warmup_budget(),
        target ^ 7,
    )
    .await;
    let before = mesh.cpu_snapshot();
    let mut g = get::step(&ctx.clients, targets, c, plan.budget(), target).await;
    mesh.attach_cpu(&mut g, &before);
    show(&format!("get ({stored_at_measure} stored)"), &g);
    mesh.check_alive()?;
    Ok(Scale {
        target,
        stored: stored_at_measure,
        preloaded: need,
        preload_s,
        submit: Some(s),
        get: Some(g),
    })
}
