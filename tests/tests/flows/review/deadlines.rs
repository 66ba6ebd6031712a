//! Deadlines: three working days in the calendar, the clock stopped while changes are
//! requested, calendar files, and the overdue gauges.

use super::*;

#[tokio::test]
async fn a_task_is_due_three_working_days_after_submission() {
    let env = Env::start().await;
    let calendar = WorkingCalendar::china();
    let cases = [
        // Friday 10:00 → Wednesday 10:00
        ("2026-11-20T10:00:00", "2026-11-25T10:00:00"),
        // Monday 10:00 → Thursday 10:00
        ("2026-11-16T10:00:00", "2026-11-19T10:00:00"),
        // Friday 18:00, after the 17:30 cut-off → counts from Monday → Thursday 00:00
        ("2026-11-20T18:00:00", "2026-11-26T00:00:00"),
        // Saturday → the end of Wednesday
        ("2026-11-21T15:00:00", "2026-11-26T00:00:00"),
        // Wednesday before National Day (1–7 October): Wed 8 h, Thu 8th, Fri 9th, make-up Sat 10th
        ("2026-09-30T16:00:00", "2026-10-10T16:00:00"),
    ];
    for (submitted, due) in cases {
        let submitted = beijing(submitted);
        assert_eq!(calendar.deadline(submitted, 3), beijing(due));
        let request = creation(&application(), "acct-deadline", submitted);
        let reply = env
            .service()
            .create_review_task(request.clone())
            .await
            .unwrap()
            .into_inner();
        assert!(reply.created);
        let task = reply.review_task.unwrap();
        assert_eq!(at(&task.deadline), beijing(due), "{submitted}");
        assert_eq!(at(&task.submit_time), submitted);
        assert_eq!(task.state, ReviewTaskState::Queued as i32);
        assert_eq!(task.overdue, beijing(due) < Utc::now());
        assert!(task.assignee.is_empty() && task.decision.is_none());
        assert!(task.name.starts_with("reviewTasks/"));
        assert_eq!(task.subject, request.subject);
        assert_eq!(task.subject_kind, SubjectKind::Application as i32);
        assert_eq!(task.entity, request.entity);
        assert_eq!(task.evidence, Some(evidence()));
        // The profile comes back without the logo bytes, with their hash.
        let profile = task.profile.clone().unwrap();
        assert!(profile.logo.is_empty());
        assert_eq!(profile.logo_sha256.len(), 64);
        assert_eq!(
            profile.website_url,
            request.profile.as_ref().unwrap().website_url
        );
        assert!(!task.etag.is_empty());

        let mut reviewer = env.reviewer("reviewer-1");
        assert_eq!(get(&mut reviewer, &task.name).await, task);
        let entries = audit(&mut reviewer, &task.name).await;
        assert_eq!(actions(&entries), vec![AuditAction::Created]);
        let created = &entries[0];
        assert_eq!(created.actor, "registration");
        assert_eq!(created.actor_role, ActorRole::Service as i32);
        assert_eq!(created.before_state, ReviewTaskState::Unspecified as i32);
        assert_eq!(created.after_state, ReviewTaskState::Queued as i32);
        assert_eq!(created.request_id, request.event_id);
        assert_eq!(created.subject, request.subject);
        assert_eq!(created.task, task.name);
    }
    env.stop().await;
}

/// A submission instant whose clock has run between 1 and 2 working hours by now, so that
/// RequestChanges now uses some working time (never a restart in disguise).
fn recent_submission(calendar: &WorkingCalendar) -> DateTime<Utc> {
    let now = Utc::now();
    let mut submitted = now;
    for _ in 0..(24 * 14) {
        submitted -= chrono::Duration::hours(1);
        let used = calendar.working_time_between(calendar.effective_start(submitted), now);
        if used >= chrono::Duration::hours(1) {
            return DateTime::from_timestamp(submitted.timestamp(), 0).unwrap();
        }
    }
    panic!("no working hour in two weeks");
}

