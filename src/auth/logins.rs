//! What password login reads and writes of an account: its hash, whether it is disabled, and
//! the failed-attempt counter and lock of the lockout rule.

use sqlx::Row;

use crate::network::UserId;
use crate::storage::Db;

pub struct LoginRecord {
    pub site: String,
    pub hash: Option<String>,
    pub disabled: bool,
    pub failed: i64,
    pub locked_until: Option<i64>,
}

/// The account's login record, if the account exists.
pub async fn record(db: &Db, id: &UserId) -> Result<Option<LoginRecord>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT site_id, password_hash, disabled, failed_logins, locked_until FROM users WHERE id = $1",
    )
    .bind(id.as_str())
    .fetch_optional(db.pool())
    .await?;
    row.map(|r| {
        Ok(LoginRecord {
            site: r.try_get("site_id")?,
            hash: r.try_get("password_hash")?,
            disabled: r.try_get::<i64, _>("disabled")? != 0,
            failed: r.try_get("failed_logins")?,
            locked_until: r.try_get("locked_until")?,
        })
    })
    .transpose()
}

/// Locks the account until `until` and starts its count of failures again.
pub async fn lock(db: &Db, id: &UserId, until: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET failed_logins = 0, locked_until = $1 WHERE id = $2")
        .bind(until)
        .bind(id.as_str())
        .execute(db.pool())
        .await?;
    Ok(())
}

/// Records that the account has now failed `failed` times in a row.
pub async fn count_failure(db: &Db, id: &UserId, failed: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET failed_logins = $1 WHERE id = $2")
        .bind(failed)
        .bind(id.as_str())
        .execute(db.pool())
        .await?;
    Ok(())
}

/// A successful login: no failures, no lock.
pub async fn clear_failures(db: &Db, id: &UserId) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET failed_logins = 0, locked_until = NULL WHERE id = $1")
        .bind(id.as_str())
        .execute(db.pool())
        .await?;
    Ok(())
}
