//! The archive's storage: instance bytes in the object store, the index in SQL. An instance
//! becomes visible only when its index row commits, and that happens only after its bytes are
//! durable — so a crash at any point leaves nothing half-visible, and sending again completes.

use bytes::Bytes;
use sha2::Digest;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::status::*;
use super::{Instance, Rejection};
use crate::auth::policy::{ImagingRead, ImagingSearch, ImagingStore, Permit, StudyShare};
use crate::network::SiteId;
use crate::storage::sql::is_unique_violation;
use crate::storage::{Db, Objects};

/// What happened to a stored instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    New,
    /// The identical instance was already there: an idempotent success.
    AlreadyPresent,
    /// A different instance was there under this SOP Instance UID and was replaced
    /// (`dicomweb.on_duplicate = "replace"`).
    Replaced,
}

/// Where one write of an instance goes. Every write gets a key of its own (a random part after
/// the SOP Instance UID), so two writes under one UID — a race, a retry, a replacement — never
/// overwrite each other's bytes: an index row always points at the bytes it was committed with.
pub fn object_key(study: &str, series: &str, sop: &str) -> String {
    format!("instances/{study}/{series}/{sop}.{}.dcm", crate::ids::random_id(9))
}

/// The prefix under which every instance object lives (the orphan sweeper walks it).
pub const INSTANCE_PREFIX: &str = "instances/";

fn index_down(_: sqlx::Error) -> Rejection {
    Rejection::new(PROCESSING_FAILURE, "the archive index is unavailable; send again later")
}

fn objects_down(e: crate::storage::ObjectError) -> Rejection {
    tracing::error!(error = %e, "object store write failed");
    Rejection::new(OUT_OF_RESOURCES, "the object store is unavailable; send again later")
}

/// Stores one checked instance for the permit's site. `sha256` is of `bytes`. A different
/// instance already stored under the same SOP Instance UID is refused, or, with
/// `replace_as` (the actor to audit), replaced.
#[allow(clippy::too_many_arguments)]
pub async fn store_instance(
    db: &Db,
    objects: &Objects,
    permit: &Permit<ImagingStore>,
    inst: &Instance,
    bytes: Bytes,
    sha256: &str,
    replace_as: Option<&str>,
    now: i64,
) -> Result<Stored, Rejection> {
    let site = permit
        .site()
        .ok_or_else(|| Rejection::new(NOT_AUTHORISED, "no site to store for"))?
        .to_string();
    // What the index holds of this study, instance and series, in one round trip. These are
    // early answers only (an identical re-send costs no write); the checks that decide are
    // repeated inside the transaction below, where no concurrent writer can slip between.
    let row = sqlx::query(
        "SELECT (SELECT origin_site FROM studies WHERE study_uid = $1) AS origin, \
           (SELECT sha256 FROM instances WHERE sop_instance_uid = $2) AS sha256, \
           (SELECT study_uid FROM series WHERE series_uid = $3) AS series_study",
    )
    .bind(&inst.study_uid)
    .bind(&inst.sop_instance_uid)
    .bind(&inst.series_uid)
    .fetch_one(db.pool())
    .await
    .map_err(index_down)?;
    let origin: Option<String> = row.try_get("origin").map_err(index_down)?;
    let have: Option<String> = row.try_get("sha256").map_err(index_down)?;
    let series_study: Option<String> = row.try_get("series_study").map_err(index_down)?;
    check_owner(origin.as_deref(), &site)?;
    if let (Some(old), Some(actor)) = (&have, replace_as)
        && old != sha256
    {
        return replace_instance(db, objects, &site, inst, bytes, sha256, old, actor, now).await;
    }
    if let Some(stored) = judge(have, sha256)? {
        return Ok(stored);
    }
    check_series(series_study.as_deref(), &inst.study_uid)?;

    let key = object_key(&inst.study_uid, &inst.series_uid, &inst.sop_instance_uid);
    let size = bytes.len() as i64;
    objects.put(&key, bytes).await.map_err(objects_down)?;
    let outcome = index_new(db, &site, inst, &key, size, sha256, now).await;
    if !matches!(outcome, Ok(Stored::New)) {
        // Nothing points at these bytes: remove them now (the sweeper would, later).
        if let Err(e) = objects.delete(&key).await {
            tracing::warn!(error = %e, "unreferenced instance bytes could not be removed");
        }
    }
    outcome
}

/// The study must be this site's own (or new).
fn check_owner(origin: Option<&str>, site: &str) -> Result<(), Rejection> {
    match origin {
        Some(o) if o != site => {
            Err(Rejection::new(NOT_AUTHORISED, "this study belongs to another site"))
        }
        _ => Ok(()),
    }
}

/// The series must belong to the instance's study (or be new).
fn check_series(series_study: Option<&str>, study: &str) -> Result<(), Rejection> {
    match series_study {
        Some(s) if s != study => {
            Err(Rejection::new(PROCESSING_FAILURE, "this series belongs to another study"))
        }
        _ => Ok(()),
    }
}

