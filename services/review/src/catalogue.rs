//! The rejection-reason catalogue (ListRejectionReasons) and the validation of the reason codes
//! and comments of decisions.

use kg_proto::common::RejectionReason;
use kg_proto::review::{ListRejectionReasonsRequest, ListRejectionReasonsResponse};

use kg_runtime::error::{CommonError, Violations};
use kg_runtime::paging::{self, Paging};

use crate::error::ReviewError;
use crate::view;

/// At most this many reason codes per decision.
pub const MAX_REASONS: usize = 10;
/// Comments of decisions and releases, in Unicode scalar values after trimming.
pub const MAX_COMMENT: usize = 2000;

/// `(code, English title, Simplified Chinese title, what to fix)`, ordered by code.
const CATALOGUE: &[(&str, &str, &str, &str)] = &[
    (
        "ADDRESS_INVALID",
        "Registered address invalid",
        "注册地址无效",
        "The registered address is incomplete or does not match the business licence. Enter the \
         address exactly as printed on the licence.",
    ),
    (
        "BUSINESS_SCOPE_NOT_ALLOWED",
        "Business scope not allowed",
        "经营范围不符合要求",
        "The company's business scope, or the products it intends to offer, are not allowed on \
         KooGallery. Check the marketplace's product policies.",
    ),
    (
        "COMPANY_INFO_MISMATCH",
        "Company information does not match",
        "公司信息不一致",
        "The company name, registration number or address differs from the business licence or \
         from the account's real-name verification. Make them match, changing the verified name \
         on the My Account page first if it changed.",
    ),
    (
        "CONTACT_INVALID",
        "Contact person invalid",
        "联系人信息无效",
        "The contact person's name, email address or mobile number is wrong or cannot be \
         reached. Give a person who can answer for the company.",
    ),
    (
        "CUSTOMER_SERVICE_EMAIL_INVALID",
        "Customer-service email invalid",
        "客服邮箱无效",
        "The customer-service email address is invalid or unanswered. Buyers must be able to \
         reach the seller at it.",
    ),
    (
        "DUPLICATE_ENTITY",
        "Company already registered",
        "企业主体重复",
        "This company entity already sells on KooGallery or is applying under another account. \
         A company entity registers once.",
    ),
    (
        "INTRODUCTION_INADEQUATE",
        "Company introduction inadequate",
        "公司简介不充分",
        "The company introduction is not in English, too short, or does not describe what the \
         company offers. Describe the company and its products for buyers.",
    ),
    (
        "LOGO_UNCLEAR",
        "Logo unclear",
        "Logo不清晰",
        "The logo is blurred, cropped or does not display completely in a square preview area. \
         Upload a clear PNG or JPEG logo.",
    ),
    (
        "MATERIALS_INCOMPLETE",
        "Materials incomplete",
        "材料不完整",
        "Required materials are missing or cannot be read. Complete every required field of the \
         registration form.",
    ),
    (
        "OTHER",
        "Other",
        "其他",
        "Another problem; the reviewer's comment explains it.",
    ),
    (
        "REGISTRATION_NUMBER_INVALID",
        "Registration number invalid",
        "统一社会信用代码无效",
        "The company registration number (for China, the Unified Social Credit Code) is invalid \
         or does not belong to the company. Enter it as printed on the business licence.",
    ),
    (
        "WEBSITE_NOT_ENGLISH",
        "Website not in English",
        "网站不是英文",
        "The company website does not serve English content. Provide a website, or an English \
         version of it, in English.",
    ),
    (
        "WEBSITE_UNREACHABLE",
        "Website unreachable",
        "网站无法访问",
        "The company website cannot be opened from the public internet. Make it reachable over \
         HTTP or HTTPS.",
    ),
];

pub fn reason(code: &str) -> Option<RejectionReason> {
    CATALOGUE
        .iter()
        .find(|(c, ..)| *c == code)
        .map(|&(code, en, zh, description)| RejectionReason {
            code: code.to_string(),
            title_en: en.to_string(),
            title_zh: zh.to_string(),
            description_en: description.to_string(),
        })
}

pub fn all() -> Vec<RejectionReason> {
    CATALOGUE.iter().filter_map(|(c, ..)| reason(c)).collect()
}

/// A checked decision: catalogue codes (order kept, 1 to 10, no duplicates when required) and a
/// trimmed comment.
pub struct Verdict {
    pub reason_codes: Vec<String>,
    pub comment: String,
}

