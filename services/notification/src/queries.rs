//! GetNotification and ListNotifications.
//!
//! Listing is newest first: delivery ids are UUIDv7 (time-ordered), so the order is
//! `delivery_id DESC` and a page token holds the last id of its page (`kg_runtime::paging`: bound to
//! the filters it was returned for).

use kg_proto::notification::{
    Channel, DeliveryStatus, ListNotificationsRequest, ListNotificationsResponse, Notification,
};
use kg_runtime::auth::{Caller, Role};
use kg_runtime::error::ServiceError as _;
use kg_runtime::error::{CommonError, Violations};
use kg_runtime::paging::{self, Paging};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::error::NotificationError;
use crate::send::{valid_id, valid_subject};
use crate::service::Notification as Service;
use crate::store::delivery;
use crate::view;

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

impl Service {
    /// One delivery. Applicants read only their own account's deliveries: another account's is
    /// NOT_ACCOUNT_OWNER whether or not it exists.
    pub async fn notification_by_name(
        &self,
        name: &str,
        caller: &Caller,
    ) -> Result<Notification, NotificationError> {
        let id = parse_name(name)?;
        let row = delivery::Entity::find_by_id(id).one(&self.db).await?;
        if caller.role == Role::Applicant
            && row.as_ref().is_none_or(|r| !caller.may_see(&r.account_id))
        {
            return Err(CommonError::NotOwner.into());
        }
        let row = row.ok_or_else(|| NotificationError::NotificationNotFound(name.to_string()))?;
        Ok(view::notification(&row))
    }

    /// Lists deliveries; an applicant's list is restricted to its own account.
    pub async fn list(
        &self,
        mut req: ListNotificationsRequest,
        caller: &Caller,
    ) -> Result<ListNotificationsResponse, NotificationError> {
        caller.scope_account(&mut req.account_id)?;
        let mut violations = Violations::default();
        let size = paging::page_size(req.page_size, &mut violations);
        let id_rule = "1-64 characters of A-Z, a-z, 0-9, '-' and '_'";
        if !req.account_id.is_empty() && !valid_id(&req.account_id) {
            violations.add("account_id", "ACCOUNT_ID_INVALID", id_rule);
        }
        if !req.event_id.is_empty() && !valid_id(&req.event_id) {
            violations.add("event_id", "EVENT_ID_INVALID", id_rule);
        }
        if !valid_subject(&req.subject) {
            violations.add(
                "subject",
                "SUBJECT_INVALID",
                "a resource name: at most 256 characters, no white space",
            );
        }
        let channel = match Channel::try_from(req.channel) {
            Ok(Channel::Unspecified) => None,
            Ok(c) => view::channel_name(c),
            Err(_) => {
                violations.add("channel", "CHANNEL_INVALID", "unknown channel");
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
                    violations.add("statuses", "STATUS_INVALID", "unknown delivery status");
                    break;
                }
            }
        }
        violations.check()?;
        let mut sorted = statuses.clone();
        sorted.sort_unstable();
        sorted.dedup();
        let paging = Paging::new(
            size,
            &(
                &req.account_id,
                &req.event_id,
                req.channel,
                sorted,
                &req.subject,
            ),
        );

        let mut query = delivery::Entity::find().order_by_desc(delivery::Column::DeliveryId);
        if let Some(after) = paging.after::<uuid::Uuid>(&req.page_token)? {
            query = query.filter(delivery::Column::DeliveryId.lt(after.to_string()));
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
        let mut rows = query.limit(paging.fetch_limit()).all(&self.db).await?;
        let next_page_token = paging.finish(&mut rows, |r| r.delivery_id.clone());
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
}
