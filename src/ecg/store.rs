//! SQL for ECG records. A record is stored for the permit's site; re-sending the same bytes to
//! the same site finds the record already there (an idempotent success). Reads that decide
//! access (`sites_of`) are structural; the search sees only what the permit's site may see:
//! its own ECGs and those whose study was shared with it.

use serde_json::{Value, json};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Ecg, Measurements};
use crate::auth::policy::{EcgRead, EcgSearch, ImagingStore, Permit};
use crate::network::SiteId;
use crate::storage::Db;
use crate::storage::sql::is_unique_violation;

/// A stored ECG record.
#[derive(Debug, Clone)]
pub struct EcgRow {
    pub id: String,
    pub site: String,
    pub format: String,
    pub object_key: String,
    pub study_uid: Option<String>,
    pub sop_instance_uid: Option<String>,
    pub patient_name: Option<String>,
    pub patient_id: Option<String>,
    pub patient_birth_date: Option<String>,
    pub patient_sex: Option<String>,
    pub acquired_at: Option<String>,
    /// Groups, measurements (device and computed), statements, device model.
    pub summary: Value,
    pub created_at: i64,
}

const COLS: &str = "id, site_id, format, object_key, study_uid, sop_instance_uid, patient_name, \
    patient_id, patient_birth_date, patient_sex, acquired_at, summary, created_at";

fn row(r: &AnyRow) -> Result<EcgRow, sqlx::Error> {
    let summary: String = r.try_get("summary")?;
    Ok(EcgRow {
        id: r.try_get("id")?,
        site: r.try_get("site_id")?,
        format: r.try_get("format")?,
        object_key: r.try_get("object_key")?,
        study_uid: r.try_get("study_uid")?,
        sop_instance_uid: r.try_get("sop_instance_uid")?,
        patient_name: r.try_get("patient_name")?,
        patient_id: r.try_get("patient_id")?,
        patient_birth_date: r.try_get("patient_birth_date")?,
        patient_sex: r.try_get("patient_sex")?,
        acquired_at: r.try_get("acquired_at")?,
        summary: serde_json::from_str(&summary).unwrap_or(Value::Null),
        created_at: r.try_get("created_at")?,
    })
}

