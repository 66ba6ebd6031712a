//! Match keys of duplicate signals: pure functions, no database.
//!
//! A review task's profile is reduced at creation (and whenever its profile changes) to a few
//! normalized keys, stored in `review_task_keys` (see `signals.rs`) so that the tasks sharing
//! one are found by indexed equality lookups at read time:
//!
//! | kind | key | from |
//! |---|---|---|
//! | `DOMAIN` | registrable domain of the website host (`shop.acme.com.cn` → `acme.com.cn`), by the Public Suffix List compiled into the `psl` crate (ICANN and private sections, so `acme.github.io` stays `acme.github.io`); IDN hosts in their ASCII (punycode) form; an IP-address website is keyed by its canonical address (`127.0.0.1`, `::1`), the port ignored | `profile.website_url` |
//! | `MOBILE` | `+` and the digits (`+86 138-0013-8000` → `+8613800138000`; a leading `00` counts as `+`) | `profile.contact.mobile` |
//! | `EMAIL` | the whole address, NFKC and lower-cased | `profile.contact.email`, `profile.customer_service_email` |
//! | `NAME_PREFIX`, `NAME_SUFFIX` | the first and the last [`NAME_BLOCK`] characters of the normalized company name | `company_name` |
//!
//! **Company names** are normalized by [`normalize_name`]: Unicode NFKC (full-width forms
//! become ASCII), lower case, legal-form words removed from the end (`Co., Ltd.`, `Limited`,
//! `Inc.`, `GmbH`, `有限公司`, `股份有限公司`, `株式会社` …, see [`LEGAL_WORDS`] and
//! [`LEGAL_SUFFIXES`]), and everything that is not a letter or digit dropped (punctuation,
//! whitespace, emoji). Two names are *similar* when the normalized Levenshtein similarity of
//! their normalized forms (`strsim::normalized_levenshtein`: 1 − edits / longer length, counted
//! in characters) is at least [`SIMILARITY_THRESHOLD`] = 0.9: one edit per ten characters.
//!
//! **Candidates of similar names** are the tasks sharing the first or the last [`NAME_BLOCK`] =
//! 5 characters of the normalized name. This finds every pair within one edit: below 10
//! characters the threshold allows no edit at all (identical names share both blocks), and from
//! 10 characters on one edit cannot touch both the first five and the last five characters.
//! Limits: names of 20 characters or more may be within two edits, and a pair whose edits touch
//! both ends is missed; very common prefixes or endings (`beiji…`, `…ology`) give large blocks,
//! of which only a bounded number of candidates is compared (see `signals.rs`).

use std::net::IpAddr;

use psl::Psl as _;
use unicode_normalization::UnicodeNormalization;

/// The lowest similarity of two normalized company names that is a signal.
pub const SIMILARITY_THRESHOLD: f64 = 0.9;
/// Characters of the prefix and suffix blocks of a normalized name.
pub const NAME_BLOCK: usize = 5;
/// Input is cut to this many characters before any normalization (bounded work).
const MAX_INPUT_CHARS: usize = 512;
/// The longest key stored (a domain name is at most 253 bytes, an email 254).
pub const MAX_KEY_BYTES: usize = 254;

/// Kinds of match keys as stored.
pub mod kind {
    pub const DOMAIN: &str = "DOMAIN";
    pub const MOBILE: &str = "MOBILE";
    pub const EMAIL: &str = "EMAIL";
    pub const NAME_PREFIX: &str = "NAME_PREFIX";
    pub const NAME_SUFFIX: &str = "NAME_SUFFIX";

    /// The kinds matched by equality of the whole key.
    pub const EXACT: [&str; 3] = [DOMAIN, MOBILE, EMAIL];
    /// The kinds that only make a name a candidate for the similarity measure.
    pub const NAME_BLOCKS: [&str; 2] = [NAME_PREFIX, NAME_SUFFIX];
}

