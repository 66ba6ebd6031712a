//! UpsertAccount, ImportAccounts and GetAccount: the account directory that internal platform
//! callers feed.

use chrono::Utc;
use kg_proto::common::{CompanyEntity, PostalAddress};
use kg_proto::identity::{Account, VerificationType};
use kg_runtime::error::ServiceError as _;

use crate::account_store::AccountRow;
use crate::convert::timestamp;
use kg_runtime::error::{CommonError, Violations};

use crate::error::IdentityError;

pub const MAX_IMPORT: usize = 1000;

/// Parses `accounts/{id}` (or a bare id).
pub fn parse_name(name: &str) -> Result<String, IdentityError> {
    let id = name.strip_prefix("accounts/").unwrap_or(name);
    validate_id("name", id)?;
    Ok(id.to_string())
}

pub fn validate_id(field: &str, id: &str) -> Result<(), IdentityError> {
    if kg_runtime::idempotency::is_plain_id(id) {
        Ok(())
    } else {
        Err(IdentityError::field(
            field,
            "ACCOUNT_ID_INVALID",
            "account ids are 1-64 characters of A-Z, a-z, 0-9, '-' and '_'",
        ))
    }
}

/// Validates a wire account and turns it into a row. Every problem is reported at once.
pub fn to_row(prefix: &str, a: &Account) -> Result<AccountRow, IdentityError> {
    let mut violations = Violations::default();
    let id = if a.account_id.is_empty() {
        a.name
            .strip_prefix("accounts/")
            .unwrap_or(&a.name)
            .to_string()
    } else {
        a.account_id.clone()
    };
    if let Err(IdentityError::Common(CommonError::Invalid(v))) =
        validate_id(&format!("{prefix}account_id"), &id)
    {
        violations.0.extend(v);
    }
    let verification = match VerificationType::try_from(a.verification_type) {
        Ok(VerificationType::Enterprise) => "ENTERPRISE",
        Ok(VerificationType::Individual) => "INDIVIDUAL",
        Ok(VerificationType::None) | Ok(VerificationType::Unspecified) => {
            if a.enterprise_verified {
                "ENTERPRISE"
            } else {
                "NONE"
            }
        }
        Err(_) => {
            violations.add(
                format!("{prefix}verification_type"),
                "VERIFICATION_TYPE_INVALID",
                "unknown verification type".to_string(),
            );
            "NONE"
        }
    };
    let email = if a.email.is_empty() {
        String::new()
    } else {
        match kg_checks::contact::parse_email(&format!("{prefix}email"), &a.email) {
            Ok(e) => e,
            Err(f) => {
                violations.add(f.field, f.code, f.message);
                String::new()
            }
        }
    };
    let mobile = if a.mobile.is_empty() {
        None
    } else {
        match kg_checks::contact::parse_e164(&format!("{prefix}mobile"), &a.mobile) {
            Ok(m) => Some(m),
            Err(f) => {
                violations.add(f.field, f.code, f.message);
                None
            }
        }
    };
    if a.verified_enterprise_name.chars().count() > 256 {
        violations.add(
            format!("{prefix}verified_enterprise_name"),
            "NAME_TOO_LONG",
            "at most 256 characters".to_string(),
        );
    }
    // Free text is stored as given: no control characters (PostgreSQL refuses NUL in text and
    // JSON), bounded lengths.
    plain_text(
        &mut violations,
        format!("{prefix}verified_enterprise_name"),
        &a.verified_enterprise_name,
        256,
    );
    if !a.parent_account_id.is_empty()
        && let Err(IdentityError::Common(CommonError::Invalid(v))) =
            validate_id(&format!("{prefix}parent_account_id"), &a.parent_account_id)
    {
        violations.0.extend(v);
    }
    if let Some(addr) = &a.registered_address {
        let field = |name: &str| format!("{prefix}registered_address.{name}");
        for (name, value) in [
            ("region_code", &addr.region_code),
            ("postal_code", &addr.postal_code),
            ("administrative_area", &addr.administrative_area),
            ("locality", &addr.locality),
            ("sublocality", &addr.sublocality),
        ] {
            plain_text(&mut violations, field(name), value, 256);
        }
        if addr.address_lines.len() > 8 {
            violations.add(
                field("address_lines"),
                "ADDRESS_TOO_LONG",
                "at most 8 address lines".to_string(),
            );
        }
        for (i, line) in addr.address_lines.iter().enumerate() {
            plain_text(
                &mut violations,
                field(&format!("address_lines[{i}]")),
                line,
                256,
            );
        }
    }
    let locale = match a.locale.as_str() {
        "" | "en" => "en",
        "zh-CN" | "zh" => "zh-CN",
        _ => {
            violations.add(
                format!("{prefix}locale"),
                "LOCALE_UNSUPPORTED",
                "supported locales: en, zh-CN".to_string(),
            );
            "en"
        }
    };
    let (verified_country, verified_number) = match &a.verified_entity {
        Some(e) if !e.registration_number.is_empty() => {
            match kg_checks::regnum::parse(&e.country, &e.registration_number) {
                Ok(n) => (Some(n.country), Some(n.number)),
                Err(findings) => {
                    for f in findings {
                        violations.add(
                            format!("{prefix}verified_entity.{}", f.field),
                            f.code,
                            f.message,
                        );
                    }
                    (None, None)
                }
            }
        }
        _ => (None, None),
    };
    violations.check()?;
    let now = Utc::now();
    Ok(AccountRow {
        account_id: id,
        verification_type: verification.to_string(),
        verified_enterprise_name: a.verified_enterprise_name.trim().to_string(),
        registered_address: a
            .registered_address
            .as_ref()
            .map(|addr| serde_json::to_value(AddressJson::from(addr)).unwrap_or_default()),
        cloud_services_enabled: a.cloud_services_enabled,
        csp_program_member: a.csp_program_member,
        distribution_partner: a.distribution_partner,
        iam_sub_user: a.iam_sub_user,
        parent_account_id: (!a.parent_account_id.is_empty()).then(|| a.parent_account_id.clone()),
        partner_administrator: a.partner_administrator,
        email,
        mobile,
        locale: locale.to_string(),
        verified_country,
        verified_registration_number: verified_number,
        create_time: now,
        update_time: now,
    })
}

