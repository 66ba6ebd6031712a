//! The materials checks: registration number, website, logo and the form's text fields. Usable
//! one at a time or all together as a preflight before submitting.

use chrono::Utc;
use kg_checks::finding::Finding;
use kg_checks::logo::{LogoPolicy, check_logo};
use kg_checks::website::WebsiteChecker;
use kg_proto::common::{
    CheckEvidence, CompanyEntity, ImageFormat, LogoEvidence, RegistrationNumberEvidence,
    SellerProfile, WebsiteEvidence,
};
use kg_proto::identity::{Material, MaterialResult};

use crate::convert::{finding, outcome, timestamp};

pub struct MaterialsChecker {
    pub website: WebsiteChecker,
    pub logo: LogoPolicy,
}

pub struct Checked<E> {
    pub findings: Vec<Finding>,
    pub evidence: E,
}

impl MaterialsChecker {
    pub fn registration_number(
        &self,
        entity: Option<&CompanyEntity>,
    ) -> Checked<RegistrationNumberEvidence> {
        let entity = entity.cloned().unwrap_or_default();
        let now = Some(timestamp(Utc::now()));
        match kg_checks::regnum::parse(&entity.country, &entity.registration_number) {
            Ok(n) => Checked {
                evidence: RegistrationNumberEvidence {
                    country: n.country.clone(),
                    normalized: n.number.clone(),
                    format_name: n.format_name.to_string(),
                    check_character_valid: true,
                    checked_time: now,
                },
                findings: n.warnings,
            },
            Err(findings) => Checked {
                evidence: RegistrationNumberEvidence {
                    country: entity.country.trim().to_uppercase(),
                    normalized: kg_checks::regnum::normalize(&entity.registration_number),
                    format_name: String::new(),
                    check_character_valid: false,
                    checked_time: now,
                },
                findings: prefixed("entity", findings),
            },
        }
    }

    pub async fn website(&self, url: &str) -> Checked<WebsiteEvidence> {
        let report = self.website.check(url).await;
        let e = &report.evidence;
        Checked {
            evidence: WebsiteEvidence {
                requested_url: e.requested_url.clone(),
                final_url: e.final_url.clone().unwrap_or_default(),
                http_status: e.http_status.map(i32::from).unwrap_or_default(),
                resolved_address: e.resolved_address.clone().unwrap_or_default(),
                detected_language: e.detected_language.clone().unwrap_or_default(),
                content_language: e.content_language.clone().unwrap_or_default(),
                redirects: e.redirects.clone(),
                checked_time: Some(timestamp(e.checked_at)),
                ..Default::default()
            },
            findings: report.findings,
        }
    }

    pub fn logo(&self, bytes: &[u8], content_type: &str, file_name: &str) -> Checked<LogoEvidence> {
        let report = check_logo(
            &self.logo,
            bytes,
            (!content_type.is_empty()).then_some(content_type),
            (!file_name.is_empty()).then_some(file_name),
        );
        let e = &report.evidence;
        let format = match e.format {
            Some("png") => ImageFormat::Png,
            Some("jpeg") => ImageFormat::Jpeg,
            _ => ImageFormat::Unspecified,
        };
        Checked {
            evidence: LogoEvidence {
                format: format as i32,
                width: e.width.unwrap_or_default() as i32,
                height: e.height.unwrap_or_default() as i32,
                size_bytes: e.size_bytes as i64,
                declared_content_type: content_type.to_string(),
                sha256: String::new(),
                checked_time: Some(timestamp(Utc::now())),
            },
            findings: report.findings,
        }
    }

