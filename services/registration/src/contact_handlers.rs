//! ListContacts, VerifyContact, ResendContactVerification and ReportContactUndeliverable: the
//! handlers of the contact resources. What they stand on (states, names, codes, queries, the
//! wire view, the counters) is contacts/; enrolment and the mailed codes are contact_enroll.rs.

use kg_proto::registration::{
    ListContactsRequest, ListContactsResponse, ReportContactUndeliverableRequest,
    ReportContactUndeliverableResponse, ResendContactVerificationRequest,
    ResendContactVerificationResponse, VerifyContactRequest, VerifyContactResponse,
};
use kg_runtime::auth::Caller;
use kg_runtime::error::ServiceError as _;
use kg_runtime::error::{CommonError, FieldViolation};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set, TransactionTrait};

use crate::app::Registration;
use crate::contact_enroll::{mail_code, reissue};
use crate::contacts::metrics::SourceLabels;
use crate::contacts::{
    Source, State, code_hash, contact_name, counting_since, new_code, normalize,
    parse_contact_name, query, view,
};
use crate::error::RegistrationError;
use crate::events::EventKind;
use crate::outbox;
use crate::store::{contact, contact_failure, reachability};

const MAX_DETAIL_CHARS: usize = 500;
const MAX_EMAIL_LEN: usize = 320;

/// The caller's own account for applicants (defaulted), the named one for everybody else.
fn account_for(caller: &Caller, requested: &str) -> Result<String, RegistrationError> {
    let mut account = requested.to_string();
    caller.scope_account(&mut account)?;
    crate::view::validate_account_id(&account)
        .map_err(|m| RegistrationError::field("account_id", "ACCOUNT_ID_INVALID", m))?;
    Ok(account)
}

/// The contact `name` names, when the caller may act on it (another account's is NOT_FOUND).
fn owned_name<'a>(caller: &Caller, name: &'a str) -> Result<(&'a str, &'a str), RegistrationError> {
    let (account, id) = parse_contact_name(name)?;
    if !caller.may_see(account) {
        return Err(RegistrationError::ContactNotFound(name.to_string()));
    }
    Ok((account, id))
}

impl Registration {
    pub(crate) async fn list_contacts(
        &self,
        caller: &Caller,
        req: ListContactsRequest,
    ) -> Result<ListContactsResponse, RegistrationError> {
        let account = account_for(caller, &req.account_id)?;
        let rows = query::of_account(&self.db, &account).await?;
        let since = query::unreachable_since(&self.db, &account).await?;
        Ok(ListContactsResponse {
            contacts: rows.iter().map(view::contact).collect(),
            unreachable: since.is_some(),
            unreachable_time: since.map(crate::view::timestamp),
        })
    }

    pub(crate) async fn verify_contact(
        &self,
        caller: &Caller,
        req: VerifyContactRequest,
    ) -> Result<VerifyContactResponse, RegistrationError> {
        let (account, id) = owned_name(caller, &req.name)?;
        let code = req.code.trim();
        if code.is_empty() || code.chars().count() > 32 {
            return Err(RegistrationError::field(
                "code",
                "CODE_INVALID",
                "code is required: the 8 characters from the verification mail",
            ));
        }
        let now = kg_runtime::db::now();
        let txn = self.db.begin().await?;
        let reach = query::lock_account(&txn, account).await?;
        let row = query::by_id(&txn, account, id)
            .await?
            .ok_or_else(|| RegistrationError::ContactNotFound(req.name.clone()))?;
        // A repeat after success (a retry, a double click) answers the verified contact.
        if row.state == State::Verified.as_str() {
            return Ok(VerifyContactResponse {
                contact: Some(view::contact(&row)),
            });
        }
        let usable = row.code_sha256.is_some()
            && row.code_expire_time.is_some_and(|t| t > now)
            && row.code_attempts < self.contacts.max_attempts;
        if !usable {
            return Err(RegistrationError::VerificationCodeExpired);
        }
        if row.code_sha256.as_deref() != Some(code_hash(id, code).as_str()) {
            let attempts = row.code_attempts + 1;
            contact::Entity::update_many()
                .col_expr(contact::Column::CodeAttempts, Expr::value(attempts))
                .filter(contact::Column::ContactId.eq(id))
                .exec(&txn)
                .await?;
            txn.commit().await?;
            return Err(RegistrationError::VerificationCodeInvalid {
                attempts_left: (self.contacts.max_attempts - attempts).max(0),
            });
        }
        let mut active: contact::ActiveModel = row.into();
        active.state = Set(State::Verified.as_str().to_string());
        active.verify_time = Set(Some(now));
        active.code_sha256 = Set(None);
        active.code_expire_time = Set(None);
        active.code_attempts = Set(0);
        active.update_time = Set(now);
        let verified = active.update(&txn).await?;
        // A verified address proves the account reachable now: earlier failures stop counting.
        let mut reach: reachability::ActiveModel = reach.into();
        reach.unreachable_time = Set(None);
        reach.clear_time = Set(Some(now));
        reach.update(&txn).await?;
        let name = contact_name(account, id);
        outbox::announce(
            &txn,
            EventKind::ContactVerified,
            account,
            &name,
            &caller.subject,
            &[],
        )
        .await?;
        txn.commit().await?;
        self.committed();
        if let Some(m) = &self.contact_metrics {
            m.verified.inc();
        }
        Ok(VerifyContactResponse {
            contact: Some(view::contact(&verified)),
        })
    }

