//! Storing an ECG, whatever path it came by (`POST /api/ecgs`, a tus upload, an entry of a zip
//! bundle): parsed on a blocking thread; a DICOM ECG goes into the archive like any instance
//! (the archive makes its record); any other format keeps its bytes as received, gets its
//! record and its DICOM General ECG form in the archive, all or nothing. The same bytes sent
//! again to the same site find the record already there.

use bytes::Bytes;

use super::store::{self, EcgRow};
use super::{EcgError, Format};
use crate::auth::policy::{ImagingStore, Permit};
use crate::storage::{Db, Objects};

/// Why an ECG was not stored.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Ecg(#[from] EcgError),
    #[error("the DICOM form was refused: {0}")]
    Dicom(String),
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
    #[error("{0}")]
    Internal(String),
}

/// Stores `bytes` (one ECG file) for the permit's site: its record, and whether it is new.
pub async fn store(
    db: &Db,
    objects: &Objects,
    permit: &Permit<ImagingStore>,
    bytes: Bytes,
    actor: &str,
    replace_as: Option<&str>,
    now: i64,
) -> Result<(EcgRow, bool), IngestError> {
    let b = bytes.clone();
    // Parsed here for a clear refusal of what is not an ECG; Ferry's measurements are made
    // where the record is (for a DICOM ECG, by the archive's `record_dicom`).
    let (ecg, computed, sha) = tokio::task::spawn_blocking(move || {
        let e = super::parse(&b)?;
        let computed = (e.format != Format::Dicom).then(|| super::measure::computed(&e));
        let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&b));
        Ok::<_, EcgError>((e, computed, sha))
    })
    .await
    .map_err(|e| IngestError::Internal(e.to_string()))??;
    if ecg.format == Format::Dicom {
        // Into the archive like any instance (same checks, index, shares); the archive makes
        // the ECG record.
        let (inst, stored) =
            crate::archive::store::ingest(db, objects, permit, bytes, None, replace_as, now)
                .await
                .map_err(|(_, r)| IngestError::Dicom(r.reason))?;
        let found = store::by_instance(db, &inst.sop_instance_uid).await?.ok_or(
            IngestError::Ecg(EcgError::Malformed(
                "DICOM waveform",
                "stored as an instance, but its waveform could not be read".into(),
            )),
        )?;
        return Ok((found, stored == crate::archive::store::Stored::New));
    }
    if let Some(row) = store::by_sha(db, permit, &sha).await? {
        return Ok((row, false));
    }
    let computed = computed.unwrap_or_default();
    with_dicom(db, objects, permit, &ecg, &computed, bytes, &sha, actor, now).await
}

/// A MUSE, aECG or SCP ECG: the bytes as received, its record, and its DICOM General ECG form
/// in the archive (a study of its own for that patient at that site), all or nothing.
#[allow(clippy::too_many_arguments)]
async fn with_dicom(
    db: &Db,
    objects: &Objects,
    permit: &Permit<ImagingStore>,
    ecg: &super::Ecg,
    computed: &super::Measurements,
    bytes: Bytes,
    sha: &str,
    actor: &str,
    now: i64,
) -> Result<(EcgRow, bool), IngestError> {
    let id = format!("ecg_{}", crate::ids::random_id(9));
    let site = permit.site().map(|s| s.to_string()).unwrap_or_default();
    let key = format!("ecgs/{site}/{id}.{}", extension(ecg.format));
    objects.put(&key, bytes).await.map_err(|e| IngestError::Internal(e.to_string()))?;
    let (study, series, instance) =
        (super::dicom_out::new_uid(), super::dicom_out::new_uid(), super::dicom_out::new_uid());
    let summary = store::summary(ecg, computed);
    let new = store::NewEcg {
        id: &id,
        ecg,
        sha256: sha,
        object_key: &key,
        study_uid: Some(&study),
        sop_instance_uid: Some(&instance),
        summary: &summary,
        created_by: actor,
        now,
    };
    let (row, fresh) = store::insert(db, permit, new).await?;
    if !fresh {
        // Sent twice at once: the other request stored it.
        let _ = objects.delete(&key).await;
        return Ok((row, false));
    }
    let (copy, s, se, i) = (ecg.clone(), study.clone(), series, instance.clone());
    let dicom = tokio::task::spawn_blocking(move || {
        let uids = super::dicom_out::Uids { study: &s, series: &se, instance: &i };
        super::dicom_out::write(&copy, &uids)
    })
    .await
    .map_err(|e| IngestError::Internal(e.to_string()))?;
    let ingested = match dicom {
        Ok(d) => {
            crate::archive::store::ingest(db, objects, permit, Bytes::from(d), None, None, now)
                .await
                .map_err(|(_, r)| r.reason)
        }
        Err(e) => Err(e),
    };
    if let Err(why) = ingested {
        let _ = store::remove(db, permit, &id).await;
        let _ = objects.delete(&key).await;
        tracing::warn!(reason = %why, "the DICOM form of an ECG was refused; nothing stored");
        return Err(IngestError::Dicom(why));
    }
    crate::reading::route::ecg_arrived(db, &site, &row.id, &study, now).await;
    Ok((row, true))
}

fn extension(f: Format) -> &'static str {
    match f {
        Format::Dicom => "dcm",
        Format::Muse | Format::Aecg => "xml",
        Format::Scp => "scp",
    }
}
