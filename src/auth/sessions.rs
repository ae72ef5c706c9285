//! Browser sessions: a random id in an HttpOnly cookie (only its hash is stored), a CSRF token
//! per session, an idle timeout and an absolute lifetime.

use sqlx::Row;

use crate::ids::{hash_secret, random_id};
use crate::storage::Db;

pub const COOKIE: &str = "ferry_session";

/// A live session found for a cookie.
#[derive(Debug, Clone)]
pub struct Session {
    pub id_hash: String,
    pub user: String,
    pub csrf: String,
}

/// Opens a session; returns (cookie secret, CSRF token).
pub async fn create(db: &Db, user: &str, now: i64) -> Result<(String, String), sqlx::Error> {
    let secret = random_id(32);
    let csrf = random_id(24);
    sqlx::query(
        "INSERT INTO sessions (id_hash, user_id, csrf_token, created_at, last_seen_at) VALUES ($1, $2, $3, $4, $4)",
    )
    .bind(hash_secret(&secret))
    .bind(user)
    .bind(&csrf)
    .bind(now)
    .execute(db.pool())
    .await?;
    Ok((secret, csrf))
}

/// Finds the session for a cookie secret if it is still live, and marks it seen. An expired
/// session is deleted.
pub async fn lookup(
    db: &Db,
    secret: &str,
    now: i64,
    idle_ms: i64,
    max_ms: i64,
) -> Result<Option<Session>, sqlx::Error> {
    if secret.is_empty() || secret.len() > 128 {
        return Ok(None);
    }
    let id_hash = hash_secret(secret);
    let row = sqlx::query(
        "SELECT user_id, csrf_token, created_at, last_seen_at FROM sessions WHERE id_hash = $1",
    )
    .bind(&id_hash)
    .fetch_optional(db.pool())
    .await?;
    let Some(row) = row else { return Ok(None) };
    let created: i64 = row.try_get("created_at")?;
    let seen: i64 = row.try_get("last_seen_at")?;
    if now - seen > idle_ms || now - created > max_ms {
        end(db, &id_hash).await?;
        return Ok(None);
    }
    // Mark activity, at most every 15 seconds, to keep writes low.
    if now - seen > 15_000 {
        sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE id_hash = $2")
            .bind(now)
            .bind(&id_hash)
            .execute(db.pool())
            .await?;
    }
    Ok(Some(Session { id_hash, user: row.try_get("user_id")?, csrf: row.try_get("csrf_token")? }))
}

pub async fn end(db: &Db, id_hash: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM sessions WHERE id_hash = $1").bind(id_hash).execute(db.pool()).await?;
    Ok(())
}

/// Deletes sessions idle or older than their limits; returns how many.
pub async fn sweep(db: &Db, now: i64, idle_ms: i64, max_ms: i64) -> Result<u64, sqlx::Error> {
    let r = sqlx::query("DELETE FROM sessions WHERE last_seen_at < $1 OR created_at < $2")
        .bind(now - idle_ms)
        .bind(now - max_ms)
        .execute(db.pool())
        .await?;
    Ok(r.rows_affected())
}

/// Which of `id_hashes` are sessions still live at `now` (neither idle nor past their
/// lifetime). Used to end the sockets of sessions that expired without a logout.
pub async fn live(
    db: &Db,
    id_hashes: &[String],
    now: i64,
    idle_ms: i64,
    max_ms: i64,
) -> Result<std::collections::HashSet<String>, sqlx::Error> {
    let mut out = std::collections::HashSet::new();
    for batch in id_hashes.chunks(200) {
        let marks: Vec<String> = (3..batch.len() + 3).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT id_hash FROM sessions WHERE last_seen_at >= $1 AND created_at >= $2 AND id_hash IN ({})",
            marks.join(", ")
        );
        let mut q = sqlx::query_scalar::<_, String>(&sql).bind(now - idle_ms).bind(now - max_ms);
        for h in batch {
            q = q.bind(h);
        }
        out.extend(q.fetch_all(db.pool()).await?);
    }
    Ok(out)
}
