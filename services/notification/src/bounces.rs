//! The bounce mailbox: delivery status notifications (RFC 3464) of emails the SMTP server
//! accepted but could not deliver.
//!
//! With `KG_SMTP_BOUNCE_ADDRESS` every email's envelope sender (`MAIL FROM`) is that address, so
//! the mail system returns bounces there, and the MTA delivers that address into a Maildir,
//! `KG_BOUNCE_MAILDIR`. A background task reads `<maildir>/new/` every `KG_BOUNCE_POLL_MS`
//! (`new/`, `cur/` and `tmp/` are created when missing) and takes each file as one report:
//!
//! * the message must be `multipart/report; report-type=delivery-status` with a
//!   `message/delivery-status` part (a per-message block, then per-recipient blocks:
//!   `Final-Recipient`, `Original-Recipient`, `Action`, `Status`, `Diagnostic-Code`), else it is
//!   **malformed**;
//! * the returned original (a `text/rfc822-headers` or `message/rfc822` part) carries our
//!   `Message-ID`, `<{delivery id}@{domain}>` (see `email.rs`);
//! * it **matches** only when that id names an EMAIL delivery in status SENT and a per-recipient
//!   block says `Action: failed` with a `Status` of class 5 for that delivery's recipient
//!   (`Final-Recipient`, or `Original-Recipient`, compared case-insensitively). Then, in one
//!   transaction, the delivery goes SENT → BOUNCED (`last_error` "bounce: <status>
//!   <diagnostic>" without the address, `last_error_code` SMTP_BOUNCED) and, only when that
//!   conditional update changed the row, a report for registration is appended to the outbox
//!   (`outbox.rs`: report id `dsn-{delivery id}`, source BOUNCE_REPORT);
//! * a report whose failures are all temporary (`Action: delayed`, a 4.x.x status) is
//!   **temporary**; anything else (an unknown or forged Message-ID, another recipient, a
//!   delivery no longer SENT, `Action: delivered`) is **unmatched**. Neither changes anything.
//!
//! Each file is processed first and then moved to `cur/<name>:2,S` (seen). A crash in between
//! processes it again, harmlessly: the update is conditional, so a second pass finds the
//! delivery BOUNCED and changes nothing. Two replicas reading one Maildir are safe for the same
//! reason, and a file another replica moved away meanwhile is skipped. A database error leaves
//! the file in `new/` for the next poll.
//!
//! Parsing a report and matching it to its delivery (pure, no I/O) is `dsn.rs`; this module is
//! the poller.
//!
//! Counted by `koogallery_notification_bounce_reports_total{outcome}` (matched, unmatched,
//! temporary, malformed).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sea_orm::{DatabaseConnection, DbErr, EntityTrait, TransactionTrait};
use tokio::sync::Notify;

use kg_runtime::shutdown::Shutdown;

use crate::dispatcher::DeliveryMetrics;
use crate::outbox::{self, Report, Source};
use crate::store::{self, delivery};

// the parsing of the reports, pure, is in `dsn.rs`; re-exported for existing paths
pub use crate::dsn::{
    Bounce, Dsn, Malformed, RecipientStatus, Verdict, match_delivery, parse, verdict,
};

/// `last_error_code` of a bounced delivery.
pub const SMTP_BOUNCED: &str = "SMTP_BOUNCED";

/// Largest part of a report file that is read (the returned original may be large; only its
/// headers matter).
const MAX_READ: u64 = 16 * 1024 * 1024;

/// What a report comes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Matched,
    Unmatched,
    Temporary,
    Malformed,
}

impl Outcome {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Matched => "matched",
            Outcome::Unmatched => "unmatched",
            Outcome::Temporary => "temporary",
            Outcome::Malformed => "malformed",
        }
    }
}

/// Reads the bounce Maildir.
pub struct BounceMailbox {
    pub db: DatabaseConnection,
    pub maildir: PathBuf,
    pub poll: Duration,
    pub metrics: DeliveryMetrics,
    /// Wakes the outbox relay after a report was committed.
    pub reports: Option<Arc<Notify>>,
}

impl BounceMailbox {
    /// Creates `new/`, `cur/` and `tmp/` when missing.
    pub fn prepare(maildir: &Path) -> std::io::Result<()> {
        for sub in ["new", "cur", "tmp"] {
            std::fs::create_dir_all(maildir.join(sub))?;
        }
        Ok(())
    }

    /// Polls until shutdown.
    pub async fn run(self, shutdown: Shutdown) {
        tracing::info!(maildir = %self.maildir.display(), "reading bounce reports");
        loop {
            if shutdown.is_triggered() {
                break;
            }
            if let Err(e) = self.poll_once().await {
                tracing::warn!(maildir = %self.maildir.display(), error = %e, "bounce mailbox poll failed; retrying");
            }
            tokio::select! {
                _ = tokio::time::sleep(self.poll) => {}
                _ = shutdown.clone().wait() => {}
            }
        }
    }

