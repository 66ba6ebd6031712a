//! The registration event log behind WatchEvents: one append-only row per state change, written
//! by `outbox::announce` in the change's own transaction, with a snapshot of the subject after
//! the change (logo bytes left out). The stream itself is watch.rs.
//!
//! Positions are given after commit. `seq` (bigserial) is taken at insert time, so a
//! transaction that commits late can hold a smaller seq than rows a watcher already streamed:
//! "seq > last" would skip it. Writers therefore take no lock at all; the stream position `pos`
//! is given by [`sequence`], which numbers committed rows that have none yet, in one short
//! transaction that sequencers of all replicas take turns on (an advisory lock on PostgreSQL,
//! SQLite's single writer). Numbers are handed out in the order sequencer runs commit, so every
//! position up to the largest visible one is final and gap-free: "pos > last" never skips.
//! A paused sequencer holds back the stream (never a write) until PostgreSQL's
//! idle-in-transaction timeout ends its session.
//!
//! Order per subject: a transaction that changes a subject updates its row before it records
//! the event (call `announce` as the last write), so a second change of the subject waits for
//! the first to commit and takes a larger seq; rows numbered together are numbered in seq order.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use kg_proto::registration::registration_event::Payload;
use kg_proto::registration::{RegistrationEvent, RegistrationEventType};
use prost::Message;
use sea_orm::{
    ActiveValue::NotSet, ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, DbErr,
    EntityTrait, QueryFilter, QuerySelect, Set, TransactionTrait,
};
use sha2::{Digest, Sha256};

use crate::migrations::EVENTS;
use crate::reads::seller_details;
use crate::store::{application, event, modification, seller};
use crate::view;

/// Key of the advisory lock sequencers take turns on (any constant unique in this database;
/// "kgrevt" in ASCII).
const SEQUENCER_LOCK: i64 = 0x6b67_7265_7674;

/// Rows one sequencer transaction numbers at most.
const SEQUENCE_BATCH: u32 = 1_000;

/// What happened. One variant per `RegistrationEventType` (except UNSPECIFIED), so that an
/// unknown kind is a compile error rather than a stream nobody can parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    ApplicationSubmitted,
    ApplicationChangesRequested,
    ApplicationResubmitted,
    ApplicationApproved,
    ApplicationRejected,
    ApplicationWithdrawn,
    SellerInfoChanged,
    SellerRenamed,
    SellerExited,
    ModificationRequested,
    ModificationRejected,
    ModificationWithdrawn,
    ContactUndeliverable,
    SellerUnreachable,
    ContactVerified,
}

impl EventKind {
    pub const ALL: [EventKind; 15] = [
        Self::ApplicationSubmitted,
        Self::ApplicationChangesRequested,
        Self::ApplicationResubmitted,
        Self::ApplicationApproved,
        Self::ApplicationRejected,
        Self::ApplicationWithdrawn,
        Self::SellerInfoChanged,
        Self::SellerRenamed,
        Self::SellerExited,
        Self::ModificationRequested,
        Self::ModificationRejected,
        Self::ModificationWithdrawn,
        Self::ContactUndeliverable,
        Self::SellerUnreachable,
        Self::ContactVerified,
    ];

    pub fn wire(self) -> RegistrationEventType {
        use RegistrationEventType as T;
        match self {
            Self::ApplicationSubmitted => T::ApplicationSubmitted,
            Self::ApplicationChangesRequested => T::ApplicationChangesRequested,
            Self::ApplicationResubmitted => T::ApplicationResubmitted,
            Self::ApplicationApproved => T::ApplicationApproved,
            Self::ApplicationRejected => T::ApplicationRejected,
            Self::ApplicationWithdrawn => T::ApplicationWithdrawn,
            Self::SellerInfoChanged => T::SellerInfoChanged,
            Self::SellerRenamed => T::SellerRenamed,
            Self::SellerExited => T::SellerExited,
            Self::ModificationRequested => T::ModificationRequested,
            Self::ModificationRejected => T::ModificationRejected,
            Self::ModificationWithdrawn => T::ModificationWithdrawn,
            Self::ContactUndeliverable => T::ContactUndeliverable,
            Self::SellerUnreachable => T::SellerUnreachable,
            Self::ContactVerified => T::ContactVerified,
        }
    }

