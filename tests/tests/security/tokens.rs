//! Bearer tokens: bad credentials, wrong roles and other accounts refused with nothing changed;
//! JWKS keys that verify and rotate by kid.

use super::*;

#[tokio::test]
async fn bad_credentials_wrong_roles_and_other_accounts_are_refused_and_change_nothing() {
    log_capture();
    let mut env = Env::start().await;
    env.import(vec![
        fixtures::eligible_account("acct-a"),
        fixtures::eligible_account("acct-b"),
    ])
    .await;
    let mine = env.submit_as("acct-a", 801).await;
    let before = env.snapshot("acct-a").await;

    // 1. Credentials: every mutating RPC answers UNAUTHENTICATED, whatever the token claims.
    let other_secret = EncodingKey::from_secret(b"not-the-secret-not-the-secret-xx");
    let mut expired = claims("ops-1", "operator");
    expired["exp"] = (now() - 3600).into();
    expired["nbf"] = (now() - 7200).into();
    let mut future = claims("ops-1", "operator");
    future["nbf"] = (now() + 3600).into();
    let mut wrong_aud = claims("ops-1", "operator");
    wrong_aud["aud"] = "somewhere-else".into();
    let mut wrong_iss = claims("ops-1", "operator");
    wrong_iss["iss"] = "https://idp.example".into();
    let mut no_role = claims("ops-1", "operator");
    no_role.as_object_mut().unwrap().remove("role");
    // an applicant's token whose payload is swapped for an operator's, signature kept
    let applicant = authenticator().mint("acct-b", Role::Applicant, Duration::from_secs(600));
    let forged_payload = hs256(&claims("acct-b", "operator"));
    let tampered = {
        let a: Vec<&str> = applicant.split('.').collect();
        let f: Vec<&str> = forged_payload.split('.').collect();
        format!("{}.{}.{}", a[0], f[1], a[2])
    };
    let bad: Vec<(&str, String, &str)> = vec![
        ("no token", String::new(), "UNAUTHENTICATED"),
        (
            "not a bearer token",
            "Basic b3BzOnBhc3N3b3Jk".into(),
            "UNAUTHENTICATED",
        ),
        ("empty bearer", "Bearer".into(), "UNAUTHENTICATED"),
        (
            "expired",
            format!("Bearer {}", hs256(&expired)),
            "TOKEN_EXPIRED",
        ),
        (
            "wrong signature",
            format!(
                "Bearer {}",
                signed(
                    Algorithm::HS256,
                    None,
                    &other_secret,
                    &claims("ops-1", "operator")
                )
            ),
            "TOKEN_INVALID",
        ),
        (
            "alg none",
            format!("Bearer {}", alg_none(&claims("ops-1", "operator"), None)),
            "TOKEN_INVALID",
        ),
        (
            "wrong audience",
            format!("Bearer {}", hs256(&wrong_aud)),
            "TOKEN_INVALID",
        ),
        (
            "wrong issuer",
            format!("Bearer {}", hs256(&wrong_iss)),
            "TOKEN_INVALID",
        ),
        (
            "not yet valid",
            format!("Bearer {}", hs256(&future)),
            "TOKEN_INVALID",
        ),
        (
            "no role",
            format!("Bearer {}", hs256(&no_role)),
            "TOKEN_INVALID",
        ),
        ("garbage", "Bearer not.a.jwt".into(), "TOKEN_INVALID"),
        (
            "tampered payload",
            format!("Bearer {tampered}"),
            "TOKEN_INVALID",
        ),
    ];
    for (case, authorization, want) in &bad {
        for rpc in RPCS {
            let status = call(&mut env, rpc, authorization, &mine.name)
                .await
                .expect_err(rpc);
            assert_eq!(
                status.code(),
                Code::Unauthenticated,
                "{case}: {rpc}: {status:?}"
            );
            assert_eq!(reason(&status), *want, "{case}: {rpc}");
        }
    }

    // 2. Roles: valid tokens, roles the matrix does not list for the RPC.
    let applicant_a = bearer("acct-a", Role::Applicant);
    let reviewer = bearer("rev-1", Role::Reviewer);
    let operator = bearer("ops-1", Role::Operator);
    let wrong_roles: [(&str, &[&str]); 3] = [
        // applicants do not administer accounts, nor decide, not even on their own application
        (
            applicant_a.as_str(),
            &["UpsertAccount", "ImportAccounts", "ApplyReviewDecision"],
        ),
        // reviewers review: they do not apply, withdraw, administer or apply decisions directly
        (
            reviewer.as_str(),
            &[
                "UpsertAccount",
                "ImportAccounts",
                "SubmitApplication",
                "WithdrawApplication",
                "ApplyReviewDecision",
            ],
        ),
        // decisions come from the review service only
        (
            operator.as_str(),
            &["ApplyReviewDecision", "SubmitApplication"],
        ),
    ];
    for (who, rpcs) in wrong_roles {
        for rpc in rpcs {
            let status = call(&mut env, rpc, who, &mine.name).await.expect_err(rpc);
            assert_eq!(status.code(), Code::PermissionDenied, "{rpc}: {status:?}");
            assert_eq!(reason(&status), "ROLE_NOT_ALLOWED", "{rpc}");
        }
    }

    // 3. Ownership: acct-b and acct-a's application, account and eligibility.
    let applicant_b = bearer("acct-b", Role::Applicant);
    let missing = format!("applications/{}", uuid::Uuid::new_v4());
    let get = |name: &str, who: &str| {
        req(
            GetApplicationRequest {
                name: name.to_string(),
                ..Default::default()
            },
            who,
        )
    };
    let theirs = env
        .reg
        .get_application(get(&mine.name, &applicant_b))
        .await
        .unwrap_err();
    let nobody = env
        .reg
        .get_application(get(&missing, &applicant_b))
        .await
        .unwrap_err();
    assert_eq!(theirs.code(), Code::NotFound, "{theirs:?}");
    assert_eq!(
        (nobody.code(), reason(&nobody)),
        (theirs.code(), reason(&theirs)),
        "another account's application looks exactly like a missing one"
    );
    let withdraw = |name: &str| WithdrawApplicationRequest {
        request_id: uuid::Uuid::new_v4().to_string(),
        name: name.to_string(),
        reason: "not mine".into(),
        ..Default::default()
    };
    let theirs_w = env
        .reg
        .withdraw_application(req(withdraw(&mine.name), &applicant_b))
        .await
        .unwrap_err();
    let nobody_w = env
        .reg
        .withdraw_application(req(withdraw(&missing), &applicant_b))
        .await
        .unwrap_err();
    assert_eq!(theirs_w.code(), Code::NotFound, "{theirs_w:?}");
    assert_eq!(
        (nobody_w.code(), reason(&nobody_w)),
        (theirs_w.code(), reason(&theirs_w))
    );
    assert_eq!(
        reason(&theirs_w),
        reason(&theirs),
        "Get and Withdraw answer alike"
    );
    let status = env
        .reg
        .submit_application(req(
            fixtures::submission("acct-a", 802, &env.website.url("/en")),
            &applicant_b,
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    let status = env
        .reg
        .list_applications(req(
            ListApplicationsRequest {
                account_id: "acct-a".into(),
                ..Default::default()
            },
            &applicant_b,
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    let own = env
        .reg
        .list_applications(req(ListApplicationsRequest::default(), &applicant_b))
        .await
        .unwrap()
        .into_inner();
    assert!(
        own.applications.is_empty(),
        "acct-b sees none of acct-a's applications"
    );
    let status = env
        .idc
        .get_account(req(
            GetAccountRequest {
                name: "accounts/acct-a".into(),
            },
            &applicant_b,
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    let status = env
        .idc
        .check_eligibility(req(
            CheckEligibilityRequest {
                account_id: "acct-a".into(),
            },
            &applicant_b,
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");

    // The owner still sees it, unchanged: nothing above wrote anything.
    let still = env
        .reg
        .get_application(get(&mine.name, &applicant_a))
        .await
        .unwrap()
        .into_inner()
        .application
        .unwrap();
    assert_eq!(still.state, ApplicationState::Submitted as i32);
    let after = env.snapshot("acct-a").await;
    assert_eq!(after, before, "the refused calls changed nothing");
    env.stop().await;
}

/// A P-256 key pair, its PEM (PKCS#8) and its public JWK under `kid`.
fn es256_key(kid: &str) -> (EncodingKey, String, Jwk, String) {
    let pair = rcgen::KeyPair::generate().unwrap();
    let pem = pair.serialize_pem();
    let key = EncodingKey::from_ec_pem(pem.as_bytes()).unwrap();
    let mut jwk = Jwk::from_encoding_key(&key, Algorithm::ES256).unwrap();
    jwk.common.key_id = Some(kid.to_string());
    (key, pem, jwk, pair.public_key_pem())
}

fn write_jwks(path: &Path, keys: &[&Jwk]) {
    let set = JwkSet {
        keys: keys.iter().map(|k| (*k).clone()).collect(),
    };
    std::fs::write(path, serde_json::to_vec_pretty(&set).unwrap()).unwrap();
}

#[tokio::test]
async fn jwks_keys_verify_and_rotate_by_kid() {
    log_capture();
    let dir = tempfile::tempdir().unwrap();
    let jwks = dir.path().join("jwks.json");
    let (idp_old, _, idp_old_jwk, _) = es256_key("idp-2025");
    let (idp_new, _, idp_new_jwk, idp_new_public) = es256_key("idp-2026");
    let (_, svc_pem, svc_jwk, _) = es256_key("mesh-svc-1");
    let svc_key_file = dir.path().join("svc-key.pem");
    std::fs::write(&svc_key_file, &svc_pem).unwrap();
    write_jwks(&jwks, &[&idp_old_jwk, &svc_jwk]);

    // No HS256 secret anywhere: the identity provider's keys verify callers, and registration
    // signs its service tokens with its own key, which identity-check finds in the same JWKS.
    let jwks_only = |db: &str| {
        let mut common = mesh::common(db);
        common.jwt_jwks_file = Some(jwks.clone());
        common
    };
    let identity_db = mesh::fresh_db().await.unwrap();
    let registration_db = mesh::fresh_db().await.unwrap();
    let identity = start_identity(identity_config(jwks_only(&identity_db.url), true)).await;
    let mut config = mesh::registration_config(&registration_db.url, &identity.url(), None);
    config.common = jwks_only(&registration_db.url);
    config.common.jwt_signing_key_file = Some(svc_key_file);
    config.common.jwt_signing_kid = Some("mesh-svc-1".into());
    let registration = mesh::start_registration(config).await.unwrap();
    let website = Website::start().await.unwrap();
    let mut idc = IdentityCheckServiceClient::new(identity.channel().await.unwrap());
    let mut reg = RegistrationServiceClient::new(registration.channel().await.unwrap());

    let token = |key: &EncodingKey, kid: &str, sub: &str, role: &str| {
        format!(
            "Bearer {}",
            signed(Algorithm::ES256, Some(kid), key, &claims(sub, role))
        )
    };
    let old_operator = token(&idp_old, "idp-2025", "ops-1", "operator");
    let old_applicant = token(&idp_old, "idp-2025", "acct-j", "applicant");
    idc.import_accounts(req(
        ImportAccountsRequest {
            request_id: uuid::Uuid::new_v4().to_string(),
            accounts: vec![fixtures::eligible_account("acct-j")],
        },
        &old_operator,
    ))
    .await
    .expect("an ES256 token of a JWKS key verifies");
    // registration → identity-check with registration's own ES256 service token
    let application = reg
        .submit_application(req(
            fixtures::submission("acct-j", 850, &website.url("/en")),
            &old_applicant,
        ))
        .await
        .expect("the submission (and registration's service token) verify")
        .into_inner()
        .application
        .unwrap();
    let status = idc
        .get_account(req(
            GetAccountRequest {
                name: "accounts/acct-j".into(),
            },
            &token(&idp_new, "idp-2026", "ops-1", "operator"),
        ))
        .await
        .unwrap_err();
    assert_eq!(
        status.code(),
        Code::Unauthenticated,
        "a key not yet in the JWKS: {status:?}"
    );

    // Rotate: the new key in, the old one out. The services re-read the file on the kid miss.
    write_jwks(&jwks, &[&idp_new_jwk, &svc_jwk]);
    tokio::time::sleep(kg_runtime::auth::JWKS_MISS_RELOAD_EVERY + Duration::from_millis(200)).await;
    let new_operator = token(&idp_new, "idp-2026", "ops-1", "operator");
    let new_applicant = token(&idp_new, "idp-2026", "acct-j", "applicant");
    idc.get_account(req(
        GetAccountRequest {
            name: "accounts/acct-j".into(),
        },
        &new_operator,
    ))
    .await
    .expect("a token of the new key verifies after the rotation");
    reg.get_application(req(
        GetApplicationRequest {
            name: application.name.clone(),
            ..Default::default()
        },
        &new_applicant,
    ))
    .await
    .expect("on every service");
    for (what, authorization) in [
        ("old key", old_operator.clone()),
        ("old key", old_applicant.clone()),
        // algorithm confusion: HS256 "signed" with the new key's public key as the secret
        (
            "HS256 with the public key",
            format!(
                "Bearer {}",
                signed(
                    Algorithm::HS256,
                    Some("idp-2026"),
                    &EncodingKey::from_secret(idp_new_public.as_bytes()),
                    &claims("ops-1", "operator"),
                )
            ),
        ),
        (
            "alg none with a known kid",
            format!(
                "Bearer {}",
                alg_none(&claims("ops-1", "operator"), Some("idp-2026"))
            ),
        ),
        (
            "the right key, another kid",
            token(&idp_new, "idp-2025", "ops-1", "operator"),
        ),
    ] {
        let status = idc
            .get_account(req(
                GetAccountRequest {
                    name: "accounts/acct-j".into(),
                },
                &authorization,
            ))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{what}: {status:?}");
        let status = reg
            .get_application(req(
                GetApplicationRequest {
                    name: application.name.clone(),
                    ..Default::default()
                },
                &authorization,
            ))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{what}: {status:?}");
    }
    // registration's service token still verifies (its key stayed): a second application
    // from another account goes through identity-check.
    idc.import_accounts(req(
        ImportAccountsRequest {
            request_id: uuid::Uuid::new_v4().to_string(),
            accounts: vec![fixtures::eligible_account("acct-k")],
        },
        &new_operator,
    ))
    .await
    .unwrap();
    reg.submit_application(req(
        fixtures::submission("acct-k", 851, &website.url("/en")),
        &token(&idp_new, "idp-2026", "acct-k", "applicant"),
    ))
    .await
    .expect("service tokens keep working across the rotation");

    registration.stop().await.unwrap();
    identity.stop().await.unwrap();
}
