//! SQL for resumable uploads: who created each, how long it is, and once complete what became
//! of it. Creating and completing an upload demand the `ImagingStore` permit of its site; an
//! upload is only ever looked up together with its owner.

use sqlx::Row;

use crate::auth::Owner;
use crate::auth::policy::{ImagingStore, Permit};
use crate::storage::Db;

/// The column naming an owner of its kind, and the owner's id.
fn owner_column(owner: Owner<'_>) -> (&'static str, &str) {
    match owner {
        Owner::User(u) => ("user_id", u),
        Owner::Device(d) => ("device_id", d),
    }
}

/// An upload as its owner sees it.
pub struct Upload {
    pub length: u64,
    pub filename: Option<String>,
    pub completed: bool,
    pub result: Option<String>,
}

/// Records a new upload of `length` bytes by `owner` for the permit's site.
pub async fn create(
    db: &Db,
    permit: &Permit<ImagingStore>,
    id: &str,
    owner: Owner<'_>,
    length: u64,
    filename: Option<String>,
    now: i64,
) -> Result<(), sqlx::Error> {
    let site = permit.site().map(|s| s.to_string()).unwrap_or_default();
    let (column, who) = owner_column(owner);
    sqlx::query(&format!("INSERT INTO uploads (id, {column}, site_id, length, filename, created_at) VALUES ($1, $2, $3, $4, $5, $6)"))
        .bind(id)
        .bind(who)
        .bind(site)
        .bind(length as i64)
        .bind(filename)
        .bind(now)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// `owner`'s upload `id`, if it is theirs.
pub async fn owned(db: &Db, id: &str, owner: Owner<'_>) -> Result<Option<Upload>, sqlx::Error> {
    let (column, who) = owner_column(owner);
    let row = sqlx::query(&format!(
        "SELECT length, filename, completed_at, result FROM uploads WHERE id = $1 AND {column} = $2"
    ))
    .bind(id)
    .bind(who)
    .fetch_optional(db.pool())
    .await?;
    row.map(|row| {
        Ok(Upload {
            length: row.try_get::<i64, _>("length")? as u64,
            filename: row.try_get("filename")?,
            completed: row.try_get::<Option<i64>, _>("completed_at")?.is_some(),
            result: row.try_get("result")?,
        })
    })
    .transpose()
}

/// Marks the upload complete with what was stored and refused (`result`, JSON).
pub async fn complete(
    db: &Db,
    _: &Permit<ImagingStore>,
    id: &str,
    result: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE uploads SET completed_at = $1, result = $2 WHERE id = $3")
        .bind(now)
        .bind(result)
        .bind(id)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// Forgets `owner`'s upload `id`.
pub async fn delete(db: &Db, id: &str, owner: Owner<'_>) -> Result<(), sqlx::Error> {
    let (column, who) = owner_column(owner);
    sqlx::query(&format!("DELETE FROM uploads WHERE id = $1 AND {column} = $2"))
        .bind(id)
        .bind(who)
        .execute(db.pool())
        .await?;
    Ok(())
}
