//! The RegistrationService trait implementation: each RPC delegates to the module named after it.
//! This is the top of the crate's layering: it imports the application state (app.rs) and the
//! handlers' helpers, and nothing imports it.

use kg_proto::registration::registration_service_server::RegistrationService;
use kg_proto::registration::*;
use kg_runtime::auth::{Caller, Role};
use kg_runtime::error::ServiceError as _;
use tonic::{Request, Response, Status};

use crate::app::Registration;
use crate::error::RegistrationError;
use crate::watch::EventStream;

/// The authenticated caller (see [`Caller::require`]).
fn caller<T>(request: &Request<T>) -> Result<Caller, RegistrationError> {
    Ok(Caller::require(request)?)
}

#[tonic::async_trait]
impl RegistrationService for Registration {
    async fn submit_application(
        &self,
        request: Request<SubmitApplicationRequest>,
    ) -> Result<Response<SubmitApplicationResponse>, Status> {
        let caller = caller(&request)?;
        let mut request = request.into_inner();
        // Applicants apply for their own account only.
        caller
            .scope_account(&mut request.account_id)
            .map_err(RegistrationError::from)?;
        let application = self.submit(request).await?;
        Ok(Response::new(SubmitApplicationResponse {
            application: Some(application),
        }))
    }

    async fn get_application(
        &self,
        request: Request<GetApplicationRequest>,
    ) -> Result<Response<GetApplicationResponse>, Status> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let view = match ApplicationView::try_from(request.view) {
            Ok(ApplicationView::Unspecified) => ApplicationView::Basic,
            Ok(view) => view,
            Err(_) => {
                return Err(
                    RegistrationError::field("view", "VIEW_INVALID", "unknown view").into(),
                );
            }
        };
        let name = request.name;
        let application = self.application_view(&name, view).await?;
        if !caller.may_see(&application.account_id) {
            return Err(RegistrationError::ApplicationNotFound(name).into());
        }
        Ok(Response::new(GetApplicationResponse {
            application: Some(application),
        }))
    }

    async fn list_applications(
        &self,
        request: Request<ListApplicationsRequest>,
    ) -> Result<Response<ListApplicationsResponse>, Status> {
        let caller = caller(&request)?;
        let mut request = request.into_inner();
        caller
            .scope_account(&mut request.account_id)
            .map_err(RegistrationError::from)?;
        Ok(Response::new(self.list(request).await?))
    }

    async fn withdraw_application(
        &self,
        request: Request<WithdrawApplicationRequest>,
    ) -> Result<Response<WithdrawApplicationResponse>, Status> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        if caller.role == Role::Applicant {
            let current = self.application_by_name(&request.name).await?;
            if !caller.may_see(&current.account_id) {
                return Err(RegistrationError::ApplicationNotFound(request.name).into());
            }
        }
        let application = self.withdraw(request, &caller.subject).await?;
        Ok(Response::new(WithdrawApplicationResponse {
            application: Some(application),
        }))
    }

    async fn resubmit_application(
        &self,
        request: Request<ResubmitApplicationRequest>,
    ) -> Result<Response<ResubmitApplicationResponse>, Status> {
        let caller = caller(&request)?;
        let application = self.resubmit(&caller, request.into_inner()).await?;
        Ok(Response::new(ResubmitApplicationResponse {
            application: Some(application),
        }))
    }

    async fn get_seller(
        &self,
        request: Request<GetSellerRequest>,
    ) -> Result<Response<GetSellerResponse>, Status> {
        let caller = caller(&request)?;
        let name = request.into_inner().name;
        let mut seller = self.seller_by_name(&name).await?;
        if !caller.may_see(&seller.account_id) {
            return Err(RegistrationError::SellerNotFound(name).into());
        }
        if let Some(profile) = &seller.profile {
            let rows = crate::contacts::query::of_profile(&self.db, &seller.account_id, profile)
                .await
                .map_err(RegistrationError::from)?;
            seller.contacts = rows.iter().map(crate::contacts::view::contact).collect();
        }
        seller.unreachable =
            crate::contacts::query::unreachable_since(&self.db, &seller.account_id)
                .await
                .map_err(RegistrationError::from)?
                .is_some();
        Ok(Response::new(GetSellerResponse {
            seller: Some(seller),
        }))
    }

    async fn list_sellers(
        &self,
        request: Request<ListSellersRequest>,
    ) -> Result<Response<ListSellersResponse>, Status> {
        let caller = caller(&request)?;
        let mut request = request.into_inner();
        caller
            .scope_account(&mut request.account_id)
            .map_err(RegistrationError::from)?;
        Ok(Response::new(self.list_sellers(request).await?))
    }

    async fn update_seller_info(
        &self,
        request: Request<UpdateSellerInfoRequest>,
    ) -> Result<Response<UpdateSellerInfoResponse>, Status> {
        let caller = caller(&request)?;
        let modification = self.update_info(&caller, request.into_inner()).await?;
        Ok(Response::new(UpdateSellerInfoResponse {
            modification_request: Some(modification),
        }))
    }

    async fn change_company_name(
        &self,
        request: Request<ChangeCompanyNameRequest>,
    ) -> Result<Response<ChangeCompanyNameResponse>, Status> {
        let caller = caller(&request)?;
        let modification = self.rename(&caller, request.into_inner()).await?;
        Ok(Response::new(ChangeCompanyNameResponse {
            modification_request: Some(modification),
        }))
    }

    async fn get_modification_request(
        &self,
        request: Request<GetModificationRequestRequest>,
    ) -> Result<Response<GetModificationRequestResponse>, Status> {
        let caller = caller(&request)?;
        let modification = self
            .get_modification(&caller, &request.into_inner().name)
            .await?;
        Ok(Response::new(GetModificationRequestResponse {
            modification_request: Some(modification),
        }))
    }

    async fn list_modification_requests(
        &self,
        request: Request<ListModificationRequestsRequest>,
    ) -> Result<Response<ListModificationRequestsResponse>, Status> {
        let caller = caller(&request)?;
        let mut request = request.into_inner();
        caller
            .scope_account(&mut request.account_id)
            .map_err(RegistrationError::from)?;
        Ok(Response::new(
            self.list_modifications(&caller, request).await?,
        ))
    }

    async fn withdraw_modification_request(
        &self,
        request: Request<WithdrawModificationRequestRequest>,
    ) -> Result<Response<WithdrawModificationRequestResponse>, Status> {
        let caller = caller(&request)?;
        let modification = self
            .withdraw_modification(&caller, request.into_inner())
            .await?;
        Ok(Response::new(WithdrawModificationRequestResponse {
            modification_request: Some(modification),
        }))
    }

    async fn exit_seller(
        &self,
        request: Request<ExitSellerRequest>,
    ) -> Result<Response<ExitSellerResponse>, Status> {
        let caller = caller(&request)?;
        let seller = self.exit(&caller, request.into_inner()).await?;
        Ok(Response::new(ExitSellerResponse {
            seller: Some(seller),
        }))
    }

    async fn apply_review_decision(
        &self,
        request: Request<ApplyReviewDecisionRequest>,
    ) -> Result<Response<ApplyReviewDecisionResponse>, Status> {
        Ok(Response::new(
            self.apply_decision(request.into_inner()).await?,
        ))
    }

    async fn list_contacts(
        &self,
        request: Request<ListContactsRequest>,
    ) -> Result<Response<ListContactsResponse>, Status> {
        let caller = caller(&request)?;
        Ok(Response::new(
            self.list_contacts(&caller, request.into_inner()).await?,
        ))
    }

    async fn verify_contact(
        &self,
        request: Request<VerifyContactRequest>,
    ) -> Result<Response<VerifyContactResponse>, Status> {
        let caller = caller(&request)?;
        Ok(Response::new(
            self.verify_contact(&caller, request.into_inner()).await?,
        ))
    }

    async fn resend_contact_verification(
        &self,
        request: Request<ResendContactVerificationRequest>,
    ) -> Result<Response<ResendContactVerificationResponse>, Status> {
        let caller = caller(&request)?;
        Ok(Response::new(
            self.resend_contact_verification(&caller, request.into_inner())
                .await?,
        ))
    }

    async fn report_contact_undeliverable(
        &self,
        request: Request<ReportContactUndeliverableRequest>,
    ) -> Result<Response<ReportContactUndeliverableResponse>, Status> {
        let caller = caller(&request)?;
        Ok(Response::new(
            self.report_contact_undeliverable(&caller, request.into_inner())
                .await?,
        ))
    }

    async fn get_seller_agreement(
        &self,
        _request: Request<GetSellerAgreementRequest>,
    ) -> Result<Response<GetSellerAgreementResponse>, Status> {
        Ok(Response::new(crate::agreement::to_wire(&self.agreement)))
    }

    type WatchEventsStream = EventStream;

    async fn watch_events(
        &self,
        request: Request<WatchEventsRequest>,
    ) -> Result<Response<Self::WatchEventsStream>, Status> {
        let caller = caller(&request)?;
        Ok(Response::new(
            self.watch(&caller, request.into_inner()).await?,
        ))
    }
}
