//! The field mask and field-level diff of a seller profile, shared by UpdateSellerInfo,
//! ResubmitApplication and the modification decisions: the profile's leaves and the paths an
//! `update_mask` may name, a leaf's text form, copying a leaf, the diff of two profiles, and the
//! local checks of proposed values. Pure functions over `SellerProfile`; it imports only error
//! and the stored form of a change (view::modification::Change).

use kg_proto::common::SellerProfile;
use kg_runtime::error::FieldViolation;
use kg_runtime::error::ServiceError as _;

use crate::error::RegistrationError;
use crate::view::modification::Change;

/// Longest value of a free-text profile field other than the introduction.
pub const MAX_TEXT: usize = 256;
pub const MAX_INTRODUCTION: usize = 2000;
pub const MAX_URL_BYTES: usize = 2048;
pub const MAX_CATEGORIES: usize = 10;
pub const MAX_CODE: usize = 64;
pub const MAX_COMPANY_NAME: usize = 256;

/// The leaves of SellerProfile in field order, each with its text form: strings as they are,
/// repeated fields as a JSON array, the logo as its SHA-256; empty when unset.
pub const LEAVES: &[&str] = &[
    "logo",
    "logo_content_type",
    "website_url",
    "introduction",
    "contact.name",
    "contact.email",
    "contact.mobile",
    "customer_service_email",
    "customer_service_phone",
    "registered_address.region_code",
    "registered_address.postal_code",
    "registered_address.administrative_area",
    "registered_address.locality",
    "registered_address.sublocality",
    "registered_address.address_lines",
    "industry",
    "product_categories",
];

/// The paths `update_mask` may name; each covers the leaves it prefixes ("logo" also covers
/// logo_content_type).
pub const MASK_PATHS: &[&str] = &[
    "logo",
    "website_url",
    "introduction",
    "contact",
    "contact.name",
    "contact.email",
    "contact.mobile",
    "customer_service_email",
    "customer_service_phone",
    "registered_address",
    "industry",
    "product_categories",
];

fn list_text(values: &[String]) -> String {
    if values.is_empty() {
        return String::new();
    }
    serde_json::to_string(values).unwrap_or_default()
}

/// The text form of one leaf of `p` (its logo given by `logo_sha256`).
pub fn leaf_value(p: &SellerProfile, leaf: &str) -> String {
    let contact = p.contact.clone().unwrap_or_default();
    let address = p.registered_address.clone().unwrap_or_default();
    match leaf {
        "logo" => p.logo_sha256.clone(),
        "logo_content_type" => p.logo_content_type.clone(),
        "website_url" => p.website_url.clone(),
        "introduction" => p.introduction.clone(),
        "contact.name" => contact.name,
        "contact.email" => contact.email,
        "contact.mobile" => contact.mobile,
        "customer_service_email" => p.customer_service_email.clone(),
        "customer_service_phone" => p.customer_service_phone.clone(),
        "registered_address.region_code" => address.region_code,
        "registered_address.postal_code" => address.postal_code,
        "registered_address.administrative_area" => address.administrative_area,
        "registered_address.locality" => address.locality,
        "registered_address.sublocality" => address.sublocality,
        "registered_address.address_lines" => list_text(&address.address_lines),
        "industry" => p.industry.clone(),
        "product_categories" => list_text(&p.product_categories),
        _ => String::new(),
    }
}

/// Copies one leaf from `source` into `target` (the logo bytes travel with the "logo" leaf).
pub fn copy_leaf(target: &mut SellerProfile, source: &SellerProfile, leaf: &str) {
    let contact = source.contact.clone().unwrap_or_default();
    let address = source.registered_address.clone().unwrap_or_default();
    match leaf {
        "logo" => {
            target.logo = source.logo.clone();
            target.logo_sha256 = source.logo_sha256.clone();
        }
        "logo_content_type" => target.logo_content_type = source.logo_content_type.clone(),
        "website_url" => target.website_url = source.website_url.clone(),
        "introduction" => target.introduction = source.introduction.clone(),
        "contact.name" => target.contact.get_or_insert_default().name = contact.name,
        "contact.email" => target.contact.get_or_insert_default().email = contact.email,
        "contact.mobile" => target.contact.get_or_insert_default().mobile = contact.mobile,
        "customer_service_email" => {
            target.customer_service_email = source.customer_service_email.clone()
        }
        "customer_service_phone" => {
            target.customer_service_phone = source.customer_service_phone.clone()
        }
        "registered_address.region_code" => {
            target
                .registered_address
                .get_or_insert_default()
                .region_code = address.region_code
        }
        "registered_address.postal_code" => {
            target
                .registered_address
                .get_or_insert_default()
                .postal_code = address.postal_code
        }
        "registered_address.administrative_area" => {
            target
                .registered_address
                .get_or_insert_default()
                .administrative_area = address.administrative_area
        }
        "registered_address.locality" => {
            target.registered_address.get_or_insert_default().locality = address.locality
        }
        "registered_address.sublocality" => {
            target
                .registered_address
                .get_or_insert_default()
                .sublocality = address.sublocality
        }
        "registered_address.address_lines" => {
            target
                .registered_address
                .get_or_insert_default()
                .address_lines = address.address_lines
        }
        "industry" => target.industry = source.industry.clone(),
        "product_categories" => target.product_categories = source.product_categories.clone(),
        _ => {}
    }
}

