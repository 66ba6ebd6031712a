//! Logs show emails, mobiles and tokens only masked.

use super::*;

/// The services run on this test's thread (current-thread runtime), so their logs are captured.
#[tokio::test(flavor = "current_thread")]
async fn logs_show_emails_mobiles_and_tokens_only_masked() {
    let capture = log_capture();
    CAPTURING.with(|c| c.set(true));

    let email = "li.wei@example.com";
    let mobile = "+8613800138000";
    let mut env = Env::start().await;
    let operator_token = authenticator().mint("ops-1", Role::Operator, Duration::from_secs(600));
    let applicant_token =
        authenticator().mint("acct-log", Role::Applicant, Duration::from_secs(600));
    let forged_token = signed(
        Algorithm::HS256,
        None,
        &EncodingKey::from_secret(b"forged-forged-forged-forged-forged"),
        &claims("ops-1", "operator"),
    );

    // account directory changes log the account's email and mobile (masked)
    let mut account = fixtures::eligible_account("acct-log");
    account.email = email.into();
    account.mobile = mobile.into();
    env.idc
        .upsert_account(req(
            UpsertAccountRequest {
                request_id: uuid::Uuid::new_v4().to_string(),
                account: Some(account.clone()),
            },
            &format!("Bearer {operator_token}"),
        ))
        .await
        .unwrap();
    account.account_id = "acct-log-2".into();
    env.idc
        .import_accounts(req(
            ImportAccountsRequest {
                request_id: uuid::Uuid::new_v4().to_string(),
                accounts: vec![account],
            },
            &format!("Bearer {operator_token}"),
        ))
        .await
        .unwrap();
    // a submission carrying the same contact data, through both services
    let mut submission = fixtures::submission("acct-log", 880, &env.website.url("/en"));
    if let Some(profile) = submission
        .application
        .as_mut()
        .and_then(|a| a.profile.as_mut())
    {
        profile.contact = Some(Contact {
            name: "Li Wei".into(),
            email: email.into(),
            mobile: mobile.into(),
        });
    }
    env.reg
        .submit_application(req(submission, &format!("Bearer {applicant_token}")))
        .await
        .unwrap();
    // refusals are logged with the token's fingerprint
    let status = env
        .idc
        .import_accounts(req(
            ImportAccountsRequest::default(),
            &format!("Bearer {applicant_token}"),
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    let status = env
        .idc
        .get_account(req(
            GetAccountRequest {
                name: "accounts/acct-log".into(),
            },
            &format!("Bearer {forged_token}"),
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    // an internal error whose cause (a driver's message) quotes personal data and a token
    let _ = kg_runtime::ApiError::internal(
        "test.koogallery.io",
        &format!(
            "duplicate key value (email)=({email}) mobile {mobile} while handling Bearer {operator_token}"
        ),
    );
    env.stop().await;
    CAPTURING.with(|c| c.set(false));

    let logs = capture.text();
    if let Some(path) = std::env::var_os("KG_SECURITY_LOG_DUMP") {
        std::fs::write(path, &logs).unwrap();
    }
    assert!(
        logs.len() > 10_000,
        "the capture saw the services' logs ({} bytes)",
        logs.len()
    );
    for raw in [
        email,
        mobile,
        "+86 138 0013 8000",
        operator_token.as_str(),
        applicant_token.as_str(),
        forged_token.as_str(),
        SECRET,
    ] {
        if let Some(at) = logs.find(raw) {
            let line_start = logs[..at].rfind('\n').map_or(0, |i| i + 1);
            let line_end = logs[at..].find('\n').map_or(logs.len(), |i| at + i);
            panic!(
                "{raw:?} appears in the logs:\n{}",
                &logs[line_start..line_end]
            );
        }
    }
    // the signatures alone would identify the tokens too
    for token in [&operator_token, &applicant_token, &forged_token] {
        let signature = token.rsplit('.').next().unwrap();
        assert!(
            !logs.contains(signature),
            "a token signature is in the logs"
        );
    }
    assert!(
        logs.contains("email=l***@example.com"),
        "the masked email is logged"
    );
    assert!(
        logs.contains("mobile=+86*******8000"),
        "the masked mobile is logged"
    );
    for token in [&applicant_token, &forged_token] {
        let fingerprint = kg_runtime::redact::token(token);
        assert!(
            logs.contains(&fingerprint),
            "refusals log the token fingerprint {fingerprint}"
        );
    }
    let _ = std::io::stderr().flush();
}
