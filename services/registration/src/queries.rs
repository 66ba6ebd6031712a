//! GetApplication, ListApplications and WithdrawApplication.

use kg_proto::registration::{
    Application, ApplicationState, ApplicationView, ListApplicationsRequest,
    ListApplicationsResponse, WithdrawApplicationRequest,
};
use kg_runtime::error::ServiceError as _;
use kg_runtime::error::Violations;
use kg_runtime::paging::{self, Paging};
use kg_runtime::stored::StoredCorrupt;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder,
    QuerySelect, Set, TransactionTrait,
};

use crate::app::Registration;
use crate::error::RegistrationError;
use crate::events::EventKind;
use crate::idempotency::Key;
use crate::names::parse_application_name;
use crate::store::{application, state};
use crate::{contacts, outbox, view};

impl Registration {
    pub async fn application_by_name(&self, name: &str) -> Result<Application, RegistrationError> {
        let id = parse_application_name(name)?;
        let row = application::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .ok_or_else(|| RegistrationError::ApplicationNotFound(name.to_string()))?;
        Ok(view::application(&row)?)
    }

    /// GetApplication's read, with the states of the profile's contact addresses. Without the
    /// FULL view the logo column is not even read: the bytes (up to 5 MiB) would cost the
    /// database, the decoder and the wire on every poll, and `logo_sha256` and
    /// `logo_content_type` already say which logo it is. That view, the hot one, is read
    /// together with the other calls in flight (read_batch.rs).
    pub async fn application_view(
        &self,
        name: &str,
        view: ApplicationView,
    ) -> Result<Application, RegistrationError> {
        if view == ApplicationView::Full {
            let mut out = self.application_by_name(name).await?;
            if let Some(profile) = &out.profile {
                let rows = contacts::query::of_profile(&self.db, &out.account_id, profile).await?;
                out.contacts = rows.iter().map(contacts::view::contact).collect();
            }
            return Ok(out);
        }
        let id = parse_application_name(name)?;
        let loaded = self.application_reads.read(id.clone()).await?;
        let (row, of_account) = loaded
            .get(&id)
            .ok_or_else(|| RegistrationError::ApplicationNotFound(name.to_string()))?;
        let mut out = view::application(&row)?;
        if let Some(profile) = &out.profile {
            let rows = contacts::query::of_profile_among(of_account, profile);
            out.contacts = rows.iter().map(contacts::view::contact).collect();
        }
        Ok(out)
    }

    pub async fn list(
        &self,
        req: ListApplicationsRequest,
    ) -> Result<ListApplicationsResponse, RegistrationError> {
        let mut violations = Violations::default();
        let size = paging::page_size(req.page_size, &mut violations);
        violations.check()?;
        let paging = Paging::new(
            size,
            &(
                &req.account_id,
                &req.states,
                &req.country,
                &req.registration_number,
            ),
        );
        let mut query =
            application::Entity::find().order_by_asc(application::Column::ApplicationId);
        if let Some(after) = paging.after::<uuid::Uuid>(&req.page_token)? {
            query = query.filter(application::Column::ApplicationId.gt(after.to_string()));
        }
        if !req.account_id.is_empty() {
            query = query.filter(application::Column::AccountId.eq(req.account_id.clone()));
        }
        let mut states = Vec::new();
        for s in &req.states {
            match ApplicationState::try_from(*s)
                .ok()
                .and_then(view::state_name)
            {
                Some(name) => states.push(name),
                None => {
                    return Err(RegistrationError::field(
                        "states",
                        "STATE_INVALID",
                        "unknown application state",
                    ));
                }
            }
        }
        if !states.is_empty() {
            query = query.filter(application::Column::State.is_in(states));
        }
        if !req.country.is_empty() {
            query =
                query.filter(application::Column::Country.eq(req.country.trim().to_uppercase()));
        }
        if !req.registration_number.is_empty() {
            query = query.filter(
                application::Column::RegistrationNumber
                    .eq(kg_checks::regnum::normalize(&req.registration_number)),
            );
        }
        // Lists leave the logo's bytes out, unread (logo_sha256 stays); GetApplication's FULL
        // view returns them.
        let mut rows = application::without_logo(query)
            .limit(paging.fetch_limit())
            .all(&self.db)
            .await?;
        let next_page_token = paging.finish(&mut rows, |r| r.application_id.clone());
        Ok(ListApplicationsResponse {
            applications: rows
                .iter()
                .map(view::application)
                .collect::<Result<_, StoredCorrupt>>()?,
            next_page_token,
        })
    }

    /// Withdrawing frees the entity and the account: the row leaves the unique indexes.
    /// `actor`: who withdraws (the applicant's account or an operator).
    pub async fn withdraw(
        &self,
        req: WithdrawApplicationRequest,
        actor: &str,
    ) -> Result<Application, RegistrationError> {
        const RPC: &str = "WithdrawApplication";
        let key = Key::new(&req.request_id, RPC, &req)?;
        key.run(
            &self.db,
            self.withdraw_once(&key, req, actor),
            |name| async move { self.application_by_name(&name).await },
        )
        .await
    }

    async fn withdraw_once(
        &self,
        key: &Key,
        req: WithdrawApplicationRequest,
        actor: &str,
    ) -> Result<Application, RegistrationError> {
        let id = parse_application_name(&req.name)?;
        if req.reason.chars().count() > 1000 {
            return Err(RegistrationError::field(
                "reason",
                "REASON_TOO_LONG",
                "at most 1000 characters",
            ));
        }
        let txn = self.db.begin().await?;
        let row = application::Entity::find_by_id(id)
            .one(&txn)
            .await?
            .ok_or_else(|| RegistrationError::ApplicationNotFound(req.name.clone()))?;
        if !state::PENDING.contains(&row.state.as_str()) {
            return Err(RegistrationError::InvalidState(row.state));
        }
        if !req.etag.is_empty() && req.etag != view::etag(row.update_time) {
            return Err(RegistrationError::InvalidState(
                "changed since it was read (etag mismatch)".into(),
            ));
        }
        let now = kg_runtime::db::now();
        let mut active = row.clone().into_active_model();
        active.state = Set(state::WITHDRAWN.to_string());
        active.withdraw_reason = Set(Some(req.reason.clone()));
        active.update_time = Set(now);
        let updated = active.update(&txn).await?;
        key.record(&req.name, now).insert(&txn).await?;
        outbox::announce(
            &txn,
            EventKind::ApplicationWithdrawn,
            &row.account_id,
            &req.name,
            actor,
            &[outbox::REVIEW, outbox::NOTIFICATION],
        )
        .await?;
        txn.commit().await?;
        self.committed();
        Ok(view::application(&updated)?)
    }
}
