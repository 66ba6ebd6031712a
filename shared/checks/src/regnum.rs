//! Company registration numbers.
//!
//! The registration number identifies the *company entity*; together with the country it forms the
//! entity key behind the "one company entity registers once" guarantee. Two spellings of the same
//! number must therefore give the same key, which is what [`normalize`] is for, and a typo must be
//! caught before it creates a phantom second entity, which is what the check characters are for.
//!
//! # Normalization
//! [`normalize`] applies Unicode NFKC (full-width `９１３５` becomes `9135`, `ｍ` becomes `m`),
//! removes every whitespace character (including U+3000 ideographic space and no-break spaces),
//! every hyphen or dash (ASCII `-`, U+2010–U+2015, U+2212 minus, U+FF0D full-width hyphen, the
//! katakana prolonged sound mark `ー` that Chinese and Japanese input methods produce for a dash,
//! and the other Unicode dash punctuation) and invisible format characters (zero-width spaces, soft
//! hyphen, BOM, bidi controls), then upper-cases ASCII letters. Non-ASCII letters are left as they
//! are, so a confusable such as Cyrillic `А` is *reported* instead of silently turning into `A`.
//!
//! # Format table
//! After normalization the number is checked against its country's format:
//!
//! | country | format (`format_name`) | shape | check |
//! |---|---|---|---|
//! | CN | Unified Social Credit Code (GB 32100-2015) | 18 characters of `0-9 A-H J-N P-R T U W-Y` (no I, O, S, V, Z) | 18th character, mod-31 |
//! | HK | Business Registration Number | 8 digits (the first 8 digits of the BR certificate number) | none |
//! | SG | Unique Entity Number (UEN) | `########@` (business), `#########@` (local company), `R##@@####@`, `S##@@####@`, `T##@@####@` (other entities) | none |
//! | GB | Companies House company number | `########` (England and Wales), `@@######` (SC, NI, OC, SO, LP, …), `R0######` | none |
//! | DE | Handelsregister number | `HRA` or `HRB` + 1–6 digits + optional 1–2 letter court suffix (e.g. `HRB12345B`) | none |
//! | US | Employer Identification Number (EIN) | 9 digits, not all zero | none |
//! | FR | SIREN | 9 digits | Luhn |
//! | JP | Corporate Number (法人番号) | 13 digits | first digit, mod-9 (National Tax Agency) |
//! | IN | Corporate Identity Number (CIN) | `L#####@@####@@@######` or `U#####@@####@@@######` (21 characters) | none |
//! | any other | unknown | 3–40 characters of `A-Z 0-9` | none; accepted with the warning `REGISTRATION_NUMBER_FORMAT_UNKNOWN` |
//!
//! In the shapes `#` is a digit, `@` is a letter `A-Z`, and any other character stands for itself.
//!
//! Notes for reviewers: a German register number is unique only within its registry court
//! (Registergericht), and an EIN has no check digit, so for those countries the entity key catches
//! exact duplicates but not every typo.

use unicode_normalization::UnicodeNormalization;

use crate::finding::{Finding, codes, describe_char, is_invisible, quote};

/// Field name used in the findings for the number itself.
pub const FIELD_NUMBER: &str = "registration_number";
/// Field name used in the findings for the country.
pub const FIELD_COUNTRY: &str = "registration_country";

/// Raw inputs longer than this (in bytes) are refused before any normalization work is done: no
/// registration number anywhere comes close, and it bounds the cost of hostile input.
pub const MAX_RAW_BYTES: usize = 256;

/// The alphabet of the Unified Social Credit Code: digits and upper-case letters without I, O, S,
/// V and Z (GB 32100-2015, table 2). The index of a character is its numeric value.
pub const USCC_ALPHABET: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";

