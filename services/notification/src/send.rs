//! SendNotification: validate, deduplicate by event id, look up the account's addresses in
//! identity-check, render the templates, and store one delivery per channel in one
//! transaction. Sending happens later, in the dispatcher.
//!
//! Idempotency: `(event_id, channel)` is unique. A repeat of a stored event returns the stored
//! deliveries (`created = false`) without calling identity-check; concurrent first calls race
//! to the insert, the unique index lets exactly one win, and the others read the winner's rows.
//! The same event id with a different body is refused (IDEMPOTENCY_KEY_REUSED).

use std::collections::BTreeMap;

use kg_proto::identity::{Account, GetAccountRequest};
use kg_proto::notification::{
    NotificationEventType, SendNotificationRequest, SendNotificationResponse,
};
use kg_runtime::error::{DecodedError, FieldViolation};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder,
    TransactionTrait,
};
use sha2::{Digest, Sha256};

use crate::dispatcher::code;
use crate::error::NotificationError;
use crate::service::Notification;
use crate::store::{self, channel, delivery, status};
use crate::templates::{self, Locale, RenderError};
use crate::{mask, view};

pub const MAX_PARAMETERS: usize = 32;
pub const MAX_VALUE_CHARS: usize = 2000;
pub const MAX_KEY_LEN: usize = 64;
pub const MAX_SUBJECT_CHARS: usize = 256;

/// An id of the platform: 1-64 characters of `A-Z a-z 0-9 - _` (a UUID fits).
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A resource name such as `applications/0193…`: 1-256 printable characters, no white space.
pub fn valid_subject(subject: &str) -> bool {
    subject.chars().count() <= MAX_SUBJECT_CHARS
        && subject
            .chars()
            .all(|c| !c.is_control() && !c.is_whitespace())
}

fn violation(field: impl Into<String>, reason: &str, description: &str) -> FieldViolation {
    FieldViolation {
        field: field.into(),
        reason: reason.to_string(),
        description: description.to_string(),
    }
}

/// What a valid request parses into.
struct Parsed {
    event: NotificationEventType,
    params: BTreeMap<String, String>,
    /// The requested locale, when it names a supported one.
    locale: Option<Locale>,
}

fn parse(req: &SendNotificationRequest) -> Result<Parsed, NotificationError> {
    let mut violations = Vec::new();
    if !valid_id(&req.event_id) {
        violations.push(violation(
            "event_id",
            "EVENT_ID_INVALID",
            "event_id is required: 1-64 characters of A-Z, a-z, 0-9, '-' and '_' (the event's UUID)",
        ));
    }
    if !valid_id(&req.account_id) {
        violations.push(violation(
            "account_id",
            "ACCOUNT_ID_INVALID",
            "account_id is required: 1-64 characters of A-Z, a-z, 0-9, '-' and '_'",
        ));
    }
    let event = match NotificationEventType::try_from(req.event_type) {
        Ok(NotificationEventType::Unspecified) => {
            violations.push(violation(
                "event_type",
                "EVENT_TYPE_REQUIRED",
                "event_type is required",
            ));
            None
        }
        Ok(event) => Some(event),
        Err(_) => {
            violations.push(violation(
                "event_type",
                "EVENT_TYPE_INVALID",
                "event_type is not a known NotificationEventType",
            ));
            None
        }
    };
    if req.template_parameters.len() > MAX_PARAMETERS {
        violations.push(violation(
            "template_parameters",
            "TEMPLATE_PARAMETERS_TOO_MANY",
            "at most 32 template parameters",
        ));
    } else {
        let mut keys: Vec<&String> = req.template_parameters.keys().collect();
        keys.sort();
        for key in keys {
            let value = &req.template_parameters[key];
            let key_ok = !key.is_empty()
                && key.len() <= MAX_KEY_LEN
                && key.starts_with(|c: char| c.is_ascii_lowercase())
                && key
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !key_ok {
                // the key itself is not echoed: it may be anything
                violations.push(violation(
                    "template_parameters",
                    "TEMPLATE_PARAMETER_KEY_INVALID",
                    "keys are lower_snake_case, at most 64 characters",
                ));
            } else if value.chars().count() > MAX_VALUE_CHARS {
                violations.push(violation(
                    format!("template_parameters[{key}]"),
                    "TEMPLATE_PARAMETER_TOO_LONG",
                    "at most 2000 characters",
                ));
            }
        }
    }
    let locale = if req.locale.is_empty() {
        None
    } else if req.locale.len() > 35
        || !req
            .locale
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        violations.push(violation(
            "locale",
            "LOCALE_INVALID",
            "locale is a language tag such as \"en\" or \"zh-CN\"",
        ));
        None
    } else {
        // a tag we do not support falls back to "en"
        Some(Locale::parse(&req.locale).unwrap_or(Locale::En))
    };
    if !valid_subject(&req.subject) {
        violations.push(violation(
            "subject",
            "SUBJECT_INVALID",
            "subject is a resource name such as \"applications/{id}\": at most 256 characters, no white space",
        ));
    }
    if !violations.is_empty() {
        return Err(NotificationError::Invalid(violations));
    }
    Ok(Parsed {
        event: event.unwrap_or_default(),
        params: req
            .template_parameters
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        locale,
    })
}

