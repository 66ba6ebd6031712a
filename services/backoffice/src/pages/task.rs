//! A task: its page (the task, the subject as registration holds it, the account, the audit
//! trail and the forms of the actions) and the subject's logo.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use http::header::{self, HeaderMap};
use kg_proto::identity::GetAccountRequest;
use kg_proto::registration::{
    ApplicationState, ApplicationView, GetApplicationRequest, GetModificationRequestRequest,
    GetSellerRequest, ModificationKind,
};
use kg_proto::review::*;
use kg_runtime::auth::Role;
use minijinja::context;
use serde::Serialize;

use super::{Page, message, ser, session};
use crate::App;
use crate::auth::Session;
use crate::logo;
use crate::upstream::{Refusal, call};
use crate::view;

/// The reviewed subject as registration holds it: its logo bytes, the change-request diff.
#[derive(Default)]
struct Subject {
    state: String,
    logo: Vec<u8>,
    logo_source: &'static str,
    changes: Vec<kg_proto::registration::FieldChange>,
    seller: String,
    modification_kind: &'static str,
}

async fn subject(app: &App, session: &Session, task: &ReviewTask) -> Result<Subject, Refusal> {
    let mut registration = app.upstream.registration();
    let refuse = |s: tonic::Status| Refusal::from_status(&s);
    match SubjectKind::try_from(task.subject_kind).unwrap_or_default() {
        SubjectKind::Application => {
            let application = registration
                .get_application(call(
                    GetApplicationRequest {
                        name: task.subject.clone(),
                        // the page shows the logo
                        view: ApplicationView::Full as i32,
                    },
                    session,
                ))
                .await
                .map_err(refuse)?
                .into_inner()
                .application
                .unwrap_or_default();
            let profile = application.profile.unwrap_or_default();
            Ok(Subject {
                state: ApplicationState::try_from(application.state)
                    .map(|s| {
                        s.as_str_name()
                            .trim_start_matches("APPLICATION_STATE_")
                            .to_string()
                    })
                    .unwrap_or_default(),
                logo: profile.logo,
                logo_source: "the application",
                seller: application.seller,
                ..Default::default()
            })
        }
        SubjectKind::ModificationRequest => {
            let request = registration
                .get_modification_request(call(
                    GetModificationRequestRequest {
                        name: task.subject.clone(),
                    },
                    session,
                ))
                .await
                .map_err(refuse)?
                .into_inner()
                .modification_request
                .unwrap_or_default();
            let kind = ModificationKind::try_from(request.kind).unwrap_or_default();
            let mut subject = Subject {
                state: kg_proto::registration::ModificationState::try_from(request.state)
                    .map(|s| {
                        s.as_str_name()
                            .trim_start_matches("MODIFICATION_STATE_")
                            .to_string()
                    })
                    .unwrap_or_default(),
                changes: request.changes,
                seller: request.seller.clone(),
                modification_kind: match kind {
                    ModificationKind::CompanyNameChange => "company-name change",
                    _ => "profile update",
                },
                ..Default::default()
            };
            let proposed = request.proposed_profile.map(|p| p.logo).unwrap_or_default();
            if kind == ModificationKind::ProfileUpdate && !proposed.is_empty() {
                subject.logo = proposed;
                subject.logo_source = "the proposed profile";
            } else {
                // A name change (or a profile update that keeps the logo): the seller's logo.
                let seller = registration
                    .get_seller(call(
                        GetSellerRequest {
                            name: request.seller,
                        },
                        session,
                    ))
                    .await
                    .map_err(refuse)?
                    .into_inner()
                    .seller
                    .unwrap_or_default();
                subject.logo = seller.profile.map(|p| p.logo).unwrap_or_default();
                subject.logo_source = "the seller's current profile";
            }
            Ok(subject)
        }
        SubjectKind::Unspecified => Err(Refusal::local(
            StatusCode::BAD_GATEWAY,
            "the task names no subject kind",
        )),
    }
}

async fn get_task(app: &App, session: &Session, id: &str) -> Result<ReviewTask, Refusal> {
    app.upstream
        .review()
        .get_review_task(call(
            GetReviewTaskRequest {
                name: format!("reviewTasks/{id}"),
            },
            session,
        ))
        .await
        .map_err(|s| Refusal::from_status(&s))?
        .into_inner()
        .review_task
        .ok_or_else(|| Refusal::local(StatusCode::BAD_GATEWAY, "review returned no task"))
}

