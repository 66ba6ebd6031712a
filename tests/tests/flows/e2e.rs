//! The whole mesh over real gRPC, with a real SMTP server and an SMS stand-in: submit → the
//! review task appears with the right deadline → approve → the seller exists → exactly one
//! result email and one result SMS reach the account's bound email and mobile. And the outbox
//! at work: with the review service down, 500 submissions become exactly 500 tasks once it is
//! back.

use std::net::SocketAddr;
use std::time::Duration;

use kg_proto::identity::ImportAccountsRequest;
use kg_proto::identity::identity_check_service_client::IdentityCheckServiceClient;
use kg_proto::registration::registration_service_client::RegistrationServiceClient;
use kg_proto::registration::*;
use kg_proto::review::review_service_client::ReviewServiceClient;
use kg_proto::review::*;
use kg_review::calendar::WorkingCalendar;
use kg_tests::fixtures::{self, Website};
use kg_tests::mesh::{self, Running, TestDb};
use kg_tests::poll;
use kg_tests::{SmsProvider, SmtpServer, free_port};
use tonic::transport::Channel;

struct Mesh {
    identity: Running,
    registration: Running,
    review: Option<Running>,
    notification: Running,
    review_addr: SocketAddr,
    review_db: TestDb,
    registration_url: String,
    identity_url: String,
    smtp: SmtpServer,
    sms: SmsProvider,
    website: Website,
    _dbs: Vec<TestDb>,
}

impl Mesh {
    async fn start(with_review: bool) -> Mesh {
        let smtp = SmtpServer::start().await.unwrap();
        let sms = SmsProvider::start().await.unwrap();
        let website = Website::start().await.unwrap();
        let (identity_db, registration_db, review_db, notification_db) = (
            mesh::fresh_db().await.unwrap(),
            mesh::fresh_db().await.unwrap(),
            mesh::fresh_db().await.unwrap(),
            mesh::fresh_db().await.unwrap(),
        );
        let identity = mesh::start_identity(&identity_db.url, true).await.unwrap();
        let mut notification_config =
            mesh::notification_config(&notification_db.url, &identity.url());
        notification_config.smtp_url = Some(format!("{}?tls=none", smtp.url()).into());
        notification_config.sms_url = Some(sms.url().into());
        notification_config.sms_token = Some("sms-token-e2e".into());
        let notification = mesh::start_notification(notification_config).await.unwrap();

        // registration and review call each other: fix review's address first.
        let review_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let registration = mesh::start_registration(mesh::with_peers(
            mesh::registration_config(&registration_db.url, &identity.url(), None),
            &format!("http://{review_addr}"),
            &notification.url(),
        ))
        .await
        .unwrap();
        let mut m = Mesh {
            identity_url: identity.url(),
            registration_url: registration.url(),
            identity,
            registration,
            review: None,
            notification,
            review_addr,
            review_db,
            smtp,
            sms,
            website,
            _dbs: vec![identity_db, registration_db, notification_db],
        };
        if with_review {
            m.start_review().await;
        }
        m
    }

    async fn start_review(&mut self) {
        let config = mesh::review_config(
            &self.review_db.url,
            &self.registration_url,
            &self.identity_url,
        );
        let review = Running::start(self.review_addr, move |l, s| kg_review::run(config, l, s))
            .await
            .unwrap();
        self.review = Some(review);
    }

    async fn idc(&self) -> IdentityCheckServiceClient<Channel> {
        IdentityCheckServiceClient::new(self.identity.channel().await.unwrap())
    }

    async fn reg(&self) -> RegistrationServiceClient<Channel> {
        RegistrationServiceClient::new(self.registration.channel().await.unwrap())
    }

    async fn rev(&self) -> ReviewServiceClient<Channel> {
        ReviewServiceClient::new(
            mesh::channel(&format!("http://{}", self.review_addr))
                .await
                .unwrap(),
        )
    }