/// The index rows of a new instance whose bytes are under `key`, in one transaction. The
/// study's owner and the series' study are checked after this transaction's own inserts, so
/// a concurrent first store of the same study by another site is seen (PostgreSQL waits for
/// the other insert to end; SQLite writers take turns) and the loser is refused whole.
async fn index_new(
    db: &Db,
    site: &str,
    inst: &Instance,
    key: &str,
    size: i64,
    sha256: &str,
    now: i64,
) -> Result<Stored, Rejection> {
    let s = &inst.study;
    let mut tx = db.pool().begin().await.map_err(index_down)?;
    sqlx::query(
        "INSERT INTO studies (study_uid, origin_site, patient_name, patient_id, patient_birth_date, patient_sex, \
           study_date, study_time, accession_number, study_description, study_id, referring_physician, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) ON CONFLICT (study_uid) DO NOTHING",
    )
    .bind(&inst.study_uid)
    .bind(site)
    .bind(s.patient_name.expose().clone())
    .bind(s.patient_id.expose().clone())
    .bind(s.patient_birth_date.expose().clone())
    .bind(s.patient_sex.clone())
    .bind(s.study_date.clone())
    .bind(s.study_time.clone())
    .bind(s.accession_number.clone())
    .bind(s.study_description.clone())
    .bind(s.study_id.clone())
    .bind(s.referring_physician.clone())
    .bind(now)
    .execute(&mut *tx)
    .await
    .map_err(index_down)?;
    let origin: Option<String> =
        sqlx::query_scalar("SELECT origin_site FROM studies WHERE study_uid = $1")
            .bind(&inst.study_uid)
            .fetch_optional(&mut *tx)
            .await
            .map_err(index_down)?;
    check_owner(origin.as_deref(), site)?;
    let se = &inst.series;
    sqlx::query(
        "INSERT INTO series (series_uid, study_uid, modality, series_number, series_description, series_date, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (series_uid) DO NOTHING",
    )
    .bind(&inst.series_uid)
    .bind(&inst.study_uid)
    .bind(se.modality.clone())
    .bind(se.series_number)
    .bind(se.series_description.clone())
    .bind(se.series_date.clone())
    .bind(now)
    .execute(&mut *tx)
    .await
    .map_err(index_down)?;
    let series_study: Option<String> =
        sqlx::query_scalar("SELECT study_uid FROM series WHERE series_uid = $1")
            .bind(&inst.series_uid)
            .fetch_optional(&mut *tx)
            .await
            .map_err(index_down)?;
    check_series(series_study.as_deref(), &inst.study_uid)?;
    let r = sqlx::query(
        "INSERT INTO instances (sop_instance_uid, series_uid, study_uid, sop_class_uid, transfer_syntax, instance_number, \
           rows_count, columns_count, frames, bits_allocated, size, sha256, object_key, created_at, metadata, frame_index, bulk_index) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
    )
    .bind(&inst.sop_instance_uid)
    .bind(&inst.series_uid)
    .bind(&inst.study_uid)
    .bind(&inst.sop_class_uid)
    .bind(&inst.transfer_syntax)
    .bind(inst.instance_number)
    .bind(inst.rows)
    .bind(inst.columns)
    .bind(inst.frames)
    .bind(inst.bits_allocated)
    .bind(size)
    .bind(sha256)
    .bind(key)
    .bind(now)
    .bind(&inst.metadata)
    .bind(inst.frame_index.as_ref().and_then(|f| serde_json::to_string(f).ok()))
    .bind(inst.bulk_index.as_ref().and_then(|f| serde_json::to_string(f).ok()))
    .execute(&mut *tx)
    .await;
    match r {
        Ok(_) => {
            tx.commit().await.map_err(index_down)?;
            Ok(Stored::New)
        }
        // A concurrent sender won the race: judge against what it stored.
        Err(e) if is_unique_violation(&e) => {
            drop(tx);
            existing(db, inst, sha256)
                .await?
                .ok_or_else(|| Rejection::new(PROCESSING_FAILURE, "concurrent store; send again"))
        }
        Err(e) => Err(index_down(e)),
    }
}

