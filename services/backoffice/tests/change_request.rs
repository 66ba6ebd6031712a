//! A seller's change request in the back office: the queue shows its kind, the task page shows
//! the field diff and the seller's logo (the request keeps it), and the filters narrow the queue.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

mod common;

use common::*;
use kg_proto::registration::UpdateSellerInfoRequest;
use kg_runtime::auth::Role;
use kg_tests::full_mesh::mask;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_request_shows_its_diff_and_the_filters_narrow_the_queue() {
    let mesh = mesh().await;
    let office = Office::start(&mesh).await;
    let seller = mesh.seller("acct-change", 9101).await;
    let mut profile = seller.profile.clone().unwrap();
    profile.logo.clear();
    profile.introduction =
        "Example Software now also offers managed backups for <small> businesses.".into();
    let request = mesh
        .reg()
        .await
        .update_seller_info(mesh.applicant(
            UpdateSellerInfoRequest {
                request_id: uuid::Uuid::new_v4().to_string(),
                name: seller.name.clone(),
                profile: Some(profile),
                update_mask: mask(&["introduction"]),
                etag: String::new(),
                logo_file_name: String::new(),
            },
            "acct-change",
        ))
        .await
        .unwrap()
        .into_inner()
        .modification_request
        .unwrap();
    let task = mesh.task_of(&request.name).await;
    let id = task_id(&task);
    let reviewer = token("reviewer-1", Role::Reviewer);

    // The queue of change requests holds it; the queue of applications does not.
    let changes = get(&office, "/?kind=change-request", &reviewer, None).await;
    assert_eq!(changes.status, 200, "{}", changes.text());
    let html = changes.text();
    assert!(html.contains(&format!("data-task=\"{id}\"")));
    assert!(html.contains("Change request"));
    let applications = get(&office, "/?kind=application&view=decided", &reviewer, None).await;
    assert!(!applications.text().contains(&format!("data-task=\"{id}\"")));
    assert!(
        get(&office, "/?view=mine", &reviewer, None)
            .await
            .text()
            .contains("No task matches")
    );
    // Bad filters are named; a bad page token is the service's own refusal.
    let bad = get(&office, "/?view=everything", &reviewer, None).await;
    assert_eq!(bad.status, 400);
    assert!(bad.text().contains("unknown view"));
    let bad = get(&office, "/?page=not-a-token", &reviewer, None).await;
    assert_eq!(bad.status, 400);
    assert!(bad.text().contains("INVALID_PAGE_TOKEN"), "{}", bad.text());

    // The task page: the diff, escaped, and the seller's current logo.
    let page = get(&office, &format!("/tasks/{id}"), &reviewer, None).await;
    assert_eq!(page.status, 200, "{}", page.text());
    let html = page.text();
    assert!(html.contains(r#"id="diff""#), "the requested changes");
    assert!(html.contains("<code>introduction</code>"));
    assert!(html.contains("managed backups for &lt;small&gt; businesses"));
    assert!(html.contains("(profile update)"));
    assert!(
        html.contains("from the seller&#x27;s current profile"),
        "the logo's source"
    );
    let logo = get(&office, &format!("/tasks/{id}/logo"), &reviewer, None).await;
    assert_eq!(logo.status, 200, "{}", logo.text());
    assert_eq!(logo.header("content-type"), "image/png");
    // No request-changes form for a change request: the service would refuse it.
    let mut rev = mesh.rev().await;
    rev.claim_review_task(mesh.reviewer(kg_proto::review::ClaimReviewTaskRequest {
        request_id: uuid::Uuid::new_v4().to_string(),
        name: task.name.clone(),
        etag: String::new(),
    }))
    .await
    .unwrap();
    let claimed = get(&office, &format!("/tasks/{id}"), &reviewer, None)
        .await
        .text();
    assert!(claimed.contains(r#"id="approve""#) && claimed.contains(r#"id="reject""#));
    assert!(!claimed.contains(r#"id="request-changes""#));
    assert!(
        get(&office, "/?view=mine", &reviewer, None)
            .await
            .text()
            .contains(&format!("data-task=\"{id}\""))
    );
    office.stop().await;
    mesh.stop().await;
}
