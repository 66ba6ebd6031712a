//! A deliberately small HTML scanner: enough to find the language signals and the visible text,
//! tolerant of any garbage, linear in the input, and never slicing inside a UTF-8 character (all
//! cut points are ASCII delimiters).

/// What [`scan`] extracts.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Page {
    /// `lang` of the `<html>` element.
    pub html_lang: Option<String>,
    /// `content` of `<meta http-equiv="content-language">`.
    pub meta_content_language: Option<String>,
    /// `<meta charset>` or the charset of `<meta http-equiv="content-type">`.
    pub meta_charset: Option<String>,
    /// A `<link rel="alternate" hreflang="en…">` exists.
    pub hreflang_english: bool,
    /// The visible text, whitespace-separated, capped.
    pub text: String,
}

/// Visible text collected at most (bytes); language detection needs far less.
const MAX_TEXT_BYTES: usize = 256 * 1024;

/// Elements whose content is not visible text.
const HIDDEN: &[&str] = &[
    "script", "style", "noscript", "template", "svg", "math", "iframe", "object", "textarea",
];

pub fn scan(html: &str) -> Page {
    let mut page = Page::default();
    let bytes = html.as_bytes();
    let mut i = 0usize;
    while i < bytes.len() {
        if bytes[i] != b'<' {
            let end = find_byte(bytes, b'<', i).unwrap_or(bytes.len());
            push_text(&mut page.text, &html[i..end]);
            i = end;
            continue;
        }
        // Comments, doctype, processing instructions.
        if html[i..].starts_with("<!--") {
            i = find_str(html, "-->", i + 4).map_or(bytes.len(), |p| p + 3);
            continue;
        }
        let after = bytes.get(i + 1).copied().unwrap_or(b' ');
        if after == b'!' || after == b'?' {
            i = find_byte(bytes, b'>', i).map_or(bytes.len(), |p| p + 1);
            continue;
        }
        let closing = after == b'/';
        let name_start = i + 1 + usize::from(closing);
        let name_end = bytes
            .get(name_start..)
            .unwrap_or_default()
            .iter()
            .position(|b| !b.is_ascii_alphanumeric() && *b != b'-')
            .map_or(bytes.len(), |p| name_start + p);
        if name_end == name_start {
            // A lone '<' in text.
            push_text(&mut page.text, "<");
            i += 1;
            continue;
        }
        let name = html[name_start..name_end].to_ascii_lowercase();
        let tag_end = find_tag_end(bytes, name_end);
        let attrs_text = &html[name_end..tag_end.min(bytes.len())];
        let next = (tag_end + 1).min(bytes.len());
        if !closing {
            handle_tag(&mut page, &name, attrs_text);
            if HIDDEN.contains(&name.as_str()) {
                i = skip_element(html, &name, next);
                continue;
            }
        }
        // Tags separate words ("<td>Cloud</td><td>Backup</td>").
        push_text(&mut page.text, " ");
        i = next;
    }
    page
}

fn handle_tag(page: &mut Page, name: &str, attrs_text: &str) {
    let attrs = attributes(attrs_text);
    let get = |key: &str| {
        attrs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    match name {
        "html" if page.html_lang.is_none() => {
            page.html_lang = get("lang").or_else(|| get("xml:lang")).map(cap);
        }
        "meta" => {
            if let Some(charset) = get("charset") {
                page.meta_charset.get_or_insert_with(|| cap(charset));
            }
            let equiv = get("http-equiv").unwrap_or("").to_ascii_lowercase();
            let content = get("content").unwrap_or("");
            if equiv == "content-language" {
                page.meta_content_language
                    .get_or_insert_with(|| cap(content));
            } else if equiv == "content-type"
                && let Some(charset) = super::charset_param(content)
            {
                page.meta_charset.get_or_insert_with(|| cap(&charset));
            }
        }
        "link" => {
            let alternate = get("rel").is_some_and(|rel| {
                rel.split_ascii_whitespace()
                    .any(|r| r.eq_ignore_ascii_case("alternate"))
            });
            if alternate && get("hreflang").is_some_and(crate::lang::language_tag_is_english) {
                page.hreflang_english = true;
            }
        }
        _ => {}
    }
}

fn cap(value: &str) -> String {
    value.trim().chars().take(100).collect()
}

/// Parse `name="value" name='value' name=value name` pairs; names lower-cased.
fn attributes(text: &str) -> Vec<(String, String)> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0usize;
    while i < bytes.len() && out.len() < 64 {
        while i < bytes.len() && (bytes[i].is_ascii_whitespace() || bytes[i] == b'/') {
            i += 1;
        }
        let start = i;
        while i < bytes.len()
            && !bytes[i].is_ascii_whitespace()
            && !matches!(bytes[i], b'=' | b'>' | b'/')
        {
            i += 1;
        }
        if i == start {
            i += 1;
            continue;
        }
        let name = text[start..i].to_ascii_lowercase();
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if bytes.get(i) != Some(&b'=') {
            out.push((name, String::new()));
            continue;
        }
        i += 1;
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let value = match bytes.get(i) {
            Some(&q) if q == b'"' || q == b'\'' => {
                let end = find_byte(bytes, q, i + 1).unwrap_or(bytes.len());
                let v = &text[i + 1..end];
                i = (end + 1).min(bytes.len());
                v
            }
            _ => {
                let start = i;
                while i < bytes.len() && !bytes[i].is_ascii_whitespace() && bytes[i] != b'>' {
                    i += 1;
                }
                &text[start..i]
            }
        };
        out.push((name, value.to_owned()));
    }
    out
}

