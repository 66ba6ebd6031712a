//! The queue and claims: ordering, filters and pages, one reviewer per task, no self-review.

use super::*;

#[tokio::test]
async fn the_queue_is_ordered_by_deadline_with_filters_and_pages() {
    let env = Env::start().await;
    let calendar = WorkingCalendar::china();
    let mut service = env.service();
    let mut reviewer = env.reviewer("reviewer-q");
    let now = DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap();
    let specs = [
        ("a", application(), "acct-1", beijing("2026-11-20T10:00:00")),
        ("b", application(), "acct-2", beijing("2026-11-16T10:00:00")),
        (
            "c",
            modification(),
            "acct-3",
            beijing("2026-11-20T10:00:00"),
        ),
        (
            "d",
            application(),
            "acct-1",
            now - chrono::Duration::minutes(5),
        ),
        (
            "e",
            modification(),
            "acct-4",
            beijing("2026-11-17T09:00:00"),
        ),
        (
            "f",
            application(),
            "acct-5",
            now - chrono::Duration::minutes(5),
        ),
        (
            "g",
            application(),
            "acct-6",
            now - chrono::Duration::minutes(5),
        ),
    ];
    let mut tasks = std::collections::HashMap::new();
    for (key, subject, account, submitted) in &specs {
        let task = env.create(creation(subject, account, *submitted)).await;
        assert_eq!(at(&task.deadline), calendar.deadline(*submitted, 3));
        tasks.insert(*key, task);
    }
    // f waits on the applicant (no deadline: last), g is cancelled (not open: not listed).
    let mut other = env.reviewer("reviewer-other");
    claim(&mut other, &tasks["f"]).await.unwrap();
    other
        .request_changes(changes(
            &tasks["f"],
            &["LOGO_UNCLEAR"],
            "A clearer logo, please.",
        ))
        .await
        .unwrap();
    service
        .cancel_review_task(CancelReviewTaskRequest {
            event_id: rid(),
            subject: tasks["g"].subject.clone(),
            reason: "withdrawn".into(),
        })
        .await
        .unwrap();

    // Expected order: deadline, then name (ties: a and c).
    let mut open: Vec<&ReviewTask> = ["a", "b", "c", "d", "e"]
        .iter()
        .map(|k| &tasks[k])
        .collect();
    open.sort_by_key(|t| (at(&t.deadline), t.name.clone()));
    let mut expected: Vec<String> = open.iter().map(|t| t.name.clone()).collect();
    expected.push(tasks["f"].name.clone());

    let list = |client: &mut Client, request: ListReviewTasksRequest| {
        let mut client = client.clone();
        async move {
            let mut names = Vec::new();
            let mut request = request;
            loop {
                let page = client
                    .list_review_tasks(request.clone())
                    .await
                    .unwrap()
                    .into_inner();
                names.push((page.review_tasks, page.total_size));
                if page.next_page_token.is_empty() {
                    break;
                }
                request.page_token = page.next_page_token;
            }
            names
        }
    };
    let pages = list(
        &mut reviewer,
        ListReviewTasksRequest {
            page_size: 2,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(pages.len(), 3);
    assert!(pages.iter().all(|(_, total)| *total == 6));
    let names: Vec<String> = pages
        .iter()
        .flat_map(|(tasks, _)| tasks.iter().map(|t| t.name.clone()))
        .collect();
    assert_eq!(names, expected);
    let waiting = pages.last().unwrap().0.last().unwrap();
    assert_eq!(waiting.state, ReviewTaskState::WaitingOnApplicant as i32);
    assert!(waiting.deadline.is_none() && waiting.paused_since.is_some());

    let names_of = |request: ListReviewTasksRequest| {
        let mut client = reviewer.clone();
        async move {
            let page = client
                .list_review_tasks(request)
                .await
                .unwrap()
                .into_inner();
            assert!(page.next_page_token.is_empty());
            assert_eq!(page.total_size as usize, page.review_tasks.len());
            page.review_tasks
                .into_iter()
                .map(|t| t.name)
                .collect::<Vec<_>>()
        }
    };
    let names_in = |keys: &[&str]| {
        let mut picked: Vec<&ReviewTask> = keys.iter().map(|k| &tasks[k]).collect();
        picked.sort_by_key(|t| (t.deadline.map(|_| at(&t.deadline)), t.name.clone()));
        picked.iter().map(|t| t.name.clone()).collect::<Vec<_>>()
    };
    assert_eq!(
        names_of(ListReviewTasksRequest {
            subject_kinds: vec![SubjectKind::ModificationRequest as i32],
            ..Default::default()
        })
        .await,
        names_in(&["c", "e"])
    );
    assert_eq!(
        names_of(ListReviewTasksRequest {
            account_id: "acct-1".into(),
            ..Default::default()
        })
        .await,
        names_in(&["a", "d"])
    );
    assert_eq!(
        names_of(ListReviewTasksRequest {
            subject: tasks["b"].subject.clone(),
            ..Default::default()
        })
        .await,
        vec![tasks["b"].name.clone()]
    );
    let overdue: Vec<&str> = ["a", "b", "c", "d", "e"]
        .into_iter()
        .filter(|k| at(&tasks[k].deadline) < Utc::now())
        .collect();
    assert!(overdue.len() >= 3, "the fixed November tasks are overdue");
    let listed = names_of(ListReviewTasksRequest {
        overdue_only: true,
        ..Default::default()
    })
    .await;
    assert_eq!(listed, names_in(&overdue));
    assert_eq!(
        names_of(ListReviewTasksRequest {
            states: vec![ReviewTaskState::Cancelled as i32],
            ..Default::default()
        })
        .await,
        vec![tasks["g"].name.clone()]
    );
    assert_eq!(
        names_of(ListReviewTasksRequest {
            states: vec![
                ReviewTaskState::WaitingOnApplicant as i32,
                ReviewTaskState::Cancelled as i32
            ],
            ..Default::default()
        })
        .await,
        names_in(&["f", "g"])
    );
    // "me": the caller's claims.
    claim(&mut reviewer.clone(), &tasks["e"]).await.unwrap();
    let mine = names_of(ListReviewTasksRequest {
        assignee: "me".into(),
        ..Default::default()
    })
    .await;
    assert_eq!(mine, vec![tasks["e"].name.clone()]);
    assert_eq!(
        names_of(ListReviewTasksRequest {
            assignee: "reviewer-q".into(),
            states: vec![ReviewTaskState::Claimed as i32],
            ..Default::default()
        })
        .await,
        mine
    );

    // A page token belongs to the filters it was made for.
    let first = reviewer
        .list_review_tasks(ListReviewTasksRequest {
            page_size: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!first.next_page_token.is_empty());
    expect(
        reviewer
            .list_review_tasks(ListReviewTasksRequest {
                page_size: 1,
                page_token: first.next_page_token.clone(),
                account_id: "acct-1".into(),
                ..Default::default()
            })
            .await,
        Code::InvalidArgument,
        "INVALID_PAGE_TOKEN",
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_reviewer_holds_a_task_at_a_time() {
    let env = Env::start().await;
    let task = env
        .create(creation(&application(), "acct-claims", Utc::now()))
        .await;
    let mut a = env.reviewer("reviewer-a");
    let mut b = env.reviewer("reviewer-b");

    let claimed = claim(&mut a, &task).await.unwrap();
    assert_eq!(claimed.state, ReviewTaskState::Claimed as i32);
    assert_eq!(claimed.assignee, "reviewer-a");
    assert!(claimed.claim_time.is_some());
    assert_ne!(claimed.etag, task.etag);
    // Claiming a task one holds succeeds and changes nothing.
    assert_eq!(claim(&mut a, &task).await.unwrap(), claimed);

    let d = expect(
        claim(&mut b, &task).await,
        Code::FailedPrecondition,
        "TASK_CLAIMED_BY_OTHER",
    );
    assert_eq!(
        d.metadata.get("assignee").map(String::as_str),
        Some("reviewer-a")
    );
    expect(
        approve(&mut b, &task).await,
        Code::FailedPrecondition,
        "TASK_CLAIMED_BY_OTHER",
    );
    let release = |name: &str| ReleaseReviewTaskRequest {
        request_id: rid(),
        name: name.to_string(),
        comment: "handing over".into(),
        etag: String::new(),
    };
    expect(
        b.release_review_task(release(&task.name)).await,
        Code::PermissionDenied,
        "TASK_CLAIMED_BY_OTHER",
    );
    // Operators may release anyone's claim.
    let released = env
        .operator("operator-1")
        .release_review_task(release(&task.name))
        .await
        .unwrap()
        .into_inner()
        .review_task
        .unwrap();
    assert_eq!(released.state, ReviewTaskState::Queued as i32);
    assert!(released.assignee.is_empty() && released.claim_time.is_none());
    expect(
        b.release_review_task(release(&task.name)).await,
        Code::FailedPrecondition,
        "TASK_NOT_CLAIMED",
    );
    expect(
        approve(&mut a, &task).await,
        Code::FailedPrecondition,
        "TASK_NOT_CLAIMED",
    );
    // A stale etag: the task changed since it was read.
    expect(
        b.claim_review_task(ClaimReviewTaskRequest {
            request_id: rid(),
            name: task.name.clone(),
            etag: claimed.etag.clone(),
        })
        .await,
        Code::Aborted,
        "ETAG_MISMATCH",
    );
    let by_b = b
        .claim_review_task(ClaimReviewTaskRequest {
            request_id: rid(),
            name: task.name.clone(),
            etag: released.etag.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .review_task
        .unwrap();
    assert_eq!(by_b.assignee, "reviewer-b");
    // The assignee releases its own claim.
    b.release_review_task(release(&task.name)).await.unwrap();

    // Twenty reviewers claim one task at once: one wins.
    let fresh = env
        .create(creation(&application(), "acct-race", Utc::now()))
        .await;
    let mut racers = Vec::new();
    for i in 0..20 {
        let mut client = env.reviewer(&format!("racer-{i}"));
        let fresh = fresh.clone();
        racers.push(tokio::spawn(
            async move { claim(&mut client, &fresh).await },
        ));
    }
    let mut winners = Vec::new();
    for racer in racers {
        match racer.await.unwrap() {
            Ok(task) => winners.push(task.assignee),
            Err(status) => {
                assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
                assert_eq!(
                    decoded(&status).reason.as_deref(),
                    Some("TASK_CLAIMED_BY_OTHER")
                );
            }
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    let now = get(&mut a, &fresh.name).await;
    assert_eq!(now.assignee, winners[0]);
    let claims = audit(&mut a, &fresh.name).await;
    assert_eq!(
        actions(&claims),
        vec![AuditAction::Created, AuditAction::Claimed]
    );
    assert_eq!(claims[1].actor, winners[0]);

    // Roles: applicants have no access; reviewers cannot create tasks.
    let mut applicant = env.client("acct-claims", Role::Applicant);
    expect(
        applicant
            .get_review_task(GetReviewTaskRequest {
                name: task.name.clone(),
            })
            .await,
        Code::PermissionDenied,
        "ROLE_NOT_ALLOWED",
    );
    expect(
        a.create_review_task(creation(&application(), "acct-x", Utc::now()))
            .await,
        Code::PermissionDenied,
        "ROLE_NOT_ALLOWED",
    );
    env.stop().await;
}

#[tokio::test]
async fn reviewers_never_review_their_own_account() {
    let env = Env::start().await;
    let task = env
        .create(creation(&application(), "staff-7", Utc::now()))
        .await;
    let mut own = env.reviewer("staff-7");
    expect(
        claim(&mut own, &task).await,
        Code::PermissionDenied,
        "SELF_REVIEW",
    );
    expect(
        env.operator("staff-7")
            .claim_review_task(ClaimReviewTaskRequest {
                request_id: rid(),
                name: task.name.clone(),
                etag: String::new(),
            })
            .await,
        Code::PermissionDenied,
        "SELF_REVIEW",
    );
    expect(
        approve(&mut own, &task).await,
        Code::PermissionDenied,
        "SELF_REVIEW",
    );
    expect(
        own.reject_review_task(rejection(&task, &["OTHER"], "no"))
            .await,
        Code::PermissionDenied,
        "SELF_REVIEW",
    );
    expect(
        own.request_changes(changes(&task, &["OTHER"], "no")).await,
        Code::PermissionDenied,
        "SELF_REVIEW",
    );
    expect(
        own.rerun_checks(RerunChecksRequest {
            name: task.name.clone(),
        })
        .await,
        Code::PermissionDenied,
        "SELF_REVIEW",
    );
    // Someone else reviews it; its account's staff member still cannot decide it.
    let mut other = env.reviewer("staff-8");
    claim(&mut other, &task).await.unwrap();
    expect(
        approve(&mut own, &task).await,
        Code::PermissionDenied,
        "SELF_REVIEW",
    );
    let approved = approve(&mut other, &task).await.unwrap();
    assert_eq!(approved.state, ReviewTaskState::Approved as i32);
    assert_eq!(
        approved.assignee, "staff-8",
        "kept as the deciding reviewer"
    );
    env.stop().await;
}