    /// Processes every file in `new/` once; returns the outcomes, in file name order. A file
    /// whose processing hit a database error stays in `new/` and is not in the list.
    pub async fn poll_once(&self) -> std::io::Result<Vec<(String, Outcome)>> {
        let new = self.maildir.join("new");
        let mut names = Vec::new();
        let mut entries = tokio::fs::read_dir(&new).await?;
        while let Some(entry) = entries.next_entry().await? {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || !entry.file_type().await.is_ok_and(|t| t.is_file()) {
                continue;
            }
            names.push(name);
        }
        names.sort();
        let mut done = Vec::new();
        for name in names {
            let path = new.join(&name);
            let raw = match read_capped(&path).await {
                Ok(raw) => raw,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue, // taken
                Err(e) => {
                    tracing::warn!(file = %name, error = %e, "cannot read a bounce report");
                    continue;
                }
            };
            let outcome = match self.process(&raw).await {
                Ok(outcome) => outcome,
                Err(e) => {
                    tracing::warn!(file = %name, error = %e, "bounce report not processed; kept for the next poll");
                    continue;
                }
            };
            self.metrics.bounce_report(outcome.as_str());
            tracing::info!(file = %name, outcome = outcome.as_str(), "bounce report processed");
            let seen = self.maildir.join("cur").join(seen_name(&name));
            match tokio::fs::rename(&path, &seen).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {} // another replica
                Err(e) => {
                    tracing::warn!(file = %name, error = %e, "cannot move a bounce report to cur/")
                }
            }
            done.push((name, outcome));
        }
        Ok(done)
    }

    /// Processes one report. `Err` only for a database error.
    pub async fn process(&self, raw: &[u8]) -> Result<Outcome, DbErr> {
        let dsn = match parse(raw) {
            Ok(dsn) => dsn,
            Err(e) => {
                tracing::debug!(error = %e, "malformed bounce report");
                return Ok(Outcome::Malformed);
            }
        };
        let delivery_id = match verdict(&dsn) {
            Verdict::Temporary => return Ok(Outcome::Temporary),
            Verdict::Unmatched => return Ok(Outcome::Unmatched),
            Verdict::Candidate { delivery_id } => delivery_id,
        };
        let Some(row) = delivery::Entity::find_by_id(delivery_id)
            .one(&self.db)
            .await?
        else {
            return Ok(Outcome::Unmatched);
        };
        let Some(bounce) = match_delivery(&dsn, &row) else {
            return Ok(Outcome::Unmatched);
        };
        let report = Report::new(
            Source::BounceReport,
            &row.delivery_id,
            &row.account_id,
            &row.recipient,
            &bounce.error,
        );
        let txn = self.db.begin().await?;
        let n = store::mark_bounced(
            &txn,
            &bounce.delivery_id,
            &bounce.error,
            SMTP_BOUNCED,
            store::now(),
        )
        .await?;
        if n == 1 {
            outbox::append_report(&txn, &report).await?;
        }
        txn.commit().await?;
        if n != 1 {
            return Ok(Outcome::Unmatched); // changed meanwhile (another replica took it)
        }
        tracing::info!(delivery = %row.delivery_id, recipient = %row.recipient_masked, error = %bounce.error, "email bounced; reported for registration");
        self.metrics.undeliverable_reported(Source::BounceReport);
        if let Some(reports) = &self.reports {
            reports.notify_one();
        }
        Ok(Outcome::Matched)
    }
}

/// The name in `cur/`: the Maildir info `:2,S` (seen).
fn seen_name(name: &str) -> String {
    match name.split_once(':') {
        Some((base, _)) => format!("{base}:2,S"),
        None => format!("{name}:2,S"),
    }
}

