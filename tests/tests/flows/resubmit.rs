//! ResubmitApplication over the whole mesh (real gRPC over TCP, real PostgreSQL or SQLite per
//! KG_TEST_DATABASE, authentication on): a reviewer requests changes, the applicant resubmits
//! the masked fields, the review task resumes its stopped clock with the corrected profile, the
//! applicant is notified, and the approval creates the seller with the resubmitted profile; and
//! the refusals (state, ownership, mask, materials, idempotency).

use std::time::Duration;

use chrono::{DateTime, Utc};
use kg_proto::common::{ReviewDecision, SellerProfile};
use kg_proto::notification::NotificationEventType;
use kg_proto::registration::*;
use kg_proto::review::*;
use kg_review::calendar::WorkingCalendar;
use kg_runtime::error::DecodedError;
use kg_tests::fixtures::{self};
use kg_tests::full_mesh::{Mesh, decoded, mask};
use tonic::Code;

const SECRET: &str = kg_tests::mesh::TEST_SECRET;

fn at(t: &Option<prost_types::Timestamp>) -> DateTime<Utc> {
    let t = t.as_ref().expect("a timestamp");
    DateTime::from_timestamp(t.seconds, t.nanos as u32).unwrap()
}

#[track_caller]
fn expect_error(err: tonic::Status, code: Code, reason: &str) -> DecodedError {
    assert_eq!(err.code(), code, "{err:?}");
    let d = decoded(&err);
    assert_eq!(d.reason.as_deref(), Some(reason), "{err:?}");
    d
}

fn resubmission(
    app: &Application,
    profile: SellerProfile,
    paths: &[&str],
) -> ResubmitApplicationRequest {
    ResubmitApplicationRequest {
        request_id: uuid::Uuid::new_v4().to_string(),
        name: app.name.clone(),
        profile: Some(profile),
        update_mask: mask(paths),
        etag: app.etag.clone(),
        logo_file_name: String::new(),
    }
}

