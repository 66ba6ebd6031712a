//! ExitSeller: the seller leaves the marketplace for good. In one transaction the seller becomes
//! EXITED (exit time, reason and who did it are kept as its audit record), a pending
//! modification request is withdrawn (its review task cancelled), and SELLER_EXITED is
//! announced. The seller row stays: its entity and its account are barred from registering
//! again (SubmitApplication: ENTITY_BARRED, ACCOUNT_BARRED).

use kg_proto::registration::{ExitSellerRequest, Seller};
use kg_runtime::auth::Caller;
use sea_orm::{ActiveModelTrait, EntityTrait, IntoActiveModel, Set, TransactionTrait};

use kg_runtime::error::CommonError;
use kg_runtime::error::ServiceError as _;

use crate::app::Registration;
use crate::error::RegistrationError;
use crate::events::EventKind;
use crate::idempotency::Key;
use crate::names::{modification_name, parse_seller_name};
use crate::reads::pending_of;
use crate::store::{seller, state};
use crate::{outbox, view};

pub const RPC: &str = "ExitSeller";
const MAX_REASON: usize = 1000;

impl Registration {
    pub async fn exit(
        &self,
        caller: &Caller,
        req: ExitSellerRequest,
    ) -> Result<Seller, RegistrationError> {
        let key = Key::new(&req.request_id, RPC, &req)?;
        key.run(
            &self.db,
            self.exit_once(caller, &key, req),
            |name| async move {
                let seller = self.seller_by_name(&name).await?;
                if !caller.may_see(&seller.account_id) {
                    return Err(RegistrationError::SellerNotFound(name));
                }
                Ok(seller)
            },
        )
        .await
    }

    async fn exit_once(
        &self,
        caller: &Caller,
        key: &Key,
        req: ExitSellerRequest,
    ) -> Result<Seller, RegistrationError> {
        let id = parse_seller_name(&req.name)?;
        let reason = req.reason.trim();
        if reason.is_empty() {
            return Err(RegistrationError::field(
                "reason",
                "REASON_REQUIRED",
                "say why the seller exits",
            ));
        }
        if reason.chars().count() > MAX_REASON {
            return Err(RegistrationError::field(
                "reason",
                "REASON_TOO_LONG",
                "at most 1000 characters",
            ));
        }
        // Ownership and state are checked on the row read by the transaction.
        self.changeable_seller(caller, &req.name).await?;
        let txn = self.db.begin().await?;
        let row = seller::Entity::find_by_id(id)
            .one(&txn)
            .await?
            .ok_or_else(|| RegistrationError::SellerNotFound(req.name.clone()))?;
        if row.state == state::SELLER_EXITED {
            return Err(RegistrationError::SellerExited(req.name.clone()));
        }
        if !req.etag.is_empty() && req.etag != view::etag(row.update_time) {
            return Err(CommonError::EtagMismatch.into());
        }
        let now = kg_runtime::db::now();
        let seller_name = format!("sellers/{}", row.seller_id);
        let mut withdrawn = None;
        if let Some(open) = pending_of(&txn, &row.seller_id).await? {
            let name = modification_name(&open.seller_id, &open.modification_id);
            let mut active = open.clone().into_active_model();
            active.state = Set(state::MOD_WITHDRAWN.to_string());
            active.withdraw_reason = Set(Some("the seller exited the marketplace".into()));
            active.decide_time = Set(Some(now));
            active.update_time = Set(now);
            active.update(&txn).await?;
            withdrawn = Some(name);
        }
        let mut active = row.clone().into_active_model();
        active.state = Set(state::SELLER_EXITED.to_string());
        active.exit_time = Set(Some(now));
        active.exit_reason = Set(Some(reason.to_string()));
        active.exited_by = Set(Some(format!("{:?}:{}", caller.role, caller.subject)));
        active.update_time = Set(now);
        active.update(&txn).await?;
        key.record(&seller_name, now).insert(&txn).await?;
        // The announcements come last: on PostgreSQL the event log is locked from the first one
        // to commit, and no row lock may be taken while it is held.
        if let Some(name) = withdrawn {
            outbox::announce(
                &txn,
                EventKind::ModificationWithdrawn,
                &row.account_id,
                &name,
                &caller.subject,
                &[outbox::REVIEW],
            )
            .await?;
        }
        outbox::announce(
            &txn,
            EventKind::SellerExited,
            &row.account_id,
            &seller_name,
            &caller.subject,
            &[outbox::NOTIFICATION],
        )
        .await?;
        txn.commit().await?;
        self.committed();
        tracing::info!(seller = %seller_name, actor = %caller.subject, role = ?caller.role, "seller exited");
        self.seller_by_name(&seller_name).await
    }
}
