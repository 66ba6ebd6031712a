//! Contact data: email, E.164 numbers, introduction, company name, including hostile input.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

use kg_checks::contact::{
    check_company_name, check_introduction, find_link, parse_e164, parse_email, parse_phone,
};
use kg_checks::finding::codes;

fn intro_codes(text: &str) -> Vec<&'static str> {
    check_introduction(text).iter().map(|f| f.code).collect()
}

const GOOD_INTRO: &str = "We build backup and disaster recovery software for small and medium businesses. \
Our product protects your databases and file servers, and it helps you restore them in minutes.";

// --------------------------------------------------------------------------------------------
// email
// --------------------------------------------------------------------------------------------

#[test]
fn valid_emails_are_canonicalized() {
    assert_eq!(
        parse_email("email", "Ops@Example.COM").as_deref(),
        Ok("Ops@example.com")
    );
    assert_eq!(
        parse_email("email", "  a.b+tag@sub.example.co.uk ").as_deref(),
        Ok("a.b+tag@sub.example.co.uk")
    );
    assert_eq!(
        parse_email("email", "o'brien!#$%&*/=?^_`{|}~-@x-y.io").as_deref(),
        Ok("o'brien!#$%&*/=?^_`{|}~-@x-y.io")
    );
    assert_eq!(
        parse_email("email", "a@xn--fsqu00a.xn--3lr804guic").as_deref(),
        Ok("a@xn--fsqu00a.xn--3lr804guic")
    );
}

#[test]
fn invalid_emails_have_precise_messages() {
    let cases: &[(&str, &str)] = &[
        ("", "required"),
        ("plainaddress", "no @"),
        ("a@b@example.com", "more than one @"),
        ("@example.com", "nothing before the @"),
        ("user@", "nothing after the @"),
        (".user@example.com", "start or end with a dot"),
        ("user.@example.com", "start or end with a dot"),
        ("us..er@example.com", "two dots in a row"),
        ("us(er@example.com", "'('"),
        ("\"quoted\"@example.com", "'\"'"),
        ("user@localhost", "has no dot"),
        ("user@example..com", "empty label"),
        ("user@-example.com", "hyphen"),
        ("user@example-.com", "hyphen"),
        ("user@exa_mple.com", "'_'"),
        ("user@example.com.", "end with a dot"),
        ("user@[192.0.2.1]", "IP address literals"),
        ("user@1.2.3.4", "numeric"),
        ("us er@example.com", "U+0020"),
        ("user@exam\u{0}ple.com", "U+0000"),
        ("user\n@example.com", "U+000A"),
        ("usеr@example.com", "U+0435"), // Cyrillic е
        ("user@exаmple.com", "U+0430"), // Cyrillic а
        ("user@例子.com", "non-ASCII"),
        ("user@ex\u{200B}ample.com", "U+200B"),
    ];
    for (raw, needle) in cases {
        let f = parse_email("contact_email", raw).expect_err(raw);
        assert_eq!(f.code, codes::EMAIL_INVALID, "{raw:?}");
        assert_eq!(f.field, "contact_email");
        assert!(f.message.contains(needle), "{raw:?}: {}", f.message);
    }
}

#[test]
fn email_length_limits() {
    let local64 = "a".repeat(64);
    assert!(parse_email("e", &format!("{local64}@example.com")).is_ok());
    let f = parse_email("e", &format!("{}@example.com", "a".repeat(65))).expect_err("65");
    assert!(f.message.contains("at most 64"));

    let label63 = "b".repeat(63);
    assert!(parse_email("e", &format!("a@{label63}.com")).is_ok());
    let f = parse_email("e", &format!("a@{}.com", "b".repeat(64))).expect_err("64 label");
    assert!(f.message.contains("at most 63"));

    // 254 in all is the limit.
    let domain = format!(
        "{}.{}.{}.com",
        "c".repeat(63),
        "d".repeat(63),
        "e".repeat(57)
    );
    let ok = format!("{local64}@{domain}");
    assert_eq!(ok.len(), 254);
    assert!(parse_email("e", &ok).is_ok());
    let too_long = format!("{local64}@f{domain}");
    let f = parse_email("e", &too_long).expect_err("255");
    assert!(f.message.contains("at most 254"));

    let huge = format!("{}@example.com", "a".repeat(1_000_000));
    assert_eq!(
        parse_email("e", &huge).expect_err("huge").code,
        codes::EMAIL_INVALID
    );
}