/// A validated, normalized company registration number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationNumber {
    /// ISO 3166-1 alpha-2 country code, upper case.
    pub country: String,
    /// The normalized number (see [`normalize`]).
    pub number: String,
    /// The name of the format the number matched, for example `"Unified Social Credit Code"`.
    pub format_name: &'static str,
    /// Warnings (never errors) about an accepted number, for example an unknown format.
    pub warnings: Vec<Finding>,
}

impl RegistrationNumber {
    /// The company entity key: `"<COUNTRY>:<NUMBER>"`, for example `"CN:91350100M000100Y43"`.
    /// This is what the unique indexes and the entity lock are keyed on.
    pub fn entity_key(&self) -> String {
        format!("{}:{}", self.country, self.number)
    }
}

/// Normalize a registration number (or a country code) for comparison and storage: NFKC, remove
/// whitespace, dashes and invisible characters, upper-case ASCII letters.
///
/// Idempotent: `normalize(&normalize(x)) == normalize(&x)` for every string (property-tested).
pub fn normalize(raw: &str) -> String {
    // One pass is enough for real input. Removing characters can, in contrived strings, bring a
    // base character next to a combining mark that NFKC then composes, so repeat until nothing
    // changes; each repeat can only shorten the string, and the bound is a belt-and-braces stop.
    let mut current = normalize_pass(raw);
    for _ in 0..8 {
        let next = normalize_pass(&current);
        if next == current {
            break;
        }
        current = next;
    }
    current
}

fn normalize_pass(raw: &str) -> String {
    raw.nfkc()
        .filter(|&c| !is_separator(c))
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// Characters people put between the groups of a number: whitespace, dashes, invisible format
/// characters.
pub(crate) fn is_separator(c: char) -> bool {
    c.is_whitespace() || is_dash(c) || is_invisible(c)
}

/// Hyphens and dashes (Unicode general category Pd plus the minus sign, the hyphen bullet and the
/// katakana prolonged sound mark that CJK input methods produce for a dash).
pub(crate) fn is_dash(c: char) -> bool {
    matches!(
        c,
        '-' | '\u{058A}' | '\u{05BE}' | '\u{1400}' | '\u{1806}' | '\u{2010}'
            ..='\u{2015}'
                | '\u{2043}'
                | '\u{2212}'
                | '\u{2E17}'
                | '\u{2E1A}'
                | '\u{2E3A}'
                | '\u{2E3B}'
                | '\u{2E40}'
                | '\u{2E5D}'
                | '\u{301C}'
                | '\u{3030}'
                | '\u{30A0}'
                | '\u{30FC}'
                | '\u{FE31}'
                | '\u{FE32}'
                | '\u{FE58}'
                | '\u{FE63}'
                | '\u{FF0D}'
                | '\u{FF70}'
                | '\u{10EAD}'
    )
}

/// Parse and validate a registration number for a country.
///
/// `country` is an ISO 3166-1 alpha-2 code in any case and width (`"cn"`, `"ＣＮ"`). On success the
/// number is normalized; on failure every problem found is returned (length and character
/// problems together, the check character only when those pass).
pub fn parse(country: &str, raw: &str) -> Result<RegistrationNumber, Vec<Finding>> {
    let country = parse_country(country).map_err(|f| vec![f])?;

    if raw.len() > MAX_RAW_BYTES {
        return Err(vec![Finding::error(
            codes::REGISTRATION_NUMBER_LENGTH,
            FIELD_NUMBER,
            format!(
                "the registration number is far too long ({} bytes; no format allows more than 40 characters)",
                raw.len()
            ),
        )]);
    }
    let number = normalize(raw);
    if number.is_empty() {
        return Err(vec![Finding::error(
            codes::REGISTRATION_NUMBER_EMPTY,
            FIELD_NUMBER,
            "the registration number is required",
        )]);
    }

    if country == "CN" {
        validate_uscc(&number)?;
        return Ok(RegistrationNumber {
            country,
            number,
            format_name: "Unified Social Credit Code",
            warnings: Vec::new(),
        });
    }

    if let Some(format) = format_for(&country) {
        validate_with(format, &number)?;
        return Ok(RegistrationNumber {
            country,
            number,
            format_name: format.name,
            warnings: Vec::new(),
        });
    }

    validate_unknown(&number)?;
    let warning = Finding::warning(
        codes::REGISTRATION_NUMBER_FORMAT_UNKNOWN,
        FIELD_NUMBER,
        format!(
            "there is no format rule for registration numbers of {country}; only basic checks were made, a reviewer must verify the number"
        ),
    );
    Ok(RegistrationNumber {
        country,
        number,
        format_name: "unknown",
        warnings: vec![warning],
    })
}

/// Normalize and validate an ISO 3166-1 alpha-2 country code (officially assigned codes only).
pub fn parse_country(raw: &str) -> Result<String, Finding> {
    let invalid =
        |why: String| Finding::error(codes::REGISTRATION_COUNTRY_INVALID, FIELD_COUNTRY, why);
    if raw.len() > 32 {
        return Err(invalid(
            "the country must be a 2-letter ISO 3166-1 code such as CN".to_owned(),
        ));
    }
    let code = normalize(raw);
    if code.is_empty() {
        return Err(invalid(
            "the country is required (a 2-letter ISO 3166-1 code such as CN)".to_owned(),
        ));
    }
    if code == "UK" {
        return Err(invalid(
            "UK is not an ISO 3166-1 code; use GB for the United Kingdom".to_owned(),
        ));
    }
    if code.len() != 2 || !code.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(invalid(format!(
            "the country must be a 2-letter ISO 3166-1 code such as CN, got {}",
            quote(raw, 16)
        )));
    }
    if !is_assigned_country(&code) {
        return Err(invalid(format!(
            "{code} is not an assigned ISO 3166-1 alpha-2 country code"
        )));
    }
    Ok(code)
}

