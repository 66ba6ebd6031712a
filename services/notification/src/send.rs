//! SendNotification: validate, deduplicate by event id, look up the account's addresses in
//! identity-check, render the templates, and store one delivery per channel in one
//! transaction. Sending happens later, in the dispatcher.
//!
//! Idempotency: `(event_id, channel)` is unique. A repeat of a stored event returns the stored
//! deliveries (`created = false`) without calling identity-check; concurrent first calls race
//! to the insert, the unique index lets exactly one win, and the others read the winner's rows.
//! The same event id with a different body is refused (IDEMPOTENCY_KEY_REUSED).
//!
//! Recipients: CONTACT_VERIFICATION is mailed to the request's `recipient_email` (the contact
//! address being verified), one EMAIL delivery and no SMS; the account is still looked up (its
//! locale; ACCOUNT_NOT_FOUND as for every event). `recipient_email` is refused for every other
//! event, which goes to the account's bound email, and for the decisions, the exit and the
//! reachability warnings (CONTACT_UNDELIVERABLE, SELLER_UNREACHABLE) also by SMS to the bound
//! mobile number.

use std::collections::BTreeMap;

use kg_proto::identity::{Account, GetAccountRequest};
use kg_proto::notification::{
    NotificationEventType, SendNotificationRequest, SendNotificationResponse,
};
use kg_runtime::error::ServiceError as _;
use kg_runtime::error::{CommonError, DecodedError, Violations};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder,
    TransactionTrait,
};
use sha2::{Digest, Sha256};

use crate::error::NotificationError;
use crate::outcome::code;
use crate::service::Notification;
use crate::store::{self, channel, delivery, status};
use crate::templates::{self, Locale, RenderError};
use crate::view;

pub const MAX_PARAMETERS: usize = 32;
pub const MAX_VALUE_CHARS: usize = 2000;
pub const MAX_KEY_LEN: usize = 64;
pub const MAX_SUBJECT_CHARS: usize = 256;
/// Longest `recipient_email` (RFC 5321: 64 + 1 + 255).
pub const MAX_EMAIL_CHARS: usize = 320;

/// A plausible email address: `local@domain`, at most 320 characters, no white space, control
/// or special characters, a local part of at most 64 characters, a domain of at least two
/// dot-separated labels of letters, digits and `-` (not at either end of a label), and one the
/// SMTP client can put in an envelope.
pub fn plausible_email(address: &str) -> bool {
    if address.is_empty() || address.chars().count() > MAX_EMAIL_CHARS {
        return false;
    }
    let Some((local, domain)) = address.rsplit_once('@') else {
        return false;
    };
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .chars()
            .all(|c| !c.is_control() && !c.is_whitespace() && !"<>()[]\\,;:\"@".contains(c));
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = domain.len() <= 255
        && labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
        && !labels
            .last()
            .is_some_and(|tld| tld.chars().all(|c| c.is_ascii_digit()));
    local_ok && domain_ok && address.parse::<lettre::Address>().is_ok()
}

/// An id of the platform: 1-64 characters of `A-Z a-z 0-9 - _` (a UUID fits).
pub use kg_runtime::idempotency::is_plain_id as valid_id;

/// A resource name such as `applications/0193…`: 1-256 printable characters, no white space.
pub fn valid_subject(subject: &str) -> bool {
    subject.chars().count() <= MAX_SUBJECT_CHARS
        && subject
            .chars()
            .all(|c| !c.is_control() && !c.is_whitespace())
}

/// What a valid request parses into.
struct Parsed {
    event: NotificationEventType,
    params: BTreeMap<String, String>,
    /// The requested locale, when it names a supported one.
    locale: Option<Locale>,
    /// The address to mail instead of the account's (CONTACT_VERIFICATION only).
    recipient_email: Option<String>,
}