/// What lists and the viewer need of an ECG, with Ferry's own measurements beside the device's.
pub fn summary(ecg: &Ecg, computed: &Measurements) -> Value {
    let groups: Vec<Value> = ecg
        .groups
        .iter()
        .map(|g| {
            json!({
                "kind": g.kind,
                "sampling_hz": g.sampling_hz,
                "duration_ms": g.duration_ms().round(),
                "leads": g.leads.iter().map(|(l, _)| l.name()).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "groups": groups,
        "measurements": { "device": ecg.device, "computed": computed },
        "statements": ecg.statements,
        "device_model": ecg.device_model,
    })
}

/// A record to store.
pub struct NewEcg<'a> {
    pub id: &'a str,
    pub ecg: &'a Ecg,
    pub sha256: &'a str,
    pub object_key: &'a str,
    pub study_uid: Option<&'a str>,
    pub sop_instance_uid: Option<&'a str>,
    pub summary: &'a Value,
    pub created_by: &'a str,
    pub now: i64,
}

/// Stores the record for the permit's site; returns it and whether it is new (false: the same
/// ECG was already there, and that record is returned).
pub async fn insert(
    db: &Db,
    permit: &Permit<ImagingStore>,
    new: NewEcg<'_>,
) -> Result<(EcgRow, bool), sqlx::Error> {
    let site = permit.site().map(|s| s.to_string()).unwrap_or_default();
    let p = &new.ecg.patient;
    let r = sqlx::query(
        "INSERT INTO ecgs (id, site_id, format, sha256, object_key, study_uid, sop_instance_uid, patient_name, \
           patient_id, patient_birth_date, patient_sex, acquired_at, summary, created_by, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
    )
    .bind(new.id)
    .bind(&site)
    .bind(new.ecg.format.as_str())
    .bind(new.sha256)
    .bind(new.object_key)
    .bind(new.study_uid)
    .bind(new.sop_instance_uid)
    .bind(p.name.expose().clone())
    .bind(p.id.expose().clone())
    .bind(p.birth_date.expose().clone())
    .bind(p.sex.clone())
    .bind(new.ecg.acquired_at.clone())
    .bind(new.summary.to_string())
    .bind(new.created_by)
    .bind(new.now)
    .execute(db.pool())
    .await;
    let fresh = match r {
        Ok(_) => true,
        Err(e) if is_unique_violation(&e) => false,
        Err(e) => return Err(e),
    };
    let found = sqlx::query(&format!("SELECT {COLS} FROM ecgs WHERE site_id = $1 AND sha256 = $2"))
        .bind(&site)
        .bind(new.sha256)
        .fetch_one(db.pool())
        .await?;
    Ok((row(&found)?, fresh))
}

/// An ECG's site and the study of its DICOM form. (Structural: what a reading request for it
/// is about; None when there is no such ECG or it has no study.)
pub async fn site_and_study(db: &Db, id: &str) -> Result<Option<(SiteId, String)>, sqlx::Error> {
    let r: Option<(String, Option<String>)> =
        sqlx::query_as("SELECT site_id, study_uid FROM ecgs WHERE id = $1")
            .bind(id)
            .fetch_optional(db.pool())
            .await?;
    Ok(r.and_then(|(site, study)| Some((site.parse().ok()?, study?))))
}

/// Whose an ECG is: its site and the sites its study is shared with. (Structural: used to
/// decide access; None when there is no such ECG.)
pub async fn sites_of(db: &Db, id: &str) -> Result<Option<(SiteId, Vec<SiteId>)>, sqlx::Error> {
    let r = sqlx::query("SELECT site_id, study_uid FROM ecgs WHERE id = $1")
        .bind(id)
        .fetch_optional(db.pool())
        .await?;
    let Some(r) = r else { return Ok(None) };
    let site: String = r.try_get("site_id")?;
    let Ok(site) = site.parse::<SiteId>() else { return Ok(None) };
    let study: Option<String> = r.try_get("study_uid")?;
    let shared = match study {
        Some(s) => {
            crate::archive::store::study_sites(db, &s).await?.map(|(_, sh)| sh).unwrap_or_default()
        }
        None => vec![],
    };
    Ok(Some((site, shared)))
}

/// The permit's ECG.
pub async fn get(db: &Db, permit: &Permit<EcgRead>) -> Result<Option<EcgRow>, sqlx::Error> {
    let id = permit.target().id.clone().unwrap_or_default();
    let r = sqlx::query(&format!("SELECT {COLS} FROM ecgs WHERE id = $1"))
        .bind(id)
        .fetch_optional(db.pool())
        .await?;
    r.map(|r| row(&r)).transpose()
}

/// ECG search: every field optional.
#[derive(Debug, Default, Clone)]
pub struct EcgQuery {
    pub patient_id: Option<String>,
    /// Part of the patient's name, any case.
    pub patient_name: Option<String>,
    /// `YYYY-MM-DD`, inclusive.
    pub from: Option<String>,
    pub to: Option<String>,
    pub site: Option<String>,
    pub format: Option<String>,
    pub limit: i64,
    pub offset: i64,
}

/// The ECGs the permit's site may see that match `q`, newest first.
pub async fn search(
    db: &Db,
    permit: &Permit<EcgSearch>,
    q: &EcgQuery,
) -> Result<Vec<EcgRow>, sqlx::Error> {
    let me = permit.site().map(|s| s.to_string()).unwrap_or_default();
    let mut sql = format!(
        "SELECT {COLS} FROM ecgs WHERE (site_id = $1 OR study_uid IN \
         (SELECT study_uid FROM study_shares WHERE site_id = $1))"
    );
    let mut binds: Vec<String> = vec![me];
    let mut add = |cond: &str, v: String| {
        binds.push(v);
        sql.push_str(&format!(" AND {cond} ${}", binds.len()));
    };
    if let Some(v) = &q.patient_id {
        add("LOWER(patient_id) =", v.to_lowercase());
    }
    if let Some(v) = &q.patient_name {
        add("LOWER(patient_name) LIKE", format!("%{}%", v.to_lowercase().replace(['%', '_'], "")));
    }
    if let Some(v) = &q.from {
        add("acquired_at >=", v.clone());
    }
    if let Some(v) = &q.to {
        add("acquired_at <=", format!("{v}T99"));
    }
    if let Some(v) = &q.site {
        add("site_id =", v.clone());
    }
    if let Some(v) = &q.format {
        add("format =", v.clone());
    }
    sql.push_str(&format!(
        " ORDER BY acquired_at DESC, created_at DESC LIMIT {} OFFSET {}",
        q.limit.clamp(1, 200),
        q.offset.max(0)
    ));
    let mut query = sqlx::query(&sql);
    for b in &binds {
        query = query.bind(b);
    }
    query.fetch_all(db.pool()).await?.iter().map(row).collect()
}

/// The record of a stored DICOM ECG instance. (Structural: its caller just stored the
/// instance under its own permit.)
pub async fn by_instance(db: &Db, sop: &str) -> Result<Option<EcgRow>, sqlx::Error> {
    let r = sqlx::query(&format!("SELECT {COLS} FROM ecgs WHERE sop_instance_uid = $1"))
        .bind(sop)
        .fetch_optional(db.pool())
        .await?;
    r.map(|r| row(&r)).transpose()
}

/// The record of these bytes at the permit's site, if they were sent before.
pub async fn by_sha(
    db: &Db,
    permit: &Permit<ImagingStore>,
    sha256: &str,
) -> Result<Option<EcgRow>, sqlx::Error> {
    let site = permit.site().map(|s| s.to_string()).unwrap_or_default();
    let r = sqlx::query(&format!("SELECT {COLS} FROM ecgs WHERE site_id = $1 AND sha256 = $2"))
        .bind(site)
        .bind(sha256)
        .fetch_optional(db.pool())
        .await?;
    r.map(|r| row(&r)).transpose()
}

/// Forgets a record whose store did not complete (its DICOM form was refused).
pub async fn remove(db: &Db, _: &Permit<ImagingStore>, id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM ecgs WHERE id = $1").bind(id).execute(db.pool()).await?;
    Ok(())
}