/// All officially assigned ISO 3166-1 alpha-2 codes (249), concatenated.
const ISO_3166_ALPHA2: &str = "ADAEAFAGAIALAMAOAQARASATAUAWAXAZ\
BABBBDBEBFBGBHBIBJBLBMBNBOBQBRBSBTBVBWBYBZ\
CACCCDCFCGCHCICKCLCMCNCOCRCUCVCWCXCYCZ\
DEDJDKDMDODZ\
ECEEEGEHERESET\
FIFJFKFMFOFR\
GAGBGDGEGFGGGHGIGLGMGNGPGQGRGSGTGUGWGY\
HKHMHNHRHTHU\
IDIEILIMINIOIQIRISIT\
JEJMJOJP\
KEKGKHKIKMKNKPKRKWKYKZ\
LALBLCLILKLRLSLTLULVLY\
MAMCMDMEMFMGMHMKMLMMMNMOMPMQMRMSMTMUMVMWMXMYMZ\
NANCNENFNGNINLNONPNRNUNZ\
OM\
PAPEPFPGPHPKPLPMPNPRPSPTPWPY\
QA\
RERORSRURW\
SASBSCSDSESGSHSISJSKSLSMSNSOSRSSSTSVSXSYSZ\
TCTDTFTGTHTJTKTLTMTNTOTRTTTVTWTZ\
UAUGUMUSUYUZ\
VAVCVEVGVIVNVU\
WFWS\
YEYT\
ZAZMZW";

pub(crate) fn is_assigned_country(code: &str) -> bool {
    ISO_3166_ALPHA2
        .as_bytes()
        .chunks_exact(2)
        .any(|pair| pair == code.as_bytes())
}

// ---------------------------------------------------------------------------------------------
// China: Unified Social Credit Code
// ---------------------------------------------------------------------------------------------

fn uscc_value(c: char) -> Option<u32> {
    if !c.is_ascii() {
        return None;
    }
    USCC_ALPHABET
        .iter()
        .position(|&a| a == c as u8)
        .and_then(|p| u32::try_from(p).ok())
}

