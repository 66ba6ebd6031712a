//! Health tells the truth: NOT_SERVING while the database is down, SERVING once it is back;
//! reflection lists the service on v1 and v1alpha.

use std::time::Duration;

use kg_tests::PostgresServer;
use kg_tests::mesh::{Running, any_port, common};
use tonic_health::pb::health_check_response::ServingStatus;

#[tokio::test]
async fn a_service_is_not_serving_while_its_postgres_is_stopped_and_serving_after() {
    let mut pg = PostgresServer::start().await.unwrap();
    let url = pg.create_database("identity").await.unwrap();
    let config = kg_identity_check::Config {
        common: common(&url),
        website_test_allowlist: Vec::new(),
    };
    let service = Running::start(any_port(), move |l, s| kg_identity_check::run(config, l, s))
        .await
        .unwrap();
    assert_eq!(service.health().await.unwrap(), ServingStatus::Serving);
    let named = kg_tests::mesh::health(
        &service.url(),
        "koogallery.identity.v1.IdentityCheckService",
    )
    .await
    .unwrap();
    assert_eq!(named, ServingStatus::Serving);

    pg.stop().await.unwrap();
    service
        .wait_for(ServingStatus::NotServing, Duration::from_secs(15))
        .await
        .expect("NOT_SERVING while PostgreSQL is stopped");

    kg_tests::faults::record(kg_tests::faults::FaultRecord {
        test: "health",
        fault: "PostgreSQL stopped: NOT_SERVING, then back",
        load: 0,
        faults: 1,
        bad_inputs: 0,
        lost: 0,
        duplicates: 0,
    });
    pg.restart().await.unwrap();
    service
        .wait_for(ServingStatus::Serving, Duration::from_secs(30))
        .await
        .expect("SERVING again once PostgreSQL is back");
    service.stop().await.unwrap();
}

#[tokio::test]
async fn reflection_lists_the_service_on_v1_and_v1alpha() {
    let db = kg_tests::mesh::fresh_db().await.unwrap();
    let service = kg_tests::mesh::start_review(&db.url).await.unwrap();
    let channel = service.channel().await.unwrap();

    use tonic_reflection::pb::v1;
    use tonic_reflection::pb::v1alpha;
    let mut stream = v1::server_reflection_client::ServerReflectionClient::new(channel.clone())
        .server_reflection_info(tokio_stream::once(v1::ServerReflectionRequest {
            host: String::new(),
            message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(
                String::new(),
            )),
        }))
        .await
        .unwrap()
        .into_inner();
    let Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        stream.message().await.unwrap().unwrap().message_response
    else {
        panic!("no list of services");
    };
    let names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.contains(&"koogallery.review.v1.ReviewService".to_string()),
        "{names:?}"
    );
    assert!(
        names.contains(&"grpc.health.v1.Health".to_string()),
        "{names:?}"
    );

    let mut stream = v1alpha::server_reflection_client::ServerReflectionClient::new(channel)
        .server_reflection_info(tokio_stream::once(v1alpha::ServerReflectionRequest {
            host: String::new(),
            message_request: Some(
                v1alpha::server_reflection_request::MessageRequest::ListServices(String::new()),
            ),
        }))
        .await
        .unwrap()
        .into_inner();
    let reply = stream.message().await.unwrap().unwrap();
    let Some(v1alpha::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        reply.message_response
    else {
        panic!("no list of services on v1alpha");
    };
    assert!(
        list.service
            .iter()
            .any(|s| s.name == "koogallery.review.v1.ReviewService")
    );
    service.stop().await.unwrap();
}

/// Every RegistrationService RPC is served (ResubmitApplication was the last UNIMPLEMENTED one):
/// an empty request of each gets a real answer (a validation error or a result), never
/// UNIMPLEMENTED.
#[tokio::test]
async fn every_registration_rpc_is_implemented() {
    use kg_proto::registration::*;
    let identity_db = kg_tests::mesh::fresh_db().await.unwrap();
    let registration_db = kg_tests::mesh::fresh_db().await.unwrap();
    let identity = kg_tests::mesh::start_identity(&identity_db.url, false)
        .await
        .unwrap();
    let service = kg_tests::mesh::start_registration(kg_tests::mesh::registration_config(
        &registration_db.url,
        &identity.url(),
        None,
    ))
    .await
    .unwrap();
    let mut c = registration_service_client::RegistrationServiceClient::new(
        service.channel().await.unwrap(),
    );
    fn code<T>(r: Result<tonic::Response<T>, tonic::Status>) -> tonic::Code {
        r.err().map(|s| s.code()).unwrap_or(tonic::Code::Ok)
    }
    let answers = [
        (
            "SubmitApplication",
            code(
                c.submit_application(SubmitApplicationRequest::default())
                    .await,
            ),
        ),
        (
            "GetApplication",
            code(c.get_application(GetApplicationRequest::default()).await),
        ),
        (
            "ListApplications",
            code(
                c.list_applications(ListApplicationsRequest::default())
                    .await,
            ),
        ),
        (
            "WithdrawApplication",
            code(
                c.withdraw_application(WithdrawApplicationRequest::default())
                    .await,
            ),
        ),
        (
            "ResubmitApplication",
            code(
                c.resubmit_application(ResubmitApplicationRequest::default())
                    .await,
            ),
        ),
        (
            "GetSeller",
            code(c.get_seller(GetSellerRequest::default()).await),
        ),
        (
            "ListSellers",
            code(c.list_sellers(ListSellersRequest::default()).await),
        ),
        (
            "UpdateSellerInfo",
            code(
                c.update_seller_info(UpdateSellerInfoRequest::default())
                    .await,
            ),
        ),
        (
            "ChangeCompanyName",
            code(
                c.change_company_name(ChangeCompanyNameRequest::default())
                    .await,
            ),
        ),
        (
            "GetModificationRequest",
            code(
                c.get_modification_request(GetModificationRequestRequest::default())
                    .await,
            ),
        ),
        (
            "ListModificationRequests",
            code(
                c.list_modification_requests(ListModificationRequestsRequest::default())
                    .await,
            ),
        ),
        (
            "WithdrawModificationRequest",
            code(
                c.withdraw_modification_request(WithdrawModificationRequestRequest::default())
                    .await,
            ),
        ),
        (
            "ExitSeller",
            code(c.exit_seller(ExitSellerRequest::default()).await),
        ),
        (
            "ApplyReviewDecision",
            code(
                c.apply_review_decision(ApplyReviewDecisionRequest::default())
                    .await,
            ),
        ),
        (
            "WatchEvents",
            code(c.watch_events(WatchEventsRequest::default()).await),
        ),
    ];
    for (rpc, code) in answers {
        assert_ne!(code, tonic::Code::Unimplemented, "{rpc}");
    }
    // An empty resubmission is refused on its idempotency key, like every mutation.
    let err = c
        .resubmit_application(ResubmitApplicationRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    service.stop().await.unwrap();
    identity.stop().await.unwrap();
}
