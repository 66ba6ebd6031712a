//! Logo image check.
//!
//! An uploaded logo is hostile input until proven otherwise. The checks run cheapest-first and
//! stop as soon as the file is refused, so that no expensive step ever sees an unvetted file:
//!
//! 1. **Size** (`LOGO_TOO_LARGE`): more than [`LogoPolicy::max_bytes`] is refused before anything
//!    else looks at the bytes.
//! 2. **Real format by magic bytes** (`LOGO_UNSUPPORTED_FORMAT`): only PNG (`89 50 4E 47 0D 0A 1A
//!    0A`) and JPEG (`FF D8 FF`). The declared content type and the file name are never trusted;
//!    recognizable other formats (GIF, WebP, SVG, …) are named in the message.
//! 3. **Declared type** (`LOGO_TYPE_MISMATCH`): a content type or file extension that disagrees
//!    with the bytes is refused (a PNG called `logo.jpg` breaks clients that trust the name).
//! 4. **Dimensions from the header** (`LOGO_DIMENSIONS_TOO_LARGE`), read with `imagesize` without
//!    decoding: a 100 000 × 100 000 PNG compresses to a few kilobytes but would need 40 GB to
//!    decode (a decompression bomb). Too wide, too tall or too many pixels is refused here.
//! 5. **Full decode with limits** (`LOGO_CORRUPT`): `image::ImageReader` with
//!    `Limits { max_image_width, max_image_height, max_alloc }` so memory stays bounded even if the
//!    header lied; truncated or corrupt data is refused.
//! 6. **Shape** (`LOGO_ASPECT_RATIO`, `LOGO_TOO_SMALL`): the logo must display sensibly in the
//!    catalogue (the console suggests 168 × 80).

use std::io::Cursor;

use image::{ImageFormat, ImageReader, Limits};
use serde::Serialize;

use crate::finding::{self, Finding, codes, quote};

/// Field name used in the findings.
pub const FIELD_LOGO: &str = "logo";

/// Limits a logo must respect.
#[derive(Debug, Clone, PartialEq)]
pub struct LogoPolicy {
    /// Largest file, in bytes (default 5 MiB = 5 × 1024 × 1024).
    pub max_bytes: usize,
    /// Most pixels (width × height) (default 4096 × 4096).
    pub max_pixels: u64,
    /// Longest side, in pixels (default 4096).
    pub max_side: u32,
    /// Smallest width, in pixels (default 16).
    pub min_width: u32,
    /// Smallest height, in pixels (default 16).
    pub min_height: u32,
    /// Most extreme width/height (or height/width) ratio (default 8.0).
    pub max_aspect_ratio: f64,
}

impl Default for LogoPolicy {
    fn default() -> Self {
        Self {
            max_bytes: 5 * 1024 * 1024,
            max_pixels: 4096 * 4096,
            max_side: 4096,
            min_width: 16,
            min_height: 16,
            max_aspect_ratio: 8.0,
        }
    }
}

/// The outcome of [`check_logo`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogoReport {
    /// Problems; empty when the logo passed.
    pub findings: Vec<Finding>,
    /// What was observed.
    pub evidence: LogoEvidence,
}

impl LogoReport {
    /// True when there is no error finding.
    pub fn passed(&self) -> bool {
        finding::passed(&self.findings)
    }
}

/// What the check observed about the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogoEvidence {
    /// `"png"` or `"jpeg"` when the magic bytes matched one of them.
    pub format: Option<&'static str>,
    /// Width from the header, when it could be read.
    pub width: Option<u32>,
    /// Height from the header, when it could be read.
    pub height: Option<u32>,
    /// Size of the file in bytes.
    pub size_bytes: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Png,
    Jpeg,
}

impl Format {
    fn name(self) -> &'static str {
        match self {
            Format::Png => "png",
            Format::Jpeg => "jpeg",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Format::Png => "PNG",
            Format::Jpeg => "JPEG",
        }
    }

    fn image_format(self) -> ImageFormat {
        match self {
            Format::Png => ImageFormat::Png,
            Format::Jpeg => ImageFormat::Jpeg,
        }
    }
}