/// Must-show 1: changes requested → the applicant resubmits the masked fields → the review task
/// is QUEUED again with its clock resumed and the new profile → the applicant is notified → the
/// approval creates the seller with the resubmitted profile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resubmission_resumes_the_review_and_the_seller_gets_the_corrected_profile() {
    let m = Mesh::start_with(Some(SECRET)).await;
    let account = "acct-resubmit-1";
    let calendar = WorkingCalendar::china();
    let app = m.submitted(account, 701).await;
    let first = m.task_of(&app.name).await;
    let first_deadline = at(&first.deadline);
    assert_eq!(at(&app.review_deadline), first_deadline);

    let (waiting, before) = m.request_changes(&app.name).await;
    assert_eq!(waiting.state, ReviewTaskState::WaitingOnApplicant as i32);
    assert!(waiting.deadline.is_none(), "the clock is stopped");
    let paused = at(&waiting.paused_since);
    assert_eq!(
        before.changes_requested.as_ref().unwrap().decision,
        ReviewDecision::RequestChanges as i32
    );
    assert_eq!(
        m.review_task(&first.name).await.state,
        ReviewTaskState::WaitingOnApplicant as i32
    );
    m.wait_notified(account, NotificationEventType::ChangesRequested)
        .await;
    // Some time passes while the task waits on the applicant.
    tokio::time::sleep(Duration::from_millis(300)).await;

    // The request carries other changes too; only the masked ones count.
    let mut corrected = before.profile.clone().unwrap();
    corrected.introduction =
        "Example Software builds monitoring, backup and alerting tools for cloud teams.".into();
    corrected.website_url = m.website.url("/en?resubmitted=1");
    corrected.industry = "outside the mask".into();
    corrected.customer_service_email = "outside@example.com".into();
    let resubmitted = m
        .reg()
        .await
        .resubmit_application(m.applicant(
            resubmission(&before, corrected.clone(), &["introduction", "website_url"]),
            account,
        ))
        .await
        .unwrap()
        .into_inner()
        .application
        .unwrap();
    let mut expected = before.profile.clone().unwrap();
    expected.introduction = corrected.introduction.clone();
    expected.website_url = corrected.website_url.clone();
    assert_eq!(resubmitted.state, ApplicationState::Submitted as i32);
    assert_eq!(
        resubmitted.profile.as_ref().unwrap(),
        &expected,
        "exactly the masked fields changed"
    );
    assert!(resubmitted.changes_requested.is_none());
    assert_ne!(resubmitted.etag, before.etag);
    assert_eq!(resubmitted.entity, before.entity);
    assert_eq!(resubmitted.company_name, before.company_name);

    // The relay resumes the task; the application is in review again with the new deadline.
    let in_review = m
        .application_in(&app.name, ApplicationState::InReview)
        .await;
    assert_eq!(in_review.profile.as_ref().unwrap(), &expected);
    assert_eq!(
        m.task_of(&app.name).await.name,
        first.name,
        "the same task, resumed"
    );
    let task = m.review_task(&first.name).await;
    assert_eq!(task.state, ReviewTaskState::Queued as i32);
    assert!(task.assignee.is_empty() && task.paused_since.is_none());
    let resumed_at = at(&task.submit_time);
    assert!(resumed_at >= paused, "{resumed_at} < {paused}");
    let paused_for = task.paused_duration.unwrap();
    assert!(
        paused_for.seconds > 0 || paused_for.nanos > 0,
        "{paused_for:?}"
    );
    // Review's rule: the working time left (72 hours minus what was used before the pause),
    // counted from the resubmission; so the deadline moves later by the working time the task
    // waited, never earlier.
    let used =
        calendar.working_time_between(calendar.effective_start(at(&first.submit_time)), paused);
    let deadline = at(&task.deadline);
    assert_eq!(
        deadline,
        calendar.resume_deadline(resumed_at, chrono::Duration::hours(72) - used)
    );
    assert!(deadline >= first_deadline, "{deadline} < {first_deadline}");
    assert_eq!(at(&in_review.review_deadline), deadline);
    let reviewed = task.profile.unwrap();
    assert_eq!(reviewed.introduction, expected.introduction);
    assert_eq!(reviewed.website_url, expected.website_url);
    assert_eq!(reviewed.industry, expected.industry);
    assert_eq!(reviewed.logo_sha256, expected.logo_sha256);
    m.wait_notified(account, NotificationEventType::ApplicationResubmitted)
        .await;

    // The reviewer approves: the seller has the resubmitted profile.
    m.decide(&app.name, true).await;
    let approved = m
        .application_in(&app.name, ApplicationState::Approved)
        .await;
    let seller = m
        .reg()
        .await
        .get_seller(m.operator(GetSellerRequest {
            name: approved.seller.clone(),
        }))
        .await
        .unwrap()
        .into_inner()
        .seller
        .unwrap();
    assert_eq!(seller.profile.unwrap(), expected);
    m.wait_notified(account, NotificationEventType::ApplicationApproved)
        .await;
    m.stop().await;
}

