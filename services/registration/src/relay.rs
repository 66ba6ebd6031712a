//! Delivers registration's outbox events: new, resubmitted and withdrawn applications and new
//! and withdrawn modification requests to review, every applicant- and seller-facing change to
//! notification.
//!
//! A notification's request is built from the subject as it is at the first attempt (the review
//! deadline, say, appears once review has answered) and frozen into the outbox row before it is
//! sent: every attempt, on any replica and after any crash, sends the same bytes, so the
//! receiver's duplicate check never mistakes a redelivery for a reused key.

use std::collections::HashMap;

use base64::Engine;
use kg_proto::common::{CheckEvidence, CompanyEntity, ReviewFeedback, SellerProfile};
use kg_proto::notification::notification_service_client::NotificationServiceClient;
use kg_proto::notification::{NotificationEventType, SendNotificationRequest};
use kg_proto::review::review_service_client::ReviewServiceClient;
use kg_proto::review::{
    CancelReviewTaskRequest, CreateReviewTaskRequest, ResumeReviewTaskRequest, SubjectKind,
};
use kg_runtime::client::OutboundChannel;
use kg_runtime::outbox::{Deliver, DeliveryError, OutboxEvent};
use kg_runtime::stored::{self, StoredCorrupt};
use prost::Message;
use sea_orm::sea_query::{Alias, Expr, Query};
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter};

use crate::migrations::OUTBOX;
use crate::outbox::{FROZEN_REQUEST, NOTIFICATION, REVIEW};
use crate::store::{application, modification, seller, state};
use crate::view;
use crate::view::modification::proposed_profile;
use crate::view::seller::live_profile;

pub struct Deliverer {
    pub db: DatabaseConnection,
    pub review: ReviewServiceClient<OutboundChannel>,
    pub notification: NotificationServiceClient<OutboundChannel>,
}

#[async_trait::async_trait]
impl Deliver for Deliverer {
    async fn deliver(&self, event: &OutboxEvent) -> Result<(), DeliveryError> {
        if event.destination == NOTIFICATION {
            return self.deliver_notification(event).await;
        }
        if event.subject.contains("/modificationRequests/") {
            return self.deliver_modification(event).await;
        }
        let app = self.application(&event.subject).await?;
        match (event.destination.as_str(), event.event_type.as_str()) {
            (REVIEW, "APPLICATION_SUBMITTED") => self.create_task(event, &app).await,
            (REVIEW, "APPLICATION_RESUBMITTED") => self.resume_task(event, &app).await,
            (REVIEW, "APPLICATION_WITHDRAWN") => {
                self.review
                    .clone()
                    .cancel_review_task(CancelReviewTaskRequest {
                        event_id: event.event_id.clone(),
                        subject: event.subject.clone(),
                        reason: "the applicant withdrew the application".into(),
                    })
                    .await?;
                Ok(())
            }
            (destination, kind) => {
                // Unknown pairs would block their subject forever; acknowledge and log them.
                tracing::error!(destination, kind, event = %event.event_id, "no delivery rule; dropping");
                Ok(())
            }
        }
    }
}

impl Deliverer {
    async fn application(&self, name: &str) -> Result<application::Model, DeliveryError> {
        let id = name
            .strip_prefix("applications/")
            .unwrap_or(name)
            .to_string();
        application::Entity::find_by_id(id)
            .one(&self.db)
            .await
            .map_err(|e| DeliveryError::retry(format!("database: {e}")))?
            .ok_or_else(|| DeliveryError::refused(format!("{name} vanished")))
    }