async fn read_capped(path: &Path) -> std::io::Result<Vec<u8>> {
    use tokio::io::AsyncReadExt as _;
    let file = tokio::fs::File::open(path).await?;
    let mut raw = Vec::new();
    file.take(MAX_READ).read_to_end(&mut raw).await?;
    Ok(raw)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsn::fixtures::*;
    use crate::store::status;

    async fn database() -> DatabaseConnection {
        use sea_orm_migration::MigratorTrait as _;
        let db = sea_orm::Database::connect("sqlite::memory:").await.unwrap();
        crate::migrations::Migrator::up(&db, None).await.unwrap();
        db
    }

    async fn outbox_rows(db: &DatabaseConnection) -> Vec<serde_json::Value> {
        use sea_orm::{ConnectionTrait as _, Statement};
        db.query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT destination, event_type, subject, payload FROM notification_outbox ORDER BY seq",
        ))
        .await
        .unwrap()
        .iter()
        .map(|row| {
            let payload: serde_json::Value = row.try_get("", "payload").unwrap();
            serde_json::json!({
                "destination": row.try_get::<String>("", "destination").unwrap(),
                "event_type": row.try_get::<String>("", "event_type").unwrap(),
                "subject": row.try_get::<String>("", "subject").unwrap(),
                "payload": payload,
            })
        })
        .collect()
    }

    #[tokio::test]
    async fn the_mailbox_bounces_a_sent_delivery_once_and_reports_it() {
        use sea_orm::{ActiveModelTrait as _, IntoActiveModel as _};
        let db = database().await;
        sent("li.wei@acme.example")
            .into_active_model()
            .insert(&db)
            .await
            .unwrap();
        let maildir = std::env::temp_dir().join(format!("kg-bounces-{}", uuid::Uuid::new_v4()));
        BounceMailbox::prepare(&maildir).unwrap();
        let mailbox = BounceMailbox {
            db: db.clone(),
            maildir: maildir.clone(),
            poll: Duration::from_millis(10),
            metrics: DeliveryMetrics::default(),
            reports: None,
        };
        let deliver = |name: &str, raw: &str| {
            let tmp = maildir.join("tmp").join(name);
            std::fs::write(&tmp, raw).unwrap();
            std::fs::rename(&tmp, maildir.join("new").join(name)).unwrap();
        };
        let bounce = postfix_dsn(&our_id(), "li.wei@acme.example", "5.1.1", "failed");
        deliver(
            "1.a",
            &postfix_dsn(&our_id(), "li.wei@acme.example", "4.4.1", "delayed"),
        );
        deliver("2.b", &bounce);
        deliver("3.c", "Subject: not a report\r\n\r\nhello\r\n");
        deliver("4.d", &bounce); // the same report twice
        deliver(
            "5.e",
            &postfix_dsn(&our_id(), "other@acme.example", "5.1.1", "failed"),
        );
        let outcomes = mailbox.poll_once().await.unwrap();
        assert_eq!(
            outcomes,
            [
                ("1.a".to_string(), Outcome::Temporary),
                ("2.b".to_string(), Outcome::Matched),
                ("3.c".to_string(), Outcome::Malformed),
                ("4.d".to_string(), Outcome::Unmatched),
                ("5.e".to_string(), Outcome::Unmatched),
            ]
        );
        assert_eq!(std::fs::read_dir(maildir.join("new")).unwrap().count(), 0);
        assert!(maildir.join("cur").join("2.b:2,S").is_file());
        assert_eq!(std::fs::read_dir(maildir.join("cur")).unwrap().count(), 5);

        let row = delivery::Entity::find_by_id(DELIVERY)
            .one(&db)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.status, status::BOUNCED);
        assert_eq!(row.last_error_code.as_deref(), Some(SMTP_BOUNCED));
        let error = row.last_error.unwrap();
        assert!(
            error.starts_with("bounce: 5.1.1 550 5.1.1 <l***@acme.example>"),
            "{error}"
        );
        let rows = outbox_rows(&db).await;
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!(rows[0]["destination"], "registration");
        assert_eq!(rows[0]["event_type"], "CONTACT_UNDELIVERABLE");
        assert_eq!(rows[0]["subject"], format!("notifications/{DELIVERY}"));
        let payload = &rows[0]["payload"];
        assert_eq!(payload["report_id"], format!("dsn-{DELIVERY}"));
        assert_eq!(payload["account_id"], "acct-1");
        assert_eq!(payload["email"], "li.wei@acme.example");
        assert_eq!(payload["source"], "BOUNCE_REPORT");
        assert_eq!(payload["notification"], format!("notifications/{DELIVERY}"));
        assert!(!payload["detail"].as_str().unwrap().contains("li.wei"));

        // nothing left: an empty poll; a database error keeps the file for the next poll
        assert!(mailbox.poll_once().await.unwrap().is_empty());
        db.clone().close().await.unwrap();
        deliver("6.f", &bounce);
        assert!(mailbox.poll_once().await.unwrap().is_empty());
        assert!(maildir.join("new").join("6.f").is_file());
        std::fs::remove_dir_all(&maildir).unwrap();
    }

    #[test]
    fn seen_names() {
        assert_eq!(
            seen_name("1772503205.M1P2.host"),
            "1772503205.M1P2.host:2,S"
        );
        assert_eq!(
            seen_name("1772503205.M1P2.host:2,"),
            "1772503205.M1P2.host:2,S"
        );
    }
}
