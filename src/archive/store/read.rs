//! Reading one study: its metadata, and where its frames and bulk values lie.

use super::*;

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

/// The stored object of one instance of the permit's study and its indexes.
struct Source {
    key: String,
    transfer_syntax: String,
    frame_index: Option<String>,
    bulk_index: Option<String>,
}

async fn source(
    db: &Db,
    permit: &Permit<ImagingRead>,
    series: &str,
    sop: &str,
) -> Result<Option<Source>, sqlx::Error> {
    let study = permit.target().id.clone().unwrap_or_default();
    let row = sqlx::query(
        "SELECT object_key, transfer_syntax, frame_index, bulk_index FROM instances \
         WHERE study_uid = $1 AND series_uid = $2 AND sop_instance_uid = $3",
    )
    .bind(study)
    .bind(series)
    .bind(sop)
    .fetch_optional(db.pool())
    .await?;
    row.map(|r| {
        Ok(Source {
            key: r.try_get("object_key")?,
            transfer_syntax: r.try_get("transfer_syntax")?,
            frame_index: r.try_get("frame_index")?,
            bulk_index: r.try_get("bulk_index")?,
        })
    })
    .transpose()
}

/// Where one instance's frames lie: (object key, transfer syntax, frame index if known).
pub async fn frame_source(
    db: &Db,
    permit: &Permit<ImagingRead>,
    series: &str,
    sop: &str,
) -> Result<Option<(String, String, Option<crate::archive::frames::FrameIndex>)>, sqlx::Error> {
    Ok(source(db, permit, series, sop).await?.map(|s| {
        let index = s.frame_index.and_then(|i| serde_json::from_str(&i).ok());
        (s.key, s.transfer_syntax, index)
    }))
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
    Ok(source(db, permit, series, sop).await?.map(|s| {
        let index: Option<crate::archive::bulk::BulkIndex> =
            s.bulk_index.and_then(|i| serde_json::from_str(&i).ok());
        let range = index
            .as_ref()
            .and_then(|i| i.iter().find(|(p, _, _)| p == path))
            .map(|(_, off, len)| (*off, *len));
        (s.key, s.transfer_syntax, range, index.is_some())
    }))
}