// --------------------------------------------------------------------------------------------
// E.164
// --------------------------------------------------------------------------------------------

#[test]
fn e164_accepts_common_spellings() {
    for (raw, want) in [
        ("+86 138 0013 8000", "+8613800138000"),
        ("+86-138-0013-8000", "+8613800138000"),
        ("+1 (415) 555-0100", "+14155550100"),
        ("+44 (0)20 7946 0958", "+442079460958"),
        ("＋８６ １３８ ００１３ ８０００", "+8613800138000"),
        (" +65 6123 4567 ", "+6561234567"),
        ("+49.30.123456", "+4930123456"),
    ] {
        assert_eq!(parse_e164("mobile", raw).as_deref(), Ok(want), "{raw:?}");
    }
}

#[test]
fn e164_refusals() {
    let cases: &[(&str, &str)] = &[
        ("", "required"),
        ("13800138000", "must start with +"),
        ("0086 138 0013 8000", "must start with +"),
        ("+0 86 138", "starting with 0"),
        ("+86 1", "has 3 digits"),
        ("+1234567", "has 7 digits"),
        ("+1234567890123456", "has 16 digits"),
        ("+86 138+0013", "only at the start"),
        ("+86 138 0013 8000 ext 12", "'e'"),
        ("+86 138\u{0}0013 8000", "U+0000"),
        ("+86 １３８ ００１３ ８০০০", "U+09E6"), // Bengali digits are not ASCII digits
    ];
    for (raw, needle) in cases {
        let f = parse_e164("mobile", raw).expect_err(raw);
        assert_eq!(f.code, codes::MOBILE_INVALID, "{raw:?}");
        assert!(f.message.contains(needle), "{raw:?}: {}", f.message);
    }
    assert_eq!(
        parse_e164("mobile", &"+1".repeat(100_000))
            .expect_err("huge")
            .code,
        codes::MOBILE_INVALID
    );
}

#[test]
fn phone_allows_extensions() {
    for (raw, want) in [
        ("+86 10 1234 5678", "+861012345678"),
        ("+86 10 1234 5678 ext 123", "+861012345678;ext=123"),
        ("+86 10 1234 5678 ext. 123", "+861012345678;ext=123"),
        ("+86 10 1234 5678 EXT:9", "+861012345678;ext=9"),
        ("+86 10 1234 5678 extension 42", "+861012345678;ext=42"),
        ("+1 415 555 0100 x7", "+14155550100;ext=7"),
        ("+1 415 555 0100;ext=7", "+14155550100;ext=7"),
    ] {
        assert_eq!(parse_phone("phone", raw).as_deref(), Ok(want), "{raw:?}");
    }
    for raw in [
        "+86 10 1234 5678 ext",
        "+86 10 1234 5678 ext abc",
        "+86 10 1234 5678 ext 12345678901",
        "+86 10 1234 5678 call me",
        "010 1234 5678 ext 1",
    ] {
        assert_eq!(
            parse_phone("phone", raw).expect_err(raw).code,
            codes::PHONE_INVALID,
            "{raw:?}"
        );
    }
}

// --------------------------------------------------------------------------------------------
// introduction
// --------------------------------------------------------------------------------------------

#[test]
fn good_introduction_passes() {
    assert!(
        check_introduction(GOOD_INTRO).is_empty(),
        "{:?}",
        check_introduction(GOOD_INTRO)
    );
    // Product names that contain dots are not links.
    let text = format!(
        "{GOOD_INTRO} It integrates with ASP.NET, Node.js and Socket.IO applications, e.g. web shops."
    );
    assert!(
        check_introduction(&text).is_empty(),
        "{:?}",
        check_introduction(&text)
    );
    // Line breaks and tabs are fine.
    assert!(check_introduction(&format!("{GOOD_INTRO}\n\n\tContact our team today.")).is_empty());
}

#[test]
fn introduction_required_and_length() {
    assert_eq!(intro_codes(""), [codes::INTRODUCTION_REQUIRED]);
    assert_eq!(intro_codes(" \n\t\u{3000}"), [codes::INTRODUCTION_REQUIRED]);
    let exactly = "a".repeat(2000);
    assert!(!intro_codes(&exactly).contains(&codes::INTRODUCTION_TOO_LONG));
    assert_eq!(
        intro_codes(&"a".repeat(2001)),
        [codes::INTRODUCTION_TOO_LONG]
    );
    // Counted in characters, not bytes: 2000 CJK characters are 6000 bytes.
    assert!(!intro_codes(&"云".repeat(2000)).contains(&codes::INTRODUCTION_TOO_LONG));
    assert_eq!(
        intro_codes(&"x".repeat(10_000_000)),
        [codes::INTRODUCTION_TOO_LONG]
    );
}

