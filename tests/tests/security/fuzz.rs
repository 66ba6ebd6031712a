//! Arbitrary input (proptest) gets only documented statuses from identity-check and registration.

use super::*;

// ---------------------------------------------------------------------------------------------
// Property-based hostile input

mod hostile {
    use super::*;
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestCaseError, TestRunner};

    pub const CASES: u32 = 64;

    /// The statuses the contracts document for these RPCs.
    pub fn documented(code: Code) -> bool {
        matches!(
            code,
            Code::Ok
                | Code::InvalidArgument
                | Code::FailedPrecondition
                | Code::NotFound
                | Code::AlreadyExists
                | Code::Aborted
                | Code::PermissionDenied
        )
    }

    /// `PROPTEST_CASES` overrides the per-RPC case count for a longer run.
    pub fn runner() -> TestRunner {
        let cases = std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(CASES);
        TestRunner::new(Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        })
    }

    pub fn check(rpc: &str, result: Result<(), tonic::Status>) -> Result<(), TestCaseError> {
        let code = result
            .err()
            .map(|s| (s.code(), s))
            .map_or(Code::Ok, |(c, s)| {
                if !documented(c) {
                    eprintln!("{rpc}: undocumented status {s:?}");
                }
                c
            });
        if std::env::var_os("KG_SECURITY_TALLY").is_some() {
            eprintln!("CODE {rpc} {code:?}");
        }
        prop_assert!(documented(code), "{} answered {:?}", rpc, code);
        Ok(())
    }

    /// Text of every kind: empty, printable, control characters and NUL, any Unicode, long.
    pub fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            "[a-zA-Z0-9 ._@+-]{1,24}",
            "[\\x00-\\x7f]{0,40}",
            "\\PC{0,40}",
            any::<String>(),
            "[a-z]{200,300}",
        ]
    }

    pub fn id() -> impl Strategy<Value = String> {
        prop_oneof![3 => "acct-[a-z0-9]{1,8}", 1 => text()]
    }

    pub fn email() -> impl Strategy<Value = String> {
        prop_oneof!["[a-z.]{1,10}@[a-z]{1,8}\\.(com|cn|io)", text()]
    }

    pub fn mobile() -> impl Strategy<Value = String> {
        prop_oneof!["\\+?[0-9 ()-]{0,20}", text()]
    }

    /// Website URLs that can never make the service connect anywhere: no scheme (so no URL),
    /// other schemes, or IP-literal / single-label hosts the SSRF guard refuses before any
    /// lookup. (The services run without the test allowlist.)
    pub fn website() -> impl Strategy<Value = String> {
        let host = prop_oneof![
            "127\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}",
            "10\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}",
            "192\\.168\\.[0-9]{1,3}\\.[0-9]{1,3}",
            Just("169.254.169.254".to_string()),
            Just("[::1]".to_string()),
            Just("[::ffff:127.0.0.1]".to_string()),
            Just("[fe80::1]".to_string()),
            Just("0.0.0.0".to_string()),
            Just("2130706433".to_string()),
            Just("0x7f.1".to_string()),
            Just("localhost".to_string()),
            Just("metadata".to_string()),
        ];
        prop_oneof![
            Just(String::new()),
            "[a-zA-Z0-9 ._~%-]{1,40}",
            (
                prop_oneof![Just("http"), Just("https"), Just("HTTP")],
                host,
                "(:[0-9]{1,5})?",
                "[a-zA-Z0-9/._%?=&#-]{0,30}"
            )
                .prop_map(|(scheme, host, port, path)| format!("{scheme}://{host}{port}/{path}")),
            "(ftp|file|javascript|data|gopher|ws):[a-zA-Z0-9/._-]{0,30}",
            Just("http://user:pass@10.0.0.1/".to_string()),
        ]
    }

    pub fn logo() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            Just(Vec::new()),
            proptest::collection::vec(any::<u8>(), 0..2048),
            Just(fixtures::png_logo()),
            // a PNG header that claims a huge image
            Just({
                let mut png = fixtures::png_logo();
                png.truncate(64);
                png[16..24].copy_from_slice(&[0, 0, 0x9c, 0x40, 0, 0, 0x9c, 0x40]);
                png
            }),
        ]
    }

    pub fn entity() -> impl Strategy<Value = Option<CompanyEntity>> {
        proptest::option::of(
            (
                prop_oneof![Just("CN".to_string()), "[A-Z]{2}", text()],
                prop_oneof![
                    (0u64..1000).prop_map(fixtures::uscc),
                    "[0-9A-Z]{18}",
                    text()
                ],
            )
                .prop_map(|(country, registration_number)| CompanyEntity {
                    country,
                    registration_number,
                }),
        )
    }

    pub fn address() -> impl Strategy<Value = Option<PostalAddress>> {
        proptest::option::of(
            (
                text(),
                text(),
                text(),
                proptest::collection::vec(text(), 0..3),
            )
                .prop_map(|(region_code, postal_code, locality, address_lines)| {
                    PostalAddress {
                        region_code,
                        postal_code,
                        locality,
                        address_lines,
                        ..Default::default()
                    }
                }),
        )
    }

    /// Mostly a valid account with one or two fields made hostile (so that the write paths run
    /// with odd but accepted values), sometimes everything arbitrary.
    pub fn account() -> impl Strategy<Value = Account> {
        prop_oneof![
            1 => arbitrary_account(),
            2 => (
                "acct-[a-z0-9]{1,6}",
                proptest::collection::vec((0usize..11, text(), any::<i32>()), 1..3)
            )
                .prop_map(|(id, edits)| {
                    let mut a = fixtures::eligible_account(&id);
                    for (field, value, number) in edits {
                        match field {
                            0 => a.email = value,
                            1 => a.mobile = value,
                            2 => a.locale = value,
                            3 => a.verified_enterprise_name = value,
                            4 => {
                                a.iam_sub_user = true;
                                a.parent_account_id = value;
                            }
                            5 => {
                                if let Some(addr) = a.registered_address.as_mut() {
                                    addr.address_lines = vec![value];
                                }
                            }
                            6 => a.verification_type = number,
                            7 => {
                                a.verified_entity = Some(CompanyEntity {
                                    country: "CN".into(),
                                    registration_number: value,
                                })
                            }
                            8 => a.name = value,
                            9 => a.account_id = value,
                            _ => {
                                if let Some(addr) = a.registered_address.as_mut() {
                                    addr.postal_code = value;
                                }
                            }
                        }
                    }
                    a
                }),
        ]
    }

    prop_compose! {
        pub fn arbitrary_account()(
            account_id in id(),
            name in text(),
            flags in proptest::collection::vec(any::<bool>(), 7),
            verification_type in prop_oneof![0i32..4, any::<i32>()],
            verified_enterprise_name in text(),
            parent_account_id in text(),
            email in email(),
            mobile in mobile(),
            locale in text(),
            registered_address in address(),
            verified_entity in entity(),
        ) -> Account {
            Account {
                name,
                account_id,
                enterprise_verified: flags[0],
                verification_type,
                verified_enterprise_name,
                registered_address,
                cloud_services_enabled: flags[1],
                csp_program_member: flags[2],
                distribution_partner: flags[3],
                iam_sub_user: flags[4],
                parent_account_id,
                partner_administrator: flags[5],
                email,
                mobile,
                locale,
                verified_entity,
                ..Default::default()
            }
        }
    }

    prop_compose! {
        pub fn profile()(
            logo in logo(),
            logo_content_type in prop_oneof![Just("image/png".to_string()), text()],
            website_url in website(),
            introduction in text(),
            contact in proptest::option::of((text(), email(), mobile())),
            customer_service_email in email(),
            customer_service_phone in mobile(),
            registered_address in address(),
            industry in text(),
            product_categories in proptest::collection::vec(text(), 0..4),
        ) -> SellerProfile {
            SellerProfile {
                logo,
                logo_content_type,
                website_url,
                introduction,
                contact: contact.map(|(name, email, mobile)| Contact { name, email, mobile }),
                customer_service_email,
                customer_service_phone,
                registered_address,
                industry,
                product_categories,
                ..Default::default()
            }
        }
    }

    /// Who calls: an operator, or an applicant (one of the known accounts or any id).
    pub fn caller() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(bearer("ops-1", Role::Operator)),
            Just(bearer("acct-p1", Role::Applicant)),
            "[a-z0-9-]{1,12}".prop_map(|s| bearer(&s, Role::Applicant)),
        ]
    }
}

