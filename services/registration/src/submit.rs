//! SubmitApplication: validate, check eligibility and materials with identity-check, take the
//! entity lock, then check and insert in one transaction (application + idempotency key + outbox
//! event). The partial unique indexes catch whatever the lock missed.

use kg_proto::common::{AgreementAcceptance, CompanyEntity, SellerProfile};
use kg_proto::identity::{CheckEligibilityRequest, CheckMaterialsRequest, IneligibilityReason};
use kg_proto::registration::{Application, SubmitApplicationRequest};
use kg_runtime::error::{CommonError, FieldViolation, PreconditionViolation};
use prost::Message;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, TransactionTrait};

use crate::app::Registration;
use crate::error::{EntityRule, RegistrationError};
use crate::events::EventKind;
use crate::idempotency::Key;
use crate::store::{application, seller, state};
use crate::{outbox, view};

pub const RPC: &str = "SubmitApplication";

/// What a valid request parses into.
struct Draft {
    account_id: String,
    entity: kg_checks::regnum::RegistrationNumber,
    profile: SellerProfile,
    agreement: AgreementAcceptance,
    logo_file_name: String,
}

impl Registration {
    pub async fn submit(
        &self,
        req: SubmitApplicationRequest,
    ) -> Result<Application, RegistrationError> {
        let key = Key::new(&req.request_id, RPC, &req)?;
        // Copies of one request (a retry or a hedge racing its original, on any replica) go one
        // at a time: a copy waits for the first to finish and replays its result, rather than
        // racing it through identity-check to the entity lock and giving up there (ENTITY_BUSY)
        // before the first has committed anything to replay.
        let copies = match self
            .lock
            .acquire(
                &format!("request:{}", key.request_id),
                self.lock_ttl,
                self.lock_ttl,
            )
            .await
        {
            Ok(guard) => guard,
            Err(e) => return Err(RegistrationError::LockUnavailable(e.to_string())),
        };
        let result = key
            .run(&self.db, self.submit_once(&key, req), |name| async move {
                self.application_by_name(&name).await
            })
            .await;
        if let Some(guard) = copies
            && let Err(e) = self.lock.release(guard).await
        {
            tracing::warn!(error = %e, "request lock release failed; it expires by TTL");
        }
        result
    }

