//! Registration under contention and crashes, with three `koogallery-registration` processes on
//! one PostgreSQL and one Redis: identical requests racing across replicas, a replica frozen in
//! the middle of its writes, the outbox relay killed mid-delivery (and PostgreSQL restarted
//! under it), and the database cost of idle WatchEvents streams. Each scenario writes one row to
//! the fault suite's ledger (kg_tests::faults).

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::future::join_all;
use futures::{FutureExt as _, StreamExt as _};
use kg_proto::identity::ImportAccountsRequest;
use kg_proto::identity::identity_check_service_client::IdentityCheckServiceClient;
use kg_proto::notification::notification_service_client::NotificationServiceClient;
use kg_proto::notification::{ListNotificationsRequest, NotificationEventType};
use kg_proto::registration::registration_service_client::RegistrationServiceClient;
use kg_proto::registration::{
    ApplicationState, ListApplicationsRequest, SubmitApplicationRequest, WatchEventsRequest,
    WithdrawApplicationRequest,
};
use kg_proto::review::ListReviewTasksRequest;
use kg_proto::review::review_service_client::ReviewServiceClient;
use kg_runtime::error::DecodedError;
use kg_tests::cluster::{self, OutboxState, Replica};
use kg_tests::fixtures::{self, Website};
use kg_tests::mesh::{self, Running};
use kg_tests::{PostgresServer, RedisServer, free_port};
use sea_orm::DatabaseConnection;
use tonic::transport::Channel;
use tonic::{Request, Status};

const BIN: &str = env!("CARGO_BIN_EXE_koogallery-registration");
/// registration's outbox table (services/registration/src/migrations.rs).
const OUTBOX: &str = "registration_outbox";

/// Each scenario starts a PostgreSQL, a Redis and three replicas; on a 2-core machine they run
/// one at a time so each measures its own fault, not the others' load.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Cluster {
    pg: PostgresServer,
    _redis: RedisServer,
    identity: Running,
    _website: Website,
    review_db: String,
    notification_db: String,
    replicas: Vec<Replica>,
    /// A complete submission; encoding a logo per request is slow in debug builds.
    template: SubmitApplicationRequest,
    clients: Vec<RegistrationServiceClient<Channel>>,
    /// Fixed before the replicas start (their relay targets), bound only by `start_peers`.
    review_addr: SocketAddr,
    notification_addr: SocketAddr,
}

impl Cluster {
    /// PostgreSQL (databases registration, identity, review, notification), Redis,
    /// identity-check with `accounts` eligible, a website, and three replicas on the migrated
    /// registration database. review and notification are not running: their addresses are
    /// fixed and closed until `start_peers`.
    async fn start(accounts: &[String], extra_env: &[(&str, String)]) -> Cluster {
        let pg = PostgresServer::start().await.unwrap();
        let registration_db = pg.create_database("registration").await.unwrap();
        let identity_db = pg.create_database("identity").await.unwrap();
        let review_db = pg.create_database("review").await.unwrap();
        let notification_db = pg.create_database("notification").await.unwrap();
        let redis = RedisServer::start().await.unwrap();
        let identity = mesh::start_identity(&identity_db, true).await.unwrap();
        let website = Website::start().await.unwrap();

        let mut idc = IdentityCheckServiceClient::new(identity.channel().await.unwrap());
        for (n, chunk) in accounts.chunks(1000).enumerate() {
            let imported = idc
                .import_accounts(ImportAccountsRequest {
                    request_id: format!("import-{n}"),
                    accounts: chunk
                        .iter()
                        .map(|a| fixtures::eligible_account(a))
                        .collect(),
                })
                .await
                .unwrap()
                .into_inner();
            assert_eq!(imported.created_count as usize, chunk.len());
        }

        cluster::migrate(std::path::Path::new(BIN), &registration_db)
            .await
            .unwrap();
        let review_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let notification_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let mut env = vec![
            ("KG_DATABASE_URL", registration_db.clone()),
            ("KG_REDIS_URL", redis.url()),
            ("KG_IDENTITY_CHECK_URL", identity.url()),
            ("KG_REVIEW_URL", format!("http://{review_addr}")),
            ("KG_NOTIFICATION_URL", format!("http://{notification_addr}")),
            ("KG_LOCK_WAIT_MS", "1500".into()),
            // the relay retries a closed peer at most 1 s apart, so delivery starts soon after
            // the peers do
            ("KG_OUTBOX_MAX_BACKOFF_MS", "1000".into()),
            // the events a killed relay had leased go out again 5 s later, not 30
            ("KG_OUTBOX_LEASE_MS", "5000".into()),
            // one test process drives everything: no per-caller rate limit
            ("KG_RATE_LIMIT_PER_SEC", "0".into()),
            ("RUST_LOG", "warn".into()),
        ];
        env.extend(extra_env.iter().cloned());
        let mut replicas = Vec::new();
        let mut clients = Vec::new();
        for _ in 0..3 {
            let replica = Replica::start(BIN, &env).await.unwrap();
            clients.push(RegistrationServiceClient::new(
                mesh::channel(&replica.url()).await.unwrap(),
            ));
            replicas.push(replica);
        }
        let template = fixtures::submission("template", 0, &website.url("/en"));
        Cluster {
            pg,
            template,
            _redis: redis,
            identity,
            _website: website,
            review_db,
            notification_db,
            replicas,
            clients,
            review_addr,
            notification_addr,
        }
    }

