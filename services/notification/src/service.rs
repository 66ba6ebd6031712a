//! The NotificationService trait implementation.

use kg_proto::notification::notification_service_server::NotificationService;
use kg_proto::notification::*;
use sea_orm::DatabaseConnection;
use tonic::{Request, Response, Status};

pub struct Notification {
    #[allow(dead_code)] // read by the handlers the review-workflow issue adds
    db: DatabaseConnection,
}

impl Notification {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }
}

fn not_yet(rpc: &str) -> Status {
    Status::unimplemented(format!(
        "NotificationService.{rpc} is not implemented yet; see the project's open issues"
    ))
}

#[tonic::async_trait]
impl NotificationService for Notification {
    async fn send_notification(
        &self,
        _: Request<SendNotificationRequest>,
    ) -> Result<Response<SendNotificationResponse>, Status> {
        Err(not_yet("SendNotification"))
    }

    async fn get_notification(
        &self,
        _: Request<GetNotificationRequest>,
    ) -> Result<Response<GetNotificationResponse>, Status> {
        Err(not_yet("GetNotification"))
    }

    async fn list_notifications(
        &self,
        _: Request<ListNotificationsRequest>,
    ) -> Result<Response<ListNotificationsResponse>, Status> {
        Err(not_yet("ListNotifications"))
    }
}
