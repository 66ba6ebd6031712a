//! Delivers registration's outbox events: new and withdrawn applications to review, every
//! applicant-facing change to notification.

use std::collections::HashMap;

use kg_proto::common::{CheckEvidence, CompanyEntity, ReviewFeedback, SellerProfile};
use kg_proto::notification::notification_service_client::NotificationServiceClient;
use kg_proto::notification::{NotificationEventType, SendNotificationRequest};
use kg_proto::review::review_service_client::ReviewServiceClient;
use kg_proto::review::{CancelReviewTaskRequest, CreateReviewTaskRequest, SubjectKind};
use kg_runtime::client::OutboundChannel;
use kg_runtime::outbox::{Deliver, DeliveryError, OutboxEvent};
use prost::Message;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};

use crate::outbox::{NOTIFICATION, REVIEW};
use crate::store::{application, state};
use crate::view;

pub struct Deliverer {
    pub db: DatabaseConnection,
    pub review: ReviewServiceClient<OutboundChannel>,
    pub notification: NotificationServiceClient<OutboundChannel>,
}

#[async_trait::async_trait]
impl Deliver for Deliverer {
    async fn deliver(&self, event: &OutboxEvent) -> Result<(), DeliveryError> {
        let app = self.application(&event.subject).await?;
        match (event.destination.as_str(), event.event_type.as_str()) {
            (REVIEW, "APPLICATION_SUBMITTED") => self.create_task(event, &app).await,
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
            (NOTIFICATION, kind) => self.notify(event, kind, &app).await,
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
            .map_err(|e| DeliveryError(format!("database: {e}")))?
            .ok_or_else(|| DeliveryError(format!("{name} vanished")))
    }

    async fn create_task(
        &self,
        event: &OutboxEvent,
        app: &application::Model,
    ) -> Result<(), DeliveryError> {
        let mut profile = SellerProfile::decode(app.profile.as_slice()).unwrap_or_default();
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
                evidence: app
                    .evidence
                    .as_deref()
                    .and_then(|b| CheckEvidence::decode(b).ok()),
                profile: Some(profile),
                previous_company_name: String::new(),
            })
            .await?
            .into_inner();
        // The task exists: the application is now in review, with the task's deadline.
        let task = reply.review_task.unwrap_or_default();
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
            .map_err(|e| DeliveryError(format!("database: {e}")))?;
        Ok(())
    }

    async fn notify(
        &self,
        event: &OutboxEvent,
        kind: &str,
        app: &application::Model,
    ) -> Result<(), DeliveryError> {
        let event_type = match kind {
            "APPLICATION_SUBMITTED" => NotificationEventType::ApplicationReceived,
            "APPLICATION_APPROVED" => NotificationEventType::ApplicationApproved,
            "APPLICATION_REJECTED" => NotificationEventType::ApplicationRejected,
            "APPLICATION_CHANGES_REQUESTED" => NotificationEventType::ChangesRequested,
            "APPLICATION_WITHDRAWN" => NotificationEventType::ApplicationWithdrawn,
            other => {
                tracing::error!(kind = other, "no notification for this event; dropping");
                return Ok(());
            }
        };
        let mut params = HashMap::from([
            ("company_name".to_string(), app.company_name.clone()),
            ("application".to_string(), event.subject.clone()),
        ]);
        if let Some(feedback) = app
            .feedback
            .as_deref()
            .and_then(|b| ReviewFeedback::decode(b).ok())
        {
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
        self.notification
            .clone()
            .send_notification(SendNotificationRequest {
                event_id: event.event_id.clone(),
                account_id: app.account_id.clone(),
                event_type: event_type as i32,
                template_parameters: params,
                locale: String::new(),
                subject: event.subject.clone(),
            })
            .await?;
        Ok(())
    }
}
