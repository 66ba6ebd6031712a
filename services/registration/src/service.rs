//! The RegistrationService trait implementation: each RPC delegates to the module named after it.

use std::pin::Pin;
use std::time::Duration;

use kg_proto::identity::identity_check_service_client::IdentityCheckServiceClient;
use kg_proto::registration::registration_service_server::RegistrationService;
use kg_proto::registration::*;
use kg_runtime::client::OutboundChannel;
use kg_runtime::lock::EntityLock;
use sea_orm::DatabaseConnection;
use tonic::{Request, Response, Status};

/// The agreement version applicants must accept, and the SHA-256 of its text.
#[derive(Debug, Clone)]
pub struct Agreement {
    pub version: String,
    pub text_sha256: String,
}

pub struct Registration {
    pub(crate) db: DatabaseConnection,
    pub(crate) lock: EntityLock,
    pub(crate) identity: IdentityCheckServiceClient<OutboundChannel>,
    pub(crate) agreement: Agreement,
    /// Longer than the identity checks can take, so the lock outlives the work it guards.
    pub lock_ttl: Duration,
    pub lock_wait: Duration,
}

impl Registration {
    pub fn new(
        db: DatabaseConnection,
        lock: EntityLock,
        identity: IdentityCheckServiceClient<OutboundChannel>,
        agreement: Agreement,
    ) -> Self {
        Self {
            db,
            lock,
            identity,
            agreement,
            lock_ttl: Duration::from_secs(30),
            lock_wait: Duration::from_secs(2),
        }
    }
}

fn not_yet(rpc: &str) -> Status {
    Status::unimplemented(format!(
        "RegistrationService.{rpc} is not implemented yet; see the project's open issues"
    ))
}

type EventStream =
    Pin<Box<dyn tokio_stream::Stream<Item = Result<WatchEventsResponse, Status>> + Send>>;

#[tonic::async_trait]
impl RegistrationService for Registration {
    async fn submit_application(
        &self,
        request: Request<SubmitApplicationRequest>,
    ) -> Result<Response<SubmitApplicationResponse>, Status> {
        let application = self.submit(request.into_inner()).await?;
        Ok(Response::new(SubmitApplicationResponse {
            application: Some(application),
        }))
    }

    async fn get_application(
        &self,
        request: Request<GetApplicationRequest>,
    ) -> Result<Response<GetApplicationResponse>, Status> {
        let application = self.application_by_name(&request.into_inner().name).await?;
        Ok(Response::new(GetApplicationResponse {
            application: Some(application),
        }))
    }

    async fn list_applications(
        &self,
        request: Request<ListApplicationsRequest>,
    ) -> Result<Response<ListApplicationsResponse>, Status> {
        Ok(Response::new(self.list(request.into_inner()).await?))
    }

    async fn withdraw_application(
        &self,
        request: Request<WithdrawApplicationRequest>,
    ) -> Result<Response<WithdrawApplicationResponse>, Status> {
        let application = self.withdraw(request.into_inner()).await?;
        Ok(Response::new(WithdrawApplicationResponse {
            application: Some(application),
        }))
    }

    async fn resubmit_application(
        &self,
        _: Request<ResubmitApplicationRequest>,
    ) -> Result<Response<ResubmitApplicationResponse>, Status> {
        Err(not_yet("ResubmitApplication"))
    }

    async fn get_seller(
        &self,
        _: Request<GetSellerRequest>,
    ) -> Result<Response<GetSellerResponse>, Status> {
        Err(not_yet("GetSeller"))
    }

    async fn list_sellers(
        &self,
        _: Request<ListSellersRequest>,
    ) -> Result<Response<ListSellersResponse>, Status> {
        Err(not_yet("ListSellers"))
    }

    async fn update_seller_info(
        &self,
        _: Request<UpdateSellerInfoRequest>,
    ) -> Result<Response<UpdateSellerInfoResponse>, Status> {
        Err(not_yet("UpdateSellerInfo"))
    }

    async fn change_company_name(
        &self,
        _: Request<ChangeCompanyNameRequest>,
    ) -> Result<Response<ChangeCompanyNameResponse>, Status> {
        Err(not_yet("ChangeCompanyName"))
    }

    async fn get_modification_request(
        &self,
        _: Request<GetModificationRequestRequest>,
    ) -> Result<Response<GetModificationRequestResponse>, Status> {
        Err(not_yet("GetModificationRequest"))
    }

    async fn list_modification_requests(
        &self,
        _: Request<ListModificationRequestsRequest>,
    ) -> Result<Response<ListModificationRequestsResponse>, Status> {
        Err(not_yet("ListModificationRequests"))
    }

    async fn withdraw_modification_request(
        &self,
        _: Request<WithdrawModificationRequestRequest>,
    ) -> Result<Response<WithdrawModificationRequestResponse>, Status> {
        Err(not_yet("WithdrawModificationRequest"))
    }

    async fn exit_seller(
        &self,
        _: Request<ExitSellerRequest>,
    ) -> Result<Response<ExitSellerResponse>, Status> {
        Err(not_yet("ExitSeller"))
    }

    async fn apply_review_decision(
        &self,
        _: Request<ApplyReviewDecisionRequest>,
    ) -> Result<Response<ApplyReviewDecisionResponse>, Status> {
        Err(not_yet("ApplyReviewDecision"))
    }

    type WatchEventsStream = EventStream;

    async fn watch_events(
        &self,
        _: Request<WatchEventsRequest>,
    ) -> Result<Response<Self::WatchEventsStream>, Status> {
        Err(not_yet("WatchEvents"))
    }
}
