//! Redaction of personal data and secrets before they reach a log line or a span.
//!
//! Rules (the same as notification's masking of recipients, so one person reads the same masked
//! value everywhere):
//!
//! * email: the first character of the local part and the domain, `li.wei@example.com` →
//!   `l***@example.com`;
//! * mobile (E.164): the country code and the last four digits, one `*` per hidden digit,
//!   `+8613800138000` → `+86*******8000`;
//! * token (bearer JWTs, API tokens, passwords): nothing of the value, only its length class and a
//!   short SHA-256 fingerprint, so two log lines about the same token can be correlated:
//!   `***(sha256:1a2b3c4d)`.
//!
//! Call sites mask the values they log ([`email`], [`mobile`], [`token`]). As a second fence,
//! [`scrub`] masks anything in free text that looks like an email address, an E.164 number, a
//! JWT or a `Bearer` credential, and [`ScrubbingMakeWriter`] runs every formatted log line
//! through it ([`crate::telemetry::init`] installs it).

use std::borrow::Cow;
use std::fmt;
use std::io;

use sha2::{Digest, Sha256};

/// `li.wei@example.com` → `l***@example.com`.
pub fn email(address: &str) -> String {
    match address.rsplit_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None if address.is_empty() => String::new(),
        None => "***".to_string(),
    }
}

/// `+8613800138000` → `+86*******8000`. Anything with fewer than six digits becomes `***`.
pub fn mobile(number: &str) -> String {
    let digits: String = number.chars().filter(char::is_ascii_digit).collect();
    if digits.len() < 6 {
        return if number.trim().is_empty() {
            String::new()
        } else {
            "***".to_string()
        };
    }
    let cc = country_code_len(&digits).min(digits.len() - 4);
    let hidden = digits.len() - cc - 4;
    format!(
        "+{}{}{}",
        &digits[..cc],
        "*".repeat(hidden),
        &digits[digits.len() - 4..]
    )
}

/// A secret (bearer token, password, API key): `***(sha256:1a2b3c4d)`; empty stays empty.
pub fn token(secret: &str) -> String {
    if secret.is_empty() {
        return String::new();
    }
    let digest = Sha256::digest(secret.as_bytes());
    format!(
        "***(sha256:{:02x}{:02x}{:02x}{:02x})",
        digest[0], digest[1], digest[2], digest[3]
    )
}

/// Length of the ITU-T E.164 country code that starts `digits`: 1 for zones 1 and 7, 2 for the
/// two-digit codes listed below, 3 otherwise.
fn country_code_len(digits: &str) -> usize {
    const TWO_DIGIT: &[&str] = &[
        "20", "27", "30", "31", "32", "33", "34", "36", "39", "40", "41", "43", "44", "45", "46",
        "47", "48", "49", "51", "52", "53", "54", "55", "56", "57", "58", "60", "61", "62", "63",
        "64", "65", "66", "81", "82", "84", "86", "90", "91", "92", "93", "94", "95", "98",
    ];
    if digits.starts_with('1') || digits.starts_with('7') {
        1
    } else if TWO_DIGIT.iter().any(|cc| digits.starts_with(cc)) {
        2
    } else {
        3
    }
}

/// A value that formats masked: `tracing::info!(email = %Masked::email(&e), …)`.
pub enum Masked<'a> {
    Email(&'a str),
    Mobile(&'a str),
    Token(&'a str),
}

impl<'a> Masked<'a> {
    pub fn email(value: &'a str) -> Self {
        Masked::Email(value)
    }
    pub fn mobile(value: &'a str) -> Self {
        Masked::Mobile(value)
    }
    pub fn token(value: &'a str) -> Self {
        Masked::Token(value)
    }
}

impl fmt::Display for Masked<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Masked::Email(v) => f.write_str(&email(v)),
            Masked::Mobile(v) => f.write_str(&mobile(v)),
            Masked::Token(v) => f.write_str(&token(v)),
        }
    }
}

