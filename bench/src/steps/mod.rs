//! The measurement steps, one module each, and the order they run in. The order matters: (e)
//! runs first while the relay is idle, (g) runs on the first database before registration moves
//! to the stored-applications database, and memory is read last.

mod context;
mod database;
mod echo;
mod get;
mod idle_watchers;
mod memory;
mod outbox;
mod pipeline;
mod scale;
mod submit;
pub mod verify;

use kg_tests::fixtures;

use crate::clients::{Clients, Ids};
use crate::console::say;
use crate::mesh::{MAIN_DB, Mesh};
use crate::plan::Plan;
use crate::report::{self, Outbox, Report, TokenVerification};
use crate::tokens::Tokens;
use crate::{db, machine, verdict};

/// Runs every step against the mesh; `verification` was measured before the mesh started.
pub async fn measure(
    plan: &Plan,
    mesh: &mut Mesh,
    tokens: &Tokens,
    verification: TokenVerification,
) -> anyhow::Result<Report> {
    let mut ctx = context::Ctx {
        plan,
        clients: Clients::new(mesh, tokens, plan.connections).await?,
        ids: Ids::default(),
        template: fixtures::submission("template", 0, &mesh.website.url("/en")),
        submitted: context::Stored::default(),
        outbox: Outbox::default(),
        notes: Vec::new(),
    };
    let first = submit::first(&mut ctx, mesh).await?;
    let pipeline = pipeline::measure(&mut ctx, mesh).await?;
    let echo = echo::measure(plan, &ctx.clients, mesh).await?;
    let database = database::measure(plan, mesh, &first.row).await;
    let submit = submit::measure(&mut ctx, mesh).await?;
    ctx.outbox.relay = Some(outbox::relay_rate(&mesh.registration_db, plan.relay_window).await?);
    // (d) measures reads, not the relay catching up on what (c) left behind: the backlog of
    // the submit steps is delivered first (bounded), and the report says how long it took.
    let drained = outbox::drain(&mesh.registration_db, "the submit steps", DRAIN_BOUND).await?;
    ctx.notes.push(drained_note("(d)", &drained));
    let get = get::measure(&ctx, mesh).await?;
    say_client_connections(mesh).await;
    let idle_watchers = idle_watchers::measure(&mut ctx, mesh, MAIN_DB).await?;
    let scales = scale::measure(&mut ctx, mesh, &first.row).await?;
    let memory = memory::measure(mesh, scales.first_registration_peak, &mut ctx.notes);
    ctx.outbox.backlog_at_end = Some(db::outbox_backlog(&mesh.registration_db).await?);

    let mut report = Report {
        generated_at: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
        command: command(plan),
        quick: plan.quick,
        complete: true,
        machine: machine::describe(mesh).await,
        settings: report::settings(plan, first.bytes),
        token_verification: verification,
        echo,
        database,
        submit,
        get,
        ratios: Vec::new(),
        pipeline,
        outbox: ctx.outbox,
        scales: scales.scales,
        memory,
        idle_watchers,
        targets: Vec::new(),
        notes: ctx.notes,
    };
    verdict::judge(&mut report, plan);
    Ok(report)
}

/// The longest the bench waits for the outbox to drain before a read step.
pub const DRAIN_BOUND: std::time::Duration = std::time::Duration::from_secs(180);

/// The report's note on the outbox drained before the read step `step`.
pub fn drained_note(step: &str, d: &report::Drain) -> String {
    match d.drained_in_s {
        Some(s) => format!(
            "{step} ran after the outbox backlog of the submit steps ({} events) was delivered, in {s:.1} s.",
            d.backlog
        ),
        None => format!(
            "{step} ran with {} of {} outbox events still undelivered after {:.0} s of waiting: the relay's catch-up shares the CPU with it.",
            d.remaining,
            d.backlog,
            DRAIN_BOUND.as_secs_f64()
        ),
    }
}

/// How many PostgreSQL connections the services hold after (d): a pool sizing hint.
async fn say_client_connections(mesh: &Mesh) {
    if let Ok(n) = db::count(
        &mesh.registration_db,
        "SELECT count(*) AS n FROM pg_stat_activity WHERE backend_type = 'client backend'",
    )
    .await
    {
        say(format!("  PostgreSQL client connections open: {n}"));
    }
}

fn command(plan: &Plan) -> String {
    let command = std::iter::once("kg-bench".to_string())
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ");
    if plan.quick {
        format!("scripts/bench --quick ({command})")
    } else {
        format!("scripts/bench ({command})")
    }
}
