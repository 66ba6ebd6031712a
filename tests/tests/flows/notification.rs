//! NotificationService over real gRPC, with real parts: identity-check (the account directory),
//! a real SMTP server (aiosmtpd, `KG_PYTHON`), the SMS-provider stand-in, PostgreSQL or SQLite.
//!
//! Exactly-once delivery per event and channel (also for repeated and concurrent calls, SMTP
//! outages and a restart of the service), the templates (English, Simplified Chinese, rejection
//! reasons), masking, disabled channels, giving up, and hostile input.

use std::collections::HashMap;
use std::time::Duration;

use kg_proto::identity::identity_check_service_client::IdentityCheckServiceClient;
use kg_proto::identity::{Account, ImportAccountsRequest};
use kg_proto::notification::notification_service_client::NotificationServiceClient;
use kg_proto::notification::*;
use kg_runtime::error::DecodedError;
use kg_tests::mesh::{self, Running, TestDb};
use kg_tests::{ReceivedMail, SmsProvider, SmtpServer, fixtures};
use tonic::Code;
use tonic::transport::Channel as GrpcChannel;

const SMS_TOKEN: &str = "sms-test-token";
const WAIT: Duration = Duration::from_secs(20);

struct Env {
    identity: Option<Running>,
    identity_db: TestDb,
    _db: TestDb,
    smtp: SmtpServer,
    sms: SmsProvider,
    service: Option<Running>,
    config: kg_notification::Config,
    idc: IdentityCheckServiceClient<GrpcChannel>,
    client: NotificationServiceClient<GrpcChannel>,
}

impl Env {
    async fn start() -> Env {
        Env::start_with(|_| {}).await
    }

    /// Everything up; `tweak` adjusts the notification config (SMTP and SMS are set).
    async fn start_with(tweak: impl FnOnce(&mut kg_notification::Config)) -> Env {
        let identity_db = mesh::fresh_db().await.unwrap();
        let db = mesh::fresh_db().await.unwrap();
        let identity = mesh::start_identity(&identity_db.url, false).await.unwrap();
        let smtp = SmtpServer::start().await.unwrap();
        let sms = SmsProvider::start().await.unwrap();
        let mut config = mesh::notification_config(&db.url, &identity.url());
        config.smtp_url = Some(format!("{}?tls=none", smtp.url()).into());
        config.sms_url = Some(format!("{}/v1/messages", sms.url()).into());
        config.sms_token = Some(SMS_TOKEN.into());
        tweak(&mut config);
        let service = mesh::start_notification(config.clone()).await.unwrap();
        Env {
            client: NotificationServiceClient::new(service.channel().await.unwrap()),
            idc: IdentityCheckServiceClient::new(identity.channel().await.unwrap()),
            identity: Some(identity),
            identity_db,
            _db: db,
            smtp,
            sms,
            service: Some(service),
            config,
        }
    }

    /// Stops the running notification service (gracefully).
    async fn stop_service(&mut self) {
        if let Some(service) = self.service.take() {
            service.stop().await.unwrap();
        }
    }

    /// Starts a notification service on the same database with `config`.
    async fn start_service(&mut self, config: kg_notification::Config) {
        assert!(self.service.is_none());
        let service = mesh::start_notification(config).await.unwrap();
        self.client = NotificationServiceClient::new(service.channel().await.unwrap());
        self.service = Some(service);
    }

    async fn add(&mut self, account: Account) -> Account {
        let reply = self
            .idc
            .import_accounts(ImportAccountsRequest {
                request_id: uuid::Uuid::new_v4().to_string(),
                accounts: vec![account.clone()],
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(reply.failed_count, 0, "{:?}", reply.errors);
        account
    }

    async fn send(
        &mut self,
        request: SendNotificationRequest,
    ) -> Result<SendNotificationResponse, tonic::Status> {
        self.client
            .send_notification(request)
            .await
            .map(|r| r.into_inner())
    }

    async fn get(&mut self, name: &str) -> Notification {
        self.client
            .get_notification(GetNotificationRequest { name: name.into() })
            .await
            .unwrap()
            .into_inner()
            .notification
            .unwrap()
    }

    async fn list(&mut self, request: ListNotificationsRequest) -> ListNotificationsResponse {
        self.client
            .list_notifications(request)
            .await
            .unwrap()
            .into_inner()
    }

    /// Waits until every delivery named satisfies `done`; returns them.
    async fn wait_until(
        &mut self,
        names: &[String],
        what: &str,
        done: impl Fn(&Notification) -> bool,
    ) -> Vec<Notification> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let mut all = Vec::new();
            for name in names {
                all.push(self.get(name).await);
            }
            if all.iter().all(&done) {
                return all;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("not all deliveries {what} within {WAIT:?}: {all:#?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn wait_sent(&mut self, names: &[String]) -> Vec<Notification> {
        self.wait_until(names, "SENT", |n| n.status == DeliveryStatus::Sent as i32)
            .await
    }

    /// Emails received for `address`.
    fn mails_to(&self, address: &str) -> Vec<ReceivedMail> {
        self.smtp
            .messages()
            .into_iter()
            .filter(|m| m.rcpt_tos.iter().any(|r| r == address))
            .collect()
    }

    /// SMS requests accepted for `number`.
    fn sms_to(&self, number: &str) -> Vec<serde_json::Value> {
        self.sms
            .messages()
            .into_iter()
            .filter(|m| m["to"] == number)
            .collect()
    }

    async fn stop(mut self) {
        self.stop_service().await;
        if let Some(identity) = self.identity.take() {
            identity.stop().await.unwrap();
        }
    }
}

fn event_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn approval(account: &Account, event_id: &str) -> SendNotificationRequest {
    let application = format!("applications/{}", uuid::Uuid::new_v4());
    SendNotificationRequest {
        event_id: event_id.to_string(),
        account_id: account.account_id.clone(),
        event_type: NotificationEventType::ApplicationApproved as i32,
        template_parameters: params(&[
            ("company_name", &account.verified_enterprise_name),
            ("application", &application),
            ("seller", "sellers/0193a1b2-0000-7000-8000-00000000aaaa"),
            ("console_url", "https://console.koogallery.example/seller"),
        ]),
        locale: String::new(),
        subject: application,
        recipient_email: String::new(),
    }
}

fn rejection(account: &Account, event_id: &str) -> SendNotificationRequest {
    SendNotificationRequest {
        event_id: event_id.to_string(),
        account_id: account.account_id.clone(),
        event_type: NotificationEventType::ApplicationRejected as i32,
        template_parameters: params(&[
            ("company_name", &account.verified_enterprise_name),
            (
                "application",
                "applications/0193a1b2-0000-7000-8000-00000000bbbb",
            ),
            (
                "reason_titles",
                "The company logo is blurred\nThe website does not serve English",
            ),
            (
                "comment",
                "Please upload a 168x80 logo and add an English home page.",
            ),
        ]),
        locale: String::new(),
        subject: "applications/0193a1b2-0000-7000-8000-00000000bbbb".into(),
        recipient_email: String::new(),
    }
}

fn names(reply: &SendNotificationResponse) -> Vec<String> {
    reply.notifications.iter().map(|n| n.name.clone()).collect()
}

fn channel_of(
    reply: &SendNotificationResponse,
    channel: kg_proto::notification::Channel,
) -> &Notification {
    reply
        .notifications
        .iter()
        .find(|n| n.channel == channel as i32)
        .unwrap_or_else(|| panic!("no {channel:?} delivery in {reply:?}"))
}

fn decoded(status: &tonic::Status) -> DecodedError {
    let d = DecodedError::from_status(status);
    assert_eq!(
        d.domain.as_deref(),
        Some("notification.koogallery.io"),
        "{status:?}"
    );
    d
}

// ----- a small MIME reader: the sink keeps messages raw (transfer-encoded) -----

fn base64_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let mut buffer = 0u32;
    let mut bits = 0;
    for c in text.bytes() {
        let Some(value) = ALPHABET.iter().position(|&a| a == c) else {
            continue; // white space, '='
        };
        buffer = (buffer << 6) | value as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    out
}

fn quoted_printable_decode(text: &str, underscore_is_space: bool) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'=' if bytes[i + 1..].starts_with(b"\r\n") => i += 3,
            b'=' if bytes[i + 1..].starts_with(b"\n") => i += 2,
            b'=' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                    }
                    Err(_) => {
                        out.push(b'=');
                        i += 1;
                    }
                }
            }
            b'_' if underscore_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// A header value with its RFC 2047 encoded words decoded.
