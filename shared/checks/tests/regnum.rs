//! Registration number parsing: published codes, each failure code, normalization.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

use kg_checks::finding::codes;
use kg_checks::regnum::{self, RegistrationNumber, normalize, parse, uscc_check_character};

fn ok(country: &str, raw: &str) -> RegistrationNumber {
    match parse(country, raw) {
        Ok(n) => n,
        Err(findings) => panic!("{country} {raw:?} should be valid, got {findings:?}"),
    }
}

fn err_codes(country: &str, raw: &str) -> Vec<&'static str> {
    match parse(country, raw) {
        Ok(n) => panic!("{country} {raw:?} should be invalid, got {n:?}"),
        Err(findings) => findings.iter().map(|f| f.code).collect(),
    }
}

/// Published Unified Social Credit Codes. Each check character was verified twice: by this
/// crate's implementation and by an independent re-implementation of GB 32100-2015 (Python)
/// before being added here.
const PUBLISHED_USCC: &[(&str, &str)] = &[
    ("91350100M000100Y43", "the worked example of GB 32100-2015"),
    (
        "91110000600037341L",
        "the test vector used by python-stdnum and its ports",
    ),
    ("914403001922038216", "Huawei Technologies Co., Ltd."),
    ("91110108551385082Q", "Xiaomi Technology Co., Ltd."),
    (
        "91440300708461136T",
        "Shenzhen Tencent Computer Systems Co., Ltd.",
    ),
    ("91330100716105852F", "Alibaba (China) Co., Ltd."),
    (
        "91110000802100433B",
        "Beijing Baidu Netcom Science and Technology Co., Ltd.",
    ),
    ("911000001000013428", "Bank of China Limited"),
    (
        "91100000100003962T",
        "Industrial and Commercial Bank of China Limited",
    ),
];

#[test]
fn published_uscc_codes_are_valid() {
    for (code, whose) in PUBLISHED_USCC {
        let n = ok("CN", code);
        assert_eq!(n.number, *code, "{whose}");
        assert_eq!(n.country, "CN");
        assert_eq!(n.format_name, "Unified Social Credit Code");
        assert!(n.warnings.is_empty());
        assert_eq!(n.entity_key(), format!("CN:{code}"));
    }
}

#[test]
fn check_character_function_matches_published_codes() {
    for (code, _) in PUBLISHED_USCC {
        let (body, check) = code.split_at(17);
        assert_eq!(
            uscc_check_character(body).map(String::from),
            Some(check.to_owned())
        );
    }
    assert_eq!(uscc_check_character("9135010"), None);
    assert_eq!(uscc_check_character("9135010OM000100Y4"), None);
}

#[test]
fn wrong_check_character_is_reported_with_expected_and_found() {
    let err = parse("CN", "91350100M000100Y44").expect_err("wrong check character");
    assert_eq!(err.len(), 1);
    assert_eq!(err[0].code, codes::REGISTRATION_NUMBER_CHECK_CHARACTER);
    assert!(
        err[0].message.contains("expected '3'"),
        "{}",
        err[0].message
    );
    assert!(err[0].message.contains("found '4'"), "{}", err[0].message);
    assert_eq!(err[0].field, regnum::FIELD_NUMBER);
}

#[test]
fn the_briefs_third_example_fails_its_check_character() {
    // 911100001000273330 was offered as an example but its check character computes to '9'.
    let err = parse("CN", "911100001000273330").expect_err("not a valid code");
    assert_eq!(err[0].code, codes::REGISTRATION_NUMBER_CHECK_CHARACTER);
    assert!(err[0].message.contains("expected '9', found '0'"));
}

#[test]
fn transposed_digits_are_caught() {
    // Swapping two neighbouring characters is the most common typo.
    assert_eq!(
        err_codes("CN", "91350100M000010Y43"),
        [codes::REGISTRATION_NUMBER_CHECK_CHARACTER]
    );
}

#[test]
fn forbidden_letters_are_named_with_position() {
    for letter in ['I', 'O', 'S', 'V', 'Z'] {
        let raw = format!("9135{letter}100M000100Y43");
        let err = parse("CN", &raw).expect_err("forbidden letter");
        assert_eq!(err.len(), 1, "{err:?}");
        assert_eq!(err[0].code, codes::REGISTRATION_NUMBER_CHARACTER);
        assert!(
            err[0]
                .message
                .contains(&format!("'{letter}' at position 5")),
            "{}",
            err[0].message
        );
    }
}

