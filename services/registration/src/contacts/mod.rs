//! Contact reachability. The seller guide asks that customers can reach a seller by email;
//! registration keeps track of whether they can:
//!
//! * The contact email and customer-service email of every submission, resubmission and
//!   seller-information change are enrolled (`contact_enroll.rs`): an address not verified yet
//!   gets a code, mailed to it through the outbox (CONTACT_VERIFICATION notification).
//! * VerifyContact checks the code (`contact_handlers.rs`); a verified address stays verified.
//! * NotificationService reports permanent failures (an SMTP 5xx refusal, a bounce report):
//!   the address becomes UNDELIVERABLE (CONTACT_UNDELIVERABLE event, the account is told), and
//!   enough failures within the window mark the account unreachable (SELLER_UNREACHABLE).
//!   Verifying an address again clears both (CONTACT_VERIFIED).
//!
//! This folder is the bottom layer of contacts, what the event log (events.rs), the relay and
//! the handlers all stand on: the stored states, the rules (`Settings`), codes and resource
//! names here, the queries in `query.rs`, the wire view in `view.rs`, the counters in
//! `metrics.rs`. It imports only error, view and store, never a handler or the outbox. Storage
//! is `store::{contact, contact_failure, reachability}`.

pub mod metrics;
pub mod query;
pub mod view;

use chrono::{DateTime, Duration, Utc};
use kg_proto::common::SellerProfile;
use kg_proto::registration::{ContactState, DeliveryFailureSource};
use kg_runtime::error::ServiceError as _;
use sha2::{Digest, Sha256};

use crate::error::RegistrationError;

/// The state of an address, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Pending,
    Verified,
    Undeliverable,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "PENDING",
            State::Verified => "VERIFIED",
            State::Undeliverable => "UNDELIVERABLE",
        }
    }

    pub fn parse(stored: &str) -> Option<State> {
        [State::Pending, State::Verified, State::Undeliverable]
            .into_iter()
            .find(|s| s.as_str() == stored)
    }

    pub fn wire(self) -> ContactState {
        match self {
            State::Pending => ContactState::Pending,
            State::Verified => ContactState::Verified,
            State::Undeliverable => ContactState::Undeliverable,
        }
    }
}

/// Where a permanent failure was learnt, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    SmtpRefusal,
    BounceReport,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::SmtpRefusal => "SMTP_REFUSAL",
            Source::BounceReport => "BOUNCE_REPORT",
        }
    }

    pub fn parse(stored: &str) -> Option<Source> {
        [Source::SmtpRefusal, Source::BounceReport]
            .into_iter()
            .find(|s| s.as_str() == stored)
    }

    pub fn from_wire(value: i32) -> Option<Source> {
        match DeliveryFailureSource::try_from(value).ok()? {
            DeliveryFailureSource::SmtpRefusal => Some(Source::SmtpRefusal),
            DeliveryFailureSource::BounceReport => Some(Source::BounceReport),
            DeliveryFailureSource::Unspecified => None,
        }
    }

    pub fn wire(self) -> DeliveryFailureSource {
        match self {
            Source::SmtpRefusal => DeliveryFailureSource::SmtpRefusal,
            Source::BounceReport => DeliveryFailureSource::BounceReport,
        }
    }
}

/// The rules of verification and reachability (registration's KG_CONTACT_* settings).
#[derive(Debug, Clone)]
pub struct Settings {
    /// How long a mailed code is valid.
    pub code_ttl: Duration,
    /// Wrong codes allowed before a new one is needed.
    pub max_attempts: i32,
    /// Shortest time between two codes mailed to one address.
    pub resend_interval: Duration,
    /// Failures of an account's addresses within `failure_window` that mark it unreachable.
    pub unreachable_failures: u64,
    pub failure_window: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            code_ttl: Duration::hours(24),
            max_attempts: 5,
            resend_interval: Duration::minutes(1),
            unreachable_failures: 3,
            failure_window: Duration::days(30),
        }
    }
}

/// The addresses of a profile that customers use: the contact email and the customer-service
/// email, normalized (trimmed, lower-cased), without duplicates or empties.
pub fn addresses(profile: &SellerProfile) -> Vec<String> {
    let contact = profile.contact.as_ref().map(|c| c.email.as_str());
    let mut out: Vec<String> = Vec::new();
    for email in [
        contact.unwrap_or(""),
        profile.customer_service_email.as_str(),
    ] {
        let email = normalize(email);
        if !email.is_empty() && !out.contains(&email) {
            out.push(email);
        }
    }
    out
}

/// The addresses of `after` that `before` did not have: those a change must verify.
pub fn new_addresses(before: &SellerProfile, after: &SellerProfile) -> Vec<String> {
    let old = addresses(before);
    addresses(after)
        .into_iter()
        .filter(|a| !old.contains(a))
        .collect()
}

