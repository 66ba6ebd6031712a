//! Test data: accounts, company entities, logos, an English website, and a complete application.

use std::net::SocketAddr;

use kg_proto::common::{AgreementAcceptance, CompanyEntity, Contact, PostalAddress, SellerProfile};
use kg_proto::identity::{Account, VerificationType};
use kg_proto::registration::{Application, SubmitApplicationRequest};

const USCC_ALPHABET: &[u8] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";

/// A valid 18-character Unified Social Credit Code built from `seed`: the check character is
/// computed per GB 32100-2015 (the validator's own tests pin it to published codes).
pub fn uscc(seed: u64) -> String {
    let mut body = format!("91350100{:09}", seed % 1_000_000_000).into_bytes();
    body.truncate(17);
    let mut sum = 0u64;
    let mut weight = 1u64;
    for &c in &body {
        let value = USCC_ALPHABET.iter().position(|&a| a == c).expect("digit") as u64;
        sum += value * weight;
        weight = weight * 3 % 31;
    }
    let check = USCC_ALPHABET[((31 - sum % 31) % 31) as usize];
    body.push(check);
    String::from_utf8(body).expect("ascii")
}

pub fn entity(seed: u64) -> CompanyEntity {
    CompanyEntity {
        country: "CN".into(),
        registration_number: uscc(seed),
    }
}

/// An account that meets every eligibility condition.
pub fn eligible_account(id: &str) -> Account {
    Account {
        account_id: id.into(),
        verification_type: VerificationType::Enterprise as i32,
        enterprise_verified: true,
        verified_enterprise_name: format!("Fuzhou {id} Software Co., Ltd."),
        registered_address: Some(address()),
        cloud_services_enabled: true,
        email: format!("{id}@example.com"),
        mobile: "+8613800138000".into(),
        locale: "en".into(),
        ..Default::default()
    }
}

pub fn address() -> PostalAddress {
    PostalAddress {
        region_code: "CN".into(),
        postal_code: "350000".into(),
        administrative_area: "Fujian".into(),
        locality: "Fuzhou".into(),
        address_lines: vec!["1 Software Avenue".into()],
        ..Default::default()
    }
}

/// A 168×80 PNG, the suggested logo size.
pub fn png_logo() -> Vec<u8> {
    let img = image::RgbImage::from_fn(168, 80, |x, y| {
        image::Rgb([(x % 256) as u8, (y * 3 % 256) as u8, 90])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .expect("encode png");
    out.into_inner()
}

pub fn jpeg_logo() -> Vec<u8> {
    let img = image::RgbImage::from_fn(168, 80, |x, _| image::Rgb([(x % 256) as u8, 40, 200]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Jpeg)
        .expect("encode jpeg");
    out.into_inner()
}

pub const ENGLISH_PAGE: &str = "<!doctype html><html lang=\"en\"><head><title>Example Software</title></head>\
<body><h1>Example Software</h1><p>We build cloud tools for small businesses. Our products help \
teams manage their infrastructure, monitor their applications and keep their customers happy.</p></body></html>";

pub const CHINESE_PAGE: &str = "<!doctype html><html><head><meta charset=\"utf-8\"><title>示例软件</title></head>\
<body><h1>示例软件有限公司</h1><p>我们为中小企业提供云计算工具，帮助团队管理基础设施、监控应用程序并服务好客户。\
我们的产品覆盖运维、监控和数据分析等多个领域。</p></body></html>";

/// A local website serving `/en` (English), `/zh` (Chinese) and redirects to private addresses.
pub struct Website {
    pub addr: SocketAddr,
}

impl Website {
    pub async fn start() -> anyhow::Result<Website> {
        use axum::response::{Html, Redirect};
        use axum::routing::get;
        let app = axum::Router::new()
            .route("/en", get(|| async { Html(ENGLISH_PAGE) }))
            .route("/zh", get(|| async { Html(CHINESE_PAGE) }))
            .route(
                "/to-private",
                get(|| async { Redirect::temporary("http://10.0.0.1/") }),
            )
            .route(
                "/to-metadata",
                get(|| async { Redirect::temporary("http://169.254.169.254/latest/meta-data/") }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Website { addr })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

pub fn profile(website_url: &str) -> SellerProfile {
    SellerProfile {
        logo: png_logo(),
        logo_content_type: "image/png".into(),
        website_url: website_url.into(),
        introduction: "Example Software builds monitoring and backup tools for small and medium businesses running on the cloud.".into(),
        contact: Some(Contact {
            name: "Li Wei".into(),
            email: "li.wei@example.com".into(),
            mobile: "+86 138 0013 8000".into(),
        }),
        customer_service_email: "support@example.com".into(),
        customer_service_phone: "+86 591 8765 4321".into(),
        registered_address: Some(address()),
        industry: "Software".into(),
        product_categories: vec!["Monitoring".into()],
        ..Default::default()
    }
}

pub fn agreement() -> AgreementAcceptance {
    let a = kg_registration::agreement();
    AgreementAcceptance {
        agreement_version: a.version,
        text_sha256: a.text_sha256,
        ..Default::default()
    }
}

/// A complete, valid submission for `account_id` and company entity `seed`.
pub fn submission(account_id: &str, seed: u64, website_url: &str) -> SubmitApplicationRequest {
    SubmitApplicationRequest {
        request_id: uuid::Uuid::new_v4().to_string(),
        account_id: account_id.into(),
        application: Some(Application {
            entity: Some(entity(seed)),
            profile: Some(profile(website_url)),
            agreement: Some(agreement()),
            ..Default::default()
        }),
        logo_file_name: "logo.png".into(),
    }
}
