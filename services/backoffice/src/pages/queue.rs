//! The queue: the review tasks by deadline, filtered by view, kind and overdue.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::Response;
use http::StatusCode;
use http::header::HeaderMap;
use kg_proto::review::*;
use minijinja::context;
use serde::Serialize;

use super::{Page, bad_request, ser, session};
use crate::App;
use crate::upstream::{Refusal, call};
use crate::view;

const PAGE_SIZE: i32 = 25;
/// Longest page token taken from a URL (the service's are far shorter).
const MAX_PAGE_TOKEN: usize = 1024;

#[derive(Serialize)]
struct Choice {
    value: &'static str,
    label: &'static str,
    selected: bool,
}

fn choices(options: &[(&'static str, &'static str)], selected: &str) -> Vec<Choice> {
    options
        .iter()
        .map(|(value, label)| Choice {
            value,
            label,
            selected: *value == selected,
        })
        .collect()
}

fn queue_link(view: &str, kind: &str, overdue: bool, page: &str) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in [("view", view), ("kind", kind), ("page", page)] {
        if !v.is_empty() {
            q.append_pair(k, v);
        }
    }
    if overdue {
        q.append_pair("overdue", "1");
    }
    let q = q.finish();
    if q.is_empty() {
        "/".into()
    } else {
        format!("/?{q}")
    }
}

pub(super) async fn queue(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let session = match session(&app, &headers) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let param = |k: &str| q.get(k).map(String::as_str).unwrap_or("");
    let view = param("view");
    let kind = param("kind");
    let page_token = param("page");
    let mut request = ListReviewTasksRequest {
        page_size: PAGE_SIZE,
        page_token: page_token.to_string(),
        ..Default::default()
    };
    match view {
        "" | "open" => {}
        "mine" => request.assignee = "me".into(),
        "unclaimed" => request.states = vec![ReviewTaskState::Queued as i32],
        "waiting" => request.states = vec![ReviewTaskState::WaitingOnApplicant as i32],
        "decided" => {
            request.states = vec![
                ReviewTaskState::Approved as i32,
                ReviewTaskState::Rejected as i32,
                ReviewTaskState::Cancelled as i32,
            ]
        }
        other => {
            return bad_request(
                &app,
                &headers,
                &session,
                format!("unknown view {other:?}: use open, mine, unclaimed, waiting or decided"),
            );
        }
    }
    match kind {
        "" => {}
        "application" => request.subject_kinds = vec![SubjectKind::Application as i32],
        "change-request" => request.subject_kinds = vec![SubjectKind::ModificationRequest as i32],
        other => {
            return bad_request(
                &app,
                &headers,
                &session,
                format!("unknown kind {other:?}: use application or change-request"),
            );
        }
    }
    let overdue = match param("overdue") {
        "" | "0" => false,
        "1" | "on" | "true" => true,
        other => {
            return bad_request(
                &app,
                &headers,
                &session,
                format!("overdue must be 1 or 0, not {other:?}"),
            );
        }
    };
    request.overdue_only = overdue;
    if page_token.len() > MAX_PAGE_TOKEN {
        return bad_request(
            &app,
            &headers,
            &session,
            "the page token is too long".into(),
        );
    }

    let page = Page::new(&app, &headers, Some(&session));
    let views = choices(
        &[
            ("open", "All open tasks"),
            ("mine", "Claimed by me"),
            ("unclaimed", "Unclaimed"),
            ("waiting", "Waiting on applicant"),
            ("decided", "Decided and cancelled"),
        ],
        if view.is_empty() { "open" } else { view },
    );
    let kinds = choices(
        &[
            ("", "Any kind"),
            ("application", "Applications"),
            ("change-request", "Change requests"),
        ],
        kind,
    );
    let (rows, total, next, refusal, status) = match app
        .upstream
        .review()
        .list_review_tasks(call(request, &session))
        .await
    {
        Ok(response) => {
            let response = response.into_inner();
            let now = chrono::Utc::now();
            let rows: Vec<_> = response
                .review_tasks
                .iter()
                .map(|t| view::queue_row(t, now, app.at_risk))
                .collect();
            let next = (!response.next_page_token.is_empty())
                .then(|| queue_link(view, kind, overdue, &response.next_page_token));
            (rows, response.total_size, next, None, StatusCode::OK)
        }
        Err(status) => {
            let refusal = Refusal::from_status(&status);
            let http = refusal.http;
            (Vec::new(), 0, None, Some(refusal), http)
        }
    };
    let first = (!page_token.is_empty()).then(|| queue_link(view, kind, overdue, ""));
    page.render(
        &app,
        status,
        "queue.html",
        context! {
            tasks => ser(&rows),
            total => total,
            views => ser(&views),
            kinds => ser(&kinds),
            overdue => overdue,
            next_link => next,
            first_link => first,
            refusal => refusal.map(|r| ser(&r)),
            at_risk_hours => app.at_risk.num_hours(),
        },
    )
}
