//! Hostile input against the back office, over plain HTTP as the auth proxy would send it: HTML
//! in a company name, a stored logo that is not the image it claims to be, forged form posts.
//! The mesh behind it is real (every service over TCP, authentication on).

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

mod common;

use common::*;
use kg_proto::review::{AuditAction, ReviewTaskState};
use kg_runtime::auth::Role;
use kg_tests::fixtures;
use sea_orm::{ConnectionTrait, Database, DbBackend, Statement};

const HOSTILE_NAME: &str =
    r#"<script>alert("kg")</script><img src=x onerror=alert(1)> Evil & Co., Ltd."#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn html_in_a_company_name_is_shown_as_text() {
    let mesh = mesh().await;
    let office = Office::start(&mesh).await;
    let mut account = fixtures::eligible_account("acct-xss");
    account.verified_enterprise_name = HOSTILE_NAME.to_string();
    mesh.import(account).await;
    let app = mesh
        .reg()
        .await
        .submit_application(mesh.applicant(
            fixtures::submission("acct-xss", 7101, &mesh.website.url("/en")),
            "acct-xss",
        ))
        .await
        .unwrap()
        .into_inner()
        .application
        .unwrap();
    assert_eq!(
        app.company_name, HOSTILE_NAME,
        "the mesh kept the name as written"
    );
    let task = mesh.task_of(&app.name).await;
    let reviewer = token("reviewer-1", Role::Reviewer);

    for path in ["/".to_string(), format!("/tasks/{}", task_id(&task))] {
        let page = get(&office, &path, &reviewer, None).await;
        assert_eq!(page.status, 200, "{path}: {}", page.text());
        let html = page.text();
        assert!(
            html.contains("&lt;script&gt;alert(&quot;kg&quot;)&lt;&#x2f;script&gt;"),
            "{path}: the name is shown escaped"
        );
        assert!(html.contains("&lt;img src=x onerror=alert(1)&gt; Evil &amp; Co., Ltd."));
        let lower = html.to_ascii_lowercase();
        assert!(
            !lower.contains("<script"),
            "{path}: no script element at all"
        );
        assert!(!lower.contains("<img src=x"), "{path}: no injected element");
        assert!(
            !lower.contains("onerror=alert(1)>"),
            "{path}: no live attribute"
        );
    }
    office.stop().await;
    mesh.stop().await;
}