/// Refuses control characters (NUL included) and more than `max` characters in free text.
fn plain_text(violations: &mut Violations, field: String, value: &str, max: usize) {
    if value.chars().any(char::is_control) {
        violations.add(
            field,
            "CONTROL_CHARACTER",
            "control characters are not allowed".to_string(),
        );
    } else if value.chars().count() > max {
        violations.add(field, "TEXT_TOO_LONG", format!("at most {max} characters"));
    }
}

pub fn to_wire(row: &AccountRow) -> Account {
    let verification_type = match row.verification_type.as_str() {
        "ENTERPRISE" => VerificationType::Enterprise,
        "INDIVIDUAL" => VerificationType::Individual,
        _ => VerificationType::None,
    };
    Account {
        name: format!("accounts/{}", row.account_id),
        account_id: row.account_id.clone(),
        enterprise_verified: verification_type == VerificationType::Enterprise,
        verification_type: verification_type as i32,
        verified_enterprise_name: row.verified_enterprise_name.clone(),
        registered_address: address_of(row),
        cloud_services_enabled: row.cloud_services_enabled,
        csp_program_member: row.csp_program_member,
        distribution_partner: row.distribution_partner,
        iam_sub_user: row.iam_sub_user,
        parent_account_id: row.parent_account_id.clone().unwrap_or_default(),
        partner_administrator: row.partner_administrator,
        email: row.email.clone(),
        mobile: row.mobile.clone().unwrap_or_default(),
        locale: row.locale.clone(),
        verified_entity: entity_of(row),
        create_time: Some(timestamp(row.create_time)),
        update_time: Some(timestamp(row.update_time)),
    }
}

pub fn address_of(row: &AccountRow) -> Option<PostalAddress> {
    let json = row.registered_address.clone()?;
    serde_json::from_value::<AddressJson>(json)
        .ok()
        .map(Into::into)
}

pub fn entity_of(row: &AccountRow) -> Option<CompanyEntity> {
    Some(CompanyEntity {
        country: row.verified_country.clone()?,
        registration_number: row.verified_registration_number.clone()?,
    })
}

/// The stored shape of a postal address.
#[derive(serde::Serialize, serde::Deserialize, Default)]
struct AddressJson {
    region_code: String,
    postal_code: String,
    administrative_area: String,
    locality: String,
    sublocality: String,
    address_lines: Vec<String>,
}

impl From<&PostalAddress> for AddressJson {
    fn from(a: &PostalAddress) -> Self {
        Self {
            region_code: a.region_code.clone(),
            postal_code: a.postal_code.clone(),
            administrative_area: a.administrative_area.clone(),
            locality: a.locality.clone(),
            sublocality: a.sublocality.clone(),
            address_lines: a.address_lines.clone(),
        }
    }
}

impl From<AddressJson> for PostalAddress {
    fn from(a: AddressJson) -> Self {
        Self {
            region_code: a.region_code,
            postal_code: a.postal_code,
            administrative_area: a.administrative_area,
            locality: a.locality,
            sublocality: a.sublocality,
            address_lines: a.address_lines,
        }
    }
}
