//! Pure domain checks for KooGallery seller registration.
//!
//! Every check here is a plain function (or a small configured struct) that takes user input and
//! returns either a normalized value or a list of [`finding::Finding`]s with machine-readable
//! codes. Nothing here touches a database or holds state, so the services can call the checks from
//! request handlers, tests can call them directly, and the fuzzers can hammer them.
//!
//! Design rules, followed throughout:
//! - **Never panic on input.** No `unwrap` on anything derived from input; all indexing is checked.
//! - **Bounded work.** Every input is length-capped before expensive processing (normalization,
//!   language detection, image decoding, HTTP bodies).
//! - **Fail closed.** When a check cannot decide (DNS failure, unreadable header), it reports an
//!   error finding instead of passing.
//!
//! Modules:
//! - [`finding`]: the finding type and the catalogue of reason codes.
//! - [`regnum`]: company registration numbers (China's Unified Social Credit Code and a table of
//!   other countries' formats) and the entity key used for the once-per-entity guarantee.
//! - [`contact`]: email, E.164 mobile and phone numbers, the introduction text.
//! - [`lang`]: English detection shared by the website check and the introduction check.
//! - [`urlguard`]: the SSRF guard (URL parsing policy, forbidden address ranges, pinned DNS).
//! - [`website`]: the website reachability + English check built on the guard.
//! - [`logo`]: the logo image check (magic bytes, dimensions before decode, bounded decode).

pub mod contact;
pub mod finding;
pub mod lang;
pub mod logo;
pub mod regnum;
pub mod urlguard;
pub mod website;

pub use finding::{Finding, Severity};
