//! (g) idle WatchEvents streams (issue 12, "Idle watchers multiply database load"): SubmitApplication
//! at a small concurrency without and then with N WatchEvents streams open that never receive an
//! event (each filtered to an account with no events), and the database transactions per second
//! of registration's database while nothing but those streams is open.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kg_proto::registration::WatchEventsRequest;
use kg_proto::registration::registration_service_client::RegistrationServiceClient;
use kg_proto::registration::watch_events_response::Item;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;

use super::context::Ctx;
use super::outbox::drain;
use super::submit;
use crate::console::{say, show};
use crate::load::Failure;
use crate::mesh::{Mesh, SYSTEM};
use crate::report::{IdleWatchers, IdleWindow};
use crate::tokens::Tokens;
use crate::{db, procs};

/// Streams per client connection (the server may cap concurrent HTTP/2 streams per
/// connection; hyper's default is 200).
const STREAMS_PER_CONNECTION: usize = 100;
/// WatchEvents calls waiting for their response headers at once while the streams open.
const OPENING_AT_ONCE: usize = 64;
/// How long opening all the streams may take.
const OPEN_BOUND: Duration = Duration::from_secs(120);
/// Pause before a transactions-per-second window, so the statistics of what ran just before
/// (the outbox drain, the stream openings) reach `pg_stat_database` first.
const SETTLE: Duration = Duration::from_secs(2);

/// The account a stream follows: one that never has an event.
fn idle_account(i: usize) -> String {
    format!("acct-idle-{i}")
}

/// The open streams: one task each, reading (and counting) what arrives until dropped.
struct Streams {
    readers: JoinSet<()>,
    opened: usize,
    open_errors: BTreeMap<String, u64>,
    open_s: f64,
    heartbeats: Arc<AtomicU64>,
    events: Arc<AtomicU64>,
    /// Streams that ended, by how (`ended` or the gRPC code).
    ended: Arc<Mutex<BTreeMap<String, u64>>>,
}

impl Streams {
    fn still_open(&self) -> usize {
        let ended: u64 = self.ended.lock().expect("ended").values().sum();
        self.opened.saturating_sub(ended as usize)
    }
}

/// Opens `n` WatchEvents streams to registration over their own connections, each as the
/// applicant whose account it follows, and waits until each returned its response headers
/// (`watch_events(..).await` is Ok) or failed.
async fn open_streams(url: &str, n: usize, tokens: &Tokens) -> anyhow::Result<Streams> {
    let connections = n.div_ceil(STREAMS_PER_CONNECTION).max(1);
    let channels = procs::stream_channels(url, connections).await?;
    let gate = Arc::new(Semaphore::new(OPENING_AT_ONCE));
    let (tx, mut rx) = mpsc::unbounded_channel::<Result<(), Failure>>();
    let heartbeats = Arc::new(AtomicU64::new(0));
    let events = Arc::new(AtomicU64::new(0));
    let ended = Arc::new(Mutex::new(BTreeMap::<String, u64>::new()));
    let mut readers = JoinSet::new();
    let started = Instant::now();
    for i in 0..n {
        let mut client = RegistrationServiceClient::with_interceptor(
            channels[i % connections].clone(),
            tokens.applicant(&idle_account(i)),
        );
        let (gate, tx) = (gate.clone(), tx.clone());
        let (heartbeats, events, ended) = (heartbeats.clone(), events.clone(), ended.clone());
        readers.spawn(async move {
            let opened = {
                let _turn = gate.acquire_owned().await;
                client
                    .watch_events(WatchEventsRequest {
                        account_id: idle_account(i),
                        ..Default::default()
                    })
                    .await
            };
            let mut stream = match opened {
                Ok(reply) => {
                    let _ = tx.send(Ok(()));
                    reply.into_inner()
                }
                Err(status) => {
                    let _ = tx.send(Err(Failure::from(status)));
                    return;
                }
            };
            drop(tx);
            let how = loop {
                match stream.message().await {
                    Ok(Some(m)) => match m.item {
                        Some(Item::Event(_)) => events.fetch_add(1, Ordering::Relaxed),
                        _ => heartbeats.fetch_add(1, Ordering::Relaxed),
                    },
                    Ok(None) => break "ended".to_string(),
                    Err(status) => break format!("{:?}", status.code()),
                };
            };
            *ended.lock().expect("ended").entry(how).or_default() += 1;
        });
    }
    drop(tx);
    let deadline = tokio::time::Instant::now() + OPEN_BOUND;
    let mut opened = 0usize;
    let mut open_errors = BTreeMap::<String, u64>::new();
    let mut examples = BTreeMap::<String, String>::new();
    let mut answered = 0usize;
    while answered < n {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(Ok(()))) => opened += 1,
            Ok(Some(Err(f))) => {
                *open_errors.entry(f.kind.clone()).or_default() += 1;
                examples.entry(f.kind).or_insert(f.message);
            }
            Ok(None) => break,
            Err(_) => {
                *open_errors.entry("NotOpenedInTime".into()).or_default() += (n - answered) as u64;
                break;
            }
        }
        answered += 1;
    }
    for (kind, message) in &examples {
        eprintln!(
            "    ! {} × {kind}: {message}",
            open_errors.get(kind).copied().unwrap_or(0)
        );
    }
    Ok(Streams {
        readers,
        opened,
        open_errors,
        open_s: started.elapsed().as_secs_f64(),
        heartbeats,
        events,
        ended,
    })
}

