//! The ReviewService trait implementation: each RPC delegates to the module named after the work
//! (`create.rs`, `claims.rs`, `decisions.rs`, `lifecycle.rs`, `checks.rs`, `queries.rs`,
//! `catalogue.rs`).

use std::sync::Arc;

use kg_proto::identity::identity_check_service_client::IdentityCheckServiceClient;
use kg_proto::registration::registration_service_client::RegistrationServiceClient;
use kg_proto::review::review_service_server::ReviewService;
use kg_proto::review::*;
use kg_runtime::auth::Caller;
use kg_runtime::client::OutboundChannel;
use sea_orm::DatabaseConnection;
use tokio::sync::Notify;
use tonic::{Request, Response, Status};

use crate::calendar::WorkingCalendar;
use crate::catalogue;
use crate::error::ReviewError;

pub struct Review {
    pub(crate) db: DatabaseConnection,
    pub(crate) calendar: Arc<WorkingCalendar>,
    pub(crate) identity: IdentityCheckServiceClient<OutboundChannel>,
    /// Wakes the outbox relay after a decision commits.
    pub(crate) outbox: Arc<Notify>,
    /// Set when approval waits for the applicant's contact addresses to be verified
    /// (KG_REQUIRE_VERIFIED_CONTACTS): registration, asked for their states.
    pub contact_gate: Option<RegistrationServiceClient<OutboundChannel>>,
}

impl Review {
    pub fn new(
        db: DatabaseConnection,
        calendar: Arc<WorkingCalendar>,
        identity: IdentityCheckServiceClient<OutboundChannel>,
        outbox: Arc<Notify>,
    ) -> Self {
        Self {
            db,
            calendar,
            identity,
            outbox,
            contact_gate: None,
        }
    }
}

/// The authenticated caller (see [`Caller::require`]); the auth layer has already checked that
/// its role may call the RPC.
fn caller<T>(request: &Request<T>) -> Result<Caller, ReviewError> {
    Ok(Caller::require(request)?)
}

#[tonic::async_trait]
impl ReviewService for Review {
    async fn create_review_task(
        &self,
        request: Request<CreateReviewTaskRequest>,
    ) -> Result<Response<CreateReviewTaskResponse>, Status> {
        let caller = caller(&request)?;
        Ok(Response::new(
            self.create(&caller, request.into_inner()).await?,
        ))
    }

    async fn get_review_task(
        &self,
        request: Request<GetReviewTaskRequest>,
    ) -> Result<Response<GetReviewTaskResponse>, Status> {
        let task = self.get(&request.into_inner().name).await?;
        Ok(Response::new(GetReviewTaskResponse {
            review_task: Some(task),
        }))
    }

    async fn list_review_tasks(
        &self,
        request: Request<ListReviewTasksRequest>,
    ) -> Result<Response<ListReviewTasksResponse>, Status> {
        let caller = caller(&request)?;
        Ok(Response::new(
            self.list_tasks(&caller, request.into_inner()).await?,
        ))
    }

    async fn claim_review_task(
        &self,
        request: Request<ClaimReviewTaskRequest>,
    ) -> Result<Response<ClaimReviewTaskResponse>, Status> {
        let caller = caller(&request)?;
        let task = self.claim(&caller, request.into_inner()).await?;
        Ok(Response::new(ClaimReviewTaskResponse {
            review_task: Some(task),
        }))
    }

    async fn release_review_task(
        &self,
        request: Request<ReleaseReviewTaskRequest>,
    ) -> Result<Response<ReleaseReviewTaskResponse>, Status> {
        let caller = caller(&request)?;
        let task = self.release(&caller, request.into_inner()).await?;
        Ok(Response::new(ReleaseReviewTaskResponse {
            review_task: Some(task),
        }))
    }

    async fn approve_review_task(
        &self,
        request: Request<ApproveReviewTaskRequest>,
    ) -> Result<Response<ApproveReviewTaskResponse>, Status> {
        let caller = caller(&request)?;
        let task = self.approve(&caller, request.into_inner()).await?;
        Ok(Response::new(ApproveReviewTaskResponse {
            review_task: Some(task),
        }))
    }

    async fn reject_review_task(
        &self,
        request: Request<RejectReviewTaskRequest>,
    ) -> Result<Response<RejectReviewTaskResponse>, Status> {
        let caller = caller(&request)?;
        let task = self.reject(&caller, request.into_inner()).await?;
        Ok(Response::new(RejectReviewTaskResponse {
            review_task: Some(task),
        }))
    }

    async fn request_changes(
        &self,
        request: Request<RequestChangesRequest>,
    ) -> Result<Response<RequestChangesResponse>, Status> {
        let caller = caller(&request)?;
        let task = self.ask_for_changes(&caller, request.into_inner()).await?;
        Ok(Response::new(RequestChangesResponse {
            review_task: Some(task),
        }))
    }

    async fn resume_review_task(
        &self,
        request: Request<ResumeReviewTaskRequest>,
    ) -> Result<Response<ResumeReviewTaskResponse>, Status> {
        let caller = caller(&request)?;
        let task = self.resume(&caller, request.into_inner()).await?;
        Ok(Response::new(ResumeReviewTaskResponse {
            review_task: Some(task),
        }))
    }

    async fn cancel_review_task(
        &self,
        request: Request<CancelReviewTaskRequest>,
    ) -> Result<Response<CancelReviewTaskResponse>, Status> {
        let caller = caller(&request)?;
        Ok(Response::new(
            self.cancel(&caller, request.into_inner()).await?,
        ))
    }

    async fn list_rejection_reasons(
        &self,
        request: Request<ListRejectionReasonsRequest>,
    ) -> Result<Response<ListRejectionReasonsResponse>, Status> {
        Ok(Response::new(catalogue::list(&request.into_inner())?))
    }

    async fn rerun_checks(
        &self,
        request: Request<RerunChecksRequest>,
    ) -> Result<Response<RerunChecksResponse>, Status> {
        let caller = caller(&request)?;
        Ok(Response::new(
            self.rerun(&caller, request.into_inner()).await?,
        ))
    }

    async fn list_audit_entries(
        &self,
        request: Request<ListAuditEntriesRequest>,
    ) -> Result<Response<ListAuditEntriesResponse>, Status> {
        Ok(Response::new(self.list_audit(request.into_inner()).await?))
    }
}