    pub fn from_wire(value: i32) -> Option<Self> {
        let wire = RegistrationEventType::try_from(value).ok()?;
        Self::ALL.into_iter().find(|k| k.wire() == wire)
    }

    /// The name stored in the event log and the outbox, e.g. "APPLICATION_SUBMITTED".
    pub fn as_str(self) -> &'static str {
        self.wire()
            .as_str_name()
            .trim_start_matches("REGISTRATION_EVENT_TYPE_")
    }

    pub fn parse(stored: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == stored)
    }
}

/// The subject of an event, from its resource name.
#[derive(Clone, Copy)]
enum Subject<'a> {
    Application(&'a str),
    Seller(&'a str),
    Modification { seller: &'a str, id: &'a str },
    Contact { account: &'a str, id: &'a str },
}

fn parse_subject(name: &str) -> Option<Subject<'_>> {
    if name.starts_with("accounts/") {
        let (account, id) = crate::contacts::parse_contact_name(name).ok()?;
        return Some(Subject::Contact { account, id });
    }
    if let Some(id) = name.strip_prefix("applications/") {
        return (!id.contains('/')).then_some(Subject::Application(id));
    }
    let rest = name.strip_prefix("sellers/")?;
    match rest.split_once("/modificationRequests/") {
        None => (!rest.contains('/')).then_some(Subject::Seller(rest)),
        Some((seller, mr)) if !mr.is_empty() && !mr.contains('/') => {
            Some(Subject::Modification { seller, id: mr })
        }
        Some(_) => None,
    }
}

/// Appends one event about `subject` ("applications/{id}", "sellers/{id}" or
/// "sellers/{id}/modificationRequests/{id}") in the caller's transaction, with the subject as
/// this transaction sees it now.
pub async fn record<C: ConnectionTrait>(
    db: &C,
    kind: EventKind,
    account_id: &str,
    subject: &str,
    actor: &str,
) -> Result<(), DbErr> {
    let parsed = parse_subject(subject).ok_or_else(|| {
        DbErr::Custom(format!("event subject {subject:?} is not a resource name"))
    })?;
    let (mut application_name, mut seller_name, mut modification) =
        (String::new(), String::new(), String::new());
    let mut payload = match parsed {
        Subject::Application(id) => {
            application_name = subject.to_string();
            // the snapshot carries no logo bytes: they are not read at all
            let row = application::find_without_logo(id.to_string())
                .one(db)
                .await?;
            match row {
                // A stored message that does not decode fails the change's transaction.
                Some(row) => {
                    let app = view::application(&row)?;
                    seller_name = app.seller.clone();
                    Some(Payload::ApplicationSnapshot(app))
                }
                None => None,
            }
        }
        Subject::Seller(id) => {
            seller_name = subject.to_string();
            match seller::Entity::find_by_id(id.to_string()).one(db).await? {
                Some(row) => {
                    let s = seller_details(db, &row, false).await?;
                    application_name = s.application.clone();
                    Some(Payload::SellerSnapshot(s))
                }
                None => None,
            }
        }
        // A seller change applied by a modification request carries the seller as it is now;
        // the other modification events carry the request.
        Subject::Modification { seller, id } => {
            seller_name = format!("sellers/{seller}");
            modification = subject.to_string();
            if matches!(
                kind,
                EventKind::SellerInfoChanged | EventKind::SellerRenamed
            ) {
                match seller::Entity::find_by_id(seller.to_string())
                    .one(db)
                    .await?
                {
                    Some(row) => {
                        let s = seller_details(db, &row, false).await?;
                        application_name = s.application.clone();
                        Some(Payload::SellerSnapshot(s))
                    }
                    None => None,
                }
            } else {
                match modification::Entity::find_by_id(id.to_string())
                    .one(db)
                    .await?
                {
                    Some(row) => {
                        let mut m = view::modification::view(&row, false)?;
                        if let Some(p) = m.proposed_profile.as_mut() {
                            p.logo.clear();
                        }
                        Some(Payload::ModificationRequestSnapshot(m))
                    }
                    None => None,
                }
            }
        }
        Subject::Contact { .. } => None,
    };
    if let Subject::Contact { account, id } = parsed {
        // The catalogue acts on the seller: name it when the account is one.
        if let Some(s) = seller::Entity::find()
            .filter(seller::Column::AccountId.eq(account))
            .filter(seller::Column::State.eq(crate::store::state::SELLER_ACTIVE))
            .one(db)
            .await?
        {
            seller_name = format!("sellers/{}", s.seller_id);
            application_name = format!("applications/{}", s.application_id);
        }
        let row = crate::contacts::query::by_id(db, account, id).await?;
        payload = row
            .as_ref()
            .map(|c| Payload::ContactSnapshot(crate::contacts::view::contact(c)));
    }
    let snapshot = payload.map(|p| {
        RegistrationEvent {
            payload: Some(p),
            ..Default::default()
        }
        .encode_to_vec()
    });

    event::Entity::insert(event::ActiveModel {
        seq: NotSet,
        pos: Set(None),
        event_id: Set(uuid::Uuid::now_v7().to_string()),
        event_type: Set(kind.as_str().to_string()),
        account_id: Set(account_id.to_string()),
        application: Set(application_name),
        seller: Set(seller_name),
        modification_request: Set(modification),
        actor: Set(actor.to_string()),
        event_time: Set(kg_runtime::db::now()),
        snapshot: Set(snapshot),
    })
    .exec_without_returning(db)
    .await?;
    Ok(())
}

