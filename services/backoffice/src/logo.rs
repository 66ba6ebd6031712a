//! The logo's real format, by its magic bytes. The bytes come from an applicant, so the
//! declared content type means nothing: only a PNG or a JPEG whose header reads is served, with
//! the Content-Type of what it really is (and nosniff); anything else, an SVG that could carry
//! script or HTML dressed as an image, is refused and never reaches the browser as an image.

/// A logo fit to serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Logo {
    pub format: LogoFormat,
    pub width: usize,
    pub height: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogoFormat {
    Png,
    Jpeg,
}

impl LogoFormat {
    pub fn content_type(self) -> &'static str {
        match self {
            LogoFormat::Png => "image/png",
            LogoFormat::Jpeg => "image/jpeg",
        }
    }
}

/// The logo check accepts sides of 16 to 4096 pixels (common.proto).
const MAX_SIDE: usize = 4096;
const PNG_MAGIC: &[u8] = b"\x89PNG\r\n\x1a\n";
const JPEG_MAGIC: &[u8] = b"\xff\xd8\xff";

/// What the bytes are, or why they are not served (a sentence for the reviewer).
pub fn sniff(bytes: &[u8]) -> Result<Logo, String> {
    let format = if bytes.starts_with(PNG_MAGIC) {
        LogoFormat::Png
    } else if bytes.starts_with(JPEG_MAGIC) {
        LogoFormat::Jpeg
    } else {
        return Err(format!(
            "refused: the logo is not a PNG or JPEG image (its bytes look like {})",
            looks_like(bytes)
        ));
    };
    // A PNG's first chunk must be its 13-byte IHDR; the magic alone proves nothing.
    if format == LogoFormat::Png && bytes.get(8..16) != Some(b"\0\0\0\x0dIHDR".as_slice()) {
        return Err("refused: the logo starts like a PNG but has no PNG header".into());
    }
    // The header must read and name a size the logo check could have accepted; a truncated or
    // garbled file, or a decompression bomb, never reaches the browser.
    match imagesize::blob_size(bytes) {
        Ok(size)
            if (1..=MAX_SIDE).contains(&size.width) && (1..=MAX_SIDE).contains(&size.height) =>
        {
            Ok(Logo {
                format,
                width: size.width,
                height: size.height,
            })
        }
        _ => Err(format!(
            "refused: the logo starts like a {} but its header does not read",
            format.content_type()
        )),
    }
}

/// A short name for refused bytes, for the reviewer (never trusted for anything else).
fn looks_like(bytes: &[u8]) -> &'static str {
    let head = &bytes[..bytes.len().min(512)];
    let text = String::from_utf8_lossy(head).to_ascii_lowercase();
    let text = text.trim_start_matches('\u{feff}').trim_start();
    if bytes.is_empty() {
        "nothing (no logo stored)"
    } else if head.starts_with(b"GIF87a") || head.starts_with(b"GIF89a") {
        "GIF"
    } else if head.len() >= 12 && &head[..4] == b"RIFF" && &head[8..12] == b"WEBP" {
        "WebP"
    } else if head.starts_with(b"BM") {
        "BMP"
    } else if head.starts_with(b"II*\0") || head.starts_with(b"MM\0*") {
        "TIFF"
    } else if text.contains("<svg") {
        "SVG (which can carry script)"
    } else if text.starts_with('<') {
        "HTML or XML"
    } else {
        "an unknown format"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal valid PNG header: signature and an IHDR chunk of 3 x 2 pixels.
    fn png_header(width: u32, height: u32) -> Vec<u8> {
        let mut out = PNG_MAGIC.to_vec();
        out.extend_from_slice(&13u32.to_be_bytes());
        out.extend_from_slice(b"IHDR");
        out.extend_from_slice(&width.to_be_bytes());
        out.extend_from_slice(&height.to_be_bytes());
        out.extend_from_slice(&[8, 2, 0, 0, 0, 0, 0, 0, 0]);
        out
    }

    #[test]
    fn png_and_jpeg_are_served_as_what_they_are() {
        let png = sniff(&png_header(168, 80)).unwrap();
        assert_eq!(png.format, LogoFormat::Png);
        assert_eq!((png.width, png.height), (168, 80));
        assert_eq!(png.format.content_type(), "image/png");
        // SOI, then a SOF0 segment of 16 x 8 pixels
        let jpeg = [
            0xff, 0xd8, 0xff, 0xc0, 0x00, 0x11, 0x08, 0x00, 0x08, 0x00, 0x10, 0x03, 0x01, 0x22,
            0x00, 0x02, 0x11, 0x01, 0x03, 0x11, 0x01,
        ];
        let jpeg = sniff(&jpeg).unwrap();
        assert_eq!(jpeg.format, LogoFormat::Jpeg);
        assert_eq!((jpeg.width, jpeg.height), (16, 8));
    }

    #[test]
    fn everything_else_is_refused_with_a_reason() {
        let svg = br#"<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>"#;
        let cases: &[(&[u8], &str)] = &[
            (svg, "SVG"),
            (b"<!doctype html><script>alert(1)</script>", "HTML"),
            (b"GIF89a\x01\x00\x01\x00", "GIF"),
            (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "WebP"),
            (b"BM\x00\x00", "BMP"),
            (b"", "nothing"),
            (b"\x00\x01\x02", "unknown"),
        ];
        for (bytes, named) in cases {
            let err = sniff(bytes).unwrap_err();
            assert!(err.starts_with("refused"), "{err}");
            assert!(err.contains(named), "{named}: {err}");
        }
        // The magic alone is not enough: a PNG signature followed by HTML does not read.
        let mut fake = PNG_MAGIC.to_vec();
        fake.extend_from_slice(b"<script>alert(1)</script>");
        assert!(sniff(&fake).unwrap_err().contains("no PNG header"));
        assert!(sniff(&png_header(0, 80)).is_err());
        // a header that promises more pixels than any accepted logo
        assert!(
            sniff(&png_header(100_000, 80))
                .unwrap_err()
                .contains("header does not read")
        );
    }
}
