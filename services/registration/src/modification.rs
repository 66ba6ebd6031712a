//! What UpdateSellerInfo, ChangeCompanyName, the modification queries and their decisions
//! share: resource names, the field-level diff of a seller profile, the stored row as a wire
//! message, and the one transaction that opens a request (request row + idempotency key +
//! outbox events). The live seller is never touched here: only an approval changes it.

use kg_proto::common::SellerProfile;
use kg_proto::registration::{
    FieldChange, ModificationKind, ModificationRequest, ModificationState,
};
use kg_runtime::auth::{Caller, Role};
use kg_runtime::error::FieldViolation;
use kg_runtime::stored::{self, StoredCorrupt};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, TransactionTrait,
};
use serde::{Deserialize, Serialize};

use crate::error::RegistrationError;
use crate::events::EventKind;
use crate::idempotency::Key;
use crate::outbox;
use crate::sellers::parse_seller_name;
use crate::service::Registration;
use crate::store::{modification, seller, state};
use crate::view::{etag, timestamp};

/// Longest value of a free-text profile field other than the introduction.
pub const MAX_TEXT: usize = 256;
pub const MAX_INTRODUCTION: usize = 2000;
pub const MAX_URL_BYTES: usize = 2048;
pub const MAX_CATEGORIES: usize = 10;
pub const MAX_CODE: usize = 64;
pub const MAX_COMPANY_NAME: usize = 256;

pub fn modification_name(seller_id: &str, id: &str) -> String {
    format!("sellers/{seller_id}/modificationRequests/{id}")
}

/// `sellers/{seller_id}/modificationRequests/{id}` → (seller id, request id).
pub fn parse_modification_name(name: &str) -> Result<(String, String), RegistrationError> {
    let invalid = || {
        RegistrationError::field(
            "name",
            "NAME_INVALID",
            "expected sellers/{seller_id}/modificationRequests/{modification_request_id} with UUID ids",
        )
    };
    let parts: Vec<&str> = name.split('/').collect();
    match parts.as_slice() {
        ["sellers", seller, "modificationRequests", id]
            if uuid::Uuid::parse_str(seller).is_ok() && uuid::Uuid::parse_str(id).is_ok() =>
        {
            Ok((seller.to_string(), id.to_string()))
        }
        _ => Err(invalid()),
    }
}

/// One changed leaf, as stored (JSON) and as sent (FieldChange).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub path: String,
    pub old: String,
    pub new: String,
}

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

pub fn kind_of(kind: &str) -> ModificationKind {
    match kind {
        state::KIND_PROFILE => ModificationKind::ProfileUpdate,
        state::KIND_NAME => ModificationKind::CompanyNameChange,
        _ => ModificationKind::Unspecified,
    }
}

pub fn kind_name(kind: ModificationKind) -> Option<&'static str> {
    match kind {
        ModificationKind::ProfileUpdate => Some(state::KIND_PROFILE),
        ModificationKind::CompanyNameChange => Some(state::KIND_NAME),
        ModificationKind::Unspecified => None,
    }
}

pub fn state_of(s: &str) -> ModificationState {
    match s {
        state::MOD_PENDING => ModificationState::PendingReview,
        state::MOD_APPROVED => ModificationState::Approved,
        state::MOD_REJECTED => ModificationState::Rejected,
        state::MOD_WITHDRAWN => ModificationState::Withdrawn,
        _ => ModificationState::Unspecified,
    }
}

pub fn state_name(s: ModificationState) -> Option<&'static str> {
    match s {
        ModificationState::PendingReview => Some(state::MOD_PENDING),
        ModificationState::Approved => Some(state::MOD_APPROVED),
        ModificationState::Rejected => Some(state::MOD_REJECTED),
        ModificationState::Withdrawn => Some(state::MOD_WITHDRAWN),
        ModificationState::Unspecified => None,
    }
}

/// The reviewed field changes of a stored request; a column that does not parse is an error
/// (an empty list would apply, and show, no change at all).
pub fn changes_of(row: &modification::Model) -> Result<Vec<Change>, StoredCorrupt> {
    kg_runtime::stored::decode_json(
        &row.changes,
        "registration_modifications.changes",
        &modification_name(&row.seller_id, &row.modification_id),
    )
}

