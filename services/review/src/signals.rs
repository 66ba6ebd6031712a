//! Duplicate signals: the other review tasks, of a different account and in any state (an
//! approved application's subject is a seller), that share a match key with a task.
//!
//! Keys (`matchkeys.rs`) are written to `review_task_keys` in the transaction that creates a
//! task, and replaced in the transaction of any change of its profile or company name
//! (ResumeReviewTask). Signals are computed at read time (GetReviewTask, ListReviewTasks), so a
//! task created later shows up on the earlier one too. One read is a few indexed queries for
//! the whole page (GetReviewTask: a page of one), not per task; on the index
//! `(kind, match_key, task_id)`, for the exact keys and then for the name blocks:
//!
//! 1. the number of tasks per key of the page (`GROUP BY kind, match_key`);
//! 2. the key rows of the keys with at most [`PER_KEY`] tasks, together (`kind IN … AND
//!    match_key IN …`);
//! 3. for each hotter key (a shared hosting domain, a common name prefix), its [`PER_KEY`]
//!    oldest rows on their own, so that a hot key cannot blow up a response;
//! 4. the subject and company name of the other tasks that made it into a signal.
//!
//! Name-block rows carry the whole normalized name, so similarity is computed without reading
//! the candidates' tasks. A task compares its name with at most [`MAX_NAME_CANDIDATES`]
//! candidates (those sharing both blocks first, then the oldest), and with none when exact
//! matches already fill its list. A task shows at most [`MAX_SIGNALS`] signals.
//!
//! Order (strongest first): exact matches (website domain, contact mobile, email) before
//! similar company names. Exact matches are grouped by the other task: the tasks matching on
//! more kinds first, then the older task first (task ids are time-ordered UUIDs); within a task
//! by kind (domain, mobile, email). Similar names by similarity, highest first, then the older
//! task first. One signal per kind and other task (an email matching both the
//! contact and the customer-service email of the other is one signal).

use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap};

use kg_proto::common::SellerProfile;
use kg_proto::review::{DuplicateSignal, DuplicateSignalKind, ReviewTask};
use kg_runtime::stored::{self, StoredCorrupt};
use sea_orm::entity::prelude::*;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ConnectionTrait, DbErr, QueryOrder, QuerySelect};

use crate::matchkeys::{self, Keys, kind};
use crate::store::task;
use crate::view;

/// The most signals one task shows.
pub const MAX_SIGNALS: usize = 20;
/// The most rows read per key (the oldest tasks): other tasks sharing one key beyond these are
/// not shown.
pub const PER_KEY: u64 = 50;
/// The most similar-name candidates compared per task.
pub const MAX_NAME_CANDIDATES: usize = 50;

pub mod key {
    use super::*;

