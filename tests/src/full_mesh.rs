//! The whole mesh in one test process, for tests that drive a subject through every service:
//! identity-check, registration (with a private Redis for the entity lock), review and
//! notification (with a private SMTP server), each on its own fresh database (PostgreSQL or
//! SQLite per KG_TEST_DATABASE), authentication on or off, and a local English website. The
//! helpers call as the right role and wait, bounded, for the asynchronous steps (relay, review).

use std::net::SocketAddr;
use std::time::Duration;

use kg_proto::identity::ImportAccountsRequest;
use kg_proto::identity::identity_check_service_client::IdentityCheckServiceClient;
use kg_proto::notification::notification_service_client::NotificationServiceClient;
use kg_proto::notification::{ListNotificationsRequest, NotificationEventType};
use kg_proto::registration::registration_service_client::RegistrationServiceClient;
use kg_proto::registration::*;
use kg_proto::review::review_service_client::ReviewServiceClient;
use kg_proto::review::*;
use kg_runtime::auth::{Authenticator, DEFAULT_AUDIENCE, DEFAULT_ISSUER, Role};
use kg_runtime::error::DecodedError;
use tonic::transport::Channel;

use crate::fixtures::{self, Website};
use crate::mesh::{self, Running, TestDb};
use crate::smtp::Maildir;
use crate::{RedisServer, SmtpServer, free_port, poll};

pub struct Mesh {
    pub identity: Running,
    pub registration: Running,
    pub review: Running,
    pub notification: Running,
    pub smtp: SmtpServer,
    /// The bounce mailbox notification reads (deliver DSNs into it).
    pub bounces: Maildir,
    pub website: Website,
    /// Set when authentication is on: the helpers then send tokens of the right roles.
    pub auth: Option<Authenticator>,
    pub _redis: RedisServer,
    pub _dbs: Vec<TestDb>,
}

impl Mesh {
    pub async fn start() -> Mesh {
        Self::start_with(None).await
    }

    /// The mesh with authentication on (every service shares `secret`) or off.
    pub async fn start_with(secret: Option<&str>) -> Mesh {
        Self::start_configured(secret, |_| {}).await
    }

    /// As [`Mesh::start_with`], with review's configuration adjusted by `review_tweak`.
    pub async fn start_configured(
        secret: Option<&str>,
        review_tweak: impl FnOnce(&mut kg_review::Config),
    ) -> Mesh {
        let common = |db: &str| {
            let mut common = mesh::common(db);
            common.jwt_secret = secret.map(Into::into);
            common
        };
        let redis = RedisServer::start().await.unwrap();
        let smtp = SmtpServer::start().await.unwrap();
        let website = Website::start().await.unwrap();
        let dbs = vec![
            mesh::fresh_db().await.unwrap(),
            mesh::fresh_db().await.unwrap(),
            mesh::fresh_db().await.unwrap(),
            mesh::fresh_db().await.unwrap(),
        ];
        let identity_config = kg_identity_check::Config {
            common: common(&dbs[0].url),
            website_test_allowlist: vec!["127.0.0.1/32".to_string()],
        };
        let identity = Running::start(mesh::any_port(), move |l, s| {
            kg_identity_check::run(identity_config, l, s)
        })
        .await
        .unwrap();
        let bounces = Maildir::new().unwrap();
        // registration, review and notification call each other: fix their addresses first.
        let review_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let registration_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let mut notification_config = mesh::notification_config(&dbs[3].url, &identity.url());
        notification_config.common = common(&dbs[3].url);
        notification_config.smtp_url = Some(format!("{}?tls=none", smtp.url()).into());
        notification_config.registration_url = format!("http://{registration_addr}");
        notification_config.bounce_maildir = Some(bounces.path().to_path_buf());
        notification_config.smtp_bounce_address = Some("bounces@koogallery.example".into());
        let notification = mesh::start_notification(notification_config).await.unwrap();
        let mut registration_config = mesh::with_peers(
            mesh::registration_config(&dbs[1].url, &identity.url(), Some(redis.url())),
            &format!("http://{review_addr}"),
            &notification.url(),
        );
        registration_config.common = common(&dbs[1].url);
        // Two permanent failures mark an account unreachable (the default is 3).
        registration_config.contact_unreachable_failures = 2;
        let registration = Running::start(registration_addr, move |l, s| {
            kg_registration::run(registration_config, l, s)
        })
        .await
        .unwrap();
        let mut config = mesh::review_config(&dbs[2].url, &registration.url(), &identity.url());
        config.common = common(&dbs[2].url);
        review_tweak(&mut config);
        let review = Running::start(review_addr, move |l, s| kg_review::run(config, l, s))
            .await
            .unwrap();
        Mesh {
            identity,
            registration,
            review,
            notification,
            smtp,
            bounces,
            website,
            auth: secret
                .map(|s| Authenticator::hs256(s.as_bytes(), DEFAULT_ISSUER, DEFAULT_AUDIENCE)),
            _redis: redis,
            _dbs: dbs,
        }
    }