    /// The client of replica `i % 3`.
    fn client(&self, i: usize) -> RegistrationServiceClient<Channel> {
        self.clients[i % self.clients.len()].clone()
    }

    /// A complete submission for `account_id` and entity `seed`, with a new request_id.
    fn submission(&self, account_id: &str, seed: u64) -> SubmitApplicationRequest {
        submission(&self.template, account_id, seed)
    }

    /// A direct connection to registration's database (for outbox and statistics queries).
    async fn registration_database(&self) -> DatabaseConnection {
        self.pg.connect("registration").await.unwrap()
    }

    /// Applications stored for entity `seed` (asked of replica 1: replica 0 is the one paused).
    async fn stored(&self, seed: u64) -> Vec<String> {
        self.client(1)
            .list_applications(ListApplicationsRequest {
                registration_number: fixtures::uscc(seed),
                page_size: 500,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .applications
            .into_iter()
            .map(|a| a.name)
            .collect()
    }

    /// review and notification, in this process, on the addresses the replicas deliver to.
    async fn start_peers(&self) -> (Running, Running) {
        let review_config = mesh::review_config(
            &self.review_db,
            &self.replicas[0].url(),
            &self.identity.url(),
        );
        let review = cluster::start_review_at(self.review_addr, review_config)
            .await
            .unwrap();
        let notification_config =
            mesh::notification_config(&self.notification_db, &self.identity.url());
        let notification =
            cluster::start_notification_at(self.notification_addr, notification_config)
                .await
                .unwrap();
        (review, notification)
    }

    async fn stop(mut self) {
        for replica in &mut self.replicas {
            let _ = replica.kill().await;
        }
        self.identity.stop().await.unwrap();
    }
}

fn submission(
    template: &SubmitApplicationRequest,
    account_id: &str,
    seed: u64,
) -> SubmitApplicationRequest {
    let mut request = template.clone();
    request.request_id = uuid::Uuid::new_v4().to_string();
    request.account_id = account_id.to_string();
    if let Some(application) = request.application.as_mut() {
        application.entity = Some(fixtures::entity(seed));
    }
    request
}

/// "OK" or "CODE REASON" of a reply, to count outcomes.
fn outcome<T>(result: &Result<T, Status>) -> String {
    match result {
        Ok(_) => "OK".into(),
        Err(s) => format!(
            "{:?} {}",
            s.code(),
            DecodedError::from_status(s).reason.unwrap_or_default()
        ),
    }
}

fn tally<T>(results: &[Result<T, Status>]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for r in results {
        *counts.entry(outcome(r)).or_insert(0) += 1;
    }
    counts
}

/// Every open review task (QUEUED, CLAIMED, WAITING_ON_APPLICANT), page by page.
async fn review_tasks(review: &Running) -> Vec<kg_proto::review::ReviewTask> {
    let mut client = ReviewServiceClient::new(review.channel().await.unwrap());
    let mut tasks = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_review_tasks(ListReviewTasksRequest {
                page_size: 500,
                page_token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        tasks.extend(page.review_tasks);
        if page.next_page_token.is_empty() {
            return tasks;
        }
        page_token = page.next_page_token;
    }
}

/// How many review tasks exist, from one small page (None while review does not answer).
async fn review_task_count(review: &Running) -> Option<usize> {
    let mut client = ReviewServiceClient::new(review.channel().await.ok()?);
    let reply = client
        .list_review_tasks(ListReviewTasksRequest {
            page_size: 1,
            ..Default::default()
        })
        .await
        .ok()?
        .into_inner();
    Some(reply.total_size as usize)
}

/// Every APPLICATION_RECEIVED delivery (one per channel of each event), page by page.
async fn received_notifications(
    notification: &Running,
) -> Vec<kg_proto::notification::Notification> {
    let mut client = NotificationServiceClient::new(notification.channel().await.unwrap());
    let mut all = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_notifications(ListNotificationsRequest {
                page_size: 500,
                page_token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        all.extend(
            page.notifications
                .into_iter()
                .filter(|n| n.event_type == NotificationEventType::ApplicationReceived as i32),
        );
        if page.next_page_token.is_empty() {
            return all;
        }
        page_token = page.next_page_token;
    }
}

fn ledger(test: &str, fault: &str, load: usize, faults: u64, lost: usize, duplicates: usize) {
    kg_tests::faults::record(kg_tests::faults::FaultRecord {
        test,
        fault,
        load: load as u64,
        faults,
        bad_inputs: 0,
        lost: lost as u64,
        duplicates: duplicates as u64,
    });
}

/// What breaks the relay in the middle of its deliveries.
#[derive(Clone, Copy, Debug)]
enum RelayFault {
    /// SIGKILL every replica, then start them again with the same configuration.
    KillReplicas,
    /// Restart PostgreSQL under the running replicas.
    RestartPostgres,
}

/// 200 submissions while review and notification are down, then the peers come up and `fault`
/// strikes once review has some of the tasks but not all; afterwards the outbox must drain
/// with every event delivered exactly once in effect and nothing set aside.
async fn relay_scenario(test: &str, fault: RelayFault) {
    const N: usize = 200;
    let accounts: Vec<String> = (0..N).map(|i| format!("relay-{i}")).collect();
    let mut cluster = Cluster::start(&accounts, &[]).await;
    let started = Instant::now();

    let submitted: Vec<_> = futures::stream::iter(0..N)
        .map(|i| {
            let mut client = cluster.client(i);
            let request = cluster.submission(&accounts[i], 30_000 + i as u64);
            async move { client.submit_application(request).await }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let submit_tally = tally(&submitted);
    eprintln!("{test}: submissions {submit_tally:?}");
    let accepted = submit_tally.get("OK").copied().unwrap_or(0);

    let (review, notification) = cluster.start_peers().await;
    // Strike as soon as review holds a first task: the relay is then mid-delivery.
    let waiting = Instant::now();
    let tasks_at_fault = loop {
        match review_task_count(&review).await {
            Some(n) if n > 0 => break n,
            _ => {
                assert!(
                    waiting.elapsed() < Duration::from_secs(60),
                    "no review task within 60 s of review starting"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    let outbox_at_fault = {
        let db = cluster.registration_database().await;
        cluster::outbox_state(&db, OUTBOX).await.unwrap()
    };
    match fault {
        RelayFault::KillReplicas => {
            for replica in &mut cluster.replicas {
                replica.kill().await.unwrap();
            }
            let after_kill = review_task_count(&review).await;
            eprintln!("{test}: killed all replicas; review tasks {after_kill:?}");
            tokio::time::sleep(Duration::from_millis(500)).await;
            for replica in &mut cluster.replicas {
                replica.restart().await.unwrap();
            }
        }
        RelayFault::RestartPostgres => {
            cluster.pg.restart().await.unwrap();
        }
    }
    eprintln!(
        "{test}: {fault:?} with {tasks_at_fault} review tasks, outbox then {outbox_at_fault:?}"
    );

    // Wait until nothing is left to try (delivered or dead).
    let db = cluster.registration_database().await;
    let outbox: OutboxState =
        kg_tests::poll("the outbox to drain", Duration::from_secs(120), || async {
            let state = cluster::outbox_state(&db, OUTBOX).await.ok()?;
            (state.pending == 0).then_some(state)
        })
        .await;
    let tasks = review_tasks(&review).await;
    let task_subjects: BTreeSet<_> = tasks.iter().map(|t| t.subject.clone()).collect();
    let received = received_notifications(&notification).await;
    let mut events_per_subject: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for n in &received {
        events_per_subject
            .entry(n.subject.clone())
            .or_default()
            .insert(n.event_id.clone());
    }
    let notified_events: usize = events_per_subject.values().map(BTreeSet::len).sum();
    eprintln!(
        "{test}: after {:?}: outbox {outbox:?}; review tasks {} ({} subjects); \
         APPLICATION_RECEIVED deliveries {} ({} events, {} subjects)",
        started.elapsed(),
        tasks.len(),
        task_subjects.len(),
        received.len(),
        notified_events,
        events_per_subject.len(),
    );

    let lost = accepted.saturating_sub(task_subjects.len())
        + accepted.saturating_sub(events_per_subject.len());
    let duplicates =
        (tasks.len() - task_subjects.len()) + (notified_events - events_per_subject.len());
    let faults = match fault {
        RelayFault::KillReplicas => 3,
        RelayFault::RestartPostgres => 1,
    };
    let what = format!(
        "{fault:?} mid-relay ({tasks_at_fault}/{N} review tasks at the fault); \
         {} dead letters, {} undelivered",
        outbox.dead,
        outbox.total - outbox.delivered
    );
    ledger(test, &what, N, faults, lost, duplicates);

    assert_eq!(accepted, N, "every submission accepted: {submit_tally:?}");
    assert!(
        tasks_at_fault < N,
        "the fault struck mid-delivery ({tasks_at_fault} of {N} tasks already there)"
    );
    assert_eq!(outbox.dead, 0, "no dead letters: {outbox:?}");
    assert_eq!(
        outbox.delivered, outbox.total,
        "nothing undelivered: {outbox:?}"
    );
    assert_eq!(tasks.len(), N, "one review task per application");
    assert_eq!(task_subjects.len(), N);
    assert_eq!(
        events_per_subject.len(),
        N,
        "an APPLICATION_RECEIVED notification per application"
    );
    assert_eq!(notified_events, N, "one notification event per application");

    review.stop().await.unwrap();
    notification.stop().await.unwrap();
    cluster.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_identical_submissions_across_three_replicas_get_one_application() {
    const TEST: &str = "contention::concurrent_identical_submissions";
    const N: usize = 50;
    const SEED: u64 = 5151;
    let _turn = ONE_AT_A_TIME.lock().await;
    let cluster = Cluster::start(&["twin-1".to_string()], &[]).await;

    // One request (one request_id, one body) sent 50 times at once: a client retrying hard.
    let request = cluster.submission("twin-1", SEED);
    let submitted = join_all((0..N).map(|i| {
        let mut client = cluster.client(i);
        let request = request.clone();
        async move { client.submit_application(request).await }
    }))
    .await;
    let submit_tally = tally(&submitted);
    let submit_names: BTreeSet<String> = submitted
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .filter_map(|r| r.get_ref().application.as_ref().map(|a| a.name.clone()))
        .collect();
    let stored = cluster.stored(SEED).await;
    eprintln!("submit: {submit_tally:?}; names {submit_names:?}; stored {stored:?}");

    // The same withdrawal 50 times at once.
    let (withdraw_tally, withdraw_names, withdraw_states) = match stored.first() {
        Some(name) => {
            let request = WithdrawApplicationRequest {
                request_id: uuid::Uuid::new_v4().to_string(),
                name: name.clone(),
                reason: "changed our plans".into(),
                etag: String::new(),
            };
            let withdrawn = join_all((0..N).map(|i| {
                let mut client = cluster.client(i);
                let request = request.clone();
                async move { client.withdraw_application(request).await }
            }))
            .await;
            let apps: Vec<_> = withdrawn
                .iter()
                .filter_map(|r| r.as_ref().ok())
                .filter_map(|r| r.get_ref().application.clone())
                .collect();
            (
                tally(&withdrawn),
                apps.iter().map(|a| a.name.clone()).collect::<BTreeSet<_>>(),
                apps.iter().map(|a| a.state()).collect::<BTreeSet<_>>(),
            )
        }
        None => Default::default(),
    };
    eprintln!("withdraw: {withdraw_tally:?}; names {withdraw_names:?}; states {withdraw_states:?}");

    let submit_ok = submit_tally.get("OK").copied().unwrap_or(0);
    let withdraw_ok = withdraw_tally.get("OK").copied().unwrap_or(0);
    let fault = format!(
        "{N} identical submissions then {N} identical withdrawals over 3 replicas: \
         submit {submit_tally:?}, withdraw {withdraw_tally:?}"
    );
    ledger(
        TEST,
        &fault,
        2 * N,
        0,
        usize::from(submit_ok > 0 && stored.is_empty()),
        stored.len().saturating_sub(1),
    );

    assert_eq!(submit_ok, N, "every replay answers OK: {submit_tally:?}");
    assert_eq!(submit_names.len(), 1, "all name one application");
    assert_eq!(stored.len(), 1, "exactly one stored application");
    assert_eq!(
        submit_names.first(),
        stored.first(),
        "the replies name the stored application"
    );
    assert_eq!(
        withdraw_ok, N,
        "every replay answers OK: {withdraw_tally:?}"
    );
    assert_eq!(withdraw_names, submit_names, "the same application");
    assert_eq!(
        withdraw_states,
        BTreeSet::from([ApplicationState::Withdrawn]),
        "all WITHDRAWN"
    );
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_replica_does_not_stall_the_others() {
    const TEST: &str = "contention::a_paused_replica_does_not_stall_the_others";
    const BURST: usize = 1000;
    const OTHERS: usize = 20;
    const PAUSE: Duration = Duration::from_secs(15);
    const DEADLINE: Duration = Duration::from_secs(8);
    // The issue asks for 5 s; the old writer lock stalled the others for about 5 s (until the
    // session timeouts ended the paused transaction), so 5 s would let it pass on a lucky run.
    // Unstalled calls take well under a second.
    const WITHIN: Duration = Duration::from_secs(3);
    let _turn = ONE_AT_A_TIME.lock().await;
    let burst_accounts: Vec<String> = (0..BURST).map(|i| format!("burst-{i}")).collect();
    let other_accounts: Vec<String> = (0..OTHERS).map(|i| format!("other-{i}")).collect();
    let all: Vec<String> = burst_accounts
        .iter()
        .chain(&other_accounts)
        .cloned()
        .collect();
    let cluster = Cluster::start(&all, &[]).await;
    let db = cluster.registration_database().await;

    // A continuous stream of writes to replica 0 from 8 callers, entity and account each new.
    let next = Arc::new(AtomicUsize::new(0));
    let halt = Arc::new(AtomicBool::new(false));
    let burst_outcomes = Arc::new(std::sync::Mutex::new(BTreeMap::<String, usize>::new()));
    let mut callers = Vec::new();
    for _ in 0..8 {
        let (next, halt, outcomes) = (next.clone(), halt.clone(), burst_outcomes.clone());
        let mut client = cluster.client(0);
        let (template, accounts) = (cluster.template.clone(), burst_accounts.clone());
        callers.push(tokio::spawn(async move {
            while !halt.load(Ordering::SeqCst) {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(account) = accounts.get(i) else {
                    return;
                };
                let request = submission(&template, account, 10_000 + i as u64);
                let reply = client.submit_application(request).await;
                *outcomes.lock().unwrap().entry(outcome(&reply)).or_insert(0) += 1;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(50)).await;

    // Freeze replica 0 in the middle of a write: best one that has written and holds a lock
    // other writers need (an advisory or table lock); after ATTEMPTS tries, any transaction that
    // has written. (A lock alone is not enough: the sequencer takes its advisory lock before it
    // writes, and a pause there is not the write this scenario is about.)
    const ATTEMPTS: u64 = 60;
    let mut attempts = 0;
    let held = loop {
        attempts += 1;
        cluster.replicas[0].pause().unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let held = cluster::open_transactions(&db).await.unwrap();
        let locking = held.iter().any(|t| !t.exclusive_locks.is_empty());
        let wrote = held.iter().any(|t| t.wrote);
        if (wrote && (locking || attempts >= ATTEMPTS))
            || attempts >= 2 * ATTEMPTS
            || next.load(Ordering::SeqCst) >= BURST
        {
            break held;
        }
        cluster.replicas[0].resume().unwrap();
        tokio::time::sleep(Duration::from_millis(20 + 7 * (attempts % 5))).await;
    };
    let wrote = held.iter().any(|t| t.wrote);
    let locks: Vec<&str> = held
        .iter()
        .map(|t| t.exclusive_locks.as_str())
        .filter(|l| !l.is_empty())
        .collect();
    let paused_at = Instant::now();
    halt.store(true, Ordering::SeqCst);
    eprintln!(
        "replica 0 paused after {attempts} attempt(s), {} burst submissions sent, holding \
         {held:#?}",
        next.load(Ordering::SeqCst)
    );

    // 20 other entities through replicas 1 and 2, each call with an 8 s deadline; meanwhile,
    // the most sessions seen waiting for a lock.
    let calls = join_all((0..OTHERS).map(|i| {
        let mut client = cluster.client(1 + i % 2);
        let mut request = Request::new(cluster.submission(&other_accounts[i], 20_000 + i as u64));
        request.set_timeout(DEADLINE);
        async move {
            let sent = Instant::now();
            let reply = tokio::time::timeout(
                DEADLINE + Duration::from_secs(1),
                client.submit_application(request),
            )
            .await
            .unwrap_or_else(|_| Err(Status::deadline_exceeded("client-side timeout")));
            (reply, sent.elapsed())
        }
    }));
    let watch_waiters = async {
        let mut most = 0;
        for _ in 0..30 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            most = most.max(cluster::lock_waiters(&db).await.unwrap_or(0));
        }
        most
    };
    let (results, waiters) = tokio::join!(calls, watch_waiters);
    tokio::time::sleep(PAUSE.saturating_sub(paused_at.elapsed())).await;
    cluster.replicas[0].resume().unwrap();
    for caller in callers {
        if tokio::time::timeout(Duration::from_secs(30), caller)
            .await
            .is_err()
        {
            eprintln!("a burst caller did not finish within 30 s of SIGCONT");
        }
    }

    let outcomes: Vec<_> = results.iter().map(|(r, _)| outcome(r)).collect();
    let latencies: Vec<u128> = results.iter().map(|(_, d)| d.as_millis()).collect();
    let ok: Vec<Duration> = results
        .iter()
        .filter(|(r, _)| r.is_ok())
        .map(|(_, d)| *d)
        .collect();
    let slow = ok.iter().filter(|d| **d > WITHIN).count();
    let mut lost = 0;
    let mut duplicates = 0;
    for (i, (reply, _)) in results.iter().enumerate() {
        let stored = cluster.stored(20_000 + i as u64).await.len();
        lost += usize::from(reply.is_ok() && stored == 0);
        duplicates += stored.saturating_sub(1);
    }
    let other_tally = tally(&results.into_iter().map(|(r, _)| r).collect::<Vec<_>>());
    eprintln!("others: {other_tally:?}; latencies ms {latencies:?}; outcomes {outcomes:?}");
    eprintln!(
        "burst on replica 0: {:?} of {} sent",
        burst_outcomes.lock().unwrap(),
        next.load(Ordering::SeqCst).min(BURST)
    );
    let fault = format!(
        "replica 0 SIGSTOPped 15 s mid-write (locks {locks:?}), {waiters} sessions waited: others {other_tally:?}, \
         max OK latency {} ms, {slow} OK over 3 s",
        ok.iter().max().unwrap_or(&Duration::ZERO).as_millis()
    );
    ledger(TEST, &fault, OTHERS, 1, lost, duplicates);

    assert!(
        wrote,
        "replica 0 was paused inside a transaction that had written ({attempts} attempts): \
         {held:#?}"
    );
    assert!(
        ok.len() >= OTHERS - 1,
        "at least {} of {OTHERS} succeed while replica 0 is paused: {other_tally:?}, \
         latencies ms {latencies:?}",
        OTHERS - 1
    );
    assert_eq!(
        slow, 0,
        "each within {WITHIN:?}: latencies ms {latencies:?}"
    );
    assert_eq!((lost, duplicates), (0, 0));
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_killed_mid_delivery_leaves_no_dead_letter() {
    let _turn = ONE_AT_A_TIME.lock().await;
    relay_scenario(
        "contention::relay_killed_mid_delivery_leaves_no_dead_letter",
        RelayFault::KillReplicas,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_watchers_cost_the_database_nothing() {
    const TEST: &str = "contention::idle_watchers_cost_the_database_nothing";
    const STREAMS: usize = 1000;
    const WINDOW: Duration = Duration::from_secs(5);
    const MAX_PER_SEC: f64 = 200.0;
    let _turn = ONE_AT_A_TIME.lock().await;
    // room for all 1,000 streams on one replica
    let cluster = Cluster::start(&[], &[("KG_WATCH_MAX_STREAMS", "2000".into())]).await;
    let db = cluster.registration_database().await;

    let rate =
        |before: i64, after: i64, over: Duration| (after - before) as f64 / over.as_secs_f64();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let t0 = cluster::transactions(&db).await.unwrap();
    tokio::time::sleep(WINDOW).await;
    let baseline = rate(t0, cluster::transactions(&db).await.unwrap(), WINDOW);

    // 1,000 streams over 20 connections to replica 0, each for an account without events.
    let url = cluster.replicas[0].url();
    let mut channels = Vec::new();
    for _ in 0..20 {
        channels.push(mesh::channel(&url).await.unwrap());
    }
    let opened: Vec<_> = futures::stream::iter(0..STREAMS)
        .map(|i| {
            let mut client = RegistrationServiceClient::new(channels[i % channels.len()].clone());
            async move {
                client
                    .watch_events(WatchEventsRequest {
                        account_id: format!("idle-{i}"),
                        ..Default::default()
                    })
                    .await
                    .map(|r| r.into_inner())
            }
        })
        .buffer_unordered(50)
        .collect()
        .await;
    let open_tally = tally(&opened);
    let mut streams: Vec<_> = opened.into_iter().filter_map(Result::ok).collect();

    // PostgreSQL's statistics lag by up to 10 s for backends that go idle: let the cost of
    // opening the streams land before the window starts.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let m0 = cluster::transactions(&db).await.unwrap();
    tokio::time::sleep(WINDOW).await;
    let measured = rate(m0, cluster::transactions(&db).await.unwrap(), WINDOW);
    // A stream that ended (or sent anything) while idle would falsify the measurement.
    let ended = streams
        .iter_mut()
        .map(|s| s.message().now_or_never().is_some())
        .filter(|ended| *ended)
        .count();
    eprintln!(
        "streams {open_tally:?}, {ended} ended; transactions/s: {baseline:.0} without streams, \
         {measured:.0} with {STREAMS} idle streams"
    );
    let fault = format!(
        "{STREAMS} idle WatchEvents streams: {measured:.0} transactions/s \
         ({baseline:.0}/s without)"
    );
    ledger(TEST, &fault, STREAMS, 0, 0, 0);

    assert_eq!(
        open_tally.get("OK").copied().unwrap_or(0),
        STREAMS,
        "{open_tally:?}"
    );
    assert_eq!(ended, 0, "every stream stayed open and quiet");
    assert!(
        measured < MAX_PER_SEC,
        "{STREAMS} idle streams cost {measured:.0} transactions/s (limit {MAX_PER_SEC}; \
         {baseline:.0}/s without streams)"
    );
    drop(streams);
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_postgres_leaves_no_dead_letter() {
    let _turn = ONE_AT_A_TIME.lock().await;
    relay_scenario(
        "contention::a_restarted_postgres_leaves_no_dead_letter",
        RelayFault::RestartPostgres,
    )
    .await;
}

/// The next `n` events of a stream, 60 s at most.
async fn events_of(
    stream: &mut tonic::Streaming<kg_proto::registration::WatchEventsResponse>,
    n: usize,
) -> Vec<kg_proto::registration::RegistrationEvent> {
    kg_tests::next_events(stream, n, Duration::from_secs(60)).await
}

/// Three replicas' sequencers number the commits of all three at once: a watcher on each
/// replica sees every submission once, in one order shared by all; a follower of one account on
/// each replica sees that account's events only; and a stream resumed from the middle on another
/// replica continues that order exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchers_on_every_replica_see_one_gap_free_order() {
    const TEST: &str = "contention::watchers_on_every_replica_see_one_gap_free_order";
    const N: usize = 60;
    let _turn = ONE_AT_A_TIME.lock().await;
    let accounts: Vec<String> = (0..N).map(|i| format!("order-{i}")).collect();
    let cluster = Cluster::start(&accounts, &[]).await;

    let mut everything = Vec::new();
    let mut followers = Vec::new();
    for i in 0..3 {
        let mut client = cluster.client(i);
        everything.push(
            client
                .watch_events(WatchEventsRequest::default())
                .await
                .unwrap()
                .into_inner(),
        );
        followers.push(
            client
                .watch_events(WatchEventsRequest {
                    account_id: format!("order-{}", i * 7),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner(),
        );
    }

    // Distinct entities, round robin over the replicas, 12 in flight.
    let submitted: Vec<_> = futures::stream::iter(0..N)
        .map(|i| {
            let mut client = cluster.client(i);
            let request = cluster.submission(&accounts[i], 7_000 + i as u64);
            async move { client.submit_application(request).await }
        })
        .buffer_unordered(12)
        .collect()
        .await;
    let submit_tally = tally(&submitted);
    let names: BTreeSet<String> = submitted
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .filter_map(|r| r.get_ref().application.as_ref().map(|a| a.name.clone()))
        .collect();

    let mut seen = Vec::new();
    for stream in &mut everything {
        seen.push(events_of(stream, names.len()).await);
    }
    let ids = |events: &[kg_proto::registration::RegistrationEvent]| {
        events
            .iter()
            .map(|e| e.event_id.clone())
            .collect::<Vec<_>>()
    };
    let streamed: BTreeSet<String> = seen[0].iter().map(|e| e.application.clone()).collect();
    let lost = names.difference(&streamed).count();
    let duplicates = seen[0].len() - streamed.len();
    ledger(
        TEST,
        &format!(
            "{N} submissions over 3 replicas numbering at once, a watcher on each: {submit_tally:?}"
        ),
        N,
        0,
        lost,
        duplicates,
    );

    assert_eq!(submit_tally.get("OK").copied(), Some(N), "{submit_tally:?}");
    assert_eq!(streamed, names, "every submission once, nothing else");
    assert_eq!(duplicates, 0);
    assert_eq!(
        ids(&seen[1]),
        ids(&seen[0]),
        "replica 1 streams replica 0's order"
    );
    assert_eq!(
        ids(&seen[2]),
        ids(&seen[0]),
        "replica 2 streams replica 0's order"
    );

    for (i, stream) in followers.iter_mut().enumerate() {
        let account = format!("order-{}", i * 7);
        let own = events_of(stream, 1).await;
        assert_eq!(own[0].account_id, account);
    }

    // Resumed on replica 2 from the 30th event seen on replica 0: exactly the rest, in order.
    let middle = seen[0][N / 2 - 1].resume_token.clone();
    let mut resumed = cluster
        .client(2)
        .watch_events(WatchEventsRequest {
            resume_token: middle,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let rest = events_of(&mut resumed, N - N / 2).await;
    assert_eq!(ids(&rest), ids(&seen[0][N / 2..]));
    drop((everything, followers, resumed));
    cluster.stop().await;
}
