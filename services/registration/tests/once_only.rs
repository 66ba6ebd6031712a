//! One company entity registers once, across three registration processes sharing one Redis and
//! one PostgreSQL: under a burst of 200 submissions from 200 accounts, with Redis killed mid-run,
//! and with every lock lost before its holder writes.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

use std::process::Stdio;
use std::time::{Duration, Instant};

use futures::future::join_all;
use kg_proto::identity::ImportAccountsRequest;
use kg_proto::identity::identity_check_service_client::IdentityCheckServiceClient;
use kg_proto::registration::registration_service_client::RegistrationServiceClient;
use kg_proto::registration::{ListApplicationsRequest, SubmitApplicationResponse};
use kg_runtime::error::DecodedError;
use kg_tests::fixtures::{self, Website};
use kg_tests::mesh::{self, Running};
use kg_tests::{PostgresServer, RedisServer, free_port};
use tokio::process::{Child, Command};
use tonic::transport::Channel;
use tonic::{Code, Response, Status};

const ACCOUNTS: usize = 200;
const SEED: u64 = 4242;

struct Cluster {
    _pg: PostgresServer,
    redis: RedisServer,
    identity: Running,
    website: Website,
    processes: Vec<Child>,
    clients: Vec<RegistrationServiceClient<Channel>>,
}

/// The three scenarios each start a PostgreSQL, a Redis and three replicas and fire 200 requests;
/// on a 2-core machine they run one at a time so each measures its own fault, not the others'.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

