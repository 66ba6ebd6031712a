//! The pages and actions. Each handler authenticates first; each POST checks its CSRF token
//! before it calls anything, then calls the service with the reviewer's token and shows the
//! service's own refusal when there is one.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::StatusCode;
use http::header::{self, HeaderMap, HeaderValue};
use kg_proto::identity::GetAccountRequest;
use kg_proto::registration::{
    ApplicationState, GetApplicationRequest, GetModificationRequestRequest, GetSellerRequest,
    ModificationKind,
};
use kg_proto::review::*;
use kg_runtime::auth::Role;
use minijinja::{Value, context};
use serde::Serialize;

use crate::App;
use crate::auth::{self, Denied, Session};
use crate::logo;
use crate::upstream::{Refusal, call};
use crate::view;

const PAGE_SIZE: i32 = 25;
/// Longest page token taken from a URL (the service's are far shorter).
const MAX_PAGE_TOKEN: usize = 1024;
const MAX_COMMENT_CHARS: usize = 4000;

/// A serde value for a template.
fn ser<T: Serialize>(value: T) -> Value {
    Value::from(minijinja::value::Serde(value))
}

pub fn templates() -> anyhow::Result<minijinja::Environment<'static>> {
    let mut env = minijinja::Environment::new();
    // `.html` names turn HTML auto-escaping on; no template marks anything safe.
    for (name, source) in [
        ("layout.html", include_str!("../templates/layout.html")),
        ("queue.html", include_str!("../templates/queue.html")),
        ("task.html", include_str!("../templates/task.html")),
        ("signin.html", include_str!("../templates/signin.html")),
        ("message.html", include_str!("../templates/message.html")),
    ] {
        env.add_template(name, source)?;
    }
    Ok(env)
}

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(queue))
        .route("/tasks/{id}", get(task_page))
        .route("/tasks/{id}/logo", get(logo_image))
        .route("/tasks/{id}/{action}", post(action))
        .route("/signin", get(signin_form).post(signin))
        .route("/signout", post(signout))
        .route("/static/app.css", get(stylesheet))
        .route("/healthz", get(|| async { "ok" }))
        .fallback(not_found)
        .layer(axum::middleware::map_response(security_headers))
        .with_state(app)
}

/// Headers of every response: no script may run, nothing may frame the pages, nothing is
/// sniffed, no URL leaks in a Referer, nothing is cached unless a handler says so.
async fn security_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; img-src 'self'; style-src 'self'; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "permissions-policy",
        HeaderValue::from_static("camera=(), microphone=(), geolocation=()"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        include_str!("../static/app.css"),
    )
        .into_response()
}

/// The values every page gets: who is signed in and the CSRF token of its forms.
#[derive(Serialize)]
struct Base {
    me: Option<Me>,
    dev: bool,
    dev_signin: bool,
    csrf: String,
}

#[derive(Serialize)]
struct Me {
    subject: String,
    role: &'static str,
}

/// A page being built: its CSRF cookie (set when the browser has none yet) and base values.
struct Page {
    base: Base,
    set_cookie: Option<String>,
}

impl Page {
    fn new(app: &App, headers: &HeaderMap, session: Option<&Session>) -> Page {
        let (nonce, set_cookie) = auth::csrf_cookie(app, headers);
        let subject = session.map(|s| s.subject.as_str()).unwrap_or("");
        Page {
            base: Base {
                me: session.map(|s| Me {
                    subject: s.subject.clone(),
                    role: s.role.as_str(),
                }),
                dev: session.is_some_and(|s| s.dev),
                dev_signin: app.dev_signin,
                csrf: auth::csrf_token(&app.csrf_key, &nonce, subject),
            },
            set_cookie,
        }
    }

    fn render(self, app: &App, status: StatusCode, template: &str, values: Value) -> Response {
        let ctx = context! { base => ser(&self.base), ..values };
        let html = match app
            .templates
            .get_template(template)
            .and_then(|t| t.render(ctx))
        {
            Ok(html) => html,
            Err(e) => {
                tracing::error!(template, error = %e, "template failed");
                return (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the page could not be rendered",
                )
                    .into_response();
            }
        };
        let mut response = (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            html,
        )
            .into_response();
        if let Some(cookie) = self.set_cookie
            && let Ok(value) = HeaderValue::from_str(&cookie)
        {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
        response
    }
}

/// A page with one message (errors, refusals without a task to show).
fn message(
    app: &App,
    headers: &HeaderMap,
    session: Option<&Session>,
    status: StatusCode,
    title: &str,
    refusal: Refusal,
) -> Response {
    Page::new(app, headers, session).render(
        app,
        status,
        "message.html",
        context! { title => title, refusal => ser(&refusal) },
    )
}

/// The signed-in reviewer, or the answer to give instead (boxed: a Response is large).
fn session(app: &App, headers: &HeaderMap) -> Result<Session, Box<Response>> {
    auth::authenticate(app, headers).map_err(|denied| {
        Box::new(match denied {
            Denied::SignIn => redirect("/signin"),
            Denied::Unauthenticated(why) => message(
                app,
                headers,
                None,
                StatusCode::UNAUTHORIZED,
                "Not signed in",
                Refusal::local(StatusCode::UNAUTHORIZED, why),
            ),
            Denied::Forbidden(why) => message(
                app,
                headers,
                None,
                StatusCode::FORBIDDEN,
                "Not allowed",
                Refusal::local(StatusCode::FORBIDDEN, why),
            ),
        })
    })
}

fn redirect(to: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_string())]).into_response()
}

