//! The Seller Agreement applicants accept: its current version ships with the service (the text
//! is compiled in from `services/registration/agreements/`), and GetSellerAgreement serves it so
//! that a client needs nothing but proto/ to compute `text_sha256`.

use kg_proto::registration::GetSellerAgreementResponse;
use sha2::Digest;

/// The agreement version applicants must accept, and the SHA-256 of its text.
#[derive(Debug, Clone)]
pub struct Agreement {
    pub version: String,
    pub text_sha256: String,
    /// What GetSellerAgreement serves besides the two above.
    pub text: String,
    pub effective_date: String,
}

/// The version SubmitApplication accepts.
pub const VERSION: &str = "2026-01";
/// Its text, byte for byte what GetSellerAgreement serves and `text_sha256` hashes.
pub const TEXT: &str = include_str!("../agreements/seller-agreement-2026-01.txt");
/// The calendar date the version took effect (ISO 8601).
pub const EFFECTIVE_DATE: &str = "2026-01-01";

/// The current agreement.
pub fn current() -> Agreement {
    Agreement {
        version: VERSION.to_string(),
        text_sha256: hex::encode(sha2::Sha256::digest(TEXT.as_bytes())),
        text: TEXT.to_string(),
        effective_date: EFFECTIVE_DATE.to_string(),
    }
}

/// The GetSellerAgreement reply for `agreement`.
pub fn to_wire(agreement: &Agreement) -> GetSellerAgreementResponse {
    GetSellerAgreementResponse {
        version: agreement.version.clone(),
        text: agreement.text.clone(),
        text_sha256: agreement.text_sha256.clone(),
        effective_date: agreement.effective_date.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_served_hash_is_the_hash_of_the_served_text() {
        let reply = to_wire(&current());
        assert_eq!(reply.version, VERSION);
        assert_eq!(
            reply.text_sha256,
            hex::encode(sha2::Sha256::digest(reply.text.as_bytes()))
        );
        assert!(reply.text.contains("version 2026-01"), "{}", reply.text);
        assert!(chrono::NaiveDate::parse_from_str(&reply.effective_date, "%Y-%m-%d").is_ok());
    }
}
