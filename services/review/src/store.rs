//! Storage of review tasks, the audit trail, the inbox of processed events and the idempotency
//! keys of staff mutations (tables in `migrations.rs`).

use chrono::{DateTime, Utc};
use sea_orm::entity::prelude::*;
use sea_orm::{ActiveModelTrait, ConnectionTrait, DbErr, IntoActiveModel};

pub mod task {
    use super::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "review_tasks")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub task_id: String,
        pub subject: String,
        pub subject_kind: String,
        pub account_id: String,
        pub company_name: String,
        pub previous_company_name: String,
        pub country: String,
        pub registration_number: String,
        pub state: String,
        pub assignee: Option<String>,
        pub claim_time: Option<DateTime<Utc>>,
        pub submit_time: DateTime<Utc>,
        /// NULL while the clock is stopped (WAITING_ON_APPLICANT) and on CANCELLED tasks.
        pub deadline: Option<DateTime<Utc>>,
        /// Where the working clock (re)started: the effective start of the (re)submission.
        pub clock_start: DateTime<Utc>,
        /// Working time used before the last stop, in microseconds.
        pub used_working_micros: i64,
        pub paused_since: Option<DateTime<Utc>>,
        /// Wall time spent waiting on the applicant, finished pauses only, in microseconds.
        pub paused_micros: i64,
        /// `CheckEvidence` as protobuf bytes.
        pub evidence: Option<Vec<u8>>,
        /// `SellerProfile` as protobuf bytes, without the logo bytes.
        pub profile: Vec<u8>,
        /// The logo bytes, kept for RerunChecks.
        pub logo: Option<Vec<u8>>,
        /// The latest `Decision` as protobuf bytes (without `deliver_time`).
        pub decision: Option<Vec<u8>>,
        /// The outbox event carrying the latest decision.
        pub decision_event_id: Option<String>,
        /// When registration acknowledged the latest decision.
        pub deliver_time: Option<DateTime<Utc>>,
        /// Optimistic concurrency token; the etag.
        pub version: i64,
        pub create_time: DateTime<Utc>,
        pub update_time: DateTime<Utc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod audit {
    use super::*;

    /// One audit entry. Append-only: triggers refuse UPDATE and DELETE.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "review_audit")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub seq: i64,
        pub entry_id: String,
        pub task_id: String,
        pub subject: String,
        pub actor: String,
        pub actor_role: String,
        pub action: String,
        pub before_state: Option<String>,
        pub after_state: String,
        pub comment: String,
        /// Comma-separated catalogue codes (UPPER_SNAKE_CASE, so commas never occur in them).
        pub reason_codes: String,
        pub request_id: String,
        pub action_time: DateTime<Utc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod inbox {
    use super::*;

    /// An event already processed: which RPC, a hash of its body, the task and the outcome.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "review_inbox")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub event_id: String,
        pub rpc: String,
        pub body_sha256: String,
        pub task_id: String,
        pub outcome: String,
        pub receive_time: DateTime<Utc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod request {
    use super::*;

    /// One idempotency key of one caller: which RPC used it, a hash of its body, the task.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "review_requests")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub request_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub caller: String,
        pub rpc: String,
        pub body_sha256: String,
        pub task_id: String,
        pub create_time: DateTime<Utc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Task states as stored (the `ReviewTaskState` names without the prefix).
pub mod state {
    pub const QUEUED: &str = "QUEUED";
    pub const CLAIMED: &str = "CLAIMED";
    pub const WAITING_ON_APPLICANT: &str = "WAITING_ON_APPLICANT";
    pub const APPROVED: &str = "APPROVED";
    pub const REJECTED: &str = "REJECTED";
    pub const CANCELLED: &str = "CANCELLED";

    /// Tasks still to be worked on or waiting for the applicant.
    pub const OPEN: [&str; 3] = [QUEUED, CLAIMED, WAITING_ON_APPLICANT];
    /// Tasks whose clock runs: the ones that can be overdue.
    pub const RUNNING: [&str; 2] = [QUEUED, CLAIMED];
    pub const FINAL: [&str; 3] = [APPROVED, REJECTED, CANCELLED];

    pub fn is_final(state: &str) -> bool {
        FINAL.contains(&state)
    }
}

/// Subject kinds as stored.
pub mod kind {
    pub const APPLICATION: &str = "APPLICATION";
    pub const MODIFICATION_REQUEST: &str = "MODIFICATION_REQUEST";
}

/// Writes `after` over the task if nobody changed it since `before` was read (same version);
/// bumps the version. Returns false when another change won: the caller reads again.
pub async fn update_if_unchanged<C: ConnectionTrait>(
    db: &C,
    before: &task::Model,
    mut after: task::Model,
) -> Result<Option<task::Model>, DbErr> {
    after.version = before.version + 1;
    let result = task::Entity::update_many()
        .set(after.clone().into_active_model().reset_all())
        .filter(task::Column::TaskId.eq(before.task_id.clone()))
        .filter(task::Column::Version.eq(before.version))
        .exec(db)
        .await?;
    Ok((result.rows_affected == 1).then_some(after))
}
