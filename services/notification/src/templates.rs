//! The message templates, one per event type, in English and Simplified Chinese: an email
//! subject and body, and a short SMS text. They are data; [`render`] fills them by plain
//! `{name}` substitution in one pass (a value that contains `{...}` is never expanded again).
//!
//! The texts are files, `services/notification/templates/<name>.<version>.<locale>.txt` (the
//! template id with `/` as `.`, the locale as [`Locale::as_str`]), built into the binary with
//! `include_str!`: a `Subject:` line, an `SMS:` line, an empty line, then the email body to
//! the end of the file. The email footer is `footer.<locale>.txt`. A file that does not have
//! this shape fails the build (it is read by a `const fn`).
//!
//! Rules of the rendering:
//! * a body line whose placeholder has no value (an optional parameter that was not given, or
//!   is empty) is left out, so optional lines ("Seller console: {console_url}") simply vanish;
//! * `reason_titles` (one reason per line) becomes a bulleted list in the email body;
//! * `review_deadline` (RFC 3339) is shown in the platform time zone (`KG_TIMEZONE`);
//! * control characters are removed from values (line breaks survive in the body only); the
//!   subject and the SMS text are single lines, so a value can never add a mail header.
//!
//! Everything is plain text (`text/plain; charset=utf-8`): nothing needs HTML escaping.
//!
//! Aliases: `deadline` is read as `review_deadline`, `reason` as `comment`, and `reason_codes`
//! (comma-separated) as `reason_titles`, each only when the contract's own key is absent; the
//! contract's keys are the ones to send.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Timelike};
use chrono_tz::Tz;
use kg_proto::notification::NotificationEventType as E;

/// A supported locale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Locale {
    En,
    ZhCn,
}

impl Locale {
    pub fn as_str(self) -> &'static str {
        match self {
            Locale::En => "en",
            Locale::ZhCn => "zh-CN",
        }
    }

    /// `en`, `zh-CN` and their usual spellings; `None` for anything else.
    pub fn parse(tag: &str) -> Option<Locale> {
        let tag = tag.trim().to_ascii_lowercase().replace('_', "-");
        if tag == "en" || tag.starts_with("en-") {
            return Some(Locale::En);
        }
        match tag.as_str() {
            "zh" | "zh-cn" | "zh-hans" | "zh-hans-cn" | "zh-sg" | "zh-hans-sg" => {
                Some(Locale::ZhCn)
            }
            _ => None,
        }
    }
}

/// The texts of one template in one locale.
pub struct Texts {
    pub subject: &'static str,
    pub body: &'static str,
    pub sms: &'static str,
}

/// The template of one event type.
pub struct Template {
    pub event: E,
    /// Template id and version, as reported on each delivery.
    pub id: &'static str,
    /// Parameters that must be present (see [`MAY_BE_EMPTY`]).
    pub required: &'static [&'static str],
    pub en: Texts,
    pub zh_cn: Texts,
}

/// The texts of one template file (see the module docs): `Subject: …`, `SMS: …`, an empty
/// line, the body. Evaluated at compile time, so a malformed file is a build error.
const fn texts_of(file: &'static str) -> Texts {
    let (subject, rest) = header_line(file, "Subject: ");
    let (sms, rest) = header_line(rest, "SMS: ");
    let body = match rest.as_bytes() {
        [b'\n', ..] => rest.split_at(1).1,
        [b'\r', b'\n', ..] => rest.split_at(2).1,
        _ => panic!("a template file needs an empty line after its SMS: line"),
    };
    Texts { subject, body, sms }
}

/// The value of the header line `name` (the prefix, with its `: `) that `text` starts with,
/// and the text after that line.
const fn header_line(text: &'static str, name: &str) -> (&'static str, &'static str) {
    let bytes = text.as_bytes();
    let prefix = name.as_bytes();
    let mut i = 0;
    while i < prefix.len() {
        if i >= bytes.len() || bytes[i] != prefix[i] {
            panic!("a template file starts with a Subject: line and an SMS: line");
        }
        i += 1;
    }
    let mut end = prefix.len();
    while end < bytes.len() && bytes[end] != b'\n' {
        end += 1;
    }
    if end == bytes.len() {
        panic!("a template file needs a body after its Subject: and SMS: lines");
    }
    let rest = text.split_at(end + 1).1;
    // a CRLF file: the CR is not part of the value
    let value_end = if end > prefix.len() && bytes[end - 1] == b'\r' {
        end - 1
    } else {
        end
    };
    (text.split_at(value_end).0.split_at(prefix.len()).1, rest)
}