/// Replaces the stored instance `old_sha` under this SOP Instance UID by `inst`: the new bytes
/// go under a new key, then the row is updated and the replacement audited in one
/// transaction, then the old bytes are removed. Readers see the old instance or the new one,
/// never a mix; a crash leaves at most an unreferenced object.
#[allow(clippy::too_many_arguments)]
async fn replace_instance(
    db: &Db,
    objects: &Objects,
    site: &str,
    inst: &Instance,
    bytes: Bytes,
    sha256: &str,
    old_sha: &str,
    actor: &str,
    now: i64,
) -> Result<Stored, Rejection> {
    let old = sqlx::query(
        "SELECT study_uid, series_uid, object_key FROM instances WHERE sop_instance_uid = $1",
    )
    .bind(&inst.sop_instance_uid)
    .fetch_optional(db.pool())
    .await
    .map_err(index_down)?
    .ok_or_else(|| Rejection::new(PROCESSING_FAILURE, "concurrent store; send again"))?;
    let (old_study, old_series, old_key): (String, String, String) = (
        old.try_get("study_uid").map_err(index_down)?,
        old.try_get("series_uid").map_err(index_down)?,
        old.try_get("object_key").map_err(index_down)?,
    );
    if old_study != inst.study_uid || old_series != inst.series_uid {
        return Err(Rejection::new(
            DUPLICATE_INSTANCE,
            "a different instance with this SOP Instance UID is stored in another series; it is not replaced",
        ));
    }
    let key = object_key(&inst.study_uid, &inst.series_uid, &inst.sop_instance_uid);
    let size = bytes.len() as i64;
    objects.put(&key, bytes).await.map_err(objects_down)?;
    let mut tx = db.pool().begin().await.map_err(index_down)?;
    let updated = sqlx::query(
        "UPDATE instances SET sop_class_uid = $1, transfer_syntax = $2, instance_number = $3, \
           rows_count = $4, columns_count = $5, frames = $6, bits_allocated = $7, size = $8, \
           sha256 = $9, object_key = $10, metadata = $11, frame_index = $12, created_at = $13, \
           bulk_index = $16 \
         WHERE sop_instance_uid = $14 AND sha256 = $15",
    )
    .bind(&inst.sop_class_uid)
    .bind(&inst.transfer_syntax)
    .bind(inst.instance_number)
    .bind(inst.rows)
    .bind(inst.columns)
    .bind(inst.frames)
    .bind(inst.bits_allocated)
    .bind(size)
    .bind(sha256)
    .bind(&key)
    .bind(&inst.metadata)
    .bind(inst.frame_index.as_ref().and_then(|f| serde_json::to_string(f).ok()))
    .bind(now)
    .bind(&inst.sop_instance_uid)
    .bind(old_sha)
    .bind(inst.bulk_index.as_ref().and_then(|f| serde_json::to_string(f).ok()))
    .execute(&mut *tx)
    .await
    .map_err(index_down)?;
    if updated.rows_affected() != 1 {
        drop(tx);
        let _ = objects.delete(&key).await;
        return Err(Rejection::new(
            PROCESSING_FAILURE,
            "the instance changed meanwhile; send again",
        ));
    }
    crate::audit::record_on(
        &mut *tx,
        &crate::audit::NewEvent {
            at: now,
            actor: Some(actor.to_string()),
            actor_site: Some(site.to_string()),
            site: Some(site.to_string()),
            action: "imaging.replaced",
            resource_kind: "instance",
            resource_id: Some(inst.sop_instance_uid.clone()),
            outcome: crate::audit::Outcome::Success,
            client_addr: None,
            detail: Some(format!(
                "study {}; the stored instance had other content",
                inst.study_uid
            )),
        },
    )
    .await
    .map_err(index_down)?;
    tx.commit().await.map_err(index_down)?;
    if old_key != key
        && let Err(e) = objects.delete(&old_key).await
    {
        tracing::warn!(error = %e, "replaced instance bytes could not be removed");
    }
    Ok(Stored::Replaced)
}

/// Checks one Part 10 file (on a blocking thread) and stores it for the permit's site. With
/// `expected_study`, an instance of another study is refused (0x0110, a conflict). Returns
/// the checked instance, or the refusal naming the instance when it could be read, and
/// whether the refusal is a study mismatch.
pub async fn ingest(
    db: &Db,
    objects: &Objects,
    permit: &Permit<ImagingStore>,
    bytes: Bytes,
    expected_study: Option<&str>,
    replace_as: Option<&str>,
    now: i64,
) -> Result<(Instance, Stored), (bool, Rejection)> {
    let b = bytes.clone();
    let (inst, sha) = tokio::task::spawn_blocking(move || {
        let inst = super::parse::parse(&b)?;
        Ok::<_, Rejection>((inst, hex::encode(sha2::Sha256::digest(&b))))
    })
    .await
    .map_err(|_| (false, Rejection::new(PROCESSING_FAILURE, "the parser failed")))?
    .map_err(|r| (false, r))?;
    let named =
        |r: Rejection| r.of(Some(inst.sop_class_uid.clone()), Some(inst.sop_instance_uid.clone()));
    if let Some(s) = expected_study
        && s != inst.study_uid
    {
        return Err((
            true,
            named(Rejection::new(
                PROCESSING_FAILURE,
                "instance is not of the study named in the request",
            )),
        ));
    }
    if inst.frame_index.is_none() && inst.rows.is_some() {
        // Not silently: its frames will be read from the whole file, within the budget.
        tracing::info!(
            transfer_syntax = %inst.transfer_syntax,
            "no frame index for this instance; frames will be decoded from the whole file"
        );
    }
    let stored = store_instance(db, objects, permit, &inst, bytes, &sha, replace_as, now)
        .await
        .map_err(|r| (false, named(r)))?;
    Ok((inst, stored))
}

/// Is this SOP instance stored already? Identical bytes: success; different: a refusal.
async fn existing(db: &Db, inst: &Instance, sha256: &str) -> Result<Option<Stored>, Rejection> {
    let have: Option<String> =
        sqlx::query_scalar("SELECT sha256 FROM instances WHERE sop_instance_uid = $1")
            .bind(&inst.sop_instance_uid)
            .fetch_optional(db.pool())
            .await
            .map_err(index_down)?;
    judge(have, sha256)
}

/// An instance already stored under this UID (its SHA-256, if any) against the one arriving:
/// identical bytes are a success, different bytes a refusal.
fn judge(have: Option<String>, sha256: &str) -> Result<Option<Stored>, Rejection> {
    match have {
        None => Ok(None),
        Some(h) if h == sha256 => Ok(Some(Stored::AlreadyPresent)),
        Some(_) => Err(Rejection::new(
            DUPLICATE_INSTANCE,
            "a different instance with this SOP Instance UID is already stored",
        )),
    }
}