/// The leaves a mask path covers.
fn covered(path: &str) -> impl Iterator<Item = &'static str> + '_ {
    LEAVES.iter().copied().filter(move |leaf| {
        *leaf == path
            || leaf.starts_with(&format!("{path}."))
            || (path == "logo" && *leaf == "logo_content_type")
    })
}

/// Checks `update_mask` and returns the leaves it covers, in field order. "*" is every path.
pub fn masked_leaves(paths: &[String]) -> Result<Vec<&'static str>, RegistrationError> {
    if paths.is_empty() {
        return Err(RegistrationError::InvalidUpdateMask(vec![FieldViolation {
            field: "update_mask".into(),
            reason: "UPDATE_MASK_EMPTY".into(),
            description: format!(
                "name the fields to change: {} (or \"*\")",
                MASK_PATHS.join(", ")
            ),
        }]));
    }
    let mut violations = Vec::new();
    let mut leaves = Vec::new();
    for (i, path) in paths.iter().enumerate() {
        let path = path.trim();
        if path == "*" {
            leaves.extend(LEAVES.iter().copied());
            continue;
        }
        if !MASK_PATHS.contains(&path) {
            let (reason, why) = if path == "logo_sha256" {
                ("UPDATE_MASK_OUTPUT_ONLY", "is output only")
            } else {
                ("UPDATE_MASK_UNKNOWN_PATH", "is not an editable path")
            };
            let shown: String = path.chars().take(64).collect();
            violations.push(FieldViolation {
                field: format!("update_mask.paths[{i}]"),
                reason: reason.into(),
                description: format!("{shown:?} {why}; editable: {}", MASK_PATHS.join(", ")),
            });
            continue;
        }
        leaves.extend(covered(path));
    }
    if !violations.is_empty() {
        return Err(RegistrationError::InvalidUpdateMask(violations));
    }
    Ok(LEAVES
        .iter()
        .copied()
        .filter(|l| leaves.contains(l))
        .collect())
}

/// The leaves whose text differs between `before` and `after`, in field order.
pub fn diff(before: &SellerProfile, after: &SellerProfile) -> Vec<Change> {
    LEAVES
        .iter()
        .filter_map(|leaf| {
            let (old, new) = (leaf_value(before, leaf), leaf_value(after, leaf));
            (old != new).then(|| Change {
                path: leaf.to_string(),
                old,
                new,
            })
        })
        .collect()
}

fn chars(s: &str) -> usize {
    s.chars().count()
}

fn has_control(s: &str) -> bool {
    s.chars().any(|c| c.is_control())
}

/// Local checks of the proposed values of `leaves` (shape and size; the materials themselves
/// are checked by identity-check). Required materials may not be emptied.
pub fn check_proposed(p: &SellerProfile, leaves: &[&str]) -> Vec<FieldViolation> {
    let mut v = Vec::new();
    let mut add = |field: &str, reason: &str, description: String| {
        v.push(FieldViolation {
            field: format!("profile.{field}"),
            reason: reason.into(),
            description,
        })
    };
    const REQUIRED: &[&str] = &[
        "logo",
        "website_url",
        "introduction",
        "contact.name",
        "contact.email",
        "customer_service_email",
    ];
    for leaf in leaves {
        let value = leaf_value(p, leaf);
        if REQUIRED.contains(leaf) && value.trim().is_empty() && *leaf != "logo" {
            add(leaf, "FIELD_REQUIRED", format!("{leaf} cannot be emptied"));
            continue;
        }
        let (limit, single_line) = match *leaf {
            "logo" | "product_categories" | "registered_address.address_lines" => continue,
            "introduction" => (MAX_INTRODUCTION, false),
            "website_url" => (MAX_URL_BYTES, true),
            "industry" | "logo_content_type" => (MAX_CODE, true),
            _ => (MAX_TEXT, true),
        };
        if (*leaf == "website_url" && value.len() > limit) || chars(&value) > limit {
            add(
                leaf,
                "FIELD_TOO_LONG",
                format!("{leaf} is at most {limit} characters"),
            );
        } else if single_line && has_control(&value) {
            add(
                leaf,
                "FIELD_INVALID",
                format!("{leaf} may not contain control characters"),
            );
        }
    }
    if leaves.contains(&"logo") {
        if p.logo.is_empty() {
            add("logo", "FIELD_REQUIRED", "logo cannot be emptied".into());
        } else if p.logo.len() > kg_checks::logo::LogoPolicy::default().max_bytes {
            add(
                "logo",
                "LOGO_TOO_LARGE",
                "the logo is larger than 5 MB".into(),
            );
        }
    }
    if leaves.contains(&"product_categories") {
        if p.product_categories.len() > MAX_CATEGORIES {
            add(
                "product_categories",
                "FIELD_TOO_LONG",
                format!("at most {MAX_CATEGORIES} product categories"),
            );
        } else if p
            .product_categories
            .iter()
            .any(|c| chars(c) > MAX_CODE || has_control(c))
        {
            add(
                "product_categories",
                "FIELD_INVALID",
                format!(
                    "each category is at most {MAX_CODE} characters, without control characters"
                ),
            );
        }
    }
    if leaves.contains(&"registered_address.address_lines") {
        let lines = p
            .registered_address
            .as_ref()
            .map(|a| a.address_lines.clone())
            .unwrap_or_default();
        if lines.len() > 5 || lines.iter().any(|l| chars(l) > MAX_TEXT || has_control(l)) {
            add(
                "registered_address.address_lines",
                "FIELD_INVALID",
                format!("at most 5 lines of {MAX_TEXT} characters, without control characters"),
            );
        }
    }
    v
}