    /// One match key of one task.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "review_task_keys")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub task_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub kind: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub match_key: String,
        /// The task's account: tasks of the same account are never signals.
        pub account_id: String,
        /// Name blocks only: the whole normalized company name.
        pub name_norm: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The keys of a task's company name and profile.
pub fn keys_of(company_name: &str, profile: &SellerProfile) -> Keys {
    let contact = profile.contact.clone().unwrap_or_default();
    Keys::of(
        &profile.website_url,
        &contact.mobile,
        &[&contact.email, &profile.customer_service_email],
        company_name,
    )
}

fn key_rows(task_id: &str, account_id: &str, keys: &Keys) -> Vec<key::ActiveModel> {
    keys.rows()
        .into_iter()
        .map(|(k, value)| {
            let name_norm = kind::NAME_BLOCKS.contains(&k).then(|| keys.name.clone());
            key::ActiveModel::from(key::Model {
                task_id: task_id.to_string(),
                kind: k.to_string(),
                match_key: value,
                account_id: account_id.to_string(),
                name_norm,
            })
        })
        .collect()
}

/// Writes the keys of a task (from its stored profile bytes). Bytes that do not decode are an
/// error (see `kg_runtime::stored`), never a task indexed with no keys.
pub async fn write_keys<C: ConnectionTrait>(
    db: &C,
    task_id: &str,
    account_id: &str,
    company_name: &str,
    profile: &[u8],
) -> Result<(), DbErr> {
    let profile: SellerProfile =
        stored::decode(profile, "review_tasks.profile", &view::task_name(task_id))?;
    let rows = key_rows(task_id, account_id, &keys_of(company_name, &profile));
    if rows.is_empty() {
        return Ok(());
    }
    key::Entity::insert_many(rows).exec(db).await?;
    Ok(())
}

/// Replaces the keys of a task after its profile or company name changed.
pub async fn replace_keys<C: ConnectionTrait>(db: &C, row: &task::Model) -> Result<(), DbErr> {
    key::Entity::delete_many()
        .filter(key::Column::TaskId.eq(row.task_id.clone()))
        .exec(db)
        .await?;
    write_keys(
        db,
        &row.task_id,
        &row.account_id,
        &row.company_name,
        &row.profile,
    )
    .await
}

/// Bound parameters per query, well under both backends' limits.
const CHUNK: usize = 500;

/// The key rows equal to any of `wanted`, at most `per_key` of each key (the oldest tasks
/// first): the keys are counted first, the ones with at most `per_key` rows are read together,
/// and each hotter key is read on its own with a limit.
async fn matching_rows<C: ConnectionTrait>(
    db: &C,
    wanted: &BTreeSet<(&'static str, String)>,
    per_key: u64,
) -> Result<Vec<key::Model>, DbErr> {
    let is_wanted = |k: &str, v: &str| wanted.iter().any(|(wk, wv)| *wk == k && wv.as_str() == v);
    let kinds: BTreeSet<&str> = wanted.iter().map(|(k, _)| *k).collect();
    let values: BTreeSet<&str> = wanted.iter().map(|(_, v)| v.as_str()).collect();
    let values: Vec<&str> = values.into_iter().collect();
    // (Keys of different kinds never share a value: domains have dots, mobiles are digits,
    // emails have '@', name blocks neither; rows of an unwanted pair are dropped anyway.)
    let mut cold: Vec<&str> = Vec::new();
    let mut hot: Vec<(String, String)> = Vec::new();
    for chunk in values.chunks(CHUNK) {
        let counts: Vec<(String, String, i64)> = key::Entity::find()
            .select_only()
            .column(key::Column::Kind)
            .column(key::Column::MatchKey)
            .column_as(Expr::col(key::Column::TaskId).count(), "n")
            .filter(key::Column::Kind.is_in(kinds.iter().copied()))
            .filter(key::Column::MatchKey.is_in(chunk.iter().copied()))
            .group_by(key::Column::Kind)
            .group_by(key::Column::MatchKey)
            .into_tuple()
            .all(db)
            .await?;
        for (k, v, n) in counts {
            if !is_wanted(&k, &v) {
                continue;
            }
            if n as u64 > per_key {
                hot.push((k, v));
            } else if let Some(value) = chunk.iter().find(|c| **c == v) {
                cold.push(value);
            }
        }
    }
    let mut rows = Vec::new();
    for chunk in cold.chunks(CHUNK) {
        let found = key::Entity::find()
            .filter(key::Column::Kind.is_in(kinds.iter().copied()))
            .filter(key::Column::MatchKey.is_in(chunk.iter().copied()))
            .all(db)
            .await?;
        rows.extend(
            found
                .into_iter()
                .filter(|r| is_wanted(&r.kind, &r.match_key)),
        );
    }
    for (k, v) in hot {
        let found = key::Entity::find()
            .filter(key::Column::Kind.eq(k))
            .filter(key::Column::MatchKey.eq(v))
            .order_by_asc(key::Column::TaskId)
            .limit(per_key)
            .all(db)
            .await?;
        rows.extend(found);
    }
    Ok(rows)
}

fn signal_kind(k: &str) -> DuplicateSignalKind {
    match k {
        kind::DOMAIN => DuplicateSignalKind::WebsiteDomain,
        kind::MOBILE => DuplicateSignalKind::ContactMobile,
        kind::EMAIL => DuplicateSignalKind::ContactEmail,
        _ => DuplicateSignalKind::SimilarCompanyName,
    }
}

/// One signal before the other task's subject is known.
struct Found {
    kind: DuplicateSignalKind,
    other: String,
    detail: String,
    similarity: f64,
}

/// The signals of one task, ordered and bounded, from the key rows found.
fn signals_of(
    task_id: &str,
    account_id: &str,
    keys: &Keys,
    by_key: &HashMap<(&str, &str), Vec<&key::Model>>,
) -> Vec<Found> {
    let rows = keys.rows();
    let others = |k: &'static str, value: &str| -> Vec<&key::Model> {
        by_key
            .get(&(k, value))
            .into_iter()
            .flatten()
            .filter(|r| r.account_id != account_id && r.task_id != task_id)
            .copied()
            .collect()
    };
    // Exact: other task → the first key that matched, per kind (domain, mobile, email).
    let mut exact: HashMap<&str, [Option<&str>; 3]> = HashMap::new();
    for (k, value) in &rows {
        let Some(slot) = kind::EXACT.iter().position(|e| e == k) else {
            continue;
        };
        for r in others(k, value) {
            exact.entry(r.task_id.as_str()).or_default()[slot].get_or_insert(value.as_str());
        }
    }
    let mut ranked: Vec<(usize, &str, [Option<&str>; 3])> = exact
        .into_iter()
        .map(|(other, kinds)| (kinds.iter().flatten().count(), other, kinds))
        .collect();
    ranked.sort_unstable_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1)));
    let mut found: Vec<Found> = Vec::new();
    'exact: for (_, other, kinds) in ranked {
        for (slot, detail) in kinds.iter().enumerate() {
            let Some(detail) = detail else { continue };
            if found.len() == MAX_SIGNALS {
                break 'exact;
            }
            found.push(Found {
                kind: signal_kind(kind::EXACT[slot]),
                other: other.to_owned(),
                detail: (*detail).to_owned(),
                similarity: 1.0,
            });
        }
    }
    // Similar names (only when exact matches left room): the candidates sharing a block, those
    // sharing both blocks first, then the oldest; at most MAX_NAME_CANDIDATES compared.
    if keys.name.is_empty() || found.len() >= MAX_SIGNALS {
        return found;
    }
    let mut candidates: HashMap<&str, (usize, &str)> = HashMap::new();
    for (k, value) in &rows {
        if !kind::NAME_BLOCKS.contains(k) {
            continue;
        }
        for r in others(k, value) {
            let theirs = r.name_norm.as_deref().unwrap_or_default();
            candidates
                .entry(r.task_id.as_str())
                .or_insert((0, theirs))
                .0 += 1;
        }
    }
    let mut candidates: Vec<(&str, usize, &str)> = candidates
        .into_iter()
        .map(|(id, (shared, name))| (id, shared, name))
        .collect();
    candidates.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    let mut names: Vec<Found> = candidates
        .into_iter()
        .take(MAX_NAME_CANDIDATES)
        .filter_map(|(other, _, theirs)| {
            let similarity = matchkeys::similarity(&keys.name, theirs);
            (similarity >= matchkeys::SIMILARITY_THRESHOLD).then(|| Found {
                kind: DuplicateSignalKind::SimilarCompanyName,
                other: other.to_owned(),
                detail: String::new(),
                similarity,
            })
        })
        .collect();
    names.sort_by(|a, b| {
        b.similarity
            .partial_cmp(&a.similarity)
            .unwrap_or(Ordering::Equal)
            .then_with(|| a.other.cmp(&b.other))
    });
    found.extend(names);
    found.truncate(MAX_SIGNALS);
    found
}