/// Runs `body` on a thread with a large stack: deep generated values and the services' futures
/// in a debug build outgrow the test thread's 2 MiB. The thread lives as long as the test, so
/// what it starts lives as long too.
fn on_big_stack(body: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .name("proptest".into())
        .stack_size(64 * 1024 * 1024)
        .spawn(body)
        .unwrap()
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
}

/// A multi-thread runtime for a plain `#[test]` that drives proptest.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn identity_check_answers_arbitrary_input_with_documented_statuses() {
    log_capture();
    on_big_stack(identity_check_proptest);
}

fn identity_check_proptest() {
    use hostile::*;
    use proptest::prelude::*;
    let rt = runtime();
    let (identity, _db) = rt.block_on(async {
        let db = mesh::fresh_db().await.unwrap();
        (
            start_identity(identity_config(secured(&db.url), false)).await,
            db,
        )
    });
    let channel = rt.block_on(identity.channel()).unwrap();
    let client = IdentityCheckServiceClient::new(channel);
    let operator = bearer("ops-1", Role::Operator);

    let call = |rpc: &str,
                fut: std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<(), tonic::Status>> + Send>,
    >| { check(rpc, rt.block_on(fut)) };

    runner()
        .run(
            &(any::<Option<()>>(), account(), text()),
            |(some, account, request_id)| {
                let mut c = client.clone();
                let op = operator.clone();
                call(
                    "UpsertAccount",
                    Box::pin(async move {
                        c.upsert_account(req(
                            UpsertAccountRequest {
                                request_id,
                                account: some.map(|_| account),
                            },
                            &op,
                        ))
                        .await
                        .map(drop)
                    }),
                )
            },
        )
        .unwrap();
    runner()
        .run(
            &(proptest::collection::vec(account(), 0..6), text()),
            |(accounts, request_id)| {
                let mut c = client.clone();
                let op = operator.clone();
                call(
                    "ImportAccounts",
                    Box::pin(async move {
                        c.import_accounts(req(
                            ImportAccountsRequest {
                                request_id,
                                accounts,
                            },
                            &op,
                        ))
                        .await
                        .map(drop)
                    }),
                )
            },
        )
        .unwrap();
    runner()
        .run(&(caller(), id()), |(who, account_id)| {
            let mut c = client.clone();
            call(
                "CheckEligibility",
                Box::pin(async move {
                    c.check_eligibility(req(CheckEligibilityRequest { account_id }, &who))
                        .await
                        .map(drop)
                }),
            )
        })
        .unwrap();
    runner()
        .run(
            &(
                caller(),
                entity(),
                proptest::option::of(profile()),
                text(),
                any::<bool>(),
            ),
            |(who, entity, profile, logo_file_name, require_complete)| {
                let mut c = client.clone();
                call(
                    "CheckMaterials",
                    Box::pin(async move {
                        c.check_materials(req(
                            CheckMaterialsRequest {
                                entity,
                                profile,
                                logo_file_name,
                                require_complete,
                                ..Default::default()
                            },
                            &who,
                        ))
                        .await
                        .map(drop)
                    }),
                )
            },
        )
        .unwrap();
    runner()
        .run(&(caller(), entity()), |(who, entity)| {
            let mut c = client.clone();
            call(
                "CheckRegistrationNumber",
                Box::pin(async move {
                    c.check_registration_number(req(
                        CheckRegistrationNumberRequest { entity },
                        &who,
                    ))
                    .await
                    .map(drop)
                }),
            )
        })
        .unwrap();
    runner()
        .run(&(caller(), website()), |(who, website_url)| {
            let mut c = client.clone();
            call(
                "CheckWebsite",
                Box::pin(async move {
                    c.check_website(req(CheckWebsiteRequest { website_url }, &who))
                        .await
                        .map(drop)
                }),
            )
        })
        .unwrap();
    runner()
        .run(
            &(caller(), logo(), text(), text()),
            |(who, logo, content_type, file_name)| {
                let mut c = client.clone();
                call(
                    "CheckLogo",
                    Box::pin(async move {
                        c.check_logo(req(
                            CheckLogoRequest {
                                logo,
                                content_type,
                                file_name,
                            },
                            &who,
                        ))
                        .await
                        .map(drop)
                    }),
                )
            },
        )
        .unwrap();
    rt.block_on(identity.stop()).unwrap();
}

