//! Storage of the account directory (`identity_accounts`).

use chrono::{DateTime, Utc};
use sea_orm::entity::prelude::*;
use sea_orm::sea_query::OnConflict;
use sea_orm::{DatabaseConnection, Set};

pub mod account {
    use super::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "identity_accounts")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub account_id: String,
        pub verification_type: String,
        pub verified_enterprise_name: String,
        pub registered_address: Option<Json>,
        pub cloud_services_enabled: bool,
        pub csp_program_member: bool,
        pub distribution_partner: bool,
        pub iam_sub_user: bool,
        pub parent_account_id: Option<String>,
        pub partner_administrator: bool,
        pub email: String,
        pub mobile: Option<String>,
        pub locale: String,
        pub verified_country: Option<String>,
        pub verified_registration_number: Option<String>,
        pub create_time: DateTime<Utc>,
        pub update_time: DateTime<Utc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub use account::Model as AccountRow;

/// Inserts or replaces one account; returns true when it was new.
pub async fn upsert(db: &DatabaseConnection, row: AccountRow) -> Result<bool, DbErr> {
    let existed = account::Entity::find_by_id(row.account_id.clone())
        .one(db)
        .await?
        .is_some();
    let active = account::ActiveModel {
        account_id: Set(row.account_id),
        verification_type: Set(row.verification_type),
        verified_enterprise_name: Set(row.verified_enterprise_name),
        registered_address: Set(row.registered_address),
        cloud_services_enabled: Set(row.cloud_services_enabled),
        csp_program_member: Set(row.csp_program_member),
        distribution_partner: Set(row.distribution_partner),
        iam_sub_user: Set(row.iam_sub_user),
        parent_account_id: Set(row.parent_account_id),
        partner_administrator: Set(row.partner_administrator),
        email: Set(row.email),
        mobile: Set(row.mobile),
        locale: Set(row.locale),
        verified_country: Set(row.verified_country),
        verified_registration_number: Set(row.verified_registration_number),
        create_time: Set(row.create_time),
        update_time: Set(row.update_time),
    };
    account::Entity::insert(active)
        .on_conflict(
            OnConflict::column(account::Column::AccountId)
                .update_columns([
                    account::Column::VerificationType,
                    account::Column::VerifiedEnterpriseName,
                    account::Column::RegisteredAddress,
                    account::Column::CloudServicesEnabled,
                    account::Column::CspProgramMember,
                    account::Column::DistributionPartner,
                    account::Column::IamSubUser,
                    account::Column::ParentAccountId,
                    account::Column::PartnerAdministrator,
                    account::Column::Email,
                    account::Column::Mobile,
                    account::Column::Locale,
                    account::Column::VerifiedCountry,
                    account::Column::VerifiedRegistrationNumber,
                    account::Column::UpdateTime,
                ])
                .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    Ok(!existed)
}

pub async fn get(db: &DatabaseConnection, account_id: &str) -> Result<Option<AccountRow>, DbErr> {
    account::Entity::find_by_id(account_id.to_string())
        .one(db)
        .await
}
