//! Findings: the common result currency of every check.
//!
//! A check reports what is wrong as a list of findings instead of a single error so that a form
//! with several problems can be fixed in one round trip. The `code` is the machine-readable reason
//! (it ends up in `google.rpc.ErrorInfo.reason` / `BadRequest.FieldViolation`), the `field` names
//! the request field the finding is about, and the `message` is English prose for a person.

use std::fmt;

use serde::Serialize;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Severity {
    /// The input is refused.
    Error,
    /// The input is accepted, but a reviewer should look at it.
    Warning,
}

impl Severity {
    /// `"ERROR"` or `"WARNING"`, stable for logs and APIs.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "ERROR",
            Severity::Warning => "WARNING",
        }
    }
}

/// One problem found in the input.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Finding {
    /// Machine-readable reason code, one of [`codes`].
    pub code: &'static str,
    /// The request field the finding is about (for example `"registration_number"`).
    pub field: String,
    /// A human-readable English explanation. Input echoed into it is escaped and truncated.
    pub message: String,
    /// Whether the input is refused or only flagged.
    pub severity: Severity,
}

impl Finding {
    /// A finding that refuses the input.
    pub fn error(code: &'static str, field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code,
            field: field.into(),
            message: message.into(),
            severity: Severity::Error,
        }
    }

    /// A finding that accepts the input but flags it for a reviewer.
    pub fn warning(
        code: &'static str,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            code,
            field: field.into(),
            message: message.into(),
            severity: Severity::Warning,
        }
    }

    /// True when the finding refuses the input.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} [{}]: {}",
            self.severity.as_str(),
            self.code,
            self.field,
            self.message
        )
    }
}

/// True when none of the findings is an error (warnings do not fail a check).
pub fn passed(findings: &[Finding]) -> bool {
    !findings.iter().any(Finding::is_error)
}

/// Quote a piece of user input for a message: escaped (control characters, bidi overrides and
/// other invisible characters become `\u{..}`), and cut to `max_chars` characters so that a
/// hostile multi-megabyte input cannot blow up logs or responses.
pub(crate) fn quote(input: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(input.len().min(max_chars * 2) + 2);
    out.push('"');
    for (taken, ch) in input.chars().enumerate() {
        if taken >= max_chars {
            out.push('…');
            break;
        }
        if ch == '"' || ch == '\\' {
            out.push('\\');
            out.push(ch);
        } else if ch.is_control() || is_invisible(ch) {
            out.push_str(&format!("\\u{{{:x}}}", ch as u32));
        } else {
            out.push(ch);
        }
    }
    out.push('"');
    out
}

/// Describe one character for a message: `'A'`, or `U+3000` style for anything invisible or
/// non-ASCII (so a confusable like Cyrillic `А` is recognizable as not being Latin `A`).
pub(crate) fn describe_char(ch: char) -> String {
    if ch.is_ascii_graphic() {
        format!("'{ch}'")
    } else if ch.is_control() || is_invisible(ch) || ch.is_whitespace() {
        format!("U+{:04X}", ch as u32)
    } else {
        format!("'{ch}' (U+{:04X})", ch as u32)
    }
}

/// Invisible format characters that can be used to hide or reorder text: zero-width characters,
/// bidirectional controls, the BOM, soft hyphen, word joiner and friends.
pub(crate) fn is_invisible(ch: char) -> bool {
    matches!(
        ch,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{061C}'
            | '\u{115F}'
            | '\u{1160}'
            | '\u{17B4}'
            | '\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{FFF0}'..='\u{FFF8}'
            | '\u{E0000}'..='\u{E007F}'
    )
}

/// The catalogue of every reason code this crate emits. Codes are stable API: services map them to
/// `google.rpc.ErrorInfo.reason`, and clients switch on them.
pub mod codes {
    // registration number
    /// The country code is not an assigned ISO 3166-1 alpha-2 code.
    pub const REGISTRATION_COUNTRY_INVALID: &str = "REGISTRATION_COUNTRY_INVALID";
    /// The registration number is empty (after removing spaces and hyphens).
    pub const REGISTRATION_NUMBER_EMPTY: &str = "REGISTRATION_NUMBER_EMPTY";
    /// The registration number has the wrong length for its country.
    pub const REGISTRATION_NUMBER_LENGTH: &str = "REGISTRATION_NUMBER_LENGTH";
    /// The registration number contains a character its format does not allow.
    pub const REGISTRATION_NUMBER_CHARACTER: &str = "REGISTRATION_NUMBER_CHARACTER";
    /// The registration number does not match its country's format (letters/digits in the wrong
    /// places, wrong prefix).
    pub const REGISTRATION_NUMBER_FORMAT: &str = "REGISTRATION_NUMBER_FORMAT";
    /// The check character (or check digit) is wrong: most often a typo.
    pub const REGISTRATION_NUMBER_CHECK_CHARACTER: &str = "REGISTRATION_NUMBER_CHECK_CHARACTER";
    /// Warning: there is no format rule for the country; only basic sanity was checked.
    pub const REGISTRATION_NUMBER_FORMAT_UNKNOWN: &str = "REGISTRATION_NUMBER_FORMAT_UNKNOWN";