/// Legal-form words (after lower-casing), removed while they end the name: "Acme Cloud Co.,
/// Ltd." → "acme cloud". Only at the end, so that a word such as "company" or "limited" inside
/// a name is kept.
pub const LEGAL_WORDS: &[&str] = &[
    "co",
    "company",
    "corp",
    "corporation",
    "inc",
    "incorporated",
    "ltd",
    "limited",
    "llc",
    "llp",
    "lp",
    "plc",
    "pte",
    "pty",
    "gmbh",
    "ag",
    "kg",
    "bv",
    "nv",
    "sa",
    "sas",
    "sarl",
    "srl",
    "spa",
    "oy",
    "ab",
    "kk",
    "lda",
    "bhd",
    "sdn",
    "pvt",
];

/// CJK legal forms (after NFKC), removed from the end of the last word (CJK names have no
/// spaces); longest first, so that 股份有限公司 goes whole. 株式会社 and 주식회사 are also
/// removed from the start of the first word (they may stand before the name).
pub const LEGAL_SUFFIXES: &[&str] = &[
    "股份有限公司",
    "有限责任公司",
    "有限責任公司",
    "股份公司",
    "有限公司",
    "株式会社",
    "有限会社",
    "合同会社",
    "주식회사",
    "유한회사",
    "公司",
];
const LEGAL_PREFIXES: &[&str] = &["株式会社", "有限会社", "주식회사"];

fn bounded(raw: &str) -> String {
    raw.chars().take(MAX_INPUT_CHARS).nfkc().collect()
}

/// The registrable domain of a website URL (see the module documentation); `None` when there
/// is no usable host.
pub fn registrable_domain(website_url: &str) -> Option<String> {
    let raw = website_url.trim();
    if raw.is_empty() || raw.len() > 2048 {
        return None;
    }
    let url = match url::Url::parse(raw) {
        Ok(url) => url,
        // "www.acme.com": a host without a scheme
        Err(url::ParseError::RelativeUrlWithoutBase) => {
            url::Url::parse(&format!("http://{raw}")).ok()?
        }
        Err(_) => return None,
    };
    if !matches!(url.scheme(), "http" | "https") {
        return None;
    }
    let host = match url.host()? {
        url::Host::Ipv4(ip) => return Some(IpAddr::V4(ip).to_string()),
        url::Host::Ipv6(ip) => return Some(IpAddr::V6(ip).to_string()),
        // Special schemes (http, https) give the host lower-cased and in punycode.
        url::Host::Domain(d) => d.trim_end_matches('.').to_ascii_lowercase(),
    };
    if host.is_empty() || host.len() > 253 || !host.contains('.') {
        return None;
    }
    // The list names IDN suffixes (公司.cn) in Unicode: look the Unicode form up and keep as
    // many labels of the ASCII form as the registrable domain has.
    let (unicode, errors) = idna::domain_to_unicode(&host);
    let labels = match errors {
        Ok(()) => psl::List
            .domain(unicode.as_bytes())
            .map(|d| d.as_bytes().split(|b| *b == b'.').count()),
        Err(_) => None,
    }
    .or_else(|| {
        psl::List
            .domain(host.as_bytes())
            .map(|d| d.as_bytes().split(|b| *b == b'.').count())
    })?;
    let parts: Vec<&str> = host.split('.').collect();
    let start = parts.len().checked_sub(labels)?;
    let domain = parts[start..].join(".");
    (!domain.is_empty()).then_some(domain)
}

/// The match key of a mobile number: `+` and its digits (see the module documentation); `None`
/// for fewer than 6 or more than 15 digits, or letters in it.
pub fn mobile_key(raw: &str) -> Option<String> {
    let text = bounded(raw);
    let text = text.trim();
    let (international, rest) = if let Some(rest) = text.strip_prefix('+') {
        (true, rest)
    } else if let Some(rest) = text.strip_prefix("00") {
        (true, rest)
    } else {
        (false, text)
    };
    let mut digits = String::new();
    for c in rest.chars() {
        match c {
            '0'..='9' => digits.push(c),
            ' ' | '-' | '.' | '(' | ')' | '\u{a0}' => {}
            _ => return None,
        }
    }
    if !(6..=15).contains(&digits.len()) {
        return None;
    }
    Some(if international {
        format!("+{digits}")
    } else {
        digits
    })
}