#[test]
fn registration_answers_arbitrary_input_with_documented_statuses() {
    log_capture();
    on_big_stack(registration_proptest);
}

fn registration_proptest() {
    use hostile::*;
    use proptest::prelude::*;
    let rt = runtime();
    // The website check may reach 127.0.0.1 (the fixture site; other loopback ports refuse),
    // nothing else: every generated URL is loopback, private, malformed or not http(s).
    let (identity, registration, site_server, _dbs) = rt.block_on(async {
        let identity_db = mesh::fresh_db().await.unwrap();
        let registration_db = mesh::fresh_db().await.unwrap();
        let identity = start_identity(identity_config(secured(&identity_db.url), true)).await;
        let mut config = mesh::registration_config(&registration_db.url, &identity.url(), None);
        config.common = secured(&registration_db.url);
        let registration = mesh::start_registration(config).await.unwrap();
        let mut idc = IdentityCheckServiceClient::new(identity.channel().await.unwrap());
        // real, eligible accounts, so that submissions get past eligibility
        idc.import_accounts(req(
            ImportAccountsRequest {
                request_id: "seed".into(),
                accounts: (1..=8)
                    .map(|i| fixtures::eligible_account(&format!("acct-p{i}")))
                    .collect(),
            },
            &bearer("ops-1", Role::Operator),
        ))
        .await
        .unwrap();
        let website = Website::start().await.unwrap();
        (
            identity,
            registration,
            website,
            (identity_db, registration_db),
        )
    });
    let client = RegistrationServiceClient::new(rt.block_on(registration.channel()).unwrap());
    let applicant = || {
        prop_oneof![
            (1..=8u8).prop_map(|i| format!("acct-p{i}")),
            "[a-z0-9-]{1,12}",
        ]
    };
    let agreement = proptest::option::of(prop_oneof![
        Just(fixtures::agreement()),
        (text(), text()).prop_map(|(agreement_version, text_sha256)| {
            kg_proto::common::AgreementAcceptance {
                agreement_version,
                text_sha256,
                ..Default::default()
            }
        }),
    ]);
    let arbitrary = (
        applicant(),
        prop_oneof![Just(String::new()), id()],
        text(),
        entity(),
        proptest::option::of(profile()),
        agreement,
        text(),
        text(),
    )
        .prop_map(
            |(
                who,
                account_id,
                request_id,
                entity,
                profile,
                agreement,
                company_name,
                logo_file_name,
            )| {
                let request = SubmitApplicationRequest {
                    request_id,
                    account_id,
                    application: Some(Application {
                        company_name,
                        entity,
                        profile,
                        agreement,
                        ..Default::default()
                    }),
                    logo_file_name,
                };
                (who, request)
            },
        );
    // a complete, valid submission of one of the real accounts with up to two fields made
    // hostile; entities repeat across accounts (ALREADY_EXISTS) and accounts apply twice
    let site = site_server.url("/en");
    let edited = (
        1..=8u8,
        0u64..24,
        proptest::collection::vec((0usize..17, text(), logo(), website()), 0..3),
    )
        .prop_map(move |(i, seed, edits)| {
            let who = format!("acct-p{i}");
            let mut request = fixtures::submission("", seed, &site);
            let app = request.application.as_mut().unwrap();
            let profile = app.profile.as_mut().unwrap();
            for (field, value, logo, url) in edits {
                match field {
                    0 => app.company_name = value,
                    1 => app.entity.as_mut().unwrap().country = value,
                    2 => app.entity.as_mut().unwrap().registration_number = value,
                    3 => profile.introduction = value,
                    4 => profile.contact.as_mut().unwrap().email = value,
                    5 => profile.contact.as_mut().unwrap().mobile = value,
                    6 => profile.contact.as_mut().unwrap().name = value,
                    7 => profile.customer_service_email = value,
                    8 => profile.customer_service_phone = value,
                    9 => profile.logo = logo,
                    10 => profile.logo_content_type = value,
                    11 => app.agreement.as_mut().unwrap().agreement_version = value,
                    12 => request.request_id = value,
                    13 => request.logo_file_name = value,
                    14 => profile.website_url = url,
                    15 => profile.industry = value,
                    _ => profile.product_categories = vec![value],
                }
            }
            (who, request)
        });

    runner()
        .run(
            &prop_oneof![1 => arbitrary, 2 => edited],
            |(who, request)| {
                let mut c = client.clone();
                let fut = async move {
                    c.submit_application(req(request, &bearer(&who, Role::Applicant)))
                        .await
                        .map(drop)
                };
                check("SubmitApplication", rt.block_on(fut))
            },
        )
        .unwrap();
    let existing: Vec<String> = rt.block_on(async {
        client
            .clone()
            .list_applications(req(
                ListApplicationsRequest {
                    page_size: 100,
                    ..Default::default()
                },
                &bearer("ops-1", Role::Operator),
            ))
            .await
            .unwrap()
            .into_inner()
            .applications
            .into_iter()
            .map(|a| a.name)
            .collect()
    });
    assert!(
        !existing.is_empty(),
        "some generated submissions are accepted (the write path ran)"
    );
    let name = prop_oneof![
        1 => text(),
        1 => Just(format!("applications/{}", uuid::Uuid::new_v4())),
        1 => "applications/[a-z0-9-]{0,40}",
        3 => proptest::sample::select(existing),
    ];
    runner()
        .run(
            &(
                prop_oneof![
                    2 => applicant().prop_map(|s| bearer(&s, Role::Applicant)),
                    1 => Just(bearer("ops-1", Role::Operator)),
                ],
                name,
                text(),
                text(),
                text(),
            ),
            |(who, name, request_id, reason, etag)| {
                let mut c = client.clone();
                let fut = async move {
                    c.withdraw_application(req(
                        WithdrawApplicationRequest {
                            request_id,
                            name,
                            reason,
                            etag,
                        },
                        &who,
                    ))
                    .await
                    .map(drop)
                };
                check("WithdrawApplication", rt.block_on(fut))
            },
        )
        .unwrap();
    rt.block_on(async {
        registration.stop().await.unwrap();
        identity.stop().await.unwrap();
    });
}

// ---------------------------------------------------------------------------------------------
// Mutual TLS