#[test]
fn introduction_must_be_english() {
    assert_eq!(
        intro_codes(
            "我们是一家专注于云计算和大数据服务的高科技企业，为客户提供安全可靠的解决方案。"
        ),
        [codes::INTRODUCTION_NOT_ENGLISH]
    );
    assert_eq!(
        intro_codes(
            "Wir entwickeln Software für die Datensicherung in der Cloud und unterstützen unsere Kunden bei der Migration."
        ),
        [codes::INTRODUCTION_NOT_ENGLISH]
    );
    let f = check_introduction("我们是一家专注于云计算和大数据服务的高科技企业。");
    assert!(f[0].message.contains("zh"), "{}", f[0].message);
}

#[test]
fn introduction_links_are_refused() {
    for link in [
        "https://example.com/offer",
        "http://10.0.0.1/",
        "ftp://files.example.org",
        "www.example.com",
        "WWW.EXAMPLE.COM",
        "example.com",
        "Example.Com",
        "shop.example.cn",
        "sales@example.com",
        "mailto:sales",
        "example。com", // ideographic full stop
        "example．com", // full-width full stop
        "example[.]com",
        "example(dot)com",
        "exam\u{200B}ple.com",    // zero-width space is removed first
        "ｅｘａｍｐｌｅ．ｃｏｍ", // full-width letters
    ] {
        let text = format!("{GOOD_INTRO} Visit {link} for details.");
        let codes_found = intro_codes(&text);
        assert!(
            codes_found.contains(&codes::INTRODUCTION_HAS_LINK),
            "{link:?}: {codes_found:?}"
        );
    }
}

#[test]
fn find_link_reports_the_token() {
    assert_eq!(
        find_link("see https://example.com/x now").as_deref(),
        Some("https://example.com/x")
    );
    assert_eq!(
        find_link("write to Sales@Example.com.").as_deref(),
        Some("sales@example.com")
    );
    assert_eq!(
        find_link("no links here, e.g. none, i.e. zero, v2.0 and 3.5 GB."),
        None
    );
}

#[test]
fn introduction_hostile_characters() {
    for bad in [
        '\u{0}', '\u{7}', '\u{1B}', '\u{7F}', '\u{202E}', '\u{200B}', '\u{FEFF}', '\u{2066}',
    ] {
        let text = format!("{GOOD_INTRO} Trusted{bad}by many.");
        let codes_found = intro_codes(&text);
        assert!(
            codes_found.contains(&codes::INTRODUCTION_INVALID_CHARACTER),
            "{bad:?}: {codes_found:?}"
        );
        let f = check_introduction(&text);
        assert!(
            !f[0].message.contains(bad),
            "messages never echo raw control characters"
        );
    }
}

// --------------------------------------------------------------------------------------------
// company name
// --------------------------------------------------------------------------------------------

#[test]
fn company_names() {
    assert_eq!(
        check_company_name("  Acme   Cloud\tLtd. ").as_deref(),
        Ok("Acme Cloud Ltd.")
    );
    assert_eq!(
        check_company_name("华为技术有限公司").as_deref(),
        Ok("华为技术有限公司")
    );
    // NFC: e + combining acute becomes é.
    assert_eq!(
        check_company_name("Cafe\u{301} SARL").as_deref(),
        Ok("Café SARL")
    );
    let code = |raw: &str| check_company_name(raw).expect_err(raw)[0].code;
    assert_eq!(code(""), codes::COMPANY_NAME_REQUIRED);
    assert_eq!(code("   "), codes::COMPANY_NAME_REQUIRED);
    assert_eq!(code("12345"), codes::COMPANY_NAME_INVALID);
    assert_eq!(code("Acme\u{0}Ltd"), codes::COMPANY_NAME_INVALID);
    assert_eq!(code("Acme\u{202E}dtL"), codes::COMPANY_NAME_INVALID);
    assert_eq!(code(&"A".repeat(201)), codes::COMPANY_NAME_TOO_LONG);
    assert_eq!(code(&"A".repeat(5_000_000)), codes::COMPANY_NAME_TOO_LONG);
}