    async fn submit_once(
        &self,
        key: &Key,
        req: SubmitApplicationRequest,
    ) -> Result<Application, RegistrationError> {
        let draft = self.parse(req)?;
        let entity_key = draft.entity.entity_key();

        // identity-check: eligibility and materials, side by side.
        let mut identity = self.identity.clone();
        let mut identity2 = self.identity.clone();
        let (eligibility, materials) = tokio::join!(
            identity.check_eligibility(CheckEligibilityRequest {
                account_id: draft.account_id.clone(),
            }),
            identity2.check_materials(CheckMaterialsRequest {
                entity: Some(CompanyEntity {
                    country: draft.entity.country.clone(),
                    registration_number: draft.entity.number.clone(),
                }),
                profile: Some(draft.profile.clone()),
                logo_file_name: draft.logo_file_name.clone(),
                require_complete: true,
                account_id: draft.account_id.clone(),
            }),
        );
        let eligibility = eligibility
            .map_err(|s| {
                RegistrationError::from(CommonError::DependencyUnavailable("identity-check", s))
            })?
            .into_inner();
        let materials = materials
            .map_err(|s| {
                RegistrationError::from(CommonError::DependencyUnavailable("identity-check", s))
            })?
            .into_inner();

        let mut unmet: Vec<PreconditionViolation> = eligibility
            .failures
            .iter()
            .map(|f| {
                let reason = IneligibilityReason::try_from(f.reason).unwrap_or_default();
                PreconditionViolation {
                    kind: reason
                        .as_str_name()
                        .trim_start_matches("INELIGIBILITY_REASON_")
                        .to_string(),
                    subject: format!("accounts/{}", draft.account_id),
                    description: f.message.clone(),
                }
            })
            .collect();
        unmet.extend(self.account_standing(&draft.account_id).await?);
        if !unmet.is_empty() {
            return Err(RegistrationError::NotEligible(unmet));
        }

        crate::modification::refuse_failed_materials(&materials)?;

        let now = kg_runtime::db::now();
        let agreement = AgreementAcceptance {
            accepted_time: Some(view::timestamp(now)),
            accepted_by: format!("accounts/{}", draft.account_id),
            ..draft.agreement
        };
        let mut profile = draft.profile;
        let logo = std::mem::take(&mut profile.logo);
        profile.logo_sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&logo));
        let row = application::Model {
            application_id: uuid::Uuid::now_v7().to_string(),
            account_id: draft.account_id.clone(),
            company_name: eligibility.verified_enterprise_name.clone(),
            country: draft.entity.country.clone(),
            registration_number: draft.entity.number.clone(),
            entity_key: entity_key.clone(),
            state: state::SUBMITTED.to_string(),
            profile: profile.encode_to_vec(),
            logo: Some(logo),
            agreement: agreement.encode_to_vec(),
            evidence: materials.evidence.map(|e| e.encode_to_vec()),
            feedback: None,
            withdraw_reason: None,
            seller_id: None,
            create_time: now,
            update_time: now,
            decide_time: None,
            review_deadline: None,
            review_task: None,
        };

        let guard = match self
            .lock
            .acquire(&entity_key, self.lock_ttl, self.lock_wait)
            .await
        {
            Ok(Some(guard)) => guard,
            Ok(None) => return Err(RegistrationError::EntityBusy),
            Err(e) => return Err(RegistrationError::LockUnavailable(e.to_string())),
        };
        let result = self.insert(row, key).await;
        match self.lock.release(guard).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(%entity_key, "entity lock expired before release; the unique index held the line")
            }
            Err(e) => {
                tracing::warn!(%entity_key, error = %e, "entity lock release failed; it expires by TTL")
            }
        }
        result
    }

    fn parse(&self, req: SubmitApplicationRequest) -> Result<Draft, RegistrationError> {
        let mut violations = Vec::new();
        let mut add = |field: &str, reason: &str, message: String| {
            violations.push(FieldViolation {
                field: field.to_string(),
                reason: reason.to_string(),
                description: message,
            })
        };
        if let Err(message) = view::validate_account_id(&req.account_id) {
            add("account_id", "ACCOUNT_ID_INVALID", message);
        }
        let app = req.application.unwrap_or_default();
        if !app.account_id.is_empty() && app.account_id != req.account_id {
            add(
                "application.account_id",
                "ACCOUNT_MISMATCH",
                "differs from account_id".into(),
            );
        }
        let entity = app.entity.unwrap_or_default();
        let parsed = match kg_checks::regnum::parse(&entity.country, &entity.registration_number) {
            Ok(n) => Some(n),
            Err(findings) => {
                for f in findings {
                    add(
                        &format!("application.entity.{}", f.field)
                            .replace("entity.entity", "entity"),
                        f.code,
                        f.message,
                    );
                }
                None
            }
        };
        let profile = app.profile.unwrap_or_default();
        if profile.logo.len() > kg_checks::logo::LogoPolicy::default().max_bytes {
            add(
                "application.profile.logo",
                "LOGO_TOO_LARGE",
                "the logo is larger than 5 MB".into(),
            );
        }
        let agreement = match app.agreement {
            None => {
                add(
                    "application.agreement",
                    "AGREEMENT_NOT_ACCEPTED",
                    "the seller agreement must be accepted".into(),
                );
                AgreementAcceptance::default()
            }
            Some(a) => {
                if a.agreement_version != self.agreement.version {
                    add(
                        "application.agreement.agreement_version",
                        "AGREEMENT_VERSION_UNKNOWN",
                        format!(
                            "the current agreement version is {}",
                            self.agreement.version
                        ),
                    );
                } else if !a
                    .text_sha256
                    .eq_ignore_ascii_case(&self.agreement.text_sha256)
                {
                    add(
                        "application.agreement.text_sha256",
                        "AGREEMENT_TEXT_MISMATCH",
                        "the hash does not match the text of this agreement version".into(),
                    );
                }
                a
            }
        };
        match parsed {
            Some(entity) if violations.is_empty() => Ok(Draft {
                account_id: req.account_id,
                entity,
                profile,
                agreement,
                logo_file_name: req.logo_file_name,
            }),
            _ => Err(CommonError::Invalid(violations).into()),
        }
    }

    /// The seventh condition: the account is not a seller, not applying and not barred.
    async fn account_standing(
        &self,
        account_id: &str,
    ) -> Result<Vec<PreconditionViolation>, RegistrationError> {
        let subject = format!("accounts/{account_id}");
        let mut out = Vec::new();
        if let Some(s) = seller::Entity::find()
            .filter(seller::Column::AccountId.eq(account_id))
            .one(&self.db)
            .await?
        {
            let (kind, description) = if s.state == state::SELLER_EXITED {
                (
                    "ACCOUNT_BARRED",
                    "this account exited the marketplace and can never register again",
                )
            } else {
                (
                    "ACCOUNT_ALREADY_SELLER",
                    "this account is already a seller; change its information instead",
                )
            };
            out.push(PreconditionViolation {
                kind: kind.into(),
                subject,
                description: description.into(),
            });
            return Ok(out);
        }
        let open = application::Entity::find()
            .filter(application::Column::AccountId.eq(account_id))
            .filter(application::Column::State.is_in(state::PENDING))
            .one(&self.db)
            .await?;
        if open.is_some() {
            out.push(PreconditionViolation {
                kind: "APPLICATION_ALREADY_OPEN".into(),
                subject,
                description: "this account already has an application under review; withdraw it or wait for the decision".into(),
            });
        }
        Ok(out)
    }

    /// Which rule, if any, keeps this entity from registering again.
    pub(crate) async fn entity_rule<C: sea_orm::ConnectionTrait>(
        db: &C,
        entity_key: &str,
    ) -> Result<Option<EntityRule>, sea_orm::DbErr> {
        if let Some(s) = seller::Entity::find()
            .filter(seller::Column::EntityKey.eq(entity_key))
            .one(db)
            .await?
        {
            return Ok(Some(if s.state == state::SELLER_EXITED {
                EntityRule::Barred
            } else {
                EntityRule::Registered
            }));
        }
        let held = application::Entity::find()
            .filter(application::Column::EntityKey.eq(entity_key))
            .filter(application::Column::State.is_in(state::ACTIVE))
            .one(db)
            .await?;
        Ok(held.map(|a| {
            if a.state == state::APPROVED {
                EntityRule::Registered
            } else {
                EntityRule::InReview
            }
        }))
    }

    async fn insert(
        &self,
        row: application::Model,
        key: &Key,
    ) -> Result<Application, RegistrationError> {
        let entity_key = row.entity_key.clone();
        let account_id = row.account_id.clone();
        let profile: kg_proto::common::SellerProfile = kg_runtime::stored::decode(
            &row.profile,
            "registration_applications.profile",
            &row.application_id,
        )?;
        let contacts = crate::contacts::addresses(&profile);
        let txn = self.db.begin().await?;
        if let Some(rule) = Self::entity_rule(&txn, &entity_key).await? {
            return Err(RegistrationError::EntityTaken(rule));
        }
        let name = format!("applications/{}", row.application_id);
        let active: application::ActiveModel = row.clone().into();
        let inserted = async {
            active.insert(&txn).await?;
            key.record(&name, row.create_time).insert(&txn).await?;
            crate::contact_enroll::enroll(
                &txn,
                &self.contacts,
                &account_id,
                &row.company_name,
                &contacts,
                row.create_time,
            )
            .await?;
            outbox::announce(
                &txn,
                EventKind::ApplicationSubmitted,
                &account_id,
                &name,
                &account_id,
                &[outbox::REVIEW, outbox::NOTIFICATION],
            )
            .await?;
            Ok::<_, sea_orm::DbErr>(())
        }
        .await;
        match inserted {
            Ok(()) => {
                txn.commit().await?;
                self.committed();
            }
            Err(e) if kg_runtime::db::is_unique_violation(&e) => {
                drop(txn);
                return Err(self.classify_conflict(&entity_key).await);
            }
            Err(e) => return Err(e.into()),
        }
        Ok(view::application(&row)?)
    }

    /// A unique index fired: say which rule, reading outside the failed transaction. (A
    /// concurrent copy of this request is answered by `Key::run`, which looks the key up again.)
    async fn classify_conflict(&self, entity_key: &str) -> RegistrationError {
        match Self::entity_rule(&self.db, entity_key).await {
            Ok(Some(rule)) => RegistrationError::EntityTaken(rule),
            Ok(None) => RegistrationError::ApplicationAlreadyOpen,
            Err(e) => e.into(),
        }
    }
}