#[tokio::test]
async fn request_changes_stops_the_clock_and_resume_continues_it() {
    let env = Env::start().await;
    let calendar = WorkingCalendar::china();
    let mut reviewer = env.reviewer("reviewer-c");
    let mut service = env.service();
    let db = env.database().await;

    let submitted = recent_submission(&calendar);
    let task = env
        .create(creation(&application(), "acct-changes", submitted))
        .await;
    assert_eq!(at(&task.deadline), calendar.deadline(submitted, 3));
    claim(&mut reviewer, &task).await.unwrap();
    let waiting = reviewer
        .request_changes(changes(
            &task,
            &["WEBSITE_NOT_ENGLISH"],
            "Please add an English version of the website.",
        ))
        .await
        .unwrap()
        .into_inner()
        .review_task
        .unwrap();
    assert_eq!(waiting.state, ReviewTaskState::WaitingOnApplicant as i32);
    assert!(waiting.deadline.is_none(), "the clock is stopped");
    assert!(!waiting.overdue);
    assert!(waiting.assignee.is_empty());
    let paused = at(&waiting.paused_since);
    assert_eq!(
        waiting.decision.as_ref().unwrap().outcome,
        ReviewDecision::RequestChanges as i32
    );
    let events = outbox(&db, &task.subject).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].1["decision"], "REQUEST_CHANGES");
    assert_eq!(
        events[0].1["reason_codes"],
        serde_json::json!(["WEBSITE_NOT_ENGLISH"])
    );

    // While it waits nobody decides it.
    expect(
        approve(&mut reviewer, &task).await,
        Code::FailedPrecondition,
        "TASK_ALREADY_DECIDED",
    );
    expect(
        claim(&mut reviewer, &task).await,
        Code::FailedPrecondition,
        "INVALID_TASK_STATE",
    );

    // The applicant resubmits 30 minutes later: the clock continues with what was left.
    let resubmitted = paused + chrono::Duration::minutes(30);
    let resume = ResumeReviewTaskRequest {
        event_id: rid(),
        subject: task.subject.clone(),
        resubmit_time: Some(ts(resubmitted)),
        evidence: Some(CheckEvidence {
            outcome: CheckOutcome::Warning as i32,
            ..Default::default()
        }),
        profile: Some(fixtures::profile("https://example.com/en-new")),
    };
    let resumed = service
        .resume_review_task(resume.clone())
        .await
        .unwrap()
        .into_inner()
        .review_task
        .unwrap();
    let used = calendar.working_time_between(calendar.effective_start(submitted), paused);
    assert!(used >= chrono::Duration::hours(1), "{used}");
    let expected = calendar.resume_deadline(resubmitted, chrono::Duration::hours(72) - used);
    assert_eq!(at(&resumed.deadline), expected);
    assert_ne!(
        at(&resumed.deadline),
        calendar.deadline(resubmitted, 3),
        "resumed, not restarted"
    );
    assert_eq!(resumed.state, ReviewTaskState::Queued as i32);
    assert!(resumed.paused_since.is_none() && resumed.assignee.is_empty());
    assert_eq!(at(&resumed.submit_time), resubmitted);
    assert_eq!(
        resumed.paused_duration,
        Some(prost_types::Duration {
            seconds: 1800,
            nanos: 0
        })
    );
    assert_eq!(
        resumed.evidence.as_ref().unwrap().outcome,
        CheckOutcome::Warning as i32
    );
    let profile = resumed.profile.clone().unwrap();
    assert_eq!(profile.website_url, "https://example.com/en-new");
    assert!(profile.logo.is_empty() && profile.logo_sha256.len() == 64);
    // The same event again: the same task, resumed once.
    let again = service
        .resume_review_task(resume.clone())
        .await
        .unwrap()
        .into_inner()
        .review_task
        .unwrap();
    assert_eq!(again.deadline, resumed.deadline);
    assert_eq!(again.etag, resumed.etag);
    expect(
        service
            .resume_review_task(ResumeReviewTaskRequest {
                event_id: rid(),
                ..resume.clone()
            })
            .await,
        Code::FailedPrecondition,
        "INVALID_TASK_STATE",
    );
    expect(
        service
            .resume_review_task(ResumeReviewTaskRequest {
                event_id: rid(),
                subject: application(),
                ..resume.clone()
            })
            .await,
        Code::NotFound,
        "REVIEW_TASK_NOT_FOUND",
    );

    // Stopped a second time: the second stretch adds to the first.
    claim(&mut reviewer, &task).await.unwrap();
    let second = reviewer
        .request_changes(changes(&task, &["LOGO_UNCLEAR"], "And the logo."))
        .await
        .unwrap()
        .into_inner()
        .review_task
        .unwrap();
    let paused_again = at(&second.paused_since);
    let used_again =
        used + calendar.working_time_between(calendar.effective_start(resubmitted), paused_again);
    let resubmitted_again = paused_again + chrono::Duration::minutes(5);
    let resumed_again = service
        .resume_review_task(ResumeReviewTaskRequest {
            event_id: rid(),
            subject: task.subject.clone(),
            resubmit_time: Some(ts(resubmitted_again)),
            evidence: None,
            profile: None,
        })
        .await
        .unwrap()
        .into_inner()
        .review_task
        .unwrap();
    assert_eq!(
        at(&resumed_again.deadline),
        calendar.resume_deadline(resubmitted_again, chrono::Duration::hours(72) - used_again)
    );
    assert_eq!(
        resumed_again.paused_duration,
        Some(prost_types::Duration {
            seconds: 1800 + 300,
            nanos: 0
        })
    );
    assert_eq!(
        resumed_again.profile, resumed.profile,
        "kept when not resent"
    );
    assert_eq!(outbox(&db, &task.subject).await.len(), 2);

    // Changes are for applications only.
    let modification_task = env
        .create(creation(&modification(), "acct-seller", Utc::now()))
        .await;
    claim(&mut reviewer, &modification_task).await.unwrap();
    expect(
        reviewer
            .request_changes(changes(&modification_task, &["OTHER"], "no"))
            .await,
        Code::FailedPrecondition,
        "CHANGES_NOT_ALLOWED",
    );
    env.stop().await;
}

