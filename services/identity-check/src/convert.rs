//! Between the check library's results and the wire types.

use chrono::{DateTime, Utc};
use kg_checks::finding::{Finding, Severity};
use kg_proto::common::{CheckFinding, CheckOutcome};

pub fn timestamp(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    }
}

pub fn finding(f: &Finding) -> CheckFinding {
    CheckFinding {
        code: f.code.to_string(),
        message: f.message.clone(),
        field: f.field.clone(),
        outcome: match f.severity {
            Severity::Error => CheckOutcome::Failed,
            Severity::Warning => CheckOutcome::Warning,
        } as i32,
    }
}

/// FAILED if any finding is an error, WARNING if any is a warning, else PASSED.
pub fn outcome(findings: &[Finding]) -> CheckOutcome {
    if findings.iter().any(|f| f.severity == Severity::Error) {
        CheckOutcome::Failed
    } else if findings.is_empty() {
        CheckOutcome::Passed
    } else {
        CheckOutcome::Warning
    }
}