impl Cluster {
    /// PostgreSQL, Redis and identity-check (with 200 eligible accounts), then three
    /// `koogallery-registration` processes with the given lock TTL.
    async fn start(lock_ttl_ms: u64) -> Cluster {
        let pg = PostgresServer::start().await.unwrap();
        let registration_db = pg.create_database("registration").await.unwrap();
        let identity_db = pg.create_database("identity").await.unwrap();
        let redis = RedisServer::start().await.unwrap();
        let identity = mesh::start_identity(&identity_db, true).await.unwrap();
        let website = Website::start().await.unwrap();

        let mut idc = IdentityCheckServiceClient::new(identity.channel().await.unwrap());
        let accounts = (0..ACCOUNTS)
            .map(|i| fixtures::eligible_account(&format!("acct-{i}")))
            .collect();
        let imported = idc
            .import_accounts(ImportAccountsRequest {
                request_id: "import-1".into(),
                accounts,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(imported.created_count as usize, ACCOUNTS);

        let bin = env!("CARGO_BIN_EXE_koogallery-registration");
        let migrate = Command::new(bin)
            .arg("migrate")
            .env("KG_DATABASE_URL", &registration_db)
            .stdout(Stdio::null())
            .status()
            .await
            .unwrap();
        assert!(
            migrate.success(),
            "migrations run once, before the replicas start"
        );

        let mut processes = Vec::new();
        let mut clients = Vec::new();
        for _ in 0..3 {
            let port = free_port();
            let child = Command::new(bin)
                .env("KG_LISTEN_ADDR", format!("127.0.0.1:{port}"))
                .env("KG_DATABASE_URL", &registration_db)
                .env("KG_REDIS_URL", redis.url())
                .env("KG_IDENTITY_CHECK_URL", identity.url())
                .env("KG_LOCK_TTL_MS", lock_ttl_ms.to_string())
                .env("KG_LOCK_WAIT_MS", "1500")
                .env("KG_REVIEW_URL", "http://127.0.0.1:9")
                .env("KG_NOTIFICATION_URL", "http://127.0.0.1:9")
                .env("RUST_LOG", "error")
                .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
                .stdout(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .unwrap();
            processes.push(child);
            let url = format!("http://127.0.0.1:{port}");
            let started = Instant::now();
            while mesh::health(&url, "").await.ok()
                != Some(tonic_health::pb::health_check_response::ServingStatus::Serving)
            {
                assert!(
                    started.elapsed() < Duration::from_secs(30),
                    "replica on {port} never SERVING"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            clients.push(RegistrationServiceClient::new(
                mesh::channel(&url).await.unwrap(),
            ));
        }
        Cluster {
            _pg: pg,
            redis,
            identity,
            website,
            processes,
            clients,
        }
    }

    /// One submission per account, all for the same entity, spread over the three replicas.
    fn burst(
        &self,
        spread: Duration,
    ) -> impl Future<Output = Vec<Result<Response<SubmitApplicationResponse>, Status>>> + use<>
    {
        let clients = self.clients.clone();
        let site = self.website.url("/en");
        let calls: Vec<_> = (0..ACCOUNTS)
            .map(|i| {
                let mut client = clients[i % 3].clone();
                let request = fixtures::submission(&format!("acct-{i}"), SEED, &site);
                let delay = spread.mul_f64(i as f64 / ACCOUNTS as f64);
                async move {
                    tokio::time::sleep(delay).await;
                    client.submit_application(request).await
                }
            })
            .collect();
        join_all(calls)
    }

    async fn stored_for_entity(&self) -> usize {
        let mut client = self.clients[0].clone();
        client
            .list_applications(ListApplicationsRequest {
                registration_number: fixtures::uscc(SEED),
                page_size: 500,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .applications
            .len()
    }

    async fn stop(mut self) {
        for child in &mut self.processes {
            let _ = child.kill().await;
        }
        self.identity.stop().await.unwrap();
    }
}

/// Writes the scenario to the fault suite's ledger: an accepted submission not stored is lost,
/// more than one stored application of the entity is a duplicate.
fn ledger(fault: &str, faults: u64, ok: usize, stored: usize) {
    kg_tests::faults::record(kg_tests::faults::FaultRecord {
        test: "once_only",
        fault,
        load: ACCOUNTS as u64,
        faults,
        bad_inputs: 0,
        lost: ok.saturating_sub(stored) as u64,
        duplicates: stored.saturating_sub(1) as u64,
    });
}

/// Outcome counts: (ok, already_exists, aborted, unavailable); any other code fails the test.
fn tally(
    results: &[Result<Response<SubmitApplicationResponse>, Status>],
) -> (usize, usize, usize, usize) {
    let mut counts = (0, 0, 0, 0);
    for result in results {
        match result {
            Ok(_) => counts.0 += 1,
            Err(s) => {
                let reason = DecodedError::from_status(s).reason.unwrap_or_default();
                match s.code() {
                    Code::AlreadyExists => {
                        assert!(
                            ["ENTITY_IN_REVIEW", "ENTITY_ALREADY_REGISTERED"]
                                .contains(&reason.as_str()),
                            "{reason}"
                        );
                        counts.1 += 1
                    }
                    Code::Aborted => {
                        assert_eq!(reason, "ENTITY_BUSY");
                        counts.2 += 1
                    }
                    Code::Unavailable => {
                        assert_eq!(reason, "LOCK_UNAVAILABLE", "{s:?}");
                        counts.3 += 1
                    }
                    other => panic!("unexpected {other:?}: {s:?}"),
                }
            }
        }
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_submissions_across_three_replicas_register_one() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let cluster = Cluster::start(30_000).await;
    let results = cluster.burst(Duration::ZERO).await;
    let (ok, exists, aborted, unavailable) = tally(&results);
    eprintln!("ok={ok} already_exists={exists} aborted={aborted} unavailable={unavailable}");
    let stored = cluster.stored_for_entity().await;
    ledger(
        "200 submissions of one entity over 3 replicas",
        0,
        ok,
        stored,
    );
    assert_eq!(ok, 1, "exactly one submission wins");
    assert_eq!(exists + aborted, ACCOUNTS - 1);
    assert_eq!(unavailable, 0);
    assert_eq!(stored, 1);
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_mid_run_gives_unavailable_and_still_at_most_one() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let mut cluster = Cluster::start(30_000).await;
    let burst = cluster.burst(Duration::from_millis(1500));
    let kill = async {
        tokio::time::sleep(Duration::from_millis(400)).await;
        cluster.redis.kill().await.unwrap();
    };
    let (results, ()) = tokio::join!(burst, kill);
    let (ok, exists, aborted, unavailable) = tally(&results);
    eprintln!("ok={ok} already_exists={exists} aborted={aborted} unavailable={unavailable}");
    let stored = cluster.stored_for_entity().await;
    ledger("Redis killed mid-burst", 1, ok, stored);
    assert!(ok <= 1, "at most one registration");
    assert!(
        unavailable > 0,
        "submissions after the kill fail closed with UNAVAILABLE"
    );
    assert!(stored <= 1);
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_every_lock_expires_before_its_holder_writes_the_database_fence_holds() {
    let _turn = ONE_AT_A_TIME.lock().await;
    // A 1 ms TTL: each holder is "paused" past its lock before it reaches the database, so the
    // lock excludes nobody and only the unique indexes stand between 200 requests and duplicates.
    let cluster = Cluster::start(1).await;
    let results = cluster.burst(Duration::ZERO).await;
    let (ok, exists, aborted, unavailable) = tally(&results);
    eprintln!("ok={ok} already_exists={exists} aborted={aborted} unavailable={unavailable}");
    let stored = cluster.stored_for_entity().await;
    ledger(
        "every entity lock lost before its holder writes",
        1,
        ok,
        stored,
    );
    assert_eq!(ok, 1, "the database admits exactly one");
    assert_eq!(unavailable, 0);
    assert_eq!(stored, 1);
    cluster.stop().await;
}
