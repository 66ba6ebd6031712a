//! WatchEvents: the event log (events.rs) as a server stream. First the stored history from the
//! requested position, then live events: a caught-up stream waits for a commit of this process
//! (`Registration::committed`) or the poll interval (commits of other replicas), whichever comes
//! first. Each stream is one task feeding a bounded channel, so a slow client holds back its own
//! reader and nothing else; it ends when the client leaves, on a database error, or at shutdown
//! (UNAVAILABLE SERVER_SHUTTING_DOWN, so the client resumes elsewhere with its last token).
//!
//! Positions: a scan first reads the largest seq (`hi`), then the matching rows up to it. Every
//! row up to `hi` is final (events.rs serializes event inserts on PostgreSQL; SQLite has one
//! writer), so once the rows up to `hi` are sent the position moves to `hi` even when the rows
//! in between did not match the filters, and heartbeats carry that position.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use kg_proto::registration::watch_events_response::Item;
use kg_proto::registration::{Heartbeat, WatchEventsRequest, WatchEventsResponse};
use kg_runtime::auth::{Caller, Role};
use kg_runtime::error::FieldViolation;
use kg_runtime::shutdown::Shutdown;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use tokio::sync::{OwnedSemaphorePermit, mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;

use crate::error::RegistrationError;
use crate::events::{self, EventKind, Position};
use crate::service::{EventStream, Registration};
use crate::store::event;
use crate::view;

/// Messages buffered per stream; when full, the stream's reader waits for the client.
const CHANNEL: usize = 64;
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
    let mut viewer = None;
    if caller.role == Role::Applicant {
        // Applicants follow their own account only.
        if !account_id.is_empty() && account_id != caller.subject {
            return Err(RegistrationError::NotOwner);
        }
        account_id = caller.subject.clone();
        viewer = Some(caller.subject.clone());
    }
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
        return Err(RegistrationError::Invalid(violations));
    }
    Ok(Filter {
        kinds,
        account_id: (!account_id.is_empty()).then_some(account_id),
        since,
        viewer,
    })
}

/// Where a stream stands: every event up to `seq` was scanned; `token` resumes after it.
struct Cursor {
    seq: i64,
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
        let cursor = self.start(&req.resume_token, filter.since).await?;
        let (tx, rx) = mpsc::channel(CHANNEL);
        let tail = Tail {
            db: self.db.clone(),
            filter,
            cursor,
            tx,
            commits: self.commits.subscribe(),
            shutdown: self.shutdown.clone(),
            heartbeat: self.watch_heartbeat,
            poll: self.watch_poll,
            last_sent: Instant::now(),
            _permit: permit,
        };
        tokio::spawn(tail.run());
        Ok(Box::pin(ReceiverStream::new(rx)))
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
                seq: position.seq,
                token: resume_token.to_string(),
            });
        }
        let start = Cursor {
            seq: 0,
            token: events::encode(Position::START),
        };
        let Some(since) = since else {
            return Ok(start);
        };
        let first = event::Entity::find()
            .filter(event::Column::EventTime.gte(since))
            .order_by_asc(event::Column::Seq)
            .one(&self.db)
            .await?;
        if let Some(first) = first {
            // Just before it; the first scan moves the cursor onto a stored row before any
            // token is sent.
            return Ok(Cursor {
                seq: first.seq - 1,
                ..start
            });
        }
        // Nothing that recent yet: everything stored is older, start at the end.
        let last = event::Entity::find()
            .order_by_desc(event::Column::Seq)
            .one(&self.db)
            .await?;
        Ok(last.map_or(start, |last| Cursor {
            seq: last.seq,
            token: events::token(last.seq, &last.event_id),
        }))
    }

    /// A token must name a stored event (garbled or made-up positions are refused); one older
    /// than the retained log has expired.
    async fn check_position(&self, position: Position) -> Result<(), RegistrationError> {
        if let Some(row) = event::Entity::find_by_id(position.seq)
            .one(&self.db)
            .await?
        {
            return match Position::of(row.seq, &row.event_id) == position {
                true => Ok(()),
                false => Err(RegistrationError::InvalidResumeToken),
            };
        }
        let oldest = event::Entity::find()
            .order_by_asc(event::Column::Seq)
            .one(&self.db)
            .await?;
        match oldest {
            Some(oldest) if oldest.seq > position.seq => {
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
    tx: mpsc::Sender<Result<WatchEventsResponse, tonic::Status>>,
    commits: watch::Receiver<u64>,
    shutdown: Option<Shutdown>,
    heartbeat: Duration,
    poll: Duration,
    last_sent: Instant,
    /// Released when the stream ends.
    _permit: OwnedSemaphorePermit,
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
        let _ = tokio::time::timeout(Duration::from_secs(1), self.tx.send(Err(last.into()))).await;
    }

    async fn follow(&mut self) -> Stop {
        loop {
            // Seen before the scan: a commit during the scan wakes the next wait at once.
            self.commits.borrow_and_update();
            if let Err(stop) = self.drain().await {
                return stop;
            }
            if self.last_sent.elapsed() >= self.heartbeat {
                let beat = Item::Heartbeat(Heartbeat {
                    resume_token: self.cursor.token.clone(),
                    heartbeat_time: Some(view::timestamp(Utc::now())),
                });
                if let Err(stop) = self.send(beat).await {
                    return stop;
                }
            }
            let nap = self
                .poll
                .min(self.heartbeat.saturating_sub(self.last_sent.elapsed()));
            let shutdown = self.shutdown.clone();
            tokio::select! {
                changed = self.commits.changed() => {
                    if changed.is_err() {
                        return Stop::ShuttingDown;
                    }
                }
                _ = tokio::time::sleep(nap) => {}
                _ = self.tx.closed() => return Stop::ClientGone,
                _ = stopped(shutdown) => return Stop::ShuttingDown,
            }
        }
    }

    /// Sends every matching event committed so far.
    async fn drain(&mut self) -> Result<(), Stop> {
        loop {
            // the newest position only, not its snapshot: this runs on every poll
            let hi: Option<(i64, String)> = event::Entity::find()
                .select_only()
                .columns([event::Column::Seq, event::Column::EventId])
                .order_by_desc(event::Column::Seq)
                .into_tuple()
                .one(&self.db)
                .await
                .map_err(|e| Stop::Failed(e.into()))?;
            let Some((hi, hi_event_id)) = hi.filter(|(seq, _)| *seq > self.cursor.seq) else {
                return Ok(());
            };
            let mut query = event::Entity::find()
                .filter(event::Column::Seq.gt(self.cursor.seq))
                .filter(event::Column::Seq.lte(hi));
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
                .order_by_asc(event::Column::Seq)
                .limit(BATCH)
                .all(&self.db)
                .await
                .map_err(|e| Stop::Failed(e.into()))?;
            let full = rows.len() as u64 == BATCH;
            for row in rows {
                let mut message = events::to_message(&row);
                if let Some(viewer) = &self.filter.viewer
                    && message.actor != *viewer
                {
                    message.actor.clear();
                }
                let token = message.resume_token.clone();
                self.send(Item::Event(message)).await?;
                self.cursor = Cursor {
                    seq: row.seq,
                    token,
                };
            }
            if !full {
                self.cursor = Cursor {
                    seq: hi,
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
            sent = self.tx.send(Ok(message)) => sent.map_err(|_| Stop::ClientGone)?,
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
