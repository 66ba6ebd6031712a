//! The ReviewService trait implementation.

use kg_proto::review::review_service_server::ReviewService;
use kg_proto::review::*;
use sea_orm::DatabaseConnection;
use tonic::{Request, Response, Status};

pub struct Review {
    #[allow(dead_code)] // read by the handlers the review-workflow issue adds
    db: DatabaseConnection,
}

impl Review {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }
}

fn not_yet(rpc: &str) -> Status {
    Status::unimplemented(format!(
        "ReviewService.{rpc} is not implemented yet; see the project's open issues"
    ))
}

#[tonic::async_trait]
impl ReviewService for Review {
    async fn create_review_task(
        &self,
        _: Request<CreateReviewTaskRequest>,
    ) -> Result<Response<CreateReviewTaskResponse>, Status> {
        Err(not_yet("CreateReviewTask"))
    }

    async fn get_review_task(
        &self,
        _: Request<GetReviewTaskRequest>,
    ) -> Result<Response<GetReviewTaskResponse>, Status> {
        Err(not_yet("GetReviewTask"))
    }

    async fn list_review_tasks(
        &self,
        _: Request<ListReviewTasksRequest>,
    ) -> Result<Response<ListReviewTasksResponse>, Status> {
        Err(not_yet("ListReviewTasks"))
    }

    async fn claim_review_task(
        &self,
        _: Request<ClaimReviewTaskRequest>,
    ) -> Result<Response<ClaimReviewTaskResponse>, Status> {
        Err(not_yet("ClaimReviewTask"))
    }

    async fn release_review_task(
        &self,
        _: Request<ReleaseReviewTaskRequest>,
    ) -> Result<Response<ReleaseReviewTaskResponse>, Status> {
        Err(not_yet("ReleaseReviewTask"))
    }

    async fn approve_review_task(
        &self,
        _: Request<ApproveReviewTaskRequest>,
    ) -> Result<Response<ApproveReviewTaskResponse>, Status> {
        Err(not_yet("ApproveReviewTask"))
    }

    async fn reject_review_task(
        &self,
        _: Request<RejectReviewTaskRequest>,
    ) -> Result<Response<RejectReviewTaskResponse>, Status> {
        Err(not_yet("RejectReviewTask"))
    }

    async fn request_changes(
        &self,
        _: Request<RequestChangesRequest>,
    ) -> Result<Response<RequestChangesResponse>, Status> {
        Err(not_yet("RequestChanges"))
    }

    async fn resume_review_task(
        &self,
        _: Request<ResumeReviewTaskRequest>,
    ) -> Result<Response<ResumeReviewTaskResponse>, Status> {
        Err(not_yet("ResumeReviewTask"))
    }

    async fn cancel_review_task(
        &self,
        _: Request<CancelReviewTaskRequest>,
    ) -> Result<Response<CancelReviewTaskResponse>, Status> {
        Err(not_yet("CancelReviewTask"))
    }

    async fn list_rejection_reasons(
        &self,
        _: Request<ListRejectionReasonsRequest>,
    ) -> Result<Response<ListRejectionReasonsResponse>, Status> {
        Err(not_yet("ListRejectionReasons"))
    }

    async fn rerun_checks(
        &self,
        _: Request<RerunChecksRequest>,
    ) -> Result<Response<RerunChecksResponse>, Status> {
        Err(not_yet("RerunChecks"))
    }

    async fn list_audit_entries(
        &self,
        _: Request<ListAuditEntriesRequest>,
    ) -> Result<Response<ListAuditEntriesResponse>, Status> {
        Err(not_yet("ListAuditEntries"))
    }
}