pub fn normalize(email: &str) -> String {
    email.trim().to_lowercase()
}

/// Codes are 8 characters of an alphabet without look-alikes (no I, O, 0, 1): 40 bits from the
/// operating system's random source (UUIDv4), entered case-insensitively.
const CODE_ALPHABET: &[u8; 32] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
pub const CODE_LEN: usize = 8;

pub fn new_code() -> String {
    let random = uuid::Uuid::new_v4().into_bytes();
    random[..CODE_LEN]
        .iter()
        .map(|b| CODE_ALPHABET[(*b as usize) % CODE_ALPHABET.len()] as char)
        .collect()
}

/// What is stored of a code: bound to its contact, so a hash is worth nothing elsewhere.
pub fn code_hash(contact_id: &str, code: &str) -> String {
    let code: String = code
        .trim()
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect::<String>()
        .to_uppercase();
    hex::encode(Sha256::digest(format!("{contact_id}:{code}")))
}

pub fn contact_name(account_id: &str, contact_id: &str) -> String {
    format!("accounts/{account_id}/contacts/{contact_id}")
}

/// `accounts/{account_id}/contacts/{contact_id}` → (account_id, contact_id).
pub fn parse_contact_name(name: &str) -> Result<(&str, &str), RegistrationError> {
    let parsed = name
        .strip_prefix("accounts/")
        .and_then(|rest| rest.split_once("/contacts/"))
        .filter(|(account, id)| {
            crate::view::validate_account_id(account).is_ok() && uuid::Uuid::parse_str(id).is_ok()
        });
    parsed.ok_or_else(|| {
        RegistrationError::field(
            "name",
            "NAME_INVALID",
            "name must be accounts/{account_id}/contacts/{contact_id}",
        )
    })
}

/// Failures recorded after this instant count towards "unreachable".
pub fn counting_since(
    now: DateTime<Utc>,
    window: Duration,
    clear_time: Option<DateTime<Utc>>,
) -> DateTime<Utc> {
    let start = now - window;
    clear_time.map_or(start, |cleared| cleared.max(start))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kg_proto::common::Contact as ContactPerson;

    #[test]
    fn profile_addresses_are_normalized_and_deduplicated() {
        let profile = SellerProfile {
            contact: Some(ContactPerson {
                email: "  Sales@Example.COM ".into(),
                ..Default::default()
            }),
            customer_service_email: "sales@example.com".into(),
            ..Default::default()
        };
        assert_eq!(addresses(&profile), vec!["sales@example.com".to_string()]);
        let profile = SellerProfile {
            customer_service_email: "help@example.com".into(),
            ..Default::default()
        };
        assert_eq!(addresses(&profile), vec!["help@example.com".to_string()]);
    }

    #[test]
    fn codes_are_random_unambiguous_and_compared_loosely() {
        let a = new_code();
        let b = new_code();
        assert_ne!(a, b);
        assert_eq!(a.len(), CODE_LEN);
        assert!(a.bytes().all(|c| CODE_ALPHABET.contains(&c)), "{a}");
        let id = "0193a3c4-0000-7000-8000-000000000000";
        let lower = format!(" {} ", a.to_lowercase());
        assert_eq!(code_hash(id, &a), code_hash(id, &lower));
        assert_ne!(code_hash(id, &a), code_hash("other", &a));
    }

    #[test]
    fn names_parse_and_refuse_garbage() {
        let id = uuid::Uuid::now_v7().to_string();
        let name = contact_name("acct-1", &id);
        assert_eq!(parse_contact_name(&name).unwrap(), ("acct-1", id.as_str()));
        for bad in [
            "",
            "accounts/acct-1/contacts/",
            "accounts/a b/contacts/x",
            "sellers/x",
            "accounts/acct-1/contacts/not-a-uuid",
        ] {
            assert!(parse_contact_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn failures_count_from_the_later_of_window_start_and_clearing() {
        let now = Utc::now();
        let window = Duration::days(30);
        assert_eq!(counting_since(now, window, None), now - window);
        let cleared = now - Duration::days(2);
        assert_eq!(counting_since(now, window, Some(cleared)), cleared);
        let long_ago = now - Duration::days(90);
        assert_eq!(counting_since(now, window, Some(long_ago)), now - window);
    }

    #[test]
    fn states_and_sources_round_trip() {
        for s in [State::Pending, State::Verified, State::Undeliverable] {
            assert_eq!(State::parse(s.as_str()), Some(s));
        }
        for s in [Source::SmtpRefusal, Source::BounceReport] {
            assert_eq!(Source::parse(s.as_str()), Some(s));
            assert_eq!(Source::from_wire(s.wire() as i32), Some(s));
        }
        assert_eq!(Source::from_wire(0), None);
        assert_eq!(Source::from_wire(99), None);
    }
}
