//! WatchEvents: the event log (events.rs) as a server stream. First the stored history from the
//! requested position, read from the database with the stream's filters; then live events,
//! taken from the replica's one tailer (feed.rs) and filtered in memory, so an idle stream costs
//! the database nothing, and a stream that follows one account is woken only by that account's
//! events and its heartbeats. Each stream is one task feeding a bounded channel, so a slow client
//! holds back its own reader and nothing else; a stream whose queue of tailed batches overflowed
//! reads the database again. It ends when the client leaves, on a database error, or at
//! shutdown (UNAVAILABLE SERVER_SHUTTING_DOWN, so the client resumes elsewhere with its last
//! token).
//!
//! Positions: a scan first reads the largest position (`hi`), then the matching rows up to it.
//! Every position up to `hi` is final (events.rs), so once the rows up to `hi` are sent the
//! stream moves to `hi` even when the rows in between did not match the filters, and heartbeats
//! carry that position.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use kg_proto::registration::watch_events_response::Item;
use kg_proto::registration::{Heartbeat, WatchEventsRequest, WatchEventsResponse};
use kg_runtime::auth::{Caller, Role};
use kg_runtime::error::{CommonError, FieldViolation};
use kg_runtime::shutdown::Shutdown;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::ReceiverStream;

use crate::app::Registration;
use crate::error::RegistrationError;
use crate::events::{self, EventKind, Position};
use crate::feed::{Batch, Live, Subscription};
use crate::store::event;
use crate::view;

/// The WatchEvents reply stream (RegistrationService's `WatchEventsStream`).
pub type EventStream = std::pin::Pin<
    Box<dyn tokio_stream::Stream<Item = Result<WatchEventsResponse, tonic::Status>> + Send>,
>;

/// Messages buffered per stream; when full, the stream's reader waits for the client.
const CHANNEL: usize = 64;

/// What goes through a stream's channel: boxed, because a channel allocates its slots 32 at a
/// time and a `WatchEventsResponse` (an event with its subject's snapshot inline) next to a
/// `Status` is kilobytes wide: unboxed, 1,000 idle streams held 57 MiB of empty slots
/// (heaptrack, docs/performance.md).
type Sent = Result<Box<WatchEventsResponse>, Box<tonic::Status>>;
/// Rows read per query.
const BATCH: u64 = 100;

/// What a stream selects.
struct Filter {
    kinds: Vec<&'static str>,
    account_id: Option<String>,
    since: Option<DateTime<Utc>>,
    /// An applicant's own account: staff actors are blanked in its stream.
    viewer: Option<String>,
}

fn filter(caller: &Caller, req: &WatchEventsRequest) -> Result<Filter, RegistrationError> {
    let mut account_id = req.account_id.clone();
    // Applicants follow their own account only.
    caller.scope_account(&mut account_id)?;
    let viewer = (caller.role == Role::Applicant).then(|| caller.subject.clone());
    let mut violations = Vec::new();
    let mut violation = |field: &str, reason: &str, description: String| {
        violations.push(FieldViolation {
            field: field.into(),
            reason: reason.into(),
            description,
        })
    };
    if !account_id.is_empty()
        && let Err(message) = view::validate_account_id(&account_id)
    {
        violation("account_id", "ACCOUNT_ID_INVALID", message);
    }
    let mut kinds = Vec::new();
    for (i, value) in req.event_types.iter().enumerate() {
        match EventKind::from_wire(*value) {
            Some(kind) => kinds.push(kind.as_str()),
            None => violation(
                &format!("event_types[{i}]"),
                "EVENT_TYPE_INVALID",
                format!("{value} is not a RegistrationEventType (UNSPECIFIED is not allowed)"),
            ),
        }
    }
    kinds.sort_unstable();
    kinds.dedup();
    let since = match &req.start_time {
        None => None,
        Some(t) => {
            let parsed = events::from_timestamp(t);
            if parsed.is_none() {
                violation(
                    "start_time",
                    "START_TIME_INVALID",
                    "not a valid timestamp".into(),
                );
            }
            parsed
        }
    };
    if !violations.is_empty() {
        return Err(CommonError::Invalid(violations).into());
    }
    Ok(Filter {
        kinds,
        account_id: (!account_id.is_empty()).then_some(account_id),
        since,
        viewer,
    })
}