/// Who may see a study: its origin site and the sites it is shared with. (Structural: used
/// to decide access; None when there is no such study.)
pub async fn study_sites(
    db: &Db,
    study: &str,
) -> Result<Option<(SiteId, Vec<SiteId>)>, sqlx::Error> {
    let origin: Option<String> =
        sqlx::query_scalar("SELECT origin_site FROM studies WHERE study_uid = $1")
            .bind(study)
            .fetch_optional(db.pool())
            .await?;
    let Some(origin) = origin.and_then(|o| o.parse().ok()) else {
        return Ok(None);
    };
    let shared: Vec<String> = sqlx::query_scalar(
        "SELECT site_id FROM study_shares WHERE study_uid = $1 ORDER BY site_id",
    )
    .bind(study)
    .fetch_all(db.pool())
    .await?;
    Ok(Some((origin, shared.into_iter().filter_map(|s| s.parse().ok()).collect())))
}

/// Shares the permit's study with `site`. Sharing twice is harmless.
pub async fn share_study(
    db: &Db,
    permit: &Permit<StudyShare>,
    with: &SiteId,
    by: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    let study = permit.target().id.clone().unwrap_or_default();
    share_study_on(db.pool(), &study, with, by, now).await
}

/// The share itself, on a given connection or transaction (a consult's studies are shared in
/// the transaction that stores the consult). Callers hold a `StudyShare` permit for `study`.
pub(crate) async fn share_study_on<'e, E>(
    ex: E,
    study: &str,
    with: &SiteId,
    by: &str,
    now: i64,
) -> Result<(), sqlx::Error>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query(
        "INSERT INTO study_shares (study_uid, site_id, shared_by, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (study_uid, site_id) DO NOTHING",
    )
    .bind(study)
    .bind(with.as_str())
    .bind(by)
    .bind(now)
    .execute(ex)
    .await?;
    Ok(())
}

/// QIDO study matching. Text values may hold `*` and `?` wildcards; `study_date` is a DICOM
/// date or range (`20240101-20241231`, `-20241231`, `20240101-`).
#[derive(Debug, Clone, Default)]
pub struct StudyQuery {
    pub patient_name: Option<String>,
    pub patient_id: Option<String>,
    pub accession_number: Option<String>,
    pub study_description: Option<String>,
    pub study_id: Option<String>,
    pub referring_physician: Option<String>,
    pub study_date: Option<String>,
    pub study_uids: Vec<String>,
    pub modalities: Vec<String>,
    pub limit: i64,
    pub offset: i64,
}

/// A study as QIDO reports it.
#[derive(Debug, Clone)]
pub struct StudyRow {
    pub study_uid: String,
    pub origin_site: String,
    pub patient_name: Option<String>,
    pub patient_id: Option<String>,
    pub patient_birth_date: Option<String>,
    pub patient_sex: Option<String>,
    pub study_date: Option<String>,
    pub study_time: Option<String>,
    pub accession_number: Option<String>,
    pub study_description: Option<String>,
    pub study_id: Option<String>,
    pub referring_physician: Option<String>,
    pub modalities: Vec<String>,
    pub series_count: i64,
    pub instance_count: i64,
}

/// Builds a WHERE clause with numbered parameters.
struct Where {
    sql: String,
    args: Vec<String>,
}

impl Where {
    fn new() -> Self {
        Where { sql: String::from(" WHERE 1=1"), args: vec![] }
    }
    fn arg(&mut self, v: impl Into<String>) -> String {
        self.args.push(v.into());
        format!("${}", self.args.len())
    }
    fn push(&mut self, clause: &str) {
        self.sql.push_str(" AND ");
        self.sql.push_str(clause);
    }
    /// Wildcard text match (case-insensitive, `*` and `?` as in DICOM).
    fn text(&mut self, col: &str, v: &Option<String>) {
        let Some(v) = v.as_deref().filter(|v| !v.is_empty() && *v != "*") else { return };
        if v.contains(['*', '?']) {
            let pat: String = v
                .chars()
                .map(|c| match c {
                    '*' => "%".to_string(),
                    '?' => "_".to_string(),
                    '%' | '_' | '\\' => format!("\\{c}"),
                    c => c.to_string(),
                })
                .collect();
            let p = self.arg(pat);
            self.push(&format!("LOWER({col}) LIKE LOWER({p}) ESCAPE '\\'"));
            // The literal prefix as a range too, so the index on LOWER(col) narrows the scan.
            if let Some((from, to)) = prefix_range(v) {
                let (a, b) = (self.arg(from), self.arg(to));
                self.push(&format!("LOWER({col}) >= {a} AND LOWER({col}) < {b}"));
            }
        } else {
            let p = self.arg(v);
            self.push(&format!("LOWER({col}) = LOWER({p})"));
        }
    }
    fn in_list(&mut self, col: &str, values: &[String]) {
        if values.is_empty() {
            return;
        }
        let marks: Vec<String> = values.iter().map(|v| self.arg(v.clone())).collect();
        self.push(&format!("{col} IN ({})", marks.join(", ")));
    }
    /// A DICOM date (`YYYYMMDD`) or range (`A-B`, `-B`, `A-`).
    fn date_range(&mut self, col: &str, v: &Option<String>) {
        let Some(v) = v.as_deref().filter(|v| !v.is_empty()) else { return };
        match v.split_once('-') {
            Some((from, to)) => {
                if !from.is_empty() {
                    let p = self.arg(from);
                    self.push(&format!("{col} >= {p}"));
                }
                if !to.is_empty() {
                    let p = self.arg(to);
                    self.push(&format!("{col} <= {p}"));
                }
            }
            None => {
                let p = self.arg(v);
                self.push(&format!("{col} = {p}"));
            }
        }
    }
    fn bind_scalar<'q, O>(
        &'q self,
        mut q: sqlx::query::QueryScalar<'q, sqlx::Any, O, sqlx::any::AnyArguments<'q>>,
    ) -> sqlx::query::QueryScalar<'q, sqlx::Any, O, sqlx::any::AnyArguments<'q>> {
        for a in &self.args {
            q = q.bind(a.as_str());
        }
        q
    }
    fn bind<'q>(
        &'q self,
        mut q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
        for a in &self.args {
            q = q.bind(a.as_str());
        }
        q
    }
}