/// SHA-256 of the request body in a canonical form (map keys sorted).
fn request_hash(req: &SendNotificationRequest, params: &BTreeMap<String, String>) -> String {
    let canonical = serde_json::json!([
        req.account_id,
        req.event_type,
        params,
        req.locale,
        req.subject,
    ]);
    hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
}

fn render_error(e: RenderError) -> NotificationError {
    match e {
        RenderError::Missing(name) => NotificationError::TemplateParameterMissing(name),
        RenderError::Invalid(name, why) => NotificationError::field(
            format!("template_parameters[{name}]"),
            "TEMPLATE_PARAMETER_INVALID",
            why,
        ),
        RenderError::NoTemplate => NotificationError::field(
            "event_type",
            "EVENT_TYPE_INVALID",
            "no template for this event type",
        ),
    }
}

impl Notification {
    pub async fn send(
        &self,
        req: SendNotificationRequest,
    ) -> Result<SendNotificationResponse, NotificationError> {
        let parsed = parse(&req)?;
        // parameters are checked before anything else happens (the locale does not matter)
        templates::render(parsed.event, Locale::En, &parsed.params, self.tz)
            .map_err(render_error)?;
        let hash = request_hash(&req, &parsed.params);

        if let Some(existing) = self.existing(&req.event_id, &hash).await? {
            return Ok(response(&existing, false));
        }

        let account = self.account(&req.account_id).await?;
        let locale = parsed
            .locale
            .or_else(|| Locale::parse(&account.locale))
            .unwrap_or(Locale::En);
        let rendered = templates::render(parsed.event, locale, &parsed.params, self.tz)
            .map_err(render_error)?;

        let now = store::now();
        let row =
            |channel: &str, recipient: String, masked: String, title: String, body: String| {
                let missing = recipient.is_empty();
                delivery::Model {
                    delivery_id: uuid::Uuid::now_v7().to_string(),
                    event_id: req.event_id.clone(),
                    channel: channel.to_string(),
                    account_id: req.account_id.clone(),
                    event_type: view::event_type_name(parsed.event).to_string(),
                    subject: req.subject.clone(),
                    request_sha256: hash.clone(),
                    recipient,
                    recipient_masked: masked,
                    template: rendered.template.to_string(),
                    locale: locale.as_str().to_string(),
                    title,
                    body,
                    // no address: nothing to try, the delivery fails at once
                    status: if missing {
                        status::FAILED
                    } else {
                        status::PENDING
                    }
                    .to_string(),
                    attempts: 0,
                    last_error: missing
                        .then(|| "the account has no address for this channel".into()),
                    last_error_code: missing.then(|| code::RECIPIENT_MISSING.to_string()),
                    next_attempt_time: now,
                    lease_until: None,
                    lease_owner: None,
                    sent_time: None,
                    provider_message_id: None,
                    create_time: now,
                    update_time: now,
                }
            };
        let email = account.email.trim().to_string();
        let mut rows = vec![row(
            channel::EMAIL,
            email.clone(),
            mask::email(&email),
            rendered.subject.clone(),
            rendered.body.clone(),
        )];
        let mobile = account.mobile.trim().to_string();
        if !mobile.is_empty() && sent_by_sms(parsed.event) {
            rows.push(row(
                channel::SMS,
                mobile.clone(),
                mask::mobile(&mobile),
                String::new(),
                rendered.sms.clone(),
            ));
        }

        match self.insert(&rows).await {
            Ok(()) => {}
            Err(e) if kg_runtime::db::is_unique_violation(&e) => {
                // a concurrent call with the same event id won the race
                return match self.existing(&req.event_id, &hash).await? {
                    Some(existing) => Ok(response(&existing, false)),
                    None => Err(NotificationError::Database(e)),
                };
            }
            Err(e) => return Err(e.into()),
        }
        tracing::info!(
            event_id = %req.event_id,
            account_id = %req.account_id,
            event_type = view::event_type_name(parsed.event),
            locale = locale.as_str(),
            deliveries = rows.len(),
            "deliveries stored"
        );
        self.wake.notify_one();
        Ok(response(&rows, true))
    }

    async fn insert(&self, rows: &[delivery::Model]) -> Result<(), sea_orm::DbErr> {
        let txn = self.db.begin().await?;
        for row in rows {
            row.clone().into_active_model().insert(&txn).await?;
        }
        txn.commit().await
    }

