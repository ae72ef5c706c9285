//! The orphan sweeper: instance bytes that no index row references — written for a store that
//! was then refused, or by a process that died before its index transaction committed — are
//! removed once they are older than a grace period. Every write has a key of its own
//! (`store::object_key`), so an object that is old and unreferenced can never become
//! referenced later: no store in progress writes to an old key.

use crate::storage::{Db, Objects};

#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error(transparent)]
    Objects(#[from] crate::storage::ObjectError),
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
}

/// Keys looked up in the index per query.
const BATCH: usize = 200;

/// Removes instance objects written before `now - grace_ms` that no index row references.
/// Returns how many were removed.
pub async fn sweep_orphans(
    db: &Db,
    objects: &Objects,
    now: i64,
    grace_ms: i64,
) -> Result<usize, SweepError> {
    let old = objects.list_written_before(super::store::INSTANCE_PREFIX, now - grace_ms).await?;
    let mut removed = 0;
    for batch in old.chunks(BATCH) {
        let marks: Vec<String> = (1..=batch.len()).map(|i| format!("${i}")).collect();
        let sql =
            format!("SELECT object_key FROM instances WHERE object_key IN ({})", marks.join(", "));
        let mut q = sqlx::query_scalar::<_, String>(&sql);
        for k in batch {
            q = q.bind(k);
        }
        let referenced: std::collections::HashSet<String> =
            q.fetch_all(db.pool()).await?.into_iter().collect();
        for k in batch.iter().filter(|k| !referenced.contains(*k)) {
            objects.delete(k).await?;
            removed += 1;
        }
    }
    Ok(removed)
}
