//! Property tests: no input makes a check panic, and the normalizations are stable.
//! These are also the bounded stand-in for the fuzz targets in `fuzz/` when no nightly toolchain
//! is available.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

use std::io::Cursor;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use image::{ImageFormat, Rgba, RgbaImage};
use kg_checks::contact::{
    check_company_name, check_introduction, find_link, parse_e164, parse_email, parse_phone,
};
use kg_checks::finding::codes;
use kg_checks::logo::{LogoPolicy, check_logo};
use kg_checks::regnum::{USCC_ALPHABET, normalize, parse, uscc_check_character};
use kg_checks::urlguard::{is_forbidden, parse_url};
use proptest::prelude::*;

fn uscc_body() -> impl Strategy<Value = String> {
    proptest::collection::vec(0usize..31, 17).prop_map(|idx| {
        idx.into_iter()
            .map(|i| char::from(USCC_ALPHABET[i]))
            .collect()
    })
}

fn valid_uscc() -> impl Strategy<Value = String> {
    uscc_body().prop_map(|body| {
        let check = uscc_check_character(&body).expect("body is in the alphabet");
        format!("{body}{check}")
    })
}

/// Re-spell a number the way people type it: case, full width, separators.
fn respell(number: &str, seed: &[u8]) -> String {
    let mut out = String::new();
    for (i, c) in number.chars().enumerate() {
        let s = seed.get(i).copied().unwrap_or(0);
        let c = if s & 1 == 1 {
            c.to_ascii_lowercase()
        } else {
            c
        };
        if s & 2 == 2 {
            // full-width form of ASCII
            out.push(char::from_u32(c as u32 + 0xFEE0).unwrap_or(c));
        } else {
            out.push(c);
        }
        match s >> 5 {
            1 => out.push(' '),
            2 => out.push('-'),
            3 => out.push('\u{3000}'),
            4 => out.push('\u{2014}'),
            _ => {}
        }
    }
    out
}

fn png_bytes() -> Vec<u8> {
    let img = RgbaImage::from_pixel(24, 24, Rgba([1, 2, 3, 255]));
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, ImageFormat::Png).expect("encode");
    out.into_inner()
}