    pub async fn idc(&self) -> IdentityCheckServiceClient<Channel> {
        IdentityCheckServiceClient::new(self.identity.channel().await.unwrap())
    }

    pub async fn reg(&self) -> RegistrationServiceClient<Channel> {
        RegistrationServiceClient::new(self.registration.channel().await.unwrap())
    }

    pub async fn rev(&self) -> ReviewServiceClient<Channel> {
        ReviewServiceClient::new(self.review.channel().await.unwrap())
    }

    pub async fn notifications(&self) -> NotificationServiceClient<Channel> {
        NotificationServiceClient::new(self.notification.channel().await.unwrap())
    }

    pub async fn stop(self) {
        self.review.stop().await.unwrap();
        self.registration.stop().await.unwrap();
        self.notification.stop().await.unwrap();
        self.identity.stop().await.unwrap();
    }

    /// `message` as `subject` in `role` (a bearer token when authentication is on).
    pub fn as_<T>(&self, message: T, subject: &str, role: Role) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Some(auth) = &self.auth {
            let token = auth.mint(subject, role, Duration::from_secs(600));
            request
                .metadata_mut()
                .insert("authorization", format!("Bearer {token}").parse().unwrap());
        }
        request
    }

    pub fn operator<T>(&self, message: T) -> tonic::Request<T> {
        self.as_(message, "ops-1", Role::Operator)
    }

    pub fn reviewer<T>(&self, message: T) -> tonic::Request<T> {
        self.as_(message, "reviewer-1", Role::Reviewer)
    }

    pub async fn import(&self, account: kg_proto::identity::Account) {
        self.idc()
            .await
            .import_accounts(self.operator(ImportAccountsRequest {
                request_id: uuid::Uuid::new_v4().to_string(),
                accounts: vec![account],
            }))
            .await
            .unwrap();
    }

    /// The review task of `subject`, once registration's relay has created it.
    pub async fn task_of(&self, subject: &str) -> ReviewTask {
        poll("the review task", Duration::from_secs(30), || async {
            self.rev()
                .await
                .list_review_tasks(self.reviewer(ListReviewTasksRequest {
                    subject: subject.to_string(),
                    ..Default::default()
                }))
                .await
                .ok()?
                .into_inner()
                .review_tasks
                .into_iter()
                .next()
        })
        .await
    }

    /// A reviewer claims the task of `subject` and approves it (or rejects it with a reason).
    pub async fn decide(&self, subject: &str, approve: bool) -> ReviewTask {
        let task = self.task_of(subject).await;
        let mut rev = self.rev().await;
        rev.claim_review_task(self.reviewer(ClaimReviewTaskRequest {
            request_id: uuid::Uuid::new_v4().to_string(),
            name: task.name.clone(),
            etag: String::new(),
        }))
        .await
        .unwrap();
        if approve {
            rev.approve_review_task(self.reviewer(ApproveReviewTaskRequest {
                request_id: uuid::Uuid::new_v4().to_string(),
                name: task.name.clone(),
                comment: "verified".into(),
                etag: String::new(),
            }))
            .await
            .unwrap();
        } else {
            rev.reject_review_task(self.reviewer(RejectReviewTaskRequest {
                request_id: uuid::Uuid::new_v4().to_string(),
                name: task.name.clone(),
                reason_codes: vec!["WEBSITE_NOT_ENGLISH".into()],
                comment: "The website must be in English.".into(),
                etag: String::new(),
            }))
            .await
            .unwrap();
        }
        task
    }

    /// An approved seller of a fresh eligible account and entity `seed`.
    pub async fn seller(&self, account_id: &str, seed: u64) -> Seller {
        self.import(fixtures::eligible_account(account_id)).await;
        let app = self
            .reg()
            .await
            .submit_application(self.as_(
                fixtures::submission(account_id, seed, &self.website.url("/en")),
                account_id,
                Role::Applicant,
            ))
            .await
            .unwrap()
            .into_inner()
            .application
            .unwrap();
        self.decide(&app.name, true).await;
        let approved = poll("APPROVED", Duration::from_secs(30), || async {
            let a = self
                .reg()
                .await
                .get_application(self.operator(GetApplicationRequest {
                    name: app.name.clone(),
                    ..Default::default()
                }))
                .await
                .ok()?
                .into_inner()
                .application?;
            (a.state == ApplicationState::Approved as i32).then_some(a)
        })
        .await;
        self.get_seller(&approved.seller).await
    }

    pub async fn get_seller(&self, name: &str) -> Seller {
        self.reg()
            .await
            .get_seller(self.operator(GetSellerRequest {
                name: name.to_string(),
            }))
            .await
            .unwrap()
            .into_inner()
            .seller
            .unwrap()
    }

    pub async fn modification(&self, name: &str) -> ModificationRequest {
        self.reg()
            .await
            .get_modification_request(self.operator(GetModificationRequestRequest {
                name: name.to_string(),
            }))
            .await
            .unwrap()
            .into_inner()
            .modification_request
            .unwrap()
    }

    /// Waits until the request leaves PENDING_REVIEW.
    pub async fn decided(&self, name: &str) -> ModificationRequest {
        poll("the decision", Duration::from_secs(30), || async {
            let m = self.modification(name).await;
            (m.state != ModificationState::PendingReview as i32).then_some(m)
        })
        .await
    }

    pub async fn notified(&self, account_id: &str, kind: NotificationEventType) -> bool {
        let list = self
            .notifications()
            .await
            .list_notifications(self.operator(ListNotificationsRequest {
                account_id: account_id.to_string(),
                page_size: 100,
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner()
            .notifications;
        list.iter().any(|n| n.event_type == kind as i32)
    }

    pub async fn wait_notified(&self, account_id: &str, kind: NotificationEventType) {
        poll(&format!("{kind:?}"), Duration::from_secs(30), || async {
            self.notified(account_id, kind).await.then_some(())
        })
        .await
    }

    pub fn applicant<T>(&self, message: T, account_id: &str) -> tonic::Request<T> {
        self.as_(message, account_id, Role::Applicant)
    }

    /// The application in the FULL view (with its logo's bytes), as tests compare it whole.
    pub async fn application(&self, name: &str) -> Application {
        self.reg()
            .await
            .get_application(self.operator(GetApplicationRequest {
                name: name.to_string(),
                view: ApplicationView::Full as i32,
            }))
            .await
            .unwrap()
            .into_inner()
            .application
            .unwrap()
    }

    pub async fn application_in(&self, name: &str, state: ApplicationState) -> Application {
        poll(&format!("{state:?}"), Duration::from_secs(30), || async {
            let a = self.application(name).await;
            (a.state == state as i32).then_some(a)
        })
        .await
    }

    /// A fresh eligible account submits; returns the application once it is IN_REVIEW.
    pub async fn submitted(&self, account_id: &str, seed: u64) -> Application {
        self.import(fixtures::eligible_account(account_id)).await;
        let app = self
            .reg()
            .await
            .submit_application(self.applicant(
                fixtures::submission(account_id, seed, &self.website.url("/en")),
                account_id,
            ))
            .await
            .unwrap()
            .into_inner()
            .application
            .unwrap();
        self.application_in(&app.name, ApplicationState::InReview)
            .await
    }

    pub async fn review_task(&self, name: &str) -> ReviewTask {
        self.rev()
            .await
            .get_review_task(self.reviewer(GetReviewTaskRequest {
                name: name.to_string(),
            }))
            .await
            .unwrap()
            .into_inner()
            .review_task
            .unwrap()
    }

    /// A reviewer claims the task of `subject` and requests changes; returns the waiting task
    /// and the application once registration has applied the decision.
    pub async fn request_changes(&self, subject: &str) -> (ReviewTask, Application) {
        let task = self.task_of(subject).await;
        let mut rev = self.rev().await;
        rev.claim_review_task(self.reviewer(ClaimReviewTaskRequest {
            request_id: uuid::Uuid::new_v4().to_string(),
            name: task.name.clone(),
            etag: String::new(),
        }))
        .await
        .unwrap();
        let waiting = rev
            .request_changes(self.reviewer(RequestChangesRequest {
                request_id: uuid::Uuid::new_v4().to_string(),
                name: task.name.clone(),
                reason_codes: vec!["WEBSITE_NOT_ENGLISH".into()],
                comment: "Please describe the products in the introduction.".into(),
                etag: String::new(),
            }))
            .await
            .unwrap()
            .into_inner()
            .review_task
            .unwrap();
        let app = self
            .application_in(subject, ApplicationState::ChangesRequested)
            .await;
        (waiting, app)
    }

    pub async fn count_notified(&self, account_id: &str, kind: NotificationEventType) -> usize {
        self.notifications()
            .await
            .list_notifications(self.operator(ListNotificationsRequest {
                account_id: account_id.to_string(),
                page_size: 100,
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner()
            .notifications
            .iter()
            .filter(|n| n.event_type == kind as i32)
            .count()
    }
}

pub fn decoded(status: &tonic::Status) -> DecodedError {
    DecodedError::from_status(status)
}

pub fn mask(paths: &[&str]) -> Option<prost_types::FieldMask> {
    Some(prost_types::FieldMask {
        paths: paths.iter().map(|p| p.to_string()).collect(),
    })
}
