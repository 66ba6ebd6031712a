//! Hostile input: every bad field gets a clear error, never INTERNAL.

use super::*;

#[tokio::test]
async fn hostile_input_gets_clear_errors_never_internal() {
    let env = Env::start().await;
    let mut reviewer = env.reviewer("reviewer-h");
    let mut service = env.service();
    let task = env
        .create(creation(&application(), "acct-hostile", Utc::now()))
        .await;
    let mut errors: Vec<tonic::Status> = Vec::new();

    let long = "x".repeat(100_000);
    for name in [
        "",
        "reviewTasks/",
        "reviewTasks/-",
        "reviewTasks/abc",
        "reviewTasks/../../etc/passwd",
        "reviewTasks/' OR 1=1 --",
        "reviewTasks/\u{0}",
        "applications/0192f0c8-7d2e-7cc1-9a57-3f2b8d0c6a11",
        long.as_str(),
    ] {
        let err = reviewer
            .get_review_task(GetReviewTaskRequest { name: name.into() })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{name:?}");
        let d = decoded(&err);
        assert_eq!(d.field_reasons(), vec!["NAME_INVALID"], "{name:?}");
        assert_eq!(d.field_violations[0].0, "name");
        errors.push(err);
        let err = claim(
            &mut reviewer,
            &ReviewTask {
                name: name.into(),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{name:?}");
        errors.push(err);
    }
    let unknown = "reviewTasks/00000000-0000-7000-8000-000000000000";
    expect(
        reviewer
            .get_review_task(GetReviewTaskRequest {
                name: unknown.into(),
            })
            .await,
        Code::NotFound,
        "REVIEW_TASK_NOT_FOUND",
    );
    expect(
        claim(
            &mut reviewer,
            &ReviewTask {
                name: unknown.into(),
                ..Default::default()
            },
        )
        .await,
        Code::NotFound,
        "REVIEW_TASK_NOT_FOUND",
    );
    expect(
        reviewer
            .list_audit_entries(ListAuditEntriesRequest {
                parent: unknown.into(),
                ..Default::default()
            })
            .await,
        Code::NotFound,
        "REVIEW_TASK_NOT_FOUND",
    );
    let d = expect(
        reviewer
            .list_audit_entries(ListAuditEntriesRequest {
                parent: "reviewTasks/*".into(),
                actions: vec![77],
                page_size: -1,
                ..Default::default()
            })
            .await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    let mut reasons = d.field_reasons();
    reasons.sort();
    assert_eq!(
        reasons,
        vec!["ACTION_INVALID", "NAME_INVALID", "PAGE_SIZE_INVALID"]
    );

    // Page tokens: garbage, tampered, oversized.
    let b64 = |s: &str| base64url(s.as_bytes());
    for token in [
        "!!!".to_string(),
        "bm90IGpzb24".to_string(),
        b64(r#"{"f":"0000","d":null,"i":"00000000-0000-7000-8000-000000000000"}"#),
        b64(r#"{"f":1}"#),
        "A".repeat(5000),
    ] {
        expect(
            reviewer
                .list_review_tasks(ListReviewTasksRequest {
                    page_token: token.clone(),
                    ..Default::default()
                })
                .await,
            Code::InvalidArgument,
            "INVALID_PAGE_TOKEN",
        );
        expect(
            reviewer
                .list_audit_entries(ListAuditEntriesRequest {
                    parent: "reviewTasks/-".into(),
                    page_token: token.clone(),
                    ..Default::default()
                })
                .await,
            Code::InvalidArgument,
            "INVALID_PAGE_TOKEN",
        );
        expect(
            reviewer
                .list_rejection_reasons(ListRejectionReasonsRequest {
                    page_token: token,
                    ..Default::default()
                })
                .await,
            Code::InvalidArgument,
            "INVALID_PAGE_TOKEN",
        );
    }
    let d = expect(
        reviewer
            .list_review_tasks(ListReviewTasksRequest {
                page_size: -5,
                states: vec![0, 42],
                subject_kinds: vec![9],
                account_id: long.clone(),
                ..Default::default()
            })
            .await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    let mut reasons = d.field_reasons();
    reasons.sort();
    assert_eq!(
        reasons,
        vec![
            "FILTER_TOO_LONG",
            "PAGE_SIZE_INVALID",
            "STATE_INVALID",
            "STATE_INVALID",
            "SUBJECT_KIND_INVALID"
        ]
    );
    // A huge page size is capped, not refused.
    reviewer
        .list_review_tasks(ListReviewTasksRequest {
            page_size: i32::MAX,
            ..Default::default()
        })
        .await
        .unwrap();

    // Keys.
    for request_id in ["", "has space", "ü", long.as_str()] {
        let d = expect(
            reviewer
                .claim_review_task(ClaimReviewTaskRequest {
                    request_id: request_id.into(),
                    name: task.name.clone(),
                    etag: String::new(),
                })
                .await,
            Code::InvalidArgument,
            "INVALID_ARGUMENT",
        );
        assert_eq!(d.field_reasons(), vec!["REQUEST_ID_INVALID"]);
    }
    claim(&mut reviewer, &task).await.unwrap();
    let d = expect(
        reviewer
            .reject_review_task(RejectReviewTaskRequest {
                request_id: String::new(),
                name: "nope".into(),
                reason_codes: vec!["DROP TABLE review_tasks".into(); 3],
                comment: long.clone(),
                etag: String::new(),
            })
            .await,
        Code::InvalidArgument,
        "REJECTION_REASON_UNKNOWN",
    );
    let mut reasons = d.field_reasons();
    reasons.sort();
    reasons.dedup();
    assert_eq!(
        reasons,
        vec![
            "COMMENT_TOO_LONG",
            "NAME_INVALID",
            "REJECTION_REASON_UNKNOWN",
            "REQUEST_ID_INVALID"
        ]
    );
    expect(
        reviewer
            .release_review_task(ReleaseReviewTaskRequest {
                request_id: rid(),
                name: task.name.clone(),
                comment: "字".repeat(2001),
                etag: String::new(),
            })
            .await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );

    // A creation with everything wrong names every field.
    let d = expect(
        service
            .create_review_task(CreateReviewTaskRequest {
                event_id: "not an id!".into(),
                subject: "applications/../sellers".into(),
                subject_kind: 7,
                account_id: String::new(),
                company_name: " ".into(),
                entity: Some(CompanyEntity {
                    country: "China".into(),
                    registration_number: "<script>".into(),
                }),
                submit_time: Some(prost_types::Timestamp {
                    seconds: 0,
                    nanos: -5,
                }),
                evidence: None,
                profile: None,
                previous_company_name: long.clone(),
            })
            .await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    assert_eq!(d.field_reasons(), vec!["EVENT_ID_INVALID"]);
    let d = expect(
        service
            .create_review_task(CreateReviewTaskRequest {
                event_id: rid(),
                subject: "applications/../sellers".into(),
                subject_kind: 7,
                account_id: String::new(),
                company_name: " ".into(),
                entity: Some(CompanyEntity {
                    country: "China".into(),
                    registration_number: "<script>".into(),
                }),
                submit_time: Some(prost_types::Timestamp {
                    seconds: 0,
                    nanos: -5,
                }),
                evidence: None,
                profile: None,
                previous_company_name: long.clone(),
            })
            .await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    let mut fields: Vec<String> = d.field_violations.iter().map(|(f, _)| f.clone()).collect();
    fields.sort();
    assert_eq!(
        fields,
        vec![
            "account_id",
            "company_name",
            "entity.country",
            "entity.registration_number",
            "previous_company_name",
            "profile",
            "subject",
            "subject_kind",
            "submit_time"
        ]
    );
    let mut mismatched = creation(&modification(), "acct-h", Utc::now());
    mismatched.subject_kind = SubjectKind::Application as i32;
    let d = expect(
        service.create_review_task(mismatched).await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    assert_eq!(d.field_reasons(), vec!["SUBJECT_KIND_MISMATCH"]);
    let mut future = creation(&application(), "acct-h", Utc::now());
    future.submit_time = Some(ts(Utc::now() + chrono::Duration::days(30)));
    let d = expect(
        service.create_review_task(future).await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    assert_eq!(d.field_reasons(), vec!["TIME_INVALID"]);
    let d = expect(
        service
            .cancel_review_task(CancelReviewTaskRequest {
                event_id: rid(),
                subject: task.subject.clone(),
                reason: "r".repeat(1001),
            })
            .await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    assert_eq!(d.field_reasons(), vec!["REASON_TOO_LONG"]);
    let d = expect(
        service
            .resume_review_task(ResumeReviewTaskRequest {
                event_id: rid(),
                subject: "applications/x/y".into(),
                resubmit_time: None,
                evidence: None,
                profile: None,
            })
            .await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    let mut reasons = d.field_reasons();
    reasons.sort();
    assert_eq!(reasons, vec!["SUBJECT_INVALID", "TIME_INVALID"]);

    // Nothing answered INTERNAL, and every error said why.
    for err in errors {
        assert_ne!(err.code(), Code::Internal);
        assert!(decoded(&err).reason.is_some(), "{err:?}");
    }
    // The task is untouched by all of that but the claim.
    assert_eq!(
        get(&mut reviewer, &task.name).await.state,
        ReviewTaskState::Claimed as i32
    );
    env.stop().await;
}
