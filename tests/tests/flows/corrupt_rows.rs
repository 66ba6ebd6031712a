//! Stored protobuf that does not decode is refused, never read as an empty message (whole mesh,
//! real gRPC, PostgreSQL or SQLite per KG_TEST_DATABASE): a row whose bytes are garbage answers
//! INTERNAL with the reason STORED_DATA_CORRUPT, and nothing is written over it, least of all an
//! empty seller profile. A NULL column is not corrupt: it stays unset.

use std::time::Duration;

use kg_proto::common::ReviewDecision;
use kg_proto::registration::*;
use kg_proto::review::GetReviewTaskRequest;
use kg_registration::store::{application, modification, seller};
use kg_review::store::task;
use kg_tests::full_mesh::{Mesh, decoded, mask};
use kg_tests::poll;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, Statement,
};
use tonic::Code;

/// Bytes no protobuf message decodes from: a field key whose varint never ends.
const GARBAGE: [u8; 3] = [0xFF, 0xFF, 0xFF];

async fn connect(url: &str) -> DatabaseConnection {
    kg_runtime::db::connect(url).await.unwrap()
}

/// The registration database of `m` (the mesh's second database).
async fn registration_db(m: &Mesh) -> DatabaseConnection {
    connect(&m._dbs[1].url).await
}

/// The review database of `m` (the mesh's third database).
async fn review_db(m: &Mesh) -> DatabaseConnection {
    connect(&m._dbs[2].url).await
}

async fn set_seller_profile(db: &DatabaseConnection, seller_id: &str, bytes: Vec<u8>) {
    let done = seller::Entity::update_many()
        .col_expr(seller::Column::Profile, Expr::value(bytes))
        .filter(seller::Column::SellerId.eq(seller_id))
        .exec(db)
        .await
        .unwrap();
    assert_eq!(done.rows_affected, 1);
}

async fn seller_row(db: &DatabaseConnection, seller_id: &str) -> seller::Model {
    seller::Entity::find_by_id(seller_id.to_string())
        .one(db)
        .await
        .unwrap()
        .unwrap()
}