/// The duplicate signals of each of `rows`, by task id.
pub async fn compute<C: ConnectionTrait>(
    db: &C,
    rows: &[task::Model],
) -> Result<HashMap<String, Vec<DuplicateSignal>>, DbErr> {
    let sources: Vec<(&task::Model, Keys)> = rows
        .iter()
        .map(|row| Ok((row, keys_of(&row.company_name, &view::profile(row)?))))
        .collect::<Result<_, StoredCorrupt>>()?;
    let mut exact = BTreeSet::new();
    let mut blocks = BTreeSet::new();
    for (_, keys) in &sources {
        for (k, value) in keys.rows() {
            if kind::EXACT.contains(&k) {
                exact.insert((k, value));
            } else {
                blocks.insert((k, value));
            }
        }
    }
    let mut found_rows = matching_rows(db, &exact, PER_KEY).await?;
    found_rows.extend(matching_rows(db, &blocks, PER_KEY).await?);
    let mut by_key: HashMap<(&str, &str), Vec<&key::Model>> = HashMap::new();
    for r in &found_rows {
        by_key
            .entry((r.kind.as_str(), r.match_key.as_str()))
            .or_default()
            .push(r);
    }
    let per_task: Vec<(&task::Model, Vec<Found>)> = sources
        .iter()
        .map(|(row, keys)| {
            (
                *row,
                signals_of(&row.task_id, &row.account_id, keys, &by_key),
            )
        })
        .collect();

    // The subjects and names of the other tasks named.
    let ids: BTreeSet<&str> = per_task
        .iter()
        .flat_map(|(_, found)| found.iter().map(|f| f.other.as_str()))
        .collect();
    let ids: Vec<&str> = ids.into_iter().collect();
    let mut others: HashMap<String, (String, String)> = HashMap::new();
    for chunk in ids.chunks(500) {
        let found: Vec<(String, String, String)> = task::Entity::find()
            .select_only()
            .column(task::Column::TaskId)
            .column(task::Column::Subject)
            .column(task::Column::CompanyName)
            .filter(task::Column::TaskId.is_in(chunk.iter().copied()))
            .into_tuple()
            .all(db)
            .await?;
        for (id, subject, name) in found {
            others.insert(id, (subject, name));
        }
    }

    let mut out = HashMap::new();
    for (row, found) in per_task {
        let signals = found
            .into_iter()
            .filter_map(|f| {
                let (subject, name) = others.get(&f.other)?;
                Some(DuplicateSignal {
                    kind: f.kind as i32,
                    other_task: view::task_name(&f.other),
                    other_subject: subject.clone(),
                    detail: if f.kind == DuplicateSignalKind::SimilarCompanyName {
                        name.clone()
                    } else {
                        f.detail
                    },
                    similarity: f.similarity,
                })
            })
            .collect();
        out.insert(row.task_id.clone(), signals);
    }
    Ok(out)
}

