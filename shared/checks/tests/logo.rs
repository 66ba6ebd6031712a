//! Logo checks with images generated in the test and hand-crafted hostile files.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

use std::io::Cursor;
use std::time::{Duration, Instant};

use image::{ImageFormat, Rgb, RgbImage, Rgba, RgbaImage};
use kg_checks::finding::codes;
use kg_checks::logo::{LogoPolicy, LogoReport, check_logo};

fn png(width: u32, height: u32) -> Vec<u8> {
    let img = RgbaImage::from_fn(width, height, |x, y| {
        Rgba([(x % 256) as u8, (y % 256) as u8, 128, 255])
    });
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, ImageFormat::Png)
        .expect("encode png");
    out.into_inner()
}

fn jpeg(width: u32, height: u32) -> Vec<u8> {
    let img = RgbImage::from_fn(width, height, |x, y| {
        Rgb([(x % 256) as u8, (y % 256) as u8, 64])
    });
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, ImageFormat::Jpeg)
        .expect("encode jpeg");
    out.into_inner()
}

fn codes_of(report: &LogoReport) -> Vec<&'static str> {
    report.findings.iter().map(|f| f.code).collect()
}

fn check(bytes: &[u8]) -> LogoReport {
    check_logo(&LogoPolicy::default(), bytes, None, None)
}

/// CRC-32 (IEEE 802.3, as used by PNG chunks), bitwise: small and good enough for a test.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

/// Rewrite the IHDR of a PNG to declare other dimensions, fixing the chunk CRC.
fn with_ihdr_dimensions(mut png: Vec<u8>, width: u32, height: u32) -> Vec<u8> {
    // signature (8) + length (4) + "IHDR" (4) = 16: width at 16..20, height at 20..24, CRC at 29..33
    assert_eq!(&png[12..16], b"IHDR");
    png[16..20].copy_from_slice(&width.to_be_bytes());
    png[20..24].copy_from_slice(&height.to_be_bytes());
    let crc = crc32(&png[12..29]);
    png[29..33].copy_from_slice(&crc.to_be_bytes());
    png
}

#[test]
fn crc32_matches_the_standard_check_value() {
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
}

#[test]
fn valid_png_and_jpeg_pass() {
    let report = check_logo(
        &LogoPolicy::default(),
        &png(168, 80),
        Some("image/png"),
        Some("logo.png"),
    );
    assert!(report.passed(), "{:?}", report.findings);
    assert_eq!(report.evidence.format, Some("png"));
    assert_eq!(
        (report.evidence.width, report.evidence.height),
        (Some(168), Some(80))
    );

    let bytes = jpeg(168, 80);
    let report = check_logo(
        &LogoPolicy::default(),
        &bytes,
        Some("image/jpeg"),
        Some("Logo.JPG"),
    );
    assert!(report.passed(), "{:?}", report.findings);
    assert_eq!(report.evidence.format, Some("jpeg"));
    assert_eq!(report.evidence.size_bytes, bytes.len());
    assert_eq!(
        (report.evidence.width, report.evidence.height),
        (Some(168), Some(80))
    );
}

#[test]
fn generic_declarations_are_not_a_mismatch() {
    let report = check_logo(
        &LogoPolicy::default(),
        &png(168, 80),
        Some("application/octet-stream"),
        Some("logo"),
    );
    assert!(report.passed(), "{:?}", report.findings);
}

#[test]
fn size_cap_is_checked_first() {
    let limit = 5 * 1024 * 1024;
    assert_eq!(LogoPolicy::default().max_bytes, limit);
    // A PNG header followed by padding up to exactly the limit is not refused for size.
    let mut at_limit = png(168, 80);
    at_limit.resize(limit, 0);
    assert!(!codes_of(&check(&at_limit)).contains(&codes::LOGO_TOO_LARGE));
    // One byte more is refused, and nothing else is reported: no other check ran.
    let mut over = at_limit;
    over.push(0);
    let report = check(&over);
    assert_eq!(codes_of(&report), [codes::LOGO_TOO_LARGE]);
    assert_eq!(report.evidence.format, None);
    assert_eq!(report.evidence.size_bytes, limit + 1);
    // Even garbage is refused for size before format.
    assert_eq!(
        codes_of(&check(&vec![0u8; limit + 1])),
        [codes::LOGO_TOO_LARGE]
    );
}

#[test]
fn other_formats_are_refused_and_named() {
    for (bytes, name) in [
        (b"GIF89a\x10\x00\x10\x00\x80\x00\x00".to_vec(), "GIF"),
        (b"GIF87a\x10\x00\x10\x00".to_vec(), "GIF"),
        (b"RIFF\x24\x00\x00\x00WEBPVP8 ".to_vec(), "WebP"),
        (b"BM\x00\x00\x00\x00".to_vec(), "BMP"),
        (
            b"<svg xmlns=\"http://www.w3.org/2000/svg\"></svg>".to_vec(),
            "SVG",
        ),
        (b"%PDF-1.7".to_vec(), "PDF"),
        (b"\x00\x00\x00\x1cftypavif".to_vec(), "AVIF"),
    ] {
        let report = check(&bytes);
        assert_eq!(
            codes_of(&report),
            [codes::LOGO_UNSUPPORTED_FORMAT],
            "{name}"
        );
        assert!(
            report.findings[0].message.contains(name),
            "{}",
            report.findings[0].message
        );
    }
    assert_eq!(codes_of(&check(b"")), [codes::LOGO_UNSUPPORTED_FORMAT]);
    assert_eq!(
        codes_of(&check(b"hello world")),
        [codes::LOGO_UNSUPPORTED_FORMAT]
    );
}

