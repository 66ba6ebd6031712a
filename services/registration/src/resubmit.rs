//! ResubmitApplication: the applicant corrects an application in CHANGES_REQUESTED and sends it
//! back to review. The fields named by `update_mask` (empty: the whole profile) replace the
//! stored ones; the materials they name are checked again by identity-check (refusals have
//! Submit's shapes) and their evidence replaces the earlier evidence of those materials. The
//! application returns to SUBMITTED, and the relay resumes the paused review task
//! (ResumeReviewTask), which moves it to IN_REVIEW with the new deadline, as after a submission.

use kg_proto::common::{CheckEvidence, CheckOutcome, SellerProfile};
use kg_proto::registration::{Application, ResubmitApplicationRequest};
use kg_runtime::auth::Caller;
use kg_runtime::stored;
use prost::Message;
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, TransactionTrait};
use sha2::{Digest, Sha256};

use kg_runtime::error::CommonError;

use crate::app::Registration;
use crate::error::RegistrationError;
use crate::events::EventKind;
use crate::idempotency::Key;
use crate::names::parse_application_name;
use crate::profile_mask::{check_proposed, copy_leaf, masked_leaves};
use crate::store::{application, state};
use crate::{outbox, view};

pub const RPC: &str = "ResubmitApplication";

/// The profile materials identity-check knows, each with the mask leaf prefix that names it and
/// the path of its findings.
const MATERIALS: &[(&str, &str)] = &[
    ("logo", "profile.logo"),
    ("website_url", "profile.website_url"),
    ("introduction", "profile.introduction"),
    ("contact.", "profile.contact"),
    ("customer_service_email", "profile.customer_service_email"),
    ("customer_service_phone", "profile.customer_service_phone"),
];

impl Registration {
    pub async fn resubmit(
        &self,
        caller: &Caller,
        req: ResubmitApplicationRequest,
    ) -> Result<Application, RegistrationError> {
        let key = Key::new(&req.request_id, RPC, &req)?;
        key.run(
            &self.db,
            self.resubmit_once(caller, &key, req),
            |name| async move { self.visible_application(caller, &name).await },
        )
        .await
    }

    async fn resubmit_once(
        &self,
        caller: &Caller,
        key: &Key,
        req: ResubmitApplicationRequest,
    ) -> Result<Application, RegistrationError> {
        let id = parse_application_name(&req.name)?;
        let row = application::Entity::find_by_id(id.clone())
            .one(&self.db)
            .await?
            .filter(|r| caller.may_see(&r.account_id))
            .ok_or_else(|| RegistrationError::ApplicationNotFound(req.name.clone()))?;
        if row.state != state::CHANGES_REQUESTED {
            return Err(RegistrationError::InvalidState(row.state));
        }
        if !req.etag.is_empty() && req.etag != view::etag(row.update_time) {
            return Err(CommonError::EtagMismatch.into());
        }
        // An empty mask replaces the whole profile.
        let paths = match req.update_mask.as_ref().map(|m| m.paths.clone()) {
            Some(paths) if !paths.is_empty() => paths,
            _ => vec!["*".to_string()],
        };
        let leaves = masked_leaves(&paths)?;

        // A stored profile that does not decode is refused: the masked leaves would otherwise
        // be copied over an empty profile and erase the rest.
        let mut current: SellerProfile = stored::decode(
            &row.profile,
            "registration_applications.profile",
            &format!("applications/{id}"),
        )?;
        current.logo = row.logo.clone().unwrap_or_default();
        let mut input = req.profile.clone().unwrap_or_default();
        input.logo_sha256 = if input.logo.is_empty() {
            String::new()
        } else {
            hex::encode(Sha256::digest(&input.logo))
        };
        let mut proposed = current.clone();
        for leaf in &leaves {
            copy_leaf(&mut proposed, &input, leaf);
        }
        let violations = check_proposed(&proposed, &leaves);
        if !violations.is_empty() {
            return Err(CommonError::Invalid(violations).into());
        }
        let new_contacts = crate::contacts::new_addresses(&current, &proposed);

        // The materials the mask names are checked again, changed or not: a resubmission may
        // correct what is behind an unchanged value (the website's content, say).
        let named = |prefix: &str| leaves.iter().any(|l| l.starts_with(prefix));
        let check = crate::modification::materials_of(&proposed, named);
        let rechecked: Vec<&str> = MATERIALS
            .iter()
            .filter(|(prefix, _)| named(prefix))
            .map(|(_, field)| *field)
            .collect();
        let materials = self
            .check_changed_materials(check, &req.logo_file_name, &row.account_id)
            .await?;
        let earlier: Option<CheckEvidence> = stored::decode_opt(
            row.evidence.as_deref(),
            "registration_applications.evidence",
            &format!("applications/{id}"),
        )?;
        let evidence = merge_evidence(earlier, materials.evidence, &rechecked);

        let now = kg_runtime::db::now();
        let logo = std::mem::take(&mut proposed.logo);
        proposed.logo_sha256 = if logo.is_empty() {
            String::new()
        } else {
            hex::encode(Sha256::digest(&logo))
        };
        let txn = self.db.begin().await?;
        // Conditional on the state as read: every other change of an application in
        // CHANGES_REQUESTED (a withdrawal, another resubmission) leaves it, so the one that lost
        // the race fails with the state the winner left behind (or, when the winner was a copy
        // of this request, `Key::run` answers with its result).
        let updated = application::Entity::update_many()
            .col_expr(application::Column::State, Expr::value(state::SUBMITTED))
            .col_expr(
                application::Column::Profile,
                Expr::value(proposed.encode_to_vec()),
            )
            .col_expr(application::Column::Logo, Expr::value(Some(logo)))
            .col_expr(
                application::Column::Evidence,
                Expr::value(Some(evidence.encode_to_vec())),
            )
            .col_expr(
                application::Column::ReviewDeadline,
                Expr::value(Option::<chrono::DateTime<chrono::Utc>>::None),
            )
            .col_expr(application::Column::UpdateTime, Expr::value(now))
            .filter(application::Column::ApplicationId.eq(id.clone()))
            .filter(application::Column::State.eq(state::CHANGES_REQUESTED))
            .exec(&txn)
            .await?;
        if updated.rows_affected != 1 {
            drop(txn);
            let now_row = application::Entity::find_by_id(id)
                .one(&self.db)
                .await?
                .ok_or_else(|| RegistrationError::ApplicationNotFound(req.name.clone()))?;
            return Err(RegistrationError::InvalidState(now_row.state));
        }
        key.record(&req.name, now).insert(&txn).await?;
        crate::contact_enroll::enroll(
            &txn,
            &self.contacts,
            &row.account_id,
            &row.company_name,
            &new_contacts,
            now,
        )
        .await?;
        outbox::announce(
            &txn,
            EventKind::ApplicationResubmitted,
            &row.account_id,
            &req.name,
            &caller.subject,
            &[outbox::REVIEW, outbox::NOTIFICATION],
        )
        .await?;
        txn.commit().await?;
        self.committed();
        self.visible_application(caller, &req.name).await
    }

