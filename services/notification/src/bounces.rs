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
//! Counted by `koogallery_notification_bounce_reports_total{outcome}` (matched, unmatched,
//! temporary, malformed).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use sea_orm::{DatabaseConnection, DbErr, EntityTrait, TransactionTrait};
use tokio::sync::Notify;

use kg_runtime::shutdown::Shutdown;

use crate::dispatcher::DeliveryMetrics;
use crate::mask;
use crate::outbox::{self, Report, Source};
use crate::store::{self, channel, delivery, status};

/// `last_error_code` of a bounced delivery.
pub const SMTP_BOUNCED: &str = "SMTP_BOUNCED";

/// Largest part of a report file that is read (the returned original may be large; only its
/// headers matter).
const MAX_READ: u64 = 16 * 1024 * 1024;

/// One per-recipient block of a delivery status notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientStatus {
    /// The address of `Final-Recipient` (after `rfc822;`).
    pub final_recipient: String,
    /// The address of `Original-Recipient`, when given.
    pub original_recipient: Option<String>,
    /// `Action`, lower-cased: failed, delayed, delivered, relayed, expanded.
    pub action: String,
    /// `Status`, for example `5.1.1`.
    pub status: String,
    /// `Diagnostic-Code` without its type, for example `550 5.1.1 <…>: user unknown`.
    pub diagnostic: Option<String>,
}

impl RecipientStatus {
    /// Failed for good: `Action: failed` and a class 5 status.
    pub fn is_permanent(&self) -> bool {
        self.action == "failed" && self.status.starts_with("5.")
    }

    /// A temporary failure: `Action: delayed`, or a class 4 status.
    pub fn is_temporary(&self) -> bool {
        self.action == "delayed" || self.status.starts_with("4.")
    }

    /// Whether the block is about `address` (final or original recipient, case-insensitive).
    pub fn concerns(&self, address: &str) -> bool {
        let address = address.trim().to_lowercase();
        !address.is_empty()
            && (self.final_recipient.to_lowercase() == address
                || self
                    .original_recipient
                    .as_ref()
                    .is_some_and(|o| o.to_lowercase() == address))
    }
}

/// A parsed delivery status notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dsn {
    /// `Message-ID` of the returned original, without the angle brackets; `None` when the
    /// report returns no headers.
    pub original_message_id: Option<String>,
    pub recipients: Vec<RecipientStatus>,
}

/// Why a message is not a delivery status notification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a delivery status notification: {0}")]
pub struct Malformed(pub &'static str);

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

/// What a parsed report says before the delivery is looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Only temporary failures.
    Temporary,
    /// Nothing that could be one of our deliveries failing for good.
    Unmatched,
    /// Permanent failures about the delivery with this id.
    Candidate { delivery_id: String },
}

/// A bounce that matched a SENT email delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bounce {
    pub delivery_id: String,
    /// `bounce: <status> <diagnostic>`, the recipient replaced by its mask, at most 1000
    /// characters.
    pub error: String,
}

/// Parses a report (the raw message as the MTA stored it).
pub fn parse(raw: &[u8]) -> Result<Dsn, Malformed> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = split_head_body(&text);
    let headers = header_fields(head);
    let (mime, params) = content_type(field(&headers, "content-type").unwrap_or("text/plain"));
    if mime != "multipart/report" {
        return Err(Malformed("not multipart/report"));
    }
    if !params
        .get("report-type")
        .is_some_and(|t| t.eq_ignore_ascii_case("delivery-status"))
    {
        return Err(Malformed("report-type is not delivery-status"));
    }
    let boundary = params
        .get("boundary")
        .filter(|b| !b.is_empty())
        .ok_or(Malformed("multipart without boundary"))?;
    let mut status_part = None;
    let mut original: Option<Vec<(String, String)>> = None;
    for part in multipart(body, boundary).ok_or(Malformed("no MIME parts"))? {
        let (part_head, part_body) = split_head_body(part);
        let part_headers = header_fields(part_head);
        let (part_mime, _) =
            content_type(field(&part_headers, "content-type").unwrap_or("text/plain"));
        let decoded = || decode(part_body, field(&part_headers, "content-transfer-encoding"));
        match part_mime.as_str() {
            "message/delivery-status" | "message/global-delivery-status"
                if status_part.is_none() =>
            {
                status_part = Some(decoded());
            }
            "text/rfc822-headers"
            | "message/rfc822-headers"
            | "message/global-headers"
            | "message/rfc822"
            | "message/global"
                if original.is_none() =>
            {
                let inner = decoded();
                original = Some(header_fields(split_head_body(&inner).0));
            }
            _ => {}
        }
    }
    let status_part = status_part.ok_or(Malformed("no message/delivery-status part"))?;
    let recipients = recipient_blocks(&status_part);
    if recipients.is_empty() {
        return Err(Malformed("no per-recipient block"));
    }
    let original_message_id = original
        .as_deref()
        .and_then(|h| field(h, "message-id"))
        .map(message_id)
        .filter(|id| !id.is_empty());
    Ok(Dsn {
        original_message_id,
        recipients,
    })
}