/// INTERNAL with STORED_DATA_CORRUPT of `domain`; the message reveals nothing stored.
#[track_caller]
fn assert_corrupt(err: &tonic::Status, domain: &str, what: &str) {
    assert_eq!(err.code(), Code::Internal, "{what}: {err:?}");
    let d = decoded(err);
    assert_eq!(
        d.reason.as_deref(),
        Some("STORED_DATA_CORRUPT"),
        "{what}: {d:?}"
    );
    assert_eq!(d.domain.as_deref(), Some(domain), "{what}: {d:?}");
    assert!(
        !err.message().contains("decode") && !err.message().contains('/'),
        "{what}: the message says no internals: {:?}",
        err.message()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seller_profile_that_does_not_decode_is_internal_not_an_empty_profile() {
    let m = Mesh::start().await;
    let seller = m.seller("acct-corrupt-get", 701).await;
    assert!(!seller.profile.as_ref().unwrap().website_url.is_empty());
    let db = registration_db(&m).await;
    let sound = seller_row(&db, &seller.seller_id).await;
    set_seller_profile(&db, &seller.seller_id, GARBAGE.to_vec()).await;

    let mut reg = m.reg().await;
    let err = reg
        .get_seller(GetSellerRequest {
            name: seller.name.clone(),
        })
        .await
        .unwrap_err();
    assert_corrupt(&err, "registration.koogallery.io", "GetSeller");
    let err = reg
        .list_sellers(ListSellersRequest {
            account_id: "acct-corrupt-get".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_corrupt(&err, "registration.koogallery.io", "ListSellers");
    // Reading wrote nothing.
    assert_eq!(seller_row(&db, &seller.seller_id).await.profile, GARBAGE);

    // Repaired, the seller reads as it was.
    set_seller_profile(&db, &seller.seller_id, sound.profile.clone()).await;
    assert_eq!(m.get_seller(&seller.name).await.profile, seller.profile);
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decision_on_a_seller_whose_profile_does_not_decode_writes_nothing() {
    let m = Mesh::start().await;
    let seller = m.seller("acct-corrupt-mod", 702).await;
    let before = seller.profile.clone().unwrap();
    let mut reg = m.reg().await;

    // A profile change is requested while the stored profile is sound, and reaches review.
    let mut wanted = before.clone();
    wanted.introduction =
        "Example Software builds backup tools for small businesses on the cloud.".into();
    let created = reg
        .update_seller_info(UpdateSellerInfoRequest {
            request_id: uuid::Uuid::new_v4().to_string(),
            name: seller.name.clone(),
            profile: Some(wanted.clone()),
            update_mask: mask(&["introduction"]),
            etag: String::new(),
            logo_file_name: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .modification_request
        .unwrap();
    m.task_of(&created.name).await;

    // Then the seller's stored profile goes bad.
    let db = registration_db(&m).await;
    let sound = seller_row(&db, &seller.seller_id).await;
    set_seller_profile(&db, &seller.seller_id, GARBAGE.to_vec()).await;
    let corrupt = seller_row(&db, &seller.seller_id).await;

    // The approval (as review delivers it) fails rather than write the diff over an empty
    // profile; so does a retry of the same event.
    let approval = ApplyReviewDecisionRequest {
        event_id: uuid::Uuid::new_v4().to_string(),
        subject: created.name.clone(),
        decision: ReviewDecision::Approve as i32,
        reviewer: "reviewer-1".into(),
        ..Default::default()
    };
    for attempt in 0..2 {
        let err = reg
            .apply_review_decision(approval.clone())
            .await
            .unwrap_err();
        assert_corrupt(
            &err,
            "registration.koogallery.io",
            &format!("ApplyReviewDecision #{attempt}"),
        );
    }
    // Nor can another change be diffed against it.
    let mut other = before.clone();
    other.industry = "CONSULTING".into();
    let err = reg
        .update_seller_info(UpdateSellerInfoRequest {
            request_id: uuid::Uuid::new_v4().to_string(),
            name: seller.name.clone(),
            profile: Some(other),
            update_mask: mask(&["industry"]),
            etag: String::new(),
            logo_file_name: String::new(),
        })
        .await
        .unwrap_err();
    assert_corrupt(&err, "registration.koogallery.io", "UpdateSellerInfo");

    // The reviewer approves in review: its relay delivers, and is refused, again and again.
    m.decide(&created.name, true).await;
    let review_db = review_db(&m).await;
    poll("refused deliveries", Duration::from_secs(30), || async {
        let row = review_db
            .query_one_raw(Statement::from_string(
                review_db.get_database_backend(),
                format!(
                    "SELECT attempts FROM review_outbox WHERE subject = '{}' \
                     AND delivered_time IS NULL AND attempts >= 2",
                    created.name
                ),
            ))
            .await
            .unwrap();
        row.map(|_| ())
    })
    .await;

    let after = seller_row(&db, &seller.seller_id).await;
    assert_eq!(after.profile, GARBAGE, "the stored bytes are untouched");
    assert_eq!(after, corrupt, "the seller row is unchanged, byte for byte");
    assert_eq!(
        m.modification(&created.name).await.state,
        ModificationState::PendingReview as i32,
        "the request is still pending"
    );

    // Repaired, the pending delivery goes through and applies exactly the reviewed diff.
    set_seller_profile(&db, &seller.seller_id, sound.profile.clone()).await;
    let approved = m.decided(&created.name).await;
    assert_eq!(approved.state, ModificationState::Approved as i32);
    let mut expected = before.clone();
    expected.introduction = wanted.introduction.clone();
    assert_eq!(m.get_seller(&seller.name).await.profile.unwrap(), expected);
    m.stop().await;
}

/// The JSON list of a change request's fields is stored data too: a list that does not parse is
/// not read as "no change" (an approval would then apply nothing and call it done).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_request_whose_field_list_does_not_parse_is_internal() {
    let m = Mesh::start().await;
    let seller = m.seller("acct-corrupt-changes", 703).await;
    let before = seller.profile.clone().unwrap();
    let mut reg = m.reg().await;
    let mut wanted = before.clone();
    wanted.industry = "CONSULTING".into();
    let created = reg
        .update_seller_info(UpdateSellerInfoRequest {
            request_id: uuid::Uuid::new_v4().to_string(),
            name: seller.name.clone(),
            profile: Some(wanted),
            update_mask: mask(&["industry"]),
            etag: String::new(),
            logo_file_name: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .modification_request
        .unwrap();
    m.task_of(&created.name).await;

    let db = registration_db(&m).await;
    let done = modification::Entity::update_many()
        .col_expr(modification::Column::Changes, Expr::value("{not json"))
        .filter(modification::Column::ModificationId.eq(created.modification_request_id.as_str()))
        .exec(&db)
        .await
        .unwrap();
    assert_eq!(done.rows_affected, 1);
    let sound_seller = seller_row(&db, &seller.seller_id).await;

    let err = reg
        .get_modification_request(m.operator(GetModificationRequestRequest {
            name: created.name.clone(),
        }))
        .await
        .unwrap_err();
    assert_corrupt(&err, "registration.koogallery.io", "GetModificationRequest");
    let err = reg
        .apply_review_decision(ApplyReviewDecisionRequest {
            event_id: uuid::Uuid::new_v4().to_string(),
            subject: created.name.clone(),
            decision: ReviewDecision::Approve as i32,
            reviewer: "reviewer-1".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_corrupt(&err, "registration.koogallery.io", "ApplyReviewDecision");
    assert_eq!(
        seller_row(&db, &seller.seller_id).await,
        sound_seller,
        "the seller is unchanged"
    );
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_application_or_task_whose_profile_does_not_decode_is_internal() {
    let m = Mesh::start().await;
    let app = m.submitted("acct-corrupt-app", 703).await;
    assert!(app.evidence.is_some());
    let id = app.application_id.clone();
    let db = registration_db(&m).await;
    let mut reg = m.reg().await;

    // A NULL column is not corrupt: it stays unset.
    application::Entity::update_many()
        .col_expr(
            application::Column::Evidence,
            Expr::value(Option::<Vec<u8>>::None),
        )
        .filter(application::Column::ApplicationId.eq(id.clone()))
        .exec(&db)
        .await
        .unwrap();
    let read = m.application(&app.name).await;
    assert_eq!(read.evidence, None);
    assert_eq!(read.profile, app.profile);

    // Present but undecodable bytes are not.
    application::Entity::update_many()
        .col_expr(application::Column::Profile, Expr::value(GARBAGE.to_vec()))
        .filter(application::Column::ApplicationId.eq(id.clone()))
        .exec(&db)
        .await
        .unwrap();
    let err = reg
        .get_application(GetApplicationRequest {
            name: app.name.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_corrupt(&err, "registration.koogallery.io", "GetApplication");
    let err = reg
        .list_applications(ListApplicationsRequest {
            account_id: "acct-corrupt-app".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_corrupt(&err, "registration.koogallery.io", "ListApplications");
    // A change of the application fails too, and writes nothing.
    let err = reg
        .withdraw_application(WithdrawApplicationRequest {
            name: app.name.clone(),
            request_id: uuid::Uuid::new_v4().to_string(),
            reason: "changed our mind".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_corrupt(&err, "registration.koogallery.io", "WithdrawApplication");
    let row = application::Entity::find_by_id(id.clone())
        .one(&db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.profile, GARBAGE);
    assert_eq!(row.state, "IN_REVIEW");

    // review: a task whose stored profile does not decode.
    let task_name = m.task_of(&app.name).await.name;
    let review_db = review_db(&m).await;
    let task_id = task_name.strip_prefix("reviewTasks/").unwrap().to_string();
    task::Entity::update_many()
        .col_expr(task::Column::Profile, Expr::value(GARBAGE.to_vec()))
        .filter(task::Column::TaskId.eq(task_id))
        .exec(&review_db)
        .await
        .unwrap();
    let err = m
        .rev()
        .await
        .get_review_task(m.reviewer(GetReviewTaskRequest {
            name: task_name.clone(),
        }))
        .await
        .unwrap_err();
    assert_corrupt(&err, "review.koogallery.io", "GetReviewTask");
    m.stop().await;
}