/// Whether some committed event still waits for its position (cheap: a partial index).
pub async fn unsequenced<C: ConnectionTrait>(db: &C) -> Result<bool, DbErr> {
    Ok(event::Entity::find()
        .select_only()
        .column(event::Column::Seq)
        .filter(event::Column::Pos.is_null())
        .into_tuple::<i64>()
        .one(db)
        .await?
        .is_some())
}

/// Gives the committed events that have no position yet the next positions, in seq order, at
/// most [`SEQUENCE_BATCH`] of them; returns how many. See the module comment.
pub async fn sequence(db: &DatabaseConnection) -> Result<u64, DbErr> {
    let txn = db.begin().await?;
    if txn.get_database_backend() == DbBackend::Postgres {
        // Held to commit; the UPDATE below then sees every earlier sequencer's numbers.
        txn.execute_unprepared(&format!("SELECT pg_advisory_xact_lock({SEQUENCER_LOCK})"))
            .await?;
    }
    let numbered = txn
        .execute_unprepared(&format!(
            "UPDATE {EVENTS} SET pos = numbered.pos
             FROM (SELECT seq,
                          (SELECT COALESCE(MAX(pos), 0) FROM {EVENTS})
                              + ROW_NUMBER() OVER (ORDER BY seq) AS pos
                   FROM {EVENTS} WHERE pos IS NULL ORDER BY seq LIMIT {SEQUENCE_BATCH}) AS numbered
             WHERE {EVENTS}.seq = numbered.seq"
        ))
        .await?
        .rows_affected();
    txn.commit().await?;
    Ok(numbered)
}

/// A stored row as the wire message, with its resume token. Only rows with a position are
/// streamed.
///
/// A snapshot that does not decode is logged (kg_runtime::stored) and the event streams without
/// its payload: the event's kind, subject and position are still true, and refusing it would
/// stop the replica's one tailer, and with it every watcher, at that position for good.
pub fn to_message(row: &event::Model) -> RegistrationEvent {
    let payload = kg_runtime::stored::decode_opt::<RegistrationEvent>(
        row.snapshot.as_deref(),
        "registration_events.snapshot",
        &row.event_id,
    )
    .ok()
    .flatten()
    .and_then(|e| e.payload);
    RegistrationEvent {
        event_id: row.event_id.clone(),
        resume_token: token(row.pos.unwrap_or_default(), &row.event_id),
        event_type: EventKind::parse(&row.event_type)
            .map_or(RegistrationEventType::Unspecified, EventKind::wire) as i32,
        account_id: row.account_id.clone(),
        application: row.application.clone(),
        seller: row.seller.clone(),
        modification_request: row.modification_request.clone(),
        event_time: Some(view::timestamp(row.event_time)),
        actor: row.actor.clone(),
        payload,
    }
}

const TOKEN_VERSION: u8 = 1;
const TOKEN_LEN: usize = 1 + 8 + 8;

/// A position in the log: every event up to `pos` was scanned. `check` ties the token to the
/// event stored at `pos`, so that a made-up position is refused rather than silently skipping
/// or replaying events (and the token reveals no event id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub pos: i64,
    pub check: [u8; 8],
}

