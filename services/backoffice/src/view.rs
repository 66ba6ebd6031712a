//! What the templates show, built from the protos. Everything here is plain text: the templates
//! escape it all (no value is ever marked safe).

use chrono::{DateTime, Utc};
use kg_proto::common::{CheckEvidence, CheckFinding, CheckOutcome, ReviewDecision, SellerProfile};
use kg_proto::registration::FieldChange;
use kg_proto::review::{
    ActorRole, AuditAction, AuditEntry, DuplicateSignal, DuplicateSignalKind, ReviewTask,
    ReviewTaskState, SubjectKind,
};
use serde::Serialize;

/// The id of "reviewTasks/{id}" (or of any "collection/{id}").
pub fn last_segment(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or(name)
}

/// Ids in a path are plain ids (task ids are UUIDs); anything else is refused before it reaches
/// a service.
pub use kg_runtime::idempotency::is_plain_id as valid_id;

pub fn time(ts: Option<&prost_types::Timestamp>) -> Option<DateTime<Utc>> {
    let ts = ts?;
    DateTime::from_timestamp(ts.seconds, u32::try_from(ts.nanos).unwrap_or(0))
}

pub fn show_time(ts: Option<&prost_types::Timestamp>) -> String {
    time(ts)
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default()
}

/// "2d 4h", "3h 10m", "12m": coarse on purpose, the queue is read at a glance.
pub fn span(d: chrono::Duration) -> String {
    let minutes = d.num_minutes().abs();
    let (days, hours, mins) = (minutes / 1440, minutes % 1440 / 60, minutes % 60);
    if days > 0 {
        format!("{days}d {hours}h")
    } else if hours > 0 {
        format!("{hours}h {mins}m")
    } else {
        format!("{mins}m")
    }
}

/// Time left on the review clock and how urgent it is: "overdue" (the service's own flag),
/// "at-risk" (less than `at_risk` left), "on-time", "paused" (waiting on the applicant) or
/// "none" (final tasks).
pub fn clock(
    task: &ReviewTask,
    now: DateTime<Utc>,
    at_risk: chrono::Duration,
) -> (String, &'static str) {
    let state = ReviewTaskState::try_from(task.state).unwrap_or_default();
    match state {
        ReviewTaskState::WaitingOnApplicant => {
            return ("clock stopped (waiting on the applicant)".into(), "paused");
        }
        ReviewTaskState::Queued | ReviewTaskState::Claimed => {}
        _ => return (String::new(), "none"),
    }
    let Some(deadline) = time(task.deadline.as_ref()) else {
        return (String::new(), "none");
    };
    let left = deadline - now;
    if task.overdue || left <= chrono::Duration::zero() {
        (format!("overdue by {}", span(left)), "overdue")
    } else if left < at_risk {
        (format!("{} left", span(left)), "at-risk")
    } else {
        (format!("{} left", span(left)), "on-time")
    }
}

pub fn state_label(state: i32) -> &'static str {
    match ReviewTaskState::try_from(state).unwrap_or_default() {
        ReviewTaskState::Queued => "Queued",
        ReviewTaskState::Claimed => "Claimed",
        ReviewTaskState::WaitingOnApplicant => "Waiting on applicant",
        ReviewTaskState::Approved => "Approved",
        ReviewTaskState::Rejected => "Rejected",
        ReviewTaskState::Cancelled => "Cancelled",
        ReviewTaskState::Unspecified => "Unknown",
    }
}

pub fn kind_label(kind: i32) -> &'static str {
    match SubjectKind::try_from(kind).unwrap_or_default() {
        SubjectKind::Application => "Application",
        SubjectKind::ModificationRequest => "Change request",
        SubjectKind::Unspecified => "Unknown",
    }
}

#[derive(Serialize)]
pub struct QueueRow {
    pub id: String,
    pub company: String,
    pub kind: &'static str,
    pub state: &'static str,
    pub assignee: String,
    pub deadline: String,
    pub time_left: String,
    pub urgency: &'static str,
    pub signals: usize,
    pub submitted: String,
    pub account: String,
}

pub fn queue_row(task: &ReviewTask, now: DateTime<Utc>, at_risk: chrono::Duration) -> QueueRow {
    let (time_left, urgency) = clock(task, now, at_risk);
    QueueRow {
        id: last_segment(&task.name).to_string(),
        company: task.company_name.clone(),
        kind: kind_label(task.subject_kind),
        state: state_label(task.state),
        assignee: task.assignee.clone(),
        deadline: show_time(task.deadline.as_ref()),
        time_left,
        urgency,
        signals: task.duplicate_signals.len(),
        submitted: show_time(task.submit_time.as_ref()),
        account: task.account_id.clone(),
    }
}

