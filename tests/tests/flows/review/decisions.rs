//! Decisions: exactly one per task under concurrency, reasons from the catalogue, cancelling,
//! idempotency of creation and of staff mutations, the outbox to registration, rerunning checks.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_decisions_make_exactly_one_decision_and_one_outbox_event() {
    let env = Env::start().await;
    let db = env.database().await;
    for round in 0..3 {
        let task = env
            .create(creation(
                &application(),
                &format!("acct-dec-{round}"),
                Utc::now(),
            ))
            .await;
        let mut a = env.reviewer("reviewer-a");
        claim(&mut a, &task).await.unwrap();
        let mut racers = Vec::new();
        for i in 0..24 {
            let mut client = if i % 6 == 5 {
                env.reviewer("reviewer-b")
            } else {
                a.clone()
            };
            let task = task.clone();
            racers.push(tokio::spawn(async move {
                match i % 3 {
                    0 => approve(&mut client, &task).await,
                    1 => client
                        .reject_review_task(rejection(
                            &task,
                            &["WEBSITE_NOT_ENGLISH"],
                            "The website must be in English.",
                        ))
                        .await
                        .map(|r| r.into_inner().review_task.unwrap()),
                    _ => client
                        .request_changes(changes(
                            &task,
                            &["LOGO_UNCLEAR", "MATERIALS_INCOMPLETE"],
                            "Upload a clear logo.",
                        ))
                        .await
                        .map(|r| r.into_inner().review_task.unwrap()),
                }
            }));
        }
        let mut decided = Vec::new();
        for racer in racers {
            match racer.await.unwrap() {
                Ok(task) => decided.push(task),
                Err(status) => {
                    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
                    let reason = decoded(&status).reason.unwrap();
                    assert!(
                        reason == "TASK_ALREADY_DECIDED" || reason == "TASK_CLAIMED_BY_OTHER",
                        "{reason}"
                    );
                }
            }
        }
        assert_eq!(decided.len(), 1, "exactly one decision");
        let winner = &decided[0];
        let decision = winner.decision.clone().unwrap();
        assert_eq!(decision.reviewer, "reviewer-a");
        assert!(decision.deliver_time.is_none());

        let events = outbox(&db, &task.subject).await;
        assert_eq!(events.len(), 1, "exactly one outbox event: {events:?}");
        let (event_type, payload) = &events[0];
        assert_eq!(event_type, "DECISION");
        let expected_decision = match ReviewTaskState::try_from(winner.state).unwrap() {
            ReviewTaskState::Approved => "APPROVE",
            ReviewTaskState::Rejected => "REJECT",
            ReviewTaskState::WaitingOnApplicant => "REQUEST_CHANGES",
            other => panic!("unexpected state {other:?}"),
        };
        assert_eq!(payload["decision"], expected_decision);
        assert_eq!(payload["subject"], task.subject);
        assert_eq!(payload["review_task"], task.name);
        assert_eq!(payload["reviewer"], "reviewer-a");
        assert_eq!(payload["comment"], decision.comment);
        assert_eq!(
            payload["reason_codes"],
            serde_json::json!(decision.reason_codes)
        );
        let decide_time =
            DateTime::parse_from_rfc3339(payload["decide_time"].as_str().unwrap()).unwrap();
        assert_eq!(decide_time.to_utc(), at(&decision.decide_time));
        assert_eq!(
            ReviewDecision::try_from(decision.outcome)
                .unwrap()
                .as_str_name(),
            format!("REVIEW_DECISION_{expected_decision}")
        );

        let entries = audit(&mut a, &task.name).await;
        let decisions: Vec<_> = actions(&entries)
            .into_iter()
            .filter(|a| {
                matches!(
                    a,
                    AuditAction::Approved | AuditAction::Rejected | AuditAction::ChangesRequested
                )
            })
            .collect();
        assert_eq!(decisions.len(), 1, "{entries:?}");
    }
    // Nothing listens for registration here: every decision is still in the outbox.
    assert_eq!(
        kg_runtime::outbox::backlog(&db, "review_outbox")
            .await
            .unwrap(),
        3
    );
    env.stop().await;
}

