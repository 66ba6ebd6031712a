//! The audit trail: every action, in order.

use super::*;

#[tokio::test]
async fn the_audit_trail_records_every_action_in_order() {
    let env = Env::start().await;
    let mut service = env.service();
    let mut a = env.reviewer("reviewer-a");
    let mut b = env.reviewer("reviewer-b");
    let task = env
        .create(creation(&application(), "acct-audit", Utc::now()))
        .await;
    let claim_a = ClaimReviewTaskRequest {
        request_id: rid(),
        name: task.name.clone(),
        etag: String::new(),
    };
    a.claim_review_task(claim_a.clone()).await.unwrap();
    a.release_review_task(ReleaseReviewTaskRequest {
        request_id: rid(),
        name: task.name.clone(),
        comment: "Out for lunch".into(),
        etag: String::new(),
    })
    .await
    .unwrap();
    claim(&mut b, &task).await.unwrap();
    b.request_changes(changes(&task, &["LOGO_UNCLEAR"], "A sharper logo."))
        .await
        .unwrap();
    let resume_event = rid();
    service
        .resume_review_task(ResumeReviewTaskRequest {
            event_id: resume_event.clone(),
            subject: task.subject.clone(),
            resubmit_time: Some(ts(Utc::now())),
            evidence: Some(evidence()),
            profile: Some(fixtures::profile("https://example.com/en")),
        })
        .await
        .unwrap();
    claim(&mut a, &task).await.unwrap();
    a.reject_review_task(rejection(
        &task,
        &["DUPLICATE_ENTITY"],
        "This company is already a seller.",
    ))
    .await
    .unwrap();

    let entries = audit(&mut a, &task.name).await;
    use AuditAction as A;
    use ReviewTaskState as S;
    let expected = [
        (
            A::Created,
            "registration",
            ActorRole::Service,
            S::Unspecified,
            S::Queued,
        ),
        (
            A::Claimed,
            "reviewer-a",
            ActorRole::Reviewer,
            S::Queued,
            S::Claimed,
        ),
        (
            A::Released,
            "reviewer-a",
            ActorRole::Reviewer,
            S::Claimed,
            S::Queued,
        ),
        (
            A::Claimed,
            "reviewer-b",
            ActorRole::Reviewer,
            S::Queued,
            S::Claimed,
        ),
        (
            A::ChangesRequested,
            "reviewer-b",
            ActorRole::Reviewer,
            S::Claimed,
            S::WaitingOnApplicant,
        ),
        (
            A::Resumed,
            "registration",
            ActorRole::Service,
            S::WaitingOnApplicant,
            S::Queued,
        ),
        (
            A::Claimed,
            "reviewer-a",
            ActorRole::Reviewer,
            S::Queued,
            S::Claimed,
        ),
        (
            A::Rejected,
            "reviewer-a",
            ActorRole::Reviewer,
            S::Claimed,
            S::Rejected,
        ),
    ];
    assert_eq!(entries.len(), expected.len(), "{entries:#?}");
    for (entry, (action, actor, role, before, after)) in entries.iter().zip(expected) {
        assert_eq!(entry.action, action as i32, "{entry:?}");
        assert_eq!(entry.actor, actor, "{entry:?}");
        assert_eq!(entry.actor_role, role as i32, "{entry:?}");
        assert_eq!(entry.before_state, before as i32, "{entry:?}");
        assert_eq!(entry.after_state, after as i32, "{entry:?}");
        assert_eq!(entry.task, task.name);
        assert_eq!(entry.subject, task.subject);
        assert!(
            entry
                .name
                .starts_with(&format!("{}/auditEntries/", task.name))
        );
        assert!(!entry.request_id.is_empty());
    }
    assert!(
        entries
            .windows(2)
            .all(|w| at(&w[0].action_time) <= at(&w[1].action_time))
    );
    assert_eq!(entries[1].request_id, claim_a.request_id);
    assert_eq!(entries[2].comment, "Out for lunch");
    assert_eq!(entries[4].reason_codes, vec!["LOGO_UNCLEAR"]);
    assert_eq!(entries[5].request_id, resume_event);
    assert_eq!(entries[7].reason_codes, vec!["DUPLICATE_ENTITY"]);
    assert_eq!(entries[7].comment, "This company is already a seller.");

    // Across tasks, filtered.
    let other = env
        .create(creation(&application(), "acct-audit-2", Utc::now()))
        .await;
    claim(&mut b, &other).await.unwrap();
    let by_b = a
        .list_audit_entries(ListAuditEntriesRequest {
            parent: "reviewTasks/-".into(),
            actor: "reviewer-b".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .audit_entries;
    assert_eq!(
        actions(&by_b),
        vec![A::Claimed, A::ChangesRequested, A::Claimed]
    );
    assert_eq!(by_b[2].task, other.name);
    let claims = a
        .list_audit_entries(ListAuditEntriesRequest {
            parent: "reviewTasks/-".into(),
            actions: vec![A::Claimed as i32],
            start_time: Some(ts(at(&entries[3].action_time))),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .audit_entries;
    assert_eq!(claims.len(), 3);
    let before_end = a
        .list_audit_entries(ListAuditEntriesRequest {
            parent: task.name.clone(),
            end_time: Some(ts(at(&entries[1].action_time))),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .audit_entries;
    assert_eq!(actions(&before_end), vec![A::Created]);

    // Append-only, even for someone with the database password.
    let db = env.database().await;
    for sql in [
        "UPDATE review_audit SET actor = 'nobody'",
        "DELETE FROM review_audit",
    ] {
        assert!(db.execute_unprepared(sql).await.is_err(), "{sql}");
    }
    assert_eq!(audit(&mut a, &task.name).await, entries);
    env.stop().await;
}