/// The GB 32100-2015 check character for the first 17 characters of a USCC, or `None` if `body`
/// is not 17 characters of the USCC alphabet. Weight of position i (1-based) is 3^(i-1) mod 31;
/// the check value is (31 − Σ value·weight mod 31) mod 31.
pub fn uscc_check_character(body: &str) -> Option<char> {
    let mut sum: u32 = 0;
    let mut weight: u32 = 1;
    let mut count = 0usize;
    for c in body.chars() {
        let value = uscc_value(c)?;
        sum = (sum + value * weight) % 31;
        weight = (weight * 3) % 31;
        count += 1;
    }
    if count != 17 {
        return None;
    }
    let check = ((31 - sum) % 31) as usize;
    USCC_ALPHABET.get(check).map(|&b| char::from(b))
}

fn validate_uscc(number: &str) -> Result<(), Vec<Finding>> {
    let mut findings = Vec::new();
    let len = number.chars().count();
    if len != 18 {
        findings.push(Finding::error(
            codes::REGISTRATION_NUMBER_LENGTH,
            FIELD_NUMBER,
            format!(
                "a Unified Social Credit Code has 18 characters, expected 18, got {len}{}",
                if len == 15 {
                    " (15-digit business licence numbers were replaced by the 18-character code in 2015)"
                } else {
                    ""
                }
            ),
        ));
    }
    push_character_findings(
        &mut findings,
        number,
        |c| uscc_value(c).is_some(),
        || {
            "a Unified Social Credit Code uses only digits and the letters A-H, J-N, P-R, T, U, W-Y (never I, O, S, V or Z)".to_owned()
        },
    );
    if !findings.is_empty() {
        return Err(findings);
    }

    // Length is 18 and all characters are ASCII, so byte slicing is safe.
    let (body, check) = number.split_at(17);
    let Some(expected) = uscc_check_character(body) else {
        return Err(vec![Finding::error(
            codes::REGISTRATION_NUMBER_CHARACTER,
            FIELD_NUMBER,
            "the Unified Social Credit Code contains characters outside its alphabet",
        )]);
    };
    let found = check.chars().next().unwrap_or(' ');
    if found != expected {
        return Err(vec![Finding::error(
            codes::REGISTRATION_NUMBER_CHECK_CHARACTER,
            FIELD_NUMBER,
            format!(
                "the check character (18th) of the Unified Social Credit Code is wrong: expected '{expected}', found '{found}'; please check the number for typos"
            ),
        )]);
    }
    Ok(())
}

/// Report up to 3 characters that `allowed` refuses, naming the character and its 1-based
/// position.
fn push_character_findings(
    findings: &mut Vec<Finding>,
    number: &str,
    allowed: impl Fn(char) -> bool,
    rule: impl Fn() -> String,
) {
    const MAX_REPORTED: usize = 3;
    let bad: Vec<(usize, char)> = number
        .chars()
        .enumerate()
        .filter(|&(_, c)| !allowed(c))
        .take(MAX_REPORTED + 1)
        .collect();
    for &(index, c) in bad.iter().take(MAX_REPORTED) {
        findings.push(Finding::error(
            codes::REGISTRATION_NUMBER_CHARACTER,
            FIELD_NUMBER,
            format!(
                "character {} at position {} is not allowed: {}",
                describe_char(c),
                index + 1,
                rule()
            ),
        ));
    }
    if bad.len() > MAX_REPORTED {
        findings.push(Finding::error(
            codes::REGISTRATION_NUMBER_CHARACTER,
            FIELD_NUMBER,
            "more characters are not allowed; only the first 3 are listed",
        ));
    }
}

// ---------------------------------------------------------------------------------------------
// The format table for other countries
// ---------------------------------------------------------------------------------------------

/// Which characters a format may contain at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charset {
    /// `0-9` only.
    Digits,
    /// `A-Z` and `0-9`.
    Alphanumeric,
}

