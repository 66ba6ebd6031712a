//! Who may call each RPC of IdentityCheckService (enforced by the auth layer; docs/security.md
//! lists the same matrix). Applicants read and check only their own account: the handlers see to
//! that.

use kg_runtime::auth::Role;
use kg_runtime::auth::roles::{EVERYONE, NOBODY, OPERATOR_AND_SERVICE};

pub fn allowed(method: &str) -> &'static [Role] {
    match method {
        "UpsertAccount" | "ImportAccounts" => OPERATOR_AND_SERVICE,
        "GetAccount"
        | "CheckEligibility"
        | "CheckMaterials"
        | "CheckRegistrationNumber"
        | "CheckWebsite"
        | "CheckLogo" => EVERYONE,
        _ => NOBODY,
    }
}
