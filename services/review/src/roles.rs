//! Who may call each RPC of ReviewService (enforced by the auth layer; docs/security.md lists the
//! same matrix): staff review; the task's life follows registration's events, sent as a service.

use kg_runtime::auth::Role;
use kg_runtime::auth::roles::{NOBODY, SERVICE_ONLY, STAFF};

pub fn allowed(method: &str) -> &'static [Role] {
    match method {
        "CreateReviewTask" | "ResumeReviewTask" | "CancelReviewTask" => SERVICE_ONLY,
        "GetReviewTask"
        | "ListReviewTasks"
        | "ClaimReviewTask"
        | "ReleaseReviewTask"
        | "ApproveReviewTask"
        | "RejectReviewTask"
        | "RequestChanges"
        | "RerunChecks"
        | "ListRejectionReasons"
        | "ListAuditEntries" => STAFF,
        _ => NOBODY,
    }
}