    async fn create_task(
        &self,
        event: &OutboxEvent,
        app: &application::Model,
    ) -> Result<(), DeliveryError> {
        let (mut profile, evidence) = application_materials(app)?;
        profile.logo = app.logo.clone().unwrap_or_default();
        let reply = self
            .review
            .clone()
            .create_review_task(CreateReviewTaskRequest {
                event_id: event.event_id.clone(),
                subject: event.subject.clone(),
                subject_kind: SubjectKind::Application as i32,
                account_id: app.account_id.clone(),
                company_name: app.company_name.clone(),
                entity: Some(CompanyEntity {
                    country: app.country.clone(),
                    registration_number: app.registration_number.clone(),
                }),
                submit_time: Some(view::timestamp(app.create_time)),
                evidence,
                profile: Some(profile),
                previous_company_name: String::new(),
            })
            .await?
            .into_inner();
        // The task exists: the application is now in review, with the task's deadline.
        self.in_review(app, reply.review_task.unwrap_or_default())
            .await
    }

    /// The resubmitted application's task resumes (QUEUED again, the clock running with the
    /// working time left) with the corrected profile and the evidence of the new checks.
    async fn resume_task(
        &self,
        event: &OutboxEvent,
        app: &application::Model,
    ) -> Result<(), DeliveryError> {
        let (mut profile, evidence) = application_materials(app)?;
        profile.logo = app.logo.clone().unwrap_or_default();
        let reply = self
            .review
            .clone()
            .resume_review_task(ResumeReviewTaskRequest {
                event_id: event.event_id.clone(),
                subject: event.subject.clone(),
                // The event's time: a retry resumes from the same instant (same body, same key).
                resubmit_time: Some(view::timestamp(event.create_time)),
                evidence,
                profile: Some(profile),
            })
            .await?
            .into_inner();
        self.in_review(app, reply.review_task.unwrap_or_default())
            .await
    }

    /// SUBMITTED → IN_REVIEW with the task's name and deadline, once review confirmed the task.
    async fn in_review(
        &self,
        app: &application::Model,
        task: kg_proto::review::ReviewTask,
    ) -> Result<(), DeliveryError> {
        // Conditional, so a decision that raced ahead of this reply is never overwritten.
        let deadline = task
            .deadline
            .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32));
        application::Entity::update_many()
            .col_expr(application::Column::State, Expr::value(state::IN_REVIEW))
            .col_expr(
                application::Column::ReviewTask,
                Expr::value(Some(task.name)),
            )
            .col_expr(application::Column::ReviewDeadline, Expr::value(deadline))
            .col_expr(
                application::Column::UpdateTime,
                Expr::value(kg_runtime::db::now()),
            )
            .filter(application::Column::ApplicationId.eq(app.application_id.clone()))
            .filter(application::Column::State.eq(state::SUBMITTED))
            .exec(&self.db)
            .await
            .map_err(|e| DeliveryError::retry(format!("database: {e}")))?;
        Ok(())
    }

    /// Sends the frozen request, freezing it first on the first attempt.
    async fn deliver_notification(&self, event: &OutboxEvent) -> Result<(), DeliveryError> {
        let request = match frozen(&event.payload)? {
            Some(request) => request,
            None => {
                let Some(request) = self.notification_request(event).await? else {
                    return Ok(());
                };
                self.freeze(event.seq, &request).await?;
                request
            }
        };
        self.notification.clone().send_notification(request).await?;
        Ok(())
    }

    /// The request for `event` as the subject stands now; `None` when the event is not one the
    /// applicant is told of (logged; acknowledging it keeps the subject's later events going).
    async fn notification_request(
        &self,
        event: &OutboxEvent,
    ) -> Result<Option<SendNotificationRequest>, DeliveryError> {
        if event.subject.contains("/modificationRequests/") {
            return self.modification_notification(event).await;
        }
        if let Some(id) = event.subject.strip_prefix("sellers/") {
            return self.seller_notification(event, id).await;
        }
        if event.subject.starts_with("accounts/") {
            return self.contact_notification(event).await;
        }
        let app = self.application(&event.subject).await?;
        application_notification(event, &app)
    }

    async fn freeze(
        &self,
        seq: i64,
        request: &SendNotificationRequest,
    ) -> Result<(), DeliveryError> {
        let payload = crate::outbox::frozen_payload(request);
        use sea_orm::sea_query::ExprTrait as _;
        let update = Query::update()
            .table(Alias::new(OUTBOX))
            .value(Alias::new("payload"), payload)
            .and_where(Expr::col(Alias::new("seq")).eq(seq))
            .to_owned();
        self.db.execute(&update).await.map_err(db_error)?;
        Ok(())
    }
}

