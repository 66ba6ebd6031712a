//! Storage of applications, sellers, idempotency keys, the outbox and the watch-event log.

use chrono::{DateTime, Utc};
use sea_orm::entity::prelude::*;

pub mod application {
    use super::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "registration_applications")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub application_id: String,
        pub account_id: String,
        pub company_name: String,
        pub country: String,
        pub registration_number: String,
        pub entity_key: String,
        pub state: String,
        pub profile: Vec<u8>,
        pub logo: Option<Vec<u8>>,
        pub agreement: Vec<u8>,
        pub evidence: Option<Vec<u8>>,
        pub feedback: Option<Vec<u8>>,
        pub withdraw_reason: Option<String>,
        pub seller_id: Option<String>,
        pub create_time: DateTime<Utc>,
        pub update_time: DateTime<Utc>,
        pub decide_time: Option<DateTime<Utc>>,
        pub review_deadline: Option<DateTime<Utc>>,
        pub review_task: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}

    use sea_orm::sea_query::Expr;
    use sea_orm::{Iterable, QuerySelect, Select, Value};

    /// `select` without the logo's bytes (`logo` reads as NULL): for the reads that do not show
    /// the image (up to 5 MiB), so that neither the database nor the decoder moves it.
    pub fn without_logo(select: Select<Entity>) -> Select<Entity> {
        select
            .select_only()
            .columns(Column::iter().filter(|c| !matches!(c, Column::Logo)))
            .column_as(Expr::value(Value::Bytes(None)), "logo")
    }

    /// The application `id` without its logo's bytes (see [`without_logo`]).
    pub fn find_without_logo(id: String) -> Select<Entity> {
        without_logo(Entity::find_by_id(id))
    }
}

pub mod seller {
    use super::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "registration_sellers")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub seller_id: String,
        pub account_id: String,
        pub application_id: String,
        pub entity_key: String,
        pub company_name: String,
        pub state: String,
        pub profile: Vec<u8>,
        pub logo: Option<Vec<u8>>,
        pub create_time: DateTime<Utc>,
        pub update_time: DateTime<Utc>,
        pub exit_time: Option<DateTime<Utc>>,
        pub exit_reason: Option<String>,
        /// Who made the seller exit (the audit record of the exit).
        pub exited_by: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod modification {
    use super::*;

    /// A reviewed change of a seller's profile or company name. `changes` is the field-level
    /// diff as JSON; the proposed profile is protobuf bytes without the logo, which is kept in
    /// `proposed_logo` only when it changes.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "registration_modifications")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub modification_id: String,
        pub seller_id: String,
        pub account_id: String,
        pub kind: String,
        pub state: String,
        pub changes: String,
        pub proposed_profile: Option<Vec<u8>>,
        pub proposed_logo: Option<Vec<u8>>,
        pub proposed_company_name: Option<String>,
        pub previous_company_name: String,
        pub evidence: Option<Vec<u8>>,
        pub feedback: Option<Vec<u8>>,
        pub withdraw_reason: Option<String>,
        pub create_time: DateTime<Utc>,
        pub update_time: DateTime<Utc>,
        pub decide_time: Option<DateTime<Utc>>,
        pub review_deadline: Option<DateTime<Utc>>,
        pub review_task: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod name_history {
    use super::*;

    /// One company name of a seller, from `change_time` on; `seq` orders them, oldest first.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "registration_name_history")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub seller_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub seq: i32,
        pub company_name: String,
        pub change_time: DateTime<Utc>,
        pub modification_id: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod request {
    use super::*;

    /// One idempotency key: which RPC used it, a hash of its body, and what it produced.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "registration_requests")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub request_id: String,
        pub rpc: String,
        pub body_sha256: String,
        pub resource: String,
        pub create_time: DateTime<Utc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod event {
    use super::*;

    /// One row of the watch-event log (events.rs). `seq` numbers inserts; `pos`, the stream
    /// position, is given by the sequencer once the row has committed (NULL until then).
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "registration_events")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub seq: i64,
        pub pos: Option<i64>,
        pub event_id: String,
        pub event_type: String,
        pub account_id: String,
        pub application: String,
        pub seller: String,
        pub modification_request: String,
        pub actor: String,
        pub event_time: DateTime<Utc>,
        pub snapshot: Option<Vec<u8>>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Application states as stored.
pub mod state {
    pub const SUBMITTED: &str = "SUBMITTED";
    pub const IN_REVIEW: &str = "IN_REVIEW";
    pub const CHANGES_REQUESTED: &str = "CHANGES_REQUESTED";
    pub const APPROVED: &str = "APPROVED";
    pub const REJECTED: &str = "REJECTED";
    pub const WITHDRAWN: &str = "WITHDRAWN";

    /// The states in which an application holds its entity and its account.
    pub const ACTIVE: [&str; 4] = [SUBMITTED, IN_REVIEW, CHANGES_REQUESTED, APPROVED];
    pub const PENDING: [&str; 3] = [SUBMITTED, IN_REVIEW, CHANGES_REQUESTED];

    pub const SELLER_ACTIVE: &str = "ACTIVE";
    pub const SELLER_EXITED: &str = "EXITED";

    pub const MOD_PENDING: &str = "PENDING_REVIEW";
    pub const MOD_APPROVED: &str = "APPROVED";
    pub const MOD_REJECTED: &str = "REJECTED";
    pub const MOD_WITHDRAWN: &str = "WITHDRAWN";

    pub const KIND_PROFILE: &str = "PROFILE_UPDATE";
    pub const KIND_NAME: &str = "COMPANY_NAME_CHANGE";
}

pub mod contact {
    use super::*;

    /// An email address an account gave as contact or customer-service email (contacts/).
    /// `code_sha256` is the hash of the outstanding verification code, never the code.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "registration_contacts")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub contact_id: String,
        pub account_id: String,
        pub email: String,
        pub state: String,
        pub code_sha256: Option<String>,
        pub code_expire_time: Option<DateTime<Utc>>,
        pub code_sent_time: Option<DateTime<Utc>>,
        pub code_attempts: i32,
        pub verify_time: Option<DateTime<Utc>>,
        pub failure_count: i32,
        pub last_failure: Option<String>,
        pub last_failure_source: Option<String>,
        pub last_failure_time: Option<DateTime<Utc>>,
        pub create_time: DateTime<Utc>,
        pub update_time: DateTime<Utc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod contact_failure {
    use super::*;

    /// One permanent delivery failure reported for a contact; `report_id` deduplicates reports.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "registration_contact_failures")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub report_id: String,
        pub account_id: String,
        pub contact_id: String,
        pub source: String,
        pub failure_time: DateTime<Utc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod reachability {
    use super::*;

    /// Whether an account is marked unreachable (`unreachable_time` set), and since when its
    /// failures count (`clear_time`: the last verification that cleared it).
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "registration_reachability")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub account_id: String,
        pub unreachable_time: Option<DateTime<Utc>>,
        pub clear_time: Option<DateTime<Utc>>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