impl Filter {
    /// The in-memory twin of the query in [`Tail::drain`].
    fn matches(&self, row: &crate::store::event::Model) -> bool {
        (self.kinds.is_empty() || self.kinds.contains(&row.event_type.as_str()))
            && self
                .account_id
                .as_ref()
                .is_none_or(|account| *account == row.account_id)
            && self.since.is_none_or(|since| row.event_time >= since)
    }
}

/// Where a stream stands: every event up to `pos` was scanned; `token` resumes after it.
struct Cursor {
    pos: i64,
    token: String,
}

impl Registration {
    pub async fn watch(
        &self,
        caller: &Caller,
        req: WatchEventsRequest,
    ) -> Result<EventStream, RegistrationError> {
        let filter = filter(caller, &req)?;
        let permit = self
            .watch_streams
            .clone()
            .try_acquire_owned()
            .map_err(|_| RegistrationError::TooManyStreams(self.watch_max_streams))?;
        // Subscribed before the history is read: nothing tailed in between is missed.
        let live = self.feed.subscribe(filter.account_id.as_deref());
        let cursor = self.start(&req.resume_token, filter.since).await?;
        let (tx, rx) = mpsc::channel(CHANNEL);
        let tail = Tail {
            db: self.db.clone(),
            filter,
            cursor,
            tx,
            live,
            shutdown: self.shutdown.clone(),
            heartbeat: self.watch_heartbeat,
            last_sent: Instant::now(),
            _permit: permit,
            drains: self.watch_drains.clone(),
        };
        tokio::spawn(tail.run());
        Ok(Box::pin(
            ReceiverStream::new(rx).map(|sent: Sent| sent.map(|m| *m).map_err(|s| *s)),
        ))
    }

    async fn start(
        &self,
        resume_token: &str,
        since: Option<DateTime<Utc>>,
    ) -> Result<Cursor, RegistrationError> {
        if !resume_token.is_empty() {
            let position =
                events::decode(resume_token).ok_or(RegistrationError::InvalidResumeToken)?;
            if position != Position::START {
                self.check_position(position).await?;
            }
            return Ok(Cursor {
                pos: position.pos,
                token: resume_token.to_string(),
            });
        }
        let start = Cursor {
            pos: 0,
            token: events::encode(Position::START),
        };
        let Some(since) = since else {
            return Ok(start);
        };
        let first = event::Entity::find()
            .filter(event::Column::EventTime.gte(since))
            .filter(event::Column::Pos.is_not_null())
            .order_by_asc(event::Column::Pos)
            .one(&self.db)
            .await?;
        if let Some(pos) = first.and_then(|first| first.pos) {
            // Just before it; the first scan moves the cursor onto a stored row before any
            // token is sent.
            return Ok(Cursor {
                pos: pos - 1,
                ..start
            });
        }
        // Nothing that recent yet: everything stored is older, start at the end.
        let last = event::Entity::find()
            .filter(event::Column::Pos.is_not_null())
            .order_by_desc(event::Column::Pos)
            .one(&self.db)
            .await?;
        Ok(match last {
            Some(event::Model {
                pos: Some(pos),
                event_id,
                ..
            }) => Cursor {
                pos,
                token: events::token(pos, &event_id),
            },
            _ => start,
        })
    }