    /// An application as `caller` may see it (another account's is APPLICATION_NOT_FOUND, so a
    /// replayed key reveals nothing).
    async fn visible_application(
        &self,
        caller: &Caller,
        name: &str,
    ) -> Result<Application, RegistrationError> {
        let app = self.application_by_name(name).await?;
        if !caller.may_see(&app.account_id) {
            return Err(RegistrationError::ApplicationNotFound(name.to_string()));
        }
        Ok(app)
    }
}

/// The evidence after a resubmission: the findings of the re-checked materials (`rechecked`,
/// finding paths) and their website and logo evidence come from `fresh`; the rest is kept from
/// `earlier`; the outcome is the worst of the findings kept.
fn merge_evidence(
    earlier: Option<CheckEvidence>,
    fresh: Option<CheckEvidence>,
    rechecked: &[&str],
) -> CheckEvidence {
    let earlier = earlier.unwrap_or_default();
    let fresh = fresh.unwrap_or_default();
    let is_rechecked = |field: &str| {
        rechecked
            .iter()
            .any(|r| field == *r || field.starts_with(&format!("{r}.")))
    };
    let mut findings: Vec<_> = earlier
        .findings
        .into_iter()
        .filter(|f| !is_rechecked(&f.field))
        .collect();
    findings.extend(fresh.findings);
    let worst = |o: CheckOutcome| findings.iter().any(|f| f.outcome == o as i32);
    let outcome = if worst(CheckOutcome::Failed) {
        CheckOutcome::Failed
    } else if worst(CheckOutcome::Warning) {
        CheckOutcome::Warning
    } else {
        CheckOutcome::Passed
    };
    let website = if rechecked.contains(&"profile.website_url") {
        fresh.website.or(earlier.website)
    } else {
        earlier.website
    };
    let logo = if rechecked.contains(&"profile.logo") {
        fresh.logo.or(earlier.logo)
    } else {
        earlier.logo
    };
    CheckEvidence {
        outcome: outcome as i32,
        findings,
        website,
        logo,
        registration_number: earlier.registration_number,
        checked_time: fresh.checked_time.or(earlier.checked_time),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kg_proto::common::CheckFinding;

    fn finding(field: &str, outcome: CheckOutcome) -> CheckFinding {
        CheckFinding {
            code: "X".into(),
            message: String::new(),
            field: field.into(),
            outcome: outcome as i32,
        }
    }

    #[test]
    fn rechecked_materials_replace_their_findings_only() {
        let earlier = CheckEvidence {
            outcome: CheckOutcome::Warning as i32,
            findings: vec![
                finding("profile.website_url", CheckOutcome::Warning),
                finding("entity.registration_number", CheckOutcome::Warning),
                finding("profile.contact.email", CheckOutcome::Warning),
            ],
            ..Default::default()
        };
        let fresh = CheckEvidence {
            outcome: CheckOutcome::Passed as i32,
            ..Default::default()
        };
        let merged = merge_evidence(Some(earlier), Some(fresh), &["profile.website_url"]);
        let fields: Vec<_> = merged.findings.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(
            fields,
            vec!["entity.registration_number", "profile.contact.email"]
        );
        assert_eq!(merged.outcome, CheckOutcome::Warning as i32);
        let merged = merge_evidence(
            Some(CheckEvidence {
                findings: vec![finding("profile.website_url", CheckOutcome::Warning)],
                ..Default::default()
            }),
            None,
            &["profile.website_url"],
        );
        assert!(merged.findings.is_empty());
        assert_eq!(merged.outcome, CheckOutcome::Passed as i32);
    }
}