fn header_text(mail: &ReceivedMail, name: &str) -> String {
    let raw = mail.header(name).unwrap_or_default();
    let mut out = Vec::new();
    let mut rest = raw.as_str();
    let mut pending_space = String::new();
    let mut last_was_word = false;
    while !rest.is_empty() {
        if let Some(start) = rest.find("=?") {
            let before = &rest[..start];
            let word = &rest[start + 2..];
            let parts: Vec<&str> = word.splitn(3, '?').collect();
            if parts.len() == 3
                && let Some(end) = parts[2].find("?=")
            {
                // white space between two encoded words is dropped
                if !(last_was_word && before.trim().is_empty()) {
                    out.extend_from_slice(pending_space.as_bytes());
                    out.extend_from_slice(before.as_bytes());
                }
                pending_space.clear();
                let text = &parts[2][..end];
                match parts[1] {
                    "b" | "B" => out.extend(base64_decode(text)),
                    _ => out.extend(quoted_printable_decode(text, true)),
                }
                last_was_word = true;
                let consumed = start + 2 + parts[0].len() + 1 + parts[1].len() + 1 + end + 2;
                rest = &rest[consumed..];
                continue;
            }
        }
        out.extend_from_slice(rest.as_bytes());
        break;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The body, decoded from its transfer encoding.
fn body_text(mail: &ReceivedMail) -> String {
    let encoding = mail
        .header("Content-Transfer-Encoding")
        .unwrap_or_default()
        .to_ascii_lowercase();
    let bytes = match encoding.as_str() {
        "base64" => base64_decode(mail.body()),
        "quoted-printable" => quoted_printable_decode(mail.body(), false),
        _ => mail.body().as_bytes().to_vec(),
    };
    String::from_utf8_lossy(&bytes).replace("\r\n", "\n")
}

// ----- 1 -----

#[tokio::test]
async fn an_approval_sends_one_email_and_one_sms_with_the_right_texts_and_masks_recipients() {
    let mut env = Env::start().await;
    let account = env.add(fixtures::eligible_account("acct-approved")).await;
    let company = account.verified_enterprise_name.clone();
    let request = approval(&account, &event_id());
    let reply = env.send(request.clone()).await.unwrap();
    assert!(reply.created);
    assert_eq!(reply.notifications.len(), 2, "{reply:?}");

    let email = channel_of(&reply, kg_proto::notification::Channel::Email).clone();
    let sms = channel_of(&reply, kg_proto::notification::Channel::Sms).clone();
    assert_eq!(email.recipient, "a***@example.com");
    assert_eq!(sms.recipient, "+86*******8000");
    assert_eq!(email.template, "application_approved/v1");
    assert_eq!(email.locale, "en");
    assert_eq!(email.event_id, request.event_id);
    assert_eq!(email.subject, request.subject);
    assert_eq!(
        email.event_type,
        NotificationEventType::ApplicationApproved as i32
    );
    assert!(email.name.starts_with("notifications/"));
    let wire = format!("{reply:?}");
    assert!(!wire.contains("acct-approved@example.com"), "{wire}");
    assert!(!wire.contains("13800138000"), "{wire}");

    let sent = env.wait_sent(&names(&reply)).await;
    for n in &sent {
        assert_eq!(n.attempts, 1, "{n:?}");
        assert!(
            n.sent_time.is_some() && !n.provider_message_id.is_empty(),
            "{n:?}"
        );
        assert!(n.last_error.is_empty());
        assert!(n.next_attempt_time.is_none());
    }

    // the email
    let mails = env
        .smtp
        .wait_for_messages(1, WAIT)
        .await
        .unwrap()
        .into_iter()
        .filter(|m| m.rcpt_tos.contains(&account.email))
        .collect::<Vec<_>>();
    assert_eq!(mails.len(), 1);
    let mail = &mails[0];
    assert_eq!(mail.rcpt_tos, vec![account.email.clone()]);
    assert_eq!(mail.mail_from, "no-reply@koogallery.example");
    assert_eq!(
        header_text(mail, "Subject"),
        format!("Approved: {company} is now a KooGallery seller")
    );
    assert!(header_text(mail, "From").contains("no-reply@koogallery.example"));
    assert_eq!(header_text(mail, "To"), account.email);
    assert!(
        mail.header("Content-Type")
            .unwrap_or_default()
            .to_ascii_lowercase()
            .contains("text/plain"),
        "{}",
        mail.data
    );
    let body = body_text(mail);
    assert!(
        body.contains(&format!(
            "The application of {company} to become a seller on KooGallery has been approved"
        )),
        "{body}"
    );
    assert!(
        body.contains(&format!("Application: {}", request.subject)),
        "{body}"
    );
    assert!(body.contains("Seller console: https://console.koogallery.example/seller"));
    assert!(!body.contains('{'), "no placeholder left: {body}");

    // the SMS
    let texts = env.sms.wait_for_messages(1, WAIT).await.unwrap();
    assert_eq!(texts.len(), 1);
    assert_eq!(texts[0]["to"], "+8613800138000");
    assert_eq!(
        texts[0]["text"],
        format!(
            "[KooGallery] Congratulations! The seller application of {company} has been approved. The details were sent to your email."
        )
    );
    assert_eq!(
        texts[0]["client_reference"],
        sms.name.trim_start_matches("notifications/")
    );
    let requests = env.sms.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].method, "POST");
    assert_eq!(requests[0].path, "/v1/messages");
    assert_eq!(
        requests[0].authorization.as_deref(),
        Some(format!("Bearer {SMS_TOKEN}").as_str())
    );
    let sms_sent = env.get(&sms.name).await;
    assert_eq!(sms_sent.status, DeliveryStatus::Sent as i32);
    assert_eq!(sms_sent.provider_message_id, "sms-1");
    assert_eq!(sms_sent.recipient, "+86*******8000");

    // later: still one of each; the list shows them masked, newest first
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(env.mails_to(&account.email).len(), 1);
    assert_eq!(env.sms.messages().len(), 1);
    let listed = env
        .list(ListNotificationsRequest {
            account_id: account.account_id.clone(),
            ..Default::default()
        })
        .await;
    assert_eq!(listed.notifications.len(), 2);
    assert!(
        listed
            .notifications
            .iter()
            .all(|n| n.status == DeliveryStatus::Sent as i32)
    );
    assert!(!format!("{listed:?}").contains("acct-approved@example.com"));
    env.stop().await;
}