    async fn stop(self) {
        if let Some(review) = self.review {
            review.stop().await.unwrap();
        }
        self.registration.stop().await.unwrap();
        self.notification.stop().await.unwrap();
        self.identity.stop().await.unwrap();
    }
}

fn instant(t: &Option<prost_types::Timestamp>) -> chrono::DateTime<chrono::Utc> {
    let t = t.as_ref().expect("timestamp");
    chrono::DateTime::from_timestamp(t.seconds, t.nanos as u32).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_review_approve_and_the_applicant_is_told_once_by_email_and_sms() {
    let m = Mesh::start(true).await;
    let mut account = fixtures::eligible_account("acct-e2e");
    account.email = "owner@e2e.example.com".into();
    account.mobile = "+8613912345678".into();
    m.idc()
        .await
        .import_accounts(ImportAccountsRequest {
            request_id: "import-e2e".into(),
            accounts: vec![account],
        })
        .await
        .unwrap();

    let app = m
        .reg()
        .await
        .submit_application(fixtures::submission("acct-e2e", 77, &m.website.url("/en")))
        .await
        .unwrap()
        .into_inner()
        .application
        .unwrap();

    // The task appears, with submission + 3 working days on the shipped calendar.
    let task = poll("the review task", Duration::from_secs(20), || async {
        let tasks = m
            .rev()
            .await
            .list_review_tasks(ListReviewTasksRequest {
                subject: app.name.clone(),
                ..Default::default()
            })
            .await
            .ok()?
            .into_inner()
            .review_tasks;
        tasks.into_iter().next()
    })
    .await;
    let expected = WorkingCalendar::china().deadline(instant(&app.create_time), 3);
    assert_eq!(instant(&task.deadline), expected);
    assert_eq!(task.company_name, app.company_name);

    let in_review = poll("IN_REVIEW", Duration::from_secs(10), || async {
        let a = m
            .reg()
            .await
            .get_application(GetApplicationRequest {
                name: app.name.clone(),
                ..Default::default()
            })
            .await
            .ok()?
            .into_inner()
            .application?;
        (a.state == ApplicationState::InReview as i32).then_some(a)
    })
    .await;
    assert_eq!(instant(&in_review.review_deadline), expected);

    let mut rev = m.rev().await;
    rev.claim_review_task(ClaimReviewTaskRequest {
        request_id: "claim-e2e".into(),
        name: task.name.clone(),
        etag: String::new(),
    })
    .await
    .unwrap();
    rev.approve_review_task(ApproveReviewTaskRequest {
        request_id: "approve-e2e".into(),
        name: task.name.clone(),
        comment: "all materials verified".into(),
        etag: String::new(),
    })
    .await
    .unwrap();

    let approved = poll("APPROVED", Duration::from_secs(20), || async {
        let a = m
            .reg()
            .await
            .get_application(GetApplicationRequest {
                name: app.name.clone(),
                ..Default::default()
            })
            .await
            .ok()?
            .into_inner()
            .application?;
        (a.state == ApplicationState::Approved as i32).then_some(a)
    })
    .await;
    let seller = m
        .reg()
        .await
        .get_seller(GetSellerRequest {
            name: approved.seller.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .seller
        .unwrap();
    assert_eq!(seller.account_id, "acct-e2e");
    assert_eq!(seller.state, SellerState::Active as i32);
    assert_eq!(seller.company_name, app.company_name);

    // Email: "received" at submission, then exactly one result email; and one verification
    // code to each of the profile's two contact addresses.
    m.smtp
        .wait_for_messages(4, Duration::from_secs(20))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await; // a duplicate would have arrived by now
    let mails = m.smtp.messages();
    let results: Vec<_> = mails
        .iter()
        .filter(|mail| {
            mail.subject()
                .unwrap_or_default()
                .to_lowercase()
                .contains("approved")
        })
        .collect();
    assert_eq!(
        results.len(),
        1,
        "exactly one result email: {:?}",
        mails.iter().map(|m| m.subject()).collect::<Vec<_>>()
    );
    let result = results[0];
    assert_eq!(result.rcpt_tos, vec!["owner@e2e.example.com".to_string()]);
    assert!(
        result.body().contains(&app.company_name),
        "{}",
        result.body()
    );
    let mut verified: Vec<_> = mails
        .iter()
        .filter(|mail| !mail.rcpt_tos.contains(&"owner@e2e.example.com".to_string()))
        .flat_map(|mail| mail.rcpt_tos.clone())
        .collect();
    verified.sort();
    assert_eq!(
        verified,
        vec!["li.wei@example.com", "support@example.com"],
        "one verification code per contact address"
    );
    assert_eq!(
        mails.len(),
        4,
        "received + approved + two verification codes, nothing else"
    );

    // SMS: exactly one message, the result, to the bound mobile ("received" goes by email only).
    let sms = m.sms.messages();
    assert_eq!(sms.len(), 1, "{sms:?}");
    let result_sms: Vec<_> = sms
        .iter()
        .filter(|b| {
            b["text"]
                .as_str()
                .unwrap_or_default()
                .to_lowercase()
                .contains("approved")
        })
        .collect();
    assert_eq!(result_sms.len(), 1, "{sms:?}");
    assert_eq!(result_sms[0]["to"], "+8613912345678");
    assert!(
        m.sms
            .requests()
            .iter()
            .all(|r| r.authorization.as_deref() == Some("Bearer sms-token-e2e"))
    );
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_review_down_500_submissions_become_exactly_500_tasks_once_it_returns() {
    const N: usize = 500;
    let mut m = Mesh::start(false).await;
    let accounts: Vec<_> = (0..N)
        .map(|i| fixtures::eligible_account(&format!("acct-down-{i}")))
        .collect();
    m.idc()
        .await
        .import_accounts(ImportAccountsRequest {
            request_id: "import-down".into(),
            accounts,
        })
        .await
        .unwrap();

    let site = m.website.url("/en");
    let reg = m.reg().await;
    let mut names = Vec::with_capacity(N);
    for chunk in (0..N).collect::<Vec<_>>().chunks(25) {
        let calls = chunk.iter().map(|&i| {
            let mut reg = reg.clone();
            let request = fixtures::submission(&format!("acct-down-{i}"), 10_000 + i as u64, &site);
            async move {
                reg.submit_application(request)
                    .await
                    .map(|r| r.into_inner().application.unwrap().name)
            }
        });
        for result in futures::future::join_all(calls).await {
            names.push(result.expect("submission accepted while review is down"));
        }
    }
    assert_eq!(names.len(), N);

    m.start_review().await;
    let rev = m.rev().await;
    let tasks = poll("500 review tasks", Duration::from_secs(120), || {
        let mut rev = rev.clone();
        async move {
            let mut all = Vec::new();
            let mut token = String::new();
            loop {
                let page = rev
                    .list_review_tasks(ListReviewTasksRequest {
                        page_size: 500,
                        page_token: token,
                        ..Default::default()
                    })
                    .await
                    .ok()?
                    .into_inner();
                all.extend(page.review_tasks);
                if page.next_page_token.is_empty() {
                    break;
                }
                token = page.next_page_token;
            }
            (all.len() >= N).then_some(all)
        }
    })
    .await;
    let mut subjects: Vec<_> = tasks.iter().map(|t| t.subject.clone()).collect();
    subjects.sort();
    subjects.dedup();
    kg_tests::faults::record(kg_tests::faults::FaultRecord {
        test: "e2e",
        fault: "review service down during 500 submissions",
        load: N as u64,
        faults: 1,
        bad_inputs: 0,
        lost: N.saturating_sub(subjects.len()) as u64,
        duplicates: (tasks.len() - subjects.len()) as u64,
    });
    assert_eq!(tasks.len(), N, "exactly one task per application");
    assert_eq!(subjects.len(), N);
    names.sort();
    assert_eq!(subjects, names);
    m.stop().await;
}
