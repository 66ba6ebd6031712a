//! The outbox relay against a real SQLite database: subjects are delivered side by side, each
//! subject's events in the order they were written, each exactly once; a failing subject waits
//! without holding back the others; an event refused for good becomes a dead letter and stops
//! holding back its subject, while a transient failure is retried; two relays on one table
//! deliver each event once between them, and the events of a relay that died go out again once
//! its lease is over, not before.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kg_runtime::outbox::{Backoff, Deliver, DeliveryError, NewEvent, OutboxEvent, Relay, append};
use sea_orm::{ConnectionTrait, DatabaseConnection};

const TABLE: &str = "test_outbox";

/// Records what it was given; fails the first attempt of the events named in `fail_once`
/// (transiently) and every attempt of those in `refuse` (for good).
#[derive(Default)]
struct Recorder {
    seen: Mutex<Vec<(String, i64)>>,
    fail_once: Mutex<HashSet<String>>,
    refuse: Mutex<HashSet<String>>,
    refusals: Mutex<usize>,
    in_flight: Mutex<(usize, usize)>,
}

#[async_trait::async_trait]
impl Deliver for Recorder {
    async fn deliver(&self, event: &OutboxEvent) -> Result<(), DeliveryError> {
        {
            let mut f = self.in_flight.lock().unwrap();
            f.0 += 1;
            f.1 = f.1.max(f.0);
        }
        // Long enough that deliveries of different subjects overlap.
        tokio::time::sleep(Duration::from_millis(5)).await;
        self.in_flight.lock().unwrap().0 -= 1;
        if self.fail_once.lock().unwrap().remove(&event.event_type) {
            return Err(DeliveryError::retry("unavailable once"));
        }
        if self.refuse.lock().unwrap().contains(&event.event_type) {
            *self.refusals.lock().unwrap() += 1;
            return Err(tonic::Status::invalid_argument("not a valid event").into());
        }
        self.seen
            .lock()
            .unwrap()
            .push((event.subject.clone(), event.seq));
        Ok(())
    }
}

fn url(dir: &tempfile::TempDir) -> String {
    format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("relay.db").display()
    )
}

async fn database() -> (tempfile::TempDir, DatabaseConnection) {
    let dir = tempfile::tempdir().unwrap();
    let db = kg_runtime::db::connect(&url(&dir)).await.unwrap();
    let sql = kg_runtime::db::render(
        &kg_runtime::outbox::table_sql(TABLE),
        db.get_database_backend(),
    );
    for statement in sql.split(';') {
        db.execute_unprepared(statement).await.unwrap();
    }
    let dead_letters = kg_runtime::db::render(
        &kg_runtime::outbox::dead_letter_sql(TABLE),
        db.get_database_backend(),
    );
    db.execute_unprepared(&dead_letters).await.unwrap();
    let leases = kg_runtime::db::render(
        &kg_runtime::outbox::lease_sql(TABLE),
        db.get_database_backend(),
    );
    db.execute_unprepared(&leases).await.unwrap();
    (dir, db)
}

/// Writes `per_subject` events for each of `subjects` subjects, interleaved.
async fn fill(db: &DatabaseConnection, subjects: usize, per_subject: usize) {
    for round in 0..per_subject {
        for s in 0..subjects {
            append(
                db,
                TABLE,
                NewEvent {
                    destination: "review",
                    event_type: &format!("E{s}-{round}"),
                    account_id: "acct",
                    subject: &format!("applications/{s}"),
                    payload: serde_json::json!({}),
                },
            )
            .await
            .unwrap();
        }
    }
}

fn relay(db: &DatabaseConnection, recorder: Arc<Recorder>) -> Relay {
    let mut relay = Relay::new(db.clone(), TABLE, recorder);
    relay.backoff = Backoff {
        base: Duration::from_millis(1),
        max: Duration::from_millis(1),
    };
    relay
}

/// Per subject, the seqs in delivery order.
fn by_subject(seen: &[(String, i64)]) -> BTreeMap<String, Vec<i64>> {
    let mut out: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for (subject, seq) in seen {
        out.entry(subject.clone()).or_default().push(*seq);
    }
    out
}

#[tokio::test]
async fn subjects_go_side_by_side_each_in_order_and_once() {
    let (_dir, db) = database().await;
    fill(&db, 20, 4).await;
    let recorder = Arc::new(Recorder::default());
    let relay = relay(&db, recorder.clone());

    let mut delivered = 0;
    while delivered < 80 {
        let n = relay.pass().await.unwrap();
        assert!(
            n > 0,
            "a pass delivered nothing with {delivered} of 80 done"
        );
        delivered += n;
    }
    assert_eq!(delivered, 80);
    assert_eq!(kg_runtime::outbox::backlog(&db, TABLE).await.unwrap(), 0);

    let seen = recorder.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 80, "every event exactly once");
    for (subject, seqs) in by_subject(&seen) {
        assert_eq!(seqs.len(), 4, "{subject}");
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{subject}: {seqs:?}");
    }
    let max_in_flight = recorder.in_flight.lock().unwrap().1;
    assert!(
        max_in_flight > 1,
        "subjects were delivered one at a time (max in flight {max_in_flight})"
    );
}