/// Index of the `>` closing a tag whose attributes start at `from`, skipping quoted values;
/// `len` if there is none.
fn find_tag_end(bytes: &[u8], from: usize) -> usize {
    let mut quote: Option<u8> = None;
    let mut i = from;
    while i < bytes.len() {
        let b = bytes[i];
        match quote {
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None if b == b'"' || b == b'\'' => quote = Some(b),
            None if b == b'>' => return i,
            None => {}
        }
        i += 1;
    }
    bytes.len()
}

/// Position after `</name ...>` (case-insensitive), or the end of input.
fn skip_element(html: &str, name: &str, from: usize) -> usize {
    let needle = format!("</{name}");
    match find_str_ci(html, &needle, from) {
        Some(p) => find_byte(html.as_bytes(), b'>', p).map_or(html.len(), |e| e + 1),
        None => html.len(),
    }
}

fn push_text(text: &mut String, raw: &str) {
    if text.len() >= MAX_TEXT_BYTES {
        return;
    }
    let mut rest = raw;
    while let Some(amp) = rest.find('&') {
        text.push_str(&rest[..amp]);
        let tail = &rest[amp..];
        let entity_end = tail
            .bytes()
            .take(12)
            .position(|b| b == b';')
            .filter(|&p| p > 1);
        match entity_end {
            Some(end) => {
                text.push(decode_entity(&tail[1..end]));
                rest = &tail[end + 1..];
            }
            None => {
                text.push('&');
                rest = &tail[1..];
            }
        }
        if text.len() >= MAX_TEXT_BYTES {
            return;
        }
    }
    text.push_str(rest);
}

fn decode_entity(entity: &str) -> char {
    let numeric = entity.strip_prefix('#').and_then(|n| {
        match n.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok(),
            None => n.parse::<u32>().ok(),
        }
        .and_then(char::from_u32)
    });
    if let Some(c) = numeric {
        return c;
    }
    match entity {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        _ => ' ',
    }
}

fn find_byte(bytes: &[u8], needle: u8, from: usize) -> Option<usize> {
    bytes
        .get(from..)?
        .iter()
        .position(|&b| b == needle)
        .map(|p| from + p)
}

fn find_str(haystack: &str, needle: &str, from: usize) -> Option<usize> {
    haystack.get(from..)?.find(needle).map(|p| from + p)
}

/// ASCII case-insensitive search for an ASCII `needle`.
fn find_str_ci(haystack: &str, needle: &str, from: usize) -> Option<usize> {
    let h = haystack.as_bytes();
    let n = needle.as_bytes();
    if n.is_empty() || h.len() < n.len() {
        return None;
    }
    (from..=h.len() - n.len()).find(|&i| {
        h.get(i..i + n.len())
            .is_some_and(|w| w.eq_ignore_ascii_case(n))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracts_signals_and_text() {
        let page = scan(
            r#"<!DOCTYPE html><HTML Lang="zh-CN"><head><meta charset=gbk>
            <meta http-equiv="Content-Language" content="zh">
            <link rel="alternate" hreflang="en-us" href="/en/">
            <style>body { color: red }</style><script>var x = "<p>hidden</p>";</script>
            <title>Acme &amp; Co</title></head><body><!-- comment --><p>Hello&nbsp;world &#20013;&#x6587;</p>
            <noscript>Enable JavaScript</noscript><a href='x' title="a > b">link</a></body></html>"#,
        );
        assert_eq!(page.html_lang.as_deref(), Some("zh-CN"));
        assert_eq!(page.meta_charset.as_deref(), Some("gbk"));
        assert_eq!(page.meta_content_language.as_deref(), Some("zh"));
        assert!(page.hreflang_english);
        assert!(page.text.contains("Acme & Co"));
        assert!(page.text.contains("Hello world 中文"));
        assert!(page.text.contains("link"));
        assert!(!page.text.contains("hidden"));
        assert!(!page.text.contains("color"));
        assert!(!page.text.contains("JavaScript"));
        assert!(!page.text.contains("comment"));
    }

    #[test]
    fn survives_garbage() {
        for input in [
            "<",
            "<<<<",
            "</",
            "<!--",
            "<a",
            "<a href=\"",
            "&",
            "&#",
            "&#99999999999;",
            "<script>",
            "<html lang=",
            "<meta content-type",
            "é<é>é",
            "<é",
            "&#xD800;",
            "<a b='é",
        ] {
            let _ = scan(input);
        }
    }

    #[test]
    fn hreflang_needs_alternate() {
        assert!(!scan(r#"<link rel="stylesheet" hreflang="en">"#).hreflang_english);
        assert!(scan(r#"<link hreflang=EN-GB rel="Alternate">"#).hreflang_english);
    }
}