/// The range `[from, to)` holding every lowered value that starts with the literal prefix of
/// a wildcard pattern. Only ASCII letters and digits are used (trailing `z` and `9` dropped),
/// so the bounds order the same way bytewise and under the usual database collations, where
/// punctuation may be ignored; None when no such prefix remains.
fn prefix_range(pattern: &str) -> Option<(String, String)> {
    let literal: String = pattern
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let trimmed = literal.trim_end_matches(['z', '9']);
    let last = trimmed.chars().last()?;
    let next = (last as u8 + 1) as char;
    let to = format!("{}{next}", &trimmed[..trimmed.len() - 1]);
    Some((trimmed.to_string(), to))
}

fn opt(row: &AnyRow, col: &str) -> Result<Option<String>, sqlx::Error> {
    row.try_get(col)
}

/// Studies visible to the permit's site that match `q`, newest study date first. Returns one
/// more row than `q.limit` when there are more (the caller reports truncation).
pub async fn search_studies(
    db: &Db,
    permit: &Permit<ImagingSearch>,
    q: &StudyQuery,
) -> Result<Vec<StudyRow>, sqlx::Error> {
    let mut w = Where::new();
    w.visible_study_filters(permit, q);
    let limit = w.arg((q.limit + 1).to_string());
    let offset = w.arg(q.offset.to_string());
    let sql = format!(
        "SELECT st.*, \
           (SELECT COUNT(*) FROM series x WHERE x.study_uid = st.study_uid) AS series_count, \
           (SELECT COUNT(*) FROM instances i WHERE i.study_uid = st.study_uid) AS instance_count \
         FROM studies st{} ORDER BY st.study_date DESC, st.study_uid LIMIT CAST({limit} AS BIGINT) OFFSET CAST({offset} AS BIGINT)",
        w.sql
    );
    let rows = w.bind(sqlx::query(&sql)).fetch_all(db.pool()).await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let mut row = study_row(r)?;
        row.series_count = r.try_get("series_count")?;
        row.instance_count = r.try_get("instance_count")?;
        out.push(row);
    }
    // ModalitiesInStudy of the whole page in one query, not one per study.
    if !out.is_empty() {
        let mut m = Where::new();
        let uids: Vec<String> = out.iter().map(|r| r.study_uid.clone()).collect();
        m.in_list("study_uid", &uids);
        let sql = format!(
            "SELECT DISTINCT study_uid, modality FROM series{} ORDER BY study_uid, modality",
            m.sql
        );
        let pairs = m.bind(sqlx::query(&sql)).fetch_all(db.pool()).await?;
        let mut by_study: std::collections::HashMap<String, Vec<String>> = Default::default();
        for p in &pairs {
            if let Some(modality) = opt(p, "modality")? {
                by_study.entry(p.try_get("study_uid")?).or_default().push(modality);
            }
        }
        for row in &mut out {
            row.modalities = by_study.remove(&row.study_uid).unwrap_or_default();
        }
    }
    Ok(out)
}

/// The study columns a joined series or instance search selects (`STUDY_COLUMNS`).
const STUDY_COLUMNS: &str = "st.origin_site, st.patient_name, st.patient_id, \
    st.patient_birth_date, st.patient_sex, st.study_date, st.study_time, st.accession_number, \
    st.study_description, st.study_id, st.referring_physician";

/// A study's attributes from a row holding the study columns (counts and modalities left
/// empty).
fn study_row(r: &AnyRow) -> Result<StudyRow, sqlx::Error> {
    Ok(StudyRow {
        study_uid: r.try_get("study_uid")?,
        origin_site: r.try_get("origin_site")?,
        patient_name: opt(r, "patient_name")?,
        patient_id: opt(r, "patient_id")?,
        patient_birth_date: opt(r, "patient_birth_date")?,
        patient_sex: opt(r, "patient_sex")?,
        study_date: opt(r, "study_date")?,
        study_time: opt(r, "study_time")?,
        accession_number: opt(r, "accession_number")?,
        study_description: opt(r, "study_description")?,
        study_id: opt(r, "study_id")?,
        referring_physician: opt(r, "referring_physician")?,
        modalities: vec![],
        series_count: 0,
        instance_count: 0,
    })
}