#[derive(Serialize, Default)]
pub(super) struct Draft {
    pub(super) action: String,
    pub(super) comment: String,
    pub(super) reasons: Vec<String>,
}

#[derive(Serialize)]
struct Reason {
    code: String,
    title: String,
    description: String,
    checked: bool,
}

pub(super) async fn task_page(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let session = match session(&app, &headers) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let flash = match q.get("done").map(String::as_str) {
        Some("claim") => Some("You claimed this task."),
        Some("release") => Some("The task is back in the queue."),
        Some("approve") => Some("Approved. Registration applies the decision."),
        Some("reject") => Some("Rejected. The applicant is told the reasons."),
        Some("request-changes") => Some("Changes requested. The clock is stopped."),
        Some("rerun-checks") => Some("The checks ran again."),
        _ => None,
    };
    render_task(&app, &headers, &session, &id, None, flash, Draft::default()).await
}

pub(super) async fn render_task(
    app: &App,
    headers: &HeaderMap,
    session: &Session,
    id: &str,
    refusal: Option<Refusal>,
    flash: Option<&str>,
    draft: Draft,
) -> Response {
    if !view::valid_id(id) {
        return message(
            app,
            headers,
            Some(session),
            StatusCode::NOT_FOUND,
            "Not found",
            Refusal::local(StatusCode::NOT_FOUND, "no such task"),
        );
    }
    let task = match get_task(app, session, id).await {
        Ok(task) => task,
        Err(refusal) => {
            let http = refusal.http;
            return message(
                app,
                headers,
                Some(session),
                http,
                "The task could not be read",
                refusal,
            );
        }
    };
    let mut review = app.upstream.review();
    let mut reasons_client = app.upstream.review();
    let mut identity = app.upstream.identity();
    let (audit, catalogue, account, subject) = tokio::join!(
        review.list_audit_entries(call(
            ListAuditEntriesRequest {
                parent: task.name.clone(),
                page_size: 500,
                ..Default::default()
            },
            session,
        )),
        reasons_client.list_rejection_reasons(call(
            ListRejectionReasonsRequest {
                page_size: 500,
                page_token: String::new(),
            },
            session,
        )),
        identity.get_account(call(
            GetAccountRequest {
                name: format!("accounts/{}", task.account_id),
            },
            session,
        )),
        subject(app, session, &task),
    );
    let mut problems: Vec<String> = Vec::new();
    let audit = match audit {
        Ok(r) => view::audit(&r.into_inner().audit_entries),
        Err(s) => {
            problems.push(format!("audit trail: {}", s.message()));
            Vec::new()
        }
    };
    let reasons: Vec<Reason> = match catalogue {
        Ok(r) => r
            .into_inner()
            .reasons
            .into_iter()
            .map(|r| Reason {
                checked: draft.reasons.contains(&r.code),
                code: r.code,
                title: r.title_en,
                description: r.description_en,
            })
            .collect(),
        Err(s) => {
            problems.push(format!("rejection reasons: {}", s.message()));
            Vec::new()
        }
    };
    let (verified_name, verified_entity) = match account {
        Ok(r) => {
            let a = r.into_inner().account.unwrap_or_default();
            let e = a.verified_entity.unwrap_or_default();
            (
                a.verified_enterprise_name,
                format!("{} {}", e.country, e.registration_number)
                    .trim()
                    .to_string(),
            )
        }
        Err(s) => {
            problems.push(format!("identity-check account: {}", s.message()));
            (String::new(), String::new())
        }
    };
    let contacts = match app
        .upstream
        .registration()
        .list_contacts(call(
            kg_proto::registration::ListContactsRequest {
                account_id: task.account_id.clone(),
            },
            session,
        ))
        .await
    {
        Ok(r) => view::contacts(task.profile.as_ref(), &r.into_inner()),
        Err(s) => {
            problems.push(format!("contact addresses: {}", s.message()));
            view::ContactStates::default()
        }
    };
    let subject = match subject {
        Ok(s) => s,
        Err(r) => {
            problems.push(format!("subject: {}", r.message));
            Subject::default()
        }
    };
    let logo = if subject.logo.is_empty() && subject.logo_source.is_empty() {
        Err("the subject could not be read".to_string())
    } else {
        logo::sniff(&subject.logo)
    };

    let state = ReviewTaskState::try_from(task.state).unwrap_or_default();
    let mine = task.assignee == session.subject;
    let is_application = task.subject_kind == SubjectKind::Application as i32;
    let actions = context! {
        claim => state == ReviewTaskState::Queued,
        release => state == ReviewTaskState::Claimed && (mine || session.role == Role::Operator),
        decide => state == ReviewTaskState::Claimed && mine,
        request_changes => state == ReviewTaskState::Claimed && mine && is_application,
        rerun => matches!(state, ReviewTaskState::Queued | ReviewTaskState::WaitingOnApplicant)
            || (state == ReviewTaskState::Claimed && mine),
    };
    // A fresh idempotency key per form: a resent form repeats nothing; a new form is a new act.
    let ids = context! {
        claim => uuid::Uuid::new_v4().to_string(),
        release => uuid::Uuid::new_v4().to_string(),
        approve => uuid::Uuid::new_v4().to_string(),
        reject => uuid::Uuid::new_v4().to_string(),
        changes => uuid::Uuid::new_v4().to_string(),
    };
    let (time_left, urgency) = view::clock(&task, chrono::Utc::now(), app.at_risk);
    let entity = task.entity.clone().unwrap_or_default();
    let profile = task.profile.clone().unwrap_or_default();
    let status = refusal.as_ref().map(|r| r.http).unwrap_or(StatusCode::OK);
    let values = context! {
        id => id,
        name => task.name.clone(),
        subject_name => task.subject.clone(),
        subject_state => subject.state.clone(),
        seller => subject.seller.clone(),
        modification_kind => subject.modification_kind,
        kind => view::kind_label(task.subject_kind),
        state => view::state_label(task.state),
        company => task.company_name.clone(),
        previous_company => task.previous_company_name.clone(),
        account => task.account_id.clone(),
        country => entity.country,
        registration_number => entity.registration_number,
        verified_name => verified_name.clone(),
        verified_entity => verified_entity,
        name_matches => !verified_name.is_empty() && verified_name == task.company_name,
        assignee => task.assignee.clone(),
        mine => mine,
        submitted => view::show_time(task.submit_time.as_ref()),
        deadline => view::show_time(task.deadline.as_ref()),
        claimed => view::show_time(task.claim_time.as_ref()),
        time_left => time_left,
        urgency => urgency,
        etag => task.etag.clone(),
        website => profile.website_url,
        evidence_outcome => view::evidence_outcome(&task),
        materials => ser(view::materials(&task)),
        contacts => ser(&contacts),
        logo_ok => logo.is_ok(),
        logo_problem => logo.as_ref().err().cloned(),
        logo_size => logo.as_ref().ok().map(|l| format!("{} x {} px, {}", l.width, l.height, l.format.content_type())),
        logo_source => subject.logo_source,
        changes => ser(view::changes(&subject.changes)),
        signals => ser(view::signals(&task)),
        audit => ser(&audit),
        decision => view::decision(&task).map(|d| ser(&d)),
        reasons => ser(&reasons),
        actions => actions,
        ids => ids,
        draft => ser(&draft),
        refusal => refusal.map(|r| ser(&r)),
        flash => flash,
        problems => problems,
    };
    Page::new(app, headers, Some(session)).render(app, status, "task.html", values)
}

/// The logo, served only when its bytes are really a PNG or a JPEG, with the type they are.
pub(super) async fn logo_image(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let session = match session(&app, &headers) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let refused = |status: StatusCode, why: String| {
        (
            status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            why,
        )
            .into_response()
    };
    if !view::valid_id(&id) {
        return refused(StatusCode::NOT_FOUND, "no such task".into());
    }
    let task = match get_task(&app, &session, &id).await {
        Ok(t) => t,
        Err(r) => return refused(r.http, r.message),
    };
    let subject = match subject(&app, &session, &task).await {
        Ok(s) => s,
        Err(r) => return refused(r.http, r.message),
    };
    match logo::sniff(&subject.logo) {
        Ok(logo) => Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, logo.format.content_type())
            .header(header::CONTENT_DISPOSITION, "inline")
            .header(header::CACHE_CONTROL, "private, no-store")
            .body(Body::from(subject.logo))
            .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response()),
        Err(why) => refused(StatusCode::UNSUPPORTED_MEDIA_TYPE, why),
    }
}
