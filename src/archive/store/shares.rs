//! Who may see a study (its origin site and the sites it is shared with), and sharing.

use super::*;

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
