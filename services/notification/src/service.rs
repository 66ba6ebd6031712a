//! The NotificationService trait implementation: each RPC delegates to the module named after
//! the work (`send.rs`, `queries.rs`).

use std::sync::Arc;

use chrono_tz::Tz;
use kg_proto::identity::identity_check_service_client::IdentityCheckServiceClient;
use kg_proto::notification::notification_service_server::NotificationService;
use kg_proto::notification::*;
use kg_runtime::auth::Caller;
use kg_runtime::client::OutboundChannel;
use sea_orm::DatabaseConnection;
use tokio::sync::Notify;
use tonic::{Request, Response, Status};

use crate::error::NotificationError;

pub struct Notification {
    pub(crate) db: DatabaseConnection,
    pub(crate) identity: IdentityCheckServiceClient<OutboundChannel>,
    /// Time zone deadlines are shown in.
    pub(crate) tz: Tz,
    /// Wakes the dispatcher when deliveries were stored.
    pub(crate) wake: Arc<Notify>,
}

impl Notification {
    pub fn new(
        db: DatabaseConnection,
        identity: IdentityCheckServiceClient<OutboundChannel>,
        tz: Tz,
        wake: Arc<Notify>,
    ) -> Self {
        Self {
            db,
            identity,
            tz,
            wake,
        }
    }
}

#[tonic::async_trait]
impl NotificationService for Notification {
    async fn send_notification(
        &self,
        request: Request<SendNotificationRequest>,
    ) -> Result<Response<SendNotificationResponse>, Status> {
        Ok(Response::new(self.send(request.into_inner()).await?))
    }

    async fn get_notification(
        &self,
        request: Request<GetNotificationRequest>,
    ) -> Result<Response<GetNotificationResponse>, Status> {
        let caller = Caller::require(&request).map_err(NotificationError::from)?;
        let notification = self
            .notification_by_name(&request.into_inner().name, &caller)
            .await?;
        Ok(Response::new(GetNotificationResponse {
            notification: Some(notification),
        }))
    }

    async fn list_notifications(
        &self,
        request: Request<ListNotificationsRequest>,
    ) -> Result<Response<ListNotificationsResponse>, Status> {
        let caller = Caller::require(&request).map_err(NotificationError::from)?;
        Ok(Response::new(
            self.list(request.into_inner(), &caller).await?,
        ))
    }
}