impl Charset {
    fn allows(self, c: char) -> bool {
        match self {
            Charset::Digits => c.is_ascii_digit(),
            Charset::Alphanumeric => c.is_ascii_uppercase() || c.is_ascii_digit(),
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Charset::Digits => "only digits are allowed",
            Charset::Alphanumeric => "only letters A-Z and digits are allowed",
        }
    }
}

/// How a number is matched once its length and characters are right.
#[derive(Debug, Clone, Copy)]
pub enum Shape {
    /// Any of these patterns: `#` digit, `@` letter `A-Z`, any other character literal.
    Patterns(&'static [&'static str]),
    /// A hand-written matcher for shapes with variable parts.
    Custom(fn(&str) -> bool),
}

/// A check-digit algorithm: returns `Err((expected, found))` on mismatch.
pub type Checksum = fn(&str) -> Result<(), (char, char)>;

/// One row of the format table (see the module documentation for the whole table).
#[derive(Debug, Clone, Copy)]
pub struct RegistrationFormat {
    /// ISO 3166-1 alpha-2 country code.
    pub country: &'static str,
    /// Name of the number, returned as [`RegistrationNumber::format_name`].
    pub name: &'static str,
    /// Human-readable shape, used in messages.
    pub description: &'static str,
    /// Allowed lengths, inclusive.
    pub min_len: usize,
    /// Allowed lengths, inclusive.
    pub max_len: usize,
    /// Allowed characters.
    pub charset: Charset,
    /// Structural match.
    pub shape: Shape,
    /// Optional check-digit validation.
    pub checksum: Option<Checksum>,
}

/// The format table for countries other than China (China has its own, stricter path).
pub static FORMATS: &[RegistrationFormat] = &[
    RegistrationFormat {
        country: "HK",
        name: "Business Registration Number",
        description: "8 digits (the first 8 digits of the Business Registration Certificate number)",
        min_len: 8,
        max_len: 8,
        charset: Charset::Digits,
        shape: Shape::Patterns(&["########"]),
        checksum: None,
    },
    RegistrationFormat {
        country: "SG",
        name: "Unique Entity Number",
        description: "9 or 10 characters: 8 digits + letter, 9 digits + letter, or R/S/T + 2 digits + 2 letters + 4 digits + letter",
        min_len: 9,
        max_len: 10,
        charset: Charset::Alphanumeric,
        shape: Shape::Patterns(&[
            "########@",
            "#########@",
            "R##@@####@",
            "S##@@####@",
            "T##@@####@",
        ]),
        checksum: None,
    },
    RegistrationFormat {
        country: "GB",
        name: "Companies House company number",
        description: "8 characters: 8 digits, or 2 letters + 6 digits (for example SC123456); pad with leading zeros",
        min_len: 8,
        max_len: 8,
        charset: Charset::Alphanumeric,
        shape: Shape::Patterns(&["########", "@@######", "R0######"]),
        checksum: None,
    },
    RegistrationFormat {
        country: "DE",
        name: "Handelsregister number",
        description: "HRA or HRB followed by 1 to 6 digits and an optional court suffix of 1 or 2 letters (for example HRB 12345 B)",
        min_len: 4,
        max_len: 11,
        charset: Charset::Alphanumeric,
        shape: Shape::Custom(is_handelsregister),
        checksum: None,
    },
    RegistrationFormat {
        country: "US",
        name: "Employer Identification Number",
        description: "9 digits (written XX-XXXXXXX)",
        min_len: 9,
        max_len: 9,
        charset: Charset::Digits,
        shape: Shape::Custom(is_ein),
        checksum: None,
    },
    RegistrationFormat {
        country: "FR",
        name: "SIREN",
        description: "9 digits with a Luhn check digit",
        min_len: 9,
        max_len: 9,
        charset: Charset::Digits,
        shape: Shape::Patterns(&["#########"]),
        checksum: Some(luhn_check),
    },
    RegistrationFormat {
        country: "JP",
        name: "Corporate Number",
        description: "13 digits, the first being the check digit",
        min_len: 13,
        max_len: 13,
        charset: Charset::Digits,
        shape: Shape::Patterns(&["#############"]),
        checksum: Some(japan_corporate_number_check),
    },
    RegistrationFormat {
        country: "IN",
        name: "Corporate Identity Number",
        description: "21 characters: L or U, 5 digits, 2-letter state, 4-digit year, 3-letter ownership type, 6 digits (for example L85110KA1981PLC013115)",
        min_len: 21,
        max_len: 21,
        charset: Charset::Alphanumeric,
        shape: Shape::Patterns(&["L#####@@####@@@######", "U#####@@####@@@######"]),
        checksum: None,
    },
];

