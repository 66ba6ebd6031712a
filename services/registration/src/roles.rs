//! Who may call each RPC of RegistrationService (enforced by the auth layer; docs/security.md
//! lists the same matrix). Applicants act for their own account only: the handlers see to that.

use kg_runtime::auth::Role::{self, Applicant, Operator};
use kg_runtime::auth::roles::{APPLICANT_AND_STAFF, EVERYONE, NOBODY, SERVICE_ONLY};

pub fn allowed(method: &str) -> &'static [Role] {
    match method {
        "ApplyReviewDecision" | "ReportContactUndeliverable" => SERVICE_ONLY,
        "ListContacts" => EVERYONE,
        "VerifyContact" | "ResendContactVerification" => &[Applicant, Operator],
        "SubmitApplication"
        | "ResubmitApplication"
        | "UpdateSellerInfo"
        | "ChangeCompanyName"
        | "WithdrawModificationRequest" => &[Applicant],
        "WithdrawApplication" | "ExitSeller" => &[Applicant, Operator],
        "GetApplication"
        | "ListApplications"
        | "GetSeller"
        | "ListSellers"
        | "GetModificationRequest"
        | "ListModificationRequests" => APPLICANT_AND_STAFF,
        // Applicants follow their own account only.
        "WatchEvents" => EVERYONE,
        // The agreement text is public to every signed-in caller.
        "GetSellerAgreement" => EVERYONE,
        _ => NOBODY,
    }
}
