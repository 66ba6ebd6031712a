//! GetNotification and ListNotifications.
//!
//! Listing is newest first: delivery ids are UUIDv7 (time-ordered), so the order is
//! `delivery_id DESC` and a page token is the last id of the page plus a hash of the filters it
//! belongs to (a token used with other filters is INVALID_PAGE_TOKEN).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use kg_proto::notification::{
    Channel, DeliveryStatus, ListNotificationsRequest, ListNotificationsResponse, Notification,
};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use sha2::{Digest, Sha256};

use crate::error::NotificationError;
use crate::send::{valid_id, valid_subject};
use crate::service::Notification as Service;
use crate::store::delivery;
use crate::view;

pub const DEFAULT_PAGE_SIZE: u64 = 50;
pub const MAX_PAGE_SIZE: u64 = 500;

pub fn parse_name(name: &str) -> Result<String, NotificationError> {
    let id = name.strip_prefix("notifications/").unwrap_or_default();
    match uuid::Uuid::parse_str(id) {
        Ok(uuid) if id.len() == 36 => Ok(uuid.to_string()),
        _ => Err(NotificationError::field(
            "name",
            "NAME_INVALID",
            "expected notifications/{notification} with a UUID id",
        )),
    }
}

fn filter_hash(req: &ListNotificationsRequest, statuses: &[&str]) -> String {
    let mut statuses = statuses.to_vec();
    statuses.sort_unstable();
    statuses.dedup();
    let canonical = serde_json::json!([
        req.account_id,
        req.event_id,
        req.channel,
        statuses,
        req.subject
    ]);
    hex::encode(&Sha256::digest(canonical.to_string().as_bytes())[..8])
}

fn encode_token(after: &str, filters: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{after}.{filters}"))
}

fn decode_token(token: &str, filters: &str) -> Result<String, NotificationError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| NotificationError::InvalidPageToken)?;
    let text = String::from_utf8(bytes).map_err(|_| NotificationError::InvalidPageToken)?;
    let (after, hash) = text
        .split_once('.')
        .ok_or(NotificationError::InvalidPageToken)?;
    if hash != filters || uuid::Uuid::parse_str(after).is_err() || after.len() != 36 {
        return Err(NotificationError::InvalidPageToken);
    }
    Ok(after.to_string())
}

impl Service {
    /// One delivery. `applicant`: the caller's account when the caller is an applicant, who
    /// may read only its own account's deliveries (PERMISSION_DENIED otherwise, whether or not
    /// the delivery exists).
    pub async fn notification_by_name(
        &self,
        name: &str,
        applicant: Option<&str>,
    ) -> Result<Notification, NotificationError> {
        let id = parse_name(name)?;
        let row = delivery::Entity::find_by_id(id).one(&self.db).await?;
        if let Some(account) = applicant
            && row.as_ref().is_none_or(|r| r.account_id != account)
        {
            return Err(NotificationError::PermissionDenied(
                "applicants read only their own account's notifications",
            ));
        }
        let row = row.ok_or_else(|| NotificationError::NotificationNotFound(name.to_string()))?;
        Ok(view::notification(&row))
    }

    /// Lists deliveries; an applicant's list is restricted to its own account.
    pub async fn list(
        &self,
        mut req: ListNotificationsRequest,
        applicant: Option<&str>,
    ) -> Result<ListNotificationsResponse, NotificationError> {
        if let Some(account) = applicant {
            if req.account_id.is_empty() {
                req.account_id = account.to_string();
            } else if req.account_id != account {
                return Err(NotificationError::PermissionDenied(
                    "applicants read only their own account's notifications",
                ));
            }
        }
        let mut violations = Vec::new();
        let mut bad = |field: &str, reason: &str, message: &str| {
            violations.push(kg_runtime::error::FieldViolation {
                field: field.to_string(),
                reason: reason.to_string(),
                description: message.to_string(),
            });
        };
        if req.page_size < 0 {
            bad(
                "page_size",
                "PAGE_SIZE_INVALID",
                "page_size must not be negative",
            );
        }
        if !req.account_id.is_empty() && !valid_id(&req.account_id) {
            bad(
                "account_id",
                "ACCOUNT_ID_INVALID",
                "1-64 characters of A-Z, a-z, 0-9, '-' and '_'",
            );
        }
        if !req.event_id.is_empty() && !valid_id(&req.event_id) {
            bad(
                "event_id",
                "EVENT_ID_INVALID",
                "1-64 characters of A-Z, a-z, 0-9, '-' and '_'",
            );
        }
        if !valid_subject(&req.subject) {
            bad(
                "subject",
                "SUBJECT_INVALID",
                "a resource name: at most 256 characters, no white space",
            );
        }
        let channel = match Channel::try_from(req.channel) {
            Ok(Channel::Unspecified) => None,
            Ok(c) => view::channel_name(c),
            Err(_) => {
                bad("channel", "CHANNEL_INVALID", "unknown channel");
                None
            }
        };
        let mut statuses = Vec::new();
        for s in &req.statuses {
            match DeliveryStatus::try_from(*s)
                .ok()
                .and_then(view::status_name)
            {
                Some(name) => statuses.push(name),
                None => {
                    bad("statuses", "STATUS_INVALID", "unknown delivery status");
                    break;
                }
            }
        }
        if !violations.is_empty() {
            return Err(NotificationError::Invalid(violations));
        }
        let size = match req.page_size as u64 {
            0 => DEFAULT_PAGE_SIZE,
            n => n.min(MAX_PAGE_SIZE),
        };
        let filters = filter_hash(&req, &statuses);

        let mut query = delivery::Entity::find().order_by_desc(delivery::Column::DeliveryId);
        if !req.page_token.is_empty() {
            let after = decode_token(&req.page_token, &filters)?;
            query = query.filter(delivery::Column::DeliveryId.lt(after));
        }
        if !req.account_id.is_empty() {
            query = query.filter(delivery::Column::AccountId.eq(req.account_id.clone()));
        }
        if !req.event_id.is_empty() {
            query = query.filter(delivery::Column::EventId.eq(req.event_id.clone()));
        }
        if let Some(channel) = channel {
            query = query.filter(delivery::Column::Channel.eq(channel));
        }
        if !statuses.is_empty() {
            query = query.filter(delivery::Column::Status.is_in(statuses));
        }
        if !req.subject.is_empty() {
            query = query.filter(delivery::Column::Subject.eq(req.subject.clone()));
        }
        let mut rows = query.limit(size + 1).all(&self.db).await?;
        let next_page_token = if rows.len() as u64 > size {
            rows.truncate(size as usize);
            rows.last()
                .map(|r| encode_token(&r.delivery_id, &filters))
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(ListNotificationsResponse {
            notifications: rows.iter().map(view::notification).collect(),
            next_page_token,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let id = "0193a1b2-0000-7000-8000-000000000001";
        assert_eq!(parse_name(&format!("notifications/{id}")).unwrap(), id);
        for bad in [
            "",
            "notifications/",
            "notifications/x",
            id,
            "applications/0193a1b2-0000-7000-8000-000000000001",
            "notifications/0193a1b200007000800000000000000 1",
        ] {
            assert!(parse_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tokens_are_bound_to_their_filters() {
        let id = "0193a1b2-0000-7000-8000-000000000001";
        let token = encode_token(id, "abc");
        assert_eq!(decode_token(&token, "abc").unwrap(), id);
        assert!(decode_token(&token, "abd").is_err());
        assert!(decode_token("%%%", "abc").is_err());
        assert!(decode_token(&URL_SAFE_NO_PAD.encode("x.abc"), "abc").is_err());
    }
}