// ----- 2 -----

#[tokio::test]
async fn the_same_event_sent_again_and_concurrently_is_delivered_once() {
    let mut env = Env::start().await;
    let account = env.add(fixtures::eligible_account("acct-repeat")).await;

    // ten concurrent first calls of one event: one creates, nine read
    let request = approval(&account, &event_id());
    let calls = (0..10).map(|_| {
        let mut client = env.client.clone();
        let request = request.clone();
        async move {
            client
                .send_notification(request)
                .await
                .map(|r| r.into_inner())
        }
    });
    let replies: Vec<_> = futures::future::join_all(calls)
        .await
        .into_iter()
        .map(|r| r.expect("every concurrent call succeeds"))
        .collect();
    assert_eq!(
        replies.iter().filter(|r| r.created).count(),
        1,
        "exactly one call created the deliveries"
    );
    let first = names(&replies[0]);
    assert_eq!(first.len(), 2);
    for reply in &replies {
        assert_eq!(
            names(reply),
            first,
            "every call returns the same deliveries"
        );
    }

    // and again, sequentially, before and after sending
    let again = env.send(request.clone()).await.unwrap();
    assert!(!again.created);
    assert_eq!(names(&again), first);
    env.wait_sent(&first).await;
    let later = env.send(request.clone()).await.unwrap();
    assert!(!later.created);
    assert_eq!(names(&later), first);
    assert!(
        later
            .notifications
            .iter()
            .all(|n| n.status == DeliveryStatus::Sent as i32),
        "a repeat returns the deliveries as they are now"
    );

    // ten concurrent repeats after sending
    let calls = (0..10).map(|_| {
        let mut client = env.client.clone();
        let request = request.clone();
        async move {
            client
                .send_notification(request)
                .await
                .map(|r| r.into_inner())
        }
    });
    for reply in futures::future::join_all(calls).await {
        let reply = reply.unwrap();
        assert!(!reply.created);
        assert_eq!(names(&reply), first);
    }

    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(env.mails_to(&account.email).len(), 1, "one email");
    assert_eq!(env.sms_to(&account.mobile).len(), 1, "one SMS");
    assert_eq!(env.sms.requests().len(), 1);

    // the same event id with another body is refused, and sends nothing
    let mut changed = request.clone();
    changed
        .template_parameters
        .insert("company_name".into(), "Another Co".into());
    let err = env.send(changed).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(
        decoded(&err).reason.as_deref(),
        Some("IDEMPOTENCY_KEY_REUSED")
    );
    let listed = env
        .list(ListNotificationsRequest {
            event_id: request.event_id.clone(),
            ..Default::default()
        })
        .await;
    assert_eq!(listed.notifications.len(), 2);
    env.stop().await;
}

// ----- 3 -----

