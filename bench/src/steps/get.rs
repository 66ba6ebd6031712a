//! (d) GetApplication: reads of random stored applications, each by the applicant that owns it.

use std::sync::Arc;

use kg_proto::registration::GetApplicationRequest;
use kg_proto::registration::registration_service_client::RegistrationServiceClient;

use super::context::{Ctx, Owned};
use crate::clients::Clients;
use crate::console::{say, show};
use crate::load::{Budget, StepResult, drive, mix};
use crate::mesh::Mesh;
use crate::tokens::{Bearer, Tokens};

/// What a step reads: application names with their owner's token.
pub type Targets = Arc<Vec<(String, Bearer)>>;

/// The tokens are minted here, before the step, not while it is measured.
pub fn targets(tokens: &Tokens, apps: impl IntoIterator<Item = Owned>) -> Targets {
    Arc::new(
        apps.into_iter()
            .map(|a| {
                let bearer = tokens.applicant(&a.account_id);
                (a.name, bearer)
            })
            .collect(),
    )
}

/// One step over `targets`; `salt` picks another sequence of rows.
pub async fn step(
    clients: &Clients,
    targets: Targets,
    concurrency: usize,
    budget: Budget,
    salt: u64,
) -> StepResult {
    let channels = Arc::new(clients.registration.clone());
    drive(concurrency, budget, move |i, w| {
        let (name, bearer) = &targets[(mix(i ^ salt) % targets.len() as u64) as usize];
        let mut client = RegistrationServiceClient::with_interceptor(
            channels[w % channels.len()].clone(),
            bearer.clone(),
        );
        let request = GetApplicationRequest {
            name: name.clone(),
            ..Default::default()
        };
        async move {
            client.get_application(request).await?;
            Ok(())
        }
    })
    .await
}

/// (d) at each concurrency over what (c) stored.
pub async fn measure(ctx: &Ctx<'_>, mesh: &mut Mesh) -> anyhow::Result<Vec<StepResult>> {
    say("(d) GetApplication");
    let plan = ctx.plan;
    let targets = targets(&ctx.clients.tokens, ctx.submitted.snapshot());
    let mut out = Vec::new();
    for (k, &c) in plan.concurrency.iter().enumerate() {
        step(
            &ctx.clients,
            targets.clone(),
            c,
            plan.warmup_budget(),
            1000 + k as u64,
        )
        .await;
        let before = mesh.cpu_snapshot();
        let mut r = step(&ctx.clients, targets.clone(), c, plan.budget(), k as u64).await;
        mesh.attach_cpu(&mut r, &before);
        show("get", &r);
        out.push(r);
    }
    mesh.check_alive()?;
    Ok(out)
}