    /// The deliveries stored for this event; IDEMPOTENCY_KEY_REUSED when they were stored for a
    /// different request body.
    async fn existing(
        &self,
        event_id: &str,
        hash: &str,
    ) -> Result<Option<Vec<delivery::Model>>, NotificationError> {
        let rows = delivery::Entity::find()
            .filter(delivery::Column::EventId.eq(event_id))
            .order_by_asc(delivery::Column::Channel)
            .all(&self.db)
            .await?;
        if rows.is_empty() {
            return Ok(None);
        }
        if rows.iter().any(|r| r.request_sha256 != hash) {
            return Err(NotificationError::IdempotencyKeyReused);
        }
        Ok(Some(rows))
    }

    async fn account(&self, account_id: &str) -> Result<Account, NotificationError> {
        let reply = self
            .identity
            .clone()
            .get_account(GetAccountRequest {
                name: format!("accounts/{account_id}"),
            })
            .await;
        match reply {
            Ok(reply) => reply.into_inner().account.ok_or_else(|| {
                NotificationError::DependencyUnavailable(
                    "identity-check",
                    tonic::Status::internal("GetAccount answered without an account"),
                )
            }),
            Err(status)
                if status.code() == tonic::Code::NotFound
                    && DecodedError::from_status(&status).reason.as_deref()
                        == Some("ACCOUNT_NOT_FOUND") =>
            {
                Err(NotificationError::AccountNotFound(account_id.to_string()))
            }
            Err(status) => Err(NotificationError::DependencyUnavailable(
                "identity-check",
                status,
            )),
        }
    }
}

fn response(rows: &[delivery::Model], created: bool) -> SendNotificationResponse {
    SendNotificationResponse {
        notifications: rows.iter().map(view::notification).collect(),
        created,
    }
}

/// Outcomes reach the applicant by email and SMS; acknowledgements (received, withdrawn,
/// resubmitted) by email only, so a phone buzzes only when something was decided.
fn sent_by_sms(event: NotificationEventType) -> bool {
    use NotificationEventType as E;
    matches!(
        event,
        E::ChangesRequested
            | E::ApplicationApproved
            | E::ApplicationRejected
            | E::ModificationApproved
            | E::ModificationRejected
            | E::SellerExited
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> SendNotificationRequest {
        SendNotificationRequest {
            event_id: "0193a1b2-0000-7000-8000-000000000001".into(),
            account_id: "acct-1".into(),
            event_type: NotificationEventType::ApplicationApproved as i32,
            template_parameters: [("company_name".to_string(), "ACME".to_string())].into(),
            locale: String::new(),
            subject: "applications/0193".into(),
        }
    }

    fn reasons(req: &SendNotificationRequest) -> Vec<String> {
        match parse(req) {
            Err(NotificationError::Invalid(v)) => v.into_iter().map(|v| v.reason).collect(),
            Err(other) => panic!("{other}"),
            Ok(_) => Vec::new(),
        }
    }

    #[test]
    fn hostile_requests_are_refused_field_by_field() {
        assert!(reasons(&request()).is_empty());
        let mut r = request();
        r.event_id = "x".repeat(65);
        r.account_id = String::new();
        r.event_type = 999;
        r.subject = "applications/1 2".into();
        r.locale = "en\r\nBcc: x".into();
        assert_eq!(
            reasons(&r),
            [
                "EVENT_ID_INVALID",
                "ACCOUNT_ID_INVALID",
                "EVENT_TYPE_INVALID",
                "LOCALE_INVALID",
                "SUBJECT_INVALID"
            ]
        );
        let mut r = request();
        r.template_parameters = (0..33).map(|i| (format!("k{i}"), "v".into())).collect();
        assert_eq!(reasons(&r), ["TEMPLATE_PARAMETERS_TOO_MANY"]);
        let mut r = request();
        r.template_parameters.insert("Bad-Key".into(), "v".into());
        r.template_parameters
            .insert("comment".into(), "x".repeat(2001));
        assert_eq!(
            reasons(&r),
            [
                "TEMPLATE_PARAMETER_KEY_INVALID",
                "TEMPLATE_PARAMETER_TOO_LONG"
            ]
        );
    }

    #[test]
    fn the_hash_ignores_map_order_but_not_values() {
        let a = request();
        let mut b = request();
        b.template_parameters
            .insert("seller".into(), "sellers/1".into());
        let mut c = request();
        c.template_parameters
            .insert("seller".into(), "sellers/1".into());
        let h = |r: &SendNotificationRequest| {
            request_hash(r, &r.template_parameters.clone().into_iter().collect())
        };
        assert_ne!(h(&a), h(&b));
        assert_eq!(h(&b), h(&c));
    }
}