async fn not_found(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    message(
        &app,
        &headers,
        None,
        StatusCode::NOT_FOUND,
        "Not found",
        Refusal::local(StatusCode::NOT_FOUND, "there is no such page"),
    )
}

fn bad_request(app: &App, headers: &HeaderMap, session: &Session, why: String) -> Response {
    message(
        app,
        headers,
        Some(session),
        StatusCode::BAD_REQUEST,
        "Bad request",
        Refusal::local(StatusCode::BAD_REQUEST, why),
    )
}

// ---------------------------------------------------------------------------------------------
// The queue
// ---------------------------------------------------------------------------------------------

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

async fn queue(
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

// ---------------------------------------------------------------------------------------------
// A task
// ---------------------------------------------------------------------------------------------

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
struct Draft {
    action: String,
    comment: String,
    reasons: Vec<String>,
}

#[derive(Serialize)]
struct Reason {
    code: String,
    title: String,
    description: String,
    checked: bool,
}

async fn task_page(
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

async fn render_task(
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
async fn logo_image(
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

// ---------------------------------------------------------------------------------------------
// Actions
// ---------------------------------------------------------------------------------------------

/// A urlencoded form body; repeated names (the reason checkboxes) are kept in order.
struct Form(Vec<(String, String)>);

impl Form {
    fn parse(body: &[u8]) -> Form {
        Form(url::form_urlencoded::parse(body).into_owned().collect())
    }

    fn one(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }

    fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

fn csrf_refused(app: &App, headers: &HeaderMap, session: Option<&Session>) -> Response {
    message(
        app,
        headers,
        session,
        StatusCode::FORBIDDEN,
        "Form refused",
        Refusal::local(
            StatusCode::FORBIDDEN,
            "the form's CSRF token is missing or wrong, so nothing was done: reload the page and try again",
        ),
    )
}

fn valid_request_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

async fn action(
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
    if action != "rerun-checks" && !valid_request_id(&request_id) {
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

// ---------------------------------------------------------------------------------------------
// Development sign-in
// ---------------------------------------------------------------------------------------------

fn dev_signin_off(app: &App, headers: &HeaderMap) -> Response {
    message(
        app,
        headers,
        None,
        StatusCode::NOT_FOUND,
        "Sign in",
        Refusal::local(
            StatusCode::NOT_FOUND,
            "development sign-in is off: reviewers sign in through the platform's auth proxy",
        ),
    )
}

async fn signin_form(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    if !app.dev_signin {
        return dev_signin_off(&app, &headers);
    }
    Page::new(&app, &headers, None).render(
        &app,
        StatusCode::OK,
        "signin.html",
        context! { error => None::<String>, subject => "" },
    )
}

fn valid_principal(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b))
}

async fn signin(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    if !app.dev_signin {
        return dev_signin_off(&app, &headers);
    }
    let form = Form::parse(&body);
    if !auth::csrf_valid(&app, &headers, "", form.one("csrf")) {
        return csrf_refused(&app, &headers, None);
    }
    let subject = form.one("subject").trim().to_string();
    let role = match form.one("role") {
        "reviewer" => Some(Role::Reviewer),
        "operator" => Some(Role::Operator),
        _ => None,
    };
    let (Some(role), true) = (role, valid_principal(&subject)) else {
        return Page::new(&app, &headers, None).render(
            &app,
            StatusCode::BAD_REQUEST,
            "signin.html",
            context! {
                error => "Give a principal id (1 to 64 of A-Z a-z 0-9 - _ . @) and the role reviewer or operator.",
                subject => subject,
            },
        );
    };
    let token = app
        .auth
        .mint(&subject, role, Duration::from_secs(auth::DEV_SESSION_SECS));
    let cookie = auth::set_cookie(&app, "kg_dev_session", &token, Some(auth::DEV_SESSION_SECS));
    tracing::warn!(subject, role = role.as_str(), "DEVELOPMENT sign-in");
    let mut response = redirect("/");
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

async fn signout(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    let session = match session(&app, &headers) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    if !auth::csrf_valid(
        &app,
        &headers,
        &session.subject,
        Form::parse(&body).one("csrf"),
    ) {
        return csrf_refused(&app, &headers, Some(&session));
    }
    let mut response = redirect(if app.dev_signin { "/signin" } else { "/" });
    let cookie = auth::set_cookie(&app, "kg_dev_session", "", Some(0));
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}