/// Series and instance matching across every visible study (the un-nested QIDO forms):
/// study attributes as in [`StudyQuery`] plus series and instance keys.
#[derive(Debug, Clone, Default)]
pub struct LevelQuery {
    pub study: StudyQuery,
    pub series_uids: Vec<String>,
    pub modality: Option<String>,
    pub series_number: Option<i64>,
    pub sop_uids: Vec<String>,
    pub sop_class_uids: Vec<String>,
    pub instance_number: Option<i64>,
}

impl Where {
    /// Studies the permit's site may see, matching the study-level keys of `q`.
    fn visible_study_filters(&mut self, permit: &Permit<ImagingSearch>, q: &StudyQuery) {
        let site = permit.site().map(|s| s.to_string()).unwrap_or_default();
        let me = self.arg(site);
        self.push(&format!(
            "(st.origin_site = {me} OR EXISTS (SELECT 1 FROM study_shares sh WHERE sh.study_uid = st.study_uid AND sh.site_id = {me}))"
        ));
        self.text("st.patient_name", &q.patient_name);
        self.text("st.patient_id", &q.patient_id);
        self.text("st.accession_number", &q.accession_number);
        self.text("st.study_description", &q.study_description);
        self.text("st.study_id", &q.study_id);
        self.text("st.referring_physician", &q.referring_physician);
        self.date_range("st.study_date", &q.study_date);
        self.in_list("st.study_uid", &q.study_uids);
        if !q.modalities.is_empty() {
            let marks: Vec<String> = q.modalities.iter().map(|m| self.arg(m.clone())).collect();
            self.push(&format!(
                "EXISTS (SELECT 1 FROM series m WHERE m.study_uid = st.study_uid AND m.modality IN ({}))",
                marks.join(", ")
            ));
        }
    }

    fn series_filters(&mut self, q: &LevelQuery) {
        self.in_list("se.series_uid", &q.series_uids);
        if let Some(m) = q.modality.as_deref().filter(|m| !m.is_empty()) {
            let p = self.arg(m);
            self.push(&format!("se.modality = {p}"));
        }
        if let Some(n) = q.series_number {
            let p = self.arg(n.to_string());
            self.push(&format!("se.series_number = CAST({p} AS BIGINT)"));
        }
    }

    fn page(&mut self, q: &StudyQuery) -> String {
        let limit = self.arg((q.limit + 1).to_string());
        let offset = self.arg(q.offset.to_string());
        format!(" LIMIT CAST({limit} AS BIGINT) OFFSET CAST({offset} AS BIGINT)")
    }
}

/// Series of every visible study matching `q` (un-nested `/series`), with their study.
/// Returns one more row than the limit when there are more.
pub async fn search_all_series(
    db: &Db,
    permit: &Permit<ImagingSearch>,
    q: &LevelQuery,
) -> Result<Vec<(StudyRow, SeriesRow)>, sqlx::Error> {
    let mut w = Where::new();
    w.visible_study_filters(permit, &q.study);
    w.series_filters(q);
    let page = w.page(&q.study);
    let sql = format!(
        "SELECT se.*, {STUDY_COLUMNS}, \
           (SELECT COUNT(*) FROM instances i WHERE i.series_uid = se.series_uid) AS instance_count \
         FROM series se JOIN studies st ON st.study_uid = se.study_uid{} \
         ORDER BY st.study_date DESC, se.study_uid, se.series_number, se.series_uid{page}",
        w.sql
    );
    let rows = w.bind(sqlx::query(&sql)).fetch_all(db.pool()).await?;
    rows.iter().map(|r| Ok((study_row(r)?, series_row(r)?))).collect()
}

/// Instances of every visible study matching `q` (un-nested `/instances`, or
/// `/studies/{s}/instances` with the study in `q`), with their study.
pub async fn search_all_instances(
    db: &Db,
    permit: &Permit<ImagingSearch>,
    q: &LevelQuery,
) -> Result<Vec<(StudyRow, InstanceRow)>, sqlx::Error> {
    let mut w = Where::new();
    w.visible_study_filters(permit, &q.study);
    w.series_filters(q);
    w.in_list("i.sop_instance_uid", &q.sop_uids);
    w.in_list("i.sop_class_uid", &q.sop_class_uids);
    if let Some(n) = q.instance_number {
        let p = w.arg(n.to_string());
        w.push(&format!("i.instance_number = CAST({p} AS BIGINT)"));
    }
    let page = w.page(&q.study);
    let sql = format!(
        "SELECT {INSTANCE_COLUMNS}, {STUDY_COLUMNS} FROM instances i \
         JOIN series se ON se.series_uid = i.series_uid \
         JOIN studies st ON st.study_uid = i.study_uid{} \
         ORDER BY st.study_date DESC, i.study_uid, i.series_uid, i.instance_number, i.sop_instance_uid{page}",
        w.sql
    );
    let rows = w.bind(sqlx::query(&sql)).fetch_all(db.pool()).await?;
    rows.iter().map(|r| Ok((study_row(r)?, instance_row(r)?))).collect()
}