/// What the report says, before the delivery is looked up.
pub fn verdict(dsn: &Dsn) -> Verdict {
    if !dsn.recipients.iter().any(RecipientStatus::is_permanent) {
        return if dsn.recipients.iter().any(RecipientStatus::is_temporary) {
            Verdict::Temporary
        } else {
            Verdict::Unmatched
        };
    }
    // `<{delivery id}@{domain}>`: anything else is not one of ours
    let delivery_id = dsn
        .original_message_id
        .as_deref()
        .and_then(|id| id.rsplit_once('@'))
        .map(|(local, _)| local)
        .filter(|local| crate::send::valid_id(local));
    match delivery_id {
        Some(id) => Verdict::Candidate {
            delivery_id: id.to_string(),
        },
        None => Verdict::Unmatched,
    }
}

/// The bounce, when `delivery` (the one the report's Message-ID names) is a SENT email whose
/// recipient failed permanently according to the report.
pub fn match_delivery(dsn: &Dsn, delivery: &delivery::Model) -> Option<Bounce> {
    if delivery.channel != channel::EMAIL || delivery.status != status::SENT {
        return None;
    }
    let failure = dsn
        .recipients
        .iter()
        .find(|r| r.is_permanent() && r.concerns(&delivery.recipient))?;
    let text = match &failure.diagnostic {
        Some(diagnostic) => format!("bounce: {} {diagnostic}", failure.status),
        None => format!("bounce: {}", failure.status),
    };
    let error = mask::scrub(&text, &delivery.recipient, &delivery.recipient_masked)
        .chars()
        .take(1000)
        .collect();
    Some(Bounce {
        delivery_id: delivery.delivery_id.clone(),
        error,
    })
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

/// The header block and the body: split at the first empty line (CRLF or LF).
fn split_head_body(text: &str) -> (&str, &str) {
    if let Some(rest) = text
        .strip_prefix("\r\n")
        .or_else(|| text.strip_prefix('\n'))
    {
        return ("", rest);
    }
    let crlf = text.find("\r\n\r\n").map(|i| (i, i + 4));
    let lf = text.find("\n\n").map(|i| (i, i + 2));
    match (crlf, lf) {
        (Some(a), Some(b)) => {
            let (end, start) = if a.0 <= b.0 { a } else { b };
            (&text[..end], &text[start..])
        }
        (Some((end, start)), None) | (None, Some((end, start))) => (&text[..end], &text[start..]),
        (None, None) => (text, ""),
    }
}

/// Header fields, unfolded, names lower-cased, in order. Lines that are no field are skipped.
fn header_fields(block: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut open = false; // whether a continuation line may extend the last field
    for line in block.lines() {
        if line.starts_with([' ', '\t']) {
            if open && let Some((_, value)) = out.last_mut() {
                let more = line.trim();
                if !more.is_empty() {
                    if !value.is_empty() {
                        value.push(' ');
                    }
                    value.push_str(more);
                }
            }
            continue;
        }
        open = false;
        if let Some((name, value)) = line.split_once(':') {
            let name = name.trim_end();
            if !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic()) {
                out.push((name.to_ascii_lowercase(), value.trim().to_string()));
                open = true;
            }
        }
    }
    out
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// `type/subtype; name=value; name="quoted value"`: the lower-cased type and the parameters
/// (names lower-cased).
fn content_type(value: &str) -> (String, HashMap<String, String>) {
    let mut pieces = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut escaped = false;
    for c in value.chars() {
        match c {
            _ if escaped => {
                current.push(c);
                escaped = false;
            }
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ';' if !quoted => pieces.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    pieces.push(current);
    let mut pieces = pieces.into_iter();
    let mime = pieces
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let params = pieces
        .filter_map(|p| {
            let (name, value) = p.split_once('=')?;
            Some((name.trim().to_ascii_lowercase(), value.trim().to_string()))
        })
        .collect();
    (mime, params)
}

/// The body parts of a multipart body. An unterminated last part is kept; `None` without any
/// delimiter line.
fn multipart<'a>(body: &'a str, boundary: &str) -> Option<Vec<&'a str>> {
    let delimiter = format!("--{boundary}");
    let close = format!("--{boundary}--");
    let mut parts = Vec::new();
    let mut start: Option<usize> = None;
    let mut pos = 0;
    for line in body.split_inclusive('\n') {
        let bare = line.trim_end();
        let is_close = bare == close;
        if bare == delimiter || is_close {
            if let Some(s) = start {
                let part = &body[s..pos];
                let part = part
                    .strip_suffix("\r\n")
                    .or_else(|| part.strip_suffix('\n'))
                    .unwrap_or(part);
                parts.push(part);
            }
            if is_close {
                start = None;
                break;
            }
            start = Some(pos + line.len());
        }
        pos += line.len();
    }
    if let Some(s) = start {
        parts.push(&body[s.min(body.len())..]);
    }
    (!parts.is_empty()).then_some(parts)
}

/// The body decoded from its transfer encoding (base64, quoted-printable; others as they are).
fn decode(body: &str, encoding: Option<&str>) -> String {
    match encoding.map(|e| e.trim().to_ascii_lowercase()).as_deref() {
        Some("base64") => {
            let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
            match base64::engine::general_purpose::STANDARD.decode(compact.as_bytes()) {
                Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                Err(_) => body.to_string(),
            }
        }
        Some("quoted-printable") => quoted_printable(body),
        _ => body.to_string(),
    }
}

fn quoted_printable(body: &str) -> String {
    let bytes = body.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' {
            let rest = &bytes[i + 1..];
            if rest.starts_with(b"\r\n") {
                i += 3;
                continue;
            }
            if rest.starts_with(b"\n") {
                i += 2;
                continue;
            }
            if rest.len() >= 2
                && let Ok(hex) = std::str::from_utf8(&rest[..2])
                && let Ok(b) = u8::from_str_radix(hex, 16)
            {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The per-recipient blocks of a `message/delivery-status` body: groups of header fields
/// separated by empty lines; a group with `Final-Recipient`, `Action` and `Status` is one.
fn recipient_blocks(body: &str) -> Vec<RecipientStatus> {
    let mut blocks: Vec<String> = vec![String::new()];
    for line in body.lines() {
        if line.trim().is_empty() {
            if !blocks.last().is_some_and(String::is_empty) {
                blocks.push(String::new());
            }
        } else if let Some(block) = blocks.last_mut() {
            block.push_str(line);
            block.push('\n');
        }
    }
    blocks
        .iter()
        .filter_map(|block| {
            let fields = header_fields(block);
            let final_recipient = address_of(field(&fields, "final-recipient")?);
            let action = field(&fields, "action")?.trim().to_ascii_lowercase();
            let status = field(&fields, "status")?
                .split_whitespace()
                .next()?
                .to_string();
            if final_recipient.is_empty() || !valid_status(&status) {
                return None;
            }
            Some(RecipientStatus {
                final_recipient,
                original_recipient: field(&fields, "original-recipient")
                    .map(address_of)
                    .filter(|a| !a.is_empty()),
                action,
                status,
                diagnostic: field(&fields, "diagnostic-code")
                    .map(|d| {
                        d.split_once(';')
                            .map_or(d, |(_, text)| text)
                            .trim()
                            .to_string()
                    })
                    .filter(|d| !d.is_empty()),
            })
        })
        .collect()
}

/// `rfc822; addr` (or `rfc822;<addr>`) → `addr`.
fn address_of(value: &str) -> String {
    let address = value.split_once(';').map_or(value, |(_, a)| a).trim();
    address
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim()
        .to_string()
}

/// `class.subject.detail` (RFC 3463): class 2, 4 or 5, then one to three digits twice.
fn valid_status(status: &str) -> bool {
    let parts: Vec<&str> = status.split('.').collect();
    parts.len() == 3
        && matches!(parts[0], "2" | "4" | "5")
        && parts[1..]
            .iter()
            .all(|p| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()))
}

/// `<id@domain>` → `id@domain`.
fn message_id(value: &str) -> String {
    let value = value.trim();
    match (value.find('<'), value.find('>')) {
        (Some(open), Some(close)) if open < close => value[open + 1..close].trim().to_string(),
        _ => value.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DELIVERY: &str = "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";

    /// A bounce as Postfix writes it (bounce(8), `notify_classes` default).
    fn postfix_dsn(message_id: &str, recipient: &str, status: &str, action: &str) -> String {
        format!(
            "Return-Path: <>\r\n\
X-Original-To: bounces@koogallery.example\r\n\
Delivered-To: bounces@koogallery.example\r\n\
Received: by mx.koogallery.example (Postfix)\r\n\
\tid 4ZfXyz1234; Tue,  3 Mar 2026 10:00:05 +0800 (CST)\r\n\
Date: Tue,  3 Mar 2026 10:00:05 +0800 (CST)\r\n\
From: MAILER-DAEMON@mx.koogallery.example (Mail Delivery System)\r\n\
Subject: Undelivered Mail Returned to Sender\r\n\
To: bounces@koogallery.example\r\n\
Auto-Submitted: auto-replied\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=delivery-status;\r\n\
\tboundary=\"4ZfXyz1234.1772503205/mx.koogallery.example\"\r\n\
Content-Transfer-Encoding: 8bit\r\n\
Message-Id: <20260303020005.4ZfXyz1234@mx.koogallery.example>\r\n\
\r\n\
This is a MIME-encapsulated message.\r\n\
\r\n\
--4ZfXyz1234.1772503205/mx.koogallery.example\r\n\
Content-Description: Notification\r\n\
Content-Type: text/plain; charset=us-ascii\r\n\
\r\n\
This is the mail system at host mx.koogallery.example.\r\n\
\r\n\
I'm sorry to have to inform you that your message could not\r\n\
be delivered to one or more recipients.\r\n\
\r\n\
<{recipient}>: host mail.acme.example[203.0.113.5] said: 550 5.1.1\r\n\
\x20   <{recipient}>: Recipient address rejected: User unknown\r\n\
\r\n\
--4ZfXyz1234.1772503205/mx.koogallery.example\r\n\
Content-Description: Delivery report\r\n\
Content-Type: message/delivery-status\r\n\
\r\n\
Reporting-MTA: dns; mx.koogallery.example\r\n\
X-Postfix-Queue-ID: 4ZfXyz1234\r\n\
X-Postfix-Sender: rfc822; bounces@koogallery.example\r\n\
Arrival-Date: Tue,  3 Mar 2026 10:00:04 +0800 (CST)\r\n\
\r\n\
Final-Recipient: rfc822; {recipient}\r\n\
Original-Recipient: rfc822;{recipient}\r\n\
Action: {action}\r\n\
Status: {status}\r\n\
Remote-MTA: dns; mail.acme.example\r\n\
Diagnostic-Code: smtp; 550 5.1.1 <{recipient}>: Recipient address\r\n\
\x20   rejected: User unknown\r\n\
\r\n\
--4ZfXyz1234.1772503205/mx.koogallery.example\r\n\
Content-Description: Undelivered Message Headers\r\n\
Content-Type: text/rfc822-headers\r\n\
\r\n\
Return-Path: <bounces@koogallery.example>\r\n\
From: KooGallery <no-reply@koogallery.example>\r\n\
To: {recipient}\r\n\
Subject: Verify the contact address of ACME on KooGallery\r\n\
Message-ID: <{message_id}>\r\n\
Auto-Submitted: auto-generated\r\n\
\r\n\
--4ZfXyz1234.1772503205/mx.koogallery.example--\r\n"
        )
    }

    fn sent(recipient: &str) -> delivery::Model {
        let now = store::now();
        delivery::Model {
            delivery_id: DELIVERY.into(),
            event_id: "e1".into(),
            channel: channel::EMAIL.into(),
            account_id: "acct-1".into(),
            event_type: "CONTACT_VERIFICATION".into(),
            subject: String::new(),
            request_sha256: String::new(),
            recipient: recipient.into(),
            recipient_masked: mask::email(recipient),
            template: "contact_verification/v1".into(),
            locale: "en".into(),
            title: String::new(),
            body: String::new(),
            status: status::SENT.into(),
            attempts: 1,
            last_error: None,
            last_error_code: None,
            next_attempt_time: now,
            lease_until: None,
            lease_owner: None,
            sent_time: Some(now),
            provider_message_id: None,
            create_time: now,
            update_time: now,
        }
    }

    fn our_id() -> String {
        format!("{DELIVERY}@koogallery.example")
    }

    #[test]
    fn a_postfix_bounce_matches_its_sent_delivery() {
        let raw = postfix_dsn(&our_id(), "li.wei@acme.example", "5.1.1", "failed");
        let dsn = parse(raw.as_bytes()).unwrap();
        assert_eq!(dsn.original_message_id.as_deref(), Some(our_id().as_str()));
        assert_eq!(dsn.recipients.len(), 1);
        let r = &dsn.recipients[0];
        assert_eq!(r.final_recipient, "li.wei@acme.example");
        assert_eq!(r.original_recipient.as_deref(), Some("li.wei@acme.example"));
        assert_eq!(r.action, "failed");
        assert_eq!(r.status, "5.1.1");
        assert_eq!(
            r.diagnostic.as_deref(),
            Some("550 5.1.1 <li.wei@acme.example>: Recipient address rejected: User unknown")
        );
        assert_eq!(
            verdict(&dsn),
            Verdict::Candidate {
                delivery_id: DELIVERY.into()
            }
        );
        // the recipient is compared case-insensitively
        let bounce = match_delivery(&dsn, &sent("Li.Wei@ACME.example")).unwrap();
        assert_eq!(bounce.delivery_id, DELIVERY);
        assert_eq!(
            bounce.error,
            "bounce: 5.1.1 550 5.1.1 <L***@ACME.example>: Recipient address rejected: User unknown"
        );
        assert!(!bounce.error.to_lowercase().contains("li.wei"));
        // LF line ends (as some MDAs store it) parse the same
        let lf = raw.replace("\r\n", "\n");
        assert_eq!(parse(lf.as_bytes()).unwrap(), dsn);
    }

    #[test]
    fn only_a_sent_email_matches() {
        let raw = postfix_dsn(&our_id(), "li.wei@acme.example", "5.1.1", "failed");
        let dsn = parse(raw.as_bytes()).unwrap();
        let mut bounced = sent("li.wei@acme.example");
        bounced.status = status::BOUNCED.into();
        assert_eq!(match_delivery(&dsn, &bounced), None);
        let mut failed = sent("li.wei@acme.example");
        failed.status = status::FAILED.into();
        assert_eq!(match_delivery(&dsn, &failed), None);
        let mut sms = sent("li.wei@acme.example");
        sms.channel = channel::SMS.into();
        assert_eq!(match_delivery(&dsn, &sms), None);
    }

    #[test]
    fn malformed_messages_are_refused() {
        assert!(parse(b"").is_err());
        assert!(parse(b"Subject: hello\r\n\r\nnot a report\r\n").is_err());
        let good = postfix_dsn(&our_id(), "li.wei@acme.example", "5.1.1", "failed");
        // another report type
        let other = good.replace(
            "report-type=delivery-status",
            "report-type=disposition-notification",
        );
        assert_eq!(
            parse(other.as_bytes()),
            Err(Malformed("report-type is not delivery-status"))
        );
        // no delivery-status part
        let no_status = good.replace("message/delivery-status", "text/plain");
        assert!(parse(no_status.as_bytes()).is_err());
        // no boundary
        let no_boundary = good.replace(
            ";\r\n\tboundary=\"4ZfXyz1234.1772503205/mx.koogallery.example\"",
            "",
        );
        assert!(parse(no_boundary.as_bytes()).is_err());
        // a recipient block without a valid status
        let bad_status = good.replace("Status: 5.1.1", "Status: bogus");
        assert_eq!(
            parse(bad_status.as_bytes()),
            Err(Malformed("no per-recipient block"))
        );
        // binary garbage
        assert!(parse(&[0xff, 0xfe, 0x00, 0x41]).is_err());
    }

    #[test]
    fn a_foreign_or_missing_message_id_does_not_match() {
        for id in [
            "20260303.abc@elsewhere.example".to_string(),
            "no-at-sign".to_string(),
            format!("{DELIVERY} OR 1=1@koogallery.example"),
            format!("@{DELIVERY}"),
        ] {
            let raw = postfix_dsn(&id, "li.wei@acme.example", "5.1.1", "failed");
            assert_eq!(
                verdict(&parse(raw.as_bytes()).unwrap()),
                Verdict::Unmatched,
                "{id}"
            );
        }
        // a well-formed id is looked up (and an unknown one then matches nothing)
        let raw = postfix_dsn(
            "0193ffff-0000-7000-8000-000000000000@koogallery.example",
            "li.wei@acme.example",
            "5.1.1",
            "failed",
        );
        assert_eq!(
            verdict(&parse(raw.as_bytes()).unwrap()),
            Verdict::Candidate {
                delivery_id: "0193ffff-0000-7000-8000-000000000000".into()
            }
        );
        let raw = postfix_dsn(&our_id(), "li.wei@acme.example", "5.1.1", "failed")
            .replace(&format!("Message-ID: <{}>\r\n", our_id()), "");
        let dsn = parse(raw.as_bytes()).unwrap();
        assert_eq!(dsn.original_message_id, None);
        assert_eq!(verdict(&dsn), Verdict::Unmatched);
    }

    #[test]
    fn another_recipient_does_not_match() {
        let raw = postfix_dsn(&our_id(), "someone.else@acme.example", "5.1.1", "failed");
        let dsn = parse(raw.as_bytes()).unwrap();
        assert!(matches!(verdict(&dsn), Verdict::Candidate { .. }));
        assert_eq!(match_delivery(&dsn, &sent("li.wei@acme.example")), None);
    }

    #[test]
    fn delays_and_4xx_statuses_are_temporary() {
        let delayed = postfix_dsn(&our_id(), "li.wei@acme.example", "4.4.1", "delayed");
        let dsn = parse(delayed.as_bytes()).unwrap();
        assert_eq!(verdict(&dsn), Verdict::Temporary);
        assert_eq!(match_delivery(&dsn, &sent("li.wei@acme.example")), None);
        let failed_4xx = postfix_dsn(&our_id(), "li.wei@acme.example", "4.2.2", "failed");
        assert_eq!(
            verdict(&parse(failed_4xx.as_bytes()).unwrap()),
            Verdict::Temporary
        );
        let delivered = postfix_dsn(&our_id(), "li.wei@acme.example", "2.0.0", "delivered");
        assert_eq!(
            verdict(&parse(delivered.as_bytes()).unwrap()),
            Verdict::Unmatched
        );
    }

    #[test]
    fn the_original_may_be_a_whole_message_in_another_encoding() {
        let raw = postfix_dsn(&our_id(), "li.wei@acme.example", "5.2.1", "failed").replace(
            "Content-Type: text/rfc822-headers\r\n",
            "Content-Type: message/rfc822\r\n",
        );
        let dsn = parse(raw.as_bytes()).unwrap();
        assert_eq!(dsn.original_message_id.as_deref(), Some(our_id().as_str()));
        let qp = quoted_printable("Message-ID: =3Cabc@x.example=3E=\r\n tail");
        assert_eq!(qp, "Message-ID: <abc@x.example> tail");
        let encoded = base64::engine::general_purpose::STANDARD
            .encode(format!("Message-ID: <{}>\r\n", our_id()));
        let raw = postfix_dsn(&our_id(), "li.wei@acme.example", "5.1.1", "failed").replace(
            &format!(
                "Content-Type: text/rfc822-headers\r\n\r\nReturn-Path: <bounces@koogallery.example>\r\n\
From: KooGallery <no-reply@koogallery.example>\r\nTo: li.wei@acme.example\r\n\
Subject: Verify the contact address of ACME on KooGallery\r\nMessage-ID: <{}>\r\n\
Auto-Submitted: auto-generated\r\n",
                our_id()
            ),
            &format!(
                "Content-Type: text/rfc822-headers\r\nContent-Transfer-Encoding: base64\r\n\r\n{encoded}\r\n"
            ),
        );
        assert!(raw.contains("base64"));
        let dsn = parse(raw.as_bytes()).unwrap();
        assert_eq!(dsn.original_message_id.as_deref(), Some(our_id().as_str()));
    }

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
    fn content_types_and_seen_names() {
        let (mime, params) =
            content_type("Multipart/Report; Report-Type=delivery-status; boundary=\"a;b\\\"c\"");
        assert_eq!(mime, "multipart/report");
        assert_eq!(params["report-type"], "delivery-status");
        assert_eq!(params["boundary"], "a;b\"c");
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
