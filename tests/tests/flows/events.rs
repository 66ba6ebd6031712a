//! WatchEvents over real gRPC (registration and identity-check on TCP, real PostgreSQL or
//! SQLite): a stream cut after a few events and resumed with its token gets every later event
//! once, in order, then live events; concurrent submissions reach watchers exactly once (on
//! PostgreSQL also when commits come out of their start order); filters,
//! heartbeats and their tokens; one seller's lifecycle from submission to exit, each change with
//! its snapshot; hostile input; and streams ending at shutdown.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use kg_proto::common::ReviewDecision;
use kg_proto::identity::ImportAccountsRequest;
use kg_proto::identity::identity_check_service_client::IdentityCheckServiceClient;
use kg_proto::registration::registration_event::Payload;
use kg_proto::registration::registration_service_client::RegistrationServiceClient;
use kg_proto::registration::watch_events_response::Item;
use kg_proto::registration::*;
use kg_runtime::auth::{Authenticator, DEFAULT_AUDIENCE, DEFAULT_ISSUER, Role};
use kg_runtime::error::DecodedError;
use kg_tests::fixtures::{self, Website};
use kg_tests::mesh::{self, Running, TestDb};
use tonic::Code;
use tonic::transport::Channel;

type Kind = RegistrationEventType;
type Stream = tonic::Streaming<WatchEventsResponse>;

const SECRET: &str = kg_tests::mesh::TEST_SECRET;
const HEARTBEAT_MS: u64 = 300;
/// How long a test listens to a stream that should stay quiet: several heartbeats, with
/// room for a loaded machine.
const QUIET: Duration = Duration::from_millis(5 * HEARTBEAT_MS);

struct Env {
    identity: Running,
    registration: Running,
    website: Website,
    reg: RegistrationServiceClient<Channel>,
    idc: IdentityCheckServiceClient<Channel>,
    /// Set when authentication is on: every call carries an operator token unless told.
    auth: Option<Authenticator>,
    _dbs: (TestDb, TestDb),
}

impl Env {
    async fn start(secured: bool) -> Env {
        Self::start_with(secured, |_| {}).await
    }

    async fn start_with(secured: bool, tune: impl FnOnce(&mut kg_registration::Config)) -> Env {
        let identity_db = mesh::fresh_db().await.unwrap();
        let registration_db = mesh::fresh_db().await.unwrap();
        let mut identity_common = mesh::common(&identity_db.url);
        let mut config = mesh::registration_config(&registration_db.url, "", None);
        if secured {
            identity_common.jwt_secret = Some(SECRET.into());
            config.common.jwt_secret = Some(SECRET.into());
        }
        let identity_config = kg_identity_check::Config {
            common: identity_common,
            website_test_allowlist: vec!["127.0.0.1/32".to_string()],
        };
        let identity = Running::start(mesh::any_port(), move |l, s| {
            kg_identity_check::run(identity_config, l, s)
        })
        .await
        .unwrap();
        config.identity_check_url = identity.url();
        config.watch_heartbeat_ms = HEARTBEAT_MS;
        config.watch_poll_ms = 200;
        tune(&mut config);
        let registration = mesh::start_registration(config).await.unwrap();
        Env {
            reg: RegistrationServiceClient::new(registration.channel().await.unwrap()),
            idc: IdentityCheckServiceClient::new(identity.channel().await.unwrap()),
            website: Website::start().await.unwrap(),
            auth: secured
                .then(|| Authenticator::hs256(SECRET.as_bytes(), DEFAULT_ISSUER, DEFAULT_AUDIENCE)),
            identity,
            registration,
            _dbs: (identity_db, registration_db),
        }
    }

    /// `message` with a bearer token for `subject` in `role` when authentication is on.
    fn req<T>(&self, message: T, subject: &str, role: Role) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Some(auth) = &self.auth {
            let token = auth.mint(subject, role, Duration::from_secs(600));
            request
                .metadata_mut()
                .insert("authorization", format!("Bearer {token}").parse().unwrap());
        }
        request
    }

    async fn add_accounts(&mut self, ids: impl IntoIterator<Item = String>) {
        let accounts = ids
            .into_iter()
            .map(|id| fixtures::eligible_account(&id))
            .collect();
        let request = self.req(
            ImportAccountsRequest {
                request_id: uuid::Uuid::new_v4().to_string(),
                accounts,
            },
            "ops-1",
            Role::Operator,
        );
        let reply = self
            .idc
            .import_accounts(request)
            .await
            .unwrap()
            .into_inner();
        assert_eq!(reply.failed_count, 0, "{:?}", reply.errors);
    }

    async fn submit(&self, account: &str, seed: u64) -> Application {
        let request = self.req(
            fixtures::submission(account, seed, &self.website.url("/en")),
            account,
            Role::Applicant,
        );
        self.reg
            .clone()
            .submit_application(request)
            .await
            .unwrap()
            .into_inner()
            .application
            .unwrap()
    }

    async fn withdraw(&self, name: &str) -> Application {
        let request = self.req(
            WithdrawApplicationRequest {
                request_id: uuid::Uuid::new_v4().to_string(),
                name: name.into(),
                reason: "changed our plans".into(),
                etag: String::new(),
            },
            "ops-1",
            Role::Operator,
        );
        self.reg
            .clone()
            .withdraw_application(request)
            .await
            .unwrap()
            .into_inner()
            .application
            .unwrap()
    }

    async fn approve(&self, name: &str) {
        self.decide(name, ReviewDecision::Approve).await;
    }

    /// What ReviewService's relay sends once reviewer rev-7 decided on `subject` (an
    /// application or a modification request); a rejection cites a catalogue reason.
    async fn decide(&self, subject: &str, decision: ReviewDecision) {
        let reason_codes = match decision {
            ReviewDecision::Approve => vec![],
            _ => vec!["WEBSITE_NOT_ENGLISH".to_string()],
        };
        let request = self.req(
            ApplyReviewDecisionRequest {
                event_id: uuid::Uuid::new_v4().to_string(),
                subject: subject.into(),
                decision: decision as i32,
                reason_codes,
                reviewer: "rev-7".into(),
                ..Default::default()
            },
            "review",
            Role::Service,
        );
        let reply = self
            .reg
            .clone()
            .apply_review_decision(request)
            .await
            .unwrap()
            .into_inner();
        assert_eq!(reply.outcome(), ApplyDecisionOutcome::Applied);
    }

    async fn try_watch(
        &self,
        request: WatchEventsRequest,
        subject: &str,
        role: Role,
    ) -> Result<Stream, tonic::Status> {
        let request = self.req(request, subject, role);
        self.reg
            .clone()
            .watch_events(request)
            .await
            .map(|r| r.into_inner())
    }

    async fn watch(&self, request: WatchEventsRequest) -> Stream {
        self.try_watch(request, "svc-follower", Role::Service)
            .await
            .unwrap()
    }

    async fn stop(self) {
        self.registration.stop().await.unwrap();
        self.identity.stop().await.unwrap();
    }
}

