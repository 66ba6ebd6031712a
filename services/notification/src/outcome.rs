//! The outcome of one send attempt, shared by the dispatcher (`dispatcher.rs`) and the
//! channels that send (`email.rs`, `sms.rs`): the provider's acceptance, a failed attempt and
//! the `last_error_code` values. A leaf: it uses no other module of the crate.

/// `last_error_code` values (see the proto).
pub mod code {
    pub const RECIPIENT_MISSING: &str = "RECIPIENT_MISSING";
    pub const SMTP_TRANSIENT: &str = "SMTP_TRANSIENT";
    pub const SMTP_PERMANENT: &str = "SMTP_PERMANENT";
    pub const SMS_TRANSIENT: &str = "SMS_TRANSIENT";
    pub const SMS_PERMANENT: &str = "SMS_PERMANENT";
    pub const TIMEOUT: &str = "TIMEOUT";
    pub const TEMPLATE_ERROR: &str = "TEMPLATE_ERROR";
}

/// The provider took the message.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub provider_message_id: String,
}

/// A failed attempt.
#[derive(Debug, Clone)]
pub struct SendError {
    pub permanent: bool,
    pub code: &'static str,
    pub message: String,
}

impl SendError {
    /// The SMTP server refused the message for good with a 5xx reply (the message starts with
    /// the reply code): the address is undeliverable. Not an address we could not even parse.
    pub fn is_smtp_refusal(&self) -> bool {
        let b = self.message.as_bytes();
        self.permanent
            && self.code == code::SMTP_PERMANENT
            && b.len() >= 3
            && b[0] == b'5'
            && b[1].is_ascii_digit()
            && b[2].is_ascii_digit()
            && b.get(3).is_none_or(|c| !c.is_ascii_digit())
    }

    pub fn transient(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            permanent: false,
            code,
            message: message.into(),
        }
    }

    pub fn permanent(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            permanent: true,
            code,
            message: message.into(),
        }
    }
}
