//! Contact reachability over the whole mesh: verification codes mailed to the contact and
//! customer-service addresses, permanent failures learnt from a real SMTP server's refusal at
//! RCPT (aiosmtpd) and from bounce reports (RFC 3464) delivered into a real Maildir, the
//! account told, the events on the WatchEvents stream, and a corrected, verified address
//! clearing it all. The mesh marks an account unreachable after 2 failures.

use std::time::Duration;

use base64::Engine;
use kg_proto::notification::{
    DeliveryStatus, ListNotificationsRequest, Notification, NotificationEventType,
};
use kg_proto::registration::*;
use kg_runtime::auth::Role;
use kg_tests::full_mesh::{Mesh, decoded, mask};
use kg_tests::smtp::dsn;
use kg_tests::{next_events, poll};
use tonic::Code;

const WAIT: Duration = Duration::from_secs(40);

async fn contacts(m: &Mesh, account: &str) -> ListContactsResponse {
    m.reg()
        .await
        .list_contacts(m.operator(ListContactsRequest {
            account_id: account.to_string(),
        }))
        .await
        .unwrap()
        .into_inner()
}

async fn contact(m: &Mesh, account: &str, email: &str) -> Option<Contact> {
    contacts(m, account)
        .await
        .contacts
        .into_iter()
        .find(|c| c.email == email)
}

async fn contact_in(m: &Mesh, account: &str, email: &str, state: ContactState) -> Contact {
    poll(&format!("{email} {state:?}"), WAIT, || async {
        contact(m, account, email)
            .await
            .filter(|c| c.state == state as i32)
    })
    .await
}