/// The stored metadata (DICOM JSON) of the first instance of a visible study, series or
/// instance, for `includefield` values the index does not hold.
pub async fn first_metadata(
    db: &Db,
    permit: &Permit<ImagingSearch>,
    study: &str,
    series: Option<&str>,
    sop: Option<&str>,
) -> Result<Option<String>, sqlx::Error> {
    let mut w = Where::new();
    w.visible_study_filters(permit, &StudyQuery::default());
    let s = w.arg(study);
    w.push(&format!("i.study_uid = {s}"));
    if let Some(x) = series {
        let p = w.arg(x);
        w.push(&format!("i.series_uid = {p}"));
    }
    if let Some(x) = sop {
        let p = w.arg(x);
        w.push(&format!("i.sop_instance_uid = {p}"));
    }
    let sql = format!(
        "SELECT i.metadata FROM instances i JOIN studies st ON st.study_uid = i.study_uid{} \
         ORDER BY i.series_uid, i.instance_number, i.sop_instance_uid LIMIT 1",
        w.sql
    );
    let row: Option<Option<String>> =
        w.bind_scalar(sqlx::query_scalar(&sql)).fetch_optional(db.pool()).await?;
    Ok(row.flatten())
}

/// A series as QIDO reports it.
#[derive(Debug, Clone)]
pub struct SeriesRow {
    pub study_uid: String,
    pub series_uid: String,
    pub modality: Option<String>,
    pub series_number: Option<i64>,
    pub series_description: Option<String>,
    pub series_date: Option<String>,
    pub instance_count: i64,
}

/// The series of the permit's study, optionally matching a modality or UID list.
pub async fn list_series(
    db: &Db,
    permit: &Permit<ImagingRead>,
    modality: Option<&str>,
    series_uids: &[String],
) -> Result<Vec<SeriesRow>, sqlx::Error> {
    let study = permit.target().id.clone().unwrap_or_default();
    let mut w = Where::new();
    let s = w.arg(study);
    w.push(&format!("se.study_uid = {s}"));
    if let Some(m) = modality.filter(|m| !m.is_empty()) {
        let p = w.arg(m);
        w.push(&format!("se.modality = {p}"));
    }
    w.in_list("se.series_uid", series_uids);
    let sql = format!(
        "SELECT se.*, (SELECT COUNT(*) FROM instances i WHERE i.series_uid = se.series_uid) AS instance_count \
         FROM series se{} ORDER BY se.series_number, se.series_uid",
        w.sql
    );
    let rows = w.bind(sqlx::query(&sql)).fetch_all(db.pool()).await?;
    rows.iter().map(series_row).collect()
}

fn series_row(r: &AnyRow) -> Result<SeriesRow, sqlx::Error> {
    Ok(SeriesRow {
        study_uid: r.try_get("study_uid")?,
        series_uid: r.try_get("series_uid")?,
        modality: opt(r, "modality")?,
        series_number: r.try_get("series_number")?,
        series_description: opt(r, "series_description")?,
        series_date: opt(r, "series_date")?,
        instance_count: r.try_get("instance_count")?,
    })
}

/// An instance of the index.
#[derive(Debug, Clone)]
pub struct InstanceRow {
    pub study_uid: String,
    pub series_uid: String,
    pub sop_instance_uid: String,
    pub sop_class_uid: String,
    pub transfer_syntax: String,
    pub instance_number: Option<i64>,
    pub rows: Option<i64>,
    pub columns: Option<i64>,
    pub frames: Option<i64>,
    pub bits_allocated: Option<i64>,
    pub size: i64,
    pub object_key: String,
}

/// `instances i` rows of the permit's study, narrowed to a series and/or one instance, and
/// the ORDER BY that lists them as a viewer expects.
fn instances_of(permit: &Permit<ImagingRead>, series: Option<&str>, sop: Option<&str>) -> Where {
    let study = permit.target().id.clone().unwrap_or_default();
    let mut w = Where::new();
    let s = w.arg(study);
    w.push(&format!("i.study_uid = {s}"));
    if let Some(x) = series {
        let p = w.arg(x);
        w.push(&format!("i.series_uid = {p}"));
    }
    if let Some(x) = sop {
        let p = w.arg(x);
        w.push(&format!("i.sop_instance_uid = {p}"));
    }
    w.sql.push_str(" ORDER BY i.series_uid, i.instance_number, i.sop_instance_uid");
    w
}

/// Instances of the permit's study, narrowed to a series and/or one instance.
pub async fn list_instances(
    db: &Db,
    permit: &Permit<ImagingRead>,
    series: Option<&str>,
    sop: Option<&str>,
) -> Result<Vec<InstanceRow>, sqlx::Error> {
    let w = instances_of(permit, series, sop);
    let sql = format!("SELECT {INSTANCE_COLUMNS} FROM instances i{}", w.sql);
    let rows = w.bind(sqlx::query(&sql)).fetch_all(db.pool()).await?;
    rows.iter().map(instance_row).collect()
}

/// The instance columns `instance_row` reads — not `i.*`, which would drag each instance's
/// metadata and frame index along into every listing and retrieve.
const INSTANCE_COLUMNS: &str = "i.study_uid, i.series_uid, i.sop_instance_uid, i.sop_class_uid, \
    i.transfer_syntax, i.instance_number, i.rows_count, i.columns_count, i.frames, \
    i.bits_allocated, i.size, i.object_key";

