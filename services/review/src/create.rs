//! CreateReviewTask: the review task of a submitted application or modification request, created
//! once per subject. The event id is the deduplication key: the inbox row, the task and its
//! CREATED audit entry are written in one transaction, so a repeat (or a concurrent duplicate)
//! of the event finds the task instead of creating another.

use chrono::{DateTime, Duration, Utc};
use kg_proto::common::{CheckEvidence, SellerProfile};
use kg_proto::review::{CreateReviewTaskRequest, CreateReviewTaskResponse};
use kg_runtime::auth::Caller;
use prost::Message;
use sea_orm::{ActiveModelTrait, ColumnTrait, DbErr, EntityTrait, QueryFilter, TransactionTrait};
use sha2::{Digest, Sha256};

use kg_runtime::error::ServiceError as _;
use kg_runtime::error::Violations;

use crate::audit::{self, Entry};
use crate::error::ReviewError;
use crate::service::Review;
use crate::store::{kind, state, task};
use crate::{clock, idempotency, view};

pub const RPC: &str = "CreateReviewTask";
/// The inbox outcome of a creation.
const CREATED: &str = "CREATED";

/// The largest logo kept with a task (registration accepts up to 5 MiB).
pub const MAX_LOGO_BYTES: usize = 5 * 1024 * 1024;
const MAX_NAME: usize = 256;

/// The kind of subject a name is: `applications/{id}` or
/// `sellers/{id}/modificationRequests/{id}` (ids of 1-64 characters of A-Z, a-z, 0-9, '-', '_').
pub fn subject_kind(subject: &str) -> Option<&'static str> {
    let parts: Vec<&str> = subject.split('/').collect();
    match parts.as_slice() {
        ["applications", id] if view::is_plain_id(id) => Some(kind::APPLICATION),
        ["sellers", seller, "modificationRequests", id]
            if view::is_plain_id(seller) && view::is_plain_id(id) =>
        {
            Some(kind::MODIFICATION_REQUEST)
        }
        _ => None,
    }
}

/// Checks a subject name (field `field`), returning its kind.
pub fn check_subject(
    violations: &mut Violations,
    field: &str,
    subject: &str,
) -> Option<&'static str> {
    let found = subject_kind(subject);
    if found.is_none() {
        violations.add(
            field,
            "SUBJECT_INVALID",
            "expected applications/{application_id} or \
             sellers/{seller_id}/modificationRequests/{modification_request_id}",
        );
    }
    found
}

/// Checks a submission or resubmission instant: set, after 2000, at most an hour ahead.
pub fn check_time(
    violations: &mut Violations,
    field: &str,
    value: Option<&prost_types::Timestamp>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let parsed = value.and_then(view::instant);
    let earliest = DateTime::from_timestamp(946_684_800, 0).unwrap_or_default(); // 2000-01-01
    match parsed {
        Some(t) if t >= earliest && t <= now + Duration::hours(1) => Some(t),
        _ => {
            violations.add(
                field,
                "TIME_INVALID",
                format!("{field} is required: a valid instant after 2000, not in the future"),
            );
            None
        }
    }
}

/// Checks the profile under review and splits off its logo bytes (kept apart, for RerunChecks;
/// the stored profile has `logo_sha256` instead).
pub fn check_profile(
    violations: &mut Violations,
    field: &str,
    profile: Option<SellerProfile>,
    required: bool,
) -> Option<(SellerProfile, Option<Vec<u8>>)> {
    let Some(mut profile) = profile else {
        if required {
            violations.add(
                field,
                "PROFILE_MISSING",
                "the profile under review is required",
            );
        }
        return None;
    };
    if profile.logo.len() > MAX_LOGO_BYTES {
        violations.add(
            format!("{field}.logo"),
            "LOGO_TOO_LARGE",
            "the logo is larger than 5 MiB",
        );
        return None;
    }
    let logo = std::mem::take(&mut profile.logo);
    if logo.is_empty() {
        return Some((profile, None));
    }
    profile.logo_sha256 = hex::encode(Sha256::digest(&logo));
    Some((profile, Some(logo)))
}

