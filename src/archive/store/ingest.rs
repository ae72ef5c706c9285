//! Ingest: an instance's bytes under a key of its own, then its index rows in one
//! transaction that checks the study's owner and the series' study after its own inserts.

use super::*;

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

pub(super) fn index_down(_: sqlx::Error) -> Rejection {
    Rejection::new(PROCESSING_FAILURE, "the archive index is unavailable; send again later")
}

pub(super) fn objects_down(e: crate::storage::ObjectError) -> Rejection {
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
pub(super) fn check_owner(origin: Option<&str>, site: &str) -> Result<(), Rejection> {
    match origin {
        Some(o) if o != site => {
            Err(Rejection::new(NOT_AUTHORISED, "this study belongs to another site"))
        }
        _ => Ok(()),
    }
}

/// The series must belong to the instance's study (or be new).
pub(super) fn check_series(series_study: Option<&str>, study: &str) -> Result<(), Rejection> {
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
pub(super) async fn index_new(
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
            // Routed to a reading centre in the same transaction (ECGs are routed with their
            // ECG record instead).
            if !crate::ecg::is_ecg_sop_class(&inst.sop_class_uid) {
                let arrival = crate::reading::route::Arrival {
                    site,
                    kind: crate::reading::Kind::Imaging,
                    study_uid: &inst.study_uid,
                    ecg_id: None,
                    modality: se.modality.as_deref(),
                    now,
                };
                crate::reading::route::arrived(&mut tx, &arrival).await.map_err(index_down)?;
            }
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
pub(super) async fn replace_instance(
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
        let inst = crate::archive::parse::parse(&b)?;
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
    let stored = store_instance(db, objects, permit, &inst, bytes.clone(), &sha, replace_as, now)
        .await
        .map_err(|r| (false, named(r)))?;
    // An ECG, by whatever path it came (STOW-RS, C-STORE, tus, POST /api/ecgs), also gets its
    // ECG record.
    if crate::ecg::is_ecg_sop_class(&inst.sop_class_uid) {
        crate::ecg::record_dicom(
            db,
            permit,
            &inst.study_uid,
            &inst.sop_instance_uid,
            bytes,
            &sha,
            now,
        )
        .await;
    }
    Ok((inst, stored))
}

/// The object holding a stored instance's bytes.
pub async fn instance_object(db: &Db, sop: &str) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT object_key FROM instances WHERE sop_instance_uid = $1")
        .bind(sop)
        .fetch_optional(db.pool())
        .await
}

/// Is this SOP instance stored already? Identical bytes: success; different: a refusal.
pub(super) async fn existing(
    db: &Db,
    inst: &Instance,
    sha256: &str,
) -> Result<Option<Stored>, Rejection> {
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
pub(super) fn judge(have: Option<String>, sha256: &str) -> Result<Option<Stored>, Rejection> {
    match have {
        None => Ok(None),
        Some(h) if h == sha256 => Ok(Some(Stored::AlreadyPresent)),
        Some(_) => Err(Rejection::new(
            DUPLICATE_INSTANCE,
            "a different instance with this SOP Instance UID is already stored",
        )),
    }
}