#[tokio::test]
async fn templates_follow_the_locale_the_mobile_and_the_rejection_reasons() {
    let mut env = Env::start().await;

    // a zh-CN account gets Simplified Chinese
    let mut zh = fixtures::eligible_account("acct-zh");
    zh.locale = "zh-CN".into();
    zh.verified_enterprise_name = "福州示例软件有限公司".into();
    zh.mobile = "+8613900139000".into();
    let zh = env.add(zh).await;
    let reply = env.send(approval(&zh, &event_id())).await.unwrap();
    assert!(reply.notifications.iter().all(|n| n.locale == "zh-CN"));
    env.wait_sent(&names(&reply)).await;
    let mails = env.mails_to(&zh.email);
    assert_eq!(mails.len(), 1);
    assert_eq!(
        header_text(&mails[0], "Subject"),
        "恭喜，福州示例软件有限公司的云商店商家入驻申请已通过审核"
    );
    let body = body_text(&mails[0]);
    assert!(
        body.contains("恭喜！福州示例软件有限公司的云商店（KooGallery）商家入驻申请已通过审核"),
        "{body}"
    );
    assert!(body.contains("请勿直接回复"), "{body}");
    let texts = env.sms_to("+8613900139000");
    assert_eq!(texts.len(), 1);
    assert_eq!(
        texts[0]["text"],
        "【云商店】恭喜！福州示例软件有限公司的商家入驻申请已通过审核，详情已发送至您的邮箱。"
    );

    // the request's locale wins over the account's
    let mut english = approval(&zh, &event_id());
    english.locale = "en".into();
    let reply = env.send(english).await.unwrap();
    assert!(reply.notifications.iter().all(|n| n.locale == "en"));
    env.wait_sent(&names(&reply)).await;
    let mails = env.mails_to(&zh.email);
    assert_eq!(mails.len(), 2);
    assert!(header_text(&mails[1], "Subject").starts_with("Approved: 福州示例软件有限公司"));

    // an account without a mobile number gets no SMS
    let sms_before = env.sms.requests().len();
    let mut no_mobile = fixtures::eligible_account("acct-nomobile");
    no_mobile.mobile.clear();
    let no_mobile = env.add(no_mobile).await;
    let reply = env.send(approval(&no_mobile, &event_id())).await.unwrap();
    assert_eq!(reply.notifications.len(), 1, "{reply:?}");
    assert_eq!(
        reply.notifications[0].channel,
        kg_proto::notification::Channel::Email as i32
    );
    env.wait_sent(&names(&reply)).await;
    assert_eq!(env.mails_to(&no_mobile.email).len(), 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        env.sms.requests().len(),
        sms_before,
        "no SMS without a mobile"
    );

    // a rejection carries its reasons and the reviewer's comment
    let rejected = env.add(fixtures::eligible_account("acct-rejected")).await;
    let company = rejected.verified_enterprise_name.clone();
    let reply = env.send(rejection(&rejected, &event_id())).await.unwrap();
    assert_eq!(reply.notifications[0].template, "application_rejected/v1");
    env.wait_sent(&names(&reply)).await;
    let mails = env.mails_to(&rejected.email);
    assert_eq!(mails.len(), 1);
    assert_eq!(
        header_text(&mails[0], "Subject"),
        format!("Not approved: KooGallery seller application of {company}")
    );
    let body = body_text(&mails[0]);
    assert!(
        body.contains(&format!(
            "the application of {company} to become a seller on KooGallery was not approved"
        )),
        "{body}"
    );
    assert!(
        body.contains(
            "Reasons:\n  - The company logo is blurred\n  - The website does not serve English"
        ),
        "{body}"
    );
    assert!(
        body.contains(
            "Comment from the reviewer: Please upload a 168x80 logo and add an English home page."
        ),
        "{body}"
    );
    let texts = env.sms_to(&rejected.mobile);
    assert!(
        texts
            .iter()
            .any(|t| t["text"].as_str().unwrap().contains(&format!(
                "The seller application of {company} was not approved"
            )))
    );

    // a rejection without its reasons is refused before anything is stored
    let mut no_reasons = rejection(&rejected, &event_id());
    no_reasons.template_parameters.remove("reason_titles");
    let err = env.send(no_reasons.clone()).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let d = decoded(&err);
    assert_eq!(d.reason.as_deref(), Some("TEMPLATE_PARAMETER_MISSING"));
    assert_eq!(
        d.metadata.get("parameter").map(String::as_str),
        Some("reason_titles")
    );
    let listed = env
        .list(ListNotificationsRequest {
            event_id: no_reasons.event_id,
            ..Default::default()
        })
        .await;
    assert!(listed.notifications.is_empty());
    env.stop().await;
}

// ----- 4 -----

#[tokio::test]
async fn emails_wait_out_an_smtp_outage_and_arrive_exactly_once() {
    let mut env = Env::start_with(|c| c.max_attempts = 1000).await;
    let mut account = fixtures::eligible_account("acct-outage");
    account.mobile.clear();
    let account = env.add(account).await;

    env.smtp.kill().await.unwrap();
    let mut all = Vec::new();
    for _ in 0..4 {
        let reply = env.send(approval(&account, &event_id())).await.unwrap();
        all.extend(names(&reply));
    }
    // connection refused: RETRYING, with the error and when the next attempt is due
    let retrying = env
        .wait_until(&all, "RETRYING", |n| {
            n.status == DeliveryStatus::Retrying as i32 && n.attempts >= 2
        })
        .await;
    for n in &retrying {
        assert!(!n.last_error.is_empty(), "{n:?}");
        assert!(
            ["SMTP_TRANSIENT", "TIMEOUT"].contains(&n.last_error_code.as_str()),
            "{n:?}"
        );
        assert!(n.next_attempt_time.is_some());
        assert!(n.sent_time.is_none());
        assert!(!n.last_error.contains(&account.email), "{n:?}");
    }

    // back, but answering 451 for a while: still RETRYING, now with the server's reply
    env.smtp.set_rejecting(true).unwrap();
    env.smtp.restart().await.unwrap();
    let rejected = env
        .wait_until(&all, "refused with 451", |n| {
            n.status == DeliveryStatus::Retrying as i32 && n.last_error.starts_with("451")
        })
        .await;
    for n in &rejected {
        assert_eq!(n.last_error_code, "SMTP_TRANSIENT", "{n:?}");
    }
    assert!(env.smtp.messages().is_empty());

    // fully back: every email arrives, once
    env.smtp.set_rejecting(false).unwrap();
    let sent = env.wait_sent(&all).await;
    assert!(sent.iter().all(|n| n.attempts >= 3), "{sent:?}");
    tokio::time::sleep(Duration::from_millis(700)).await;
    let mails = env.mails_to(&account.email);
    let mut ids: Vec<_> = mails
        .iter()
        .map(|m| m.header("Message-ID").unwrap())
        .collect();
    ids.sort();
    ids.dedup();
    kg_tests::faults::record(kg_tests::faults::FaultRecord {
        test: "notification",
        fault: "SMTP killed, then refusing, then back",
        load: 4,
        faults: 2,
        bad_inputs: 0,
        lost: 4u64.saturating_sub(ids.len() as u64),
        duplicates: (mails.len() - ids.len()) as u64,
    });
    assert_eq!(mails.len(), 4, "one email per event");
    assert_eq!(ids.len(), 4, "four different messages");
    env.stop().await;
}

