//! What UpdateSellerInfo, ChangeCompanyName, the modification queries and their decisions
//! share: the materials check of a change, the seller a caller may change, and the one
//! transaction that opens a request (request row + idempotency key + outbox events). The live
//! seller is never touched here: only an approval changes it. Resource names are in names.rs,
//! the field-level diff of a seller profile in profile_mask.rs, the stored row as a wire
//! message in view/modification.rs.

use kg_proto::common::SellerProfile;
use kg_proto::registration::ModificationRequest;
use kg_runtime::auth::Caller;
use kg_runtime::error::{CommonError, FieldViolation};
use sea_orm::{ActiveModelTrait, EntityTrait, TransactionTrait};

use crate::app::Registration;
use crate::error::RegistrationError;
use crate::events::EventKind;
use crate::idempotency::Key;
use crate::names::{modification_name, parse_modification_name, parse_seller_name};
use crate::outbox;
use crate::reads::pending_of;
use crate::store::{modification, seller, state};
use crate::view::etag;
use crate::view::modification::view;

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
            .map_err(|s| {
                RegistrationError::from(CommonError::DependencyUnavailable("identity-check", s))
            })?
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
        if !caller.may_see(&row.account_id) {
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
            .filter(|r| caller.may_see(&r.account_id))
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
            return Err(CommonError::EtagMismatch.into());
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
            crate::contact_enroll::enroll(
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
