//! The actions on a task (claim, release, approve, reject, request changes, rerun the
//! checks): a POST whose CSRF token is checked first; a refusal shows the task page again with
//! the form as it was sent.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::Response;
use http::StatusCode;
use http::header::HeaderMap;
use kg_proto::review::*;

use super::task::{Draft, render_task};
use super::{Form, csrf_refused, not_found, redirect, session};
use crate::App;
use crate::auth;
use crate::upstream::{Refusal, call};
use crate::view;

const MAX_COMMENT_CHARS: usize = 4000;

pub(super) async fn action(
    State(app): State<Arc<App>>,
    Path((id, action)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let session = match session(&app, &headers) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let form = Form::parse(&body);
    if !auth::csrf_valid(&app, &headers, &session.subject, form.one("csrf")) {
        return csrf_refused(&app, &headers, Some(&session));
    }
    if !view::valid_id(&id) {
        return not_found(State(app), headers).await;
    }
    let name = format!("reviewTasks/{id}");
    let etag = form.one("etag").to_string();
    let comment = form.one("comment").trim().to_string();
    let reason_codes = form.all("reason");
    let request_id = form.one("request_id").to_string();
    let draft = Draft {
        action: action.clone(),
        comment: comment.clone(),
        reasons: reason_codes.clone(),
    };
    if action != "rerun-checks" && !kg_runtime::idempotency::is_plain_id(&request_id) {
        let refusal = Refusal::local(
            StatusCode::BAD_REQUEST,
            "the form carries no valid request id: reload the page and try again",
        );
        return render_task(&app, &headers, &session, &id, Some(refusal), None, draft).await;
    }
    if comment.chars().count() > MAX_COMMENT_CHARS {
        let refusal = Refusal::local(
            StatusCode::BAD_REQUEST,
            format!("the comment is longer than {MAX_COMMENT_CHARS} characters"),
        );
        return render_task(&app, &headers, &session, &id, Some(refusal), None, draft).await;
    }
    let mut review = app.upstream.review();
    let s = &session;
    let result = match action.as_str() {
        "claim" => review
            .claim_review_task(call(
                ClaimReviewTaskRequest {
                    request_id,
                    name,
                    etag,
                },
                s,
            ))
            .await
            .map(drop),
        "release" => review
            .release_review_task(call(
                ReleaseReviewTaskRequest {
                    request_id,
                    name,
                    comment,
                    etag,
                },
                s,
            ))
            .await
            .map(drop),
        "approve" => review
            .approve_review_task(call(
                ApproveReviewTaskRequest {
                    request_id,
                    name,
                    comment,
                    etag,
                },
                s,
            ))
            .await
            .map(drop),
        "reject" => review
            .reject_review_task(call(
                RejectReviewTaskRequest {
                    request_id,
                    name,
                    reason_codes,
                    comment,
                    etag,
                },
                s,
            ))
            .await
            .map(drop),
        "request-changes" => review
            .request_changes(call(
                RequestChangesRequest {
                    request_id,
                    name,
                    reason_codes,
                    comment,
                    etag,
                },
                s,
            ))
            .await
            .map(drop),
        // Rerunning has no key (each call reruns, safe to retry); it can take the website check's
        // 10 s, so it gets more time than a page.
        "rerun-checks" => {
            let mut request = call(RerunChecksRequest { name }, s);
            request.set_timeout(Duration::from_secs(30));
            review.rerun_checks(request).await.map(drop)
        }
        _ => return not_found(State(app.clone()), headers).await,
    };
    match result {
        Ok(()) => redirect(&format!("/tasks/{id}?done={action}")),
        Err(status) => {
            tracing::info!(task = %id, action, code = ?status.code(), "the service refused an action");
            let refusal = Refusal::from_status(&status);
            render_task(&app, &headers, &session, &id, Some(refusal), None, draft).await
        }
    }
}