/// The [`Texts`] of template file `templates/<name>.<locale>.txt`, read at compile time.
macro_rules! texts {
    ($name:literal, $locale:literal) => {
        texts_of(include_str!(concat!(
            "../templates/",
            $name,
            ".",
            $locale,
            ".txt"
        )))
    };
}

/// Every parameter name the templates know. Other keys of a request are ignored.
pub const KNOWN: &[&str] = &[
    "company_name",
    "application",
    "seller",
    "modification_request",
    "review_deadline",
    "reason_titles",
    "comment",
    "console_url",
    "contact_email",
    "verification_code",
    "contact",
];

/// Required parameters that may be present with an empty value (a reviewer's comment is
/// optional even where the key is required).
pub const MAY_BE_EMPTY: &[&str] = &["comment"];

const REASONS: &[&str] = &["company_name", "reason_titles", "comment"];

pub const TEMPLATES: &[Template] = &[
    Template {
        event: E::ApplicationReceived,
        id: "application_received/v1",
        required: &["company_name"],
        en: texts!("application_received.v1", "en"),
        zh_cn: texts!("application_received.v1", "zh-CN"),
    },
    Template {
        event: E::ApplicationResubmitted,
        id: "application_resubmitted/v1",
        required: &["company_name"],
        en: texts!("application_resubmitted.v1", "en"),
        zh_cn: texts!("application_resubmitted.v1", "zh-CN"),
    },
    Template {
        event: E::ChangesRequested,
        id: "changes_requested/v1",
        required: REASONS,
        en: texts!("changes_requested.v1", "en"),
        zh_cn: texts!("changes_requested.v1", "zh-CN"),
    },
    Template {
        event: E::ApplicationApproved,
        id: "application_approved/v1",
        required: &["company_name"],
        en: texts!("application_approved.v1", "en"),
        zh_cn: texts!("application_approved.v1", "zh-CN"),
    },
    Template {
        event: E::ApplicationRejected,
        id: "application_rejected/v1",
        required: REASONS,
        en: texts!("application_rejected.v1", "en"),
        zh_cn: texts!("application_rejected.v1", "zh-CN"),
    },
    Template {
        event: E::ApplicationWithdrawn,
        id: "application_withdrawn/v1",
        required: &["company_name"],
        en: texts!("application_withdrawn.v1", "en"),
        zh_cn: texts!("application_withdrawn.v1", "zh-CN"),
    },
    Template {
        event: E::ModificationReceived,
        id: "modification_received/v1",
        required: &["company_name"],
        en: texts!("modification_received.v1", "en"),
        zh_cn: texts!("modification_received.v1", "zh-CN"),
    },
    Template {
        event: E::ModificationApproved,
        id: "modification_approved/v1",
        required: &["company_name"],
        en: texts!("modification_approved.v1", "en"),
        zh_cn: texts!("modification_approved.v1", "zh-CN"),
    },
    Template {
        event: E::ModificationRejected,
        id: "modification_rejected/v1",
        required: REASONS,
        en: texts!("modification_rejected.v1", "en"),
        zh_cn: texts!("modification_rejected.v1", "zh-CN"),
    },
    Template {
        event: E::SellerExited,
        id: "seller_exited/v1",
        required: &["company_name"],
        en: texts!("seller_exited.v1", "en"),
        zh_cn: texts!("seller_exited.v1", "zh-CN"),
    },
    Template {
        event: E::ContactVerification,
        id: "contact_verification/v1",
        required: &["company_name", "contact_email", "verification_code"],
        en: texts!("contact_verification.v1", "en"),
        zh_cn: texts!("contact_verification.v1", "zh-CN"),
    },
    Template {
        event: E::ContactUndeliverable,
        id: "contact_undeliverable/v1",
        required: &["company_name", "contact_email"],
        en: texts!("contact_undeliverable.v1", "en"),
        zh_cn: texts!("contact_undeliverable.v1", "zh-CN"),
    },
    Template {
        event: E::SellerUnreachable,
        id: "seller_unreachable/v1",
        required: &["company_name"],
        en: texts!("seller_unreachable.v1", "en"),
        zh_cn: texts!("seller_unreachable.v1", "zh-CN"),
    },
];

/// The footer of every email body, after an empty line.
const FOOTER_EN: &str = concat!("\n", include_str!("../templates/footer.en.txt"));