fn outcome_label(outcome: i32) -> &'static str {
    match CheckOutcome::try_from(outcome).unwrap_or_default() {
        CheckOutcome::Passed => "passed",
        CheckOutcome::Failed => "failed",
        CheckOutcome::Warning => "warning",
        CheckOutcome::Unspecified => "not checked",
    }
}

#[derive(Serialize)]
pub struct Finding {
    pub code: String,
    pub message: String,
    pub severity: &'static str,
}

#[derive(Serialize)]
pub struct Material {
    pub name: &'static str,
    pub value: String,
    pub outcome: &'static str,
    pub findings: Vec<Finding>,
    /// (label, value) lines of what the checker saw.
    pub evidence: Vec<(String, String)>,
}

/// Which material a finding is about, by its field path.
fn material_of(field: &str) -> &'static str {
    let field = field.strip_prefix("profile.").unwrap_or(field);
    if field.starts_with("entity.") || field.starts_with("registration_") {
        "Registration number"
    } else if field.starts_with("website") {
        "Website"
    } else if field.starts_with("logo") {
        "Logo"
    } else if field.starts_with("introduction") {
        "Introduction"
    } else if field.starts_with("contact") {
        "Contact person"
    } else if field.starts_with("customer_service_email") {
        "Customer-service email"
    } else if field.starts_with("customer_service_phone") {
        "Customer-service phone"
    } else {
        "Other"
    }
}

/// Every material with its check result and what the checker saw.
pub fn materials(task: &ReviewTask) -> Vec<Material> {
    let empty_profile = SellerProfile::default();
    let profile = task.profile.as_ref().unwrap_or(&empty_profile);
    let empty_evidence = CheckEvidence::default();
    let evidence = task.evidence.as_ref().unwrap_or(&empty_evidence);
    let checked = evidence.checked_time.is_some();
    let entity = task.entity.clone().unwrap_or_default();
    let contact = profile.contact.clone().unwrap_or_default();

    let mut out = vec![
        material(
            "Registration number",
            format!("{} {}", entity.country, entity.registration_number),
        ),
        material("Website", profile.website_url.clone()),
        material(
            "Logo",
            format!(
                "{} (declared {})",
                short_hash(&profile.logo_sha256),
                or_none(&profile.logo_content_type)
            ),
        ),
        material("Introduction", profile.introduction.clone()),
        material(
            "Contact person",
            format!("{} <{}> {}", contact.name, contact.email, contact.mobile),
        ),
        material(
            "Customer-service email",
            profile.customer_service_email.clone(),
        ),
        material(
            "Customer-service phone",
            profile.customer_service_phone.clone(),
        ),
    ];
    if let Some(rn) = &evidence.registration_number {
        out[0].evidence = vec![
            ("normalized".into(), rn.normalized.clone()),
            ("format".into(), or_none(&rn.format_name)),
            (
                "check character".into(),
                if rn.check_character_valid {
                    "valid"
                } else {
                    "not valid"
                }
                .into(),
            ),
            ("checked".into(), show_time(rn.checked_time.as_ref())),
        ];
    }
    if let Some(w) = &evidence.website {
        let mut lines = vec![
            ("final URL".into(), or_none(&w.final_url)),
            (
                "HTTP status".into(),
                if w.http_status == 0 {
                    "no response".into()
                } else {
                    w.http_status.to_string()
                },
            ),
            ("language".into(), or_none(&w.detected_language)),
            ("Content-Language".into(), or_none(&w.content_language)),
            ("address".into(), or_none(&w.resolved_address)),
            ("checked".into(), show_time(w.checked_time.as_ref())),
        ];
        for (i, r) in w.redirects.iter().enumerate() {
            lines.push((format!("redirect {}", i + 1), r.clone()));
        }
        out[1].evidence = lines;
    }
    if let Some(l) = &evidence.logo {
        let format = kg_proto::common::ImageFormat::try_from(l.format)
            .map(|f| {
                f.as_str_name()
                    .trim_start_matches("IMAGE_FORMAT_")
                    .to_string()
            })
            .unwrap_or_default();
        out[2].evidence = vec![
            ("real format".into(), format),
            (
                "size".into(),
                format!("{} x {} px, {} bytes", l.width, l.height, l.size_bytes),
            ),
            ("declared".into(), or_none(&l.declared_content_type)),
            ("checked".into(), show_time(l.checked_time.as_ref())),
        ];
    }
    let mut others = Vec::new();
    for f in &evidence.findings {
        let name = material_of(&f.field);
        match out.iter_mut().find(|m| m.name == name) {
            Some(m) => m.findings.push(finding(f)),
            None => others.push(finding(f)),
        }
    }
    for m in &mut out {
        m.outcome = if m.findings.iter().any(|f| f.severity == "failed") {
            "failed"
        } else if m.findings.iter().any(|f| f.severity == "warning") {
            "warning"
        } else if checked {
            "passed"
        } else {
            "not checked"
        };
    }
    if !others.is_empty() {
        let mut other = material("Other", String::new());
        other.findings = others;
        other.outcome = "warning";
        out.push(other);
    }
    out
}

