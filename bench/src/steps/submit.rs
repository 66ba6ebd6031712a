//! (c) SubmitApplication: complete, valid submissions, each from a distinct account (imported
//! first, outside the measurement) for a distinct company entity, presented with that
//! applicant's own token.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use kg_proto::registration::registration_service_client::RegistrationServiceClient;
use kg_registration::store::application;
use kg_tests::fixtures;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use super::context::{Ctx, Owned, Stored};
use super::outbox;
use crate::console::{say, show};
use crate::load::{Budget, Failure, StepResult, drive};
use crate::mesh::Mesh;

/// One SubmitApplication step (a warm-up when `cpu` is `None`); the applications created go to
/// `into`. With `cpu`, the step's CPU use is attached, counted from after the accounts are
/// imported and their tokens minted (neither is part of SubmitApplication).
pub async fn step(
    ctx: &mut Ctx<'_>,
    concurrency: usize,
    budget: Budget,
    into: &Stored,
    cpu: Option<&Mesh>,
) -> anyhow::Result<StepResult> {
    let (prefix, seed0) = ctx.ids.take(budget.max_requests);
    let clients = &ctx.clients;
    clients
        .import_accounts(&prefix, budget.max_requests)
        .await?;
    let bearers = Arc::new(clients.applicants(&prefix, budget.max_requests));
    let before = cpu.map(|mesh| {
        say(format!("  submitting at {concurrency} in flight"));
        mesh.cpu_snapshot()
    });
    let channels = Arc::new(clients.registration.clone());
    let template = Arc::new(ctx.template.clone());
    let into = into.clone();
    let mut step = drive(concurrency, budget, move |i, w| {
        let mut client = RegistrationServiceClient::with_interceptor(
            channels[w % channels.len()].clone(),
            bearers[i as usize].clone(),
        );
        let mut req = (*template).clone();
        req.request_id = uuid::Uuid::new_v4().to_string();
        req.account_id = format!("{prefix}-{i}");
        if let Some(app) = req.application.as_mut() {
            app.entity = Some(fixtures::entity(seed0 + i));
        }
        let into = into.clone();
        async move {
            let account_id = req.account_id.clone();
            let reply = client.submit_application(req).await?.into_inner();
            let app = reply
                .application
                .ok_or_else(|| Failure::other("NoApplication", "reply without application"))?;
            into.push(Owned {
                name: app.name,
                account_id,
            });
            Ok(())
        }
    })
    .await;
    if let (Some(mesh), Some(before)) = (cpu, before) {
        mesh.attach_cpu(&mut step, &before);
    }
    Ok(step)
}

/// A row SubmitApplication stored, the model of (b)'s transactions and of the pre-load.
pub struct StoredRow {
    pub row: application::Model,
    /// Bytes of profile, logo, agreement and evidence in it.
    pub bytes: usize,
}

/// The first submissions: they prove SubmitApplication works and give the stored row.
pub async fn first(ctx: &mut Ctx<'_>, mesh: &Mesh) -> anyhow::Result<StoredRow> {
    say("first submissions (template row)");
    let budget = Budget {
        duration: Duration::from_secs(30),
        max_requests: 8,
    };
    let submitted = ctx.submitted.clone();
    let first = step(ctx, 4, budget, &submitted, None).await?;
    if first.ok == 0 {
        bail!(
            "SubmitApplication fails: {:?} (see {})",
            first.errors,
            ctx.plan.log_dir.display()
        );
    }
    let row = application::Entity::find()
        .filter(application::Column::AccountId.like("bench-%"))
        .one(&mesh.registration_db)
        .await?
        .context("no stored application after the first submissions")?;
    let bytes = row.profile.len()
        + row.logo.as_ref().map_or(0, Vec::len)
        + row.agreement.len()
        + row.evidence.as_ref().map_or(0, Vec::len);
    Ok(StoredRow { row, bytes })
}

/// (c) at each concurrency, with the outbox backlog each step leaves.
pub async fn measure(ctx: &mut Ctx<'_>, mesh: &mut Mesh) -> anyhow::Result<Vec<StepResult>> {
    say("(c) SubmitApplication");
    let plan = ctx.plan;
    let submitted = ctx.submitted.clone();
    let mut out = Vec::new();
    for &c in &plan.concurrency {
        step(ctx, c, plan.submit_warmup_budget(), &submitted, None).await?;
        let r = step(ctx, c, plan.submit_budget(), &submitted, Some(mesh)).await?;
        show("submit", &r);
        if r.ok >= plan.max_submits {
            ctx.notes.push(format!(
                "SubmitApplication at {c} in flight ended by the submission budget ({}) before {} s.",
                plan.max_submits,
                plan.step.as_secs_f64()
            ));
        }
        out.push(r);
        let left = outbox::backlog(
            &mesh.registration_db,
            &format!("after submit at {c} in flight"),
        )
        .await?;
        ctx.outbox.after_steps.push(left);
        mesh.check_alive()?;
    }
    Ok(out)
}