#[tokio::test]
async fn a_delivery_fails_after_its_last_attempt_and_sms_outages_are_retried() {
    let mut env = Env::start_with(|c| c.max_attempts = 3).await;
    let account = env.add(fixtures::eligible_account("acct-giveup")).await;
    env.sms.set_failing(true);
    let reply = env.send(approval(&account, &event_id())).await.unwrap();
    let sms = channel_of(&reply, kg_proto::notification::Channel::Sms)
        .name
        .clone();
    let email = channel_of(&reply, kg_proto::notification::Channel::Email)
        .name
        .clone();
    let failed = env
        .wait_until(std::slice::from_ref(&sms), "FAILED", |n| {
            n.status == DeliveryStatus::Failed as i32
        })
        .await;
    assert_eq!(failed[0].attempts, 3);
    assert_eq!(failed[0].last_error_code, "SMS_TRANSIENT");
    assert!(
        failed[0].last_error.starts_with("HTTP 503"),
        "{:?}",
        failed[0]
    );
    assert!(failed[0].next_attempt_time.is_none());
    env.wait_sent(std::slice::from_ref(&email)).await;
    assert_eq!(env.sms.requests().len(), 3, "three attempts, then no more");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(env.sms.requests().len(), 3);

    // a provider that recovers within the attempts: sent once
    let reply = env.send(approval(&account, &event_id())).await.unwrap();
    let sms = channel_of(&reply, kg_proto::notification::Channel::Sms)
        .name
        .clone();
    env.wait_until(std::slice::from_ref(&sms), "retried", |n| n.attempts >= 1)
        .await;
    env.sms.set_failing(false);
    let sent = env.wait_sent(std::slice::from_ref(&sms)).await;
    assert!(sent[0].attempts >= 2);
    assert_eq!(env.sms.messages().len(), 1);
    env.stop().await;
}

// ----- 5 -----

#[tokio::test]
async fn a_restart_mid_run_loses_nothing_and_sends_nothing_twice() {
    let mut env = Env::start().await;
    let account = env.add(fixtures::eligible_account("acct-restart")).await;
    let mut all = Vec::new();
    // some while everything works (the stop interrupts them mid-flight)...
    for _ in 0..10 {
        let reply = env.send(approval(&account, &event_id())).await.unwrap();
        all.extend(names(&reply));
    }
    // ...and some the providers refuse for now, so they are certainly pending at the stop
    env.smtp.set_rejecting(true).unwrap();
    env.sms.set_failing(true);
    for _ in 0..10 {
        let reply = env.send(approval(&account, &event_id())).await.unwrap();
        all.extend(names(&reply));
    }
    env.stop_service().await;
    assert_eq!(all.len(), 40);

    // nothing is sent while no service runs
    env.smtp.set_rejecting(false).unwrap();
    env.sms.set_failing(false);
    let mails_while_down = env.smtp.messages().len();
    let sms_while_down = env.sms.messages().len();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(env.smtp.messages().len(), mails_while_down);
    assert_eq!(env.sms.messages().len(), sms_while_down);
    assert!(
        mails_while_down < 20 && sms_while_down < 20,
        "some were pending at the stop"
    );

    // a new instance on the same database finishes the work
    let config = env.config.clone();
    env.start_service(config).await;
    env.wait_sent(&all).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let mails = env.mails_to(&account.email);
    let mut ids: Vec<_> = mails
        .iter()
        .map(|m| m.header("Message-ID").unwrap())
        .collect();
    ids.sort();
    ids.dedup();
    kg_tests::faults::record(kg_tests::faults::FaultRecord {
        test: "notification",
        fault: "notification service restarted mid-run",
        load: 40,
        faults: 1,
        bad_inputs: 0,
        lost: 20u64.saturating_sub(ids.len() as u64),
        duplicates: (mails.len() - ids.len()) as u64,
    });
    assert_eq!(
        mails.len(),
        20,
        "one email per event, none lost, none twice"
    );
    assert_eq!(ids.len(), 20);
    let texts = env.sms_to(&account.mobile);
    assert_eq!(texts.len(), 20, "one SMS per event");
    let mut refs: Vec<_> = texts
        .iter()
        .map(|t| t["client_reference"].as_str().unwrap().to_string())
        .collect();
    refs.sort();
    refs.dedup();
    assert_eq!(refs.len(), 20);
    env.stop().await;
}

// ----- disabled channels -----

#[tokio::test]
async fn a_channel_without_a_provider_keeps_its_deliveries_pending_until_one_is_configured() {
    let metrics_port = kg_tests::free_port();
    let mut env = Env::start_with(|c| {
        c.sms_url = None;
        c.common.metrics_addr = Some(([127, 0, 0, 1], metrics_port).into());
    })
    .await;
    let account = env.add(fixtures::eligible_account("acct-nosms")).await;
    let reply = env.send(approval(&account, &event_id())).await.unwrap();
    let email = channel_of(&reply, kg_proto::notification::Channel::Email)
        .name
        .clone();
    let sms = channel_of(&reply, kg_proto::notification::Channel::Sms)
        .name
        .clone();
    env.wait_sent(std::slice::from_ref(&email)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let pending = env.get(&sms).await;
    assert_eq!(pending.status, DeliveryStatus::Pending as i32);
    assert_eq!(pending.attempts, 0);
    assert!(env.sms.requests().is_empty());

    // the backlog gauge counts it
    let metrics = http_get(metrics_port, "/metrics").await;
    assert!(
        metrics.contains(
            "koogallery_notification_deliveries_open{status=\"PENDING\",channel=\"SMS\"} 1"
        ),
        "{metrics}"
    );

    // configured: sent
    env.stop_service().await;
    let mut config = env.config.clone();
    config.sms_url = Some(format!("{}/v1/messages", env.sms.url()).into());
    config.common.metrics_addr = None;
    env.start_service(config).await;
    env.wait_sent(std::slice::from_ref(&sms)).await;
    assert_eq!(env.sms.messages().len(), 1);
    assert_eq!(env.mails_to(&account.email).len(), 1);
    env.stop().await;
}

async fn http_get(port: u16, path: &str) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).await.unwrap();
    out
}

