//! Reports of contact addresses that failed for good, to registration.
//!
//! When an email delivery fails permanently because the SMTP server refused it with a 5xx reply
//! (`dispatcher.rs`), or a bounce report about a sent email arrives in the bounce mailbox
//! (`bounces.rs`), the status change of the delivery and one row of `notification_outbox` are
//! written in ONE transaction, the row only when the conditional status update took effect (so
//! a lost claim or a second replica never reports twice). The relay of `kg_runtime::outbox`
//! delivers each row to registration's `ReportContactUndeliverable`, retrying until it answers;
//! registration deduplicates by `report_id` (`smtp-{delivery_id}` or `dsn-{delivery_id}`).
//!
//! A row: destination [`REGISTRATION`], event_type [`CONTACT_UNDELIVERABLE`], subject
//! `notifications/{delivery_id}`, and the JSON payload [`Report`]: `report_id`, `account_id`,
//! `email` (the full address: registration matches it against the account's contacts),
//! `source` (`SMTP_REFUSAL` or `BOUNCE_REPORT`), `detail` (the scrubbed reply or status and
//! diagnostic, at most 500 characters) and `notification` (`notifications/{delivery_id}`).

use kg_proto::registration::registration_service_client::RegistrationServiceClient;
use kg_proto::registration::{DeliveryFailureSource, ReportContactUndeliverableRequest};
use kg_runtime::client::OutboundChannel;
use kg_runtime::outbox::{Deliver, DeliveryError, NewEvent, OutboxEvent, append};
use sea_orm::{ConnectionTrait, DbErr};
use serde::{Deserialize, Serialize};

use crate::migrations::OUTBOX;

/// The destination of the reports.
pub const REGISTRATION: &str = "registration";
/// The event type of a report.
pub const CONTACT_UNDELIVERABLE: &str = "CONTACT_UNDELIVERABLE";
/// Longest `detail` registration takes.
pub const MAX_DETAIL_CHARS: usize = 500;

/// Where a permanent failure was learnt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The SMTP server refused the message with a 5xx reply.
    SmtpRefusal,
    /// A delivery status notification (RFC 3464) arrived in the bounce mailbox.
    BounceReport,
}

impl Source {
    /// As stored in the payload.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::SmtpRefusal => "SMTP_REFUSAL",
            Source::BounceReport => "BOUNCE_REPORT",
        }
    }

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Source::SmtpRefusal => "smtp_refusal",
            Source::BounceReport => "bounce_report",
        }
    }

    /// The prefix of the report id.
    fn report_prefix(self) -> &'static str {
        match self {
            Source::SmtpRefusal => "smtp-",
            Source::BounceReport => "dsn-",
        }
    }

    fn parse(s: &str) -> Option<Source> {
        match s {
            "SMTP_REFUSAL" => Some(Source::SmtpRefusal),
            "BOUNCE_REPORT" => Some(Source::BounceReport),
            _ => None,
        }
    }

    fn proto(self) -> DeliveryFailureSource {
        match self {
            Source::SmtpRefusal => DeliveryFailureSource::SmtpRefusal,
            Source::BounceReport => DeliveryFailureSource::BounceReport,
        }
    }
}

/// The payload of a report row (JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub report_id: String,
    pub account_id: String,
    pub email: String,
    pub source: String,
    pub detail: String,
    pub notification: String,
}

impl Report {
    /// The report of a failed email delivery; `detail` is already scrubbed of the recipient.
    pub fn new(
        source: Source,
        delivery_id: &str,
        account_id: &str,
        email: &str,
        detail: &str,
    ) -> Report {
        Report {
            report_id: format!("{}{delivery_id}", source.report_prefix()),
            account_id: account_id.to_string(),
            email: email.to_string(),
            source: source.as_str().to_string(),
            detail: detail.chars().take(MAX_DETAIL_CHARS).collect(),
            notification: format!("notifications/{delivery_id}"),
        }
    }

    fn request(&self) -> Result<ReportContactUndeliverableRequest, DeliveryError> {
        let source = Source::parse(&self.source).ok_or_else(|| {
            DeliveryError::refused(format!("unknown report source {:?}", self.source))
        })?;
        Ok(ReportContactUndeliverableRequest {
            report_id: self.report_id.clone(),
            account_id: self.account_id.clone(),
            email: self.email.clone(),
            source: source.proto() as i32,
            detail: self.detail.chars().take(MAX_DETAIL_CHARS).collect(),
            notification: self.notification.clone(),
        })
    }
}

/// Writes `report` in the caller's transaction.
pub async fn append_report<C: ConnectionTrait>(db: &C, report: &Report) -> Result<String, DbErr> {
    let payload =
        serde_json::to_value(report).map_err(|e| DbErr::Custom(format!("report payload: {e}")))?;
    append(
        db,
        OUTBOX,
        NewEvent {
            destination: REGISTRATION,
            event_type: CONTACT_UNDELIVERABLE,
            account_id: &report.account_id,
            subject: &report.notification,
            payload,
        },
    )
    .await
}

/// Delivers the rows of `notification_outbox` to registration.
pub struct Deliverer {
    pub registration: RegistrationServiceClient<OutboundChannel>,
}

#[tonic::async_trait]
impl Deliver for Deliverer {
    async fn deliver(&self, event: &OutboxEvent) -> Result<(), DeliveryError> {
        match (event.destination.as_str(), event.event_type.as_str()) {
            (REGISTRATION, CONTACT_UNDELIVERABLE) => {
                let report: Report = serde_json::from_value(event.payload.clone())
                    .map_err(|e| DeliveryError::refused(format!("malformed report: {e}")))?;
                let reply = self
                    .registration
                    .clone()
                    .report_contact_undeliverable(report.request()?)
                    .await?
                    .into_inner();
                tracing::info!(
                    report = %report.report_id,
                    notification = %report.notification,
                    recorded = reply.recorded,
                    "undeliverable contact reported to registration"
                );
                Ok(())
            }
            (destination, kind) => {
                // an unknown pair would hold back its subject for ever; acknowledge and log it
                tracing::error!(destination, kind, event = %event.event_id, "no delivery rule; dropping");
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_carry_their_source_and_a_bounded_detail() {
        let r = Report::new(
            Source::BounceReport,
            "0193-d",
            "acct-1",
            "li.wei@example.com",
            &"x".repeat(600),
        );
        assert_eq!(r.report_id, "dsn-0193-d");
        assert_eq!(r.notification, "notifications/0193-d");
        assert_eq!(r.detail.chars().count(), 500);
        let json = serde_json::to_value(&r).unwrap();
        for key in [
            "report_id",
            "account_id",
            "email",
            "source",
            "detail",
            "notification",
        ] {
            assert!(json.get(key).is_some(), "{key}");
        }
        assert_eq!(json["source"], "BOUNCE_REPORT");
        let req = r.request().unwrap();
        assert_eq!(req.source, DeliveryFailureSource::BounceReport as i32);
        let smtp = Report::new(Source::SmtpRefusal, "d", "a", "e@x.org", "550 5.1.1 no");
        assert_eq!(smtp.report_id, "smtp-d");
        assert_eq!(
            smtp.request().unwrap().source,
            DeliveryFailureSource::SmtpRefusal as i32
        );
    }
}
