//! UpdateSellerInfo: a reviewed change of the seller profile. The request carries the fields
//! named by `update_mask`; the field-level diff against the live profile is what is reviewed and,
//! once approved, applied. Changed materials are checked again by identity-check (refusals have
//! Submit's shapes). The live profile stays as it is until the approval.

use kg_proto::registration::{ModificationRequest, UpdateSellerInfoRequest};
use kg_runtime::auth::Caller;
use prost::Message;
use sha2::{Digest, Sha256};

use kg_runtime::error::CommonError;

use crate::app::Registration;
use crate::error::RegistrationError;
use crate::idempotency::Key;
use crate::names::modification_name;
use crate::profile_mask::{check_proposed, copy_leaf, diff, masked_leaves};
use crate::reads::pending_of;
use crate::store::{modification as row, state};
use crate::view;

pub const RPC: &str = "UpdateSellerInfo";

impl Registration {
    pub async fn update_info(
        &self,
        caller: &Caller,
        req: UpdateSellerInfoRequest,
    ) -> Result<ModificationRequest, RegistrationError> {
        let key = Key::new(&req.request_id, RPC, &req)?;
        key.run(
            &self.db,
            self.update_info_once(caller, &key, req),
            |name| async move { self.modification_by_resource(caller, &name).await },
        )
        .await
    }

    async fn update_info_once(
        &self,
        caller: &Caller,
        key: &Key,
        req: UpdateSellerInfoRequest,
    ) -> Result<ModificationRequest, RegistrationError> {
        let seller = self.changeable_seller(caller, &req.name).await?;
        if !req.etag.is_empty() && req.etag != view::etag(seller.update_time) {
            return Err(CommonError::EtagMismatch.into());
        }
        let leaves = masked_leaves(
            &req.update_mask
                .as_ref()
                .map(|m| m.paths.clone())
                .unwrap_or_default(),
        )?;

        // A live profile that does not decode is refused: a diff against an empty one would
        // propose (and, approved, write) every leaf over the seller's data.
        let mut current = crate::view::seller::live_profile(&seller)?;
        current.logo = seller.logo.clone().unwrap_or_default();
        let mut input = req.profile.clone().unwrap_or_default();
        input.logo_sha256 = if input.logo.is_empty() {
            String::new()
        } else {
            hex::encode(Sha256::digest(&input.logo))
        };
        let mut proposed = current.clone();
        for leaf in &leaves {
            copy_leaf(&mut proposed, &input, leaf);
        }
        let violations = check_proposed(&proposed, &leaves);
        if !violations.is_empty() {
            return Err(CommonError::Invalid(violations).into());
        }
        let changes = diff(&current, &proposed);
        let new_contacts = crate::contacts::new_addresses(&current, &proposed);
        if changes.is_empty() {
            return Err(RegistrationError::NoChanges);
        }
        // Cheap refusal before the materials checks; the transaction checks again.
        if let Some(open) = pending_of(&self.db, &seller.seller_id).await? {
            return Err(RegistrationError::ModificationAlreadyPending(
                modification_name(&open.seller_id, &open.modification_id),
            ));
        }

        // Only the changed materials are checked again (a logo travels with its type).
        let changed = |prefix: &str| changes.iter().any(|c| c.path.starts_with(prefix));
        let check = crate::modification::materials_of(&proposed, changed);
        let materials = self
            .check_changed_materials(check, &req.logo_file_name, &seller.account_id)
            .await?;

        let now = kg_runtime::db::now();
        let logo_changed = changes.iter().any(|c| c.path == "logo");
        let proposed_logo = logo_changed.then(|| std::mem::take(&mut proposed.logo));
        proposed.logo.clear();
        let row = row::Model {
            modification_id: uuid::Uuid::now_v7().to_string(),
            seller_id: seller.seller_id.clone(),
            account_id: seller.account_id.clone(),
            kind: state::KIND_PROFILE.to_string(),
            state: state::MOD_PENDING.to_string(),
            changes: serde_json::to_string(&changes).unwrap_or_else(|_| "[]".into()),
            proposed_profile: Some(proposed.encode_to_vec()),
            proposed_logo,
            proposed_company_name: None,
            previous_company_name: seller.company_name.clone(),
            evidence: materials.evidence.map(|e| e.encode_to_vec()),
            feedback: None,
            withdraw_reason: None,
            create_time: now,
            update_time: now,
            decide_time: None,
            review_deadline: None,
            review_task: None,
        };
        self.open_request(caller, key, row, &req.etag, &new_contacts)
            .await
    }
}