/// The request frozen by an earlier attempt, if any. One that cannot be read is refused rather
/// than rebuilt: a different body would be a reused key at the receiver.
fn frozen(payload: &serde_json::Value) -> Result<Option<SendNotificationRequest>, DeliveryError> {
    let Some(encoded) = payload.get(FROZEN_REQUEST) else {
        return Ok(None);
    };
    let bytes = encoded
        .as_str()
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .ok_or_else(|| DeliveryError::refused("the frozen notification is not base64"))?;
    SendNotificationRequest::decode(bytes.as_slice())
        .map(Some)
        .map_err(|e| {
            DeliveryError::refused(format!("the frozen notification does not decode: {e}"))
        })
}

/// The stored profile (without the logo bytes) and evidence of an application. Bytes that do
/// not decode fail the delivery (refused: it becomes a dead letter, never an empty message).
fn application_materials(
    app: &application::Model,
) -> Result<(SellerProfile, Option<CheckEvidence>), StoredCorrupt> {
    let key = format!("applications/{}", app.application_id);
    let profile = stored::decode(&app.profile, "registration_applications.profile", &key)?;
    let evidence = stored::decode_opt(
        app.evidence.as_deref(),
        "registration_applications.evidence",
        &key,
    )?;
    Ok((profile, evidence))
}

fn application_notification(
    event: &OutboxEvent,
    app: &application::Model,
) -> Result<Option<SendNotificationRequest>, DeliveryError> {
    let kind = event.event_type.as_str();
    let event_type = match kind {
        "APPLICATION_SUBMITTED" => NotificationEventType::ApplicationReceived,
        "APPLICATION_APPROVED" => NotificationEventType::ApplicationApproved,
        "APPLICATION_REJECTED" => NotificationEventType::ApplicationRejected,
        "APPLICATION_CHANGES_REQUESTED" => NotificationEventType::ChangesRequested,
        "APPLICATION_WITHDRAWN" => NotificationEventType::ApplicationWithdrawn,
        "APPLICATION_RESUBMITTED" => NotificationEventType::ApplicationResubmitted,
        other => {
            tracing::error!(kind = other, "no notification for this event; dropping");
            return Ok(None);
        }
    };
    let mut params = HashMap::from([
        ("company_name".to_string(), app.company_name.clone()),
        ("application".to_string(), event.subject.clone()),
    ]);
    let feedback: Option<ReviewFeedback> = stored::decode_opt(
        app.feedback.as_deref(),
        "registration_applications.feedback",
        &format!("applications/{}", app.application_id),
    )?;
    if let Some(feedback) = feedback {
        let titles: Vec<String> = match feedback.reasons.is_empty() {
            false => feedback
                .reasons
                .iter()
                .map(|r| r.title_en.clone())
                .collect(),
            true => feedback.reason_codes.clone(),
        };
        params.insert("reason_titles".into(), titles.join(", "));
        params.insert("comment".into(), feedback.comment.clone());
    }
    if let Some(id) = &app.seller_id {
        params.insert("seller".into(), format!("sellers/{id}"));
    }
    if let Some(deadline) = app.review_deadline {
        params.insert("review_deadline".into(), deadline.to_rfc3339());
    }
    Ok(Some(request(event, &app.account_id, event_type, params)))
}

fn request(
    event: &OutboxEvent,
    account_id: &str,
    event_type: NotificationEventType,
    params: HashMap<String, String>,
) -> SendNotificationRequest {
    SendNotificationRequest {
        event_id: event.event_id.clone(),
        account_id: account_id.to_string(),
        event_type: event_type as i32,
        template_parameters: params,
        locale: String::new(),
        subject: event.subject.clone(),
        recipient_email: String::new(),
    }
}