impl fmt::Debug for Masked<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Masks what looks like personal data or a credential in free text (error messages of
/// drivers and providers, log lines): email addresses, `+`-prefixed E.164 numbers, JWTs and the
/// value after `Bearer `. Borrowed when nothing needed masking.
pub fn scrub(text: &str) -> Cow<'_, str> {
    if !might_hold_secrets(text) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut changed = false;
    let mut rest = text;
    while !rest.is_empty() {
        let (word, tail) = split_word(rest);
        let masked = mask_word(word);
        if let Some(m) = masked {
            out.push_str(&m);
            changed = true;
        } else {
            out.push_str(word);
        }
        // the separators between words
        let sep_len = tail
            .char_indices()
            .find(|(_, c)| is_word_char(*c))
            .map(|(i, _)| i)
            .unwrap_or(tail.len());
        let (sep, after) = tail.split_at(sep_len);
        // `Bearer <credential>`: whatever the credential looks like
        if word.eq_ignore_ascii_case("bearer") && sep == " " && !after.is_empty() {
            let (credential, after_credential) = split_word(after);
            out.push_str(sep);
            out.push_str(&token(credential));
            changed = true;
            rest = after_credential;
            continue;
        }
        out.push_str(sep);
        rest = after;
    }
    if changed {
        Cow::Owned(out)
    } else {
        Cow::Borrowed(text)
    }
}

/// Cheap pre-check: every masked form needs one of these.
fn might_hold_secrets(text: &str) -> bool {
    text.contains('@')
        || text.contains('+')
        || text.contains("eyJ")
        || text.contains("earer ")
        || text.contains("EARER ")
}

/// Characters that can be part of an email address, an E.164 number or a JWT.
fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '@' | '.' | '_' | '-' | '+' | '%')
}

fn split_word(text: &str) -> (&str, &str) {
    let end = text
        .char_indices()
        .find(|(_, c)| !is_word_char(*c))
        .map(|(i, _)| i)
        .unwrap_or(text.len());
    text.split_at(end)
}

fn mask_word(word: &str) -> Option<String> {
    // a JWT: three base64url segments, the header starting with `{"` (`eyJ`)
    if let Some(at) = word.find("eyJ") {
        let candidate = &word[at..];
        let segments: Vec<&str> = candidate.split('.').collect();
        if segments.len() >= 2
            && segments[..2].iter().all(|s| s.len() >= 4)
            && candidate
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Some(format!("{}{}", &word[..at], token(candidate)));
        }
    }
    // an email address: local@domain.tld
    if let Some((local_full, domain_full)) = word.rsplit_once('@') {
        let local = local_full.trim_start_matches(['.', '-', '+']);
        let domain = domain_full.trim_end_matches(['.', '-']);
        if !local.is_empty() && domain.contains('.') && !domain.starts_with('.') {
            let prefix = &local_full[..local_full.len() - local.len()];
            let suffix = &domain_full[domain.len()..];
            let masked = email(&format!("{local}@{domain}"));
            return Some(format!("{prefix}{masked}{suffix}"));
        }
    }
    // an E.164 number: `+` then 8 to 15 digits
    if let Some(at) = word.find('+') {
        let digits: String = word[at + 1..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        if (8..=15).contains(&digits.len()) {
            let end = at + 1 + digits.len();
            return Some(format!(
                "{}{}{}",
                &word[..at],
                mobile(&word[at..end]),
                &word[end..]
            ));
        }
    }
    None
}

/// A [`tracing_subscriber::fmt::MakeWriter`] that runs every formatted event through [`scrub`]
/// before handing it to the inner writer.
#[derive(Clone, Debug)]
pub struct ScrubbingMakeWriter<M> {
    inner: M,
}

impl<M> ScrubbingMakeWriter<M> {
    pub fn new(inner: M) -> Self {
        Self { inner }
    }
}

impl<'a, M> tracing_subscriber::fmt::MakeWriter<'a> for ScrubbingMakeWriter<M>
where
    M: tracing_subscriber::fmt::MakeWriter<'a>,
{
    type Writer = ScrubbingWriter<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        ScrubbingWriter {
            inner: self.inner.make_writer(),
            buffer: Vec::new(),
        }
    }
}

/// Buffers one formatted event (the fmt layer writes each event to a fresh writer) and writes it
/// scrubbed when flushed or dropped.
pub struct ScrubbingWriter<W: io::Write> {
    inner: W,
    buffer: Vec<u8>,
}

impl<W: io::Write> ScrubbingWriter<W> {
    fn write_out(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let bytes = std::mem::take(&mut self.buffer);
        match std::str::from_utf8(&bytes) {
            Ok(text) => self.inner.write_all(scrub(text).as_bytes())?,
            Err(_) => self.inner.write_all(&bytes)?,
        }
        self.inner.flush()
    }
}

impl<W: io::Write> io::Write for ScrubbingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.write_out()
    }
}

impl<W: io::Write> Drop for ScrubbingWriter<W> {
    fn drop(&mut self) {
        let _ = self.write_out();
    }
}