/// The footer of every email body in Simplified Chinese, after an empty line.
const FOOTER_ZH: &str = concat!("\n", include_str!("../templates/footer.zh-CN.txt"));
/// The template of an event type; `None` for UNSPECIFIED.
pub fn template(event: E) -> Option<&'static Template> {
    TEMPLATES.iter().find(|t| t.event == event)
}

/// A rendered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub template: &'static str,
    pub locale: Locale,
    /// Email subject: one line.
    pub subject: String,
    /// Email body: plain text, `\n` line ends.
    pub body: String,
    /// SMS text: one line.
    pub sms: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error("the template needs parameter {0:?}")]
    Missing(&'static str),
    #[error("parameter {0:?}: {1}")]
    Invalid(&'static str, &'static str),
    #[error("no template for this event type")]
    NoTemplate,
}

/// Renders the template of `event` in `locale`. `params` are the request's template
/// parameters (already checked for count, key syntax and length).
pub fn render(
    event: E,
    locale: Locale,
    params: &BTreeMap<String, String>,
    tz: Tz,
) -> Result<Rendered, RenderError> {
    let template = template(event).ok_or(RenderError::NoTemplate)?;
    let params = &with_aliases(params);
    for &name in template.required {
        match params.get(name) {
            None => return Err(RenderError::Missing(name)),
            Some(v) if clean(v, true).trim().is_empty() && !MAY_BE_EMPTY.contains(&name) => {
                return Err(RenderError::Missing(name));
            }
            Some(_) => {}
        }
    }
    let mut values: BTreeMap<&'static str, String> = BTreeMap::new();
    for &name in KNOWN {
        let Some(raw) = params.get(name) else {
            continue;
        };
        let value = match name {
            "review_deadline" if !raw.trim().is_empty() => format_deadline(raw, locale, tz)?,
            "reason_titles" => bullets(raw),
            _ => clean(raw, true).trim().to_string(),
        };
        if !value.is_empty() {
            values.insert(name, value);
        }
    }
    let texts = match locale {
        Locale::En => &template.en,
        Locale::ZhCn => &template.zh_cn,
    };
    let footer = match locale {
        Locale::En => FOOTER_EN,
        Locale::ZhCn => FOOTER_ZH,
    };
    let mut body = String::new();
    for line in texts.body.lines() {
        if let Some(filled) = fill_line(line, &values) {
            body.push_str(&filled);
            body.push('\n');
        }
    }
    body.push_str(footer);
    Ok(Rendered {
        template: template.id,
        locale,
        subject: one_line(&fill_line(texts.subject, &values).unwrap_or_default(), 250),
        body,
        sms: one_line(&fill_line(texts.sms, &values).unwrap_or_default(), 500),
    })
}

/// The parameters with the aliases (see the module docs) resolved.
fn with_aliases(params: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut out = params.clone();
    for (alias, key) in [
        ("deadline", "review_deadline"),
        ("reason", "comment"),
        ("reason_codes", "reason_titles"),
    ] {
        if !out.contains_key(key)
            && let Some(value) = params.get(alias)
        {
            let value = if key == "reason_titles" {
                value
                    .split(',')
                    .map(str::trim)
                    .collect::<Vec<_>>()
                    .join("\n")
            } else {
                value.clone()
            };
            out.insert(key.to_string(), value);
        }
    }
    out
}

/// Substitutes `{name}` placeholders in one pass; `None` when a placeholder has no value.
fn fill_line(line: &str, values: &BTreeMap<&'static str, String>) -> Option<String> {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close)
                if !after[..close].is_empty()
                    && after[..close]
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b == b'_') =>
            {
                let name = &after[..close];
                out.push_str(values.get(name)?);
                rest = &after[close + 1..];
            }
            _ => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Some(out)
}

/// Removes control characters; keeps line breaks (as `\n`) when `keep_newlines`.
pub fn clean(value: &str, keep_newlines: bool) -> String {
    let normalized = value.replace("\r\n", "\n").replace('\r', "\n");
    normalized
        .chars()
        .filter_map(|c| match c {
            '\n' if keep_newlines => Some('\n'),
            '\n' | '\t' => Some(' '),
            c if c.is_control() => None,
            // bidi overrides and zero-width joiners could disguise text
            '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' => None,
            c => Some(c),
        })
        .collect()
}

/// One line: CR/LF and other control characters become spaces (a header value or an SMS can
/// never carry a line break), runs of white space collapse, at most `max` characters.
pub fn one_line(value: &str, max: usize) -> String {
    let cleaned = clean(value, false);
    let collapsed = cleaned.split_whitespace().collect::<Vec<_>>().join(" ");
    collapsed.chars().take(max).collect()
}

