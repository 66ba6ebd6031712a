//! Masking of recipients for RPC output and logs: the full address is stored (it is needed to
//! send) but never returned or logged.
//!
//! * email: the first character of the local part and the domain: `l***@example.com`;
//! * mobile (E.164): the country code and the last four digits, one `*` per hidden digit:
//!   `+86*******8000`.

// The masks are the runtime's, so RPC output and logs hide a recipient the same way everywhere.
pub use kg_runtime::redact::{email, mobile};

/// Replaces every occurrence of `secret` (case-insensitive) in `text` by `masked`: provider
/// error messages may quote the recipient ("550 5.1.1 <li.wei@example.com>: unknown user").
pub fn scrub(text: &str, secret: &str, masked: &str) -> String {
    if secret.is_empty() {
        return text.to_string();
    }
    let lower_text = text.to_lowercase();
    let lower_secret = secret.to_lowercase();
    // lower-casing may change byte lengths outside ASCII; fall back to an exact replace then
    if lower_text.len() != text.len() || lower_secret.len() != secret.len() {
        return text.replace(secret, masked);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = 0;
    for (at, _) in lower_text.match_indices(&lower_secret) {
        if at < rest {
            continue;
        }
        out.push_str(&text[rest..at]);
        out.push_str(masked);
        rest = at + secret.len();
    }
    out.push_str(&text[rest..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_keep_the_first_character_and_the_domain() {
        assert_eq!(email("li.wei@example.com"), "l***@example.com");
        assert_eq!(email("x@example.com"), "x***@example.com");
        assert_eq!(email("张三@例子.中国"), "张***@例子.中国");
        assert_eq!(email(""), "");
        assert_eq!(email("nonsense"), "***");
    }

    #[test]
    fn mobiles_keep_the_country_code_and_four_digits() {
        assert_eq!(mobile("+8613800138000"), "+86*******8000");
        assert_eq!(mobile("+14155550123"), "+1******0123");
        assert_eq!(mobile("+447700900123"), "+44******0123");
        assert_eq!(mobile("+85291234567"), "+852****4567");
        assert_eq!(mobile(""), "");
        assert_eq!(mobile("+123"), "***");
    }

    #[test]
    fn scrub_hides_the_recipient_in_provider_messages() {
        assert_eq!(
            scrub(
                "550 5.1.1 <Li.Wei@Example.com>: unknown",
                "li.wei@example.com",
                "l***@example.com"
            ),
            "550 5.1.1 <l***@example.com>: unknown"
        );
        assert_eq!(scrub("no match", "a@b.c", "a***@b.c"), "no match");
    }
}