// ----- dependencies -----

#[tokio::test]
async fn unknown_accounts_and_an_unavailable_directory_store_nothing() {
    let mut env = Env::start().await;
    let ghost = fixtures::eligible_account("acct-ghost");
    let request = approval(&ghost, &event_id());
    let err = env.send(request.clone()).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let d = decoded(&err);
    assert_eq!(d.reason.as_deref(), Some("ACCOUNT_NOT_FOUND"));
    assert_eq!(
        d.metadata.get("account_id").map(String::as_str),
        Some("acct-ghost")
    );

    // identity-check down: UNAVAILABLE, nothing stored; the relay's retry succeeds later
    let account = env.add(fixtures::eligible_account("acct-later")).await;
    let identity = env.identity.take().unwrap();
    let addr = identity.addr;
    identity.stop().await.unwrap();
    let request = approval(&account, &event_id());
    let err = env.send(request.clone()).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    let d = decoded(&err);
    assert_eq!(d.reason.as_deref(), Some("DEPENDENCY_UNAVAILABLE"));
    assert_eq!(
        d.metadata.get("service").map(String::as_str),
        Some("identity-check")
    );
    let listed = env
        .list(ListNotificationsRequest {
            event_id: request.event_id.clone(),
            ..Default::default()
        })
        .await;
    assert!(listed.notifications.is_empty());

    // identity-check back on its address (same database): the retry goes through
    let config = kg_identity_check::Config {
        common: mesh::common(&env.identity_db.url),
        website_test_allowlist: Vec::new(),
    };
    env.identity = Some(
        Running::start(addr, move |l, s| kg_identity_check::run(config, l, s))
            .await
            .unwrap(),
    );
    let reply = env.send(request).await.unwrap();
    assert!(reply.created);
    env.wait_sent(&names(&reply)).await;
    env.stop().await;
}

// ----- 6 -----

#[tokio::test]
async fn hostile_input_gets_invalid_argument_with_reasons_never_internal() {
    let mut env = Env::start().await;
    let account = env.add(fixtures::eligible_account("acct-hostile")).await;
    let valid = approval(&account, &event_id());

    type Edit = fn(&mut SendNotificationRequest);
    let cases: Vec<(&str, Edit)> = vec![
        ("EVENT_ID_INVALID", |r| r.event_id.clear()),
        ("EVENT_ID_INVALID", |r| r.event_id = "e".repeat(100_000)),
        ("EVENT_ID_INVALID", |r| {
            r.event_id = "id\r\nwith newline".into()
        }),
        ("EVENT_ID_INVALID", |r| {
            r.event_id = "'; DROP TABLE notification_deliveries; --".into()
        }),
        ("ACCOUNT_ID_INVALID", |r| {
            r.account_id = "../../etc/passwd".into()
        }),
        ("ACCOUNT_ID_INVALID", |r| r.account_id.clear()),
        ("EVENT_TYPE_REQUIRED", |r| r.event_type = 0),
        ("EVENT_TYPE_INVALID", |r| r.event_type = 999),
        ("EVENT_TYPE_INVALID", |r| r.event_type = -1),
        ("TEMPLATE_PARAMETERS_TOO_MANY", |r| {
            r.template_parameters = (0..33).map(|i| (format!("k{i}"), "v".into())).collect()
        }),
        ("TEMPLATE_PARAMETER_TOO_LONG", |r| {
            r.template_parameters
                .insert("comment".into(), "x".repeat(2001));
        }),
        ("TEMPLATE_PARAMETER_KEY_INVALID", |r| {
            r.template_parameters
                .insert("Evil\r\nKey".into(), "v".into());
        }),
        ("TEMPLATE_PARAMETER_INVALID", |r| {
            r.template_parameters
                .insert("review_deadline".into(), "next Tuesday".into());
            r.event_type = NotificationEventType::ApplicationReceived as i32;
        }),
        ("TEMPLATE_PARAMETER_MISSING", |r| {
            r.template_parameters.remove("company_name");
        }),
        ("SUBJECT_INVALID", |r| {
            r.subject = "applications/1 OR 1=1".into()
        }),
        ("SUBJECT_INVALID", |r| r.subject = "s".repeat(300)),
        ("LOCALE_INVALID", |r| {
            r.locale = "en\r\nBcc: x@example.com".into()
        }),
    ];
    for (reason, edit) in cases {
        let mut request = valid.clone();
        edit(&mut request);
        let err = env.send(request).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{reason}: {err:?}");
        let d = decoded(&err);
        if reason == "TEMPLATE_PARAMETER_MISSING" {
            assert_eq!(d.reason.as_deref(), Some(reason));
        } else {
            assert_eq!(d.reason.as_deref(), Some("INVALID_ARGUMENT"), "{reason}");
            assert!(
                d.field_reasons().contains(&reason.to_string()),
                "{reason}: {d:?}"
            );
        }
        assert!(err.message().len() < 300, "the message does not echo input");
    }
    // an unsupported locale is not an error: it falls back to English
    let mut french = valid.clone();
    french.locale = "fr-FR".into();
    let reply = env.send(french).await.unwrap();
    assert!(reply.notifications.iter().all(|n| n.locale == "en"));
    env.wait_sent(&names(&reply)).await;

    // names
    for (name, code, reason) in [
        ("", Code::InvalidArgument, "INVALID_ARGUMENT"),
        ("notifications/", Code::InvalidArgument, "INVALID_ARGUMENT"),
        (
            "notifications/../../etc/passwd",
            Code::InvalidArgument,
            "INVALID_ARGUMENT",
        ),
        (
            "applications/0193a1b2-0000-7000-8000-000000000001",
            Code::InvalidArgument,
            "INVALID_ARGUMENT",
        ),
        (
            "notifications/0193a1b2-0000-7000-8000-000000000001",
            Code::NotFound,
            "NOTIFICATION_NOT_FOUND",
        ),
    ] {
        let err = env
            .client
            .get_notification(GetNotificationRequest { name: name.into() })
            .await
            .unwrap_err();
        assert_eq!(err.code(), code, "{name}: {err:?}");
        let d = decoded(&err);
        assert_eq!(d.reason.as_deref(), Some(reason), "{name}");
        if code == Code::InvalidArgument {
            assert_eq!(d.field_reasons(), vec!["NAME_INVALID"]);
        }
    }
    let huge = format!("notifications/{}", "x".repeat(1_000_000));
    let err = env
        .client
        .get_notification(GetNotificationRequest { name: huge })
        .await
        .unwrap_err();
    assert_ne!(err.code(), Code::Internal);

    // listing: bad tokens, sizes, enums, ids
    let bad_lists: Vec<(&str, ListNotificationsRequest)> = vec![
        (
            "INVALID_PAGE_TOKEN",
            ListNotificationsRequest {
                page_token: "garbage!".into(),
                ..Default::default()
            },
        ),
        (
            "INVALID_PAGE_TOKEN",
            ListNotificationsRequest {
                page_token: "bm90LWEtdG9rZW4".into(),
                ..Default::default()
            },
        ),
        (
            "PAGE_SIZE_INVALID",
            ListNotificationsRequest {
                page_size: -1,
                ..Default::default()
            },
        ),
        (
            "CHANNEL_INVALID",
            ListNotificationsRequest {
                channel: 99,
                ..Default::default()
            },
        ),
        (
            "STATUS_INVALID",
            ListNotificationsRequest {
                statuses: vec![42],
                ..Default::default()
            },
        ),
        (
            "STATUS_INVALID",
            ListNotificationsRequest {
                statuses: vec![0],
                ..Default::default()
            },
        ),
        (
            "ACCOUNT_ID_INVALID",
            ListNotificationsRequest {
                account_id: "a b".into(),
                ..Default::default()
            },
        ),
        (
            "EVENT_ID_INVALID",
            ListNotificationsRequest {
                event_id: "e".repeat(65),
                ..Default::default()
            },
        ),
        (
            "SUBJECT_INVALID",
            ListNotificationsRequest {
                subject: "x\ny".into(),
                ..Default::default()
            },
        ),
    ];
    for (reason, request) in bad_lists {
        let err = env.client.list_notifications(request).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{reason}: {err:?}");
        let d = decoded(&err);
        if reason == "INVALID_PAGE_TOKEN" {
            assert_eq!(d.reason.as_deref(), Some(reason));
        } else {
            assert!(
                d.field_reasons().contains(&reason.to_string()),
                "{reason}: {d:?}"
            );
        }
    }
    env.stop().await;
}