    // contact data
    /// The email address is not a valid address.
    pub const EMAIL_INVALID: &str = "EMAIL_INVALID";
    /// The mobile number is not a valid E.164 number.
    pub const MOBILE_INVALID: &str = "MOBILE_INVALID";
    /// The phone number is not a valid E.164 number (with optional extension).
    pub const PHONE_INVALID: &str = "PHONE_INVALID";
    /// The introduction is missing.
    pub const INTRODUCTION_REQUIRED: &str = "INTRODUCTION_REQUIRED";
    /// The introduction is longer than allowed.
    pub const INTRODUCTION_TOO_LONG: &str = "INTRODUCTION_TOO_LONG";
    /// The introduction contains control or invisible formatting characters.
    pub const INTRODUCTION_INVALID_CHARACTER: &str = "INTRODUCTION_INVALID_CHARACTER";
    /// The introduction is not written in English.
    pub const INTRODUCTION_NOT_ENGLISH: &str = "INTRODUCTION_NOT_ENGLISH";
    /// The introduction contains a link, a domain name or an email address.
    pub const INTRODUCTION_HAS_LINK: &str = "INTRODUCTION_HAS_LINK";
    /// The company name is missing.
    pub const COMPANY_NAME_REQUIRED: &str = "COMPANY_NAME_REQUIRED";
    /// The company name is too long.
    pub const COMPANY_NAME_TOO_LONG: &str = "COMPANY_NAME_TOO_LONG";
    /// The company name contains control/invisible characters or no letters at all.
    pub const COMPANY_NAME_INVALID: &str = "COMPANY_NAME_INVALID";

    // website
    /// The URL is not an acceptable http(s) URL.
    pub const WEBSITE_URL_INVALID: &str = "WEBSITE_URL_INVALID";
    /// The URL (or a redirect, or a DNS answer) points at a forbidden address.
    pub const WEBSITE_ADDRESS_FORBIDDEN: &str = "WEBSITE_ADDRESS_FORBIDDEN";
    /// The host name could not be resolved.
    pub const WEBSITE_DNS_FAILED: &str = "WEBSITE_DNS_FAILED";
    /// The connection failed or timed out.
    pub const WEBSITE_UNREACHABLE: &str = "WEBSITE_UNREACHABLE";
    /// More redirects than allowed.
    pub const WEBSITE_TOO_MANY_REDIRECTS: &str = "WEBSITE_TOO_MANY_REDIRECTS";
    /// The final response was not a 2xx.
    pub const WEBSITE_HTTP_STATUS: &str = "WEBSITE_HTTP_STATUS";
    /// The site does not serve English.
    pub const WEBSITE_NOT_ENGLISH: &str = "WEBSITE_NOT_ENGLISH";

    // logo
    /// The file is larger than allowed.
    pub const LOGO_TOO_LARGE: &str = "LOGO_TOO_LARGE";
    /// The file is not PNG or JPEG (judged by its bytes).
    pub const LOGO_UNSUPPORTED_FORMAT: &str = "LOGO_UNSUPPORTED_FORMAT";
    /// The declared content type or the file name extension disagrees with the bytes.
    pub const LOGO_TYPE_MISMATCH: &str = "LOGO_TYPE_MISMATCH";
    /// The header declares dimensions larger than allowed (decompression bomb guard).
    pub const LOGO_DIMENSIONS_TOO_LARGE: &str = "LOGO_DIMENSIONS_TOO_LARGE";
    /// The image data is truncated or corrupt.
    pub const LOGO_CORRUPT: &str = "LOGO_CORRUPT";
    /// The width/height ratio is too extreme to display.
    pub const LOGO_ASPECT_RATIO: &str = "LOGO_ASPECT_RATIO";
    /// The image is too small to display clearly.
    pub const LOGO_TOO_SMALL: &str = "LOGO_TOO_SMALL";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_escapes_and_truncates() {
        assert_eq!(quote("a\u{0}b\u{202E}\"", 10), "\"a\\u{0}b\\u{202e}\\\"\"");
        assert_eq!(quote("abcdef", 3), "\"abc…\"");
    }

    #[test]
    fn describe_char_marks_non_ascii() {
        assert_eq!(describe_char('I'), "'I'");
        assert_eq!(describe_char('\u{3000}'), "U+3000");
        assert_eq!(describe_char('А'), "'А' (U+0410)");
    }

    #[test]
    fn passed_ignores_warnings() {
        let w = Finding::warning(codes::REGISTRATION_NUMBER_FORMAT_UNKNOWN, "f", "m");
        assert!(passed(std::slice::from_ref(&w)));
        let e = Finding::error(codes::EMAIL_INVALID, "email", "bad");
        assert!(!passed(&[w, e.clone()]));
        assert_eq!(e.to_string(), "ERROR EMAIL_INVALID [email]: bad");
    }
}