async fn scrape(addr: std::net::SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else {
        return String::new();
    };
    let request = format!("GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    if stream.write_all(request.as_bytes()).await.is_err() {
        return String::new();
    }
    let mut body = String::new();
    let _ = stream.read_to_string(&mut body).await;
    body
}

#[tokio::test]
async fn gauges_count_overdue_tasks_and_the_outbox_backlog() {
    let metrics = std::net::SocketAddr::from(([127, 0, 0, 1], kg_tests::free_port()));
    let env = Env::start_with(|config| config.common.metrics_addr = Some(metrics)).await;
    let overdue = env
        .create(creation(
            &application(),
            "acct-m1",
            beijing("2026-11-02T10:00:00"),
        ))
        .await;
    assert!(overdue.overdue);
    let fresh = env
        .create(creation(&application(), "acct-m2", Utc::now()))
        .await;
    assert!(!fresh.overdue);
    poll("overdue gauge", Duration::from_secs(10), || async {
        let body = scrape(metrics).await;
        (body.contains("koogallery_review_overdue_tasks 1")
            && body.contains("koogallery_review_outbox_backlog 0")
            && body.contains("koogallery_review_outbox_dead_letters 0"))
        .then_some(())
    })
    .await;
    let mut reviewer = env.reviewer("reviewer-m");
    claim(&mut reviewer, &overdue).await.unwrap();
    approve(&mut reviewer, &overdue).await.unwrap();
    poll("backlog gauge", Duration::from_secs(10), || async {
        let body = scrape(metrics).await;
        (body.contains("koogallery_review_overdue_tasks 0")
            && body.contains("koogallery_review_outbox_backlog 1")
            && body.contains("koogallery_review_outbox_dead_letters 0"))
        .then_some(())
    })
    .await;
    env.stop().await;
}

#[tokio::test]
async fn a_calendar_file_sets_the_working_days_and_a_bad_one_stops_the_service() {
    let dir = std::env::temp_dir().join(format!("kg-review-calendar-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    // A Sunday-to-Thursday week in Dubai, no cut-off, one holiday.
    let good = dir.join("ae.yaml");
    std::fs::write(
        &good,
        "timezone: Asia/Dubai\nweekend: [Friday, Saturday]\nholidays: [2026-11-23]\n",
    )
    .unwrap();
    let path = good.clone();
    let env = Env::start_with(move |config| config.calendar_file = Some(path)).await;
    // Thursday 2026-11-19 10:00 Dubai: Thu 14 h, (Fri, Sat off), Sun 24 h, (Mon holiday),
    // Tue 24 h, Wed 10 h → Wednesday 2026-11-25 10:00 Dubai.
    let submitted = DateTime::parse_from_rfc3339("2026-11-19T10:00:00+04:00")
        .unwrap()
        .to_utc();
    let due = DateTime::parse_from_rfc3339("2026-11-25T10:00:00+04:00")
        .unwrap()
        .to_utc();
    assert_eq!(
        WorkingCalendar::from_file(&good)
            .unwrap()
            .deadline(submitted, 3),
        due
    );
    let task = env
        .create(creation(&application(), "acct-dubai", submitted))
        .await;
    assert_eq!(at(&task.deadline), due);
    env.stop().await;

    let bad = dir.join("bad.yaml");
    std::fs::write(&bad, "timezone: Mars/Olympus_Mons\n").unwrap();
    let db = mesh::fresh_db().await.unwrap();
    let mut config = mesh::review_config(&db.url, NOWHERE, NOWHERE);
    config.calendar_file = Some(bad);
    let started = mesh::start_review_with(config).await;
    assert!(
        started.is_err(),
        "a calendar that does not load stops the service"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
