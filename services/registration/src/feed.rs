//! The event feed of one replica: a sequencer that gives committed events their stream
//! positions (events.rs), and one tailer that reads the newly positioned events once and fans
//! them out in memory to every WatchEvents stream of the replica (watch.rs). N idle streams cost
//! the database what one does: the tailer's poll.
//!
//! Both wake at once after a commit of this replica (`Feed::committed`) and poll for the commits
//! of other replicas (and for events a crashed replica committed but did not number).

use std::sync::Arc;
use std::time::Duration;

use kg_proto::registration::RegistrationEvent;
use kg_runtime::shutdown::Shutdown;
use sea_orm::{
    ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use tokio::sync::{Notify, broadcast};

use crate::events;
use crate::store::event;

/// Rows the tailer reads per query.
const TAIL_BATCH: u64 = 500;
/// Batches kept for streams that fall behind; one that falls further reads the database again.
const BACKLOG: usize = 1_024;

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

/// Consecutive positions `first..=hi` as the tailer read them.
pub struct Batch {
    pub first: i64,
    pub events: Vec<Live>,
    pub hi: i64,
    /// The resume token of position `hi`.
    pub hi_token: String,
}

pub struct Feed {
    sequence_now: Notify,
    tail_now: Notify,
    batches: broadcast::Sender<Arc<Batch>>,
}

impl Feed {
    /// Starts the sequencer and the tailer of this replica; they stop at shutdown.
    pub fn start(db: DatabaseConnection, poll: Duration, shutdown: Shutdown) -> Arc<Feed> {
        let feed = Arc::new(Feed {
            sequence_now: Notify::new(),
            tail_now: Notify::new(),
            batches: broadcast::channel(BACKLOG).0,
        });
        tokio::spawn(sequencer(feed.clone(), db.clone(), poll, shutdown.clone()));
        tokio::spawn(tailer(feed.clone(), db, poll, shutdown));
        feed
    }

    /// After a local commit that recorded events.
    pub fn committed(&self) {
        self.sequence_now.notify_one();
    }

    /// Batches tailed from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Batch>> {
        self.batches.subscribe()
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
                    // no receiver is fine: no stream is open
                    let _ = feed.batches.send(Arc::new(batch));
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
        first: after + 1,
        events,
        hi,
        hi_token,
    }))
}