#[tokio::test]
async fn rejections_need_catalogue_reasons_and_a_comment() {
    let env = Env::start().await;
    let mut reviewer = env.reviewer("reviewer-r");

    // The catalogue: codes, English and Chinese titles, ordered by code, in pages.
    let all = reviewer
        .list_rejection_reasons(ListRejectionReasonsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(all.next_page_token.is_empty());
    let codes: Vec<&str> = all.reasons.iter().map(|r| r.code.as_str()).collect();
    for code in [
        "WEBSITE_NOT_ENGLISH",
        "WEBSITE_UNREACHABLE",
        "LOGO_UNCLEAR",
        "MATERIALS_INCOMPLETE",
        "COMPANY_INFO_MISMATCH",
        "BUSINESS_SCOPE_NOT_ALLOWED",
        "DUPLICATE_ENTITY",
        "OTHER",
    ] {
        assert!(codes.contains(&code), "{code} in {codes:?}");
    }
    let mut sorted = codes.clone();
    sorted.sort();
    assert_eq!(codes, sorted);
    assert!(all.reasons.iter().all(|r| !r.title_en.is_empty()
        && !r.title_zh.is_empty()
        && !r.description_en.is_empty()
        && !r.title_zh.is_ascii()));
    let mut paged = Vec::new();
    let mut token = String::new();
    loop {
        let page = reviewer
            .list_rejection_reasons(ListRejectionReasonsRequest {
                page_size: 5,
                page_token: token,
            })
            .await
            .unwrap()
            .into_inner();
        assert!(page.reasons.len() <= 5);
        paged.extend(page.reasons);
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(paged, all.reasons);

    let task = env
        .create(creation(&application(), "acct-reject", Utc::now()))
        .await;
    let claimed = claim(&mut reviewer, &task).await.unwrap();

    let d = expect(
        reviewer
            .reject_review_task(rejection(&task, &[], "Please fix."))
            .await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    assert_eq!(d.field_reasons(), vec!["REASON_CODES_MISSING"]);
    assert_eq!(d.field_violations[0].0, "reason_codes");
    let d = expect(
        reviewer
            .reject_review_task(rejection(&task, &["WEBSITE_NOT_ENGLISH"], "   "))
            .await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    assert_eq!(d.field_reasons(), vec!["COMMENT_MISSING"]);
    assert_eq!(d.field_violations[0].0, "comment");
    let d = expect(
        reviewer
            .reject_review_task(rejection(&task, &["OTHER", "NOT_A_REASON"], ""))
            .await,
        Code::InvalidArgument,
        "REJECTION_REASON_UNKNOWN",
    );
    assert_eq!(
        d.metadata.get("code").map(String::as_str),
        Some("NOT_A_REASON")
    );
    let mut reasons = d.field_reasons();
    reasons.sort();
    assert_eq!(reasons, vec!["COMMENT_MISSING", "REJECTION_REASON_UNKNOWN"]);
    assert!(
        d.field_violations
            .iter()
            .any(|(field, _)| field == "reason_codes[1]")
    );
    let d = expect(
        reviewer
            .reject_review_task(rejection(&task, &["OTHER"], &"x".repeat(2001)))
            .await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    assert_eq!(d.field_reasons(), vec!["COMMENT_TOO_LONG"]);
    let eleven = [
        "ADDRESS_INVALID",
        "BUSINESS_SCOPE_NOT_ALLOWED",
        "COMPANY_INFO_MISMATCH",
        "CONTACT_INVALID",
        "CUSTOMER_SERVICE_EMAIL_INVALID",
        "DUPLICATE_ENTITY",
        "INTRODUCTION_INADEQUATE",
        "LOGO_UNCLEAR",
        "MATERIALS_INCOMPLETE",
        "OTHER",
        "WEBSITE_UNREACHABLE",
    ];
    let d = expect(
        reviewer
            .reject_review_task(rejection(&task, &eleven, "too many"))
            .await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    assert_eq!(d.field_reasons(), vec!["TOO_MANY_REASON_CODES"]);
    let d = expect(
        reviewer
            .reject_review_task(rejection(&task, &["OTHER", "OTHER"], "twice"))
            .await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    assert_eq!(d.field_reasons(), vec!["REASON_CODE_DUPLICATE"]);
    expect(
        reviewer
            .request_changes(changes(&task, &["website_not_english"], "lower case"))
            .await,
        Code::InvalidArgument,
        "REJECTION_REASON_UNKNOWN",
    );
    let d = expect(
        reviewer
            .request_changes(changes(&task, &["OTHER"], ""))
            .await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    assert_eq!(d.field_reasons(), vec!["COMMENT_MISSING"]);
    let d = expect(
        reviewer
            .approve_review_task(ApproveReviewTaskRequest {
                request_id: rid(),
                name: task.name.clone(),
                comment: "x".repeat(2001),
                etag: String::new(),
            })
            .await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    assert_eq!(d.field_reasons(), vec!["COMMENT_TOO_LONG"]);
    // Nothing changed.
    assert_eq!(get(&mut reviewer, &task.name).await, claimed);

    let rejected = reviewer
        .reject_review_task(rejection(
            &task,
            &["WEBSITE_NOT_ENGLISH", "LOGO_UNCLEAR"],
            "  The website must serve English; the logo is blurred.  ",
        ))
        .await
        .unwrap()
        .into_inner()
        .review_task
        .unwrap();
    assert_eq!(rejected.state, ReviewTaskState::Rejected as i32);
    let decision = rejected.decision.unwrap();
    assert_eq!(decision.outcome, ReviewDecision::Reject as i32);
    assert_eq!(
        decision.reason_codes,
        vec!["WEBSITE_NOT_ENGLISH", "LOGO_UNCLEAR"]
    );
    assert_eq!(decision.reasons.len(), 2);
    assert_eq!(decision.reasons[0].code, "WEBSITE_NOT_ENGLISH");
    assert!(!decision.reasons[1].title_zh.is_empty());
    assert_eq!(
        decision.comment,
        "The website must serve English; the logo is blurred."
    );
    expect(
        approve(&mut reviewer, &task).await,
        Code::FailedPrecondition,
        "TASK_ALREADY_DECIDED",
    );
    env.stop().await;
}

#[tokio::test]
async fn cancelling_closes_an_open_task_once() {
    let env = Env::start().await;
    let mut service = env.service();
    let mut reviewer = env.reviewer("reviewer-x");

    let task = env
        .create(creation(&application(), "acct-cancel", Utc::now()))
        .await;
    claim(&mut reviewer, &task).await.unwrap();
    let cancel = CancelReviewTaskRequest {
        event_id: rid(),
        subject: task.subject.clone(),
        reason: "The applicant withdrew the application.".into(),
    };
    let first = service
        .cancel_review_task(cancel.clone())
        .await
        .unwrap()
        .into_inner();
    assert!(first.cancelled);
    let cancelled = first.review_task.unwrap();
    assert_eq!(cancelled.state, ReviewTaskState::Cancelled as i32);
    assert!(cancelled.deadline.is_none() && cancelled.assignee.is_empty());
    // The same event again: the same answer.
    let again = service
        .cancel_review_task(cancel.clone())
        .await
        .unwrap()
        .into_inner();
    assert!(again.cancelled);
    assert_eq!(again.review_task.unwrap().etag, cancelled.etag);
    // Another event: already final, not an error.
    let later = service
        .cancel_review_task(CancelReviewTaskRequest {
            event_id: rid(),
            ..cancel.clone()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!later.cancelled);
    assert_eq!(later.review_task.unwrap().etag, cancelled.etag);
    expect(
        service
            .cancel_review_task(CancelReviewTaskRequest {
                reason: "something else".into(),
                ..cancel.clone()
            })
            .await,
        Code::InvalidArgument,
        "IDEMPOTENCY_KEY_REUSED",
    );
    expect(
        approve(&mut reviewer, &task).await,
        Code::FailedPrecondition,
        "INVALID_TASK_STATE",
    );
    expect(
        claim(&mut reviewer, &task).await,
        Code::FailedPrecondition,
        "INVALID_TASK_STATE",
    );
    expect(
        service
            .cancel_review_task(CancelReviewTaskRequest {
                event_id: rid(),
                subject: application(),
                reason: String::new(),
            })
            .await,
        Code::NotFound,
        "REVIEW_TASK_NOT_FOUND",
    );
    let entries = audit(&mut reviewer, &task.name).await;
    assert_eq!(
        actions(&entries),
        vec![
            AuditAction::Created,
            AuditAction::Claimed,
            AuditAction::Cancelled
        ]
    );
    let last = entries.last().unwrap();
    assert_eq!(last.comment, cancel.reason);
    assert_eq!(last.request_id, cancel.event_id);
    assert_eq!(last.before_state, ReviewTaskState::Claimed as i32);
    assert_eq!(last.after_state, ReviewTaskState::Cancelled as i32);

    // A task waiting on the applicant is cancelled too, its pause closed.
    let waiting = env
        .create(creation(&application(), "acct-cancel-2", Utc::now()))
        .await;
    claim(&mut reviewer, &waiting).await.unwrap();
    reviewer
        .request_changes(changes(&waiting, &["OTHER"], "more"))
        .await
        .unwrap();
    let closed = service
        .cancel_review_task(CancelReviewTaskRequest {
            event_id: rid(),
            subject: waiting.subject.clone(),
            reason: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(closed.cancelled);
    let closed = closed.review_task.unwrap();
    assert!(closed.paused_since.is_none());
    assert!(closed.paused_duration.is_some());
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn creating_a_task_is_idempotent_on_the_event_id() {
    let env = Env::start().await;
    let mut service = env.service();
    let request = creation(&application(), "acct-idem", Utc::now());
    let first = service
        .create_review_task(request.clone())
        .await
        .unwrap()
        .into_inner();
    assert!(first.created);
    let second = service
        .create_review_task(request.clone())
        .await
        .unwrap()
        .into_inner();
    assert!(!second.created);
    assert_eq!(second.review_task, first.review_task);
    let name = first.review_task.unwrap().name;

    let d = expect(
        service
            .create_review_task(CreateReviewTaskRequest {
                company_name: "Another Co., Ltd.".into(),
                ..request.clone()
            })
            .await,
        Code::InvalidArgument,
        "IDEMPOTENCY_KEY_REUSED",
    );
    assert!(d.field_violations.is_empty());
    let d = expect(
        service
            .create_review_task(CreateReviewTaskRequest {
                event_id: rid(),
                ..request.clone()
            })
            .await,
        Code::AlreadyExists,
        "REVIEW_TASK_EXISTS",
    );
    assert_eq!(d.metadata.get("review_task"), Some(&name));

    // Twenty deliveries of one event at once: one task.
    let racing = creation(&application(), "acct-idem-race", Utc::now());
    let mut racers = Vec::new();
    for _ in 0..20 {
        let mut client = service.clone();
        let racing = racing.clone();
        racers.push(tokio::spawn(async move {
            client
                .create_review_task(racing)
                .await
                .map(|r| r.into_inner())
        }));
    }
    let mut created = 0;
    let mut names = HashSet::new();
    for racer in racers {
        let reply = racer.await.unwrap().unwrap();
        created += usize::from(reply.created);
        names.insert(reply.review_task.unwrap().name);
    }
    assert_eq!(created, 1);
    assert_eq!(names.len(), 1);
    let mut reviewer = env.reviewer("reviewer-i");
    let listed = reviewer
        .list_review_tasks(ListReviewTasksRequest {
            subject: racing.subject.clone(),
            states: vec![ReviewTaskState::Queued as i32],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.total_size, 1);
    let name = names.into_iter().next().unwrap();
    assert_eq!(
        actions(&audit(&mut reviewer, &name).await),
        vec![AuditAction::Created]
    );
    env.stop().await;
}

#[tokio::test]
async fn staff_mutations_are_idempotent_on_the_request_id() {
    let env = Env::start().await;
    let db = env.database().await;
    let mut reviewer = env.reviewer("reviewer-idem");
    let task = env
        .create(creation(&application(), "acct-req", Utc::now()))
        .await;
    claim(&mut reviewer, &task).await.unwrap();
    let request = ApproveReviewTaskRequest {
        request_id: rid(),
        name: task.name.clone(),
        comment: "Approved.".into(),
        etag: String::new(),
    };
    let first = reviewer
        .approve_review_task(request.clone())
        .await
        .unwrap()
        .into_inner();
    let second = reviewer
        .approve_review_task(request.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first, second);
    expect(
        reviewer
            .approve_review_task(ApproveReviewTaskRequest {
                comment: "Approved!".into(),
                ..request.clone()
            })
            .await,
        Code::InvalidArgument,
        "IDEMPOTENCY_KEY_REUSED",
    );
    // The same request id used by another reviewer is that reviewer's own key.
    expect(
        env.reviewer("reviewer-else")
            .approve_review_task(request.clone())
            .await,
        Code::FailedPrecondition,
        "TASK_ALREADY_DECIDED",
    );
    assert_eq!(outbox(&db, &task.subject).await.len(), 1);
    let approvals = actions(&audit(&mut reviewer, &task.name).await)
        .into_iter()
        .filter(|a| *a == AuditAction::Approved)
        .count();
    assert_eq!(approvals, 1);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_copies_of_one_approval_all_get_the_first_result() {
    let env = Env::start().await;
    let db = env.database().await;
    let mut reviewer = env.reviewer("reviewer-copies");
    let task = env
        .create(creation(&application(), "acct-copies", Utc::now()))
        .await;
    claim(&mut reviewer, &task).await.unwrap();
    // On PostgreSQL the copies are spread over three replicas of one database (SQLite serves
    // one process).
    let mut replicas = vec![reviewer.clone()];
    let mut others = Vec::new();
    if mesh::backend() == mesh::Backend::Postgres {
        for _ in 0..2 {
            let mut config = mesh::review_config(&env.db.url, NOWHERE, NOWHERE);
            config.common.jwt_secret = Some(SECRET.into());
            let replica = mesh::start_review_with(config).await.unwrap();
            let token = env
                .auth
                .mint("reviewer-copies", Role::Reviewer, Duration::from_secs(3600));
            let value: MetadataValue<Ascii> = format!("Bearer {token}").parse().unwrap();
            replicas.push(ReviewServiceClient::with_interceptor(
                replica.channel().await.unwrap(),
                Bearer(value),
            ));
            others.push(replica);
        }
    }
    let request = ApproveReviewTaskRequest {
        request_id: rid(),
        name: task.name.clone(),
        comment: "Approved.".into(),
        etag: String::new(),
    };
    let racers: Vec<_> = (0..30)
        .map(|i| {
            let mut client = replicas[i % replicas.len()].clone();
            let request = request.clone();
            tokio::spawn(async move { client.approve_review_task(request).await })
        })
        .collect();
    let mut answers = Vec::new();
    for racer in racers {
        let reply = racer
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("every copy succeeds: {e:?}"))
            .into_inner();
        answers.push(reply.review_task.unwrap());
    }
    for answer in &answers {
        assert_eq!(answer.state, ReviewTaskState::Approved as i32);
        assert_eq!(answer.decision, answers[0].decision, "one decision");
    }
    assert_eq!(outbox(&db, &task.subject).await.len(), 1);
    let approvals = actions(&audit(&mut reviewer, &task.name).await)
        .into_iter()
        .filter(|a| *a == AuditAction::Approved)
        .count();
    assert_eq!(approvals, 1, "one audit entry");
    for replica in others {
        replica.stop().await.unwrap();
    }
    env.stop().await;
}

#[tokio::test]
async fn rerun_checks_replaces_the_evidence_through_identity_check() {
    let identity_db = mesh::fresh_db().await.unwrap();
    let identity = mesh::start_identity(&identity_db.url, true).await.unwrap();
    let website = fixtures::Website::start().await.unwrap();
    let identity_url = identity.url();
    let env = Env::start_with(|config| config.identity_check_url = identity_url).await;
    let mut request = creation(&application(), "acct-rerun", Utc::now());
    request.profile = Some(fixtures::profile(&website.url("/zh")));
    let task = env.create(request).await;
    assert_eq!(task.evidence, Some(evidence()));

    let mut reviewer = env.reviewer("reviewer-rerun");
    let reply = reviewer
        .rerun_checks(RerunChecksRequest {
            name: task.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let fresh = reply.evidence.unwrap();
    assert_eq!(
        reply.review_task.as_ref().unwrap().evidence.as_ref(),
        Some(&fresh)
    );
    let website_evidence = fresh.website.clone().expect("the website was checked");
    assert_eq!(website_evidence.requested_url, website.url("/zh"));
    assert!(fresh.logo.is_some(), "the stored logo was checked");
    assert!(
        fresh
            .findings
            .iter()
            .any(|f| f.code == "WEBSITE_NOT_ENGLISH"),
        "{:?}",
        fresh.findings
    );
    assert_eq!(fresh.outcome, CheckOutcome::Failed as i32);
    assert_eq!(
        actions(&audit(&mut reviewer, &task.name).await),
        vec![AuditAction::Created, AuditAction::ChecksRerun]
    );

    // A task claimed by someone else is theirs to recheck.
    let mut other = env.reviewer("reviewer-other");
    claim(&mut other, &task).await.unwrap();
    expect(
        reviewer
            .rerun_checks(RerunChecksRequest {
                name: task.name.clone(),
            })
            .await,
        Code::FailedPrecondition,
        "TASK_CLAIMED_BY_OTHER",
    );
    // identity-check down: UNAVAILABLE, nothing changed.
    identity.stop().await.unwrap();
    let d = expect(
        other
            .rerun_checks(RerunChecksRequest {
                name: task.name.clone(),
            })
            .await,
        Code::Unavailable,
        "DEPENDENCY_UNAVAILABLE",
    );
    assert_eq!(
        d.metadata.get("service").map(String::as_str),
        Some("identity-check")
    );
    // Final tasks are not rechecked.
    approve(&mut other, &task).await.unwrap();
    expect(
        other
            .rerun_checks(RerunChecksRequest {
                name: task.name.clone(),
            })
            .await,
        Code::FailedPrecondition,
        "INVALID_TASK_STATE",
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decision_reaches_registration_through_the_outbox() {
    use kg_proto::identity::ImportAccountsRequest;
    use kg_proto::identity::identity_check_service_client::IdentityCheckServiceClient;
    use kg_proto::registration::registration_service_client::RegistrationServiceClient;
    use kg_proto::registration::{ApplicationState, GetApplicationRequest};

    // Authentication off (every caller is the development operator): registration and review
    // call each other as in `koogallery up`.
    let (identity_db, registration_db, review_db) = (
        mesh::fresh_db().await.unwrap(),
        mesh::fresh_db().await.unwrap(),
        mesh::fresh_db().await.unwrap(),
    );
    let website = fixtures::Website::start().await.unwrap();
    let identity = mesh::start_identity(&identity_db.url, true).await.unwrap();
    let review_addr = std::net::SocketAddr::from(([127, 0, 0, 1], kg_tests::free_port()));
    let registration = mesh::start_registration(mesh::with_peers(
        mesh::registration_config(&registration_db.url, &identity.url(), None),
        &format!("http://{review_addr}"),
        NOWHERE,
    ))
    .await
    .unwrap();
    let config = mesh::review_config(&review_db.url, &registration.url(), &identity.url());
    let review = Running::start(review_addr, move |l, s| kg_review::run(config, l, s))
        .await
        .unwrap();

    let account = "acct-delivery";
    IdentityCheckServiceClient::new(identity.channel().await.unwrap())
        .import_accounts(ImportAccountsRequest {
            request_id: rid(),
            accounts: vec![fixtures::eligible_account(account)],
        })
        .await
        .unwrap();
    let mut reg = RegistrationServiceClient::new(registration.channel().await.unwrap());
    let app = reg
        .submit_application(fixtures::submission(account, 4242, &website.url("/en")))
        .await
        .unwrap()
        .into_inner()
        .application
        .unwrap();

    let mut rev = ReviewServiceClient::new(review.channel().await.unwrap());
    let task = poll("the review task", Duration::from_secs(20), || {
        let mut rev = rev.clone();
        let subject = app.name.clone();
        async move {
            rev.list_review_tasks(ListReviewTasksRequest {
                subject,
                ..Default::default()
            })
            .await
            .ok()?
            .into_inner()
            .review_tasks
            .pop()
        }
    })
    .await;
    assert_eq!(task.account_id, account);
    assert_eq!(
        at(&task.deadline),
        WorkingCalendar::china().deadline(at(&task.submit_time), 3)
    );

    rev.claim_review_task(ClaimReviewTaskRequest {
        request_id: rid(),
        name: task.name.clone(),
        etag: String::new(),
    })
    .await
    .unwrap();
    rev.approve_review_task(ApproveReviewTaskRequest {
        request_id: rid(),
        name: task.name.clone(),
        comment: "Welcome.".into(),
        etag: String::new(),
    })
    .await
    .unwrap();

    let delivered = poll("the delivery", Duration::from_secs(20), || {
        let mut rev = rev.clone();
        let name = task.name.clone();
        async move {
            let task = rev
                .get_review_task(GetReviewTaskRequest { name })
                .await
                .ok()?
                .into_inner()
                .review_task?;
            task.decision.as_ref()?.deliver_time?;
            Some(task)
        }
    })
    .await;
    assert_eq!(delivered.state, ReviewTaskState::Approved as i32);
    let entries = rev
        .list_audit_entries(ListAuditEntriesRequest {
            parent: task.name.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .audit_entries;
    let delivery: Vec<&AuditEntry> = entries
        .iter()
        .filter(|e| e.action == AuditAction::DecisionDelivered as i32)
        .collect();
    assert_eq!(delivery.len(), 1, "{entries:#?}");
    assert_eq!(delivery[0].actor, "registration");
    assert_eq!(delivery[0].actor_role, ActorRole::Service as i32);
    assert_eq!(delivery[0].comment, "APPROVE APPLIED");
    let db = kg_runtime::db::connect(&review_db.url).await.unwrap();
    assert_eq!(
        kg_runtime::outbox::backlog(&db, "review_outbox")
            .await
            .unwrap(),
        0
    );
    let applied = reg
        .get_application(GetApplicationRequest {
            name: app.name.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .application
        .unwrap();
    assert_eq!(applied.state, ApplicationState::Approved as i32);

    review.stop().await.unwrap();
    registration.stop().await.unwrap();
    identity.stop().await.unwrap();
}
