//! Contact data: email address, mobile and phone numbers, the seller introduction, the company
//! name.
//!
//! Each `parse_*` function returns the canonical form to store, so that equal inputs compare equal
//! (`Ops@Example.COM` and `Ops@example.com` are one mailbox), or one finding that says precisely
//! what is wrong.

use unicode_normalization::UnicodeNormalization;

use crate::finding::{Finding, codes, describe_char, is_invisible, quote};
use crate::lang;
use crate::regnum::is_dash;

/// Field name used by [`check_introduction`].
pub const FIELD_INTRODUCTION: &str = "introduction";
/// Field name used by [`check_company_name`].
pub const FIELD_COMPANY_NAME: &str = "company_name";

/// Longest introduction, in characters (Unicode scalar values).
pub const INTRODUCTION_MAX_CHARS: usize = 2000;
/// Longest company name, in characters.
pub const COMPANY_NAME_MAX_CHARS: usize = 200;

/// RFC 5321 §4.5.3.1.1: at most 64 octets in the local part.
pub const EMAIL_MAX_LOCAL: usize = 64;
/// RFC 5321 §4.5.3.1.2: at most 255 octets in the domain.
pub const EMAIL_MAX_DOMAIN: usize = 255;
/// RFC 5321 path limit of 256 octets including the angle brackets (RFC 3696 erratum 1690).
pub const EMAIL_MAX_TOTAL: usize = 254;

// ---------------------------------------------------------------------------------------------
// Email
// ---------------------------------------------------------------------------------------------

/// Validate an email address and return it with its domain lower-cased.
///
/// Rules: ASCII only (internationalized addresses are refused, which also keeps look-alike
/// characters such as Cyrillic `а` out); exactly one `@`; a dot-atom local part (RFC 5322 `atext`
/// characters separated by single dots, no quoted strings) of at most 64 octets; a domain of at
/// most 255 octets made of at least two LDH labels (letters, digits, hyphens, 1–63 octets, not
/// starting or ending with a hyphen) with a non-numeric top-level label; at most 254 octets in all.
/// IP-address literals (`user@[192.0.2.1]`) are refused: a seller contact address has a domain.
/// The local part keeps its case (it is case-sensitive by the RFC); the domain is lower-cased.
pub fn parse_email(field: &str, raw: &str) -> Result<String, Finding> {
    let invalid = |message: String| Finding::error(codes::EMAIL_INVALID, field, message);
    if raw.len() > 4 * EMAIL_MAX_TOTAL {
        return Err(invalid(format!(
            "the email address is {} bytes long; at most {EMAIL_MAX_TOTAL} are allowed",
            raw.len()
        )));
    }
    let address = raw.trim();
    if address.is_empty() {
        return Err(invalid("the email address is required".to_owned()));
    }
    if let Some(c) = address
        .chars()
        .find(|&c| c.is_control() || c.is_whitespace() || is_invisible(c))
    {
        return Err(invalid(format!(
            "the email address contains the character {}, which is not allowed",
            describe_char(c)
        )));
    }
    if let Some(c) = address.chars().find(|c| !c.is_ascii()) {
        return Err(invalid(format!(
            "the email address contains the non-ASCII character {}; only ASCII addresses are supported",
            describe_char(c)
        )));
    }
    if address.len() > EMAIL_MAX_TOTAL {
        return Err(invalid(format!(
            "the email address is {} characters long; at most {EMAIL_MAX_TOTAL} are allowed",
            address.len()
        )));
    }
    let ats = address.bytes().filter(|&b| b == b'@').count();
    if ats == 0 {
        return Err(invalid(
            "the email address has no @ (expected name@example.com)".to_owned(),
        ));
    }
    if ats > 1 {
        return Err(invalid(
            "the email address has more than one @ (quoted local parts are not supported)"
                .to_owned(),
        ));
    }
    let Some((local, domain)) = address.split_once('@') else {
        return Err(invalid("the email address has no @".to_owned()));
    };

    if local.is_empty() {
        return Err(invalid(
            "the email address has nothing before the @".to_owned(),
        ));
    }
    if local.len() > EMAIL_MAX_LOCAL {
        return Err(invalid(format!(
            "the part before the @ is {} characters long; at most {EMAIL_MAX_LOCAL} are allowed",
            local.len()
        )));
    }
    if local.starts_with('.') || local.ends_with('.') {
        return Err(invalid(
            "the part before the @ must not start or end with a dot".to_owned(),
        ));
    }
    if local.contains("..") {
        return Err(invalid(
            "the part before the @ must not contain two dots in a row".to_owned(),
        ));
    }
    if let Some(c) = local.chars().find(|&c| c != '.' && !is_atext(c)) {
        return Err(invalid(format!(
            "the part before the @ contains {}, which is not allowed there",
            describe_char(c)
        )));
    }

    check_email_domain(domain).map_err(invalid)?;
    Ok(format!("{local}@{}", domain.to_ascii_lowercase()))
}