/// A company name as it may be proposed: 1 to 256 characters, no control characters, not
/// only spaces.
pub fn check_company_name(name: &str) -> Result<(), RegistrationError> {
    if name.trim().is_empty() || chars(name) > MAX_COMPANY_NAME || has_control(name) {
        return Err(RegistrationError::field(
            "new_company_name",
            "COMPANY_NAME_INVALID",
            format!(
                "the new company name is required: 1 to {MAX_COMPANY_NAME} characters without control characters"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kg_proto::common::Contact;

    fn profile() -> SellerProfile {
        SellerProfile {
            logo_sha256: "aa".into(),
            website_url: "https://example.com/".into(),
            introduction: "We build tools.".into(),
            contact: Some(Contact {
                name: "Li Wei".into(),
                email: "li@example.com".into(),
                mobile: "+8613800138000".into(),
            }),
            customer_service_email: "support@example.com".into(),
            product_categories: vec!["SAAS".into()],
            ..Default::default()
        }
    }

    fn paths(p: &[&str]) -> Vec<String> {
        p.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn masks_expand_to_leaves_in_field_order_and_refuse_bad_paths() {
        assert_eq!(
            masked_leaves(&paths(&["contact", "logo"])).unwrap(),
            vec![
                "logo",
                "logo_content_type",
                "contact.name",
                "contact.email",
                "contact.mobile"
            ]
        );
        assert_eq!(masked_leaves(&paths(&["*"])).unwrap(), LEAVES.to_vec());
        for bad in [
            vec![],
            vec!["logo_sha256"],
            vec!["entity"],
            vec!["contact."],
        ] {
            assert!(matches!(
                masked_leaves(&paths(&bad)),
                Err(RegistrationError::InvalidUpdateMask(_))
            ));
        }
    }

    #[test]
    fn the_diff_lists_changed_leaves_only_and_applies_exactly() {
        let before = profile();
        let mut input = SellerProfile {
            contact: Some(Contact {
                email: "new@example.com".into(),
                ..Default::default()
            }),
            product_categories: vec!["SAAS".into(), "IMAGE".into()],
            industry: "outside the mask".into(),
            ..Default::default()
        };
        input.introduction = "ignored: not in the mask".into();
        let mut proposed = before.clone();
        for leaf in masked_leaves(&paths(&["contact.email", "product_categories"])).unwrap() {
            copy_leaf(&mut proposed, &input, leaf);
        }
        let changes = diff(&before, &proposed);
        assert_eq!(
            changes,
            vec![
                Change {
                    path: "contact.email".into(),
                    old: "li@example.com".into(),
                    new: "new@example.com".into()
                },
                Change {
                    path: "product_categories".into(),
                    old: r#"["SAAS"]"#.into(),
                    new: r#"["SAAS","IMAGE"]"#.into()
                },
            ]
        );
        let mut applied = before.clone();
        for c in &changes {
            copy_leaf(&mut applied, &proposed, &c.path);
        }
        assert_eq!(applied, proposed);
        assert_eq!(applied.contact.unwrap().name, "Li Wei");
    }

    #[test]
    fn required_materials_cannot_be_emptied_and_sizes_are_bounded() {
        let mut p = profile();
        p.website_url.clear();
        p.introduction = "x".repeat(MAX_INTRODUCTION + 1);
        p.industry = "bad\nline".into();
        let reasons: Vec<_> = check_proposed(&p, &["website_url", "introduction", "industry"])
            .into_iter()
            .map(|v| (v.field, v.reason))
            .collect();
        assert_eq!(
            reasons,
            vec![
                ("profile.website_url".into(), "FIELD_REQUIRED".into()),
                ("profile.introduction".into(), "FIELD_TOO_LONG".into()),
                ("profile.industry".into(), "FIELD_INVALID".into()),
            ]
        );
        assert!(check_company_name("  ").is_err());
        assert!(check_company_name(&"n".repeat(257)).is_err());
        assert!(check_company_name("Fuzhou Example Co., Ltd.").is_ok());
    }
}