impl Position {
    /// Before the first event.
    pub const START: Position = Position {
        pos: 0,
        check: [0; 8],
    };

    pub fn of(pos: i64, event_id: &str) -> Position {
        Position {
            pos,
            check: check(event_id),
        }
    }
}

fn check(event_id: &str) -> [u8; 8] {
    let digest = Sha256::digest(event_id.as_bytes());
    let mut out = [0; 8];
    out.copy_from_slice(&digest[..8]);
    out
}

/// base64url(version ‖ pos big-endian ‖ first 8 bytes of SHA-256(event_id)).
pub fn token(pos: i64, event_id: &str) -> String {
    encode(if pos == 0 {
        Position::START
    } else {
        Position::of(pos, event_id)
    })
}

pub fn encode(position: Position) -> String {
    let mut bytes = Vec::with_capacity(TOKEN_LEN);
    bytes.push(TOKEN_VERSION);
    bytes.extend_from_slice(&position.pos.to_be_bytes());
    bytes.extend_from_slice(&position.check);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The position a token names, if it is well formed (whether it exists is the caller's check).
pub fn decode(token: &str) -> Option<Position> {
    let bytes = URL_SAFE_NO_PAD.decode(token).ok()?;
    if bytes.len() != TOKEN_LEN || bytes[0] != TOKEN_VERSION {
        return None;
    }
    let pos = i64::from_be_bytes(bytes[1..9].try_into().ok()?);
    let check: [u8; 8] = bytes[9..].try_into().ok()?;
    if pos < 0 || (pos == 0 && check != [0; 8]) {
        return None;
    }
    Some(Position { pos, check })
}

/// When the change was committed, for `start_time` comparisons.
pub fn from_timestamp(t: &prost_types::Timestamp) -> Option<DateTime<Utc>> {
    let nanos = u32::try_from(t.nanos).ok().filter(|n| *n < 1_000_000_000)?;
    DateTime::from_timestamp(t.seconds, nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_maps_to_its_wire_name_and_back() {
        for kind in EventKind::ALL {
            assert_eq!(EventKind::parse(kind.as_str()), Some(kind));
            assert_eq!(EventKind::from_wire(kind.wire() as i32), Some(kind));
            assert!(!kind.as_str().starts_with("REGISTRATION_EVENT_TYPE_"));
        }
        assert_eq!(EventKind::from_wire(0), None);
        assert_eq!(EventKind::from_wire(999), None);
        assert_eq!(
            EventKind::ApplicationSubmitted.as_str(),
            "APPLICATION_SUBMITTED"
        );
    }

    #[test]
    fn tokens_round_trip_and_garbage_is_refused() {
        let t = token(42, "0190aaaa-0000-7000-8000-000000000000");
        assert_eq!(
            decode(&t),
            Some(Position::of(42, "0190aaaa-0000-7000-8000-000000000000"))
        );
        assert_eq!(decode(&token(0, "")), Some(Position::START));
        for bad in ["", "x", "!!!!", &t[..t.len() - 1], &format!("{t}A")] {
            assert_eq!(decode(bad), None, "{bad}");
        }
        let mut bytes = URL_SAFE_NO_PAD.decode(&t).unwrap();
        bytes[0] = 2;
        assert_eq!(decode(&URL_SAFE_NO_PAD.encode(&bytes)), None, "version");
        bytes[0] = 1;
        bytes[1] = 0x80;
        assert_eq!(decode(&URL_SAFE_NO_PAD.encode(&bytes)), None, "negative");
    }

    #[test]
    fn subjects_are_resource_names() {
        assert!(matches!(
            parse_subject("applications/a"),
            Some(Subject::Application("a"))
        ));
        assert!(matches!(
            parse_subject("sellers/s"),
            Some(Subject::Seller("s"))
        ));
        assert!(matches!(
            parse_subject("sellers/s/modificationRequests/m"),
            Some(Subject::Modification {
                seller: "s",
                id: "m"
            })
        ));
        for bad in [
            "",
            "accounts/a",
            "applications/a/b",
            "sellers/s/x",
            "sellers/s/modificationRequests/",
        ] {
            assert!(parse_subject(bad).is_none(), "{bad}");
        }
    }
}