/// The match key of an email address: NFKC, trimmed, lower case (compared without regard to
/// case); `None` unless it has one `@` with text on both sides.
pub fn email_key(raw: &str) -> Option<String> {
    let key = bounded(raw).trim().to_lowercase();
    let (local, domain) = key.split_once('@')?;
    if local.is_empty()
        || domain.is_empty()
        || domain.contains('@')
        || key.len() > MAX_KEY_BYTES
        || key.chars().any(char::is_whitespace)
    {
        return None;
    }
    Some(key)
}

/// The normalized company name (see the module documentation): lower-case letters and digits
/// only; empty when nothing is left.
pub fn normalize_name(raw: &str) -> String {
    let folded = bounded(raw).to_lowercase();
    let mut words: Vec<String> = folded
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect();
    let original = words.clone();
    if let Some(first) = words.first_mut()
        && let Some(prefix) = LEGAL_PREFIXES.iter().find(|p| first.starts_with(**p))
    {
        first.drain(..prefix.len());
    }
    words.retain(|w| !w.is_empty());
    while let Some(last) = words.last_mut() {
        if LEGAL_WORDS.contains(&last.as_str()) {
            words.pop();
            continue;
        }
        match LEGAL_SUFFIXES.iter().find(|s| last.ends_with(**s)) {
            Some(suffix) => {
                let keep = last.len() - suffix.len();
                last.truncate(keep);
                if last.is_empty() {
                    words.pop();
                }
            }
            None => break,
        }
    }
    if words.is_empty() {
        // A name made only of legal-form words ("Limited Company") is kept as it is.
        words = original;
    }
    words.concat()
}

/// The prefix and suffix blocks of a normalized name (see the module documentation).
pub fn name_blocks(normalized: &str) -> Vec<(&'static str, String)> {
    if normalized.is_empty() {
        return Vec::new();
    }
    let chars: Vec<char> = normalized.chars().collect();
    let n = chars.len();
    let prefix: String = chars[..n.min(NAME_BLOCK)].iter().collect();
    let suffix: String = chars[n.saturating_sub(NAME_BLOCK)..].iter().collect();
    vec![(kind::NAME_PREFIX, prefix), (kind::NAME_SUFFIX, suffix)]
}

/// Similarity of two normalized names, 0 to 1 (normalized Levenshtein distance over
/// characters); 0 when either is empty. Lengths further apart than the threshold allows are
/// rejected before the quadratic measure.
pub fn similarity(a: &str, b: &str) -> f64 {
    let (la, lb) = (a.chars().count(), b.chars().count());
    if la == 0 || lb == 0 {
        return 0.0;
    }
    let (short, long) = (la.min(lb) as f64, la.max(lb) as f64);
    if 1.0 - (long - short) / long < SIMILARITY_THRESHOLD {
        return 1.0 - (long - short) / long; // an upper bound, already below the threshold
    }
    strsim::normalized_levenshtein(a, b)
}

/// Whether two normalized names are similar enough to be a signal.
pub fn is_similar(a: &str, b: &str) -> bool {
    similarity(a, b) >= SIMILARITY_THRESHOLD
}

/// The match keys of one task.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Keys {
    pub domain: Option<String>,
    pub mobile: Option<String>,
    pub emails: Vec<String>,
    /// The normalized company name (may be empty).
    pub name: String,
}

impl Keys {
    pub fn of(website_url: &str, mobile: &str, emails: &[&str], company_name: &str) -> Keys {
        let mut found: Vec<String> = emails.iter().filter_map(|e| email_key(e)).collect();
        found.sort();
        found.dedup();
        Keys {
            domain: registrable_domain(website_url).filter(|d| d.len() <= MAX_KEY_BYTES),
            mobile: mobile_key(mobile),
            emails: found,
            name: normalize_name(company_name),
        }
    }