async fn deliveries(m: &Mesh, account: &str, subject: &str) -> Vec<Notification> {
    m.notifications()
        .await
        .list_notifications(m.operator(ListNotificationsRequest {
            account_id: account.to_string(),
            subject: subject.to_string(),
            page_size: 100,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .notifications
}

/// The one verification delivery of a contact, once it is in `status`.
async fn verification_in(m: &Mesh, c: &Contact, status: DeliveryStatus) -> Notification {
    poll(
        &format!("verification of {} {status:?}", c.email),
        WAIT,
        || async {
            let mut list = deliveries(m, &c.account_id, &c.name).await;
            list.retain(|n| n.event_type == NotificationEventType::ContactVerification as i32);
            assert!(list.len() <= 1, "one verification mail per code: {list:?}");
            list.pop().filter(|n| n.status == status as i32)
        },
    )
    .await
}

/// The text of the last mail the sink received for `to` (base64 bodies decoded).
fn last_mail_to(m: &Mesh, to: &str) -> Option<(kg_tests::ReceivedMail, String)> {
    let mail = m
        .smtp
        .messages()
        .into_iter()
        .rfind(|mail| mail.rcpt_tos.iter().any(|r| r == to))?;
    let body = match mail.header("Content-Transfer-Encoding").as_deref() {
        Some(enc) if enc.eq_ignore_ascii_case("base64") => String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(mail.body().split_whitespace().collect::<String>())
                .unwrap(),
        )
        .unwrap(),
        _ => mail.body().replace("=\r\n", "").replace("=\n", ""),
    };
    Some((mail, body))
}

/// The verification code in a mail (English template: "Verification code: XXXXXXXX").
fn code_in(body: &str) -> String {
    body.lines()
        .find_map(|l| l.trim().strip_prefix("Verification code:"))
        .map(|c| c.trim().to_string())
        .filter(|c| c.len() == 8)
        .unwrap_or_else(|| panic!("no code in {body}"))
}

async fn watch(m: &Mesh, account: &str) -> tonic::Streaming<WatchEventsResponse> {
    m.reg()
        .await
        .watch_events(m.operator(WatchEventsRequest {
            account_id: account.to_string(),
            event_types: vec![
                RegistrationEventType::ContactUndeliverable as i32,
                RegistrationEventType::SellerUnreachable as i32,
                RegistrationEventType::ContactVerified as i32,
            ],
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
}

fn snapshot(event: &RegistrationEvent) -> Contact {
    match &event.payload {
        Some(registration_event::Payload::ContactSnapshot(c)) => c.clone(),
        other => panic!("no contact snapshot: {other:?}"),
    }
}

/// A 550 at RCPT makes the address UNDELIVERABLE (event on the stream naming the seller, the
/// account told by email and SMS); a 450 for the other address is retried and marks nothing.
/// The addresses are new ones a seller proposes in a seller-information change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_refused_with_550_becomes_undeliverable_and_a_450_does_not() {
    let m = Mesh::start().await;
    let account = "acct-reach-550";
    let mut stream = watch(&m, account).await;
    let seller = m.seller(account, 7101).await;
    m.smtp
        .refuse(
            "help@example.com",
            "550 5.1.1 <help@example.com>: Recipient address rejected: User unknown",
        )
        .unwrap();
    m.smtp
        .refuse("busy@example.com", "450 4.2.1 Mailbox busy, try later")
        .unwrap();
    let mut profile = seller.profile.clone().unwrap();
    profile.customer_service_email = "help@example.com".into();
    if let Some(c) = profile.contact.as_mut() {
        c.email = "Busy@Example.com".into();
    }
    m.reg()
        .await
        .update_seller_info(m.applicant(
            UpdateSellerInfoRequest {
                request_id: uuid::Uuid::new_v4().to_string(),
                name: seller.name.clone(),
                profile: Some(profile),
                update_mask: mask(&["contact.email", "customer_service_email"]),
                etag: String::new(),
                logo_file_name: String::new(),
            },
            account,
        ))
        .await
        .unwrap();

    let refused = contact_in(&m, account, "help@example.com", ContactState::Undeliverable).await;
    assert_eq!(refused.failure_count, 1);
    assert_eq!(
        refused.last_failure_source,
        DeliveryFailureSource::SmtpRefusal as i32
    );
    assert!(refused.last_failure.contains("550"), "{refused:?}");

    let events = next_events(&mut stream, 1, WAIT).await;
    assert_eq!(
        events[0].event_type,
        RegistrationEventType::ContactUndeliverable as i32
    );
    assert_eq!(
        events[0].seller, seller.name,
        "the catalogue can act on the seller"
    );
    assert_eq!(snapshot(&events[0]).email, "help@example.com");
    assert_eq!(
        snapshot(&events[0]).state,
        ContactState::Undeliverable as i32
    );

    // The account is told on its bound email and mobile.
    m.wait_notified(account, NotificationEventType::ContactUndeliverable)
        .await;
    let told: Vec<_> = deliveries(&m, account, &refused.name)
        .await
        .iter()
        .filter(|n| n.event_type == NotificationEventType::ContactUndeliverable as i32)
        .map(|n| n.channel)
        .collect();
    assert_eq!(told.len(), 2, "email and SMS: {told:?}");
    poll("the mail to the bound address", WAIT, || async {
        last_mail_to(&m, &format!("{account}@example.com"))
            .filter(|(_, body)| body.contains("h***@example.com"))
    })
    .await;

    // 450: retried (RETRYING, a transient code), the address stays PENDING, nothing reported.
    let busy = contact(&m, account, "busy@example.com").await.unwrap();
    let retrying = verification_in(&m, &busy, DeliveryStatus::Retrying).await;
    assert_eq!(retrying.last_error_code, "SMTP_TRANSIENT", "{retrying:?}");
    let busy = contact(&m, account, "busy@example.com").await.unwrap();
    assert_eq!(busy.state, ContactState::Pending as i32, "{busy:?}");
    assert_eq!(busy.failure_count, 0);

    // The seller's own addresses were mailed at submission and are still pending.
    let got = m.get_seller(&seller.name).await;
    let states: Vec<_> = got
        .contacts
        .iter()
        .map(|c| (c.email.as_str(), c.state))
        .collect();
    assert_eq!(
        states,
        vec![
            ("li.wei@example.com", ContactState::Pending as i32),
            ("support@example.com", ContactState::Pending as i32),
        ]
    );
    assert!(!got.unreachable, "one failure is below the threshold of 2");
    m.stop().await;
}

/// A DSN delivered to the bounce mailbox marks the address UNDELIVERABLE and the delivery
/// BOUNCED; forged or malformed reports (unknown Message-ID, another recipient, garbage, a
/// temporary 4.x.x) change nothing. Two failures mark the account unreachable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bounce_report_marks_the_address_and_forgeries_change_nothing() {
    let m = Mesh::start().await;
    let account = "acct-reach-dsn";
    let mut stream = watch(&m, account).await;
    let app = m.submitted(account, 7201).await;
    let li = contact_in(&m, account, "li.wei@example.com", ContactState::Pending).await;
    let sent = verification_in(&m, &li, DeliveryStatus::Sent).await;
    let (mail, _) = last_mail_to(&m, "li.wei@example.com").expect("the verification mail");
    let message_id = mail.header("Message-ID").expect("a Message-ID");
    let message_id = message_id
        .trim_matches(|c| c == '<' || c == '>')
        .to_string();
    assert!(message_id.starts_with(sent.name.trim_start_matches("notifications/")));

    let forged = [
        dsn(
            &format!("{}@mail.koogallery.example", uuid::Uuid::new_v4()),
            "li.wei@example.com",
            "5.1.1",
            "failed",
        ),
        dsn(&message_id, "someone.else@example.com", "5.1.1", "failed"),
        dsn(&message_id, "li.wei@example.com", "4.2.2", "delayed"),
        "From: MAILER-DAEMON\r\nSubject: hello\r\n\r\nnot a report at all\r\n".to_string(),
    ];
    for raw in &forged {
        m.bounces.deliver(raw).unwrap();
    }
    poll("the forged reports read", WAIT, || async {
        (m.bounces.new_count() == 0 && m.bounces.cur_count() == forged.len()).then_some(())
    })
    .await;
    let still = contact(&m, account, "li.wei@example.com").await.unwrap();
    assert_eq!(still.state, ContactState::Pending as i32, "{still:?}");
    assert_eq!(still.failure_count, 0);
    let delivery = verification_in(&m, &li, DeliveryStatus::Sent).await;
    assert_eq!(delivery.status, DeliveryStatus::Sent as i32);

    // The real report.
    m.bounces
        .deliver(&dsn(&message_id, "li.wei@example.com", "5.1.1", "failed"))
        .unwrap();
    let bounced = contact_in(
        &m,
        account,
        "li.wei@example.com",
        ContactState::Undeliverable,
    )
    .await;
    assert_eq!(
        bounced.last_failure_source,
        DeliveryFailureSource::BounceReport as i32
    );
    verification_in(&m, &li, DeliveryStatus::Bounced).await;
    let events = next_events(&mut stream, 1, WAIT).await;
    assert_eq!(
        events[0].event_type,
        RegistrationEventType::ContactUndeliverable as i32
    );
    assert_eq!(snapshot(&events[0]).email, "li.wei@example.com");
    // The same report again (a second replica, a re-read) records nothing new.
    m.bounces
        .deliver(&dsn(&message_id, "li.wei@example.com", "5.1.1", "failed"))
        .unwrap();

    // The second address bounces too: 2 failures, the account is unreachable.
    let support = contact(&m, account, "support@example.com").await.unwrap();
    verification_in(&m, &support, DeliveryStatus::Sent).await;
    let (mail, _) = last_mail_to(&m, "support@example.com").unwrap();
    let support_id = mail.header("Message-ID").unwrap();
    m.bounces
        .deliver(&dsn(
            support_id.trim_matches(|c| c == '<' || c == '>'),
            "Support@Example.com",
            "5.2.1",
            "failed",
        ))
        .unwrap();
    let events = next_events(&mut stream, 2, WAIT).await;
    let kinds: Vec<_> = events.iter().map(|e| e.event_type).collect();
    assert_eq!(
        kinds,
        vec![
            RegistrationEventType::ContactUndeliverable as i32,
            RegistrationEventType::SellerUnreachable as i32,
        ]
    );
    let listed = contacts(&m, account).await;
    assert!(listed.unreachable, "{listed:?}");
    let li = contact(&m, account, "li.wei@example.com").await.unwrap();
    assert_eq!(li.failure_count, 1, "the repeated report counted once");
    m.wait_notified(account, NotificationEventType::SellerUnreachable)
        .await;
    let app = m.application(&app.name).await;
    let states: Vec<_> = app.contacts.iter().map(|c| c.state).collect();
    assert_eq!(states, vec![ContactState::Undeliverable as i32; 2]);
    m.stop().await;
}

/// Both addresses refused: the account is unreachable. The seller corrects the address (a
/// reviewed change), enters the mailed code (a wrong one first), and the address is VERIFIED:
/// CONTACT_VERIFIED on the stream, the account reachable again. Applicants act only on their
/// own contacts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrected_and_verified_address_clears_the_state() {
    let m = Mesh::start_with(Some(super::SECRET)).await;
    let account = "acct-reach-fix";
    for address in ["support@example.com", "li.wei@example.com"] {
        m.smtp
            .refuse(address, "550 5.1.1 Recipient address rejected")
            .unwrap();
    }
    let mut stream = watch(&m, account).await;
    let seller = m.seller(account, 7301).await;
    let events = next_events(&mut stream, 3, WAIT).await;
    assert_eq!(
        events.last().unwrap().event_type,
        RegistrationEventType::SellerUnreachable as i32,
        "{events:?}"
    );
    assert!(contacts(&m, account).await.unreachable);

    // The correction: a reviewed change of the customer-service email.
    let mut profile = seller.profile.clone().unwrap();
    profile.customer_service_email = "help@example.com".into();
    let request = m
        .reg()
        .await
        .update_seller_info(m.applicant(
            UpdateSellerInfoRequest {
                request_id: uuid::Uuid::new_v4().to_string(),
                name: seller.name.clone(),
                profile: Some(profile),
                update_mask: mask(&["customer_service_email"]),
                etag: String::new(),
                logo_file_name: String::new(),
            },
            account,
        ))
        .await
        .unwrap()
        .into_inner()
        .modification_request
        .unwrap();
    let help = contact_in(&m, account, "help@example.com", ContactState::Pending).await;
    verification_in(&m, &help, DeliveryStatus::Sent).await;
    let (_, body) = last_mail_to(&m, "help@example.com").unwrap();
    let code = code_in(&body);

    let mut reg = m.reg().await;
    let verify = |code: &str, who: &str| {
        m.as_(
            VerifyContactRequest {
                name: help.name.clone(),
                code: code.to_string(),
            },
            who,
            Role::Applicant,
        )
    };
    // Another account's contact is not found; a wrong code counts an attempt.
    let err = reg
        .verify_contact(verify(&code, "acct-other"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    let wrong = if code == "ABCDEFGH" {
        "HGFEDCBA"
    } else {
        "ABCDEFGH"
    };
    let err = reg
        .verify_contact(verify(wrong, account))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    let info = decoded(&err);
    assert_eq!(info.reason.as_deref(), Some("VERIFICATION_CODE_INVALID"));
    assert_eq!(
        info.metadata.get("attempts_left").map(String::as_str),
        Some("4")
    );

    let verified = reg
        .verify_contact(verify(&code.to_lowercase(), account))
        .await
        .unwrap()
        .into_inner()
        .contact
        .unwrap();
    assert_eq!(verified.state, ContactState::Verified as i32);
    assert!(verified.verify_time.is_some());
    // A retry of the same verification answers the verified contact, no second event.
    let again = reg
        .verify_contact(verify(&code, account))
        .await
        .unwrap()
        .into_inner()
        .contact
        .unwrap();
    assert_eq!(again.verify_time, verified.verify_time);

    let events = next_events(&mut stream, 1, WAIT).await;
    assert_eq!(
        events[0].event_type,
        RegistrationEventType::ContactVerified as i32
    );
    assert_eq!(snapshot(&events[0]).email, "help@example.com");
    let listed = contacts(&m, account).await;
    assert!(!listed.unreachable, "{listed:?}");

    // Approved, the seller's contacts show the verified address.
    m.decide(&request.name, true).await;
    m.decided(&request.name).await;
    let got = m.get_seller(&seller.name).await;
    let help_state = got
        .contacts
        .iter()
        .find(|c| c.email == "help@example.com")
        .map(|c| c.state);
    assert_eq!(help_state, Some(ContactState::Verified as i32), "{got:?}");
    assert!(!got.unreachable);

    // Nothing more was emitted (the retry and the approval add no contact event).
    let more = tokio::time::timeout(Duration::from_secs(2), stream.message()).await;
    if let Ok(Ok(Some(message))) = more {
        assert!(
            !matches!(message.item, Some(watch_events_response::Item::Event(_))),
            "{message:?}"
        );
    }
    m.stop().await;
}

/// Reports racing: 15 copies of each of two reports at once (a relay retry racing its
/// original, two notification replicas) record each report once, mark each address once, and
/// mark the account unreachable exactly once. Hostile reports are refused with field
/// violations; an address the account never gave changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reports_count_once_and_mark_the_account_once() {
    let m = Mesh::start().await;
    let account = "acct-reach-race";
    let mut stream = watch(&m, account).await;
    m.submitted(account, 7401).await;
    contact_in(&m, account, "support@example.com", ContactState::Pending).await;
    let report = |id: &str, email: &str| ReportContactUndeliverableRequest {
        report_id: id.to_string(),
        account_id: account.to_string(),
        email: email.to_string(),
        source: DeliveryFailureSource::SmtpRefusal as i32,
        detail: "550 5.1.1 user unknown".to_string(),
        notification: String::new(),
    };
    let mut calls = Vec::new();
    for i in 0..30 {
        let (id, email) = if i % 2 == 0 {
            ("smtp-race-1", "li.wei@example.com")
        } else {
            ("smtp-race-2", "SUPPORT@example.com")
        };
        let mut reg = m.reg().await;
        let request = m.as_(report(id, email), "notification", Role::Service);
        calls.push(tokio::spawn(async move {
            reg.report_contact_undeliverable(request).await
        }));
    }
    let mut recorded = 0;
    for call in calls {
        let reply = call.await.unwrap().unwrap().into_inner();
        assert!(reply.contact.is_some());
        recorded += usize::from(reply.recorded);
    }
    assert_eq!(recorded, 2, "each report recorded once");
    let listed = contacts(&m, account).await;
    assert!(listed.unreachable);
    for c in &listed.contacts {
        assert_eq!(c.failure_count, 1, "{c:?}");
        assert_eq!(c.state, ContactState::Undeliverable as i32);
    }
    let events = next_events(&mut stream, 3, WAIT).await;
    let mut kinds: Vec<_> = events.iter().map(|e| e.event_type).collect();
    kinds.sort();
    assert_eq!(
        kinds,
        vec![
            RegistrationEventType::ContactUndeliverable as i32,
            RegistrationEventType::ContactUndeliverable as i32,
            RegistrationEventType::SellerUnreachable as i32,
        ]
    );
    let more = tokio::time::timeout(Duration::from_secs(2), stream.message()).await;
    if let Ok(Ok(Some(message))) = more {
        assert!(
            !matches!(message.item, Some(watch_events_response::Item::Event(_))),
            "no second SELLER_UNREACHABLE: {message:?}"
        );
    }

    // An address this account never gave: nothing recorded, no contact.
    let reply = m
        .reg()
        .await
        .report_contact_undeliverable(m.as_(
            report("smtp-stranger", "stranger@example.com"),
            "notification",
            Role::Service,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(!reply.recorded && reply.contact.is_none(), "{reply:?}");

    // Hostile reports: one field violation each, nothing recorded.
    let cases: Vec<(&str, ReportContactUndeliverableRequest)> = vec![
        ("report_id", report("", "li.wei@example.com")),
        ("report_id", report("bad id/../x", "li.wei@example.com")),
        (
            "account_id",
            ReportContactUndeliverableRequest {
                account_id: "a b".into(),
                ..report("r-3", "li.wei@example.com")
            },
        ),
        ("email", report("r-4", "not-an-address")),
        (
            "email",
            report("r-5", &format!("{}@example.com", "x".repeat(400))),
        ),
        (
            "source",
            ReportContactUndeliverableRequest {
                source: 0,
                ..report("r-6", "li.wei@example.com")
            },
        ),
        (
            "source",
            ReportContactUndeliverableRequest {
                source: 42,
                ..report("r-7", "li.wei@example.com")
            },
        ),
        (
            "detail",
            ReportContactUndeliverableRequest {
                detail: "x".repeat(501),
                ..report("r-8", "li.wei@example.com")
            },
        ),
    ];
    for (field, request) in cases {
        let err = m
            .reg()
            .await
            .report_contact_undeliverable(m.as_(request, "notification", Role::Service))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{field}: {err:?}");
        let info = decoded(&err);
        assert_eq!(
            info.field_violations
                .iter()
                .map(|(f, _)| f.as_str())
                .collect::<Vec<_>>(),
            vec![field],
            "{err:?}"
        );
    }
    let after = contacts(&m, account).await;
    assert!(after.contacts.iter().all(|c| c.failure_count == 1));
    m.stop().await;
}

/// With KG_REQUIRE_VERIFIED_CONTACTS, approval waits until both addresses are verified
/// (FAILED_PRECONDITION CONTACT_NOT_VERIFIED naming their states), then goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approval_waits_for_verified_contacts_when_so_configured() {
    use kg_proto::review::{ApproveReviewTaskRequest, ClaimReviewTaskRequest};
    let m = Mesh::start_configured(None, |review| review.require_verified_contacts = true).await;
    let account = "acct-reach-gate";
    let app = m.submitted(account, 7501).await;
    let task = m.task_of(&app.name).await;
    let mut rev = m.rev().await;
    rev.claim_review_task(m.reviewer(ClaimReviewTaskRequest {
        request_id: uuid::Uuid::new_v4().to_string(),
        name: task.name.clone(),
        etag: String::new(),
    }))
    .await
    .unwrap();
    let approve = || {
        m.reviewer(ApproveReviewTaskRequest {
            request_id: uuid::Uuid::new_v4().to_string(),
            name: task.name.clone(),
            comment: "verified".into(),
            etag: String::new(),
        })
    };
    let err = rev.approve_review_task(approve()).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    let info = decoded(&err);
    assert_eq!(info.reason.as_deref(), Some("CONTACT_NOT_VERIFIED"));
    assert_eq!(
        info.metadata.get("contacts").map(String::as_str),
        Some("l***@example.com=PENDING,s***@example.com=PENDING")
    );

    let mut reg = m.reg().await;
    for email in ["li.wei@example.com", "support@example.com"] {
        let c = contact_in(&m, account, email, ContactState::Pending).await;
        verification_in(&m, &c, DeliveryStatus::Sent).await;
        let (_, body) = last_mail_to(&m, email).unwrap();
        reg.verify_contact(m.applicant(
            VerifyContactRequest {
                name: c.name.clone(),
                code: code_in(&body),
            },
            account,
        ))
        .await
        .unwrap();
        if email == "li.wei@example.com" {
            // one of two verified is not enough
            let err = rev.approve_review_task(approve()).await.unwrap_err();
            assert_eq!(
                decoded(&err).metadata.get("contacts").map(String::as_str),
                Some("s***@example.com=PENDING")
            );
        }
    }
    rev.approve_review_task(approve()).await.unwrap();
    m.application_in(&app.name, ApplicationState::Approved)
        .await;
    m.stop().await;
}