#[tokio::test]
async fn listing_pages_newest_first_with_tokens_bound_to_their_filters() {
    let mut env = Env::start().await;
    let account = env.add(fixtures::eligible_account("acct-pages")).await;
    let mut created = Vec::new();
    for _ in 0..3 {
        let reply = env.send(approval(&account, &event_id())).await.unwrap();
        created.extend(names(&reply));
    }
    let filter = ListNotificationsRequest {
        account_id: account.account_id.clone(),
        channel: kg_proto::notification::Channel::Email as i32,
        page_size: 2,
        ..Default::default()
    };
    let first = env.list(filter.clone()).await;
    assert_eq!(first.notifications.len(), 2);
    assert!(!first.next_page_token.is_empty());
    let second = env
        .list(ListNotificationsRequest {
            page_token: first.next_page_token.clone(),
            ..filter.clone()
        })
        .await;
    assert_eq!(second.notifications.len(), 1);
    assert!(second.next_page_token.is_empty());
    let listed: Vec<String> = first
        .notifications
        .iter()
        .chain(&second.notifications)
        .map(|n| n.name.clone())
        .collect();
    let mut emails: Vec<String> = created
        .iter()
        .step_by(2) // EMAIL, SMS per event
        .cloned()
        .collect();
    emails.reverse();
    assert_eq!(listed, emails, "newest first");

    // the token of one filter does not work with another
    let err = env
        .client
        .list_notifications(ListNotificationsRequest {
            page_token: first.next_page_token.clone(),
            channel: kg_proto::notification::Channel::Sms as i32,
            ..filter.clone()
        })
        .await
        .unwrap_err();
    assert_eq!(decoded(&err).reason.as_deref(), Some("INVALID_PAGE_TOKEN"));

    // filters
    let sent = env.wait_sent(&created).await;
    let by_status = env
        .list(ListNotificationsRequest {
            account_id: account.account_id.clone(),
            statuses: vec![DeliveryStatus::Sent as i32, DeliveryStatus::Failed as i32],
            ..Default::default()
        })
        .await;
    assert_eq!(by_status.notifications.len(), 6);
    let none = env
        .list(ListNotificationsRequest {
            account_id: account.account_id.clone(),
            statuses: vec![DeliveryStatus::Pending as i32],
            ..Default::default()
        })
        .await;
    assert!(none.notifications.is_empty());
    let by_subject = env
        .list(ListNotificationsRequest {
            subject: sent[0].subject.clone(),
            ..Default::default()
        })
        .await;
    assert_eq!(by_subject.notifications.len(), 2);
    env.stop().await;
}

// ----- several replicas, crashed replicas -----