#[test]
fn non_ascii_confusables_are_reported_not_folded() {
    // Cyrillic А (U+0410) looks like Latin A.
    let err = parse("CN", "9135010\u{0410}M000100Y43").expect_err("confusable");
    assert!(err.iter().any(|f| f.code == codes::REGISTRATION_NUMBER_CHARACTER
        && f.message.contains("U+0410")));
}

#[test]
fn wrong_length_says_expected_and_got() {
    let err = parse("CN", "91350100M000100Y4").expect_err("17 chars");
    assert_eq!(err[0].code, codes::REGISTRATION_NUMBER_LENGTH);
    assert!(
        err[0].message.contains("expected 18, got 17"),
        "{}",
        err[0].message
    );
    let err = parse("CN", "91350100M000100Y433").expect_err("19 chars");
    assert!(err[0].message.contains("got 19"));
    let err = parse("CN", "350100000012345").expect_err("old 15-digit number");
    assert!(err[0].message.contains("15-digit"));
}

#[test]
fn length_and_character_problems_are_reported_together() {
    let codes_found = err_codes("CN", "9135O100");
    assert!(codes_found.contains(&codes::REGISTRATION_NUMBER_LENGTH));
    assert!(codes_found.contains(&codes::REGISTRATION_NUMBER_CHARACTER));
}

#[test]
fn empty_and_blank_numbers() {
    for raw in ["", "   ", "\u{3000}", " - - ", "\u{200B}"] {
        assert_eq!(
            err_codes("CN", raw),
            [codes::REGISTRATION_NUMBER_EMPTY],
            "{raw:?}"
        );
    }
}

#[test]
fn huge_input_is_refused_cheaply() {
    let raw = "9".repeat(1_000_000);
    assert_eq!(err_codes("CN", &raw), [codes::REGISTRATION_NUMBER_LENGTH]);
}

#[test]
fn spellings_normalize_to_the_same_number() {
    let canonical = "91350100M000100Y43";
    for raw in [
        "９１３５０１００Ｍ０００１００Ｙ４３", // full width
        "91350100m000100y43",                   // lower case
        "９１３５０１００ｍ０００１００ｙ４３", // full-width lower case
        " 9135 0100 M000 100Y 43 ",
        "91-350100-M000100Y4-3",
        "9135\u{3000}0100\u{3000}M000100Y43", // ideographic spaces
        "9135－0100－M000100Y43",             // full-width hyphen-minus
        "9135\u{2014}0100\u{2013}M000100Y43", // em and en dash
        "9135\u{2212}0100ーM000100Y43",       // minus sign, katakana prolonged sound mark
        "9135\u{00A0}0100\u{200B}M000100Y43", // no-break space, zero-width space
        "\t9135\n0100\r\nM000100Y43",
    ] {
        assert_eq!(normalize(raw), canonical, "{raw:?}");
        let n = ok("cn", raw);
        assert_eq!(n.entity_key(), format!("CN:{canonical}"), "{raw:?}");
    }
}

#[test]
fn country_codes() {
    assert_eq!(ok("cn", "91350100M000100Y43").country, "CN");
    assert_eq!(ok("ＣＮ", "91350100M000100Y43").country, "CN");
    assert_eq!(ok(" Cn ", "91350100M000100Y43").country, "CN");
    for bad in ["", "C", "CHN", "XX", "C1", "中国", "UK", "\0\0"] {
        let err = parse(bad, "91350100M000100Y43").expect_err(bad);
        assert_eq!(err.len(), 1);
        assert_eq!(err[0].code, codes::REGISTRATION_COUNTRY_INVALID, "{bad:?}");
        assert_eq!(err[0].field, regnum::FIELD_COUNTRY);
    }
    let uk = parse("uk", "12345678").expect_err("UK");
    assert!(uk[0].message.contains("GB"));
}

#[test]
fn hong_kong() {
    assert_eq!(
        ok("HK", "12345678").format_name,
        "Business Registration Number"
    );
    assert_eq!(
        err_codes("HK", "1234567"),
        [codes::REGISTRATION_NUMBER_LENGTH]
    );
    assert_eq!(
        err_codes("HK", "1234567A"),
        [codes::REGISTRATION_NUMBER_CHARACTER]
    );
}

