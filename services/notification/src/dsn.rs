//! Delivery status notifications (RFC 3464): parsing a report and matching it to the delivery
//! it is about. Pure (no I/O): the bounce mailbox (`bounces.rs`) reads the reports from the
//! Maildir, looks the delivery up and records the outcome; the rules a report must follow to
//! match are described there.

use std::collections::HashMap;

use base64::Engine as _;

use crate::store::{channel, delivery, status};

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
    let error = kg_runtime::redact::hide(&text, &delivery.recipient, &delivery.recipient_masked)
        .chars()
        .take(1000)
        .collect();
    Some(Bounce {
        delivery_id: delivery.delivery_id.clone(),
        error,
    })
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

/// Test data shared with the bounce mailbox's tests (`bounces.rs`).
#[cfg(test)]
pub(crate) mod fixtures {
    use crate::store::{self, channel, delivery, status};

    pub(crate) const DELIVERY: &str = "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";

    /// A bounce as Postfix writes it (bounce(8), `notify_classes` default).
    pub(crate) fn postfix_dsn(
        message_id: &str,
        recipient: &str,
        status: &str,
        action: &str,
    ) -> String {
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

    pub(crate) fn sent(recipient: &str) -> delivery::Model {
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
            recipient_masked: kg_runtime::redact::email(recipient),
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

    pub(crate) fn our_id() -> String {
        format!("{DELIVERY}@koogallery.example")
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;

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

    #[test]
    fn content_types() {
        let (mime, params) =
            content_type("Multipart/Report; Report-Type=delivery-status; boundary=\"a;b\\\"c\"");
        assert_eq!(mime, "multipart/report");
        assert_eq!(params["report-type"], "delivery-status");
        assert_eq!(params["boundary"], "a;b\"c");
    }
}
