//! identity-check's materials checks over real gRPC: registration numbers, the website check
//! (English or not, reachable or not, and the SSRF guard in every spelling), and logos.

use kg_proto::common::{CheckOutcome, CompanyEntity, ImageFormat};
use kg_proto::identity::identity_check_service_client::IdentityCheckServiceClient;
use kg_proto::identity::*;
use kg_tests::fixtures::{self, Website};
use kg_tests::mesh::{self, Running, TestDb};
use tonic::transport::Channel;

async fn identity(allow_loopback: bool) -> (Running, TestDb, IdentityCheckServiceClient<Channel>) {
    let db = mesh::fresh_db().await.unwrap();
    let service = mesh::start_identity(&db.url, allow_loopback).await.unwrap();
    let client = IdentityCheckServiceClient::new(service.channel().await.unwrap());
    (service, db, client)
}

fn codes(findings: &[kg_proto::common::CheckFinding]) -> Vec<String> {
    findings.iter().map(|f| f.code.clone()).collect()
}

#[tokio::test]
async fn registration_numbers_pass_fail_and_normalize() {
    let (service, _db, mut client) = identity(false).await;
    let mut check = async |country: &str, number: &str| {
        client
            .check_registration_number(CheckRegistrationNumberRequest {
                entity: Some(CompanyEntity {
                    country: country.into(),
                    registration_number: number.into(),
                }),
            })
            .await
            .unwrap()
            .into_inner()
    };
    // Published codes (also pinned in kg-checks' own tests).
    for code in ["91350100M000100Y43", "91110000600037341L"] {
        let reply = check("CN", code).await;
        assert_eq!(
            reply.outcome,
            CheckOutcome::Passed as i32,
            "{code}: {:?}",
            reply.findings
        );
        assert_eq!(reply.evidence.unwrap().normalized, code);
    }
    let reply = check("cn", "９１３５０１００ｍ０００１００ｙ４３").await;
    assert_eq!(
        reply.outcome,
        CheckOutcome::Passed as i32,
        "full-width lower case: {:?}",
        reply.findings
    );
    assert_eq!(reply.evidence.unwrap().normalized, "91350100M000100Y43");
    let reply = check("CN", "9135 0100-M000 100y43").await;
    assert_eq!(reply.evidence.unwrap().normalized, "91350100M000100Y43");

    let reply = check("CN", "91350100M000100Y44").await;
    assert_eq!(reply.outcome, CheckOutcome::Failed as i32);
    assert_eq!(
        codes(&reply.findings),
        vec!["REGISTRATION_NUMBER_CHECK_CHARACTER"]
    );
    let reply = check("CN", "91350100I000100Y43").await;
    assert_eq!(
        codes(&reply.findings),
        vec!["REGISTRATION_NUMBER_CHARACTER"]
    );
    assert!(
        reply.findings[0].message.contains('I'),
        "{}",
        reply.findings[0].message
    );
    let reply = check("CN", "91350100M000100Y4").await;
    assert_eq!(codes(&reply.findings), vec!["REGISTRATION_NUMBER_LENGTH"]);
    service.stop().await.unwrap();
}

#[tokio::test]
async fn the_website_check_wants_an_english_site_that_answers() {
    let (service, _db, mut client) = identity(true).await;
    let site = Website::start().await.unwrap();
    let mut check = async |url: String| {
        client
            .check_website(CheckWebsiteRequest { website_url: url })
            .await
            .unwrap()
            .into_inner()
    };
    let english = check(site.url("/en")).await;
    assert_eq!(
        english.outcome,
        CheckOutcome::Passed as i32,
        "{:?}",
        english.findings
    );
    let evidence = english.evidence.unwrap();
    assert_eq!(evidence.http_status, 200);
    assert_eq!(evidence.final_url, site.url("/en"));
    assert!(evidence.detected_language.starts_with("en"), "{evidence:?}");

    let chinese = check(site.url("/zh")).await;
    assert_eq!(codes(&chinese.findings), vec!["WEBSITE_NOT_ENGLISH"]);

    let closed = format!("http://127.0.0.1:{}/", kg_tests::free_port());
    let unreachable = check(closed).await;
    assert_eq!(codes(&unreachable.findings), vec!["WEBSITE_UNREACHABLE"]);

    // The test allowlist admits 127.0.0.1/32 only: a redirect onwards to a private or metadata
    // address is refused.
    for path in ["/to-private", "/to-metadata"] {
        let reply = check(site.url(path)).await;
        assert_eq!(
            codes(&reply.findings),
            vec!["WEBSITE_ADDRESS_FORBIDDEN"],
            "{path}"
        );
    }
    service.stop().await.unwrap();
}