/// RFC 5322 `atext`.
fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c)
}

fn check_email_domain(domain: &str) -> Result<(), String> {
    if domain.is_empty() {
        return Err("the email address has nothing after the @".to_owned());
    }
    if domain.starts_with('[') {
        return Err(
            "IP address literals are not accepted; use an address with a domain name".to_owned(),
        );
    }
    if domain.len() > EMAIL_MAX_DOMAIN {
        return Err(format!(
            "the domain is {} characters long; at most {EMAIL_MAX_DOMAIN} are allowed",
            domain.len()
        ));
    }
    if domain.ends_with('.') {
        return Err("the domain must not end with a dot".to_owned());
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 {
        return Err(format!(
            "the domain {} has no dot; expected a domain such as example.com",
            quote(domain, 64)
        ));
    }
    for label in &labels {
        check_dns_label(label)?;
    }
    if labels
        .last()
        .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err("the top-level domain must not be numeric".to_owned());
    }
    Ok(())
}

fn check_dns_label(label: &str) -> Result<(), String> {
    if label.is_empty() {
        return Err("the domain contains an empty label (two dots in a row)".to_owned());
    }
    if label.len() > 63 {
        return Err(format!(
            "the domain label {} is {} characters long; at most 63 are allowed",
            quote(label, 20),
            label.len()
        ));
    }
    if let Some(c) = label
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || c == '-'))
    {
        return Err(format!(
            "the domain contains {}; only letters, digits, hyphens and dots are allowed",
            describe_char(c)
        ));
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err(format!(
            "the domain label {} must not start or end with a hyphen",
            quote(label, 64)
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Phone numbers
// ---------------------------------------------------------------------------------------------

/// Fewest digits (country code included) accepted in an E.164 number. The shortest national
/// numbers in use (small island states) give 8 with their country code.
pub const E164_MIN_DIGITS: usize = 8;
/// ITU-T E.164: at most 15 digits, country code included.
pub const E164_MAX_DIGITS: usize = 15;
/// Longest extension, in digits.
pub const EXTENSION_MAX_DIGITS: usize = 10;

/// Validate a mobile number in international (E.164) form and return it as `+<digits>`.
///
/// The input may contain spaces, hyphens/dashes, dots and parentheses, may use full-width digits
/// (`＋８６ １３８…`), and may contain the `(0)` trunk-prefix convention (`+44 (0)20 …`), which is
/// dropped. It must start with `+` and the country code; the country code does not start with 0;
/// there are 8 to 15 digits. Without a numbering-plan database the function cannot tell a mobile
/// from a landline number; the SMS provider is the final judge.
pub fn parse_e164(field: &str, raw: &str) -> Result<String, Finding> {
    parse_phone_number(codes::MOBILE_INVALID, "mobile number", field, raw, false)
}

/// Validate a phone number like [`parse_e164`], additionally allowing an extension written as
/// `ext 123`, `ext. 123`, `extension 123`, `x123` or `;ext=123`. Returns `+<digits>` or
/// `+<digits>;ext=<digits>` (the RFC 3966 form).
pub fn parse_phone(field: &str, raw: &str) -> Result<String, Finding> {
    parse_phone_number(codes::PHONE_INVALID, "phone number", field, raw, true)
}

fn parse_phone_number(
    code: &'static str,
    what: &str,
    field: &str,
    raw: &str,
    allow_extension: bool,
) -> Result<String, Finding> {
    let invalid = |message: String| Finding::error(code, field, message);
    if raw.len() > 128 {
        return Err(invalid(format!(
            "the {what} is {} bytes long, which is far too long",
            raw.len()
        )));
    }
    let normalized: String = raw.nfkc().collect();
    let text = normalized.trim();
    if text.is_empty() {
        return Err(invalid(format!("the {what} is required")));
    }

    // Split off the extension at the first character that cannot be part of the number.
    let is_number_char = |c: char| {
        c.is_ascii_digit()
            || c == '+'
            || c == '('
            || c == ')'
            || c == '.'
            || c.is_whitespace()
            || is_dash(c)
    };
    let split = text
        .find(|c: char| !is_number_char(c))
        .unwrap_or(text.len());
    let (number_part, rest) = text.split_at(split);
    let extension = if rest.is_empty() {
        None
    } else {
        if !allow_extension {
            let c = rest.chars().next().unwrap_or(' ');
            return Err(invalid(format!(
                "the {what} contains {}; only digits, a leading +, spaces, hyphens and parentheses are allowed",
                describe_char(c)
            )));
        }
        Some(parse_extension(rest).map_err(|m| invalid(format!("the {what} {m}")))?)
    };

    // "(0)" after the country code is the trunk prefix, not dialled internationally.
    let number_part = number_part.replace("(0)", "");
    let compact: String = number_part
        .chars()
        .filter(|&c| !(c.is_whitespace() || is_dash(c) || c == '(' || c == ')' || c == '.'))
        .collect();
    let Some(digits) = compact.strip_prefix('+') else {
        return Err(invalid(format!(
            "the {what} must start with + and the country code, for example +86 138 0013 8000"
        )));
    };
    if digits.contains('+') {
        return Err(invalid(format!(
            "the {what} may contain + only at the start"
        )));
    }
    if digits.starts_with('0') {
        return Err(invalid(format!(
            "the {what} has a country code starting with 0; write + followed by the country code (for example +86) and the number without its leading 0"
        )));
    }
    let count = digits.len();
    if !(E164_MIN_DIGITS..=E164_MAX_DIGITS).contains(&count) {
        return Err(invalid(format!(
            "the {what} has {count} digits; an international number has {E164_MIN_DIGITS} to {E164_MAX_DIGITS} digits including the country code"
        )));
    }
    Ok(match extension {
        Some(ext) => format!("+{digits};ext={ext}"),
        None => format!("+{digits}"),
    })
}

/// Parse the extension part: a marker followed by 1..=10 digits.
fn parse_extension(rest: &str) -> Result<String, String> {
    let lower = rest.trim().to_ascii_lowercase();
    let after_marker = [";ext=", "extension", "ext.", "ext:", "ext", "x"]
        .iter()
        .find_map(|m| lower.strip_prefix(m));
    let Some(after_marker) = after_marker else {
        let c = rest.chars().next().unwrap_or(' ');
        return Err(format!(
            "contains {}; write an extension as \"ext 123\"",
            describe_char(c)
        ));
    };
    let ext = after_marker.trim_start_matches([' ', '.', ':']).trim_end();
    if ext.is_empty() || !ext.bytes().all(|b| b.is_ascii_digit()) {
        return Err("has an extension that is not a number".to_owned());
    }
    if ext.len() > EXTENSION_MAX_DIGITS {
        return Err(format!(
            "has an extension of {} digits; at most {EXTENSION_MAX_DIGITS} are allowed",
            ext.len()
        ));
    }
    Ok(ext.to_owned())
}

// ---------------------------------------------------------------------------------------------
// Introduction
// ---------------------------------------------------------------------------------------------

/// Check the seller introduction shown to buyers.
///
/// Findings (all errors): `INTRODUCTION_REQUIRED` (empty or only whitespace),
/// `INTRODUCTION_TOO_LONG` (more than [`INTRODUCTION_MAX_CHARS`] characters; nothing else is
/// checked then), `INTRODUCTION_INVALID_CHARACTER` (control characters other than line breaks and
/// tabs, or invisible formatting characters such as zero-width spaces and bidi overrides, which
/// can hide or reorder text), `INTRODUCTION_HAS_LINK` (see [`find_link`]) and
/// `INTRODUCTION_NOT_ENGLISH` (see [`lang::is_english_text`]).
pub fn check_introduction(text: &str) -> Vec<Finding> {
    let field = FIELD_INTRODUCTION;
    if text.trim().is_empty() {
        return vec![Finding::error(
            codes::INTRODUCTION_REQUIRED,
            field,
            "the introduction is required",
        )];
    }
    let chars = text.chars().take(INTRODUCTION_MAX_CHARS + 1).count();
    if chars > INTRODUCTION_MAX_CHARS {
        return vec![Finding::error(
            codes::INTRODUCTION_TOO_LONG,
            field,
            format!(
                "the introduction is longer than {INTRODUCTION_MAX_CHARS} characters ({} in all)",
                text.chars().count()
            ),
        )];
    }

    let mut findings = Vec::new();
    if let Some(c) = text
        .chars()
        .find(|&c| (c.is_control() && !matches!(c, '\n' | '\r' | '\t')) || is_invisible(c))
    {
        findings.push(Finding::error(
            codes::INTRODUCTION_INVALID_CHARACTER,
            field,
            format!(
                "the introduction contains the invisible or control character {}, which is not allowed",
                describe_char(c)
            ),
        ));
    }
    if let Some(link) = find_link(text) {
        findings.push(Finding::error(
            codes::INTRODUCTION_HAS_LINK,
            field,
            format!(
                "the introduction must not contain links, domain names or email addresses; found {}",
                quote(&link, 80)
            ),
        ));
    }
    let guess = lang::is_english_text(text);
    if !guess.english {
        let detected = guess
            .lang
            .map(|l| format!(" (detected language: {l})"))
            .unwrap_or_default();
        findings.push(Finding::error(
            codes::INTRODUCTION_NOT_ENGLISH,
            field,
            format!("the introduction must be written in English{detected}"),
        ));
    }
    findings
}

/// Names that look like domains but are well-known product names.
const NOT_LINKS: &[&str] = &["ado.net", "asp.net", "socket.io", "vb.net"];

/// Generic top-level domains frequent enough to catch "bare" domains (`example.com`). Country-code
/// TLDs (any assigned ISO 3166 code plus `uk`, `eu`, `ac`) are added by [`is_tld`].
const GENERIC_TLDS: &[&str] = &[
    "agency",
    "ai",
    "app",
    "asia",
    "biz",
    "blog",
    "cloud",
    "club",
    "com",
    "company",
    "consulting",
    "design",
    "dev",
    "digital",
    "edu",
    "email",
    "fun",
    "global",
    "gov",
    "group",
    "icu",
    "info",
    "int",
    "link",
    "live",
    "ltd",
    "market",
    "media",
    "mil",
    "mobi",
    "name",
    "net",
    "network",
    "news",
    "online",
    "org",
    "pro",
    "shop",
    "site",
    "software",
    "solutions",
    "space",
    "store",
    "studio",
    "systems",
    "tech",
    "today",
    "top",
    "vip",
    "website",
    "work",
    "world",
    "xyz",
];

fn is_tld(label: &str) -> bool {
    if GENERIC_TLDS.binary_search(&label).is_ok() {
        return true;
    }
    label.len() == 2
        && (matches!(label, "uk" | "eu" | "ac")
            || crate::regnum::is_assigned_country(&label.to_ascii_uppercase()))
}

/// Find the first link-like thing in `text`: a URL with a scheme (`https://…`, `ftp://…`),
/// `www.` names, `mailto:`, an email address, or a bare domain name (`example.com`, with a known
/// top-level domain). Obfuscations are seen through: full-width and ideographic dots (`example。
/// com`), `[.]`/`(.)`/`[dot]`, zero-width characters, upper case. Returns the offending token.
///
/// Bare-domain detection can flag a sentence missing the space after its full stop when the next
/// word is a top-level domain ("…cloud.Online…"); the message quotes the token so the applicant can
/// fix it. A few product names (`ASP.NET`, `Socket.IO`) are exempt.
pub fn find_link(text: &str) -> Option<String> {
    let prepared = prepare_for_link_search(text);
    for marker in ["://", "www.", "mailto:"] {
        if let Some(pos) = prepared.find(marker) {
            return Some(token_around(&prepared, pos));
        }
    }
    let is_token_char =
        |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '@' | '_' | '+' | '%');
    for token in prepared.split(|c: char| !is_token_char(c)) {
        let token = token.trim_matches(|c: char| matches!(c, '.' | '-' | '_' | '+' | '%'));
        if token.is_empty() || !token.contains('.') {
            continue;
        }
        if let Some((local, domain)) = token.rsplit_once('@') {
            if !local.is_empty() && looks_like_host(domain, true) {
                return Some(token.to_owned());
            }
            continue;
        }
        if looks_like_host(token, false) && !NOT_LINKS.contains(&token) {
            return Some(token.to_owned());
        }
    }
    None
}

/// Lower-case, NFKC, ideographic dots to `.`, bracketed dots to `.`, invisible characters removed.
fn prepare_for_link_search(text: &str) -> String {
    let mut prepared: String = text
        .nfkc()
        .filter(|&c| !is_invisible(c))
        .map(|c| match c {
            '\u{3002}' | '\u{FF61}' | '\u{FE52}' | '\u{2024}' => '.',
            other => other.to_ascii_lowercase(),
        })
        .collect();
    for obfuscated in ["[.]", "(.)", "{.}", "[dot]", "(dot)", "{dot}"] {
        if prepared.contains(obfuscated) {
            prepared = prepared.replace(obfuscated, ".");
        }
    }
    prepared
}

/// The whitespace-delimited token around byte offset `pos`.
fn token_around(text: &str, pos: usize) -> String {
    let start = text[..pos].rfind(char::is_whitespace).map_or(0, |i| {
        i + text[i..].chars().next().map_or(1, char::len_utf8)
    });
    let end = text[pos..]
        .find(char::is_whitespace)
        .map_or(text.len(), |i| pos + i);
    text[start..end].to_owned()
}

/// At least two LDH labels and a known (or, for emails, any alphabetic) top-level domain.
fn looks_like_host(candidate: &str, any_tld: bool) -> bool {
    let labels: Vec<&str> = candidate.split('.').collect();
    if labels.len() < 2 {
        return false;
    }
    let labels_ok = labels.iter().all(|l| {
        !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    });
    let Some(tld) = labels.last() else {
        return false;
    };
    let tld_ok = tld.len() >= 2 && tld.bytes().all(|b| b.is_ascii_alphabetic());
    labels_ok && tld_ok && (any_tld || is_tld(tld))
}

// ---------------------------------------------------------------------------------------------
// Company name
// ---------------------------------------------------------------------------------------------

/// Sanity-check a company name and return it in canonical form: Unicode NFC, trimmed, runs of
/// whitespace collapsed to one space.
///
/// The name must match the business licence, which may be in any script (for example
/// `华为技术有限公司`), so no language or character-set rule applies; the check refuses what cannot
/// be a real name: empty, longer than [`COMPANY_NAME_MAX_CHARS`], control or invisible characters,
/// no letter at all.
pub fn check_company_name(raw: &str) -> Result<String, Vec<Finding>> {
    let field = FIELD_COMPANY_NAME;
    if raw.trim().is_empty() {
        return Err(vec![Finding::error(
            codes::COMPANY_NAME_REQUIRED,
            field,
            "the company name is required",
        )]);
    }
    if raw.chars().take(4 * COMPANY_NAME_MAX_CHARS).count() >= 4 * COMPANY_NAME_MAX_CHARS {
        return Err(vec![Finding::error(
            codes::COMPANY_NAME_TOO_LONG,
            field,
            format!("the company name is longer than {COMPANY_NAME_MAX_CHARS} characters"),
        )]);
    }
    let mut findings = Vec::new();
    // Tabs and line breaks are whitespace and collapse below; other controls are refused.
    if let Some(c) = raw
        .chars()
        .find(|&c| (c.is_control() && !matches!(c, '\t' | '\n' | '\r')) || is_invisible(c))
    {
        findings.push(Finding::error(
            codes::COMPANY_NAME_INVALID,
            field,
            format!(
                "the company name contains the invisible or control character {}",
                describe_char(c)
            ),
        ));
    }
    let name: String = raw
        .nfc()
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let length = name.chars().count();
    if length > COMPANY_NAME_MAX_CHARS {
        findings.push(Finding::error(
            codes::COMPANY_NAME_TOO_LONG,
            field,
            format!(
                "the company name has {length} characters; at most {COMPANY_NAME_MAX_CHARS} are allowed"
            ),
        ));
    }
    if !name.chars().any(char::is_alphabetic) {
        findings.push(Finding::error(
            codes::COMPANY_NAME_INVALID,
            field,
            "the company name contains no letters",
        ));
    }
    if findings.is_empty() {
        Ok(name)
    } else {
        Err(findings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tld_list_is_sorted_for_binary_search() {
        let mut sorted = GENERIC_TLDS.to_vec();
        sorted.sort_unstable();
        assert_eq!(sorted, GENERIC_TLDS);
    }

    #[test]
    fn token_around_handles_multibyte() {
        let text = "看 https://例子.com 好";
        let pos = text.find("://").unwrap_or(0);
        assert_eq!(token_around(text, pos), "https://例子.com");
    }
}