/// Transactions per second of database `datname` (`pg_stat_database`: xact_commit +
/// xact_rollback) over `window` with no load, read through the scratch database so the readings
/// are not counted; and the CPU each process used meanwhile.
async fn idle_window(
    mesh: &Mesh,
    datname: &str,
    window: Duration,
    outbox_undelivered: u64,
) -> anyhow::Result<IdleWindow> {
    tokio::time::sleep(SETTLE).await;
    let sql = format!(
        "SELECT (xact_commit + xact_rollback)::bigint AS n FROM pg_stat_database \
         WHERE datname = '{datname}'"
    );
    let cpu_before = mesh.cpu_snapshot();
    let before = db::count(&mesh.scratch_db, &sql).await?;
    let t = Instant::now();
    tokio::time::sleep(window).await;
    let after = db::count(&mesh.scratch_db, &sql).await?;
    let window_s = t.elapsed().as_secs_f64();
    let cpu_after = mesh.cpu_snapshot();
    let hz = procs::ticks_per_sec();
    let cpu_pct = cpu_before
        .iter()
        .filter(|(name, _)| name.as_str() != SYSTEM)
        .filter_map(|(name, &b)| {
            let a = *cpu_after.get(name)?;
            Some((
                name.clone(),
                a.saturating_sub(b) as f64 / hz / window_s * 100.0,
            ))
        })
        .collect();
    Ok(IdleWindow {
        outbox_undelivered,
        window_s,
        transactions: after.saturating_sub(before),
        transactions_per_s: after.saturating_sub(before) as f64 / window_s,
        cpu_pct_of_one_cpu: cpu_pct,
    })
}

fn show_window(label: &str, w: &IdleWindow) {
    let cpu = |p: &str| w.cpu_pct_of_one_cpu.get(p).copied().unwrap_or(0.0);
    say(format!(
        "  {label}: {:.1} database transactions/s ({} in {:.1} s); registration {:.1} %, \
         postgres {:.1} % of one CPU",
        w.transactions_per_s,
        w.transactions,
        w.window_s,
        cpu("registration"),
        cpu("postgres")
    ));
}