    /// A token must name a stored event (garbled or made-up positions are refused); one older
    /// than the retained log has expired.
    async fn check_position(&self, position: Position) -> Result<(), RegistrationError> {
        let stored = event::Entity::find()
            .filter(event::Column::Pos.eq(position.pos))
            .one(&self.db)
            .await?;
        if let Some(row) = stored {
            return match Position::of(position.pos, &row.event_id) == position {
                true => Ok(()),
                false => Err(RegistrationError::InvalidResumeToken),
            };
        }
        let oldest = event::Entity::find()
            .filter(event::Column::Pos.is_not_null())
            .order_by_asc(event::Column::Pos)
            .one(&self.db)
            .await?;
        match oldest {
            Some(oldest) if oldest.pos > Some(position.pos) => {
                Err(RegistrationError::ResumeTokenExpired {
                    oldest: oldest.event_time,
                })
            }
            _ => Err(RegistrationError::InvalidResumeToken),
        }
    }
}

/// One open stream.
struct Tail {
    db: DatabaseConnection,
    filter: Filter,
    cursor: Cursor,
    tx: mpsc::Sender<Sent>,
    /// The replica's tailer.
    live: Subscription,
    shutdown: Option<Shutdown>,
    heartbeat: Duration,
    last_sent: Instant,
    /// Released when the stream ends.
    _permit: OwnedSemaphorePermit,
    /// Shared by the replica's streams (see [`crate::app::WATCH_DRAINS`]).
    drains: Arc<Semaphore>,
}

/// Why a stream stops.
enum Stop {
    ClientGone,
    ShuttingDown,
    Failed(RegistrationError),
}

impl Tail {
    async fn run(mut self) {
        let stop = self.follow().await;
        let last = match stop {
            Stop::ClientGone => return,
            Stop::ShuttingDown => RegistrationError::ShuttingDown,
            Stop::Failed(e) => {
                tracing::warn!(error = %e, "WatchEvents stream failed");
                e
            }
        };
        // A bounded wait: a client that reads nothing must not hold up shutdown.
        let _ = tokio::time::timeout(
            Duration::from_secs(1),
            self.tx.send(Err(Box::new(last.into()))),
        )
        .await;
    }

    /// The work of each wake-up (database reads, sends) is boxed: an idle stream's task then
    /// holds only this loop's state, not the largest of those futures (1,000 idle streams are a
    /// target of their own, see docs/performance.md).
    async fn follow(&mut self) -> Stop {
        if let Err(stop) = Box::pin(self.drain()).await {
            return stop;
        }
        // one timer per stream, moved only when something was sent
        let beat = tokio::time::sleep_until(self.beat_at());
        tokio::pin!(beat);
        let shutdown = stopped(self.shutdown.clone());
        tokio::pin!(shutdown);
        loop {
            let step = tokio::select! {
                batch = self.live.recv() => match batch {
                    Some(batch) => Box::pin(self.receive(&batch)).await,
                    None => return Stop::ShuttingDown,
                },
                _ = &mut beat => Box::pin(self.heartbeat()).await,
                _ = self.tx.closed() => return Stop::ClientGone,
                _ = &mut shutdown => return Stop::ShuttingDown,
            };
            if let Err(stop) = step {
                return stop;
            }
            if beat.deadline() != self.beat_at() {
                beat.as_mut().reset(self.beat_at());
            }
        }
    }

    fn beat_at(&self) -> tokio::time::Instant {
        tokio::time::Instant::from_std(self.last_sent + self.heartbeat)
    }

    async fn receive(&mut self, batch: &Batch) -> Result<(), Stop> {
        if self.live.take_lagged() {
            // batches were dropped from the queue: catch up from the database
            self.drain().await?;
        }
        self.forward(batch).await
    }

    /// The heartbeat carries how far the log has been read, also past batches that were never
    /// queued here because they cannot concern this stream.
    async fn heartbeat(&mut self) -> Result<(), Stop> {
        let (published, published_token) = self.live.caught_up();
        while let Some(batch) = self.live.try_recv() {
            self.receive(&batch).await?;
        }
        if self.live.take_lagged() {
            self.drain().await?;
        }
        if published > self.cursor.pos {
            self.cursor = Cursor {
                pos: published,
                token: published_token,
            };
        }
        let beat = Item::Heartbeat(Heartbeat {
            resume_token: self.cursor.token.clone(),
            heartbeat_time: Some(view::timestamp(Utc::now())),
        });
        self.send(beat).await
    }