#[tokio::test]
async fn a_failed_event_holds_back_its_subject_only() {
    let (_dir, db) = database().await;
    fill(&db, 3, 3).await;
    let recorder = Arc::new(Recorder::default());
    // Subject 1's second event fails once.
    recorder.fail_once.lock().unwrap().insert("E1-1".into());
    let relay = relay(&db, recorder.clone());

    let first = relay.pass().await.unwrap();
    // Subjects 0 and 2 go through whole; subject 1 stops before its failed event.
    assert_eq!(first, 3 + 3 + 1);
    {
        let seen = by_subject(&recorder.seen.lock().unwrap());
        assert_eq!(seen["applications/1"].len(), 1);
    }
    // After the (1 ms) backoff the rest of subject 1 follows, in order.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut rest = 0;
    for _ in 0..10 {
        rest += relay.pass().await.unwrap();
        if rest == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(rest, 2);
    let seen = by_subject(&recorder.seen.lock().unwrap());
    let subject1 = &seen["applications/1"];
    assert_eq!(subject1.len(), 3);
    assert!(subject1.windows(2).all(|w| w[0] < w[1]), "{subject1:?}");
    assert_eq!(kg_runtime::outbox::backlog(&db, TABLE).await.unwrap(), 0);
}

#[tokio::test]
async fn an_event_refused_for_good_becomes_a_dead_letter_and_its_subject_goes_on() {
    let (_dir, db) = database().await;
    fill(&db, 2, 3).await;
    let recorder = Arc::new(Recorder::default());
    // Subject 0's first event is refused every time (INVALID_ARGUMENT); subject 1's first
    // event fails once transiently.
    recorder.refuse.lock().unwrap().insert("E0-0".into());
    recorder.fail_once.lock().unwrap().insert("E1-0".into());
    let mut relay = relay(&db, recorder.clone());
    relay.max_refusals = 3;

    let mut delivered = 0;
    for _ in 0..50 {
        delivered += relay.pass().await.unwrap();
        if delivered == 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(delivered, 5, "every event but the refused one");
    assert_eq!(
        *recorder.refusals.lock().unwrap(),
        3,
        "refused exactly max_refusals times"
    );
    assert_eq!(kg_runtime::outbox::backlog(&db, TABLE).await.unwrap(), 0);
    assert_eq!(
        kg_runtime::outbox::dead_letters(&db, TABLE).await.unwrap(),
        1
    );

    // Subject 0 went on after its dead letter, in order; subject 1 retried its transient failure.
    let seen = by_subject(&recorder.seen.lock().unwrap());
    assert_eq!(seen["applications/0"].len(), 2);
    assert!(seen["applications/0"].windows(2).all(|w| w[0] < w[1]));
    assert_eq!(seen["applications/1"].len(), 3);

    // A dead letter is not tried again.
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(relay.pass().await.unwrap(), 0);
    assert_eq!(*recorder.refusals.lock().unwrap(), 3);
}

#[tokio::test]
async fn two_relays_on_one_table_deliver_each_event_once_between_them() {
    let (dir, db) = database().await;
    fill(&db, 20, 5).await;
    // Two replicas: their own connections to the same database, one delivery log.
    let recorder = Arc::new(Recorder::default());
    let other = kg_runtime::db::connect(&url(&dir)).await.unwrap();
    let (a, b) = (
        relay(&db, recorder.clone()),
        relay(&other, recorder.clone()),
    );
    let drain = |relay: Relay| async move {
        let mut delivered = 0;
        for _ in 0..200 {
            if kg_runtime::outbox::backlog(&relay.db, TABLE).await.unwrap() == 0 {
                break;
            }
            delivered += relay.pass().await.unwrap();
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        delivered
    };
    let (from_a, from_b) = tokio::join!(drain(a), drain(b));
    assert_eq!(from_a + from_b, 100, "a: {from_a}, b: {from_b}");
    let seen = recorder.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 100, "no event was delivered by both relays");
    for (subject, seqs) in by_subject(&seen) {
        assert_eq!(seqs.len(), 5, "{subject}");
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{subject}: {seqs:?}");
    }
}

/// Takes events and never answers: a relay process that stopped mid-delivery.
struct Hangs;

#[async_trait::async_trait]
impl Deliver for Hangs {
    async fn deliver(&self, _event: &OutboxEvent) -> Result<(), DeliveryError> {
        std::future::pending().await
    }
}

#[tokio::test]
async fn a_dead_relays_events_go_out_again_once_its_lease_is_over() {
    let (_dir, db) = database().await;
    fill(&db, 3, 2).await;
    let mut dead = Relay::new(db.clone(), TABLE, Arc::new(Hangs));
    dead.lease = Duration::from_millis(800);
    // It claims the due events, starts delivering and dies there.
    let stuck = tokio::spawn(async move { dead.pass().await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    stuck.abort();

    let recorder = Arc::new(Recorder::default());
    let alive = relay(&db, recorder.clone());
    assert_eq!(
        alive.pass().await.unwrap(),
        0,
        "leased events are not taken by another relay"
    );
    tokio::time::sleep(Duration::from_millis(900)).await;
    let mut delivered = 0;
    for _ in 0..20 {
        delivered += alive.pass().await.unwrap();
        if delivered == 6 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(delivered, 6, "after the lease, every event goes out");
    assert_eq!(kg_runtime::outbox::backlog(&db, TABLE).await.unwrap(), 0);
    assert_eq!(
        kg_runtime::outbox::dead_letters(&db, TABLE).await.unwrap(),
        0
    );
}