/// (g) on registration's database `datname` (the one it runs on now), with what the report's
/// notes must say about it; `None` when `--idle-watchers 0` skips it.
pub async fn measure(
    ctx: &mut Ctx<'_>,
    mesh: &mut Mesh,
    datname: &str,
) -> anyhow::Result<Option<IdleWatchers>> {
    let plan = ctx.plan;
    if plan.idle_watchers == 0 {
        return Ok(None);
    }
    say(format!(
        "(g) SubmitApplication at {} in flight without and with {} idle WatchEvents streams",
        plan.idle_concurrency, plan.idle_watchers
    ));
    let w = without_and_with(ctx, mesh, datname).await?;
    for (label, s) in [("without", &w.submit_without), ("with", &w.submit_with)] {
        if s.ok >= plan.max_submits {
            ctx.notes.push(format!(
                "(g) SubmitApplication {label} the idle streams ended by the submission \
                 budget ({}) before {} s.",
                plan.max_submits,
                plan.step.as_secs_f64()
            ));
        }
    }
    if !w.complete() {
        ctx.notes.push(format!(
            "(g) asked for {} idle WatchEvents streams: {} opened (failed: {:?}), {} still \
             open after the SubmitApplication step with them (ended: {:?}).",
            w.streams, w.opened, w.open_errors, w.still_open_after, w.ended
        ));
    }
    if w.events_received > 0 {
        ctx.notes.push(format!(
            "(g) the idle streams received {} events although their accounts have none.",
            w.events_received
        ));
    }
    mesh.check_alive()?;
    Ok(Some(w))
}

/// Drain, quiet window, submit without streams, open the streams, drain, window with only the
/// streams, submit with them, close them.
async fn without_and_with(
    ctx: &mut Ctx<'_>,
    mesh: &Mesh,
    datname: &str,
) -> anyhow::Result<IdleWatchers> {
    let plan = ctx.plan;
    let n = plan.idle_watchers;
    let c = plan.idle_concurrency;
    let bound = Duration::from_secs(30);
    let submitted = ctx.submitted.clone();

    let left = drain(&mesh.registration_db, "the steps before", bound).await?;
    let quiet = idle_window(mesh, datname, plan.idle_tps_window, left.remaining).await?;
    show_window("no streams, no load", &quiet);

    submit::step(ctx, c, plan.submit_warmup_budget(), &submitted, None).await?;
    let without = submit::step(ctx, c, plan.submit_budget(), &submitted, Some(mesh)).await?;
    show("submit, no streams", &without);

    say(format!("  opening {n} idle WatchEvents streams"));
    let url = mesh.service("registration").url();
    let streams = open_streams(&url, n, &ctx.clients.tokens).await?;
    say(format!(
        "  {} of {n} streams open after {:.1} s{}",
        streams.opened,
        streams.open_s,
        if streams.open_errors.is_empty() {
            String::new()
        } else {
            format!(" (failed: {:?})", streams.open_errors)
        }
    ));
    let left = drain(&mesh.registration_db, "submit without streams", bound).await?;
    let idle = idle_window(mesh, datname, plan.idle_tps_window, left.remaining).await?;
    show_window(&format!("{} idle streams, no load", streams.opened), &idle);

    submit::step(ctx, c, plan.submit_warmup_budget(), &submitted, None).await?;
    let with = submit::step(ctx, c, plan.submit_budget(), &submitted, Some(mesh)).await?;
    show(&format!("submit, {} idle streams", streams.opened), &with);

    let still_open = streams.still_open();
    let ended = streams.ended.lock().expect("ended").clone();
    let heartbeats = streams.heartbeats.load(Ordering::Relaxed);
    let events = streams.events.load(Ordering::Relaxed);
    say(format!(
        "  streams still open: {still_open} of {}; heartbeats received {heartbeats}, \
         events received {events}",
        streams.opened
    ));
    let Streams {
        mut readers,
        opened,
        open_errors,
        open_s,
        ..
    } = streams;
    readers.abort_all();
    while readers.join_next().await.is_some() {}

    let ratio =
        (without.throughput_per_s > 0.0).then(|| with.throughput_per_s / without.throughput_per_s);
    Ok(IdleWatchers {
        streams: n,
        concurrency: c,
        database: datname.to_string(),
        opened,
        open_errors,
        open_s,
        still_open_after: still_open,
        ended,
        heartbeats_received: heartbeats,
        events_received: events,
        without_streams: quiet,
        with_streams: idle,
        submit_without: without,
        submit_with: with,
        ratio,
    })
}