/// Replaces the stored logo bytes of an application in registration's own database: how a
/// logo that slipped past the checks (an older version, a bug, a restored backup) would look.
async fn tamper_logo(mesh: &kg_tests::full_mesh::Mesh, application_id: &str, bytes: &[u8]) {
    let db = Database::connect(mesh._dbs[1].url.as_str()).await.unwrap();
    let backend = db.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => {
            "UPDATE registration_applications SET logo = $1 WHERE application_id = $2"
        }
        _ => "UPDATE registration_applications SET logo = ? WHERE application_id = ?",
    };
    let done = db
        .execute_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [bytes.to_vec().into(), application_id.into()],
        ))
        .await
        .unwrap();
    assert_eq!(done.rows_affected(), 1, "the application's logo row");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logo_that_is_not_what_it_claims_is_refused() {
    let mesh = mesh().await;
    let office = Office::start(&mesh).await;
    let app = mesh.submitted("acct-logo", 7201).await;
    let task = mesh.task_of(&app.name).await;
    let id = task_id(&task);
    let reviewer = token("reviewer-1", Role::Reviewer);

    // The genuine PNG: served as what it is, never sniffed.
    let logo = get(&office, &format!("/tasks/{id}/logo"), &reviewer, None).await;
    assert_eq!(logo.status, 200, "{}", logo.text());
    assert_eq!(logo.header("content-type"), "image/png");
    assert_eq!(logo.header("x-content-type-options"), "nosniff");
    assert_eq!(
        logo.body,
        fixtures::png_logo(),
        "the bytes registration holds"
    );
    let page = get(&office, &format!("/tasks/{id}"), &reviewer, None)
        .await
        .text();
    assert!(page.contains(r#"id="logo-preview""#));

    // An SVG with script, still declared image/png.
    let svg = br#"<svg xmlns="http://www.w3.org/2000/svg" onload="alert(document.cookie)"><rect width="10" height="10"/></svg>"#;
    tamper_logo(&mesh, &app.application_id, svg).await;
    let logo = get(&office, &format!("/tasks/{id}/logo"), &reviewer, None).await;
    assert_eq!(logo.status, 415, "refused, not served");
    assert!(logo.header("content-type").starts_with("text/plain"));
    assert_eq!(logo.header("x-content-type-options"), "nosniff");
    let why = logo.text();
    assert!(
        why.contains("not a PNG or JPEG") && why.contains("SVG"),
        "{why}"
    );
    assert!(
        !why.contains("<svg"),
        "the bytes themselves are never echoed"
    );
    let page = get(&office, &format!("/tasks/{id}"), &reviewer, None).await;
    assert_eq!(page.status, 200);
    let page = page.text();
    assert!(page.contains(r#"id="logo-refused""#), "the page says why");
    assert!(
        !page.contains(r#"id="logo-preview""#),
        "and shows no <img> of it"
    );
    assert!(!page.contains("<svg"));

    // HTML behind a PNG signature: the magic bytes alone are not enough.
    let mut fake = b"\x89PNG\r\n\x1a\n".to_vec();
    fake.extend_from_slice(b"<html><script>alert(1)</script></html>");
    tamper_logo(&mesh, &app.application_id, &fake).await;
    let logo = get(&office, &format!("/tasks/{id}/logo"), &reviewer, None).await;
    assert_eq!(logo.status, 415, "{}", logo.text());

    // A real JPEG declared as PNG is served as the JPEG it is.
    tamper_logo(&mesh, &app.application_id, &fixtures::jpeg_logo()).await;
    let logo = get(&office, &format!("/tasks/{id}/logo"), &reviewer, None).await;
    assert_eq!(logo.status, 200);
    assert_eq!(logo.header("content-type"), "image/jpeg");
    office.stop().await;
    mesh.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_posts_are_refused_and_change_nothing() {
    let mesh = mesh().await;
    let office = Office::start(&mesh).await;
    let app = mesh.submitted("acct-csrf", 7301).await;
    let task = mesh.task_of(&app.name).await;
    let id = task_id(&task);
    let r1 = token("reviewer-1", Role::Reviewer);
    let r2 = token("reviewer-2", Role::Reviewer);

    // Reviewer 1's page: every response carries the strict headers, and no token anywhere.
    let page = get(&office, &format!("/tasks/{id}"), &r1, None).await;
    assert_eq!(page.status, 200, "{}", page.text());
    let csp = page.header("content-security-policy");
    assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"));
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("script-src"),
        "{csp}"
    );
    assert_eq!(page.header("x-frame-options"), "DENY");
    assert_eq!(page.header("x-content-type-options"), "nosniff");
    assert_eq!(page.header("referrer-policy"), "no-referrer");
    let html = page.text();
    assert!(!html.contains(&r1), "the bearer token is never rendered");
    let cookie = page.csrf_cookie().expect("a CSRF cookie is set");
    let cookie = cookie.as_str();
    let set = page.header("set-cookie");
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    let csrf = input_value(&html, "/claim\"", "csrf");
    let etag = input_value(&html, "/claim\"", "etag");
    let request_id = input_value(&html, "/claim\"", "request_id");
    assert_eq!(etag, task.etag);
    let (csrf, etag, request_id) = (csrf.as_str(), etag.as_str(), request_id.as_str());

    // Reviewer 2's token for the same browser cookie: valid, but only for reviewer 2.
    let other = get(&office, &format!("/tasks/{id}"), &r2, Some(cookie)).await;
    let csrf_of_r2 = input_value(&other.text(), "/claim\"", "csrf");
    assert_ne!(csrf_of_r2, csrf);
    let csrf_of_r2 = csrf_of_r2.as_str();

    let claim = format!("/tasks/{id}/claim");
    let approve = format!("/tasks/{id}/approve");
    let zeros = "0".repeat(64);
    let zeros = zeros.as_str();
    // (what is forged, the action, the CSRF cookie sent, the form)
    type Forgery<'a> = (&'a str, String, Option<&'a str>, Vec<(&'a str, &'a str)>);
    let forged: Vec<Forgery> = vec![
        (
            "no token",
            claim.clone(),
            Some(cookie),
            vec![("etag", etag), ("request_id", request_id)],
        ),
        (
            "a wrong token",
            claim.clone(),
            Some(cookie),
            vec![("csrf", zeros), ("etag", etag), ("request_id", request_id)],
        ),
        (
            "another reviewer's token",
            claim.clone(),
            Some(cookie),
            vec![
                ("csrf", csrf_of_r2),
                ("etag", etag),
                ("request_id", request_id),
            ],
        ),
        (
            "no cookie",
            claim.clone(),
            None,
            vec![("csrf", csrf), ("etag", etag), ("request_id", request_id)],
        ),
        (
            "an approval without a token",
            approve.clone(),
            Some(cookie),
            vec![("comment", "looks fine"), ("request_id", request_id)],
        ),
    ];
    for (what, path, cookie, form) in &forged {
        let answer = post(&office, path, &r1, *cookie, form).await;
        assert_eq!(answer.status, 403, "{what}: {}", answer.text());
        assert!(
            answer.text().contains("CSRF token is missing or wrong"),
            "{what}"
        );
    }
    // A cross-site form cannot even set a Content-Type the parser reads.
    let answer = office_post_json(&office, &claim, &r1, cookie).await;
    assert_eq!(answer, 403);

    // Nothing changed: still queued, unclaimed, the same etag, only the creation audited.
    let now = mesh.review_task(&task.name).await;
    assert_eq!(now.state, ReviewTaskState::Queued as i32);
    assert_eq!(now.assignee, "");
    assert_eq!(now.etag, task.etag);
    assert!(now.decision.is_none());
    assert_eq!(
        audited(&mesh, &task).await,
        vec![AuditAction::Created as i32]
    );

    // The genuine form works (so the refusals above are the check, not a broken page)...
    let ok = post(
        &office,
        &claim,
        &r1,
        Some(cookie),
        &[("csrf", csrf), ("etag", etag), ("request_id", request_id)],
    )
    .await;
    assert_eq!(ok.status, 303, "{}", ok.text());
    assert_eq!(ok.header("location"), format!("/tasks/{id}?done=claim"));
    let now = mesh.review_task(&task.name).await;
    assert_eq!(now.state, ReviewTaskState::Claimed as i32);
    assert_eq!(now.assignee, "reviewer-1");

    // ...and a valid form the service refuses shows the service's own reason.
    let stale = post(
        &office,
        &claim,
        &r2,
        Some(cookie),
        &[
            ("csrf", csrf_of_r2),
            ("etag", etag),
            ("request_id", "r2-claim-1"),
        ],
    )
    .await;
    assert_eq!(stale.status, 409, "{}", stale.text());
    let text = stale.text();
    assert!(
        text.contains("ETAG_MISMATCH") || text.contains("TASK_CLAIMED_BY_OTHER"),
        "{text}"
    );
    assert_eq!(mesh.review_task(&task.name).await.assignee, "reviewer-1");

    // Without a session there is no page at all; an applicant's token is not staff.
    let none = http_client()
        .get(format!("{}/", office.url))
        .send()
        .await
        .unwrap();
    assert_eq!(none.status().as_u16(), 303, "to the development sign-in");
    let bad = get(&office, "/", "not-a-jwt", None).await;
    assert_eq!(bad.status, 401);
    let applicant = get(&office, "/", &token("acct-csrf", Role::Applicant), None).await;
    assert_eq!(applicant.status, 403);
    office.stop().await;
    mesh.stop().await;
}

/// A JSON body with a valid cookie but no form token: refused like any other forgery.
async fn office_post_json(office: &Office, path: &str, token: &str, cookie: &str) -> u16 {
    http_client()
        .post(format!("{}{path}", office.url))
        .bearer_auth(token)
        .header("cookie", format!("kg_csrf={cookie}"))
        .header("content-type", "application/json")
        .body(r#"{"etag":"","request_id":"x"}"#)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}