#[tokio::test]
async fn the_default_guard_refuses_every_internal_address_spelling() {
    let (service, _db, mut client) = identity(false).await;
    let targets = [
        "http://127.0.0.1/",
        "http://localhost/",
        "http://10.1.2.3/",
        "http://172.16.0.1/",
        "http://172.31.255.255/",
        "http://192.168.1.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://100.64.0.1/",
        "http://[::1]/",
        "http://[fc00::1]/",
        "http://[fd12:3456::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:10.0.0.1]/",
        "http://2130706433/",
        "http://0x7f000001/",
        "http://0177.0.0.1/",
        "http://127.1/",
        "http://0/",
        "http://[fe80::1]/",
    ];
    for target in targets {
        let reply = client
            .check_website(CheckWebsiteRequest {
                website_url: target.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(reply.outcome, CheckOutcome::Failed as i32, "{target}");
        assert_eq!(
            codes(&reply.findings),
            vec!["WEBSITE_ADDRESS_FORBIDDEN"],
            "{target}"
        );
    }
    kg_tests::faults::record(kg_tests::faults::FaultRecord {
        test: "identity_checks",
        fault: "SSRF spellings and malformed URLs",
        load: 0,
        faults: 0,
        bad_inputs: targets.len() as u64 + 5,
        lost: 0,
        duplicates: 0,
    });
    for bad in [
        "ftp://example.com/",
        "http://user:pw@example.com/",
        "javascript:alert(1)",
        "",
        "http://",
    ] {
        let reply = client
            .check_website(CheckWebsiteRequest {
                website_url: bad.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            codes(&reply.findings),
            vec!["WEBSITE_URL_INVALID"],
            "{bad:?}"
        );
    }
    service.stop().await.unwrap();
}

/// A PNG signature and IHDR declaring `width`×`height`, with a correct CRC, and no pixels.
fn png_header(width: u32, height: u32) -> Vec<u8> {
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = 0xFFFF_FFFFu32;
        for &b in bytes {
            crc ^= b as u32;
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
    let mut chunk = b"IHDR".to_vec();
    chunk.extend(width.to_be_bytes());
    chunk.extend(height.to_be_bytes());
    chunk.extend([8, 2, 0, 0, 0]);
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    out.extend(13u32.to_be_bytes());
    out.extend(&chunk);
    out.extend(crc32(&chunk).to_be_bytes());
    out
}

#[tokio::test]
async fn logos_are_judged_by_their_bytes_with_memory_bounded() {
    let (service, _db, mut client) = identity(false).await;
    let mut check = async |logo: Vec<u8>, content_type: &str, file_name: &str| {
        client
            .check_logo(CheckLogoRequest {
                logo,
                content_type: content_type.into(),
                file_name: file_name.into(),
            })
            .await
            .unwrap()
            .into_inner()
    };
    let png = check(fixtures::png_logo(), "image/png", "logo.png").await;
    assert_eq!(
        png.outcome,
        CheckOutcome::Passed as i32,
        "{:?}",
        png.findings
    );
    let evidence = png.evidence.unwrap();
    assert_eq!(
        (evidence.format, evidence.width, evidence.height),
        (ImageFormat::Png as i32, 168, 80)
    );
    let jpeg = check(fixtures::jpeg_logo(), "image/jpeg", "logo.jpg").await;
    assert_eq!(
        jpeg.outcome,
        CheckOutcome::Passed as i32,
        "{:?}",
        jpeg.findings
    );

    let mut big = fixtures::png_logo();
    big.resize(5 * 1024 * 1024 + 1, 0);
    assert_eq!(
        codes(&check(big, "image/png", "logo.png").await.findings),
        vec!["LOGO_TOO_LARGE"]
    );

    let gif = b"GIF89a\x10\x00\x10\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x10\x00\x10\x00\x00\x02\x02D\x01\x00;".to_vec();
    assert_eq!(
        codes(&check(gif, "image/gif", "logo.gif").await.findings),
        vec!["LOGO_UNSUPPORTED_FORMAT"]
    );

    let claimed_jpeg = check(fixtures::png_logo(), "image/jpeg", "logo.jpg").await;
    assert!(
        codes(&claimed_jpeg.findings).contains(&"LOGO_TYPE_MISMATCH".to_string()),
        "{:?}",
        claimed_jpeg.findings
    );

    let mut truncated = fixtures::png_logo();
    truncated.truncate(truncated.len() / 2);
    assert_eq!(
        codes(&check(truncated, "image/png", "logo.png").await.findings),
        vec!["LOGO_CORRUPT"]
    );

    let bomb = check(png_header(100_000, 100_000), "image/png", "logo.png").await;
    assert_eq!(codes(&bomb.findings), vec!["LOGO_DIMENSIONS_TOO_LARGE"]);
    service.stop().await.unwrap();
}

#[tokio::test]
async fn the_preflight_checks_every_material_at_once() {
    let (service, _db, mut client) = identity(true).await;
    let site = Website::start().await.unwrap();
    let good = client
        .check_materials(CheckMaterialsRequest {
            entity: Some(fixtures::entity(1)),
            profile: Some(fixtures::profile(&site.url("/en"))),
            logo_file_name: "logo.png".into(),
            require_complete: true,
            account_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        good.outcome,
        CheckOutcome::Passed as i32,
        "{:?}",
        good.results
    );
    assert_eq!(
        good.results.len(),
        7,
        "entity, website, logo, introduction, contact, CS email, CS phone"
    );

    let empty = client
        .check_materials(CheckMaterialsRequest {
            require_complete: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(empty.outcome, CheckOutcome::Failed as i32);
    assert!(
        empty
            .results
            .iter()
            .all(|r| r.outcome == CheckOutcome::Failed as i32),
        "{:?}",
        empty.results
    );
    service.stop().await.unwrap();
}
