//! The `Registration` application state every handler works on: the database, the entity lock,
//! the identity-check client, the agreement, the outbox relay's and the event feed's wake-ups,
//! and the tunables. Handler modules add their methods with `impl Registration`; service.rs
//! exposes them as the RegistrationService. This module imports only what the state is made of
//! (agreement, feed, contacts' settings and metrics, the read queue), never a handler.

use std::sync::Arc;

use std::time::Duration;
use tokio::sync::Notify;

use crate::lock::EntityLock;
use kg_proto::identity::identity_check_service_client::IdentityCheckServiceClient;
use kg_runtime::client::OutboundChannel;
use kg_runtime::shutdown::Shutdown;
use sea_orm::DatabaseConnection;

use crate::agreement::Agreement;
use crate::feed::Feed;
use crate::read_batch::ApplicationReads;

/// WatchEvents streams of one replica that read the database at once (of its 20 pooled
/// connections); the others wait their turn (watch.rs).
pub const WATCH_DRAINS: usize = 4;

pub struct Registration {
    pub(crate) db: DatabaseConnection,
    pub(crate) lock: EntityLock,
    pub(crate) identity: IdentityCheckServiceClient<OutboundChannel>,
    /// Wakes the outbox relay after a commit.
    pub(crate) relay: Arc<Notify>,
    pub(crate) agreement: Agreement,
    /// The replica's event sequencer and tailer, woken after every commit that wrote events.
    pub(crate) feed: Arc<Feed>,
    /// Ends the WatchEvents streams (UNAVAILABLE SERVER_SHUTTING_DOWN) so shutdown is not held
    /// up by them; `None`: they run until the client leaves.
    pub shutdown: Option<Shutdown>,
    /// A WatchEvents stream sends a heartbeat when it sent nothing for this long.
    pub watch_heartbeat: Duration,
    /// One permit per open WatchEvents stream (each is a task fed by the tailer), out of
    /// `watch_max_streams`; set both with [`Registration::limit_watch_streams`].
    pub(crate) watch_streams: Arc<tokio::sync::Semaphore>,
    pub(crate) watch_max_streams: usize,
    /// Streams reading the database at once ([`WATCH_DRAINS`]).
    pub(crate) watch_drains: Arc<tokio::sync::Semaphore>,
    /// Longer than the identity checks can take, so the lock outlives the work it guards.
    pub lock_ttl: Duration,
    pub lock_wait: Duration,
    /// Verification and reachability rules of contact addresses.
    pub contacts: crate::contacts::Settings,
    pub contact_metrics: Option<crate::contacts::metrics::ContactMetrics>,
    /// GetApplication's reads, coalesced into shared queries.
    pub(crate) application_reads: ApplicationReads,
}

impl Registration {
    pub fn new(
        db: DatabaseConnection,
        lock: EntityLock,
        identity: IdentityCheckServiceClient<OutboundChannel>,
        agreement: Agreement,
        relay: Arc<Notify>,
        feed: Arc<Feed>,
    ) -> Self {
        Self {
            db: db.clone(),
            lock,
            identity,
            relay,
            agreement,
            feed,
            shutdown: None,
            watch_heartbeat: Duration::from_secs(30),
            watch_streams: Arc::new(tokio::sync::Semaphore::new(1_000)),
            watch_max_streams: 1_000,
            watch_drains: Arc::new(tokio::sync::Semaphore::new(WATCH_DRAINS)),
            lock_ttl: Duration::from_secs(30),
            lock_wait: Duration::from_secs(2),
            contacts: crate::contacts::Settings::default(),
            contact_metrics: None,
            application_reads: ApplicationReads::start(db),
        }
    }
}

impl Registration {
    /// At most `max` WatchEvents streams open at once; more are RESOURCE_EXHAUSTED.
    pub fn limit_watch_streams(&mut self, max: usize) {
        self.watch_streams = Arc::new(tokio::sync::Semaphore::new(max));
        self.watch_max_streams = max;
    }

    /// After a commit that announced: wake the outbox relay and the event streams.
    pub(crate) fn committed(&self) {
        self.relay.notify_one();
        self.feed.committed();
    }
}