/// The table row for a country, if it has one. China is not in the table: see [`parse`].
pub fn format_for(country: &str) -> Option<&'static RegistrationFormat> {
    FORMATS.iter().find(|f| f.country == country)
}

fn validate_with(format: &RegistrationFormat, number: &str) -> Result<(), Vec<Finding>> {
    let mut findings = Vec::new();
    let len = number.chars().count();
    if len < format.min_len || len > format.max_len {
        let expected = if format.min_len == format.max_len {
            format!("{}", format.min_len)
        } else {
            format!("{} to {}", format.min_len, format.max_len)
        };
        findings.push(Finding::error(
            codes::REGISTRATION_NUMBER_LENGTH,
            FIELD_NUMBER,
            format!(
                "a {} ({}) has {expected} characters, expected {expected}, got {len}",
                format.name, format.country
            ),
        ));
    }
    push_character_findings(
        &mut findings,
        number,
        |c| format.charset.allows(c),
        || format!("{} in a {}", format.charset.describe(), format.name),
    );
    if !findings.is_empty() {
        return Err(findings);
    }

    let shaped = match format.shape {
        Shape::Patterns(patterns) => patterns.iter().any(|p| fits_pattern(number, p)),
        Shape::Custom(matcher) => matcher(number),
    };
    if !shaped {
        return Err(vec![Finding::error(
            codes::REGISTRATION_NUMBER_FORMAT,
            FIELD_NUMBER,
            format!(
                "{} does not have the form of a {} ({}): expected {}",
                quote(number, 40),
                format.name,
                format.country,
                format.description
            ),
        )]);
    }

    if let Some(checksum) = format.checksum
        && let Err((expected, found)) = checksum(number)
    {
        return Err(vec![Finding::error(
            codes::REGISTRATION_NUMBER_CHECK_CHARACTER,
            FIELD_NUMBER,
            format!(
                "the check digit of the {} is wrong: expected '{expected}', found '{found}'; please check the number for typos",
                format.name
            ),
        )]);
    }
    Ok(())
}

fn validate_unknown(number: &str) -> Result<(), Vec<Finding>> {
    let mut findings = Vec::new();
    let len = number.chars().count();
    if !(3..=40).contains(&len) {
        findings.push(Finding::error(
            codes::REGISTRATION_NUMBER_LENGTH,
            FIELD_NUMBER,
            format!("a registration number has 3 to 40 characters, got {len}"),
        ));
    }
    push_character_findings(
        &mut findings,
        number,
        |c| c.is_ascii_uppercase() || c.is_ascii_digit(),
        || "only letters A-Z and digits are allowed".to_owned(),
    );
    if findings.is_empty() {
        Ok(())
    } else {
        Err(findings)
    }
}

/// Match `number` against a pattern: `#` digit, `@` letter `A-Z`, other characters literal.
fn fits_pattern(number: &str, pattern: &str) -> bool {
    number.len() == pattern.len()
        && number.bytes().zip(pattern.bytes()).all(|(n, p)| match p {
            b'#' => n.is_ascii_digit(),
            b'@' => n.is_ascii_uppercase(),
            literal => n == literal,
        })
}