    /// Sends the matching events of a tailed batch that this stream has not scanned yet. The
    /// batches between the last one queued here and this one could not concern this stream.
    async fn forward(&mut self, batch: &Batch) -> Result<(), Stop> {
        if batch.hi <= self.cursor.pos {
            return Ok(()); // read from the database already
        }
        for live in &batch.events {
            if live.pos() <= self.cursor.pos || !self.filter.matches(&live.row) {
                continue;
            }
            self.send_event(live).await?;
        }
        self.cursor = Cursor {
            pos: batch.hi,
            token: batch.hi_token.clone(),
        };
        Ok(())
    }

    async fn send_event(&mut self, live: &Live) -> Result<(), Stop> {
        let mut message = live.message.clone();
        if let Some(viewer) = &self.filter.viewer
            && message.actor != *viewer
        {
            message.actor.clear();
        }
        let token = message.resume_token.clone();
        self.send(Item::Event(message)).await?;
        self.cursor = Cursor {
            pos: live.pos(),
            token,
        };
        Ok(())
    }

    /// Sends every matching event positioned so far, read from the database. At most
    /// [`crate::app::WATCH_DRAINS`] streams of the replica read at once: a thousand clients
    /// reconnecting together (after a restart) wait here, cheaply, instead of holding the pool
    /// that submissions need. The turn covers the reads only, never the sends: a client that
    /// stops reading must not hold up the other streams.
    async fn drain(&mut self) -> Result<(), Stop> {
        loop {
            let reading = self
                .drains
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| Stop::ShuttingDown)?;
            // the newest position only, not its snapshot
            let hi: Option<(Option<i64>, String)> = event::Entity::find()
                .select_only()
                .columns([event::Column::Pos, event::Column::EventId])
                .filter(event::Column::Pos.is_not_null())
                .order_by_desc(event::Column::Pos)
                .into_tuple()
                .one(&self.db)
                .await
                .map_err(|e| Stop::Failed(e.into()))?;
            let Some((Some(hi), hi_event_id)) = hi.filter(|(pos, _)| *pos > Some(self.cursor.pos))
            else {
                return Ok(());
            };
            let mut query = event::Entity::find()
                .filter(event::Column::Pos.gt(self.cursor.pos))
                .filter(event::Column::Pos.lte(hi));
            if !self.filter.kinds.is_empty() {
                query = query.filter(event::Column::EventType.is_in(self.filter.kinds.clone()));
            }
            if let Some(account_id) = &self.filter.account_id {
                query = query.filter(event::Column::AccountId.eq(account_id.as_str()));
            }
            if let Some(since) = self.filter.since {
                query = query.filter(event::Column::EventTime.gte(since));
            }
            let rows = query
                .order_by_asc(event::Column::Pos)
                .limit(BATCH)
                .all(&self.db)
                .await
                .map_err(|e| Stop::Failed(e.into()))?;
            drop(reading);
            let full = rows.len() as u64 == BATCH;
            for row in rows {
                let live = Live {
                    message: events::to_message(&row),
                    row,
                };
                self.send_event(&live).await?;
            }
            if !full {
                self.cursor = Cursor {
                    pos: hi,
                    token: events::token(hi, &hi_event_id),
                };
                return Ok(());
            }
        }
    }

    async fn send(&mut self, item: Item) -> Result<(), Stop> {
        let message = WatchEventsResponse { item: Some(item) };
        let shutdown = self.shutdown.clone();
        tokio::select! {
            sent = self.tx.send(Ok(Box::new(message))) => sent.map_err(|_| Stop::ClientGone)?,
            _ = stopped(shutdown) => return Err(Stop::ShuttingDown),
        }
        self.last_sent = Instant::now();
        Ok(())
    }
}

async fn stopped(shutdown: Option<Shutdown>) {
    match shutdown {
        Some(shutdown) => shutdown.wait().await,
        None => std::future::pending().await,
    }
}