fn parse(req: &SendNotificationRequest) -> Result<Parsed, NotificationError> {
    let mut violations = Violations::default();
    if !valid_id(&req.event_id) {
        violations.add("event_id",
            "EVENT_ID_INVALID",
            "event_id is required: 1-64 characters of A-Z, a-z, 0-9, '-' and '_' (the event's UUID)");
    }
    if !valid_id(&req.account_id) {
        violations.add(
            "account_id",
            "ACCOUNT_ID_INVALID",
            "account_id is required: 1-64 characters of A-Z, a-z, 0-9, '-' and '_'",
        );
    }
    let event = match NotificationEventType::try_from(req.event_type) {
        Ok(NotificationEventType::Unspecified) => {
            violations.add(
                "event_type",
                "EVENT_TYPE_REQUIRED",
                "event_type is required",
            );
            None
        }
        Ok(event) => Some(event),
        Err(_) => {
            violations.add(
                "event_type",
                "EVENT_TYPE_INVALID",
                "event_type is not a known NotificationEventType",
            );
            None
        }
    };
    if req.template_parameters.len() > MAX_PARAMETERS {
        violations.add(
            "template_parameters",
            "TEMPLATE_PARAMETERS_TOO_MANY",
            "at most 32 template parameters",
        );
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
                violations.add(
                    "template_parameters",
                    "TEMPLATE_PARAMETER_KEY_INVALID",
                    "keys are lower_snake_case, at most 64 characters",
                );
            } else if value.chars().count() > MAX_VALUE_CHARS {
                violations.add(
                    format!("template_parameters[{key}]"),
                    "TEMPLATE_PARAMETER_TOO_LONG",
                    "at most 2000 characters",
                );
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
        violations.add(
            "locale",
            "LOCALE_INVALID",
            "locale is a language tag such as \"en\" or \"zh-CN\"",
        );
        None
    } else {
        // a tag we do not support falls back to "en"
        Some(Locale::parse(&req.locale).unwrap_or(Locale::En))
    };
    if !valid_subject(&req.subject) {
        violations.add("subject",
            "SUBJECT_INVALID",
            "subject is a resource name such as \"applications/{id}\": at most 256 characters, no white space");
    }
    let recipient_email = req.recipient_email.trim();
    match event {
        Some(NotificationEventType::ContactVerification) if recipient_email.is_empty() => {
            violations.add(
                "recipient_email",
                "RECIPIENT_EMAIL_REQUIRED",
                "recipient_email is required for CONTACT_VERIFICATION: the address to verify",
            );
        }
        Some(NotificationEventType::ContactVerification) if !plausible_email(recipient_email) => {
            violations.add(
                "recipient_email",
                "RECIPIENT_EMAIL_INVALID",
                "recipient_email is not a valid email address (at most 320 characters)",
            );
        }
        Some(NotificationEventType::ContactVerification) | None => {}
        Some(_) if !req.recipient_email.is_empty() => {
            violations.add(
                "recipient_email",
                "RECIPIENT_EMAIL_NOT_ALLOWED",
                "recipient_email is for CONTACT_VERIFICATION only; other events go to the \
                 account's bound addresses",
            );
        }
        Some(_) => {}
    }
    violations.check()?;
    Ok(Parsed {
        event: event.unwrap_or_default(),
        params: req
            .template_parameters
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        locale,
        recipient_email: (event == Some(NotificationEventType::ContactVerification))
            .then(|| recipient_email.to_string()),
    })
}