/// Validates the codes and the comment of a decision; `required` for REJECT and REQUEST_CHANGES.
pub fn verdict(
    codes: &[String],
    comment: &str,
    required: bool,
    mut violations: Violations,
) -> Result<Verdict, ReviewError> {
    let mut unknown = Vec::new();
    if required && codes.is_empty() {
        violations.add(
            "reason_codes",
            "REASON_CODES_MISSING",
            "at least one code of the rejection-reason catalogue (ListRejectionReasons) is required",
        );
    }
    if !required && !codes.is_empty() {
        violations.add(
            "reason_codes",
            "REASON_CODES_NOT_ALLOWED",
            "an approval takes no reason codes",
        );
    }
    if codes.len() > MAX_REASONS {
        violations.add(
            "reason_codes",
            "TOO_MANY_REASON_CODES",
            format!("at most {MAX_REASONS} reason codes"),
        );
    }
    let mut seen = Vec::new();
    for (i, code) in codes.iter().enumerate().take(MAX_REASONS) {
        let field = format!("reason_codes[{i}]");
        if reason(code).is_none() {
            let shown: String = code.chars().take(64).collect();
            violations.add(
                field,
                "REJECTION_REASON_UNKNOWN",
                format!("{shown:?} is not a code of the rejection-reason catalogue"),
            );
            unknown.push(shown);
        } else if seen.contains(code) {
            violations.add(
                field,
                "REASON_CODE_DUPLICATE",
                format!("{code} is listed twice"),
            );
        } else {
            seen.push(code.clone());
        }
    }
    let (trimmed, length) = view::text(comment);
    if required && length == 0 {
        violations.add(
            "comment",
            "COMMENT_MISSING",
            "a comment to the applicant explaining the decision is required",
        );
    }
    if length > MAX_COMMENT {
        violations.add(
            "comment",
            "COMMENT_TOO_LONG",
            format!("at most {MAX_COMMENT} characters ({length} given)"),
        );
    }
    if !unknown.is_empty() {
        return Err(ReviewError::UnknownReasons {
            codes: unknown,
            violations: violations.0,
        });
    }
    violations.check()?;
    Ok(Verdict {
        reason_codes: seen,
        comment: trimmed.to_string(),
    })
}

pub fn list(
    req: &ListRejectionReasonsRequest,
) -> Result<ListRejectionReasonsResponse, ReviewError> {
    let mut v = Violations::default();
    let size = paging::page_size(req.page_size, &mut v);
    v.check()?;
    let paging = Paging::new(size, &"reasons");
    let after = paging.after::<String>(&req.page_token)?;
    if after.as_deref().is_some_and(|code| reason(code).is_none()) {
        return Err(CommonError::InvalidPageToken.into());
    }
    let mut reasons: Vec<RejectionReason> = all()
        .into_iter()
        .filter(|r| after.as_ref().is_none_or(|a| r.code.as_str() > a.as_str()))
        .collect();
    let next_page_token = paging.finish(&mut reasons, |r| r.code.clone());
    Ok(ListRejectionReasonsResponse {
        reasons,
        next_page_token,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalogue_is_ordered_unique_and_complete() {
        let codes: Vec<&str> = CATALOGUE.iter().map(|(c, ..)| *c).collect();
        let mut sorted = codes.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(codes, sorted);
        for (code, en, zh, description) in CATALOGUE {
            assert!(
                code.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'),
                "{code}"
            );
            assert!(!en.is_empty() && !zh.is_empty() && !description.is_empty());
        }
    }

    #[test]
    fn verdicts_need_known_codes_and_a_comment() {
        let codes = |c: &[&str]| c.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let v = verdict(
            &codes(&["OTHER"]),
            "  fix it  ",
            true,
            Violations::default(),
        )
        .unwrap();
        assert_eq!(v.comment, "fix it");
        assert!(matches!(
            verdict(&codes(&[]), "x", true, Violations::default()),
            Err(ReviewError::Common(CommonError::Invalid(_)))
        ));
        assert!(matches!(
            verdict(&codes(&["OTHER"]), " ", true, Violations::default()),
            Err(ReviewError::Common(CommonError::Invalid(_)))
        ));
        assert!(matches!(
            verdict(&codes(&["NOPE"]), "x", true, Violations::default()),
            Err(ReviewError::UnknownReasons { .. })
        ));
        assert!(matches!(
            verdict(
                &codes(&["OTHER", "OTHER"]),
                "x",
                true,
                Violations::default()
            ),
            Err(ReviewError::Common(CommonError::Invalid(_)))
        ));
        assert!(verdict(&codes(&[]), "", false, Violations::default()).is_ok());
        let long = "字".repeat(MAX_COMMENT + 1);
        assert!(verdict(&codes(&[]), &long, false, Violations::default()).is_err());
    }
}
