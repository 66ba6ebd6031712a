//! The IdentityCheckService trait implementation: each RPC parses its request, calls the module
//! that does the work and maps the result.

use chrono::Utc;
use kg_proto::identity::identity_check_service_server::IdentityCheckService;
use kg_proto::identity::*;
use kg_runtime::auth::Caller;
use kg_runtime::error::CommonError;
use kg_runtime::error::ServiceError as _;
use sea_orm::DatabaseConnection;
use tonic::{Request, Response, Status};

use crate::account_store;
use crate::accounts::{self, MAX_IMPORT};
use crate::convert::{finding, outcome, timestamp};
use crate::eligibility;
use crate::error::IdentityError;
use crate::materials::MaterialsChecker;

/// The account directory holds personal data: every change is logged with who made it, the
/// email and mobile masked (kg_runtime::redact).
fn log_saved(caller: &Caller, row: &account_store::AccountRow, created: bool) {
    tracing::info!(
        caller = %caller.subject,
        account_id = %row.account_id,
        email = %kg_runtime::redact::email(&row.email),
        mobile = %kg_runtime::redact::mobile(row.mobile.as_deref().unwrap_or_default()),
        created,
        "account directory: account saved"
    );
}

pub struct IdentityCheck {
    db: DatabaseConnection,
    checker: MaterialsChecker,
}

impl IdentityCheck {
    pub fn new(db: DatabaseConnection, checker: MaterialsChecker) -> Self {
        Self { db, checker }
    }
}

#[tonic::async_trait]
impl IdentityCheckService for IdentityCheck {
    async fn upsert_account(
        &self,
        request: Request<UpsertAccountRequest>,
    ) -> Result<Response<UpsertAccountResponse>, Status> {
        let caller = Caller::require(&request).map_err(IdentityError::from)?;
        let account = request.into_inner().account.ok_or_else(|| {
            IdentityError::field("account", "FIELD_REQUIRED", "account is required")
        })?;
        let row = accounts::to_row("account.", &account)?;
        let created = account_store::upsert(&self.db, row.clone())
            .await
            .map_err(IdentityError::from)?;
        log_saved(&caller, &row, created);
        let stored = account_store::get(&self.db, &row.account_id)
            .await
            .map_err(IdentityError::from)?
            .unwrap_or(row);
        Ok(Response::new(UpsertAccountResponse {
            account: Some(accounts::to_wire(&stored)),
            created,
        }))
    }

    async fn import_accounts(
        &self,
        request: Request<ImportAccountsRequest>,
    ) -> Result<Response<ImportAccountsResponse>, Status> {
        let caller = Caller::require(&request).map_err(IdentityError::from)?;
        let request = request.into_inner();
        if request.accounts.len() > MAX_IMPORT {
            return Err(IdentityError::ImportTooLarge(request.accounts.len(), MAX_IMPORT).into());
        }
        let mut response = ImportAccountsResponse::default();
        for (index, account) in request.accounts.iter().enumerate() {
            let row = match accounts::to_row(&format!("accounts[{index}]."), account) {
                Ok(row) => row,
                Err(IdentityError::Common(CommonError::Invalid(violations))) => {
                    response.failed_count += 1;
                    let first = violations.into_iter().next().unwrap_or_default();
                    response.errors.push(ImportAccountError {
                        index: index as i32,
                        account_id: account.account_id.clone(),
                        reason: first.reason,
                        message: format!("{}: {}", first.field, first.description),
                    });
                    continue;
                }
                Err(other) => return Err(other.into()),
            };
            let created = account_store::upsert(&self.db, row.clone())
                .await
                .map_err(IdentityError::from)?;
            log_saved(&caller, &row, created);
            if created {
                response.created_count += 1;
            } else {
                response.updated_count += 1;
            }
        }
        Ok(Response::new(response))
    }