/// SHA-256 of the request body in a canonical form (map keys sorted).
fn request_hash(req: &SendNotificationRequest, params: &BTreeMap<String, String>) -> String {
    let mut canonical = serde_json::json!([
        req.account_id,
        req.event_type,
        params,
        req.locale,
        req.subject,
    ]);
    // only when given, so the hashes of events stored before the field existed stay the same
    if !req.recipient_email.is_empty()
        && let Some(fields) = canonical.as_array_mut()
    {
        fields.push(req.recipient_email.clone().into());
    }
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
        // CONTACT_VERIFICATION: the address being verified, not the account's
        let email = match &parsed.recipient_email {
            Some(address) => address.clone(),
            None => account.email.trim().to_string(),
        };
        let mut rows = vec![row(
            channel::EMAIL,
            email.clone(),
            kg_runtime::redact::email(&email),
            rendered.subject.clone(),
            rendered.body.clone(),
        )];
        let mobile = account.mobile.trim().to_string();
        if !mobile.is_empty() && sent_by_sms(parsed.event) {
            rows.push(row(
                channel::SMS,
                mobile.clone(),
                kg_runtime::redact::mobile(&mobile),
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
                    None => Err(NotificationError::from(e)),
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
            return Err(CommonError::IdempotencyKeyReused.into());
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
                NotificationError::Common(CommonError::DependencyUnavailable(
                    "identity-check",
                    tonic::Status::internal("GetAccount answered without an account"),
                ))
            }),
            Err(status)
                if status.code() == tonic::Code::NotFound
                    && DecodedError::from_status(&status).reason.as_deref()
                        == Some("ACCOUNT_NOT_FOUND") =>
            {
                Err(NotificationError::AccountNotFound(account_id.to_string()))
            }
            Err(status) => Err(CommonError::DependencyUnavailable("identity-check", status).into()),
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
/// resubmitted) by email only, so a phone buzzes only when something was decided or needs
/// action. The reachability warnings go by SMS too (the email address may be the one that
/// fails); a contact verification goes to the address being verified only.
pub fn sent_by_sms(event: NotificationEventType) -> bool {
    use NotificationEventType as E;
    match event {
        E::ChangesRequested
        | E::ApplicationApproved
        | E::ApplicationRejected
        | E::ModificationApproved
        | E::ModificationRejected
        | E::SellerExited
        | E::ContactUndeliverable
        | E::SellerUnreachable => true,
        E::Unspecified
        | E::ApplicationReceived
        | E::ApplicationResubmitted
        | E::ApplicationWithdrawn
        | E::ModificationReceived
        | E::ContactVerification => false,
    }
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
            recipient_email: String::new(),
        }
    }

    fn verification() -> SendNotificationRequest {
        SendNotificationRequest {
            event_type: NotificationEventType::ContactVerification as i32,
            template_parameters: [
                ("company_name", "ACME"),
                ("contact_email", "s***@acme.example"),
                ("verification_code", "7QK2-PX4M"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .into(),
            subject: "accounts/acct-1/contacts/c1".into(),
            recipient_email: "support@acme.example".into(),
            ..request()
        }
    }

    #[test]
    fn recipient_email_is_required_for_contact_verification_only() {
        assert!(reasons(&verification()).is_empty());
        let parsed = parse(&verification()).unwrap();
        assert_eq!(
            parsed.recipient_email.as_deref(),
            Some("support@acme.example")
        );
        let mut r = verification();
        r.recipient_email = String::new();
        assert_eq!(reasons(&r), ["RECIPIENT_EMAIL_REQUIRED"]);
        r.recipient_email = "  ".into();
        assert_eq!(reasons(&r), ["RECIPIENT_EMAIL_REQUIRED"]);
        for bad in [
            "support",
            "support@",
            "@acme.example",
            "support@acme",
            "sup port@acme.example",
            "support@acme..example",
            "support@-acme.example",
            "a@b@acme.example",
            "<support@acme.example>",
            "support@acme.example\r\nBcc: x@y.example",
            "support@10.0.0.1",
        ] {
            r.recipient_email = bad.into();
            assert_eq!(reasons(&r), ["RECIPIENT_EMAIL_INVALID"], "{bad:?}");
        }
        r.recipient_email = format!("{}@{}.example", "a".repeat(64), "b".repeat(250));
        assert_eq!(reasons(&r), ["RECIPIENT_EMAIL_INVALID"], "too long");
        r.recipient_email = "li.wei+shop@sub.acme-example.com.cn".into();
        assert!(reasons(&r).is_empty());
        for event in [
            NotificationEventType::ApplicationApproved,
            NotificationEventType::ContactUndeliverable,
            NotificationEventType::SellerUnreachable,
        ] {
            let mut r = request();
            r.event_type = event as i32;
            r.recipient_email = "support@acme.example".into();
            assert_eq!(reasons(&r), ["RECIPIENT_EMAIL_NOT_ALLOWED"], "{event:?}");
            assert_eq!(parse(&request()).unwrap().recipient_email, None);
        }
    }

    #[test]
    fn the_hash_covers_the_recipient_email_only_when_given() {
        let h = |r: &SendNotificationRequest| {
            request_hash(r, &r.template_parameters.clone().into_iter().collect())
        };
        let a = verification();
        let mut b = verification();
        b.recipient_email = "other@acme.example".into();
        assert_ne!(h(&a), h(&b));
        // a request without the field hashes as it did before the field existed
        let r = request();
        let params: BTreeMap<String, String> = r.template_parameters.clone().into_iter().collect();
        let before = serde_json::json!([r.account_id, r.event_type, params, r.locale, r.subject]);
        assert_eq!(
            h(&r),
            hex::encode(Sha256::digest(before.to_string().as_bytes()))
        );
    }

    #[test]
    fn sms_goes_to_decisions_exit_and_reachability_warnings() {
        use NotificationEventType as E;
        assert!(sent_by_sms(E::ContactUndeliverable));
        assert!(sent_by_sms(E::SellerUnreachable));
        assert!(sent_by_sms(E::ApplicationApproved));
        assert!(!sent_by_sms(E::ContactVerification));
        assert!(!sent_by_sms(E::ApplicationReceived));
    }

    fn reasons(req: &SendNotificationRequest) -> Vec<String> {
        match parse(req) {
            Err(NotificationError::Common(CommonError::Invalid(v))) => {
                v.into_iter().map(|v| v.reason).collect()
            }
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
