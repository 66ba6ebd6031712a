//! Who may apply: the pure rules behind CheckEligibility. Every failed condition is reported, each
//! with its own reason and a message that says how to fix it.

use kg_proto::identity::IneligibilityReason;

use crate::account_store::AccountRow;

pub const ENTERPRISE: &str = "ENTERPRISE";

/// The failed conditions of one account, in the order the seller guide lists them.
pub fn failures(account: Option<&AccountRow>) -> Vec<(IneligibilityReason, &'static str)> {
    use IneligibilityReason as R;
    let Some(a) = account else {
        return vec![(
            R::AccountNotFound,
            "No cloud account with this id exists in the account directory. Sign up for a cloud account first.",
        )];
    };
    let mut out = Vec::new();
    if !a.cloud_services_enabled {
        out.push((
            R::CloudServicesNotEnabled,
            "Cloud services are not enabled for this account. Enable them in the console, then apply again.",
        ));
    }
    if a.verification_type != ENTERPRISE {
        out.push((
            R::NotEnterpriseVerified,
            "The account has not completed enterprise real-name verification; individual accounts cannot become sellers. Complete enterprise verification first.",
        ));
    }
    if a.csp_program_member {
        out.push((
            R::CspProgramMember,
            "Members of the Cloud Solution Provider program cannot register as sellers. Leave the CSP program or apply with another enterprise account.",
        ));
    }
    if a.distribution_partner {
        out.push((
            R::DistributionPartner,
            "Distribution (reseller) partners cannot register as sellers. Leave the distribution partner program or use another enterprise account.",
        ));
    }
    if a.iam_sub_user {
        out.push((
            R::IamSubUser,
            "IAM users cannot apply. Sign in with the enterprise account itself (the account that owns the IAM users).",
        ));
    }
    if a.partner_administrator {
        out.push((
            R::PartnerAdministrator,
            "Partner-administrator accounts cannot register as sellers. Apply with the enterprise's own account.",
        ));
    }
    out
}

/// The reason code as callers see it in `google.rpc` details (`NOT_ENTERPRISE_VERIFIED`).
pub fn reason_code(reason: IneligibilityReason) -> &'static str {
    reason
        .as_str_name()
        .strip_prefix("INELIGIBILITY_REASON_")
        .unwrap_or("UNSPECIFIED")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn eligible() -> AccountRow {
        AccountRow {
            account_id: "acc-1".into(),
            verification_type: ENTERPRISE.into(),
            verified_enterprise_name: "Fuzhou Example Software Co., Ltd.".into(),
            registered_address: None,
            cloud_services_enabled: true,
            csp_program_member: false,
            distribution_partner: false,
            iam_sub_user: false,
            parent_account_id: None,
            partner_administrator: false,
            email: "ops@example.com".into(),
            mobile: None,
            locale: "en".into(),
            verified_country: None,
            verified_registration_number: None,
            create_time: Utc::now(),
            update_time: Utc::now(),
        }
    }

    #[test]
    fn an_eligible_account_has_no_failures() {
        assert!(failures(Some(&eligible())).is_empty());
    }

    #[test]
    fn every_failed_condition_is_reported_at_once() {
        let mut a = eligible();
        a.cloud_services_enabled = false;
        a.verification_type = "INDIVIDUAL".into();
        a.csp_program_member = true;
        a.distribution_partner = true;
        a.iam_sub_user = true;
        a.partner_administrator = true;
        let codes: Vec<_> = failures(Some(&a))
            .into_iter()
            .map(|(r, _)| reason_code(r))
            .collect();
        assert_eq!(
            codes,
            [
                "CLOUD_SERVICES_NOT_ENABLED",
                "NOT_ENTERPRISE_VERIFIED",
                "CSP_PROGRAM_MEMBER",
                "DISTRIBUTION_PARTNER",
                "IAM_SUB_USER",
                "PARTNER_ADMINISTRATOR"
            ]
        );
    }

    #[test]
    fn a_missing_account_is_one_failure() {
        let f = failures(None);
        assert_eq!(f.len(), 1);
        assert_eq!(reason_code(f[0].0), "ACCOUNT_NOT_FOUND");
    }
}
