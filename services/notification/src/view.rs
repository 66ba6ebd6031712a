//! Stored rows as wire messages, and the names of enums as stored. The full recipient never
//! leaves here: only `recipient_masked` is put on the wire.

use chrono::{DateTime, Utc};
use kg_proto::notification::{Channel, DeliveryStatus, Notification, NotificationEventType};

use crate::store::{channel, delivery, status};

pub fn timestamp(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    }
}

pub fn channel_name(c: Channel) -> Option<&'static str> {
    match c {
        Channel::Email => Some(channel::EMAIL),
        Channel::Sms => Some(channel::SMS),
        Channel::Unspecified => None,
    }
}

fn channel_of(s: &str) -> Channel {
    match s {
        channel::EMAIL => Channel::Email,
        channel::SMS => Channel::Sms,
        _ => Channel::Unspecified,
    }
}

pub fn status_name(s: DeliveryStatus) -> Option<&'static str> {
    match s {
        DeliveryStatus::Pending => Some(status::PENDING),
        DeliveryStatus::Sent => Some(status::SENT),
        DeliveryStatus::Retrying => Some(status::RETRYING),
        DeliveryStatus::Failed => Some(status::FAILED),
        DeliveryStatus::Bounced => Some(status::BOUNCED),
        DeliveryStatus::Unspecified => None,
    }
}

fn status_of(s: &str) -> DeliveryStatus {
    match s {
        status::PENDING => DeliveryStatus::Pending,
        status::SENT => DeliveryStatus::Sent,
        status::RETRYING => DeliveryStatus::Retrying,
        status::FAILED => DeliveryStatus::Failed,
        status::BOUNCED => DeliveryStatus::Bounced,
        _ => DeliveryStatus::Unspecified,
    }
}

/// `NOTIFICATION_EVENT_TYPE_APPLICATION_APPROVED` → `APPLICATION_APPROVED`, as stored.
pub fn event_type_name(e: NotificationEventType) -> &'static str {
    e.as_str_name()
        .strip_prefix("NOTIFICATION_EVENT_TYPE_")
        .unwrap_or("UNSPECIFIED")
}

fn event_type_of(s: &str) -> NotificationEventType {
    NotificationEventType::from_str_name(&format!("NOTIFICATION_EVENT_TYPE_{s}"))
        .unwrap_or_default()
}

pub fn notification(row: &delivery::Model) -> Notification {
    let is = |s: &str| row.status == s;
    Notification {
        name: format!("notifications/{}", row.delivery_id),
        event_id: row.event_id.clone(),
        account_id: row.account_id.clone(),
        event_type: event_type_of(&row.event_type) as i32,
        channel: channel_of(&row.channel) as i32,
        recipient: row.recipient_masked.clone(),
        template: row.template.clone(),
        locale: row.locale.clone(),
        status: status_of(&row.status) as i32,
        attempts: row.attempts,
        last_error: row.last_error.clone().unwrap_or_default(),
        last_error_code: row.last_error_code.clone().unwrap_or_default(),
        next_attempt_time: is(status::RETRYING).then(|| timestamp(row.next_attempt_time)),
        sent_time: if is(status::SENT) || is(status::BOUNCED) {
            row.sent_time.map(timestamp)
        } else {
            None
        },
        create_time: Some(timestamp(row.create_time)),
        update_time: Some(timestamp(row.update_time)),
        subject: row.subject.clone(),
        provider_message_id: row.provider_message_id.clone().unwrap_or_default(),
    }
}
