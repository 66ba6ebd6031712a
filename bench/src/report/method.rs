//! How the figures were made, in the words the report prints under "Method" and
//! "Authentication".

use super::Settings;
use crate::plan::Plan;

/// The settings of a run; `row_bytes` is the size of the row (b) and the pre-load copy.
pub fn settings(plan: &Plan, row_bytes: usize) -> Settings {
    Settings {
        concurrencies: plan.concurrency.clone(),
        scale_concurrency: plan.scale_concurrency,
        scales: plan.scales.clone(),
        step_secs: plan.step.as_secs_f64(),
        warmup_secs: plan.warmup.as_secs_f64(),
        max_requests: plan.max_requests,
        max_submits: plan.max_submits,
        connections: plan.connections,
        pipeline_samples: plan.pipeline_samples,
        auth_on: plan.auth,
        auth: auth(plan.auth),
        echo: format!(
            "tonic-health's Check(\"\") served as `koogallery.bench.v1.Echo/Check` (a name of \
             its own: the auth layer lets grpc.health.v1 through without a token) by a bare \
             tonic Server in its own process (`kg-bench echo-server`) with the services' \
             tower stack (30 s request timeout, kg-runtime trace span, per-RPC metrics layer, \
             auth layer {}, rate-limit layer off); no database, reflection or probes. Driven by \
             the same client code, channels and concurrency as the mesh.",
            if plan.auth {
                "on (the same KG_JWT_SECRET; an applicant's token on every call)"
            } else {
                "off"
            }
        ),
        database: "the check-then-insert transaction of SubmitApplication (SELECT seller by \
                   entity_key, SELECT active application by entity_key, INSERT application, \
                   INSERT idempotency key, INSERT two outbox rows, COMMIT) with sea-orm and \
                   registration's own entities, against a scratch database migrated with \
                   kg_registration::migrations::Migrator, through a pool made by \
                   kg_runtime::db::connect (20 connections, as registration). PostgreSQL from \
                   the test harness: fsync=off, full_page_writes=off, synchronous_commit on."
            .into(),
        stored_row: format!(
            "copies of a row SubmitApplication stored ({row_bytes} bytes of profile, logo, \
             agreement and evidence); pre-loaded rows are 60 % APPROVED (each with its \
             seller row), 20 % REJECTED, 10 % WITHDRAWN, 10 % IN_REVIEW, written in \
             multi-row INSERTs of 500, then ANALYZE. GetApplication reads random stored \
             applications (pre-loaded and submitted)."
        ),
    }
}

fn auth(on: bool) -> String {
    if on {
        "on (KG_JWT_SECRET, a random HS256 secret per run, set for every service and the echo \
         server; every call carries a bearer token minted by kg-bench: SubmitApplication, \
         GetApplication and WatchEvents as the applicant that owns the account, ImportAccounts \
         as an operator, ListReviewTasks and ListNotifications as a reviewer, the echo as an \
         applicant; the services mint their own service tokens for the calls between them); \
         per-caller rate limit off (KG_RATE_LIMIT_PER_SEC=0)"
            .into()
    } else {
        "off (--auth off, no KG_JWT_SECRET): token checks are not measured; per-caller rate \
         limit off (KG_RATE_LIMIT_PER_SEC=0)"
            .into()
    }
}