fn db_error(e: sea_orm::DbErr) -> DeliveryError {
    DeliveryError::retry(format!("database: {e}"))
}

impl Deliverer {
    async fn seller(&self, id: &str) -> Result<seller::Model, DeliveryError> {
        seller::Entity::find_by_id(id.to_string())
            .one(&self.db)
            .await
            .map_err(db_error)?
            .ok_or_else(|| DeliveryError::refused(format!("sellers/{id} vanished")))
    }

    async fn modification(&self, name: &str) -> Result<modification::Model, DeliveryError> {
        let id = name.rsplit('/').next().unwrap_or_default().to_string();
        modification::Entity::find_by_id(id)
            .one(&self.db)
            .await
            .map_err(db_error)?
            .ok_or_else(|| DeliveryError::refused(format!("{name} vanished")))
    }

    async fn modification_notification(
        &self,
        event: &OutboxEvent,
    ) -> Result<Option<SendNotificationRequest>, DeliveryError> {
        let row = self.modification(&event.subject).await?;
        let seller = self.seller(&row.seller_id).await?;
        let kind = event.event_type.as_str();
        let event_type = match kind {
            "MODIFICATION_REQUESTED" => NotificationEventType::ModificationReceived,
            "SELLER_INFO_CHANGED" | "SELLER_RENAMED" => NotificationEventType::ModificationApproved,
            "MODIFICATION_REJECTED" => NotificationEventType::ModificationRejected,
            other => {
                tracing::error!(kind = other, "no notification for this event; dropping");
                return Ok(None);
            }
        };
        let mut params = HashMap::from([
            ("company_name".to_string(), seller.company_name.clone()),
            (
                "seller".to_string(),
                format!("sellers/{}", seller.seller_id),
            ),
            ("modification_request".to_string(), event.subject.clone()),
        ]);
        let feedback: Option<ReviewFeedback> = stored::decode_opt(
            row.feedback.as_deref(),
            "registration_modifications.feedback",
            &event.subject,
        )?;
        if let Some(feedback) = feedback {
            params.insert("reason_titles".into(), feedback.reason_codes.join("\n"));
            params.insert("comment".into(), feedback.comment.clone());
        }
        if let Some(deadline) = row.review_deadline {
            params.insert("review_deadline".into(), deadline.to_rfc3339());
        }
        Ok(Some(request(event, &row.account_id, event_type, params)))
    }

    /// Modification requests: the review task (create, cancel).
    async fn deliver_modification(&self, event: &OutboxEvent) -> Result<(), DeliveryError> {
        let row = self.modification(&event.subject).await?;
        let seller = self.seller(&row.seller_id).await?;
        match (event.destination.as_str(), event.event_type.as_str()) {
            (REVIEW, "MODIFICATION_REQUESTED") => {
                self.create_modification_task(event, &row, &seller).await
            }
            (REVIEW, "MODIFICATION_WITHDRAWN") => {
                self.review
                    .clone()
                    .cancel_review_task(CancelReviewTaskRequest {
                        event_id: event.event_id.clone(),
                        subject: event.subject.clone(),
                        reason: row
                            .withdraw_reason
                            .clone()
                            .filter(|r| !r.is_empty())
                            .unwrap_or_else(|| {
                                "the seller withdrew the modification request".into()
                            }),
                    })
                    .await?;
                Ok(())
            }
            (destination, kind) => {
                tracing::error!(destination, kind, event = %event.event_id, "no delivery rule; dropping");
                Ok(())
            }
        }
    }

