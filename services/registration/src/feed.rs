//! The event feed of one replica: a sequencer that gives committed events their stream
//! positions (events.rs), and one tailer that reads the newly positioned events once and fans
//! them out in memory to every WatchEvents stream of the replica (watch.rs). N idle streams cost
//! the database what one does: the tailer's poll.
//!
//! Both wake at once after a commit of this replica (`Feed::committed`) and poll for the commits
//! of other replicas (and for events a crashed replica committed but did not number).
//!
//! A batch goes only to the streams it can concern: those that follow every account, and those
//! that follow an account with an event in it. A thousand streams that follow quiet accounts are
//! never woken by other accounts' traffic; they learn how far the log has been read from
//! [`Subscription::caught_up`] when they send a heartbeat.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use kg_proto::registration::RegistrationEvent;
use kg_runtime::shutdown::Shutdown;
use sea_orm::{
    ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{Notify, mpsc};

use crate::events;
use crate::store::event;

/// Rows the tailer reads per query.
const TAIL_BATCH: u64 = 500;
/// Batches queued per stream; a stream that falls further behind reads the database again.
const BACKLOG: usize = 256;

/// One positioned event, decoded once for every stream.
pub struct Live {
    pub row: event::Model,
    pub message: RegistrationEvent,
}

impl Live {
    pub fn pos(&self) -> i64 {
        self.row.pos.unwrap_or_default()
    }
}

/// The events the tailer read after its previous batch, up to position `hi`.
pub struct Batch {
    pub events: Vec<Live>,
    pub hi: i64,
    /// The resume token of position `hi`.
    pub hi_token: String,
}

pub struct Feed {
    sequence_now: Notify,
    tail_now: Notify,
    routes: Mutex<Routes>,
    /// The last position published and its token: every batch up to it was offered to every
    /// stream it concerns.
    published: Mutex<(i64, String)>,
}

/// The open streams of the replica, by the account they follow.
#[derive(Default)]
struct Routes {
    next_id: u64,
    every_account: HashMap<u64, Route>,
    by_account: HashMap<String, HashMap<u64, Route>>,
}

struct Route {
    tx: mpsc::Sender<Arc<Batch>>,
    /// Set when a batch did not fit in the stream's queue.
    lagged: Arc<AtomicBool>,
}

impl Route {
    fn offer(&self, batch: &Arc<Batch>) {
        if let Err(TrySendError::Full(_)) = self.tx.try_send(batch.clone()) {
            self.lagged.store(true, Ordering::Release);
        }
    }
}

/// A stream's place in the fan-out; it leaves the routes when dropped.
pub struct Subscription {
    feed: Arc<Feed>,
    id: u64,
    account: Option<String>,
    rx: mpsc::Receiver<Arc<Batch>>,
    lagged: Arc<AtomicBool>,
}

impl Subscription {
    /// The next batch that concerns this stream.
    pub async fn recv(&mut self) -> Option<Arc<Batch>> {
        self.rx.recv().await
    }

    /// A batch already queued, without waiting.
    pub fn try_recv(&mut self) -> Option<Arc<Batch>> {
        self.rx.try_recv().ok()
    }

    /// Whether batches were dropped since the last call: the stream must read the database.
    pub fn take_lagged(&self) -> bool {
        self.lagged.swap(false, Ordering::AcqRel)
    }

    /// The last position published to every stream. Read it *before* emptying the queue with
    /// [`Self::try_recv`]: then every batch up to it that concerns this stream has been seen.
    pub fn caught_up(&self) -> (i64, String) {
        lock(&self.feed.published).clone()
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut routes = lock(&self.feed.routes);
        match &self.account {
            None => {
                routes.every_account.remove(&self.id);
            }
            Some(account) => {
                if let Some(routes_of) = routes.by_account.get_mut(account) {
                    routes_of.remove(&self.id);
                    if routes_of.is_empty() {
                        routes.by_account.remove(account);
                    }
                }
            }
        }
    }
}

/// The routes hold no invariant a panic could break half-way.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Feed {
    /// Starts the sequencer and the tailer of this replica; they stop at shutdown.
    pub fn start(db: DatabaseConnection, poll: Duration, shutdown: Shutdown) -> Arc<Feed> {
        let feed = Arc::new(Feed {
            sequence_now: Notify::new(),
            tail_now: Notify::new(),
            routes: Mutex::default(),
            published: Mutex::new((0, events::encode(events::Position::START))),
        });
        tokio::spawn(sequencer(feed.clone(), db.clone(), poll, shutdown.clone()));
        tokio::spawn(tailer(feed.clone(), db, poll, shutdown));
        feed
    }

    /// After a local commit that recorded events.
    pub fn committed(&self) {
        self.sequence_now.notify_one();
    }

    /// Batches tailed from now on that can hold events of `account` (of any account: `None`).
    pub fn subscribe(self: &Arc<Self>, account: Option<&str>) -> Subscription {
        let (tx, rx) = mpsc::channel(BACKLOG);
        let lagged = Arc::new(AtomicBool::new(false));
        let route = Route {
            tx,
            lagged: lagged.clone(),
        };
        let mut routes = lock(&self.routes);
        routes.next_id += 1;
        let id = routes.next_id;
        match account {
            None => {
                routes.every_account.insert(id, route);
            }
            Some(account) => {
                routes
                    .by_account
                    .entry(account.to_string())
                    .or_default()
                    .insert(id, route);
            }
        }
        Subscription {
            feed: self.clone(),
            id,
            account: account.map(str::to_string),
            rx,
            lagged,
        }
    }

    fn publish(&self, batch: Batch) {
        let batch = Arc::new(batch);
        {
            let routes = lock(&self.routes);
            for route in routes.every_account.values() {
                route.offer(&batch);
            }
            let accounts: HashSet<&str> = batch
                .events
                .iter()
                .map(|live| live.row.account_id.as_str())
                .collect();
            for account in accounts {
                for route in routes
                    .by_account
                    .get(account)
                    .into_iter()
                    .flat_map(HashMap::values)
                {
                    route.offer(&batch);
                }
            }
        }
        // after the offers: a stream that reads this position has its batches queued
        *lock(&self.published) = (batch.hi, batch.hi_token.clone());
    }
}