fn material(name: &'static str, value: String) -> Material {
    Material {
        name,
        value,
        outcome: "not checked",
        findings: Vec::new(),
        evidence: Vec::new(),
    }
}

fn finding(f: &CheckFinding) -> Finding {
    Finding {
        code: f.code.clone(),
        message: f.message.clone(),
        severity: outcome_label(f.outcome),
    }
}

fn or_none(s: &str) -> String {
    if s.is_empty() {
        "—".into()
    } else {
        s.to_string()
    }
}

fn short_hash(h: &str) -> String {
    if h.len() > 12 {
        format!("sha256 {}…", &h[..12])
    } else {
        or_none(h)
    }
}

pub fn evidence_outcome(task: &ReviewTask) -> &'static str {
    task.evidence
        .as_ref()
        .map(|e| outcome_label(e.outcome))
        .unwrap_or("not checked")
}

#[derive(Serialize)]
pub struct Signal {
    pub kind: &'static str,
    pub other_id: String,
    pub other_subject: String,
    pub detail: String,
    pub similarity: String,
}

pub fn signals(task: &ReviewTask) -> Vec<Signal> {
    task.duplicate_signals.iter().map(signal).collect()
}

fn signal(s: &DuplicateSignal) -> Signal {
    Signal {
        kind: match DuplicateSignalKind::try_from(s.kind).unwrap_or_default() {
            DuplicateSignalKind::WebsiteDomain => "same website domain",
            DuplicateSignalKind::ContactMobile => "same contact mobile",
            DuplicateSignalKind::ContactEmail => "same email address",
            DuplicateSignalKind::SimilarCompanyName => "similar company name",
            DuplicateSignalKind::Unspecified => "unknown",
        },
        other_id: last_segment(&s.other_task).to_string(),
        other_subject: s.other_subject.clone(),
        detail: s.detail.clone(),
        similarity: format!("{:.0}%", s.similarity * 100.0),
    }
}

#[derive(Serialize)]
pub struct Change {
    pub field: String,
    pub old: String,
    pub new: String,
}

pub fn changes(changes: &[FieldChange]) -> Vec<Change> {
    changes
        .iter()
        .map(|c| Change {
            field: c.field_path.clone(),
            old: c.old_value.clone(),
            new: c.new_value.clone(),
        })
        .collect()
}

#[derive(Serialize)]
pub struct Audit {
    pub time: String,
    pub actor: String,
    pub role: &'static str,
    pub action: String,
    pub transition: String,
    pub comment: String,
    pub reasons: String,
    pub request_id: String,
}

pub fn audit(entries: &[AuditEntry]) -> Vec<Audit> {
    entries
        .iter()
        .map(|e| Audit {
            time: show_time(e.action_time.as_ref()),
            actor: e.actor.clone(),
            role: match ActorRole::try_from(e.actor_role).unwrap_or_default() {
                ActorRole::Reviewer => "reviewer",
                ActorRole::Operator => "operator",
                ActorRole::Service => "service",
                ActorRole::Unspecified => "",
            },
            action: AuditAction::try_from(e.action)
                .map(|a| {
                    a.as_str_name()
                        .trim_start_matches("AUDIT_ACTION_")
                        .replace('_', " ")
                })
                .unwrap_or_default(),
            transition: if e.before_state == 0 {
                state_label(e.after_state).to_string()
            } else {
                format!(
                    "{} → {}",
                    state_label(e.before_state),
                    state_label(e.after_state)
                )
            },
            comment: e.comment.clone(),
            reasons: e.reason_codes.join(", "),
            request_id: e.request_id.clone(),
        })
        .collect()
}

#[derive(Serialize)]
pub struct DecisionView {
    pub outcome: &'static str,
    pub reasons: Vec<String>,
    pub comment: String,
    pub reviewer: String,
    pub decided: String,
    pub delivered: String,
}

