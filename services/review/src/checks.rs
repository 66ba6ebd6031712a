//! RerunChecks: the materials kept with the task (entity, profile, logo) are checked again by
//! identity-check's CheckMaterials; the new evidence replaces the task's and the run is audited.

use kg_proto::common::{CheckEvidence, CheckOutcome, CompanyEntity};
use kg_proto::identity::CheckMaterialsRequest;
use kg_proto::review::{RerunChecksRequest, RerunChecksResponse};
use kg_runtime::auth::Caller;
use prost::Message;

use kg_runtime::error::CommonError;

use crate::claims::check_not_own;
use crate::error::ReviewError;
use crate::service::Review;
use crate::store::{state, task};
use crate::transition::{Change, Key, Plan, Target};
use crate::view;

/// Any task that is not final; a CLAIMED one only by its assignee.
fn may_rerun(caller: &Caller, row: &task::Model) -> Result<(), ReviewError> {
    check_not_own(caller, row)?;
    if state::is_final(&row.state) {
        return Err(ReviewError::InvalidState {
            state: row.state.clone(),
        });
    }
    if row.state == state::CLAIMED {
        let assignee = row.assignee.clone().unwrap_or_default();
        if assignee != caller.subject {
            return Err(ReviewError::ClaimedByOther { assignee });
        }
    }
    Ok(())
}

/// The worst outcome of the findings.
fn overall(evidence: &CheckEvidence) -> i32 {
    let has = |o: CheckOutcome| evidence.findings.iter().any(|f| f.outcome == o as i32);
    if has(CheckOutcome::Failed) {
        CheckOutcome::Failed as i32
    } else if has(CheckOutcome::Warning) {
        CheckOutcome::Warning as i32
    } else {
        CheckOutcome::Passed as i32
    }
}

/// The new evidence, keeping the logo's earlier evidence when the logo could not be checked
/// again (its bytes were not sent with the task).
fn merge(previous: Option<CheckEvidence>, mut fresh: CheckEvidence) -> CheckEvidence {
    if fresh.logo.is_none()
        && let Some(previous) = previous
        && previous.logo.is_some()
    {
        fresh.logo = previous.logo;
        fresh.findings.extend(
            previous
                .findings
                .into_iter()
                .filter(|f| f.field.starts_with("profile.logo")),
        );
        fresh.outcome = overall(&fresh);
    }
    fresh
}

impl Review {
    pub async fn rerun(
        &self,
        caller: &Caller,
        req: RerunChecksRequest,
    ) -> Result<RerunChecksResponse, ReviewError> {
        let id = view::parse_task_name("name", &req.name)?;
        let target = Target::Id {
            id: &id,
            name: &req.name,
        };
        let row = self.find_task(&target).await?;
        may_rerun(caller, &row)?;

        let mut profile = view::profile(&row)?;
        profile.logo = row.logo.clone().unwrap_or_default();
        let reply = self
            .identity
            .clone()
            .check_materials(CheckMaterialsRequest {
                entity: Some(CompanyEntity {
                    country: row.country.clone(),
                    registration_number: row.registration_number.clone(),
                }),
                profile: Some(profile),
                logo_file_name: String::new(),
                require_complete: false,
                account_id: row.account_id.clone(),
            })
            .await
            .map_err(|status| {
                ReviewError::from(CommonError::DependencyUnavailable("identity-check", status))
            })?
            .into_inner();
        let fresh = reply.evidence.unwrap_or_default();

        let plan = |row: &task::Model, now| {
            may_rerun(caller, row)?;
            let mut after = row.clone();
            let evidence = merge(view::evidence(row)?, fresh.clone());
            after.evidence = Some(evidence.encode_to_vec());
            after.update_time = now;
            Ok(Plan::Change(Box::new(Change {
                after,
                action: view::action::CHECKS_RERUN,
                comment: String::new(),
                reason_codes: Vec::new(),
                decision: None,
                outcome: "CHECKS_RERUN",
            })))
        };
        let applied = self.change(caller, &Key::None, target, &plan).await?;
        Ok(RerunChecksResponse {
            evidence: view::evidence(&applied.row)?,
            review_task: Some(view::task(&applied.row, view::now())?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kg_proto::common::{CheckFinding, LogoEvidence};

    #[test]
    fn logo_evidence_survives_a_rerun_without_logo_bytes() {
        let previous = CheckEvidence {
            outcome: CheckOutcome::Warning as i32,
            findings: vec![
                CheckFinding {
                    code: "LOGO_ASPECT_RATIO".into(),
                    field: "profile.logo".into(),
                    outcome: CheckOutcome::Warning as i32,
                    ..Default::default()
                },
                CheckFinding {
                    code: "WEBSITE_NOT_HTTPS".into(),
                    field: "profile.website_url".into(),
                    outcome: CheckOutcome::Warning as i32,
                    ..Default::default()
                },
            ],
            logo: Some(LogoEvidence::default()),
            ..Default::default()
        };
        let fresh = CheckEvidence {
            outcome: CheckOutcome::Passed as i32,
            ..Default::default()
        };
        let merged = merge(Some(previous), fresh);
        assert!(merged.logo.is_some());
        assert_eq!(merged.findings.len(), 1);
        assert_eq!(merged.outcome, CheckOutcome::Warning as i32);
    }
}
