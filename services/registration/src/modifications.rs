//! GetModificationRequest, ListModificationRequests and WithdrawModificationRequest.

use kg_proto::registration::{
    ListModificationRequestsRequest, ListModificationRequestsResponse, ModificationKind,
    ModificationRequest, ModificationState, WithdrawModificationRequestRequest,
};
use kg_runtime::auth::Caller;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder,
    QuerySelect, Set, TransactionTrait,
};

use kg_runtime::error::ServiceError as _;
use kg_runtime::error::{CommonError, Violations};
use kg_runtime::paging::{self, Paging};

use crate::app::Registration;
use crate::error::RegistrationError;
use crate::events::EventKind;
use crate::idempotency::Key;
use crate::names::{modification_name, parse_modification_name, parse_seller_name};
use crate::outbox;
use crate::store::{modification, seller, state};
use crate::view::modification::{kind_name, state_name, view};

const WITHDRAW_RPC: &str = "WithdrawModificationRequest";
const MAX_REASON: usize = 1000;

impl Registration {
    /// The stored request `name`, as `caller` may see it (another account's is NOT_FOUND).
    async fn visible_modification(
        &self,
        caller: &Caller,
        name: &str,
    ) -> Result<modification::Model, RegistrationError> {
        let (seller_id, id) = parse_modification_name(name)?;
        let row = modification::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .filter(|r| r.seller_id == seller_id && caller.may_see(&r.account_id))
            .ok_or_else(|| RegistrationError::ModificationNotFound(name.to_string()))?;
        Ok(row)
    }

    pub async fn get_modification(
        &self,
        caller: &Caller,
        name: &str,
    ) -> Result<ModificationRequest, RegistrationError> {
        Ok(view(&self.visible_modification(caller, name).await?, true)?)
    }

    pub async fn list_modifications(
        &self,
        caller: &Caller,
        req: ListModificationRequestsRequest,
    ) -> Result<ListModificationRequestsResponse, RegistrationError> {
        let mut violations = Violations::default();
        let size = paging::page_size(req.page_size, &mut violations);
        violations.check()?;
        let paging = Paging::new(size, &(&req.parent, &req.account_id, &req.states, req.kind));
        // Newest first: ids are UUIDv7, so descending id order is creation order reversed.
        let mut query =
            modification::Entity::find().order_by_desc(modification::Column::ModificationId);
        if req.parent != "sellers/-" {
            let seller_id = parse_seller_name(&req.parent).map_err(|_| {
                RegistrationError::field(
                    "parent",
                    "NAME_INVALID",
                    "expected sellers/{seller_id} or sellers/-",
                )
            })?;
            let found = seller::Entity::find_by_id(seller_id.clone())
                .one(&self.db)
                .await?
                .filter(|s| caller.may_see(&s.account_id));
            if found.is_none() {
                return Err(RegistrationError::SellerNotFound(req.parent.clone()));
            }
            query = query.filter(modification::Column::SellerId.eq(seller_id));
        }
        if let Some(before) = paging.after::<uuid::Uuid>(&req.page_token)? {
            query = query.filter(modification::Column::ModificationId.lt(before.to_string()));
        }
        if !req.account_id.is_empty() {
            query = query.filter(modification::Column::AccountId.eq(req.account_id.clone()));
        }
        let mut states = Vec::new();
        for s in &req.states {
            match ModificationState::try_from(*s).ok().and_then(state_name) {
                Some(name) => states.push(name),
                None => {
                    return Err(RegistrationError::field(
                        "states",
                        "STATE_INVALID",
                        "unknown modification state",
                    ));
                }
            }
        }
        if !states.is_empty() {
            query = query.filter(modification::Column::State.is_in(states));
        }
        if req.kind != ModificationKind::Unspecified as i32 {
            let kind = ModificationKind::try_from(req.kind)
                .ok()
                .and_then(kind_name)
                .ok_or_else(|| {
                    RegistrationError::field("kind", "KIND_INVALID", "unknown modification kind")
                })?;
            query = query.filter(modification::Column::Kind.eq(kind));
        }
        let mut rows = query.limit(paging.fetch_limit()).all(&self.db).await?;
        let next_page_token = paging.finish(&mut rows, |r| r.modification_id.clone());
        Ok(ListModificationRequestsResponse {
            modification_requests: rows
                .iter()
                .map(|r| view(r, false))
                .collect::<Result<_, _>>()?,
            next_page_token,
        })
    }

    /// Withdrawing cancels the review task (outbox → review) and frees the seller for another
    /// request. Idempotent on request_id.
    pub async fn withdraw_modification(
        &self,
        caller: &Caller,
        req: WithdrawModificationRequestRequest,
    ) -> Result<ModificationRequest, RegistrationError> {
        let key = Key::new(&req.request_id, WITHDRAW_RPC, &req)?;
        key.run(
            &self.db,
            self.withdraw_modification_once(caller, &key, req),
            |name| async move { self.modification_by_resource(caller, &name).await },
        )
        .await
    }

    async fn withdraw_modification_once(
        &self,
        caller: &Caller,
        key: &Key,
        req: WithdrawModificationRequestRequest,
    ) -> Result<ModificationRequest, RegistrationError> {
        if req.reason.chars().count() > MAX_REASON {
            return Err(RegistrationError::field(
                "reason",
                "REASON_TOO_LONG",
                "at most 1000 characters",
            ));
        }
        let visible = self.visible_modification(caller, &req.name).await?;
        let txn = self.db.begin().await?;
        let row = modification::Entity::find_by_id(visible.modification_id)
            .one(&txn)
            .await?
            .ok_or_else(|| RegistrationError::ModificationNotFound(req.name.clone()))?;
        if row.state != state::MOD_PENDING {
            return Err(RegistrationError::InvalidModificationState(row.state));
        }
        if !req.etag.is_empty() && req.etag != crate::view::etag(row.update_time) {
            return Err(CommonError::EtagMismatch.into());
        }
        let now = kg_runtime::db::now();
        let name = modification_name(&row.seller_id, &row.modification_id);
        let mut active = row.clone().into_active_model();
        active.state = Set(state::MOD_WITHDRAWN.to_string());
        active.withdraw_reason = Set(Some(req.reason.clone()));
        active.decide_time = Set(Some(now));
        active.update_time = Set(now);
        let updated = active.update(&txn).await?;
        key.record(&name, now).insert(&txn).await?;
        outbox::announce(
            &txn,
            EventKind::ModificationWithdrawn,
            &row.account_id,
            &name,
            &caller.subject,
            &[outbox::REVIEW],
        )
        .await?;
        txn.commit().await?;
        self.committed();
        Ok(view(&updated, true)?)
    }
}