pub fn decision(task: &ReviewTask) -> Option<DecisionView> {
    let d = task.decision.as_ref()?;
    Some(DecisionView {
        outcome: match ReviewDecision::try_from(d.outcome).unwrap_or_default() {
            ReviewDecision::Approve => "Approved",
            ReviewDecision::Reject => "Rejected",
            ReviewDecision::RequestChanges => "Changes requested",
            ReviewDecision::Unspecified => "Unknown",
        },
        reasons: d
            .reasons
            .iter()
            .map(|r| format!("{} — {}", r.code, r.title_en))
            .collect(),
        comment: d.comment.clone(),
        reviewer: d.reviewer.clone(),
        decided: show_time(d.decide_time.as_ref()),
        delivered: if d.deliver_time.is_some() {
            show_time(d.deliver_time.as_ref())
        } else {
            "pending delivery to registration".into()
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(state: ReviewTaskState, deadline_in: chrono::Duration, overdue: bool) -> ReviewTask {
        let deadline = Utc::now() + deadline_in;
        ReviewTask {
            state: state as i32,
            deadline: Some(prost_types::Timestamp {
                seconds: deadline.timestamp(),
                nanos: 0,
            }),
            overdue,
            ..Default::default()
        }
    }

    #[test]
    fn the_clock_marks_at_risk_and_overdue() {
        let now = Utc::now();
        let day = chrono::Duration::hours(24);
        let (left, u) = clock(
            &task(ReviewTaskState::Queued, chrono::Duration::hours(50), false),
            now,
            day,
        );
        assert_eq!(u, "on-time");
        assert!(
            left.starts_with("2d 1h") || left.starts_with("2d 2h"),
            "{left}"
        );
        let (_, u) = clock(
            &task(ReviewTaskState::Claimed, chrono::Duration::hours(5), false),
            now,
            day,
        );
        assert_eq!(u, "at-risk");
        let (left, u) = clock(
            &task(ReviewTaskState::Queued, chrono::Duration::hours(-3), true),
            now,
            day,
        );
        assert_eq!(u, "overdue");
        assert!(
            left.starts_with("overdue by 2h") || left.starts_with("overdue by 3h"),
            "{left}"
        );
        assert_eq!(
            clock(
                &task(ReviewTaskState::WaitingOnApplicant, day, false),
                now,
                day
            )
            .1,
            "paused"
        );
        assert_eq!(
            clock(&task(ReviewTaskState::Approved, day, false), now, day).1,
            "none"
        );
    }

    #[test]
    fn findings_land_on_their_material() {
        let t = ReviewTask {
            evidence: Some(CheckEvidence {
                findings: vec![
                    CheckFinding {
                        code: "WEBSITE_NOT_ENGLISH".into(),
                        field: "profile.website_url".into(),
                        outcome: CheckOutcome::Warning as i32,
                        ..Default::default()
                    },
                    CheckFinding {
                        code: "REGISTRATION_NUMBER_FORMAT_UNKNOWN".into(),
                        field: "registration_number".into(),
                        outcome: CheckOutcome::Warning as i32,
                        ..Default::default()
                    },
                ],
                checked_time: Some(prost_types::Timestamp::default()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let m = materials(&t);
        let by = |n: &str| m.iter().find(|x| x.name == n).unwrap();
        assert_eq!(by("Website").outcome, "warning");
        assert_eq!(by("Website").findings[0].code, "WEBSITE_NOT_ENGLISH");
        assert_eq!(by("Registration number").outcome, "warning");
        assert_eq!(by("Logo").outcome, "passed");
        assert!(valid_id("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"));
        assert!(!valid_id("../x") && !valid_id("") && !valid_id("a b"));
    }
}

/// The reviewed profile's contact addresses and whether mail reaches them (registration's
/// ListContacts), for the task page.
#[derive(Debug, Default, Serialize)]
pub struct ContactStates {
    pub rows: Vec<ContactRow>,
    pub unreachable: bool,
}

#[derive(Debug, Serialize)]
pub struct ContactRow {
    pub email: String,
    /// PENDING, VERIFIED, UNDELIVERABLE, or "not enrolled".
    pub state: String,
    pub failures: i32,
    pub last_failure: String,
}

pub fn contacts(
    profile: Option<&SellerProfile>,
    listed: &kg_proto::registration::ListContactsResponse,
) -> ContactStates {
    let empty = SellerProfile::default();
    let profile = profile.unwrap_or(&empty);
    let contact = profile.contact.as_ref().map(|c| c.email.as_str());
    let mut wanted: Vec<String> = Vec::new();
    for email in [
        contact.unwrap_or(""),
        profile.customer_service_email.as_str(),
    ] {
        let email = email.trim().to_lowercase();
        if !email.is_empty() && !wanted.contains(&email) {
            wanted.push(email);
        }
    }
    let rows = wanted
        .into_iter()
        .map(
            |email| match listed.contacts.iter().find(|c| c.email == email) {
                Some(c) => ContactRow {
                    email,
                    state: kg_proto::registration::ContactState::try_from(c.state)
                        .map(|s| {
                            s.as_str_name()
                                .trim_start_matches("CONTACT_STATE_")
                                .to_string()
                        })
                        .unwrap_or_default(),
                    failures: c.failure_count,
                    last_failure: c.last_failure.clone(),
                },
                None => ContactRow {
                    email,
                    state: "not enrolled".to_string(),
                    failures: 0,
                    last_failure: String::new(),
                },
            },
        )
        .collect();
    ContactStates {
        rows,
        unreachable: listed.unreachable,
    }
}