    pub(crate) async fn resend_contact_verification(
        &self,
        caller: &Caller,
        req: ResendContactVerificationRequest,
    ) -> Result<ResendContactVerificationResponse, RegistrationError> {
        let (account, id) = owned_name(caller, &req.name)?;
        let now = kg_runtime::db::now();
        let txn = self.db.begin().await?;
        query::lock_account(&txn, account).await?;
        let row = query::by_id(&txn, account, id)
            .await?
            .ok_or_else(|| RegistrationError::ContactNotFound(req.name.clone()))?;
        if row.state == State::Verified.as_str() {
            return Ok(ResendContactVerificationResponse {
                contact: Some(view::contact(&row)),
            });
        }
        if let Some(sent) = row.code_sent_time {
            let next = sent + self.contacts.resend_interval;
            if next > now {
                return Err(RegistrationError::ResendTooSoon {
                    retry_after_seconds: (next - now).num_seconds().max(1),
                });
            }
        }
        let code = new_code();
        let expire = now + self.contacts.code_ttl;
        reissue(&txn, id, &code, now, expire).await?;
        let company = query::company_name_of(&txn, account).await?;
        mail_code(&txn, account, &company, id, &row.email, &code, expire).await?;
        let row = query::by_id(&txn, account, id)
            .await?
            .ok_or_else(|| RegistrationError::ContactNotFound(req.name.clone()))?;
        txn.commit().await?;
        self.committed();
        Ok(ResendContactVerificationResponse {
            contact: Some(view::contact(&row)),
        })
    }

