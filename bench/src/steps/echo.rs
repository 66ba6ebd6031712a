//! (a) the one-hop echo: the most one gRPC hop through the services' tower stack (token check
//! included when authentication is on) can do on this machine.

use std::sync::Arc;

use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

use crate::clients::Clients;
use crate::console::{say, show};
use crate::echo::Route;
use crate::load::{Budget, StepResult, drive};
use crate::mesh::Mesh;
use crate::plan::Plan;

async fn step(clients: &Clients, concurrency: usize, budget: Budget) -> StepResult {
    let channels = Arc::new(clients.echo.clone());
    let bearer = clients.echo_caller.clone();
    drive(concurrency, budget, move |_, w| {
        let mut client = HealthClient::with_interceptor(
            Route(channels[w % channels.len()].clone()),
            bearer.clone(),
        );
        async move {
            client
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await?;
            Ok(())
        }
    })
    .await
}

pub async fn measure(
    plan: &Plan,
    clients: &Clients,
    mesh: &mut Mesh,
) -> anyhow::Result<Vec<StepResult>> {
    say("(a) one-hop echo");
    let mut out = Vec::new();
    for &c in &plan.concurrency {
        step(clients, c, plan.warmup_budget()).await;
        let before = mesh.cpu_snapshot();
        let mut r = step(clients, c, plan.budget()).await;
        mesh.attach_cpu(&mut r, &before);
        show("echo", &r);
        out.push(r);
    }
    mesh.check_alive()?;
    Ok(out)
}
