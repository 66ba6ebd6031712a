//! The seller lifecycle over the whole mesh (real gRPC over TCP, real PostgreSQL or SQLite per
//! KG_TEST_DATABASE, Redis for the entity lock, a real SMTP server): profile changes and company
//! name changes are reviewed in ReviewService and applied only on approval, exactly as diffed;
//! an exit bars the account and the entity for good.

use std::time::Duration;

use kg_proto::common::{CompanyEntity, Contact, ReviewFeedback};
use kg_proto::identity::UpsertAccountRequest;
use kg_proto::notification::NotificationEventType;
use kg_proto::registration::*;
use kg_proto::review::*;
use kg_runtime::auth::Role;
use kg_tests::fixtures::{self};
use kg_tests::full_mesh::{Mesh, decoded, mask};
use kg_tests::poll;
use tonic::Code;

const SECRET: &str = kg_tests::mesh::TEST_SECRET;

mod contacts;

/// A valid profile with another introduction.
fn other_intro(p: &kg_proto::common::SellerProfile) -> kg_proto::common::SellerProfile {
    let mut p = p.clone();
    p.introduction = "Example Software builds cloud tools for teams of every size.".into();
    p
}

fn update(
    seller: &Seller,
    profile: kg_proto::common::SellerProfile,
    paths: &[&str],
) -> UpdateSellerInfoRequest {
    UpdateSellerInfoRequest {
        request_id: uuid::Uuid::new_v4().to_string(),
        name: seller.name.clone(),
        profile: Some(profile),
        update_mask: mask(paths),
        etag: String::new(),
        logo_file_name: String::new(),
    }
}