    pub(crate) async fn report_contact_undeliverable(
        &self,
        caller: &Caller,
        req: ReportContactUndeliverableRequest,
    ) -> Result<ReportContactUndeliverableResponse, RegistrationError> {
        let source = parse_report(&req)?;
        let email = normalize(&req.email);
        let now = kg_runtime::db::now();
        let txn = self.db.begin().await?;
        let reach = query::lock_account(&txn, &req.account_id).await?;
        let found = query::by_address(&txn, &req.account_id, &email).await?;
        let (Some(row), false) = (found, query::failure_seen(&txn, &req.report_id).await?) else {
            // An address the account never gave, or a report already recorded: nothing changes.
            let current = query::by_address(&txn, &req.account_id, &email).await?;
            return Ok(ReportContactUndeliverableResponse {
                contact: current.as_ref().map(view::contact),
                recorded: false,
            });
        };
        contact_failure::ActiveModel {
            report_id: Set(req.report_id.clone()),
            account_id: Set(req.account_id.clone()),
            contact_id: Set(row.contact_id.clone()),
            source: Set(source.as_str().to_string()),
            failure_time: Set(now),
        }
        .insert(&txn)
        .await?;
        let became = contact::Entity::update_many()
            .col_expr(
                contact::Column::State,
                Expr::value(State::Undeliverable.as_str()),
            )
            .filter(contact::Column::ContactId.eq(row.contact_id.clone()))
            .filter(contact::Column::State.ne(State::Undeliverable.as_str()))
            .exec(&txn)
            .await?
            .rows_affected
            == 1;
        contact::Entity::update_many()
            .col_expr(
                contact::Column::FailureCount,
                sea_orm::sea_query::ExprTrait::add(Expr::col(contact::Column::FailureCount), 1),
            )
            .col_expr(
                contact::Column::LastFailure,
                Expr::value(Some(req.detail.clone())),
            )
            .col_expr(
                contact::Column::LastFailureSource,
                Expr::value(Some(source.as_str())),
            )
            .col_expr(contact::Column::LastFailureTime, Expr::value(Some(now)))
            .col_expr(contact::Column::UpdateTime, Expr::value(now))
            .filter(contact::Column::ContactId.eq(row.contact_id.clone()))
            .exec(&txn)
            .await?;
        let since = counting_since(now, self.contacts.failure_window, reach.clear_time);
        let failures = query::failures_since(&txn, &req.account_id, since).await?;
        let marked = reach.unreachable_time.is_none()
            && failures >= self.contacts.unreachable_failures.max(1);
        if marked {
            let mut reach: reachability::ActiveModel = reach.into();
            reach.unreachable_time = Set(Some(now));
            reach.update(&txn).await?;
        }
        let name = contact_name(&req.account_id, &row.contact_id);
        if became {
            outbox::announce(
                &txn,
                EventKind::ContactUndeliverable,
                &req.account_id,
                &name,
                &caller.subject,
                &[outbox::NOTIFICATION],
            )
            .await?;
        }
        if marked {
            outbox::announce(
                &txn,
                EventKind::SellerUnreachable,
                &req.account_id,
                &name,
                &caller.subject,
                &[outbox::NOTIFICATION],
            )
            .await?;
        }
        let after = query::by_id(&txn, &req.account_id, &row.contact_id).await?;
        txn.commit().await?;
        self.committed();
        tracing::warn!(
            contact = %name,
            email = %kg_runtime::redact::email(&email),
            source = source.as_str(),
            became_undeliverable = became,
            account_unreachable = marked,
            "permanent delivery failure recorded"
        );
        if let Some(m) = &self.contact_metrics {
            if became {
                m.undeliverable
                    .get_or_create(&SourceLabels {
                        source: source.as_str().to_lowercase(),
                    })
                    .inc();
            }
            if marked {
                m.unreachable.inc();
            }
        }
        Ok(ReportContactUndeliverableResponse {
            contact: after.as_ref().map(view::contact),
            recorded: true,
        })
    }
}

fn parse_report(req: &ReportContactUndeliverableRequest) -> Result<Source, RegistrationError> {
    let mut violations = Vec::new();
    let mut bad = |field: &str, reason: &str, description: &str| {
        violations.push(FieldViolation {
            field: field.to_string(),
            reason: reason.to_string(),
            description: description.to_string(),
        })
    };
    if crate::view::validate_account_id(&req.report_id).is_err() {
        bad(
            "report_id",
            "REPORT_ID_INVALID",
            "report_id is required: 1-64 characters of A-Z, a-z, 0-9, '-' and '_'",
        );
    }
    if let Err(m) = crate::view::validate_account_id(&req.account_id) {
        bad("account_id", "ACCOUNT_ID_INVALID", &m);
    }
    let email = req.email.trim();
    if email.is_empty() || email.len() > MAX_EMAIL_LEN || !email.contains('@') {
        bad(
            "email",
            "EMAIL_INVALID",
            "email is required: the address that failed, at most 320 characters",
        );
    }
    let source = Source::from_wire(req.source);
    if source.is_none() {
        bad(
            "source",
            "SOURCE_INVALID",
            "source is required: SMTP_REFUSAL or BOUNCE_REPORT",
        );
    }
    if req.detail.chars().count() > MAX_DETAIL_CHARS {
        bad(
            "detail",
            "DETAIL_TOO_LONG",
            "detail is at most 500 characters",
        );
    }
    match source {
        Some(source) if violations.is_empty() => Ok(source),
        _ => Err(CommonError::Invalid(violations).into()),
    }
}
