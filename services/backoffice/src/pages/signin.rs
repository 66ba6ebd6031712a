//! The development sign-in (`KG_BACKOFFICE_DEV_SIGNIN`, on a loopback address only) and signing
//! out.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use http::StatusCode;
use http::header::{self, HeaderMap, HeaderValue};
use kg_runtime::auth::Role;
use minijinja::context;

use super::{Form, Page, csrf_refused, message, redirect, session};
use crate::App;
use crate::auth;
use crate::upstream::Refusal;

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

pub(super) async fn signin_form(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
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

pub(super) async fn signin(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
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

pub(super) async fn signout(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
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