    /// The rows to store: `(kind, key)`, each pair once.
    pub fn rows(&self) -> Vec<(&'static str, String)> {
        let mut rows = Vec::new();
        if let Some(d) = &self.domain {
            rows.push((kind::DOMAIN, d.clone()));
        }
        if let Some(m) = &self.mobile {
            rows.push((kind::MOBILE, m.clone()));
        }
        for e in &self.emails {
            rows.push((kind::EMAIL, e.clone()));
        }
        rows.extend(name_blocks(&self.name));
        rows.dedup();
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registrable_domains_follow_the_public_suffix_list() {
        for (url, want) in [
            ("https://shop.acme.com/", "acme.com"),
            ("https://www.acme.com/en?x=1", "acme.com"),
            ("http://ACME.COM.", "acme.com"),
            ("https://www.acme.com.cn/", "acme.com.cn"),
            ("https://shop.acme.co.uk:8443/x", "acme.co.uk"),
            ("https://a.b.c.acme.com.au", "acme.com.au"),
            ("https://acme.github.io/", "acme.github.io"),
            ("www.acme.com", "acme.com"),
            ("https://acme.unknowntld", "acme.unknowntld"),
        ] {
            assert_eq!(registrable_domain(url).as_deref(), Some(want), "{url}");
        }
    }

    #[test]
    fn idn_domains_are_keyed_in_punycode_whichever_form_was_sent() {
        let unicode = registrable_domain("https://www.例子.公司.cn/").unwrap();
        let puny = registrable_domain("https://shop.xn--fsqu00a.xn--55qx5d.cn/").unwrap();
        assert_eq!(unicode, puny);
        // 公司.cn is a public suffix: the registrable domain has three labels.
        assert_eq!(unicode, "xn--fsqu00a.xn--55qx5d.cn");
        assert_eq!(
            registrable_domain("https://www.bücher.de/").as_deref(),
            Some("xn--bcher-kva.de")
        );
        assert_eq!(
            registrable_domain("https://SHOP.BÜCHER.DE/"),
            registrable_domain("https://xn--bcher-kva.de/")
        );
    }

    #[test]
    fn ip_websites_are_keyed_by_address_and_junk_has_no_key() {
        assert_eq!(
            registrable_domain("http://127.0.0.2:8080/en").as_deref(),
            Some("127.0.0.2")
        );
        assert_eq!(
            registrable_domain("http://[::1]:80/").as_deref(),
            Some("::1")
        );
        assert_eq!(
            registrable_domain("http://203.0.113.7/"),
            registrable_domain("https://203.0.113.7:8443/shop")
        );
        for junk in [
            "",
            "   ",
            "http://",
            "https://localhost/",
            "https://com.cn/",
            "https://co.uk",
            "mailto:someone@acme.com",
            "🙂🙂🙂",
            &"a".repeat(5000),
            &format!("https://{}.com/", "a".repeat(300)),
        ] {
            assert_eq!(registrable_domain(junk), None, "{junk:.40}");
        }
    }

    #[test]
    fn mobiles_keep_plus_and_digits() {
        assert_eq!(
            mobile_key("+86 138 0013 8000").as_deref(),
            Some("+8613800138000")
        );
        assert_eq!(
            mobile_key("+86-138-0013-8000"),
            mobile_key("0086 13800138000")
        );
        // Full-width digits and plus (NFKC)
        assert_eq!(
            mobile_key("＋８６１３８００１３８０００").as_deref(),
            Some("+8613800138000")
        );
        assert_eq!(mobile_key("13800138000").as_deref(), Some("13800138000"));
        for junk in [
            "",
            "+",
            "+86",
            "call me",
            "+86 138 0013 8000 ext 5",
            "🙂",
            "+1234567890123456",
        ] {
            assert_eq!(mobile_key(junk), None, "{junk}");
        }
    }

    #[test]
    fn emails_compare_without_case() {
        assert_eq!(
            email_key("  Li.Wei@Example.COM ").as_deref(),
            Some("li.wei@example.com")
        );
        assert_eq!(
            email_key("ＬＩ@example.com").as_deref(),
            Some("li@example.com")
        );
        for junk in ["", "@", "a@", "@b", "a@b@c", "a b@c.d", "no-at-sign"] {
            assert_eq!(email_key(junk), None, "{junk}");
        }
        assert_eq!(email_key(&format!("{}@x.com", "a".repeat(300))), None);
    }

    #[test]
    fn names_lose_case_width_punctuation_and_legal_forms() {
        for (raw, want) in [
            ("Acme Cloud Co., Ltd.", "acmecloud"),
            ("ACME CLOUD LIMITED", "acmecloud"),
            ("Acme-Cloud, Inc.", "acmecloud"),
            ("Ａｃｍｅ　Ｃｌｏｕｄ　Ｃｏ．，Ｌｔｄ．", "acmecloud"),
            ("Acme Cloud GmbH & Co. KG", "acmecloud"),
            ("北京云端科技有限公司", "北京云端科技"),
            ("北京云端科技股份有限公司", "北京云端科技"),
            ("北京云端科技（集团）有限公司", "北京云端科技集团"),
            ("株式会社アクメ", "アクメ"),
            ("アクメ株式会社", "アクメ"),
            ("🚀 Acme Cloud 🚀 Ltd", "acmecloud"),
            ("Limited Company", "limitedcompany"),
            ("Company Acme Ltd", "companyacme"),
            ("", ""),
            ("  ,.;  ", ""),
        ] {
            assert_eq!(normalize_name(raw), want, "{raw}");
        }
        // Very long names are cut before any work.
        let long = "x".repeat(100_000);
        assert_eq!(normalize_name(&long).chars().count(), 512);
    }

    #[test]
    fn similarity_is_normalized_levenshtein_with_a_documented_threshold() {
        let a = normalize_name("Acme Cloud Computing Co., Ltd.");
        let b = normalize_name("ACME Cloud Computting Limited");
        let s = similarity(&a, &b);
        assert!((SIMILARITY_THRESHOLD..1.0).contains(&s), "{s}");
        assert!(is_similar(&a, &b));
        assert_eq!(
            similarity(
                &normalize_name("Acme Co., Ltd."),
                &normalize_name("ACME Limited")
            ),
            1.0
        );
        assert!(!is_similar(
            &normalize_name("Acme Cloud"),
            &normalize_name("Zenith Data")
        ));
        // Short names: one edit is already too much.
        assert!(!is_similar("acme", "acne"));
        assert_eq!(similarity("", "acme"), 0.0);
        assert!(similarity("abcdefghij", "abcdefghijklmnopqrst") < SIMILARITY_THRESHOLD);
        // Emoji and CJK are counted in characters.
        assert!(is_similar(
            "北京云端科技发展研究院所",
            "北京云端科技发展研究院"
        ));
    }

    #[test]
    fn any_single_edit_keeps_a_name_block() {
        let base = "acmecloudcomputing"; // 18 characters: one edit allowed
        let chars: Vec<char> = base.chars().collect();
        let blocks = name_blocks(base);
        let shares = |other: &str| {
            let theirs = name_blocks(other);
            blocks.iter().any(|b| theirs.contains(b))
        };
        for i in 0..=chars.len() {
            let mut inserted = chars.clone();
            inserted.insert(i, 'z');
            let inserted: String = inserted.into_iter().collect();
            assert!(shares(&inserted), "insert at {i}");
            if i < chars.len() {
                let mut deleted = chars.clone();
                deleted.remove(i);
                assert!(
                    shares(&deleted.into_iter().collect::<String>()),
                    "delete {i}"
                );
                let mut replaced = chars.clone();
                replaced[i] = '9';
                assert!(
                    shares(&replaced.into_iter().collect::<String>()),
                    "replace {i}"
                );
            }
        }
        assert_eq!(name_blocks(""), Vec::new());
        assert_eq!(
            name_blocks("abc"),
            vec![
                (kind::NAME_PREFIX, "abc".to_string()),
                (kind::NAME_SUFFIX, "abc".to_string())
            ]
        );
    }

    #[test]
    fn keys_of_a_profile() {
        let keys = Keys::of(
            "https://shop.acme.com.cn/",
            "+86 138 0013 8000",
            &["Sales@Acme.com", "sales@acme.com", "", "bad"],
            "Acme Cloud Co., Ltd.",
        );
        assert_eq!(
            keys.rows(),
            vec![
                (kind::DOMAIN, "acme.com.cn".to_string()),
                (kind::MOBILE, "+8613800138000".to_string()),
                (kind::EMAIL, "sales@acme.com".to_string()),
                (kind::NAME_PREFIX, "acmec".to_string()),
                (kind::NAME_SUFFIX, "cloud".to_string()),
            ]
        );
        assert_eq!(Keys::of("", "", &[], "").rows(), Vec::new());
    }
}