#[test]
fn gif_declared_as_png_is_still_refused_by_its_bytes() {
    let report = check_logo(
        &LogoPolicy::default(),
        b"GIF89a\x10\x00\x10\x00",
        Some("image/png"),
        Some("logo.png"),
    );
    assert_eq!(codes_of(&report), [codes::LOGO_UNSUPPORTED_FORMAT]);
}

#[test]
fn declared_type_or_extension_mismatch_is_refused() {
    let bytes = png(168, 80);
    let report = check_logo(&LogoPolicy::default(), &bytes, Some("image/jpeg"), None);
    assert_eq!(codes_of(&report), [codes::LOGO_TYPE_MISMATCH]);
    assert!(report.findings[0].message.contains("PNG"));

    let report = check_logo(&LogoPolicy::default(), &bytes, None, Some("logo.jpg"));
    assert_eq!(codes_of(&report), [codes::LOGO_TYPE_MISMATCH]);

    let report = check_logo(
        &LogoPolicy::default(),
        &bytes,
        Some("image/gif"),
        Some("logo.gif"),
    );
    assert_eq!(
        codes_of(&report),
        [codes::LOGO_TYPE_MISMATCH, codes::LOGO_TYPE_MISMATCH]
    );

    let report = check_logo(
        &LogoPolicy::default(),
        &jpeg(168, 80),
        Some("image/png"),
        Some("a/b\\logo.png"),
    );
    assert_eq!(
        codes_of(&report),
        [codes::LOGO_TYPE_MISMATCH, codes::LOGO_TYPE_MISMATCH]
    );
}

#[test]
fn truncated_png_is_corrupt() {
    let bytes = png(168, 80);
    for cut in [bytes.len() / 2, bytes.len() - 12, 40] {
        let report = check(&bytes[..cut]);
        assert_eq!(codes_of(&report), [codes::LOGO_CORRUPT], "cut at {cut}");
    }
    // Cut inside the header: the dimensions cannot even be read.
    assert_eq!(codes_of(&check(&bytes[..20])), [codes::LOGO_CORRUPT]);
}

#[test]
fn corrupted_png_data_is_corrupt() {
    let mut bytes = png(168, 80);
    let middle = bytes.len() / 2;
    for b in &mut bytes[middle..middle + 16] {
        *b ^= 0xA5;
    }
    assert_eq!(codes_of(&check(&bytes)), [codes::LOGO_CORRUPT]);
}

#[test]
fn truncated_jpeg_is_corrupt() {
    let bytes = jpeg(168, 80);
    for cut in [bytes.len() / 2, bytes.len() - 2] {
        let report = check(&bytes[..cut]);
        assert_eq!(codes_of(&report), [codes::LOGO_CORRUPT], "cut at {cut}");
    }
    assert_eq!(codes_of(&check(&[0xFF, 0xD8, 0xFF])), [codes::LOGO_CORRUPT]);
}

#[test]
fn decompression_bomb_is_refused_from_the_header_quickly() {
    // A tiny valid PNG whose IHDR claims 100000 x 100000 (10^10 pixels, 40 GB of RGBA).
    let bomb = with_ihdr_dimensions(png(16, 16), 100_000, 100_000);
    assert!(bomb.len() < 1024);
    let started = Instant::now();
    let report = check(&bomb);
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(codes_of(&report), [codes::LOGO_DIMENSIONS_TOO_LARGE]);
    assert_eq!(
        (report.evidence.width, report.evidence.height),
        (Some(100_000), Some(100_000))
    );

    // Too many pixels without any side over the limit.
    let policy = LogoPolicy {
        max_pixels: 1000 * 1000,
        ..LogoPolicy::default()
    };
    let report = check_logo(
        &policy,
        &with_ihdr_dimensions(png(16, 16), 2000, 2000),
        None,
        None,
    );
    assert_eq!(codes_of(&report), [codes::LOGO_DIMENSIONS_TOO_LARGE]);

    // One side over the limit.
    let report = check(&with_ihdr_dimensions(png(16, 16), 4097, 16));
    assert_eq!(codes_of(&report), [codes::LOGO_DIMENSIONS_TOO_LARGE]);
}

#[test]
fn header_that_lies_within_limits_is_caught_by_the_decoder() {
    // Claims 4000 x 4000 (allowed) but carries 16 x 16 worth of data.
    let liar = with_ihdr_dimensions(png(16, 16), 4000, 4000);
    let started = Instant::now();
    let report = check(&liar);
    assert_eq!(codes_of(&report), [codes::LOGO_CORRUPT]);
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn zero_dimensions_are_corrupt() {
    let report = check(&with_ihdr_dimensions(png(16, 16), 0, 16));
    assert_eq!(codes_of(&report), [codes::LOGO_CORRUPT]);
}

#[test]
fn aspect_ratio_limits() {
    assert!(check(&png(128, 16)).passed(), "8:1 is the limit");
    assert_eq!(codes_of(&check(&png(136, 16))), [codes::LOGO_ASPECT_RATIO]);
    assert_eq!(codes_of(&check(&png(16, 136))), [codes::LOGO_ASPECT_RATIO]);
}

#[test]
fn too_small_images() {
    assert!(check(&png(16, 16)).passed());
    assert_eq!(codes_of(&check(&png(15, 16))), [codes::LOGO_TOO_SMALL]);
    assert_eq!(codes_of(&check(&png(1, 1))), [codes::LOGO_TOO_SMALL]);
    let report = check(&png(4, 40));
    assert_eq!(
        codes_of(&report),
        [codes::LOGO_ASPECT_RATIO, codes::LOGO_TOO_SMALL]
    );
}