fn resume(token: &str) -> WatchEventsRequest {
    WatchEventsRequest {
        resume_token: token.into(),
        ..Default::default()
    }
}

/// The next `n` events (heartbeats skipped), 30 s at most.
async fn take(stream: &mut Stream, n: usize) -> Vec<RegistrationEvent> {
    kg_tests::next_events(stream, n, Duration::from_secs(30)).await
}

/// Reads for `quiet`, asserting no event arrives; returns the last heartbeat's token.
async fn quiet(stream: &mut Stream, quiet: Duration) -> Option<String> {
    let until = Instant::now() + quiet;
    let mut token = None;
    while let Ok(message) = tokio::time::timeout_at(until.into(), stream.message()).await {
        match message.expect("stream failed").expect("stream ended").item {
            Some(Item::Heartbeat(beat)) => {
                assert!(beat.heartbeat_time.is_some());
                token = Some(beat.resume_token);
            }
            other => panic!("unexpected message while quiet: {other:?}"),
        }
    }
    token
}

fn kinds(events: &[RegistrationEvent]) -> Vec<(Kind, String)> {
    events
        .iter()
        .map(|e| (e.event_type(), e.application.clone()))
        .collect()
}

fn snapshot(event: &RegistrationEvent) -> &Application {
    match &event.payload {
        Some(Payload::ApplicationSnapshot(app)) => app,
        other => panic!("no application snapshot: {other:?}"),
    }
}

fn reason(status: &tonic::Status) -> String {
    DecodedError::from_status(status).reason.unwrap_or_default()
}

