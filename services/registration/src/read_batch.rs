//! GetApplication's reads, coalesced. The calls that arrive while a read query runs wait for
//! the next one and share it: one query for their applications and one for their accounts'
//! contact addresses, however many they are. At 32 calls in flight a hot read costs the
//! database a small fraction of a round trip instead of two.
//!
//! Every call still reads the database *after* it arrived (its query starts once the call is
//! queued), so a caller that has just changed an application reads the change, on any replica:
//! there is no cache to go stale. The storage layer: it imports only store.

use std::collections::HashMap;
use std::sync::Arc;

use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter};
use tokio::sync::{mpsc, oneshot};

use crate::store::{application, contact};

/// Most applications one query reads.
const MAX_BATCH: usize = 64;
/// Calls queued beyond the running queries before a caller waits to enqueue.
const QUEUE: usize = 1024;

/// The rows one query read, shared by the calls it served.
pub struct Loaded {
    applications: HashMap<String, application::Model>,
    /// Every address of the accounts of `applications`.
    contacts: HashMap<String, Vec<contact::Model>>,
}

impl Loaded {
    /// The application `id` (without its logo's bytes) and its account's contact addresses.
    pub fn get(&self, id: &str) -> Option<(application::Model, &[contact::Model])> {
        let row = self.applications.get(id)?.clone();
        let contacts = self
            .contacts
            .get(&row.account_id)
            .map_or(&[][..], Vec::as_slice);
        Some((row, contacts))
    }
}

type Reply = Result<Arc<Loaded>, Arc<DbErr>>;

struct Wanted {
    id: String,
    reply: oneshot::Sender<Reply>,
}

/// The queue of GetApplication reads of one replica. One worker runs the queries: the calls that
/// arrive while it runs all wait for the next, so the batches grow with the load (a second
/// worker would take each call as it comes, in batches of one or two, and the database would
/// see as many queries as calls). It ends when the queue is dropped.
pub struct ApplicationReads {
    queue: mpsc::Sender<Wanted>,
}

impl ApplicationReads {
    /// Starts the worker on the current tokio runtime.
    pub fn start(db: DatabaseConnection) -> Self {
        let (queue, rx) = mpsc::channel(QUEUE);
        tokio::spawn(worker(db, rx));
        Self { queue }
    }

    /// Reads application `id` in the next query.
    pub async fn read(&self, id: String) -> Result<Arc<Loaded>, DbErr> {
        let (reply, answer) = oneshot::channel();
        let stopped = || DbErr::Custom("the read queue has stopped".to_string());
        self.queue
            .send(Wanted { id, reply })
            .await
            .map_err(|_| stopped())?;
        // DbErr is not Clone: the callers of a failed query each get its text.
        answer
            .await
            .map_err(|_| stopped())?
            .map_err(|e| DbErr::Custom(e.to_string()))
    }
}

async fn worker(db: DatabaseConnection, mut queue: mpsc::Receiver<Wanted>) {
    while let Some(first) = queue.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(wanted) => batch.push(wanted),
                Err(_) => break,
            }
        }
        let ids: Vec<String> = batch.iter().map(|w| w.id.clone()).collect();
        let reply: Reply = load(&db, ids).await.map(Arc::new).map_err(Arc::new);
        for wanted in batch {
            // a caller that went away (deadline, cancel) is not waiting any more
            let _ = wanted.reply.send(reply.clone());
        }
    }
}

/// The `IN` list padded (with its last id again) to a few lengths: each length is a statement of
/// its own in every pooled connection's prepared-statement cache, and 64 of them would evict
/// each other and be parsed and planned again and again.
fn padded(mut ids: Vec<String>) -> Vec<String> {
    ids.sort_unstable();
    ids.dedup();
    let len = ids.len().next_power_of_two().max(4);
    if let Some(last) = ids.last().cloned() {
        ids.resize(len, last);
    }
    ids
}

async fn load(db: &DatabaseConnection, ids: Vec<String>) -> Result<Loaded, DbErr> {
    let ids = padded(ids);
    let applications: HashMap<String, application::Model> =
        application::without_logo(application::Entity::find())
            .filter(application::Column::ApplicationId.is_in(ids))
            .all(db)
            .await?
            .into_iter()
            .map(|row| (row.application_id.clone(), row))
            .collect();
    let accounts = padded(
        applications
            .values()
            .map(|row| row.account_id.clone())
            .collect(),
    );
    let mut contacts: HashMap<String, Vec<contact::Model>> = HashMap::new();
    if !accounts.is_empty() {
        for row in contact::Entity::find()
            .filter(contact::Column::AccountId.is_in(accounts))
            .all(db)
            .await?
        {
            contacts
                .entry(row.account_id.clone())
                .or_default()
                .push(row);
        }
    }
    Ok(Loaded {
        applications,
        contacts,
    })
}

#[cfg(test)]
mod tests {
    use super::padded;

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("{i:03}")).collect()
    }

    #[test]
    fn in_lists_come_in_few_lengths_and_keep_every_id() {
        let mut lengths = std::collections::BTreeSet::new();
        for n in 1..=64 {
            let out = padded(ids(n));
            lengths.insert(out.len());
            let mut distinct = out.clone();
            distinct.dedup();
            assert_eq!(
                distinct,
                ids(n),
                "{n}: every id once, in order, then repeats"
            );
        }
        assert_eq!(lengths.into_iter().collect::<Vec<_>>(), [4, 8, 16, 32, 64]);
        assert!(padded(Vec::new()).is_empty());
        assert_eq!(
            padded(vec!["b".into(), "a".into(), "b".into()]),
            ["a", "b", "b", "b"]
        );
    }
}