proptest! {
    #[test]
    fn parse_never_panics(country in "\\PC{0,4}", raw in "\\PC{0,64}") {
        let _ = parse(&country, &raw);
        let _ = parse("CN", &raw);
        let _ = parse("FR", &raw);
        let _ = parse("JP", &raw);
        let _ = parse("DE", &raw);
        let _ = parse("BR", &raw);
    }

    #[test]
    fn parse_never_panics_on_any_chars(raw in any::<String>()) {
        let _ = parse("CN", &raw);
        let _ = parse(&raw, "91350100M000100Y43");
    }

    #[test]
    fn normalize_is_idempotent(raw in any::<String>()) {
        let once = normalize(&raw);
        prop_assert_eq!(normalize(&once), once);
    }

    #[test]
    fn normalize_is_idempotent_on_tricky_text(raw in "[a-zA-Z0-9 \\-\u{300}-\u{36f}\u{3000}\u{ff10}-\u{ff5a}\u{2010}-\u{2015}\u{200b}]{0,24}") {
        let once = normalize(&raw);
        prop_assert_eq!(normalize(&once), once);
    }

    #[test]
    fn generated_uscc_codes_validate_in_any_spelling(code in valid_uscc(), seed in proptest::collection::vec(any::<u8>(), 18)) {
        let n = parse("CN", &code).expect("generated code is valid");
        prop_assert_eq!(n.entity_key(), format!("CN:{code}"));
        let respelled = respell(&code, &seed);
        let m = parse("cn", &respelled).expect("respelled code is valid");
        prop_assert_eq!(m.entity_key(), n.entity_key());
    }

    #[test]
    fn every_single_substitution_is_detected(code in valid_uscc(), pos in 0usize..18, delta in 1usize..31) {
        let chars: Vec<char> = code.chars().collect();
        let old = USCC_ALPHABET.iter().position(|&a| char::from(a) == chars[pos]).expect("in alphabet");
        let mut changed = chars.clone();
        changed[pos] = char::from(USCC_ALPHABET[(old + delta) % 31]);
        let changed: String = changed.into_iter().collect();
        let err = parse("CN", &changed).expect_err("typo must be caught");
        prop_assert_eq!(err[0].code, codes::REGISTRATION_NUMBER_CHECK_CHARACTER);
    }

    #[test]
    fn contact_parsers_never_panic(raw in any::<String>()) {
        let _ = parse_email("email", &raw);
        let _ = parse_e164("mobile", &raw);
        let _ = parse_phone("phone", &raw);
        let _ = check_introduction(&raw);
        let _ = find_link(&raw);
        let _ = check_company_name(&raw);
    }

    #[test]
    fn contact_parsers_never_panic_on_near_misses(raw in "[+0-9 ()\\-.a-zA-Z@;=:_\u{ff10}-\u{ff19}\u{3002}]{0,40}") {
        let _ = parse_email("email", &raw);
        let _ = parse_e164("mobile", &raw);
        let _ = parse_phone("phone", &raw);
        let _ = find_link(&raw);
    }

    #[test]
    fn canonical_email_is_a_fixed_point(local in "[a-zA-Z0-9!#$%&'*+/=?^_`{|}~-]{1,20}", domain in "[a-zA-Z0-9]{1,10}\\.[a-zA-Z]{2,6}") {
        let raw = format!("{local}@{domain}");
        let once = parse_email("e", &raw).expect("valid");
        prop_assert_eq!(parse_email("e", &once).expect("still valid"), once);
    }

    #[test]
    fn canonical_phone_is_a_fixed_point(digits in "[1-9][0-9]{7,14}", ext in proptest::option::of("[0-9]{1,10}")) {
        let raw = match &ext {
            Some(e) => format!("+{digits} ext {e}"),
            None => format!("+{digits}"),
        };
        let once = parse_phone("p", &raw).expect("valid");
        prop_assert_eq!(parse_phone("p", &once).expect("still valid"), once);
    }

    #[test]
    fn parse_url_never_panics(raw in any::<String>()) {
        if let Ok(url) = parse_url(&raw) {
            prop_assert!(url.scheme() == "http" || url.scheme() == "https");
            prop_assert!(url.username().is_empty() && url.password().is_none());
        }
    }

    #[test]
    fn parse_url_never_panics_on_url_like_text(raw in "(https?|ftp|file)://[a-z0-9.:@\\[\\]%/?#-]{0,40}") {
        let _ = parse_url(&raw);
    }

    #[test]
    fn embedded_ipv4_forms_are_judged_like_the_ipv4(v4 in any::<u32>()) {
        let v4 = Ipv4Addr::from(v4);
        let expected = is_forbidden(IpAddr::V4(v4));
        prop_assert_eq!(is_forbidden(IpAddr::V6(v4.to_ipv6_mapped())), expected);
        let [a, b, c, d] = v4.octets();
        let nat64 = Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, u16::from_be_bytes([a, b]), u16::from_be_bytes([c, d]));
        prop_assert_eq!(is_forbidden(IpAddr::V6(nat64)), expected);
        let six_to_four = Ipv6Addr::new(0x2002, u16::from_be_bytes([a, b]), u16::from_be_bytes([c, d]), 0, 0, 0, 0, 1);
        prop_assert_eq!(is_forbidden(IpAddr::V6(six_to_four)), expected);
    }

    #[test]
    fn logo_never_panics_on_hostile_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = check_logo(&LogoPolicy::default(), &bytes, None, None);
    }

    #[test]
    fn logo_never_panics_behind_real_magic(tail in proptest::collection::vec(any::<u8>(), 0..2048), jpeg in any::<bool>()) {
        let mut bytes = if jpeg { vec![0xFF, 0xD8, 0xFF] } else { vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A] };
        bytes.extend(tail);
        let _ = check_logo(&LogoPolicy::default(), &bytes, Some("image/png"), Some("x.png"));
    }

    #[test]
    fn logo_never_panics_on_mutated_png(flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8), cut in any::<usize>()) {
        let mut bytes = png_bytes();
        for (pos, value) in flips {
            let i = pos % bytes.len();
            bytes[i] = value;
        }
        let cut = 8 + cut % bytes.len().saturating_sub(8).max(1);
        bytes.truncate(cut);
        let _ = check_logo(&LogoPolicy::default(), &bytes, None, None);
    }
}