/// `HRA`/`HRB` + 1..=6 digits + optional 1..=2 letter suffix.
fn is_handelsregister(number: &str) -> bool {
    let Some(rest) = number
        .strip_prefix("HRA")
        .or_else(|| number.strip_prefix("HRB"))
    else {
        return false;
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let suffix = &rest.as_bytes()[digits..];
    (1..=6).contains(&digits) && suffix.len() <= 2 && suffix.iter().all(u8::is_ascii_uppercase)
}

/// 9 digits, not all zero (the IRS never issues 00-0000000).
fn is_ein(number: &str) -> bool {
    fits_pattern(number, "#########") && number.bytes().any(|b| b != b'0')
}

fn digit(b: u8) -> u32 {
    u32::from(b.wrapping_sub(b'0'))
}

/// Luhn (ISO/IEC 7812-1) over the whole number, the last digit being the check digit.
fn luhn_check(number: &str) -> Result<(), (char, char)> {
    let bytes = number.as_bytes();
    let Some((&last, body)) = bytes.split_last() else {
        return Err(('?', '?'));
    };
    let mut sum = 0u32;
    for (i, &b) in body.iter().rev().enumerate() {
        let mut d = digit(b);
        if i % 2 == 0 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    let expected = (10 - sum % 10) % 10;
    let found = char::from(last);
    let expected = char::from_digit(expected, 10).unwrap_or('?');
    if expected == found {
        Ok(())
    } else {
        Err((expected, found))
    }
}

/// Japan's Corporate Number: check digit = 9 − (Σ Pn·Qn mod 9) where Pn is the n-th digit of the
/// 12-digit base counted from the right and Qn is 1 for odd n and 2 for even n; the check digit is
/// the *first* of the 13 digits.
fn japan_corporate_number_check(number: &str) -> Result<(), (char, char)> {
    let bytes = number.as_bytes();
    let Some((&first, base)) = bytes.split_first() else {
        return Err(('?', '?'));
    };
    let sum: u32 = base
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &b)| digit(b) * if i % 2 == 0 { 1 } else { 2 })
        .sum();
    let expected = char::from_digit(9 - sum % 9, 10).unwrap_or('?');
    let found = char::from(first);
    if expected == found {
        Ok(())
    } else {
        Err((expected, found))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_table_has_249_codes() {
        assert_eq!(ISO_3166_ALPHA2.len(), 249 * 2);
        let mut codes: Vec<&[u8]> = ISO_3166_ALPHA2.as_bytes().chunks_exact(2).collect();
        let sorted = codes.clone();
        codes.sort();
        assert_eq!(codes, sorted, "the table is kept in alphabetical order");
        codes.dedup();
        assert_eq!(codes.len(), 249);
    }

    #[test]
    fn pattern_matching() {
        assert!(fits_pattern("SC123456", "@@######"));
        assert!(!fits_pattern("SC12345", "@@######"));
        assert!(!fits_pattern("1C123456", "@@######"));
        assert!(fits_pattern("T08LL0001A", "T##@@####@"));
    }

    #[test]
    fn handelsregister_shapes() {
        assert!(is_handelsregister("HRB12345"));
        assert!(is_handelsregister("HRB12345B"));
        assert!(is_handelsregister("HRA1"));
        assert!(!is_handelsregister("HRB"));
        assert!(!is_handelsregister("HRC12345"));
        assert!(!is_handelsregister("HRB1234567"));
        assert!(!is_handelsregister("HRB12345ABC"));
        assert!(!is_handelsregister("HRB12A45"));
    }

    #[test]
    fn uscc_weights_match_the_standard_table() {
        // GB 32100-2015 table 3 lists the weights 1 3 9 27 19 26 16 17 20 29 25 13 8 24 10 30 28.
        let mut w = 1u32;
        let mut weights = Vec::new();
        for _ in 0..17 {
            weights.push(w);
            w = w * 3 % 31;
        }
        assert_eq!(
            weights,
            [
                1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28
            ]
        );
    }
}