/// Replaces every occurrence of `secret` (case-insensitive) in `text` by `masked`: provider
/// error messages may quote the recipient ("550 5.1.1 <li.wei@example.com>: unknown user").
pub fn hide(text: &str, secret: &str, masked: &str) -> String {
    if secret.is_empty() {
        return text.to_string();
    }
    let lower_text = text.to_lowercase();
    let lower_secret = secret.to_lowercase();
    // lower-casing may change byte lengths outside ASCII; fall back to an exact replace then
    if lower_text.len() != text.len() || lower_secret.len() != secret.len() {
        return text.replace(secret, masked);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = 0;
    for (at, _) in lower_text.match_indices(&lower_secret) {
        if at < rest {
            continue;
        }
        out.push_str(&text[rest..at]);
        out.push_str(masked);
        rest = at + secret.len();
    }
    out.push_str(&text[rest..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hide_replaces_the_recipient_in_provider_messages() {
        assert_eq!(
            hide(
                "550 5.1.1 <Li.Wei@Example.com>: unknown",
                "li.wei@example.com",
                "l***@example.com"
            ),
            "550 5.1.1 <l***@example.com>: unknown"
        );
        assert_eq!(hide("no match", "a@b.c", "a***@b.c"), "no match");
    }

    #[test]
    fn emails_keep_the_first_character_and_the_domain() {
        assert_eq!(email("li.wei@example.com"), "l***@example.com");
        assert_eq!(email("x@example.com"), "x***@example.com");
        assert_eq!(email("张三@例子.中国"), "张***@例子.中国");
        assert_eq!(email(""), "");
        assert_eq!(email("nonsense"), "***");
    }

    #[test]
    fn mobiles_keep_the_country_code_and_four_digits() {
        assert_eq!(mobile("+8613800138000"), "+86*******8000");
        assert_eq!(mobile("+14155550123"), "+1******0123");
        assert_eq!(mobile("+447700900123"), "+44******0123");
        assert_eq!(mobile("+85291234567"), "+852****4567");
        assert_eq!(mobile(""), "");
        assert_eq!(mobile("+123"), "***");
    }

    #[test]
    fn tokens_keep_only_a_fingerprint() {
        let t = token("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl");
        assert!(t.starts_with("***(sha256:") && t.ends_with(')'), "{t}");
        assert!(!t.contains("eyJ"));
        assert_eq!(
            t,
            token("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl")
        );
        assert_ne!(t, token("another"));
        assert_eq!(token(""), "");
        assert_eq!(
            format!("{}", Masked::email("li.wei@example.com")),
            "l***@example.com"
        );
        assert_eq!(
            format!("{:?}", Masked::mobile("+8613800138000")),
            "+86*******8000"
        );
    }

    #[test]
    fn scrub_masks_what_it_recognises_in_free_text() {
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl";
        let text = format!(
            "550 <Li.Wei@Example.com>: unknown; sms to +8613800138000 failed; authorization: Bearer {jwt}; token={jwt}"
        );
        let out = scrub(&text);
        assert!(!out.contains("Li.Wei@Example.com"), "{out}");
        assert!(out.contains("<L***@Example.com>"), "{out}");
        assert!(!out.contains("+8613800138000"), "{out}");
        assert!(out.contains("+86*******8000"), "{out}");
        assert!(!out.contains(jwt), "{out}");
        assert!(out.contains("Bearer ***(sha256:"), "{out}");
        assert!(out.contains("token=***(sha256:"), "{out}");
    }

    #[test]
    fn scrub_leaves_ordinary_text_alone() {
        for text in [
            "serving on 127.0.0.1:50051",
            "elapsed=+12ms retry in 3s",
            "2026-01-05T08:00:00+08:00 applications/0199-abc",
            "a + b = c",
            "user@localhost",
        ] {
            assert!(matches!(scrub(text), Cow::Borrowed(_)), "{text}");
        }
        assert_eq!(scrub("bearer"), "bearer");
    }

    #[test]
    fn the_writer_scrubs_whole_lines() {
        use std::io::Write as _;
        let sink = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
        #[derive(Clone)]
        struct Sink(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
        impl io::Write for Sink {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let make = ScrubbingMakeWriter::new({
            let sink = Sink(sink.clone());
            move || sink.clone()
        });
        {
            let mut w = tracing_subscriber::fmt::MakeWriter::make_writer(&make);
            // split across writes, as a formatter may do
            w.write_all(b"mail to li.wei@exa").unwrap();
            w.write_all(b"mple.com\n").unwrap();
        }
        let written = String::from_utf8(sink.lock().unwrap().clone()).unwrap();
        assert_eq!(written, "mail to l***@example.com\n");
    }
}
