//! Who may call each RPC of NotificationService (enforced by the auth layer; docs/security.md
//! lists the same matrix). Applicants read their own deliveries only: the handlers see to that.

use kg_runtime::auth::Role;
use kg_runtime::auth::roles::{EVERYONE, NOBODY, SERVICE_ONLY};

pub fn allowed(method: &str) -> &'static [Role] {
    match method {
        "SendNotification" => SERVICE_ONLY,
        "GetNotification" | "ListNotifications" => EVERYONE,
        _ => NOBODY,
    }
}