async fn napped(notify: &Notify, poll: Duration, shutdown: &Shutdown) -> bool {
    tokio::select! {
        _ = notify.notified() => true,
        _ = tokio::time::sleep(poll) => true,
        _ = shutdown.clone().wait() => false,
    }
}

async fn sequencer(feed: Arc<Feed>, db: DatabaseConnection, poll: Duration, shutdown: Shutdown) {
    while napped(&feed.sequence_now, poll, &shutdown).await {
        match sequence_all(&db).await {
            Ok(0) => {}
            Ok(_) => feed.tail_now.notify_one(),
            Err(e) => tracing::warn!(error = %e, "numbering events failed; retrying"),
        }
    }
}

async fn sequence_all(db: &DatabaseConnection) -> Result<u64, DbErr> {
    let mut total = 0;
    // the common idle case is one index probe, no transaction, no lock
    while events::unsequenced(db).await? {
        let n = events::sequence(db).await?;
        total += n;
        if n == 0 {
            break;
        }
    }
    Ok(total)
}

async fn tailer(feed: Arc<Feed>, db: DatabaseConnection, poll: Duration, shutdown: Shutdown) {
    // Streams read what came before they subscribed from the database themselves.
    let mut last = loop {
        match newest(&db).await {
            Ok(last) => break last,
            Err(e) => {
                tracing::warn!(error = %e, "reading the event log failed; retrying");
                if !napped(&feed.tail_now, poll, &shutdown).await {
                    return;
                }
            }
        }
    };
    while napped(&feed.tail_now, poll, &shutdown).await {
        loop {
            match tail(&db, last).await {
                Ok(Some(batch)) => {
                    last = batch.hi;
                    let full = batch.events.len() as u64 == TAIL_BATCH;
                    feed.publish(batch);
                    if !full {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "tailing the event log failed; retrying");
                    break;
                }
            }
        }
    }
}

/// The newest position.
pub async fn newest(db: &DatabaseConnection) -> Result<i64, DbErr> {
    let pos: Option<Option<i64>> = event::Entity::find()
        .select_only()
        .column_as(event::Column::Pos.max(), "pos")
        .into_tuple()
        .one(db)
        .await?;
    Ok(pos.flatten().unwrap_or(0))
}

async fn tail(db: &DatabaseConnection, after: i64) -> Result<Option<Batch>, DbErr> {
    let rows = event::Entity::find()
        .filter(event::Column::Pos.gt(after))
        .order_by_asc(event::Column::Pos)
        .limit(TAIL_BATCH)
        .all(db)
        .await?;
    let Some(last) = rows.last() else {
        return Ok(None);
    };
    let hi = last.pos.unwrap_or(after);
    let hi_token = events::token(hi, &last.event_id);
    let events = rows
        .into_iter()
        .map(|row| Live {
            message: events::to_message(&row),
            row,
        })
        .collect();
    Ok(Some(Batch {
        events,
        hi,
        hi_token,
    }))
}