impl Review {
    pub async fn create(
        &self,
        caller: &Caller,
        req: CreateReviewTaskRequest,
    ) -> Result<CreateReviewTaskResponse, ReviewError> {
        idempotency::validate_key("event_id", &req.event_id)?;
        let hash = idempotency::body_hash(&req);
        if let Some(existing) = self.created_before(&req.event_id, &hash).await? {
            return Ok(existing);
        }
        let now = view::now();
        let row = self.draft(req.clone(), now)?;
        if let Some(found) = self.existing(&req.event_id, &hash, &row.subject).await? {
            return found;
        }
        match self.insert(caller, &req.event_id, &hash, &row).await {
            Ok(()) => Ok(CreateReviewTaskResponse {
                review_task: Some(view::task(&row, view::now())?),
                created: true,
            }),
            Err(e) if kg_runtime::db::is_unique_violation(&e) => {
                // A concurrent delivery of the same event (or another event of the same subject)
                // won; say which, reading outside the failed transaction.
                match self.existing(&req.event_id, &hash, &row.subject).await? {
                    Some(found) => found,
                    None => Err(ReviewError::Contended),
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// What already exists for this event or subject: the task this event created (a repeat),
    /// or another event's task of the subject (REVIEW_TASK_EXISTS). The subject is read before
    /// the inbox, so that a duplicate committing in between is seen as a repeat.
    async fn existing(
        &self,
        event_id: &str,
        hash: &str,
        subject: &str,
    ) -> Result<Option<Result<CreateReviewTaskResponse, ReviewError>>, ReviewError> {
        let other = task::Entity::find()
            .filter(task::Column::Subject.eq(subject))
            .one(&self.db)
            .await?;
        if let Some(existing) = self.created_before(event_id, hash).await? {
            return Ok(Some(Ok(existing)));
        }
        Ok(other.map(|other| {
            Err(ReviewError::TaskExists {
                task: view::task_name(&other.task_id),
            })
        }))
    }

    async fn created_before(
        &self,
        event_id: &str,
        hash: &str,
    ) -> Result<Option<CreateReviewTaskResponse>, ReviewError> {
        let Some(seen) = idempotency::seen_event(&self.db, event_id, RPC, hash).await? else {
            return Ok(None);
        };
        let row = task::Entity::find_by_id(seen.task_id.clone())
            .one(&self.db)
            .await?
            .ok_or_else(|| ReviewError::TaskNotFound(view::task_name(&seen.task_id)))?;
        Ok(Some(CreateReviewTaskResponse {
            review_task: Some(view::task(&row, view::now())?),
            created: false,
        }))
    }

    /// The inbox row first: the write that settles a race between duplicates of one event.
    async fn insert(
        &self,
        caller: &Caller,
        event_id: &str,
        hash: &str,
        row: &task::Model,
    ) -> Result<(), DbErr> {
        let txn = self.db.begin().await?;
        idempotency::remember_event(
            &txn,
            event_id,
            RPC,
            hash,
            &row.task_id,
            CREATED,
            row.create_time,
        )
        .await?;
        task::ActiveModel::from(row.clone()).insert(&txn).await?;
        crate::signals::write_keys(
            &txn,
            &row.task_id,
            &row.account_id,
            &row.company_name,
            &row.profile,
        )
        .await?;
        audit::record(
            &txn,
            Entry {
                task: row,
                actor: caller,
                action: view::action::CREATED,
                before: None,
                comment: "",
                reason_codes: &[],
                request_id: event_id,
                at: row.create_time,
            },
        )
        .await?;
        txn.commit().await
    }

    fn draft(
        &self,
        req: CreateReviewTaskRequest,
        now: DateTime<Utc>,
    ) -> Result<task::Model, ReviewError> {
        let mut v = Violations::default();
        let found_kind = check_subject(&mut v, "subject", &req.subject);
        let declared = view::kind_name(req.subject_kind);
        match (declared, found_kind) {
            (None, _) => v.add(
                "subject_kind",
                "SUBJECT_KIND_INVALID",
                "SUBJECT_KIND_APPLICATION or SUBJECT_KIND_MODIFICATION_REQUEST is required",
            ),
            (Some(declared), Some(found)) if declared != found => v.add(
                "subject_kind",
                "SUBJECT_KIND_MISMATCH",
                format!("the subject names a {found}, not a {declared}"),
            ),
            _ => {}
        }
        if !view::is_plain_id(&req.account_id) {
            v.add(
                "account_id",
                "ACCOUNT_ID_INVALID",
                "account ids are 1-64 characters of A-Z, a-z, 0-9, '-' and '_'",
            );
        }
        let (company_name, length) = view::text(&req.company_name);
        if length == 0 || length > MAX_NAME {
            v.add(
                "company_name",
                "COMPANY_NAME_INVALID",
                format!("the company name is required, at most {MAX_NAME} characters"),
            );
        }
        let (previous, length) = view::text(&req.previous_company_name);
        if length > MAX_NAME {
            v.add(
                "previous_company_name",
                "COMPANY_NAME_INVALID",
                format!("at most {MAX_NAME} characters"),
            );
        }
        let entity = req.entity.unwrap_or_default();
        let country = entity.country.trim().to_ascii_uppercase();
        if country.len() != 2 || !country.bytes().all(|b| b.is_ascii_uppercase()) {
            v.add(
                "entity.country",
                "COUNTRY_INVALID",
                "an ISO 3166-1 alpha-2 code is required",
            );
        }
        let number: String = entity
            .registration_number
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .collect::<String>()
            .to_ascii_uppercase();
        if number.is_empty()
            || number.len() > 64
            || !number.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            v.add(
                "entity.registration_number",
                "REGISTRATION_NUMBER_INVALID",
                "the registration number is required: 1-64 letters and digits",
            );
        }
        let submitted = check_time(&mut v, "submit_time", req.submit_time.as_ref(), now);
        let profile = check_profile(&mut v, "profile", req.profile, true);
        v.check()?;
        let (Some(kind), Some(submitted), Some((profile, logo))) = (declared, submitted, profile)
        else {
            // Each missing part added a violation above; kept total rather than panicking.
            return Err(ReviewError::field(
                "subject",
                "INVALID_ARGUMENT",
                "invalid request",
            ));
        };
        let (clock_start, deadline) = clock::start(&self.calendar, submitted, &req.subject);
        Ok(task::Model {
            task_id: uuid::Uuid::now_v7().to_string(),
            subject: req.subject,
            subject_kind: kind.to_string(),
            account_id: req.account_id,
            company_name: company_name.to_string(),
            previous_company_name: previous.to_string(),
            country,
            registration_number: number,
            state: state::QUEUED.to_string(),
            assignee: None,
            claim_time: None,
            submit_time: submitted,
            deadline: Some(deadline),
            clock_start,
            used_working_micros: 0,
            paused_since: None,
            paused_micros: 0,
            evidence: req.evidence.map(|e: CheckEvidence| e.encode_to_vec()),
            profile: profile.encode_to_vec(),
            logo,
            decision: None,
            decision_event_id: None,
            deliver_time: None,
            version: 1,
            create_time: now,
            update_time: now,
        })
    }
}