/// Must-show 2: the refusals, and idempotency on request_id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resubmission_refusals_and_idempotency() {
    let m = Mesh::start_with(Some(SECRET)).await;
    let account = "acct-resubmit-2";
    let app = m.submitted(account, 702).await;
    let mut reg = m.reg().await;
    let mut corrected = app.profile.clone().unwrap();
    corrected.introduction = "Example Software builds cloud tools, now described in full.".into();

    // Only CHANGES_REQUESTED can be resubmitted.
    let err = reg
        .resubmit_application(m.applicant(
            resubmission(&app, corrected.clone(), &["introduction"]),
            account,
        ))
        .await
        .unwrap_err();
    let d = expect_error(err, Code::FailedPrecondition, "INVALID_APPLICATION_STATE");
    assert_eq!(
        d.metadata.get("state").map(String::as_str),
        Some("IN_REVIEW")
    );

    let (_, before) = m.request_changes(&app.name).await;

    // Another applicant's application does not exist for them.
    m.import(fixtures::eligible_account("acct-resubmit-other"))
        .await;
    let err = reg
        .resubmit_application(m.applicant(
            resubmission(&before, corrected.clone(), &["introduction"]),
            "acct-resubmit-other",
        ))
        .await
        .unwrap_err();
    expect_error(err, Code::NotFound, "APPLICATION_NOT_FOUND");

    // Unknown and output-only mask paths.
    for paths in [&["entity"][..], &["logo_sha256"], &["introduction", "nope"]] {
        let err = reg
            .resubmit_application(
                m.applicant(resubmission(&before, corrected.clone(), paths), account),
            )
            .await
            .unwrap_err();
        expect_error(err, Code::InvalidArgument, "INVALID_UPDATE_MASK");
    }
    // An empty mask replaces the whole profile (per the proto): a partial profile then empties
    // required materials and is refused field by field.
    let partial = SellerProfile {
        introduction: corrected.introduction.clone(),
        ..Default::default()
    };
    let err = reg
        .resubmit_application(m.applicant(resubmission(&before, partial, &[]), account))
        .await
        .unwrap_err();
    let d = expect_error(err, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert!(
        d.field_violations
            .iter()
            .any(|(field, why)| field == "profile.website_url" && why.starts_with("FIELD_REQUIRED")),
        "{d:?}"
    );

    // A failing material (a Chinese website) is refused as at submission; nothing changes.
    let mut chinese = corrected.clone();
    chinese.website_url = m.website.url("/zh");
    let err = reg
        .resubmit_application(m.applicant(
            resubmission(&before, chinese, &["introduction", "website_url"]),
            account,
        ))
        .await
        .unwrap_err();
    let d = expect_error(err, Code::InvalidArgument, "MATERIALS_CHECK_FAILED");
    assert!(
        d.field_violations
            .iter()
            .any(|(field, _)| field == "profile.website_url"),
        "{d:?}"
    );
    // A stale etag is refused.
    let mut stale = resubmission(&before, corrected.clone(), &["introduction"]);
    stale.etag = "W/\"1\"".into();
    let err = reg
        .resubmit_application(m.applicant(stale, account))
        .await
        .unwrap_err();
    expect_error(err, Code::Aborted, "ETAG_MISMATCH");
    let unchanged = m.application(&app.name).await;
    assert_eq!(unchanged, before, "nothing changed");

    // The same request_id replayed returns the first result; a changed body is refused.
    let request = resubmission(&before, corrected.clone(), &["introduction"]);
    let first = reg
        .resubmit_application(m.applicant(request.clone(), account))
        .await
        .unwrap()
        .into_inner()
        .application
        .unwrap();
    assert_eq!(first.state, ApplicationState::Submitted as i32);
    assert_eq!(
        first.profile.as_ref().unwrap().introduction,
        corrected.introduction
    );
    let replay = reg
        .resubmit_application(m.applicant(request.clone(), account))
        .await
        .unwrap()
        .into_inner()
        .application
        .unwrap();
    assert_eq!(replay.name, first.name);
    assert_eq!(replay.profile, first.profile);
    assert!(
        replay.state == ApplicationState::Submitted as i32
            || replay.state == ApplicationState::InReview as i32,
        "{:?}",
        replay.state
    );
    // Another applicant replaying the key learns nothing.
    let err = reg
        .resubmit_application(m.applicant(request.clone(), "acct-resubmit-other"))
        .await
        .unwrap_err();
    expect_error(err, Code::NotFound, "APPLICATION_NOT_FOUND");
    let mut changed = request.clone();
    changed.profile.as_mut().unwrap().introduction = "Another body under the same key.".into();
    let err = reg
        .resubmit_application(m.applicant(changed, account))
        .await
        .unwrap_err();
    expect_error(err, Code::InvalidArgument, "IDEMPOTENCY_KEY_REUSED");
    // A second resubmission (new key) finds the application back in review.
    let err = reg
        .resubmit_application(m.applicant(
            resubmission(&before, corrected.clone(), &["introduction"]),
            account,
        ))
        .await
        .unwrap_err();
    expect_error(err, Code::FailedPrecondition, "INVALID_APPLICATION_STATE");

    // Exactly one resubmission happened: one notification, the task resumed once.
    let in_review = m
        .application_in(&app.name, ApplicationState::InReview)
        .await;
    assert_eq!(
        in_review.profile.unwrap().introduction,
        corrected.introduction
    );
    m.wait_notified(account, NotificationEventType::ApplicationResubmitted)
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        m.count_notified(account, NotificationEventType::ApplicationResubmitted)
            .await,
        1
    );
    let task = m.task_of(&app.name).await;
    assert_eq!(task.state, ReviewTaskState::Queued as i32);
    m.stop().await;
}