#[tokio::test]
async fn two_replicas_on_one_database_send_each_delivery_once() {
    let mut env = Env::start().await;
    let second = mesh::start_notification(env.config.clone()).await.unwrap();
    let other = NotificationServiceClient::new(second.channel().await.unwrap());
    let account = env.add(fixtures::eligible_account("acct-replicas")).await;
    let requests: Vec<_> = (0..30).map(|_| approval(&account, &event_id())).collect();
    let calls = requests.iter().enumerate().map(|(i, request)| {
        // every event reaches both replicas, as a relay retrying against a Service would
        let mut a = env.client.clone();
        let mut b = other.clone();
        let request = request.clone();
        async move {
            let (x, y) = tokio::join!(
                a.send_notification(request.clone()),
                b.send_notification(request)
            );
            let (x, y) = (x.unwrap().into_inner(), y.unwrap().into_inner());
            assert_eq!(names(&x), names(&y), "event {i}");
            assert!(
                x.created != y.created,
                "event {i}: exactly one replica created it"
            );
            names(&x)
        }
    });
    let all: Vec<String> = futures::future::join_all(calls)
        .await
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(all.len(), 60);
    env.wait_sent(&all).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(env.mails_to(&account.email).len(), 30);
    let texts = env.sms_to(&account.mobile);
    assert_eq!(texts.len(), 30);
    let mut refs: Vec<_> = texts
        .iter()
        .map(|t| t["client_reference"].as_str().unwrap().to_string())
        .collect();
    refs.sort();
    refs.dedup();
    assert_eq!(refs.len(), 30);
    second.stop().await.unwrap();
    env.stop().await;
}

#[tokio::test]
async fn a_lease_of_a_crashed_replica_is_taken_over_once_it_runs_out() {
    use kg_notification::store::delivery;
    use sea_orm::{ActiveModelTrait, EntityTrait, IntoActiveModel, Set};

    // store two deliveries with the email channel off, then stop
    let mut env = Env::start_with(|c| {
        c.smtp_url = None;
        c.sms_url = None;
    })
    .await;
    let mut account = fixtures::eligible_account("acct-lease");
    account.mobile.clear();
    let account = env.add(account).await;
    let crashed = names(&env.send(approval(&account, &event_id())).await.unwrap());
    let busy = names(&env.send(approval(&account, &event_id())).await.unwrap());
    env.stop_service().await;

    // one claimed by a replica that died (lease over), one by a replica still sending
    let db = kg_runtime::db::connect(&env._db.url).await.unwrap();
    let now = chrono::Utc::now();
    let lease_end = now + chrono::Duration::seconds(3);
    for (name, owner, until) in [
        (
            &crashed[0],
            "dead-replica",
            now - chrono::Duration::seconds(1),
        ),
        (&busy[0], "busy-replica", lease_end),
    ] {
        let id = name.trim_start_matches("notifications/").to_string();
        let mut row = delivery::Entity::find_by_id(id)
            .one(&db)
            .await
            .unwrap()
            .unwrap()
            .into_active_model();
        row.lease_owner = Set(Some(owner.to_string()));
        row.lease_until = Set(Some(kg_notification::store::truncate(until)));
        row.update(&db).await.unwrap();
    }

    let mut config = env.config.clone();
    config.smtp_url = Some(format!("{}?tls=none", env.smtp.url()).into());
    env.start_service(config).await;
    let taken_over = env.wait_sent(&crashed).await;
    assert_eq!(taken_over[0].attempts, 1);
    let still_leased = env.get(&busy[0]).await;
    assert_eq!(
        still_leased.status,
        DeliveryStatus::Pending as i32,
        "a live lease is respected"
    );
    let sent = env.wait_sent(&busy).await;
    let sent_at = sent[0].sent_time.unwrap();
    assert!(
        sent_at.seconds >= lease_end.timestamp(),
        "sent only after the lease ran out"
    );
    assert_eq!(env.mails_to(&account.email).len(), 2);
    env.stop().await;
}

// ----- authentication -----

fn with_token<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

#[tokio::test]
async fn with_authentication_on_only_services_send_and_the_directory_is_read_with_a_service_token()
{
    use kg_runtime::auth::{Authenticator, DEFAULT_AUDIENCE, DEFAULT_ISSUER, Role};
    const SECRET: &str = kg_tests::mesh::TEST_SECRET;
    let auth = Authenticator::hs256(SECRET.as_bytes(), DEFAULT_ISSUER, DEFAULT_AUDIENCE);
    let token = |subject: &str, role| auth.mint(subject, role, Duration::from_secs(300));

    let identity_db = mesh::fresh_db().await.unwrap();
    let db = mesh::fresh_db().await.unwrap();
    let mut identity_common = mesh::common(&identity_db.url);
    identity_common.jwt_secret = Some(SECRET.into());
    let identity_config = kg_identity_check::Config {
        common: identity_common,
        website_test_allowlist: Vec::new(),
    };
    let identity = Running::start(mesh::any_port(), move |l, s| {
        kg_identity_check::run(identity_config, l, s)
    })
    .await
    .unwrap();
    let smtp = SmtpServer::start().await.unwrap();
    let mut config = mesh::notification_config(&db.url, &identity.url());
    config.common.jwt_secret = Some(SECRET.into());
    config.smtp_url = Some(format!("{}?tls=none", smtp.url()).into());
    let service = mesh::start_notification(config).await.unwrap();

    let account = fixtures::eligible_account("acct-auth");
    IdentityCheckServiceClient::new(identity.channel().await.unwrap())
        .import_accounts(with_token(
            ImportAccountsRequest {
                request_id: uuid::Uuid::new_v4().to_string(),
                accounts: vec![account.clone()],
            },
            &token("ops", Role::Operator),
        ))
        .await
        .unwrap();

    let mut client = NotificationServiceClient::new(service.channel().await.unwrap());
    let request = approval(&account, &event_id());
    for (who, role) in [("acct-auth", Role::Applicant), ("rev", Role::Reviewer)] {
        let err = client
            .send_notification(with_token(request.clone(), &token(who, role)))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{role:?}: {err:?}");
    }
    let err = client.send_notification(request.clone()).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);

    // a service may; notification reads the account with its own service token
    let reply = client
        .send_notification(with_token(
            request.clone(),
            &token("registration", Role::Service),
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(reply.created);
    smtp.wait_for_messages(1, WAIT).await.unwrap();
    let got = client
        .get_notification(with_token(
            GetNotificationRequest {
                name: reply.notifications[0].name.clone(),
            },
            &token("rev", Role::Reviewer),
        ))
        .await
        .unwrap()
        .into_inner()
        .notification
        .unwrap();
    assert_eq!(got.recipient, "a***@example.com");
    service.stop().await.unwrap();
    identity.stop().await.unwrap();
}