    /// Every material at once. Missing optional materials are skipped unless `require_complete`.
    pub async fn all(
        &self,
        entity: Option<&CompanyEntity>,
        profile: &SellerProfile,
        logo_file_name: &str,
        require_complete: bool,
    ) -> (Vec<MaterialResult>, CheckEvidence) {
        let mut results = Vec::new();
        let mut evidence = CheckEvidence {
            checked_time: Some(timestamp(Utc::now())),
            ..Default::default()
        };
        let mut push = |material: Material, findings: Vec<Finding>| {
            results.push(MaterialResult {
                material: material as i32,
                outcome: outcome(&findings) as i32,
                findings: findings.iter().map(finding).collect(),
            });
        };

        if entity.is_some() || require_complete {
            let r = self.registration_number(entity);
            evidence.registration_number = Some(r.evidence);
            push(Material::RegistrationNumber, r.findings);
        }
        if !profile.website_url.is_empty() || require_complete {
            let r = self.website(&profile.website_url).await;
            evidence.website = Some(r.evidence);
            push(Material::Website, under("profile.website_url", r.findings));
        }
        if !profile.logo.is_empty() || require_complete {
            let r = self.logo(&profile.logo, &profile.logo_content_type, logo_file_name);
            evidence.logo = Some(r.evidence);
            push(Material::Logo, under("profile.logo", r.findings));
        }
        if !profile.introduction.is_empty() || require_complete {
            let findings = kg_checks::contact::check_introduction(&profile.introduction);
            push(
                Material::Introduction,
                under("profile.introduction", findings),
            );
        }
        if profile.contact.is_some() || require_complete {
            push(Material::Contact, contact_findings(profile));
        }
        if !profile.customer_service_email.is_empty() || require_complete {
            let f = kg_checks::contact::parse_email(
                "profile.customer_service_email",
                &profile.customer_service_email,
            )
            .err()
            .into_iter()
            .collect();
            push(Material::CustomerServiceEmail, f);
        }
        // Optional in the contract: checked only when given.
        if !profile.customer_service_phone.is_empty() {
            let f = kg_checks::contact::parse_phone(
                "profile.customer_service_phone",
                &profile.customer_service_phone,
            )
            .err()
            .into_iter()
            .collect();
            push(Material::CustomerServicePhone, f);
        }

        let all: Vec<_> = results.iter().flat_map(|r| r.findings.clone()).collect();
        evidence.outcome = overall(&results) as i32;
        evidence.findings = all;
        (results, evidence)
    }
}

fn contact_findings(profile: &SellerProfile) -> Vec<Finding> {
    let contact = profile.contact.clone().unwrap_or_default();
    let mut findings = Vec::new();
    let name_len = contact.name.trim().chars().count();
    if name_len == 0 || name_len > 128 || contact.name.chars().any(char::is_control) {
        findings.push(Finding::error(
            "CONTACT_NAME_INVALID",
            "profile.contact.name",
            "the contact person's name is required: 1-128 characters, no control characters",
        ));
    }
    if let Err(f) = kg_checks::contact::parse_email("profile.contact.email", &contact.email) {
        findings.push(f);
    }
    if let Err(f) = kg_checks::contact::parse_e164("profile.contact.mobile", &contact.mobile) {
        findings.push(f);
    }
    findings
}

fn overall(results: &[MaterialResult]) -> kg_proto::common::CheckOutcome {
    use kg_proto::common::CheckOutcome;
    let worst = results.iter().map(|r| r.outcome).collect::<Vec<_>>();
    if worst.contains(&(CheckOutcome::Failed as i32)) {
        CheckOutcome::Failed
    } else if worst.contains(&(CheckOutcome::Warning as i32)) {
        CheckOutcome::Warning
    } else {
        CheckOutcome::Passed
    }
}

/// Puts findings under the request field they belong to: a finding about `logo` inside the
/// profile becomes `profile.logo`; one about `registration_number` becomes
/// `entity.registration_number`.
fn prefixed(prefix: &str, findings: Vec<Finding>) -> Vec<Finding> {
    findings
        .into_iter()
        .map(|mut f| {
            if f.field.is_empty() || prefix.ends_with(&f.field) {
                f.field = prefix.to_string();
            } else if !f.field.starts_with(prefix) {
                f.field = format!("{prefix}.{}", f.field);
            }
            f
        })
        .collect()
}

/// Files single-material findings under the one request field they are about.
fn under(field: &str, findings: Vec<Finding>) -> Vec<Finding> {
    findings
        .into_iter()
        .map(|mut f| {
            f.field = field.to_string();
            f
        })
        .collect()
}
