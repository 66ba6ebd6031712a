//! Masking of recipients for RPC output and logs: the full address is stored (it is needed to
//! send) but never returned or logged.
//!
//! * email: the first character of the local part and the domain: `l***@example.com`;
//! * mobile (E.164): the country code and the last four digits, one `*` per hidden digit:
//!   `+86*******8000`.

/// `li.wei@example.com` → `l***@example.com`.
pub fn email(address: &str) -> String {
    match address.rsplit_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None if address.is_empty() => String::new(),
        None => "***".to_string(),
    }
}

/// `+8613800138000` → `+86*******8000`.
pub fn mobile(number: &str) -> String {
    let digits: String = number.chars().filter(char::is_ascii_digit).collect();
    if digits.len() < 6 {
        return if digits.is_empty() {
            String::new()
        } else {
            "***".to_string()
        };
    }
    let cc = country_code_len(&digits).min(digits.len() - 4);
    let hidden = digits.len() - cc - 4;
    format!(
        "+{}{}{}",
        &digits[..cc],
        "*".repeat(hidden),
        &digits[digits.len() - 4..]
    )
}

/// Length of the ITU-T E.164 country code that starts `digits`: 1 for zones 1 and 7, 2 for the
/// two-digit codes listed below, 3 otherwise.
fn country_code_len(digits: &str) -> usize {
    const TWO_DIGIT: &[&str] = &[
        "20", "27", "30", "31", "32", "33", "34", "36", "39", "40", "41", "43", "44", "45", "46",
        "47", "48", "49", "51", "52", "53", "54", "55", "56", "57", "58", "60", "61", "62", "63",
        "64", "65", "66", "81", "82", "84", "86", "90", "91", "92", "93", "94", "95", "98",
    ];
    if digits.starts_with('1') || digits.starts_with('7') {
        1
    } else if TWO_DIGIT.iter().any(|cc| digits.starts_with(cc)) {
        2
    } else {
        3
    }
}

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