const PNG_MAGIC: &[u8] = &[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
const JPEG_MAGIC: &[u8] = &[0xFF, 0xD8, 0xFF];

fn error(code: &'static str, message: impl Into<String>) -> Finding {
    Finding::error(code, FIELD_LOGO, message)
}

/// Check an uploaded logo. `declared_content_type` is the upload's content type (for example
/// `"image/png"`), `file_name` its file name; both are optional and only compared against the real
/// format. Never panics; memory use is bounded by the policy.
pub fn check_logo(
    policy: &LogoPolicy,
    bytes: &[u8],
    declared_content_type: Option<&str>,
    file_name: Option<&str>,
) -> LogoReport {
    let mut evidence = LogoEvidence {
        format: None,
        width: None,
        height: None,
        size_bytes: bytes.len(),
    };
    let findings = run(
        policy,
        bytes,
        declared_content_type,
        file_name,
        &mut evidence,
    );
    LogoReport { findings, evidence }
}

fn run(
    policy: &LogoPolicy,
    bytes: &[u8],
    declared_content_type: Option<&str>,
    file_name: Option<&str>,
    evidence: &mut LogoEvidence,
) -> Vec<Finding> {
    // 1. size, before anything else touches the bytes
    if bytes.len() > policy.max_bytes {
        return vec![error(
            codes::LOGO_TOO_LARGE,
            format!(
                "the logo is {} bytes; at most {} bytes ({}) are allowed",
                bytes.len(),
                policy.max_bytes,
                human_size(policy.max_bytes)
            ),
        )];
    }
    if bytes.is_empty() {
        return vec![error(
            codes::LOGO_UNSUPPORTED_FORMAT,
            "the logo file is empty; upload a PNG or JPEG image",
        )];
    }

    // 2. real format
    let format = if bytes.starts_with(PNG_MAGIC) {
        Format::Png
    } else if bytes.starts_with(JPEG_MAGIC) {
        Format::Jpeg
    } else {
        let detected = sniff_other_format(bytes)
            .map(|name| format!(" (the file is {name})"))
            .unwrap_or_default();
        return vec![error(
            codes::LOGO_UNSUPPORTED_FORMAT,
            format!("the logo must be a PNG or JPEG image{detected}"),
        )];
    };
    evidence.format = Some(format.name());

    // 3. declared type and file extension must agree with the bytes
    let mut findings = Vec::new();
    if let Some(ct) = declared_content_type
        && let Some(claimed) = content_type_claim(ct)
        && claimed != Claim::Is(format)
    {
        findings.push(error(
            codes::LOGO_TYPE_MISMATCH,
            format!(
                "the file is {} but was declared as {}",
                format.label(),
                quote(ct, 60)
            ),
        ));
    }
    if let Some(name) = file_name
        && let Some(claimed) = extension_claim(name)
        && claimed != Claim::Is(format)
    {
        findings.push(error(
            codes::LOGO_TYPE_MISMATCH,
            format!(
                "the file is {} but its name {} has a different extension; use .{}",
                format.label(),
                quote(name, 80),
                match format {
                    Format::Png => "png",
                    Format::Jpeg => "jpg",
                }
            ),
        ));
    }

    // 4. dimensions from the header, before decoding anything
    let (width, height) = match imagesize::blob_size(bytes) {
        Ok(size) => (
            u32::try_from(size.width).unwrap_or(u32::MAX),
            u32::try_from(size.height).unwrap_or(u32::MAX),
        ),
        Err(e) => {
            findings.push(error(
                codes::LOGO_CORRUPT,
                format!(
                    "the {} header cannot be read ({e}); the file is truncated or corrupt",
                    format.label()
                ),
            ));
            return findings;
        }
    };
    evidence.width = Some(width);
    evidence.height = Some(height);
    if width == 0 || height == 0 {
        findings.push(error(
            codes::LOGO_CORRUPT,
            format!("the image header declares an empty image ({width} × {height})"),
        ));
        return findings;
    }
    let pixels = u64::from(width) * u64::from(height);
    if width > policy.max_side || height > policy.max_side || pixels > policy.max_pixels {
        findings.push(error(
            codes::LOGO_DIMENSIONS_TOO_LARGE,
            format!(
                "the image is {width} × {height} pixels; at most {side} pixels per side and {max} pixels in all are allowed",
                side = policy.max_side,
                max = policy.max_pixels
            ),
        ));
        return findings;
    }

    // 5. full decode with bounded memory
    if let Err(message) = decode(policy, bytes, format) {
        findings.push(error(codes::LOGO_CORRUPT, message));
        return findings;
    }

    // 6. shape
    let ratio = f64::from(width) / f64::from(height);
    let max_ratio = policy.max_aspect_ratio.max(1.0);
    if ratio > max_ratio || ratio < 1.0 / max_ratio {
        findings.push(error(
            codes::LOGO_ASPECT_RATIO,
            format!(
                "the image is {width} × {height} pixels (aspect ratio {ratio:.2}); the ratio of width to height must be between 1:{max_ratio} and {max_ratio}:1 (168 × 80 is recommended)"
            ),
        ));
    }
    if width < policy.min_width || height < policy.min_height {
        findings.push(error(
            codes::LOGO_TOO_SMALL,
            format!(
                "the image is {width} × {height} pixels; it must be at least {} × {} (168 × 80 is recommended)",
                policy.min_width, policy.min_height
            ),
        ));
    }
    findings
}

fn decode(policy: &LogoPolicy, bytes: &[u8], format: Format) -> Result<(), String> {
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format.image_format());
    let mut limits = Limits::default();
    limits.max_image_width = Some(policy.max_side);
    limits.max_image_height = Some(policy.max_side);
    // Worst case output is 16-bit RGBA (8 bytes per pixel), plus headroom for decoder state.
    limits.max_alloc = Some(
        policy
            .max_pixels
            .saturating_mul(8)
            .saturating_add(16 * 1024 * 1024),
    );
    reader.limits(limits);
    match reader.decode() {
        Ok(_) => {}
        Err(image::ImageError::Limits(e)) => {
            return Err(format!("the image exceeds the decoding limits ({e})"));
        }
        Err(e) => {
            return Err(format!(
                "the {} data is truncated or corrupt ({e})",
                format.label()
            ));
        }
    }
    // The JPEG decoder fills a truncated scan with grey instead of failing; a complete JPEG ends
    // with the EOI marker (possibly followed by padding).
    if format == Format::Jpeg {
        let end = bytes
            .iter()
            .rposition(|&b| b != 0x00 && b != b'\n' && b != b'\r' && b != b' ')
            .map_or(0, |p| p + 1);
        let ends_with_eoi = end >= 2 && bytes.get(end - 2..end) == Some(&[0xFF, 0xD9][..]);
        if !ends_with_eoi {
            return Err("the JPEG data is truncated (no end-of-image marker)".to_owned());
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Claim {
    Is(Format),
    Other,
}

/// What a content type claims, or `None` when it claims nothing useful (generic binary).
fn content_type_claim(content_type: &str) -> Option<Claim> {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "" | "application/octet-stream" | "binary/octet-stream" | "application/unknown" => None,
        "image/png" | "image/x-png" => Some(Claim::Is(Format::Png)),
        "image/jpeg" | "image/jpg" | "image/pjpeg" => Some(Claim::Is(Format::Jpeg)),
        _ => Some(Claim::Other),
    }
}

/// What a file name's extension claims, or `None` without an extension.
fn extension_claim(file_name: &str) -> Option<Claim> {
    let base = file_name
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or(file_name)
        .trim();
    let (stem, ext) = base.rsplit_once('.')?;
    if stem.is_empty() && ext.is_empty() {
        return None;
    }
    Some(match ext.to_ascii_lowercase().as_str() {
        "png" => Claim::Is(Format::Png),
        "jpg" | "jpeg" | "jpe" | "jfif" | "pjpeg" | "pjp" => Claim::Is(Format::Jpeg),
        _ => Claim::Other,
    })
}

/// Name formats people commonly upload instead of PNG/JPEG, to make the message useful.
fn sniff_other_format(bytes: &[u8]) -> Option<&'static str> {
    let starts = |magic: &[u8]| bytes.starts_with(magic);
    if starts(b"GIF87a") || starts(b"GIF89a") {
        return Some("GIF");
    }
    if starts(b"RIFF") && bytes.get(8..12) == Some(b"WEBP") {
        return Some("WebP");
    }
    if bytes.get(4..8) == Some(b"ftyp") {
        return match bytes.get(8..12) {
            Some(b"avif") | Some(b"avis") => Some("AVIF"),
            Some(b"heic") | Some(b"heix") | Some(b"mif1") | Some(b"msf1") | Some(b"hevc") => {
                Some("HEIF/HEIC")
            }
            _ => Some("an ISO media file (for example MP4)"),
        };
    }
    if starts(&[0xFF, 0x0A]) || starts(&[0, 0, 0, 0x0C, b'J', b'X', b'L', b' ']) {
        return Some("JPEG XL");
    }
    if starts(&[0, 0, 0, 0x0C, b'j', b'P', b' ', b' ']) || starts(&[0xFF, 0x4F, 0xFF, 0x51]) {
        return Some("JPEG 2000");
    }
    if starts(b"BM") {
        return Some("BMP");
    }
    if starts(b"II*\0") || starts(b"MM\0*") {
        return Some("TIFF");
    }
    if starts(&[0, 0, 1, 0]) {
        return Some("ICO");
    }
    if starts(b"8BPS") {
        return Some("Photoshop PSD");
    }
    if starts(b"%PDF") {
        return Some("PDF");
    }
    if starts(b"qoif") {
        return Some("QOI");
    }
    if starts(b"PK\x03\x04") {
        return Some("a ZIP archive");
    }
    let head = String::from_utf8_lossy(bytes.get(..1024).unwrap_or(bytes)).to_ascii_lowercase();
    let head = head.trim_start_matches(['\u{feff}', ' ', '\t', '\r', '\n']);
    if head.contains("<svg") {
        return Some("SVG");
    }
    if head.starts_with("<!doctype html") || head.starts_with("<html") {
        return Some("HTML");
    }
    if head.starts_with("<?xml") {
        return Some("XML");
    }
    None
}

fn human_size(bytes: usize) -> String {
    if bytes >= 1024 * 1024 && bytes.is_multiple_of(1024 * 1024) {
        format!("{} MiB", bytes / (1024 * 1024))
    } else if bytes >= 1024 && bytes.is_multiple_of(1024) {
        format!("{} KiB", bytes / 1024)
    } else {
        format!("{bytes} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims() {
        assert_eq!(
            content_type_claim("image/PNG; q=1"),
            Some(Claim::Is(Format::Png))
        );
        assert_eq!(content_type_claim("application/octet-stream"), None);
        assert_eq!(content_type_claim("image/gif"), Some(Claim::Other));
        assert_eq!(
            extension_claim("C:\\logos\\Logo.JPEG"),
            Some(Claim::Is(Format::Jpeg))
        );
        assert_eq!(extension_claim("logo"), None);
        assert_eq!(extension_claim("logo.png.exe"), Some(Claim::Other));
    }

    #[test]
    fn sniffing() {
        assert_eq!(sniff_other_format(b"GIF89a\x01\x00"), Some("GIF"));
        assert_eq!(sniff_other_format(b"RIFF\0\0\0\0WEBPVP8 "), Some("WebP"));
        assert_eq!(sniff_other_format(b"  <svg xmlns="), Some("SVG"));
        assert_eq!(sniff_other_format(b"hello"), None);
        assert_eq!(human_size(5 * 1024 * 1024), "5 MiB");
    }
}
