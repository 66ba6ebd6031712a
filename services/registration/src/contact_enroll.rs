//! Enrolment: the addresses of a submitted profile get a code unless already verified, and the
//! code is mailed through the outbox, in the transaction of the submission itself (a submission
//! that rolls back mails nothing; one that commits always mails).
//!
//! It writes to the outbox, so it sits above contacts/ (which the event log reads) and below
//! the handlers that enrol: submit, resubmit, the modification requests and contact_handlers.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use kg_proto::notification::{NotificationEventType, SendNotificationRequest};
use kg_runtime::outbox::{NewEvent, append, append_all};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, Set};

use crate::contacts::{Settings, State, code_hash, contact_name, new_code, query};
use crate::migrations::OUTBOX;
use crate::outbox::{NOTIFICATION, frozen_payload};
use crate::store::contact;

/// The outbox event type of a verification mail.
pub const VERIFICATION: &str = "CONTACT_VERIFICATION";

/// Enrols `addresses` (normalized) of `account_id`: new ones as PENDING, and every one not
/// verified yet gets a fresh code, mailed to it. Call it inside the change's transaction, before
/// `outbox::announce` (which must stay the last write). One read for all the addresses, one
/// insert for the new ones and one for all the mails: a submission's two addresses cost three
/// statements, not six.
pub async fn enroll<C: ConnectionTrait>(
    db: &C,
    settings: &Settings,
    account_id: &str,
    company_name: &str,
    addresses: &[String],
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    if addresses.is_empty() {
        return Ok(());
    }
    let existing: HashMap<String, contact::Model> = query::by_addresses(db, account_id, addresses)
        .await?
        .into_iter()
        .map(|c| (c.email.clone(), c))
        .collect();
    let expire = now + settings.code_ttl;
    let mut new_rows = Vec::new();
    let mut mails = Vec::new();
    for email in addresses {
        let code = new_code();
        let contact_id = match existing.get(email) {
            Some(c) if c.state == State::Verified.as_str() => continue,
            // PENDING stays PENDING and UNDELIVERABLE stays so until the new code is entered.
            Some(c) => {
                reissue(db, &c.contact_id, &code, now, expire).await?;
                c.contact_id.clone()
            }
            None => {
                let contact_id = uuid::Uuid::now_v7().to_string();
                new_rows.push(contact::ActiveModel {
                    contact_id: Set(contact_id.clone()),
                    account_id: Set(account_id.to_string()),
                    email: Set(email.clone()),
                    state: Set(State::Pending.as_str().to_string()),
                    code_sha256: Set(Some(code_hash(&contact_id, &code))),
                    code_expire_time: Set(Some(expire)),
                    code_sent_time: Set(Some(now)),
                    code_attempts: Set(0),
                    verify_time: Set(None),
                    failure_count: Set(0),
                    last_failure: Set(None),
                    last_failure_source: Set(None),
                    last_failure_time: Set(None),
                    create_time: Set(now),
                    update_time: Set(now),
                });
                contact_id
            }
        };
        mails.push(verification_mail(
            account_id,
            company_name,
            &contact_id,
            email,
            &code,
            expire,
        ));
    }
    if !new_rows.is_empty() {
        contact::Entity::insert_many(new_rows)
            .exec_without_returning(db)
            .await?;
    }
    let events: Vec<NewEvent<'_>> = mails
        .iter()
        .map(|(name, payload)| mail_event(account_id, name, payload.clone()))
        .collect();
    append_all(db, OUTBOX, &events).await?;
    Ok(())
}

/// Stores a new code for a contact that is not verified (the old one stops working).
pub async fn reissue<C: ConnectionTrait>(
    db: &C,
    contact_id: &str,
    code: &str,
    now: DateTime<Utc>,
    expire: DateTime<Utc>,
) -> Result<u64, DbErr> {
    let updated = contact::Entity::update_many()
        .col_expr(
            contact::Column::CodeSha256,
            Expr::value(Some(code_hash(contact_id, code))),
        )
        .col_expr(contact::Column::CodeExpireTime, Expr::value(Some(expire)))
        .col_expr(contact::Column::CodeSentTime, Expr::value(Some(now)))
        .col_expr(contact::Column::CodeAttempts, Expr::value(0))
        .col_expr(contact::Column::UpdateTime, Expr::value(now))
        .filter(contact::Column::ContactId.eq(contact_id))
        .filter(contact::Column::State.ne(State::Verified.as_str()))
        .exec(db)
        .await?;
    Ok(updated.rows_affected)
}

/// Appends the verification mail to the outbox, frozen: the code is in the request, and the
/// relay sends exactly these bytes however often it retries. (Only the code's hash is kept in
/// the contact row; the outbox row holds the mail until it is delivered, as the mail server
/// will.)
pub async fn mail_code<C: ConnectionTrait>(
    db: &C,
    account_id: &str,
    company_name: &str,
    contact_id: &str,
    email: &str,
    code: &str,
    expire: DateTime<Utc>,
) -> Result<(), DbErr> {
    let (name, payload) =
        verification_mail(account_id, company_name, contact_id, email, code, expire);
    append(db, OUTBOX, mail_event(account_id, &name, payload)).await?;
    Ok(())
}

/// The outbox event that carries a verification mail to notification.
fn mail_event<'a>(
    account_id: &'a str,
    contact: &'a str,
    payload: serde_json::Value,
) -> NewEvent<'a> {
    NewEvent {
        destination: NOTIFICATION,
        event_type: VERIFICATION,
        account_id,
        subject: contact,
        payload,
    }
}

/// The verification mail of a contact as an outbox payload (frozen), with the contact's name
/// (the event's subject).
fn verification_mail(
    account_id: &str,
    company_name: &str,
    contact_id: &str,
    email: &str,
    code: &str,
    expire: DateTime<Utc>,
) -> (String, serde_json::Value) {
    let name = contact_name(account_id, contact_id);
    let request = SendNotificationRequest {
        event_id: uuid::Uuid::now_v7().to_string(),
        account_id: account_id.to_string(),
        event_type: NotificationEventType::ContactVerification as i32,
        template_parameters: HashMap::from([
            ("company_name".to_string(), company_name.to_string()),
            ("contact_email".to_string(), email.to_string()),
            ("verification_code".to_string(), code.to_string()),
            ("contact".to_string(), name.clone()),
            ("code_expire_time".to_string(), expire.to_rfc3339()),
        ]),
        locale: String::new(),
        subject: name.clone(),
        recipient_email: email.to_string(),
    };
    let payload = frozen_payload(&request);
    (name, payload)
}