    async fn create_modification_task(
        &self,
        event: &OutboxEvent,
        row: &modification::Model,
        seller: &seller::Model,
    ) -> Result<(), DeliveryError> {
        // A name change is reviewed against the seller's current profile. Stored bytes that
        // do not decode fail the delivery (refused: a dead letter, never an empty profile).
        let mut profile = match proposed_profile(row)? {
            Some(proposed) => proposed,
            None => live_profile(seller)?,
        };
        profile.logo.clear();
        let evidence: Option<CheckEvidence> = stored::decode_opt(
            row.evidence.as_deref(),
            "registration_modifications.evidence",
            &event.subject,
        )?;
        let (country, number) = seller
            .entity_key
            .split_once(':')
            .unwrap_or(("", &seller.entity_key));
        let is_rename = row.kind == state::KIND_NAME;
        let reply = self
            .review
            .clone()
            .create_review_task(CreateReviewTaskRequest {
                event_id: event.event_id.clone(),
                subject: event.subject.clone(),
                subject_kind: SubjectKind::ModificationRequest as i32,
                account_id: row.account_id.clone(),
                company_name: row
                    .proposed_company_name
                    .clone()
                    .unwrap_or_else(|| seller.company_name.clone()),
                entity: Some(CompanyEntity {
                    country: country.to_string(),
                    registration_number: number.to_string(),
                }),
                submit_time: Some(view::timestamp(row.create_time)),
                evidence,
                profile: Some(profile),
                previous_company_name: if is_rename {
                    row.previous_company_name.clone()
                } else {
                    String::new()
                },
            })
            .await?
            .into_inner();
        let task = reply.review_task.unwrap_or_default();
        let deadline = task
            .deadline
            .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32));
        // Conditional: a decision or a withdrawal that raced ahead is never overwritten. The
        // update time stays, so the etag a seller read is still good.
        modification::Entity::update_many()
            .col_expr(
                modification::Column::ReviewTask,
                Expr::value(Some(task.name)),
            )
            .col_expr(modification::Column::ReviewDeadline, Expr::value(deadline))
            .filter(modification::Column::ModificationId.eq(row.modification_id.clone()))
            .filter(modification::Column::State.eq(state::MOD_PENDING))
            .exec(&self.db)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    /// Contact events: the account is told on its bound email and mobile that an address
    /// failed for good, or that customers cannot reach it.
    async fn contact_notification(
        &self,
        event: &OutboxEvent,
    ) -> Result<Option<SendNotificationRequest>, DeliveryError> {
        let event_type = match event.event_type.as_str() {
            "CONTACT_UNDELIVERABLE" => NotificationEventType::ContactUndeliverable,
            "SELLER_UNREACHABLE" => NotificationEventType::SellerUnreachable,
            other => {
                tracing::error!(kind = other, event = %event.event_id, "no notification for this event; dropping");
                return Ok(None);
            }
        };
        let (account, id) = crate::contacts::parse_contact_name(&event.subject)
            .map_err(|_| DeliveryError::refused(format!("{} is not a contact", event.subject)))?;
        let contact = crate::contacts::query::by_id(&self.db, account, id)
            .await
            .map_err(db_error)?
            .ok_or_else(|| DeliveryError::refused(format!("{} vanished", event.subject)))?;
        let company = crate::contacts::query::company_name_of(&self.db, account)
            .await
            .map_err(db_error)?;
        let params = HashMap::from([
            ("company_name".to_string(), company),
            (
                "contact_email".to_string(),
                kg_runtime::redact::email(&contact.email),
            ),
            ("contact".to_string(), event.subject.clone()),
        ]);
        Ok(Some(request(event, account, event_type, params)))
    }

    /// Seller events: the exit notification.
    async fn seller_notification(
        &self,
        event: &OutboxEvent,
        id: &str,
    ) -> Result<Option<SendNotificationRequest>, DeliveryError> {
        let seller = self.seller(id).await?;
        if event.event_type != "SELLER_EXITED" {
            tracing::error!(kind = %event.event_type, event = %event.event_id, "no notification for this event; dropping");
            return Ok(None);
        }
        let params = HashMap::from([
            ("company_name".to_string(), seller.company_name.clone()),
            ("seller".to_string(), event.subject.clone()),
            (
                "comment".to_string(),
                seller.exit_reason.clone().unwrap_or_default(),
            ),
        ]);
        Ok(Some(request(
            event,
            &seller.account_id,
            NotificationEventType::SellerExited,
            params,
        )))
    }
}