    async fn get_account(
        &self,
        request: Request<GetAccountRequest>,
    ) -> Result<Response<GetAccountResponse>, Status> {
        let caller = Caller::require(&request).map_err(IdentityError::from)?;
        let id = accounts::parse_name(&request.into_inner().name)?;
        if !caller.may_see(&id) {
            return Err(IdentityError::AccountNotFound(id).into());
        }
        let row = account_store::get(&self.db, &id)
            .await
            .map_err(IdentityError::from)?
            .ok_or(IdentityError::AccountNotFound(id))?;
        Ok(Response::new(GetAccountResponse {
            account: Some(accounts::to_wire(&row)),
        }))
    }

    async fn check_eligibility(
        &self,
        request: Request<CheckEligibilityRequest>,
    ) -> Result<Response<CheckEligibilityResponse>, Status> {
        let caller = Caller::require(&request).map_err(IdentityError::from)?;
        let id = request.into_inner().account_id;
        accounts::validate_id("account_id", &id)?;
        if !caller.may_see(&id) {
            return Err(IdentityError::from(CommonError::NotOwner).into());
        }
        let row = account_store::get(&self.db, &id)
            .await
            .map_err(IdentityError::from)?;
        let failures: Vec<_> = eligibility::failures(row.as_ref())
            .into_iter()
            .map(|(reason, message)| EligibilityFailure {
                reason: reason as i32,
                message: message.to_string(),
            })
            .collect();
        Ok(Response::new(CheckEligibilityResponse {
            eligible: failures.is_empty(),
            failures,
            verified_enterprise_name: row
                .as_ref()
                .map(|r| r.verified_enterprise_name.clone())
                .unwrap_or_default(),
            registered_address: row.as_ref().and_then(accounts::address_of),
            verified_entity: row.as_ref().and_then(accounts::entity_of),
            checked_time: Some(timestamp(Utc::now())),
        }))
    }

    async fn check_materials(
        &self,
        request: Request<CheckMaterialsRequest>,
    ) -> Result<Response<CheckMaterialsResponse>, Status> {
        let request = request.into_inner();
        let profile = request.profile.unwrap_or_default();
        let (results, evidence) = self
            .checker
            .all(
                request.entity.as_ref(),
                &profile,
                &request.logo_file_name,
                request.require_complete,
            )
            .await;
        Ok(Response::new(CheckMaterialsResponse {
            outcome: evidence.outcome,
            results,
            evidence: Some(evidence),
        }))
    }

    async fn check_registration_number(
        &self,
        request: Request<CheckRegistrationNumberRequest>,
    ) -> Result<Response<CheckRegistrationNumberResponse>, Status> {
        let checked = self
            .checker
            .registration_number(request.into_inner().entity.as_ref());
        Ok(Response::new(CheckRegistrationNumberResponse {
            outcome: outcome(&checked.findings) as i32,
            findings: checked.findings.iter().map(finding).collect(),
            evidence: Some(checked.evidence),
        }))
    }

    async fn check_website(
        &self,
        request: Request<CheckWebsiteRequest>,
    ) -> Result<Response<CheckWebsiteResponse>, Status> {
        let checked = self
            .checker
            .website(&request.into_inner().website_url)
            .await;
        Ok(Response::new(CheckWebsiteResponse {
            outcome: outcome(&checked.findings) as i32,
            findings: checked.findings.iter().map(finding).collect(),
            evidence: Some(checked.evidence),
        }))
    }

    async fn check_logo(
        &self,
        request: Request<CheckLogoRequest>,
    ) -> Result<Response<CheckLogoResponse>, Status> {
        let request = request.into_inner();
        let checked = self
            .checker
            .logo(&request.logo, &request.content_type, &request.file_name);
        Ok(Response::new(CheckLogoResponse {
            outcome: outcome(&checked.findings) as i32,
            findings: checked.findings.iter().map(finding).collect(),
            evidence: Some(checked.evidence),
        }))
    }
}