#[test]
fn singapore() {
    for uen in [
        "53312345A",
        "201912345K",
        "T08LL0001A",
        "S99SS1234B",
        "R12AB1234C",
    ] {
        assert_eq!(ok("SG", uen).format_name, "Unique Entity Number", "{uen}");
    }
    assert_eq!(
        err_codes("SG", "533123456"),
        [codes::REGISTRATION_NUMBER_FORMAT]
    );
    assert_eq!(
        err_codes("SG", "X08LL0001A"),
        [codes::REGISTRATION_NUMBER_FORMAT]
    );
    assert_eq!(
        err_codes("SG", "5331234"),
        [codes::REGISTRATION_NUMBER_LENGTH]
    );
}

#[test]
fn united_kingdom() {
    for number in ["00445790", "SC123456", "NI012345", "oc300001", "R0012345"] {
        ok("GB", number);
    }
    assert_eq!(
        err_codes("GB", "445790"),
        [codes::REGISTRATION_NUMBER_LENGTH]
    );
    assert_eq!(
        err_codes("GB", "S1234567"),
        [codes::REGISTRATION_NUMBER_FORMAT]
    );
}

#[test]
fn germany() {
    assert_eq!(ok("DE", "HRB 12345 B").number, "HRB12345B");
    assert_eq!(ok("DE", "hra-1").number, "HRA1");
    assert_eq!(
        err_codes("DE", "HRC12345"),
        [codes::REGISTRATION_NUMBER_FORMAT]
    );
    assert_eq!(err_codes("DE", "HRB"), [codes::REGISTRATION_NUMBER_LENGTH]);
}

#[test]
fn united_states() {
    assert_eq!(ok("US", "12-3456789").number, "123456789");
    assert_eq!(
        err_codes("US", "00-0000000"),
        [codes::REGISTRATION_NUMBER_FORMAT]
    );
    assert_eq!(
        err_codes("US", "12-345678"),
        [codes::REGISTRATION_NUMBER_LENGTH]
    );
}

#[test]
fn france_siren_luhn() {
    // 542 051 180 is the published SIREN of TotalEnergies SE; 732 829 320 is Luhn-valid.
    ok("FR", "732 829 320");
    ok("FR", "542051180");
    let err = parse("FR", "732829321").expect_err("bad Luhn");
    assert_eq!(err[0].code, codes::REGISTRATION_NUMBER_CHECK_CHARACTER);
    assert!(
        err[0].message.contains("expected '0', found '1'"),
        "{}",
        err[0].message
    );
}

#[test]
fn japan_corporate_number() {
    // 1180301018771 is the published corporate number of Toyota Motor Corporation; its check digit
    // (the first digit) was verified by hand with the National Tax Agency formula.
    ok("JP", "1180301018771");
    let err = parse("JP", "2180301018771").expect_err("bad check digit");
    assert_eq!(err[0].code, codes::REGISTRATION_NUMBER_CHECK_CHARACTER);
    assert!(err[0].message.contains("expected '1', found '2'"));
}

#[test]
fn india_cin() {
    // Infosys Limited's published CIN.
    ok("IN", "L85110KA1981PLC013115");
    assert_eq!(
        err_codes("IN", "X85110KA1981PLC013115"),
        [codes::REGISTRATION_NUMBER_FORMAT]
    );
}

#[test]
fn unknown_country_is_accepted_with_a_warning() {
    let n = ok("BR", "12.345.678/0001-95".replace(['.', '/'], "").as_str());
    assert_eq!(n.format_name, "unknown");
    assert_eq!(n.warnings.len(), 1);
    assert_eq!(
        n.warnings[0].code,
        codes::REGISTRATION_NUMBER_FORMAT_UNKNOWN
    );
    assert!(!n.warnings[0].is_error());
    assert_eq!(err_codes("BR", "12"), [codes::REGISTRATION_NUMBER_LENGTH]);
    assert_eq!(
        err_codes("BR", "12/345"),
        [codes::REGISTRATION_NUMBER_CHARACTER]
    );
    assert_eq!(
        err_codes("BR", &"1".repeat(41)),
        [codes::REGISTRATION_NUMBER_LENGTH]
    );
}

#[test]
fn character_findings_are_capped() {
    let err = parse("CN", "IIIIIIIIIIIIIIIIII").expect_err("all forbidden");
    assert_eq!(err.len(), 4, "3 named characters and one summary: {err:?}");
}