fn bullets(raw: &str) -> String {
    clean(raw, true)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| format!("  - {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn format_deadline(raw: &str, locale: Locale, tz: Tz) -> Result<String, RenderError> {
    let at = DateTime::parse_from_rfc3339(raw.trim())
        .map_err(|_| RenderError::Invalid("review_deadline", "an RFC 3339 time is expected"))?
        .with_timezone(&tz);
    let offset = at.format("%:z");
    Ok(match locale {
        Locale::En => format!(
            "{} {} {}, {:02}:{:02} (UTC{offset})",
            at.day(),
            MONTHS[at.month0() as usize],
            at.year(),
            at.hour(),
            at.minute()
        ),
        Locale::ZhCn => format!(
            "{}年{}月{}日 {:02}:{:02}（UTC{offset}）",
            at.year(),
            at.month(),
            at.day(),
            at.hour(),
            at.minute()
        ),
    })
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const TZ: Tz = chrono_tz::Asia::Shanghai;

    #[test]
    fn every_event_type_has_one_template_with_known_placeholders() {
        for value in 1..=13 {
            let event = E::try_from(value).unwrap();
            let matching = TEMPLATES.iter().filter(|t| t.event == event).count();
            assert_eq!(matching, 1, "{event:?}");
        }
        for t in TEMPLATES {
            for text in [
                t.en.subject,
                t.en.body,
                t.en.sms,
                t.zh_cn.subject,
                t.zh_cn.body,
                t.zh_cn.sms,
            ] {
                let mut rest = text;
                while let Some(open) = rest.find('{') {
                    let close = rest[open..].find('}').unwrap() + open;
                    let name = &rest[open + 1..close];
                    assert!(KNOWN.contains(&name), "{}: unknown {{{name}}}", t.id);
                    rest = &rest[close + 1..];
                }
                assert!(text.contains("{company_name}"), "{}: {text}", t.id);
            }
            for r in t.required {
                assert!(KNOWN.contains(r));
            }
        }
    }

    #[test]
    fn renders_an_approval_in_english_and_leaves_out_empty_lines() {
        let r = render(
            E::ApplicationApproved,
            Locale::En,
            &params(&[
                ("company_name", "Fuzhou Example Software Co., Ltd."),
                ("application", "applications/42"),
            ]),
            TZ,
        )
        .unwrap();
        assert_eq!(r.template, "application_approved/v1");
        assert_eq!(
            r.subject,
            "Approved: Fuzhou Example Software Co., Ltd. is now a KooGallery seller"
        );
        assert!(r.body.contains("Application: applications/42\n"));
        assert!(!r.body.contains("Seller:"), "{}", r.body);
        assert!(!r.body.contains('{'));
        assert!(r.sms.contains("Fuzhou Example Software Co., Ltd."));
    }

    #[test]
    fn rejection_lists_reasons_and_requires_them() {
        let p = params(&[
            ("company_name", "ACME"),
            (
                "reason_titles",
                "Logo is blurred\r\nWebsite is not in English",
            ),
            ("comment", ""),
        ]);
        let r = render(E::ApplicationRejected, Locale::ZhCn, &p, TZ).unwrap();
        assert!(
            r.body
                .contains("  - Logo is blurred\n  - Website is not in English")
        );
        assert!(r.subject.starts_with("ACME的云商店"));
        assert!(!r.body.contains("审核意见"), "empty comment line left out");
        let missing = render(
            E::ApplicationRejected,
            Locale::En,
            &params(&[("company_name", "ACME"), ("comment", "x")]),
            TZ,
        );
        assert_eq!(missing, Err(RenderError::Missing("reason_titles")));
        let blank = render(
            E::ApplicationApproved,
            Locale::En,
            &params(&[("company_name", "  ")]),
            TZ,
        );
        assert_eq!(blank, Err(RenderError::Missing("company_name")));
    }

    #[test]
    fn header_values_cannot_break_lines_and_values_are_not_expanded_twice() {
        let r = render(
            E::ApplicationApproved,
            Locale::En,
            &params(&[("company_name", "Evil\r\nBcc: victim@example.com {comment}")]),
            TZ,
        )
        .unwrap();
        assert!(!r.subject.contains('\n') && !r.subject.contains('\r'));
        assert!(r.subject.contains("Evil Bcc: victim@example.com {comment}"));
        assert!(!r.sms.contains('\n'));
    }

    #[test]
    fn deadlines_are_shown_in_the_platform_time_zone() {
        let p = params(&[
            ("company_name", "ACME"),
            ("review_deadline", "2026-03-05T10:00:00Z"),
        ]);
        let en = render(E::ApplicationReceived, Locale::En, &p, TZ).unwrap();
        assert!(
            en.body
                .contains("Review expected by: 5 March 2026, 18:00 (UTC+08:00)"),
            "{}",
            en.body
        );
        let zh = render(E::ApplicationReceived, Locale::ZhCn, &p, TZ).unwrap();
        assert!(zh.body.contains("2026年3月5日 18:00（UTC+08:00）"));
        let bad = params(&[("company_name", "ACME"), ("review_deadline", "tomorrow")]);
        assert!(matches!(
            render(E::ApplicationReceived, Locale::En, &bad, TZ),
            Err(RenderError::Invalid("review_deadline", _))
        ));
    }

    #[test]
    fn aliases_stand_in_for_absent_keys_only() {
        let p = params(&[
            ("company_name", "ACME"),
            ("reason_codes", "LOGO_UNCLEAR, WEBSITE_NOT_ENGLISH"),
            ("reason", "Please fix the logo."),
            ("deadline", "2026-03-05T10:00:00Z"),
        ]);
        let r = render(E::ApplicationRejected, Locale::En, &p, TZ).unwrap();
        assert!(
            r.body.contains("  - LOGO_UNCLEAR\n  - WEBSITE_NOT_ENGLISH"),
            "{}",
            r.body
        );
        assert!(
            r.body
                .contains("Comment from the reviewer: Please fix the logo.")
        );
        let r = render(E::ApplicationReceived, Locale::En, &p, TZ).unwrap();
        assert!(r.body.contains("5 March 2026, 18:00"));
        let mut both = p.clone();
        both.insert("comment".into(), "The real comment.".into());
        let r = render(E::ApplicationRejected, Locale::En, &both, TZ).unwrap();
        assert!(
            r.body
                .contains("Comment from the reviewer: The real comment.")
        );
    }

    #[test]
    fn reachability_templates_render_in_both_locales() {
        let p = params(&[
            ("company_name", "ACME"),
            ("contact_email", "s***@acme.example"),
            ("verification_code", "7QK2-PX4M"),
            ("contact", "accounts/a-1/contacts/c-1"),
        ]);
        let en = render(E::ContactVerification, Locale::En, &p, TZ).unwrap();
        assert_eq!(en.template, "contact_verification/v1");
        assert!(
            en.body.contains("Verification code: 7QK2-PX4M"),
            "{}",
            en.body
        );
        assert!(
            en.body.contains("24 hours")
                && en.body.contains(
                    "koogallery contacts verify accounts/a-1/contacts/c-1 --code 7QK2-PX4M"
                )
        );
        let zh = render(E::ContactVerification, Locale::ZhCn, &p, TZ).unwrap();
        assert!(zh.body.contains("验证码：7QK2-PX4M") && zh.body.contains("24小时"));
        assert_eq!(
            render(
                E::ContactVerification,
                Locale::En,
                &params(&[
                    ("company_name", "ACME"),
                    ("contact_email", "s***@acme.example")
                ]),
                TZ
            ),
            Err(RenderError::Missing("verification_code"))
        );
        let en = render(E::ContactUndeliverable, Locale::En, &p, TZ).unwrap();
        assert_eq!(en.template, "contact_undeliverable/v1");
        assert!(en.body.contains("s***@acme.example") && en.body.contains("failed permanently"));
        assert!(en.sms.contains("s***@acme.example"));
        assert_eq!(
            render(
                E::ContactUndeliverable,
                Locale::ZhCn,
                &params(&[("company_name", "ACME")]),
                TZ
            ),
            Err(RenderError::Missing("contact_email"))
        );
        let p = params(&[("company_name", "ACME")]);
        let en = render(E::SellerUnreachable, Locale::En, &p, TZ).unwrap();
        assert_eq!(en.template, "seller_unreachable/v1");
        assert!(en.body.contains("seller guide") && en.body.contains("removed from the catalog"));
        let zh = render(E::SellerUnreachable, Locale::ZhCn, &p, TZ).unwrap();
        assert!(zh.body.contains("下架"));
    }

    #[test]
    fn locales() {
        assert_eq!(Locale::parse("zh-CN"), Some(Locale::ZhCn));
        assert_eq!(Locale::parse("zh_cn"), Some(Locale::ZhCn));
        assert_eq!(Locale::parse("en-GB"), Some(Locale::En));
        assert_eq!(Locale::parse("fr"), None);
        assert_eq!(Locale::parse("zh-TW"), None);
    }
}
