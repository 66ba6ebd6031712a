//! The pages and actions. Each handler authenticates first; each POST checks its CSRF token
//! before it calls anything, then calls the service with the reviewer's token and shows the
//! service's own refusal when there is one.
//!
//! This module holds the router and what every page shares (the templates, the security
//! headers, the page frame, the session check, the messages, the form body); the pages are
//! `queue.rs` (the queue), `task.rs` (a task and its logo), `actions.rs` (the actions on a
//! task) and `signin.rs` (the development sign-in and signing out).

mod actions;
mod queue;
mod signin;
mod task;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::StatusCode;
use http::header::{self, HeaderMap, HeaderValue};
use minijinja::{Value, context};
use serde::Serialize;

use crate::App;
use crate::auth::{self, Denied, Session};
use crate::upstream::Refusal;

/// A serde value for a template.
fn ser<T: Serialize>(value: T) -> Value {
    Value::from(minijinja::value::Serde(value))
}

pub fn templates() -> anyhow::Result<minijinja::Environment<'static>> {
    let mut env = minijinja::Environment::new();
    // `.html` names turn HTML auto-escaping on; no template marks anything safe.
    for (name, source) in [
        ("layout.html", include_str!("../../templates/layout.html")),
        ("queue.html", include_str!("../../templates/queue.html")),
        ("task.html", include_str!("../../templates/task.html")),
        ("signin.html", include_str!("../../templates/signin.html")),
        ("message.html", include_str!("../../templates/message.html")),
    ] {
        env.add_template(name, source)?;
    }
    Ok(env)
}

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(queue::queue))
        .route("/tasks/{id}", get(task::task_page))
        .route("/tasks/{id}/logo", get(task::logo_image))
        .route("/tasks/{id}/{action}", post(actions::action))
        .route("/signin", get(signin::signin_form).post(signin::signin))
        .route("/signout", post(signin::signout))
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
        include_str!("../../static/app.css"),
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