fn instance_row(r: &AnyRow) -> Result<InstanceRow, sqlx::Error> {
    Ok(InstanceRow {
        study_uid: r.try_get("study_uid")?,
        series_uid: r.try_get("series_uid")?,
        sop_instance_uid: r.try_get("sop_instance_uid")?,
        sop_class_uid: r.try_get("sop_class_uid")?,
        transfer_syntax: r.try_get("transfer_syntax")?,
        instance_number: r.try_get("instance_number")?,
        rows: r.try_get("rows_count")?,
        columns: r.try_get("columns_count")?,
        frames: r.try_get("frames")?,
        bits_allocated: r.try_get("bits_allocated")?,
        size: r.try_get("size")?,
        object_key: r.try_get("object_key")?,
    })
}

/// The stored metadata of the permit's study (narrowed to a series or instance), in order.
pub async fn metadata(
    db: &Db,
    permit: &Permit<ImagingRead>,
    series: Option<&str>,
    sop: Option<&str>,
) -> Result<Vec<String>, sqlx::Error> {
    let w = instances_of(permit, series, sop);
    let sql = format!("SELECT i.metadata FROM instances i{}", w.sql);
    let rows: Vec<Option<String>> =
        w.bind_scalar(sqlx::query_scalar(&sql)).fetch_all(db.pool()).await?;
    Ok(rows.into_iter().flatten().collect())
}

/// The stored metadata of the first instance of the permit's study (narrowed to a series or
/// instance), for `includefield` values the index does not hold.
pub async fn first_metadata_of(
    db: &Db,
    permit: &Permit<ImagingRead>,
    series: Option<&str>,
    sop: Option<&str>,
) -> Result<Option<String>, sqlx::Error> {
    let w = instances_of(permit, series, sop);
    let sql = format!("SELECT i.metadata FROM instances i{} LIMIT 1", w.sql);
    let row: Option<Option<String>> =
        w.bind_scalar(sqlx::query_scalar(&sql)).fetch_optional(db.pool()).await?;
    Ok(row.flatten())
}

/// Where one instance's frames lie: (object key, transfer syntax, frame index if known).
pub async fn frame_source(
    db: &Db,
    permit: &Permit<ImagingRead>,
    series: &str,
    sop: &str,
) -> Result<Option<(String, String, Option<super::frames::FrameIndex>)>, sqlx::Error> {
    let study = permit.target().id.clone().unwrap_or_default();
    let row = sqlx::query(
        "SELECT object_key, transfer_syntax, frame_index FROM instances \
         WHERE study_uid = $1 AND series_uid = $2 AND sop_instance_uid = $3",
    )
    .bind(study)
    .bind(series)
    .bind(sop)
    .fetch_optional(db.pool())
    .await?;
    let Some(r) = row else { return Ok(None) };
    let index: Option<String> = r.try_get("frame_index")?;
    Ok(Some((
        r.try_get("object_key")?,
        r.try_get("transfer_syntax")?,
        index.and_then(|i| serde_json::from_str(&i).ok()),
    )))
}

/// Where one instance's bulk value at `path` lies: (object key, transfer syntax, its byte
/// range if the instance has a bulk index and the value is in it, whether it has an index).
pub async fn bulk_source(
    db: &Db,
    permit: &Permit<ImagingRead>,
    series: &str,
    sop: &str,
    path: &str,
) -> Result<Option<(String, String, Option<(u64, u64)>, bool)>, sqlx::Error> {
    let study = permit.target().id.clone().unwrap_or_default();
    let row = sqlx::query(
        "SELECT object_key, transfer_syntax, bulk_index FROM instances \
         WHERE study_uid = $1 AND series_uid = $2 AND sop_instance_uid = $3",
    )
    .bind(study)
    .bind(series)
    .bind(sop)
    .fetch_optional(db.pool())
    .await?;
    let Some(r) = row else { return Ok(None) };
    let index: Option<super::bulk::BulkIndex> =
        r.try_get::<Option<String>, _>("bulk_index")?.and_then(|i| serde_json::from_str(&i).ok());
    let range = index
        .as_ref()
        .and_then(|i| i.iter().find(|(p, _, _)| p == path))
        .map(|(_, off, len)| (*off, *len));
    Ok(Some((r.try_get("object_key")?, r.try_get("transfer_syntax")?, range, index.is_some())))
}

#[cfg(test)]
mod tests {
    use super::prefix_range;

    #[test]
    fn wildcard_prefixes_become_safe_ranges() {
        let r = prefix_range;
        assert_eq!(r("Smith*"), Some(("smith".into(), "smiti".into())));
        // Only letters and digits: the PN separator ends the literal prefix.
        assert_eq!(r("SCALE^PAT*"), Some(("scale".into(), "scalf".into())));
        // A trailing z or 9 has no successor among letters and digits: it is dropped.
        assert_eq!(r("Liz*"), Some(("li".into(), "lj".into())));
        assert_eq!(r("A19*"), Some(("a1".into(), "a2".into())));
        assert_eq!(r("*son"), None);
        assert_eq!(r("zz*"), None);
        assert_eq!(r("?ohn"), None);
    }
}