/// The wire form of `rows` with their duplicate signals.
pub async fn tasks<C: ConnectionTrait>(
    db: &C,
    rows: &[task::Model],
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<ReviewTask>, DbErr> {
    let mut signals = compute(db, rows).await?;
    rows.iter()
        .map(|row| {
            let mut t = view::task(row, now)?;
            t.duplicate_signals = signals.remove(&row.task_id).unwrap_or_default();
            Ok(t)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_row(task: &str, account: &str, k: &str, value: &str, name: Option<&str>) -> key::Model {
        key::Model {
            task_id: task.into(),
            kind: k.into(),
            match_key: value.into(),
            account_id: account.into(),
            name_norm: name.map(str::to_string),
        }
    }

    #[test]
    fn signals_are_ordered_strongest_first_and_skip_the_own_account() {
        let keys = Keys::of(
            "https://www.acme.com/",
            "+8613800138000",
            &["sales@acme.com"],
            "Acme Cloud Computing Co., Ltd.",
        );
        let name = keys.name.clone();
        let similar = matchkeys::normalize_name("Acme Cloud Computting Ltd");
        let rows = vec![
            key_row("t-dom", "b", kind::DOMAIN, "acme.com", None),
            key_row("t-all", "c", kind::DOMAIN, "acme.com", None),
            key_row("t-all", "c", kind::MOBILE, "+8613800138000", None),
            key_row("t-all", "c", kind::EMAIL, "sales@acme.com", None),
            key_row("t-own", "a", kind::DOMAIN, "acme.com", None),
            key_row("t-own", "a", kind::NAME_PREFIX, "acmec", Some(&name)),
            key_row("t-same", "d", kind::NAME_PREFIX, "acmec", Some(&name)),
            key_row("t-same", "d", kind::NAME_SUFFIX, "uting", Some(&name)),
            key_row("t-sim", "e", kind::NAME_PREFIX, "acmec", Some(&similar)),
            key_row("t-far", "f", kind::NAME_PREFIX, "acmec", Some("acmecorner")),
        ];
        let mut by_key: HashMap<(&str, &str), Vec<&key::Model>> = HashMap::new();
        for r in &rows {
            by_key
                .entry((r.kind.as_str(), r.match_key.as_str()))
                .or_default()
                .push(r);
        }
        let found = signals_of("t-self", "a", &keys, &by_key);
        let got: Vec<(&str, DuplicateSignalKind)> =
            found.iter().map(|f| (f.other.as_str(), f.kind)).collect();
        assert_eq!(
            got,
            vec![
                ("t-all", DuplicateSignalKind::WebsiteDomain),
                ("t-all", DuplicateSignalKind::ContactMobile),
                ("t-all", DuplicateSignalKind::ContactEmail),
                ("t-dom", DuplicateSignalKind::WebsiteDomain),
                ("t-same", DuplicateSignalKind::SimilarCompanyName),
                ("t-sim", DuplicateSignalKind::SimilarCompanyName),
            ]
        );
        assert_eq!(found[4].similarity, 1.0);
        assert!((0.9..1.0).contains(&found[5].similarity));
        assert_eq!(found[0].detail, "acme.com");
    }

    #[test]
    fn a_hot_key_gives_a_bounded_list() {
        let keys = Keys::of("https://acme.com/", "", &[], "");
        let rows: Vec<key::Model> = (0..500)
            .map(|i| {
                key_row(
                    &format!("t-{i:04}"),
                    &format!("acct-{i}"),
                    kind::DOMAIN,
                    "acme.com",
                    None,
                )
            })
            .collect();
        let mut by_key: HashMap<(&str, &str), Vec<&key::Model>> = HashMap::new();
        by_key.insert((kind::DOMAIN, "acme.com"), rows.iter().collect());
        let found = signals_of("t-self", "a", &keys, &by_key);
        assert_eq!(found.len(), MAX_SIGNALS);
        assert_eq!(found[0].other, "t-0000");
    }

    async fn database(upto: Option<u32>) -> sea_orm::DatabaseConnection {
        use sea_orm_migration::MigratorTrait;
        let db = kg_runtime::db::connect("sqlite::memory:").await.unwrap();
        crate::migrations::Migrator::up(&db, upto).await.unwrap();
        db
    }

    #[tokio::test]
    async fn a_hot_key_is_read_boundedly_and_the_others_whole() {
        let db = database(None).await;
        let mut rows: Vec<key::ActiveModel> = (0..10)
            .map(|i| {
                key_row(
                    &format!("t-{i:02}"),
                    &format!("a-{i}"),
                    kind::DOMAIN,
                    "hot.com",
                    None,
                )
            })
            .map(key::ActiveModel::from)
            .collect();
        rows.push(key_row("t-m1", "a-m1", kind::MOBILE, "+8613800138000", None).into());
        rows.push(key_row("t-m2", "a-m2", kind::MOBILE, "+8613800138000", None).into());
        rows.push(key_row("t-x", "a-x", kind::MOBILE, "hot.com", None).into());
        rows.push(key_row("t-y", "a-y", kind::EMAIL, "y@cold.com", None).into());
        key::Entity::insert_many(rows).exec(&db).await.unwrap();
        let wanted: BTreeSet<(&'static str, String)> = [
            (kind::DOMAIN, "hot.com".to_string()),
            (kind::MOBILE, "+8613800138000".to_string()),
        ]
        .into_iter()
        .collect();
        // Under the bound: every row, and only rows of the wanted (kind, key) pairs.
        let all = matching_rows(&db, &wanted, 100).await.unwrap();
        assert_eq!(all.len(), 12);
        assert!(all.iter().all(|r| r.task_id != "t-x" && r.task_id != "t-y"));
        // Over it: at most `per_key` rows of the hot key, the oldest tasks first; the cold key
        // whole.
        let bounded = matching_rows(&db, &wanted, 3).await.unwrap();
        let mut ids: Vec<&str> = bounded.iter().map(|r| r.task_id.as_str()).collect();
        ids.sort();
        assert_eq!(ids, ["t-00", "t-01", "t-02", "t-m1", "t-m2"]);
        assert!(
            matching_rows(&db, &BTreeSet::new(), 3)
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn the_migration_fills_in_the_keys_of_existing_tasks() {
        use kg_proto::common::Contact;
        use prost::Message;
        use sea_orm_migration::MigratorTrait;

        let db = database(Some(2)).await;
        let now = chrono::Utc::now();
        let profile = SellerProfile {
            website_url: "https://shop.acme.co.uk/".into(),
            contact: Some(Contact {
                name: "Li Wei".into(),
                email: "Li.Wei@Acme.example".into(),
                mobile: "+44 7700 900123".into(),
            }),
            ..Default::default()
        };
        let row = task::Model {
            task_id: uuid::Uuid::now_v7().to_string(),
            subject: "applications/app-1".into(),
            subject_kind: "APPLICATION".into(),
            account_id: "acct-1".into(),
            company_name: "Acme Widgets Ltd".into(),
            previous_company_name: String::new(),
            country: "GB".into(),
            registration_number: "12345678".into(),
            state: "APPROVED".into(),
            assignee: None,
            claim_time: None,
            submit_time: now,
            deadline: None,
            clock_start: now,
            used_working_micros: 0,
            paused_since: None,
            paused_micros: 0,
            evidence: None,
            profile: profile.encode_to_vec(),
            logo: None,
            decision: None,
            decision_event_id: None,
            deliver_time: None,
            version: 1,
            create_time: now,
            update_time: now,
        };
        task::Entity::insert(task::ActiveModel::from(row.clone()))
            .exec(&db)
            .await
            .unwrap();
        crate::migrations::Migrator::up(&db, None).await.unwrap();
        let mut keys: Vec<(String, String)> = key::Entity::find()
            .filter(key::Column::TaskId.eq(row.task_id.clone()))
            .all(&db)
            .await
            .unwrap()
            .into_iter()
            .map(|k| {
                assert_eq!(k.account_id, "acct-1");
                (k.kind, k.match_key)
            })
            .collect();
        keys.sort();
        let want: Vec<(String, String)> = [
            (kind::DOMAIN, "acme.co.uk"),
            (kind::EMAIL, "li.wei@acme.example"),
            (kind::MOBILE, "+447700900123"),
            (kind::NAME_PREFIX, "acmew"),
            (kind::NAME_SUFFIX, "dgets"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(keys, want);
    }
}