/// The stored request as a wire message; `with_logo` puts a changed logo's bytes back into
/// `proposed_profile`. Stored messages that do not decode are an error (see
/// `kg_runtime::stored`); a NULL column stays unset.
pub fn view(
    row: &modification::Model,
    with_logo: bool,
) -> Result<ModificationRequest, StoredCorrupt> {
    let name = modification_name(&row.seller_id, &row.modification_id);
    let proposed_profile = proposed_profile(row)?.map(|mut p| {
        if with_logo {
            p.logo = row.proposed_logo.clone().unwrap_or_default();
        }
        p
    });
    let rejection = if row.state == state::MOD_REJECTED {
        stored::decode_opt(
            row.feedback.as_deref(),
            "registration_modifications.feedback",
            &name,
        )?
    } else {
        None
    };
    let evidence = stored::decode_opt(
        row.evidence.as_deref(),
        "registration_modifications.evidence",
        &name,
    )?;
    Ok(ModificationRequest {
        name,
        modification_request_id: row.modification_id.clone(),
        seller: format!("sellers/{}", row.seller_id),
        account_id: row.account_id.clone(),
        kind: kind_of(&row.kind) as i32,
        changes: changes_of(row)?
            .into_iter()
            .map(|c| FieldChange {
                field_path: c.path,
                old_value: c.old,
                new_value: c.new,
            })
            .collect(),
        proposed_profile,
        proposed_company_name: row.proposed_company_name.clone().unwrap_or_default(),
        previous_company_name: row.previous_company_name.clone(),
        state: state_of(&row.state) as i32,
        rejection,
        evidence,
        create_time: Some(timestamp(row.create_time)),
        update_time: Some(timestamp(row.update_time)),
        decide_time: row.decide_time.map(timestamp),
        review_deadline: row.review_deadline.map(timestamp),
        etag: etag(row.update_time),
        withdraw_reason: row.withdraw_reason.clone().unwrap_or_default(),
    })
}

/// The request's proposed profile as stored (without the logo bytes); `None` when the column
/// is NULL (a company name change).
pub fn proposed_profile(row: &modification::Model) -> Result<Option<SellerProfile>, StoredCorrupt> {
    stored::decode_opt(
        row.proposed_profile.as_deref(),
        "registration_modifications.proposed_profile",
        &modification_name(&row.seller_id, &row.modification_id),
    )
}

/// The pending request of a seller, if any.
pub async fn pending_of<C: ConnectionTrait>(
    db: &C,
    seller_id: &str,
) -> Result<Option<modification::Model>, sea_orm::DbErr> {
    modification::Entity::find()
        .filter(modification::Column::SellerId.eq(seller_id))
        .filter(modification::Column::State.eq(state::MOD_PENDING))
        .one(db)
        .await
}

/// The materials of `proposed` that `wanted` names by path prefix, for CheckMaterials (a logo
/// travels with its content type); everything else is left empty.
pub fn materials_of(proposed: &SellerProfile, wanted: impl Fn(&str) -> bool) -> SellerProfile {
    let mut check = SellerProfile::default();
    if wanted("logo") {
        check.logo = proposed.logo.clone();
        check.logo_content_type = proposed.logo_content_type.clone();
    }
    if wanted("website_url") {
        check.website_url = proposed.website_url.clone();
    }
    if wanted("introduction") {
        check.introduction = proposed.introduction.clone();
    }
    if wanted("contact.") {
        check.contact = proposed.contact.clone();
    }
    if wanted("customer_service_email") {
        check.customer_service_email = proposed.customer_service_email.clone();
    }
    if wanted("customer_service_phone") {
        check.customer_service_phone = proposed.customer_service_phone.clone();
    }
    check
}

/// Refuses with MATERIALS_CHECK_FAILED, one field violation per failed finding, when
/// identity-check failed any material; warnings pass (they are kept as evidence).
pub fn refuse_failed_materials(
    materials: &kg_proto::identity::CheckMaterialsResponse,
) -> Result<(), RegistrationError> {
    let failed: Vec<FieldViolation> = materials
        .results
        .iter()
        .flat_map(|r| r.findings.iter())
        .filter(|f| f.outcome == kg_proto::common::CheckOutcome::Failed as i32)
        .map(|f| FieldViolation {
            field: f.field.clone(),
            reason: f.code.clone(),
            description: f.message.clone(),
        })
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(RegistrationError::MaterialsCheckFailed(failed))
    }
}

impl Registration {
    /// Checks the changed materials of `profile` (no entity; an incomplete profile is fine) with
    /// identity-check, refusing the change when one fails.
    pub(crate) async fn check_changed_materials(
        &self,
        profile: SellerProfile,
        logo_file_name: &str,
        account_id: &str,
    ) -> Result<kg_proto::identity::CheckMaterialsResponse, RegistrationError> {
        let materials = self
            .identity
            .clone()
            .check_materials(kg_proto::identity::CheckMaterialsRequest {
                entity: None,
                profile: Some(profile),
                logo_file_name: logo_file_name.to_string(),
                require_complete: false,
                account_id: account_id.to_string(),
            })
            .await
            .map_err(|s| RegistrationError::DependencyUnavailable("identity-check", s))?
            .into_inner();
        refuse_failed_materials(&materials)?;
        Ok(materials)
    }

