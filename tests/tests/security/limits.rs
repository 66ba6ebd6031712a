//! Rate limits and deadlines.

use super::*;

#[tokio::test]
async fn a_caller_over_its_rate_gets_resource_exhausted_with_retry_info() {
    log_capture();
    use tonic_types::StatusExt as _;
    let db = mesh::fresh_db().await.unwrap();
    let mut common = secured(&db.url);
    common.rate_limit_per_sec = 1.0;
    common.rate_limit_burst = 3;
    let identity = start_identity(identity_config(common, false)).await;
    let mut idc = IdentityCheckServiceClient::new(identity.channel().await.unwrap());
    let check = |who: &str| {
        req(
            CheckRegistrationNumberRequest {
                entity: Some(fixtures::entity(1)),
            },
            who,
        )
    };
    let greedy = bearer("acct-greedy", Role::Applicant);
    for _ in 0..3 {
        idc.check_registration_number(check(&greedy)).await.unwrap();
    }
    let status = idc
        .check_registration_number(check(&greedy))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_eq!(reason(&status), "RATE_LIMITED");
    let delay = status
        .get_details_retry_info()
        .and_then(|r| r.retry_delay)
        .expect("RetryInfo");
    assert!(
        delay > Duration::ZERO && delay <= Duration::from_secs(1),
        "{delay:?}"
    );
    // others have their own buckets; services and health are not limited
    idc.check_registration_number(check(&bearer("acct-other", Role::Applicant)))
        .await
        .unwrap();
    for _ in 0..10 {
        idc.check_registration_number(check(&bearer("registration", Role::Service)))
            .await
            .unwrap();
        identity.health().await.unwrap();
    }
    // the bucket refills
    tokio::time::sleep(delay + Duration::from_millis(50)).await;
    idc.check_registration_number(check(&greedy)).await.unwrap();
    identity.stop().await.unwrap();
}

#[tokio::test]
async fn the_server_ends_an_rpc_at_its_deadline() {
    log_capture();
    // a "website" that accepts connections and never answers
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let db = mesh::fresh_db().await.unwrap();
    let mut common = secured(&db.url);
    common.request_timeout_secs = 1;
    let identity = start_identity(identity_config(common, true)).await;
    let mut idc = IdentityCheckServiceClient::new(identity.channel().await.unwrap());
    let started = std::time::Instant::now();
    let status = idc
        .check_website(req(
            CheckWebsiteRequest {
                website_url: format!("http://{silent_addr}/"),
            },
            &bearer("acct-1", Role::Applicant),
        ))
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert_eq!(status.code(), Code::Cancelled, "{status:?}");
    assert!(
        took < Duration::from_secs(5),
        "ended by the server's 1 s deadline, not the website check's 10 s: {took:?}"
    );
    // and a client's shorter grpc-timeout is honoured too
    let mut request = req(
        CheckWebsiteRequest {
            website_url: format!("http://{silent_addr}/"),
        },
        &bearer("acct-1", Role::Applicant),
    );
    request.set_timeout(Duration::from_millis(300));
    let started = std::time::Instant::now();
    let status = idc.check_website(request).await.unwrap_err();
    assert!(
        matches!(status.code(), Code::DeadlineExceeded | Code::Cancelled),
        "{status:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    identity.stop().await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// Logs