/// Must-show 1: a profile change is reviewed while the seller keeps its profile; approval
/// applies exactly the diff; one open request per seller; a rejection changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profile_change_is_reviewed_then_exactly_its_diff_is_applied() {
    let m = Mesh::start().await;
    let seller = m.seller("acct-life-profile", 501).await;
    let before = seller.profile.clone().unwrap();
    assert_eq!(seller.name_history.len(), 1, "the name at approval");

    // Hostile input: an empty mask, an unknown and an output-only path, an oversize field.
    let mut reg = m.reg().await;
    for (paths, reason) in [
        (vec![], "INVALID_UPDATE_MASK"),
        (vec!["entity"], "INVALID_UPDATE_MASK"),
        (vec!["logo_sha256"], "INVALID_UPDATE_MASK"),
    ] {
        let err = reg
            .update_seller_info(update(&seller, before.clone(), &paths))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{paths:?}: {err:?}");
        let d = decoded(&err);
        assert_eq!(d.reason.as_deref(), Some(reason));
        assert!(!d.field_violations.is_empty(), "{d:?}");
    }
    let mut huge = before.clone();
    huge.introduction = "x".repeat(2001);
    let err = reg
        .update_seller_info(update(&seller, huge, &["introduction"]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(decoded(&err).field_reasons(), vec!["FIELD_TOO_LONG"]);
    // A changed material is checked again: a Chinese website is refused as at submission.
    let mut chinese = before.clone();
    chinese.website_url = m.website.url("/zh");
    let err = reg
        .update_seller_info(update(&seller, chinese, &["website_url"]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let d = decoded(&err);
    assert_eq!(d.reason.as_deref(), Some("MATERIALS_CHECK_FAILED"), "{d:?}");
    assert!(
        d.field_violations
            .iter()
            .any(|(field, _)| field == "profile.website_url"),
        "{d:?}"
    );
    // A stale etag is refused.
    let mut stale = update(&seller, other_intro(&before), &["introduction"]);
    stale.etag = "W/\"1\"".into();
    let err = reg.update_seller_info(stale).await.unwrap_err();
    assert_eq!(err.code(), Code::Aborted);
    assert_eq!(decoded(&err).reason.as_deref(), Some("ETAG_MISMATCH"));
    // Nothing changes: refused.
    let err = reg
        .update_seller_info(update(&seller, before.clone(), &["website_url", "contact"]))
        .await
        .unwrap_err();
    assert_eq!(decoded(&err).reason.as_deref(), Some("NO_CHANGES"));

    // The change: a new introduction and a new contact email only (other fields of the sent
    // profile are outside the mask and ignored).
    let mut wanted = before.clone();
    wanted.introduction =
        "Example Software builds backup tools for small businesses on the cloud.".into();
    wanted.contact = Some(Contact {
        email: "new.contact@example.com".into(),
        ..Default::default()
    });
    wanted.industry = "IGNORED".into();
    let request = update(&seller, wanted.clone(), &["introduction", "contact.email"]);
    let created = reg
        .update_seller_info(request.clone())
        .await
        .unwrap()
        .into_inner()
        .modification_request
        .unwrap();
    assert_eq!(created.state, ModificationState::PendingReview as i32);
    assert_eq!(created.kind, ModificationKind::ProfileUpdate as i32);
    let paths: Vec<_> = created
        .changes
        .iter()
        .map(|c| c.field_path.as_str())
        .collect();
    assert_eq!(paths, vec!["introduction", "contact.email"]);
    assert_eq!(created.changes[1].old_value, "li.wei@example.com");
    assert_eq!(created.changes[1].new_value, "new.contact@example.com");
    // A retry with the same request_id returns the same request.
    let replay = reg
        .update_seller_info(request)
        .await
        .unwrap()
        .into_inner()
        .modification_request
        .unwrap();
    assert_eq!(replay.name, created.name);

    // Under review: the live profile is unchanged and names the open request.
    let live = m.get_seller(&seller.name).await;
    assert_eq!(live.profile, seller.profile);
    assert_eq!(live.open_modification_request, created.name);
    // A second open request is refused while one is pending.
    let mut other = before.clone();
    other.industry = "CONSULTING".into();
    let err = reg
        .update_seller_info(update(&seller, other.clone(), &["industry"]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    let d = decoded(&err);
    assert_eq!(d.reason.as_deref(), Some("MODIFICATION_ALREADY_PENDING"));
    assert_eq!(d.metadata["modification_request"], created.name);

    // review sees a modification task with the proposed profile; approval is relayed back.
    let task = m.decide(&created.name, true).await;
    assert_eq!(task.subject_kind, SubjectKind::ModificationRequest as i32);
    assert_eq!(
        task.profile.as_ref().unwrap().introduction,
        wanted.introduction
    );
    let approved = m.decided(&created.name).await;
    assert_eq!(approved.state, ModificationState::Approved as i32);
    let after = m.get_seller(&seller.name).await;
    let mut expected = before.clone();
    expected.introduction = wanted.introduction.clone();
    expected.contact.as_mut().unwrap().email = "new.contact@example.com".into();
    assert_eq!(after.profile.unwrap(), expected, "exactly the diff");
    assert!(after.open_modification_request.is_empty());
    // The decision arrives again under another event id: the request is no longer pending.
    let replayed = ApplyReviewDecisionRequest {
        event_id: uuid::Uuid::new_v4().to_string(),
        subject: created.name.clone(),
        decision: kg_proto::common::ReviewDecision::Reject as i32,
        reason_codes: vec!["OTHER".into()],
        ..Default::default()
    };
    let outcome = reg
        .apply_review_decision(replayed.clone())
        .await
        .unwrap()
        .into_inner()
        .outcome;
    assert_eq!(outcome, ApplyDecisionOutcome::Superseded as i32);
    let outcome = reg
        .apply_review_decision(replayed.clone())
        .await
        .unwrap()
        .into_inner()
        .outcome;
    assert_eq!(outcome, ApplyDecisionOutcome::AlreadyApplied as i32);
    let err = reg
        .apply_review_decision(ApplyReviewDecisionRequest {
            event_id: uuid::Uuid::new_v4().to_string(),
            decision: kg_proto::common::ReviewDecision::RequestChanges as i32,
            ..replayed
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(
        m.get_seller(&seller.name).await.profile.unwrap(),
        expected,
        "still exactly the approved diff"
    );
    m.wait_notified(
        "acct-life-profile",
        NotificationEventType::ModificationReceived,
    )
    .await;
    m.wait_notified(
        "acct-life-profile",
        NotificationEventType::ModificationApproved,
    )
    .await;

    // A rejected request leaves the profile as it was.
    let current = m.get_seller(&seller.name).await;
    let rejected = reg
        .update_seller_info(update(&seller, other, &["industry"]))
        .await
        .unwrap()
        .into_inner()
        .modification_request
        .unwrap();
    m.decide(&rejected.name, false).await;
    let rejected = m.decided(&rejected.name).await;
    assert_eq!(rejected.state, ModificationState::Rejected as i32);
    let feedback: ReviewFeedback = rejected.rejection.unwrap();
    assert_eq!(
        feedback.reason_codes,
        vec!["WEBSITE_NOT_ENGLISH".to_string()]
    );
    assert_eq!(m.get_seller(&seller.name).await.profile, current.profile);
    m.wait_notified(
        "acct-life-profile",
        NotificationEventType::ModificationRejected,
    )
    .await;

    // Withdrawing a pending request cancels its review task.
    let mut third = before.clone();
    third.industry = "IT_SERVICES".into();
    let pending = reg
        .update_seller_info(update(&seller, third, &["industry"]))
        .await
        .unwrap()
        .into_inner()
        .modification_request
        .unwrap();
    let task = m.task_of(&pending.name).await;
    let withdrawn = reg
        .withdraw_modification_request(WithdrawModificationRequestRequest {
            request_id: uuid::Uuid::new_v4().to_string(),
            name: pending.name.clone(),
            reason: "changed my mind".into(),
            etag: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .modification_request
        .unwrap();
    assert_eq!(withdrawn.state, ModificationState::Withdrawn as i32);
    poll("the task cancelled", Duration::from_secs(30), || async {
        let t = m
            .rev()
            .await
            .get_review_task(GetReviewTaskRequest {
                name: task.name.clone(),
            })
            .await
            .ok()?
            .into_inner()
            .review_task?;
        (t.state == ReviewTaskState::Cancelled as i32).then_some(())
    })
    .await;
    let listed = reg
        .list_modification_requests(ListModificationRequestsRequest {
            parent: seller.name.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .modification_requests;
    let states: Vec<_> = listed.iter().map(|r| r.state).collect();
    assert_eq!(
        states,
        vec![
            ModificationState::Withdrawn as i32,
            ModificationState::Rejected as i32,
            ModificationState::Approved as i32
        ],
        "newest first"
    );
    m.stop().await;
}

/// Must-show 2: a rename must match the verified name; once the account's verified name
/// changes, the rename is reviewed and applied with the name history kept; the entity never
/// changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_follows_the_verified_name_and_keeps_the_history() {
    let m = Mesh::start().await;
    let seller = m.seller("acct-life-rename", 502).await;
    let old_name = seller.company_name.clone();
    let new_name = "Fuzhou Renamed Software Co., Ltd.".to_string();
    let mut reg = m.reg().await;
    let rename = |entity: Option<CompanyEntity>| ChangeCompanyNameRequest {
        request_id: uuid::Uuid::new_v4().to_string(),
        name: seller.name.clone(),
        new_company_name: new_name.clone(),
        entity,
        etag: String::new(),
    };

    // Hostile names.
    for bad in ["", "   ", "Evil\r\nBcc: x@example.com"] {
        let err = reg
            .change_company_name(ChangeCompanyNameRequest {
                new_company_name: bad.into(),
                ..rename(None)
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{bad:?}");
        assert_eq!(decoded(&err).field_reasons(), vec!["COMPANY_NAME_INVALID"]);
    }
    let err = reg
        .change_company_name(ChangeCompanyNameRequest {
            name: "sellers/../../etc".into(),
            ..rename(None)
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(decoded(&err).field_reasons(), vec!["NAME_INVALID"]);

    let err = reg.change_company_name(rename(None)).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert_eq!(
        decoded(&err).reason.as_deref(),
        Some("COMPANY_NAME_NOT_VERIFIED")
    );

    // Another entity: never, whatever the name.
    let err = reg
        .change_company_name(rename(Some(fixtures::entity(999))))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(decoded(&err).reason.as_deref(), Some("ENTITY_IMMUTABLE"));
    assert!(err.message().contains("new account"), "{}", err.message());

    // The account's verified name changes on My Account (identity-check).
    let mut account = fixtures::eligible_account("acct-life-rename");
    account.verified_enterprise_name = new_name.clone();
    m.idc()
        .await
        .upsert_account(UpsertAccountRequest {
            request_id: uuid::Uuid::new_v4().to_string(),
            account: Some(account),
        })
        .await
        .unwrap();
    // The same entity may be repeated.
    let created = reg
        .change_company_name(rename(seller.entity.clone()))
        .await
        .unwrap()
        .into_inner()
        .modification_request
        .unwrap();
    assert_eq!(created.kind, ModificationKind::CompanyNameChange as i32);
    assert_eq!(created.previous_company_name, old_name);
    assert_eq!(created.proposed_company_name, new_name);
    assert_eq!(m.get_seller(&seller.name).await.company_name, old_name);

    let task = m.decide(&created.name, true).await;
    assert_eq!(task.company_name, new_name);
    assert_eq!(task.previous_company_name, old_name);
    assert_eq!(
        m.decided(&created.name).await.state,
        ModificationState::Approved as i32
    );
    let renamed = m.get_seller(&seller.name).await;
    assert_eq!(renamed.company_name, new_name);
    assert_eq!(renamed.entity, seller.entity, "the entity never changes");
    let history: Vec<_> = renamed
        .name_history
        .iter()
        .map(|h| h.company_name.clone())
        .collect();
    assert_eq!(history, vec![old_name, new_name]);
    assert_eq!(renamed.name_history[1].modification_request, created.name);
    assert!(renamed.name_history[0].modification_request.is_empty());
    let listed = reg
        .list_sellers(ListSellersRequest {
            account_id: "acct-life-rename".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .sellers;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name_history, renamed.name_history);
    m.wait_notified(
        "acct-life-rename",
        NotificationEventType::ModificationApproved,
    )
    .await;
    m.stop().await;
}

/// Must-show 3: an exit bars the account and the entity for good, withdraws a pending request
/// and tells the seller.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exited_account_and_entity_never_register_again() {
    let m = Mesh::start().await;
    let seller = m.seller("acct-life-exit", 503).await;
    let mut reg = m.reg().await;
    let mut profile = seller.profile.clone().unwrap();
    profile.industry = "CONSULTING".into();
    // Concurrent requests: exactly one is opened, the others see it pending.
    let calls = (0..5).map(|_| {
        let mut reg = reg.clone();
        let request = update(&seller, profile.clone(), &["industry"]);
        async move { reg.update_seller_info(request).await }
    });
    let results = futures::future::join_all(calls).await;
    let opened: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(opened.len(), 1, "{results:?}");
    for err in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(
            decoded(err).reason.as_deref(),
            Some("MODIFICATION_ALREADY_PENDING"),
            "{err:?}"
        );
    }
    let pending = opened[0].get_ref().modification_request.clone().unwrap();

    let exit = ExitSellerRequest {
        request_id: uuid::Uuid::new_v4().to_string(),
        name: seller.name.clone(),
        reason: "closing the business".into(),
        etag: String::new(),
    };
    let exited = reg
        .exit_seller(exit.clone())
        .await
        .unwrap()
        .into_inner()
        .seller
        .unwrap();
    assert_eq!(exited.state, SellerState::Exited as i32);
    assert!(exited.exit_time.is_some());
    assert_eq!(exited.exit_reason, "closing the business");
    assert!(exited.open_modification_request.is_empty());
    assert_eq!(
        m.modification(&pending.name).await.state,
        ModificationState::Withdrawn as i32
    );
    // A replay answers the same; a second exit is refused.
    assert_eq!(
        reg.exit_seller(exit)
            .await
            .unwrap()
            .into_inner()
            .seller
            .unwrap()
            .name,
        exited.name
    );
    let err = reg
        .exit_seller(ExitSellerRequest {
            request_id: uuid::Uuid::new_v4().to_string(),
            name: seller.name.clone(),
            reason: "again".into(),
            etag: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(decoded(&err).reason.as_deref(), Some("SELLER_EXITED"));

    // An exited seller changes no more.
    let err = reg
        .update_seller_info(update(
            &seller,
            other_intro(&seller.profile.clone().unwrap()),
            &["introduction"],
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(decoded(&err).reason.as_deref(), Some("SELLER_EXITED"));

    // The exited account applies again, with another entity: ACCOUNT_BARRED.
    let err = reg
        .submit_application(fixtures::submission(
            "acct-life-exit",
            504,
            &m.website.url("/en"),
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    let d = decoded(&err);
    assert_eq!(d.reason.as_deref(), Some("ACCOUNT_NOT_ELIGIBLE"));
    assert_eq!(d.precondition_kinds(), vec!["ACCOUNT_BARRED"]);

    // A new account with the exited entity: ENTITY_BARRED.
    m.import(fixtures::eligible_account("acct-life-new")).await;
    let err = reg
        .submit_application(fixtures::submission(
            "acct-life-new",
            503,
            &m.website.url("/en"),
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists, "{err:?}");
    assert_eq!(decoded(&err).reason.as_deref(), Some("ENTITY_BARRED"));

    m.wait_notified("acct-life-exit", NotificationEventType::SellerExited)
        .await;
    let mails = poll("the exit email", Duration::from_secs(30), || async {
        let mails = m.smtp.messages();
        mails
            .iter()
            .any(|mail| {
                mail.subject()
                    .unwrap_or_default()
                    .contains("exited KooGallery")
            })
            .then_some(mails)
    })
    .await;
    assert!(!mails.is_empty());
    m.stop().await;
}

/// Applicants act only on their own seller: another account's seller and requests are
/// NOT_FOUND (never revealed); reviewers cannot change or exit sellers; operators may exit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applicants_change_only_their_own_seller() {
    let m = Mesh::start_with(Some(SECRET)).await;
    let seller = m.seller("acct-own-a", 601).await;
    let profile = other_intro(&seller.profile.clone().unwrap());
    let mut reg = m.reg().await;
    let a = |msg| m.as_(msg, "acct-own-a", Role::Applicant);
    let b = |msg| m.as_(msg, "acct-own-b", Role::Applicant);
    let not_found = |err: tonic::Status, reason: &str| {
        assert_eq!(err.code(), Code::NotFound, "{err:?}");
        assert_eq!(decoded(&err).reason.as_deref(), Some(reason));
    };

    let err = reg
        .get_seller(m.as_(
            GetSellerRequest {
                name: seller.name.clone(),
            },
            "acct-own-b",
            Role::Applicant,
        ))
        .await
        .unwrap_err();
    not_found(err, "SELLER_NOT_FOUND");
    let err = reg
        .update_seller_info(b(update(&seller, profile.clone(), &["introduction"])))
        .await
        .unwrap_err();
    not_found(err, "SELLER_NOT_FOUND");
    let err = reg
        .change_company_name(m.as_(
            ChangeCompanyNameRequest {
                request_id: uuid::Uuid::new_v4().to_string(),
                name: seller.name.clone(),
                new_company_name: "Hijacked Co., Ltd.".into(),
                entity: None,
                etag: String::new(),
            },
            "acct-own-b",
            Role::Applicant,
        ))
        .await
        .unwrap_err();
    not_found(err, "SELLER_NOT_FOUND");
    let exit = |who: &str, role| {
        m.as_(
            ExitSellerRequest {
                request_id: uuid::Uuid::new_v4().to_string(),
                name: seller.name.clone(),
                reason: "not mine".into(),
                etag: String::new(),
            },
            who,
            role,
        )
    };
    let err = reg
        .exit_seller(exit("acct-own-b", Role::Applicant))
        .await
        .unwrap_err();
    not_found(err, "SELLER_NOT_FOUND");

    // The owner's request is invisible to the other account.
    let own = reg
        .update_seller_info(a(update(&seller, profile.clone(), &["introduction"])))
        .await
        .unwrap()
        .into_inner()
        .modification_request
        .unwrap();
    let err = reg
        .get_modification_request(m.as_(
            GetModificationRequestRequest {
                name: own.name.clone(),
            },
            "acct-own-b",
            Role::Applicant,
        ))
        .await
        .unwrap_err();
    not_found(err, "MODIFICATION_REQUEST_NOT_FOUND");
    let err = reg
        .withdraw_modification_request(m.as_(
            WithdrawModificationRequestRequest {
                request_id: uuid::Uuid::new_v4().to_string(),
                name: own.name.clone(),
                reason: String::new(),
                etag: String::new(),
            },
            "acct-own-b",
            Role::Applicant,
        ))
        .await
        .unwrap_err();
    not_found(err, "MODIFICATION_REQUEST_NOT_FOUND");
    let list = |parent: &str, who: &str| {
        m.as_(
            ListModificationRequestsRequest {
                parent: parent.to_string(),
                ..Default::default()
            },
            who,
            Role::Applicant,
        )
    };
    let err = reg
        .list_modification_requests(list(&seller.name, "acct-own-b"))
        .await
        .unwrap_err();
    not_found(err, "SELLER_NOT_FOUND");
    let visible = reg
        .list_modification_requests(list("sellers/-", "acct-own-b"))
        .await
        .unwrap()
        .into_inner()
        .modification_requests;
    assert!(visible.is_empty());
    let visible = reg
        .list_modification_requests(list("sellers/-", "acct-own-a"))
        .await
        .unwrap()
        .into_inner()
        .modification_requests;
    assert_eq!(visible.len(), 1);

    // Staff: reviewers neither change nor exit sellers; operators may exit one.
    let err = reg
        .update_seller_info(m.reviewer(update(&seller, profile, &["industry"])))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = reg
        .exit_seller(exit("reviewer-1", Role::Reviewer))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let exited = reg
        .exit_seller(exit("ops-1", Role::Operator))
        .await
        .unwrap()
        .into_inner()
        .seller
        .unwrap();
    assert_eq!(exited.state, SellerState::Exited as i32);
    assert_eq!(
        m.modification(&own.name).await.state,
        ModificationState::Withdrawn as i32
    );
    m.stop().await;
}
