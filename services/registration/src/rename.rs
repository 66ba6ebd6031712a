//! ChangeCompanyName: a reviewed change of the seller's company name. The new name must be the
//! account's current verified enterprise name (changed on the My Account page first, read from
//! identity-check); the company entity never changes. On approval the name changes and the
//! name history keeps every earlier name.

use kg_proto::identity::GetAccountRequest;
use kg_proto::registration::{ChangeCompanyNameRequest, ModificationRequest};
use kg_runtime::auth::Caller;

use kg_runtime::error::CommonError;

use crate::app::Registration;
use crate::error::RegistrationError;
use crate::idempotency::Key;
use crate::names::modification_name;
use crate::profile_mask::check_company_name;
use crate::reads::pending_of;
use crate::store::{modification as row, state};
use crate::view;
use crate::view::modification::Change;

pub const RPC: &str = "ChangeCompanyName";

impl Registration {
    pub async fn rename(
        &self,
        caller: &Caller,
        req: ChangeCompanyNameRequest,
    ) -> Result<ModificationRequest, RegistrationError> {
        let key = Key::new(&req.request_id, RPC, &req)?;
        key.run(
            &self.db,
            self.rename_once(caller, &key, req),
            |name| async move { self.modification_by_resource(caller, &name).await },
        )
        .await
    }

    async fn rename_once(
        &self,
        caller: &Caller,
        key: &Key,
        req: ChangeCompanyNameRequest,
    ) -> Result<ModificationRequest, RegistrationError> {
        let seller = self.changeable_seller(caller, &req.name).await?;
        // A different entity is a different company: it needs its own account and registration.
        if let Some(entity) = &req.entity {
            let same = kg_checks::regnum::parse(&entity.country, &entity.registration_number)
                .map(|n| n.entity_key() == seller.entity_key)
                .unwrap_or(false);
            if !same {
                return Err(RegistrationError::EntityImmutable);
            }
        }
        check_company_name(&req.new_company_name)?;
        let new_name = req.new_company_name.trim().to_string();
        if new_name == seller.company_name {
            return Err(RegistrationError::NoChanges);
        }
        if !req.etag.is_empty() && req.etag != view::etag(seller.update_time) {
            return Err(CommonError::EtagMismatch.into());
        }
        if let Some(open) = pending_of(&self.db, &seller.seller_id).await? {
            return Err(RegistrationError::ModificationAlreadyPending(
                modification_name(&open.seller_id, &open.modification_id),
            ));
        }

        let account = match self
            .identity
            .clone()
            .get_account(GetAccountRequest {
                name: format!("accounts/{}", seller.account_id),
            })
            .await
        {
            Ok(reply) => reply.into_inner().account,
            Err(s) if s.code() == tonic::Code::NotFound => None,
            Err(s) => {
                return Err(CommonError::DependencyUnavailable("identity-check", s).into());
            }
        };
        let verified = account
            .filter(|a| a.enterprise_verified)
            .map(|a| a.verified_enterprise_name.trim().to_string())
            .unwrap_or_default();
        if verified.is_empty() || verified != new_name {
            return Err(RegistrationError::CompanyNameNotVerified);
        }

        let now = kg_runtime::db::now();
        let changes = vec![Change {
            path: "company_name".into(),
            old: seller.company_name.clone(),
            new: new_name.clone(),
        }];
        let row = row::Model {
            modification_id: uuid::Uuid::now_v7().to_string(),
            seller_id: seller.seller_id.clone(),
            account_id: seller.account_id.clone(),
            kind: state::KIND_NAME.to_string(),
            state: state::MOD_PENDING.to_string(),
            changes: serde_json::to_string(&changes).unwrap_or_else(|_| "[]".into()),
            proposed_profile: None,
            proposed_logo: None,
            proposed_company_name: Some(new_name),
            previous_company_name: seller.company_name.clone(),
            evidence: None,
            feedback: None,
            withdraw_reason: None,
            create_time: now,
            update_time: now,
            decide_time: None,
            review_deadline: None,
            review_task: None,
        };
        self.open_request(caller, key, row, &req.etag, &[]).await
    }
}