#[tokio::test]
async fn a_cut_stream_resumes_with_its_token_without_loss_or_duplicates() {
    let mut env = Env::start(false).await;
    env.add_accounts((0..10).map(|i| format!("acct-r{i}")))
        .await;
    let mut expected = Vec::new();
    let mut apps = Vec::new();
    for i in 0..6 {
        let app = env.submit(&format!("acct-r{i}"), 1_000 + i).await;
        expected.push((Kind::ApplicationSubmitted, app.name.clone()));
        apps.push(app);
    }
    for i in [1, 4] {
        env.withdraw(&apps[i].name).await;
        expected.push((Kind::ApplicationWithdrawn, apps[i].name.clone()));
    }
    env.approve(&apps[0].name).await;
    expected.push((Kind::ApplicationApproved, apps[0].name.clone()));

    // Three events, then the client goes away.
    let mut stream = env.watch(WatchEventsRequest::default()).await;
    let first = take(&mut stream, 3).await;
    assert_eq!(kinds(&first), expected[..3]);
    let token = first[2].resume_token.clone();
    drop(stream);

    // Changes while disconnected.
    for i in 6..9 {
        let app = env.submit(&format!("acct-r{i}"), 1_000 + i).await;
        expected.push((Kind::ApplicationSubmitted, app.name.clone()));
        apps.push(app);
    }
    env.withdraw(&apps[6].name).await;
    expected.push((Kind::ApplicationWithdrawn, apps[6].name.clone()));

    // Resumed: exactly the rest, in order, nothing twice.
    let mut resumed = env.watch(resume(&token)).await;
    let rest = take(&mut resumed, expected.len() - 3).await;
    assert_eq!(kinds(&rest), expected[3..]);
    let ids: HashSet<&str> = first
        .iter()
        .chain(&rest)
        .map(|e| e.event_id.as_str())
        .collect();
    assert_eq!(ids.len(), expected.len(), "every event id once");
    let heartbeat = quiet(&mut resumed, QUIET)
        .await
        .expect("a heartbeat while idle");

    // What the events carry: the subject after the change, without logo bytes.
    for event in first.iter().chain(&rest) {
        let app = snapshot(event);
        assert_eq!(app.name, event.application);
        assert_eq!(event.account_id, app.account_id);
        assert!(event.event_time.is_some());
        let profile = app.profile.as_ref().unwrap();
        assert!(profile.logo.is_empty() && !profile.logo_sha256.is_empty());
        match event.event_type() {
            Kind::ApplicationSubmitted => {
                assert_eq!(app.state(), ApplicationState::Submitted);
                assert_eq!(event.actor, app.account_id, "the applicant submits");
            }
            Kind::ApplicationWithdrawn => {
                assert_eq!(app.state(), ApplicationState::Withdrawn);
                assert_eq!(event.actor, "dev", "the (development) operator withdrew");
            }
            Kind::ApplicationApproved => {
                assert_eq!(app.state(), ApplicationState::Approved);
                assert!(app.seller.starts_with("sellers/"));
                assert_eq!(event.seller, app.seller);
                assert_eq!(event.actor, "rev-7");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    // Live: a change while the stream is open arrives on it, once.
    let app = env.submit("acct-r9", 1_009).await;
    let live = take(&mut resumed, 1).await;
    assert_eq!(
        kinds(&live),
        vec![(Kind::ApplicationSubmitted, app.name.clone())]
    );
    let after_live = quiet(&mut resumed, QUIET)
        .await
        .expect("a heartbeat after the live event");

    // Heartbeat tokens resume where they were sent: the earlier one gets the live event only,
    // the later one nothing.
    let mut from_beat = env.watch(resume(&heartbeat)).await;
    assert_eq!(kinds(&take(&mut from_beat, 1).await), kinds(&live));
    assert!(quiet(&mut from_beat, QUIET).await.is_some());
    let mut from_end = env.watch(resume(&after_live)).await;
    assert!(quiet(&mut from_end, QUIET).await.is_some());

    // Filters: only withdrawals; start_time: from the sixth event on.
    let mut withdrawals = env
        .watch(WatchEventsRequest {
            event_types: vec![Kind::ApplicationWithdrawn as i32],
            ..Default::default()
        })
        .await;
    let got = take(&mut withdrawals, 3).await;
    let want: Vec<_> = expected
        .iter()
        .filter(|(k, _)| *k == Kind::ApplicationWithdrawn)
        .cloned()
        .collect();
    assert_eq!(kinds(&got), want);
    let beat = quiet(&mut withdrawals, QUIET).await.expect("heartbeat");
    // the filtered stream's heartbeat moved past the rows it skipped
    let mut after_filtered = env.watch(resume(&beat)).await;
    assert!(quiet(&mut after_filtered, QUIET).await.is_some());

    let sixth = &rest[2];
    let mut since = env
        .watch(WatchEventsRequest {
            start_time: sixth.event_time,
            ..Default::default()
        })
        .await;
    let got = take(&mut since, expected.len() - 5 + 1).await;
    assert_eq!(got[0].event_id, sixth.event_id);
    assert_eq!(kinds(&got[..expected.len() - 5]), expected[5..]);
    env.stop().await;
}

/// The name an event is about: the modification request for MODIFICATION_* and for the seller
/// changes it applied, the seller for SELLER_EXITED, the application otherwise.
fn subject(event: &RegistrationEvent) -> &str {
    if !event.modification_request.is_empty() {
        &event.modification_request
    } else if event.event_type() == Kind::SellerExited {
        &event.seller
    } else {
        &event.application
    }
}

fn subjects(events: &[RegistrationEvent]) -> Vec<(Kind, String)> {
    events
        .iter()
        .map(|e| (e.event_type(), subject(e).to_string()))
        .collect()
}

fn seller_snapshot(event: &RegistrationEvent) -> &Seller {
    match &event.payload {
        Some(Payload::SellerSnapshot(seller)) => seller,
        other => panic!("no seller snapshot: {other:?}"),
    }
}

fn modification_snapshot(event: &RegistrationEvent) -> &ModificationRequest {
    match &event.payload {
        Some(Payload::ModificationRequestSnapshot(m)) => m,
        other => panic!("no modification request snapshot: {other:?}"),
    }
}

/// One seller from submission to exit: every change is one event, in commit order, about the
/// right subject and with the subject as it was right after the change. A watcher that stays
/// connected and one cut mid-lifecycle (resumed after the exit) see the same events; a history
/// read cut in the middle resumes with the rest, once each.
#[tokio::test]
async fn seller_lifecycle_events_stream_in_order_with_their_snapshots() {
    const ACCOUNT: &str = "acct-lifecycle";
    let mut env = Env::start(false).await;
    env.add_accounts([ACCOUNT.to_string()]).await;
    let only_mine = || WatchEventsRequest {
        account_id: ACCOUNT.into(),
        ..Default::default()
    };
    let mut steady = env.watch(only_mine()).await;
    let mut cut = env.watch(only_mine()).await;
    let mut expected = Vec::new();

    // Application, approved: the seller is created.
    let app = env.submit(ACCOUNT, 7_001).await;
    expected.push((Kind::ApplicationSubmitted, app.name.clone()));
    env.approve(&app.name).await;
    expected.push((Kind::ApplicationApproved, app.name.clone()));
    let seller_name = env
        .reg
        .clone()
        .get_application(GetApplicationRequest {
            name: app.name.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .application
        .unwrap()
        .seller;
    let seller = env
        .reg
        .clone()
        .get_seller(GetSellerRequest {
            name: seller_name.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .seller
        .unwrap();
    let old_company = seller.company_name.clone();

    // A profile change, reviewed and approved.
    let mut profile = seller.profile.clone().unwrap();
    profile.introduction = "Example Software builds cloud tools for teams of every size.".into();
    let update = |profile: kg_proto::common::SellerProfile, path: &str| UpdateSellerInfoRequest {
        request_id: uuid::Uuid::new_v4().to_string(),
        name: seller_name.clone(),
        profile: Some(profile),
        update_mask: Some(prost_types::FieldMask {
            paths: vec![path.to_string()],
        }),
        etag: String::new(),
        logo_file_name: String::new(),
    };
    let intro = env
        .reg
        .clone()
        .update_seller_info(update(profile.clone(), "introduction"))
        .await
        .unwrap()
        .into_inner()
        .modification_request
        .unwrap();
    expected.push((Kind::ModificationRequested, intro.name.clone()));
    env.decide(&intro.name, ReviewDecision::Approve).await;
    expected.push((Kind::SellerInfoChanged, intro.name.clone()));

    // The cut watcher goes away here, having seen the events so far.
    let before_cut = take(&mut cut, expected.len()).await;
    assert_eq!(subjects(&before_cut), expected);
    let token = before_cut.last().unwrap().resume_token.clone();
    drop(cut);

    // A rename once the account's verified name changed: rejected, then asked again and
    // approved.
    let new_company = "Fuzhou Lifecycle Renamed Co., Ltd.".to_string();
    let mut account = kg_tests::fixtures::eligible_account(ACCOUNT);
    account.verified_enterprise_name = new_company.clone();
    env.idc
        .upsert_account(kg_proto::identity::UpsertAccountRequest {
            request_id: uuid::Uuid::new_v4().to_string(),
            account: Some(account),
        })
        .await
        .unwrap();
    let rename = || ChangeCompanyNameRequest {
        request_id: uuid::Uuid::new_v4().to_string(),
        name: seller_name.clone(),
        new_company_name: new_company.clone(),
        entity: None,
        etag: String::new(),
    };
    let mut renames = Vec::new();
    for decision in [ReviewDecision::Reject, ReviewDecision::Approve] {
        let request = env
            .reg
            .clone()
            .change_company_name(rename())
            .await
            .unwrap()
            .into_inner()
            .modification_request
            .unwrap();
        expected.push((Kind::ModificationRequested, request.name.clone()));
        env.decide(&request.name, decision).await;
        expected.push(match decision {
            ReviewDecision::Approve => (Kind::SellerRenamed, request.name.clone()),
            _ => (Kind::ModificationRejected, request.name.clone()),
        });
        renames.push(request);
    }

    // A last change request, still pending when the seller exits: withdrawn, then the exit.
    profile.industry = "CONSULTING".into();
    let pending = env
        .reg
        .clone()
        .update_seller_info(update(profile.clone(), "industry"))
        .await
        .unwrap()
        .into_inner()
        .modification_request
        .unwrap();
    expected.push((Kind::ModificationRequested, pending.name.clone()));
    env.reg
        .clone()
        .exit_seller(ExitSellerRequest {
            request_id: uuid::Uuid::new_v4().to_string(),
            name: seller_name.clone(),
            reason: "closing the business".into(),
            etag: String::new(),
        })
        .await
        .unwrap();
    expected.push((Kind::ModificationWithdrawn, pending.name.clone()));
    expected.push((Kind::SellerExited, seller_name.clone()));

    // The steady watcher: everything, in order, and nothing more.
    let all = take(&mut steady, expected.len()).await;
    assert_eq!(subjects(&all), expected);
    assert!(quiet(&mut steady, QUIET).await.is_some());
    // The cut one, resumed: exactly the rest.
    let mut resumed = env.watch(resume(&token)).await;
    let rest = take(&mut resumed, expected.len() - before_cut.len()).await;
    assert!(quiet(&mut resumed, QUIET).await.is_some(), "nothing twice");
    let ids = |events: &[RegistrationEvent]| -> Vec<String> {
        events.iter().map(|e| e.event_id.clone()).collect()
    };
    let stitched: Vec<_> = before_cut.iter().chain(&rest).cloned().collect();
    assert_eq!(
        ids(&stitched),
        ids(&all),
        "the same events in the same order"
    );
    let unique: HashSet<_> = ids(&all).into_iter().collect();
    assert_eq!(unique.len(), expected.len(), "every event id once");

    // A history read cut in the middle (after the rejection) resumes with the rest.
    let middle = 6;
    let mut history = env.watch(only_mine()).await;
    let head = take(&mut history, middle).await;
    assert_eq!(
        head.last().unwrap().event_type(),
        Kind::ModificationRejected
    );
    drop(history);
    let mut history = env.watch(resume(&head[middle - 1].resume_token)).await;
    let tail = take(&mut history, expected.len() - middle).await;
    assert!(quiet(&mut history, QUIET).await.is_some());
    let replayed: Vec<_> = head.into_iter().chain(tail).collect();
    assert_eq!(ids(&replayed), ids(&all));

    // What each event carries: the subject right after its change, without logo bytes.
    for event in &all {
        assert_eq!(event.account_id, ACCOUNT);
        assert!(event.event_time.is_some());
        assert!(!event.actor.is_empty(), "{event:?}");
        if event.event_type() != Kind::ApplicationSubmitted {
            assert_eq!(event.seller, seller_name, "{:?}", event.event_type());
        }
        match event.event_type() {
            Kind::ApplicationSubmitted | Kind::ApplicationApproved => {
                let app = snapshot(event);
                assert_eq!(app.name, event.application);
                let approved = event.event_type() == Kind::ApplicationApproved;
                assert_eq!(app.state() == ApplicationState::Approved, approved);
            }
            Kind::ModificationRequested
            | Kind::ModificationRejected
            | Kind::ModificationWithdrawn => {
                let m = modification_snapshot(event);
                assert_eq!(m.name, event.modification_request);
                assert_eq!(m.seller, seller_name);
                let state = match event.event_type() {
                    Kind::ModificationRequested => ModificationState::PendingReview,
                    Kind::ModificationRejected => ModificationState::Rejected,
                    _ => ModificationState::Withdrawn,
                };
                assert_eq!(m.state(), state, "{}", m.name);
                if let Some(p) = &m.proposed_profile {
                    assert!(p.logo.is_empty());
                }
            }
            Kind::SellerInfoChanged | Kind::SellerRenamed | Kind::SellerExited => {
                let s = seller_snapshot(event);
                assert_eq!(s.name, seller_name);
                assert_eq!(event.application, app.name);
                let p = s.profile.as_ref().unwrap();
                assert!(p.logo.is_empty() && !p.logo_sha256.is_empty());
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let of = |kind: Kind| -> Vec<&RegistrationEvent> {
        all.iter().filter(|e| e.event_type() == kind).collect()
    };
    // the requests: a profile update, two renames, a profile update
    let requested = of(Kind::ModificationRequested);
    let kinds_requested: Vec<_> = requested
        .iter()
        .map(|e| modification_snapshot(e).kind())
        .collect();
    assert_eq!(
        kinds_requested,
        [
            ModificationKind::ProfileUpdate,
            ModificationKind::CompanyNameChange,
            ModificationKind::CompanyNameChange,
            ModificationKind::ProfileUpdate,
        ]
    );
    let first = modification_snapshot(requested[0]);
    assert_eq!(
        first.proposed_profile.as_ref().unwrap().introduction,
        profile.introduction
    );
    assert_eq!(
        modification_snapshot(requested[1]).proposed_company_name,
        new_company
    );
    let rejected = modification_snapshot(of(Kind::ModificationRejected)[0]);
    assert_eq!(
        rejected.rejection.as_ref().unwrap().reason_codes,
        ["WEBSITE_NOT_ENGLISH"]
    );
    for decided in [
        Kind::ModificationRejected,
        Kind::SellerInfoChanged,
        Kind::SellerRenamed,
    ] {
        assert_eq!(of(decided)[0].actor, "rev-7", "{decided:?}");
    }

    // The seller after each change: the new introduction, still the old name; then renamed
    // with a history of two; then exited.
    let changed = seller_snapshot(of(Kind::SellerInfoChanged)[0]);
    assert_eq!(
        changed.profile.as_ref().unwrap().introduction,
        profile.introduction
    );
    assert_eq!(changed.company_name, old_company);
    assert_eq!(changed.state(), SellerState::Active);
    let renamed = seller_snapshot(of(Kind::SellerRenamed)[0]);
    assert_eq!(renamed.company_name, new_company);
    let history: Vec<_> = renamed
        .name_history
        .iter()
        .map(|h| h.company_name.as_str())
        .collect();
    assert_eq!(history, [old_company.as_str(), new_company.as_str()]);
    assert_eq!(
        renamed.name_history[1].modification_request,
        renames[1].name
    );
    assert_eq!(
        renamed.profile.as_ref().unwrap().industry,
        seller.profile.as_ref().unwrap().industry,
        "the pending industry change never applied"
    );
    let exited = seller_snapshot(of(Kind::SellerExited)[0]);
    assert_eq!(exited.state(), SellerState::Exited);
    assert_eq!(exited.exit_reason, "closing the business");
    assert!(exited.exit_time.is_some());
    assert!(exited.open_modification_request.is_empty());
    drop((steady, resumed, history));
    env.stop().await;
}

/// Watchers of every account and watchers of one account each (the replica routes a tailed batch
/// only to the streams it can concern), while 40 applicants submit and withdraw at once.
#[tokio::test]
async fn concurrent_submissions_reach_every_watcher_exactly_once() {
    const N: u64 = 40;
    const FOLLOWED: u64 = 5;
    let mut env = Env::start(false).await;
    env.add_accounts((0..N).map(|i| format!("acct-c{i}"))).await;
    env.add_accounts(["acct-quiet".to_string()]).await;
    let total = (N + N / 2) as usize;

    // Watcher A stays connected; watcher B drops and resumes every 7 events.
    let mut a = env.watch(WatchEventsRequest::default()).await;
    // One stream per followed account, and one on an account with no events at all.
    let mut followers = Vec::new();
    for i in 0..FOLLOWED {
        let account = format!("acct-c{i}");
        let stream = env
            .watch(WatchEventsRequest {
                account_id: account.clone(),
                ..Default::default()
            })
            .await;
        followers.push((account, stream));
    }
    let mut silent = env
        .watch(WatchEventsRequest {
            account_id: "acct-quiet".into(),
            ..Default::default()
        })
        .await;
    let reg = env.reg.clone();
    let b = tokio::spawn(async move {
        let mut reg = reg;
        let mut seen = Vec::new();
        let mut token = String::new();
        while seen.len() < total {
            let mut stream = reg.watch_events(resume(&token)).await.unwrap().into_inner();
            let chunk = take(&mut stream, 7.min(total - seen.len())).await;
            token = chunk.last().unwrap().resume_token.clone();
            seen.extend(chunk);
        }
        seen
    });

    let env = std::sync::Arc::new(env);
    let tasks: Vec<_> = (0..N)
        .map(|i| {
            let env = env.clone();
            tokio::spawn(async move {
                let app = env.submit(&format!("acct-c{i}"), 2_000 + i).await;
                let mut mine = vec![(Kind::ApplicationSubmitted, app.name.clone())];
                if i % 2 == 0 {
                    env.withdraw(&app.name).await;
                    mine.push((Kind::ApplicationWithdrawn, app.name));
                }
                mine
            })
        })
        .collect();
    let mut expected = HashSet::new();
    for task in tasks {
        expected.extend(task.await.unwrap());
    }
    assert_eq!(expected.len(), total);

    let seen_a = take(&mut a, total).await;
    let seen_b = tokio::time::timeout(Duration::from_secs(60), b)
        .await
        .expect("watcher B finished")
        .unwrap();
    for (who, seen) in [("A", &seen_a), ("B", &seen_b)] {
        let got: HashSet<_> = kinds(seen).into_iter().collect();
        assert_eq!(got.len(), total, "{who}: nothing twice");
        assert_eq!(got, expected, "{who}: everything once");
        let ids: HashSet<_> = seen.iter().map(|e| e.event_id.clone()).collect();
        assert_eq!(ids.len(), total, "{who}: distinct event ids");
        // an application's submission precedes its withdrawal
        for (i, e) in seen.iter().enumerate() {
            if e.event_type() == Kind::ApplicationWithdrawn {
                assert!(
                    seen[..i].iter().any(|s| s.application == e.application
                        && s.event_type() == Kind::ApplicationSubmitted),
                    "{who}: withdrawal before submission"
                );
            }
        }
    }
    assert_eq!(
        seen_a.iter().map(|e| &e.event_id).collect::<Vec<_>>(),
        seen_b.iter().map(|e| &e.event_id).collect::<Vec<_>>(),
        "both watchers see one order"
    );
    for (i, (account, stream)) in followers.iter_mut().enumerate() {
        let own: Vec<_> = seen_a.iter().filter(|e| e.account_id == *account).collect();
        assert_eq!(own.len(), if i % 2 == 0 { 2 } else { 1 });
        let got = take(stream, own.len()).await;
        assert_eq!(
            got.iter().map(|e| &e.event_id).collect::<Vec<_>>(),
            own.iter().map(|e| &e.event_id).collect::<Vec<_>>(),
            "{account}: its own events, in the stream's order"
        );
        assert!(
            quiet(stream, QUIET).await.is_some(),
            "{account}: nothing else"
        );
    }
    // The silent stream was never sent a batch, yet its heartbeat moved past all of them:
    // resumed without a filter, nothing of the traffic comes again.
    let beat = quiet(&mut silent, QUIET)
        .await
        .expect("a heartbeat on the silent stream");
    let mut after_silent = env.watch(resume(&beat)).await;
    assert!(quiet(&mut after_silent, QUIET).await.is_some());
    drop((after_silent, silent, followers));
    assert!(quiet(&mut a, QUIET).await.is_some());
    drop(a);
    match std::sync::Arc::try_unwrap(env) {
        Ok(env) => env.stop().await,
        Err(_) => panic!("tasks still hold the environment"),
    }
}

/// Commits out of their start order, made deterministic: a transaction that recorded its event
/// first but commits last holds the smaller seq. Writers of other subjects do not wait for it
/// (there is no cluster-wide writer lock), the later commit streams at once, and the late one
/// streams when it commits: a "seq > last" reader would skip it for good. Then two open
/// transactions on one subject, committed in the reverse of their start order: both stream, in
/// commit order, once each, and a token taken between them resumes at the second. Then a
/// rolled-back change: no event, and its unused seq does not stall the stream.
/// PostgreSQL only: SQLite has one writer, so the second transaction could not even start.
#[tokio::test]
async fn a_late_commit_streams_when_it_commits_and_is_never_skipped() {
    use kg_registration::events::EventKind;
    use sea_orm::TransactionTrait;
    if mesh::backend() == mesh::Backend::Sqlite {
        return;
    }
    let mut env = Env::start(false).await;
    env.add_accounts(["acct-slow".to_string(), "acct-fast".to_string()])
        .await;
    let slow = env.submit("acct-slow", 4_001).await;
    let mut stream = env.watch(WatchEventsRequest::default()).await;
    take(&mut stream, 1).await;

    // A withdrawal-like change that recorded its event and then stalls before COMMIT.
    let db = kg_runtime::db::connect(&env._dbs.1.url).await.unwrap();
    let open = db.begin().await.unwrap();
    kg_registration::outbox::announce(
        &open,
        EventKind::ApplicationWithdrawn,
        "acct-slow",
        &slow.name,
        "ops-stalled",
        &[],
    )
    .await
    .unwrap();

    // Another subject's write does not wait for it, and streams at once.
    let fast = tokio::time::timeout(Duration::from_secs(5), env.submit("acct-fast", 4_002))
        .await
        .expect("a write of another subject never waits for an open transaction");
    let got = take(&mut stream, 1).await;
    assert_eq!(
        kinds(&got),
        vec![(Kind::ApplicationSubmitted, fast.name.clone())]
    );
    open.commit().await.unwrap();
    let got = take(&mut stream, 1).await;
    assert_eq!(
        kinds(&got),
        vec![(Kind::ApplicationWithdrawn, slow.name.clone())],
        "the late commit is streamed, not skipped"
    );
    assert_eq!(got[0].actor, "ops-stalled");
    assert!(quiet(&mut stream, QUIET).await.is_some());

    // Two open transactions on one subject, committed in the reverse of their start order.
    let first = db.begin().await.unwrap();
    kg_registration::outbox::announce(
        &first,
        EventKind::ApplicationChangesRequested,
        "acct-fast",
        &fast.name,
        "started-first",
        &[],
    )
    .await
    .unwrap();
    let second = db.begin().await.unwrap();
    kg_registration::outbox::announce(
        &second,
        EventKind::ApplicationResubmitted,
        "acct-fast",
        &fast.name,
        "started-second",
        &[],
    )
    .await
    .unwrap();
    second.commit().await.unwrap();
    let got = take(&mut stream, 1).await;
    assert_eq!(got[0].actor, "started-second");
    let between = got[0].resume_token.clone();
    first.commit().await.unwrap();
    let got = take(&mut stream, 1).await;
    assert_eq!(got[0].actor, "started-first", "streamed when it committed");
    assert!(quiet(&mut stream, QUIET).await.is_some(), "each once");
    let mut resumed = env.watch(resume(&between)).await;
    let got = take(&mut resumed, 1).await;
    assert_eq!(
        got[0].actor, "started-first",
        "a token taken between the two resumes at the second"
    );
    assert!(quiet(&mut resumed, QUIET).await.is_some());
    drop(resumed);

    // A change that rolls back leaves no event, and its unused seq does not stall the stream.
    let doomed = db.begin().await.unwrap();
    kg_registration::outbox::announce(
        &doomed,
        EventKind::ApplicationWithdrawn,
        "acct-fast",
        &fast.name,
        "ops-doomed",
        &[],
    )
    .await
    .unwrap();
    doomed.rollback().await.unwrap();
    env.withdraw(&fast.name).await;
    let got = take(&mut stream, 1).await;
    assert_eq!(
        kinds(&got),
        vec![(Kind::ApplicationWithdrawn, fast.name.clone())]
    );
    assert_eq!(got[0].actor, "dev");
    assert!(quiet(&mut stream, QUIET).await.is_some());
    drop(stream);
    env.stop().await;
}

#[tokio::test]
async fn hostile_input_is_refused_with_reasons() {
    let mut env = Env::start(true).await;
    env.add_accounts(["acct-a".to_string(), "acct-b".to_string()])
        .await;
    let a = env.submit("acct-a", 3_001).await;
    let b = env.submit("acct-b", 3_002).await;
    env.withdraw(&a.name).await;

    let mut stream = env.watch(WatchEventsRequest::default()).await;
    let all = take(&mut stream, 3).await;
    drop(stream);
    let good = all[1].resume_token.clone();

    // Garbled and forged tokens.
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut bytes = b64.decode(&good).unwrap();
    let mut forged_seq = bytes.clone();
    forged_seq[8] ^= 0x40; // a position nobody was given
    bytes[12] ^= 0x01; // the right position, the wrong check
    let bad_tokens = [
        "not a token!".to_string(),
        b64.encode(b"v1:42"),
        good[..good.len() - 2].to_string(),
        b64.encode(&forged_seq),
        b64.encode(&bytes),
    ];
    for token in &bad_tokens {
        let err = env
            .try_watch(resume(token), "svc-1", Role::Service)
            .await
            .expect_err(token);
        assert_eq!(err.code(), Code::InvalidArgument, "{token}: {err:?}");
        assert_eq!(reason(&err), "INVALID_RESUME_TOKEN", "{token}");
    }

    // Unknown and unspecified event types.
    for value in [999, 0] {
        let err = env
            .try_watch(
                WatchEventsRequest {
                    event_types: vec![Kind::ApplicationSubmitted as i32, value],
                    ..Default::default()
                },
                "rev-1",
                Role::Reviewer,
            )
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{value}");
        let decoded = DecodedError::from_status(&err);
        assert_eq!(decoded.reason.as_deref(), Some("INVALID_ARGUMENT"));
        assert_eq!(decoded.field_reasons(), vec!["EVENT_TYPE_INVALID"]);
        assert_eq!(decoded.field_violations[0].0, "event_types[1]");
    }
    let err = env
        .try_watch(
            WatchEventsRequest {
                account_id: "bad account!".into(),
                ..Default::default()
            },
            "rev-1",
            Role::Reviewer,
        )
        .await
        .unwrap_err();
    assert_eq!(
        DecodedError::from_status(&err).field_reasons(),
        vec!["ACCOUNT_ID_INVALID"]
    );

    // Applicants: another account is refused; their own stream shows their account only,
    // and not the operator who withdrew.
    let err = env
        .try_watch(
            WatchEventsRequest {
                account_id: "acct-b".into(),
                ..Default::default()
            },
            "acct-a",
            Role::Applicant,
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert_eq!(reason(&err), "NOT_ACCOUNT_OWNER");
    let mut own = env
        .try_watch(WatchEventsRequest::default(), "acct-a", Role::Applicant)
        .await
        .unwrap();
    let mine = take(&mut own, 2).await;
    assert_eq!(
        kinds(&mine),
        vec![
            (Kind::ApplicationSubmitted, a.name.clone()),
            (Kind::ApplicationWithdrawn, a.name.clone())
        ]
    );
    assert_eq!(mine[0].actor, "acct-a", "their own actions keep the actor");
    assert_eq!(
        mine[1].actor, "",
        "staff actors are not shown to applicants"
    );
    assert!(quiet(&mut own, QUIET).await.is_some());
    let mut b_stream = env
        .try_watch(
            WatchEventsRequest {
                account_id: "acct-b".into(),
                ..Default::default()
            },
            "rev-1",
            Role::Reviewer,
        )
        .await
        .unwrap();
    assert_eq!(
        kinds(&take(&mut b_stream, 1).await),
        vec![(Kind::ApplicationSubmitted, b.name.clone())]
    );

    // No token at all: the auth layer refuses before the service sees the call.
    let err = env
        .reg
        .clone()
        .watch_events(WatchEventsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    drop((own, b_stream));
    env.stop().await;
}

#[tokio::test]
async fn streams_beyond_the_limit_are_refused_until_one_closes() {
    let env = Env::start_with(false, |c| c.watch_max_streams = 2).await;
    let first = env.watch(WatchEventsRequest::default()).await;
    let _second = env.watch(WatchEventsRequest::default()).await;
    let err = env
        .try_watch(WatchEventsRequest::default(), "svc-1", Role::Service)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert_eq!(reason(&err), "TOO_MANY_STREAMS");
    assert_eq!(
        DecodedError::from_status(&err).metadata.get("max_streams"),
        Some(&"2".to_string())
    );
    // A client that leaves frees its place.
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut third = loop {
        match env
            .try_watch(WatchEventsRequest::default(), "svc-1", Role::Service)
            .await
        {
            Ok(stream) => break stream,
            Err(e) if Instant::now() < deadline && e.code() == Code::ResourceExhausted => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => panic!("no place freed: {e:?}"),
        }
    };
    assert!(quiet(&mut third, QUIET).await.is_some());
    env.stop().await;
}

#[tokio::test]
async fn open_streams_end_with_unavailable_at_shutdown() {
    let env = Env::start(false).await;
    let mut stream = env.watch(WatchEventsRequest::default()).await;
    assert!(quiet(&mut stream, QUIET).await.is_some());
    let started = Instant::now();
    let Env {
        identity,
        registration,
        ..
    } = env;
    let stopping = tokio::spawn(registration.stop());
    let end = loop {
        match tokio::time::timeout(Duration::from_secs(5), stream.message())
            .await
            .expect("the stream ends promptly")
        {
            Ok(Some(_)) => continue,
            other => break other,
        }
    };
    let err = end.expect_err("ends with a status");
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert_eq!(reason(&err), "SERVER_SHUTTING_DOWN");
    stopping.await.unwrap().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "shutdown was not held up by the open stream (grace is 10 s)"
    );
    identity.stop().await.unwrap();
}

/// Streams that stop reading must not hold up the history of other streams: at most
/// `WATCH_DRAINS` streams of a replica read the database at once, and that turn must cover the
/// reads only, never a send that waits for a client. Five clients (one more than the turns)
/// read their first message and then nothing, on connections with small HTTP/2 windows, while
/// the log holds far more than a stream buffers; a sixth stream still gets its history.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn streams_whose_clients_stopped_reading_do_not_hold_up_the_others() {
    use futures::StreamExt as _;
    const N: u64 = 240;
    let mut env = Env::start(false).await;
    env.add_accounts((0..N).map(|i| format!("acct-stall-{i}")))
        .await;
    let submitted: Vec<Application> = futures::stream::iter(0..N)
        .map(|i| {
            let env = &env;
            async move { env.submit(&format!("acct-stall-{i}"), 900 + i).await }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    assert_eq!(submitted.len() as u64, N);

    let mut stalled = Vec::new();
    for _ in 0..=kg_registration::app::WATCH_DRAINS {
        let channel = tonic::transport::Endpoint::from_shared(env.registration.url())
            .unwrap()
            .initial_stream_window_size(8 * 1024)
            .initial_connection_window_size(8 * 1024)
            .connect()
            .await
            .unwrap();
        let mut stream = RegistrationServiceClient::new(channel)
            .watch_events(WatchEventsRequest::default())
            .await
            .unwrap()
            .into_inner();
        // the history has started to flow; from now on this client reads nothing
        take(&mut stream, 1).await;
        stalled.push(stream);
    }
    // let the stalled streams fill their buffers and block on their clients
    tokio::time::sleep(Duration::from_secs(2)).await;

    let last = format!("acct-stall-{}", N - 1);
    let mut follower = env
        .watch(WatchEventsRequest {
            account_id: last.clone(),
            ..Default::default()
        })
        .await;
    let events = take(&mut follower, 1).await;
    assert_eq!(events[0].account_id, last, "{events:?}");
    drop(stalled);
    env.stop().await;
}