    /// The seller a caller wants to change: applicants only their own (another account's
    /// seller is SELLER_NOT_FOUND); an exited seller is final.
    pub(crate) async fn changeable_seller(
        &self,
        caller: &Caller,
        name: &str,
    ) -> Result<seller::Model, RegistrationError> {
        let id = parse_seller_name(name)?;
        let row = seller::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .ok_or_else(|| RegistrationError::SellerNotFound(name.to_string()))?;
        if caller.role == Role::Applicant && caller.subject != row.account_id {
            return Err(RegistrationError::SellerNotFound(name.to_string()));
        }
        if row.state == state::SELLER_EXITED {
            return Err(RegistrationError::SellerExited(name.to_string()));
        }
        Ok(row)
    }

    /// The modification request of a replayed request_id, as `caller` may see it (a key
    /// replayed by another account reveals nothing).
    pub(crate) async fn modification_by_resource(
        &self,
        caller: &Caller,
        name: &str,
    ) -> Result<ModificationRequest, RegistrationError> {
        let (_, id) = parse_modification_name(name)?;
        let row = modification::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .filter(|r| caller.role != Role::Applicant || caller.subject == r.account_id)
            .ok_or_else(|| RegistrationError::ModificationNotFound(name.to_string()))?;
        Ok(view(&row, true)?)
    }

    /// Opens the request `row` in one transaction: the seller is read again (still ACTIVE, and
    /// `seller_etag` as read by the caller unless empty), no other request may be pending (the
    /// partial unique index is the fence), then the request, its idempotency key and its
    /// MODIFICATION_REQUESTED events are written together.
    pub(crate) async fn open_request(
        &self,
        caller: &Caller,
        key: &Key,
        row: modification::Model,
        seller_etag: &str,
        new_contacts: &[String],
    ) -> Result<ModificationRequest, RegistrationError> {
        let seller_name = format!("sellers/{}", row.seller_id);
        let name = modification_name(&row.seller_id, &row.modification_id);
        let txn = self.db.begin().await?;
        let current = seller::Entity::find_by_id(row.seller_id.clone())
            .one(&txn)
            .await?
            .ok_or_else(|| RegistrationError::SellerNotFound(seller_name.clone()))?;
        if current.state == state::SELLER_EXITED {
            return Err(RegistrationError::SellerExited(seller_name));
        }
        if !seller_etag.is_empty() && seller_etag != etag(current.update_time) {
            return Err(RegistrationError::EtagMismatch);
        }
        if let Some(open) = pending_of(&txn, &row.seller_id).await? {
            return Err(RegistrationError::ModificationAlreadyPending(
                modification_name(&open.seller_id, &open.modification_id),
            ));
        }
        let written = async {
            modification::ActiveModel::from(row.clone())
                .insert(&txn)
                .await?;
            key.record(&name, row.create_time).insert(&txn).await?;
            crate::contacts::enroll::enroll(
                &txn,
                &self.contacts,
                &row.account_id,
                &current.company_name,
                new_contacts,
                row.create_time,
            )
            .await?;
            outbox::announce(
                &txn,
                EventKind::ModificationRequested,
                &row.account_id,
                &name,
                &caller.subject,
                &[outbox::REVIEW, outbox::NOTIFICATION],
            )
            .await
        }
        .await;
        match written {
            Ok(()) => {
                txn.commit().await?;
                self.committed();
                Ok(view(&row, true)?)
            }
            Err(e) if kg_runtime::db::is_unique_violation(&e) => {
                drop(txn);
                // Another request won the race (a copy of this one is answered by `Key::run`).
                let open = pending_of(&self.db, &row.seller_id).await?;
                Err(RegistrationError::ModificationAlreadyPending(
                    open.map(|o| modification_name(&o.seller_id, &o.modification_id))
                        .unwrap_or_default(),
                ))
            }
            Err(e) => Err(e.into()),
        }
    }
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

    #[test]
    fn names_parse_both_ways() {
        let (s, m) = (
            uuid::Uuid::now_v7().to_string(),
            uuid::Uuid::now_v7().to_string(),
        );
        assert_eq!(
            parse_modification_name(&modification_name(&s, &m)).unwrap(),
            (s.clone(), m)
        );
        assert!(parse_modification_name(&format!("sellers/{s}")).is_err());
        assert!(parse_modification_name("sellers/x/modificationRequests/y").is_err());
    }
}
