//! Bearer tokens: a person's (for scripts and `ferry upload`) and a device's (an ECG cart that
//! exports files, sending for its site). A token is shown once, at creation; only its SHA-256
//! is stored. Tokens may expire and may be revoked.

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::policy::{
    DeviceList, DeviceTokenCreate, DeviceTokenRevoke, Permit, TokenCreate, TokenList, TokenRevoke,
};
use crate::ids::{hash_secret, random_id};
use crate::network::{UserId, check_text};
use crate::storage::Db;
use crate::time::rfc3339;

/// Whether `id` is a token's id (`tok_…`), as opposed to a session's id hash.
pub fn is_token_id(id: &str) -> bool {
    id.starts_with("tok_")
}

/// Prefix of every token secret, so that leaked tokens are easy to recognise and scan for.
pub const TOKEN_PREFIX: &str = "fy_";

#[derive(Debug, Clone, Serialize)]
pub struct ApiToken {
    pub id: String,
    pub user: String,
    pub label: String,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
    pub last_used_at: Option<String>,
}

fn token_from_row(row: &AnyRow) -> Result<ApiToken, sqlx::Error> {
    let opt = |c: &str| -> Result<Option<String>, sqlx::Error> {
        Ok(row.try_get::<Option<i64>, _>(c)?.map(rfc3339))
    };
    Ok(ApiToken {
        id: row.try_get("id")?,
        user: row.try_get("user_id")?,
        label: row.try_get("label")?,
        created_at: rfc3339(row.try_get("created_at")?),
        expires_at: opt("expires_at")?,
        revoked_at: opt("revoked_at")?,
        last_used_at: opt("last_used_at")?,
    })
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("{0}")]
    Invalid(String),
    #[error("token not found")]
    NotFound,
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
}

/// Creates a token for the permit's subject user. Returns the record and the secret, which
/// is never stored and cannot be shown again.
pub async fn create(
    db: &Db,
    permit: &Permit<TokenCreate>,
    label: &str,
    expires_at: Option<i64>,
    now: i64,
) -> Result<(ApiToken, String), TokenError> {
    let user = permit.target().subject.clone().ok_or(TokenError::NotFound)?;
    let label = check_text("token label", label).map_err(|e| TokenError::Invalid(e.to_string()))?;
    if let Some(exp) = expires_at
        && exp <= now
    {
        return Err(TokenError::Invalid("expiry must be in the future".into()));
    }
    let id = format!("tok_{}", random_id(9));
    let secret = format!("{TOKEN_PREFIX}{}", random_id(32));
    sqlx::query(
        "INSERT INTO api_tokens (id, user_id, token_hash, label, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&id)
    .bind(user.as_str())
    .bind(hash_secret(&secret))
    .bind(&label)
    .bind(now)
    .bind(expires_at)
    .execute(db.pool())
    .await?;
    Ok((
        ApiToken {
            id,
            user: user.to_string(),
            label,
            created_at: rfc3339(now),
            expires_at: expires_at.map(rfc3339),
            revoked_at: None,
            last_used_at: None,
        },
        secret,
    ))
}

pub async fn list(db: &Db, permit: &Permit<TokenList>) -> Result<Vec<ApiToken>, TokenError> {
    let user = permit.target().subject.clone().ok_or(TokenError::NotFound)?;
    let rows =
        sqlx::query("SELECT * FROM api_tokens WHERE user_id = $1 ORDER BY created_at DESC, id")
            .bind(user.as_str())
            .fetch_all(db.pool())
            .await?;
    Ok(rows.iter().map(token_from_row).collect::<Result<_, _>>()?)
}

/// Whose token is this? (Structural: used to decide access.)
pub async fn owner(db: &Db, token_id: &str) -> Result<Option<UserId>, sqlx::Error> {
    let u: Option<String> = sqlx::query_scalar("SELECT user_id FROM api_tokens WHERE id = $1")
        .bind(token_id)
        .fetch_optional(db.pool())
        .await?;
    Ok(u.and_then(|u| u.parse().ok()))
}

/// Revokes the permit's token. Revoking twice keeps the first revocation time.
pub async fn revoke(
    db: &Db,
    permit: &Permit<TokenRevoke>,
    now: i64,
) -> Result<ApiToken, TokenError> {
    let id = permit.target().id.clone().ok_or(TokenError::NotFound)?;
    let user = permit.target().subject.clone().ok_or(TokenError::NotFound)?;
    sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND user_id = $3 AND revoked_at IS NULL")
        .bind(now)
        .bind(&id)
        .bind(user.as_str())
        .execute(db.pool())
        .await?;
    let row = sqlx::query("SELECT * FROM api_tokens WHERE id = $1 AND user_id = $2")
        .bind(&id)
        .bind(user.as_str())
        .fetch_optional(db.pool())
        .await?
        .ok_or(TokenError::NotFound)?;
    Ok(token_from_row(&row)?)
}

/// Why a bearer token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Unknown,
    Expired,
    Revoked,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Unknown => "unknown token",
            Refusal::Expired => "token expired",
            Refusal::Revoked => "token revoked",
        }
    }
}

/// Whose a live token is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    User(String),
    Device(String),
}

/// Finds the live token for a presented secret: (token id, its holder). Refusals carry the
/// holder when the token is known, for the audit trail.
pub async fn authenticate(
    db: &Db,
    secret: &str,
    now: i64,
) -> Result<Result<(String, Holder), (Refusal, Option<Holder>)>, sqlx::Error> {
    if !secret.starts_with(TOKEN_PREFIX) || secret.len() > 128 {
        return Ok(Err((Refusal::Unknown, None)));
    }
    let hash = hash_secret(secret);
    let (table, row) = match sqlx::query("SELECT id, user_id AS holder, expires_at, revoked_at, last_used_at FROM api_tokens WHERE token_hash = $1")
        .bind(&hash)
        .fetch_optional(db.pool())
        .await?
    {
        Some(row) => ("api_tokens", row),
        None => match sqlx::query("SELECT id, device_id AS holder, expires_at, revoked_at, last_used_at FROM device_tokens WHERE token_hash = $1")
            .bind(&hash)
            .fetch_optional(db.pool())
            .await?
        {
            Some(row) => ("device_tokens", row),
            None => return Ok(Err((Refusal::Unknown, None))),
        },
    };
    let id: String = row.try_get("id")?;
    let holder: String = row.try_get("holder")?;
    let holder = if table == "api_tokens" { Holder::User(holder) } else { Holder::Device(holder) };
    if row.try_get::<Option<i64>, _>("revoked_at")?.is_some() {
        return Ok(Err((Refusal::Revoked, Some(holder))));
    }
    if row.try_get::<Option<i64>, _>("expires_at")?.is_some_and(|e| e <= now) {
        return Ok(Err((Refusal::Expired, Some(holder))));
    }
    // Record use at most once a minute per token.
    let last: Option<i64> = row.try_get("last_used_at")?;
    if last.is_none_or(|l| now - l > 60_000) {
        sqlx::query(&format!("UPDATE {table} SET last_used_at = $1 WHERE id = $2"))
            .bind(now)
            .bind(&id)
            .execute(db.pool())
            .await?;
    }
    Ok(Ok((id, holder)))
}

/// Which of `ids` are tokens still usable at `now` (not revoked, not expired). Used to end the
/// sockets of tokens that expired.
pub async fn live(
    db: &Db,
    ids: &[String],
    now: i64,
) -> Result<std::collections::HashSet<String>, sqlx::Error> {
    let mut out = std::collections::HashSet::new();
    for batch in ids.chunks(200) {
        let marks: Vec<String> = (2..batch.len() + 2).map(|i| format!("${i}")).collect();
        let marks = marks.join(", ");
        let sql = format!(
            "SELECT id FROM api_tokens WHERE revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $1) AND id IN ({marks}) \
             UNION ALL SELECT id FROM device_tokens WHERE revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $1) AND id IN ({marks})"
        );
        let mut q = sqlx::query_scalar::<_, String>(&sql).bind(now);
        for id in batch {
            q = q.bind(id);
        }
        out.extend(q.fetch_all(db.pool()).await?);
    }
    Ok(out)
}

// ---- device tokens ----

/// A device's token as its site's admins see it (never the secret).
#[derive(Debug, Clone, Serialize)]
pub struct DeviceToken {
    pub id: String,
    pub device: String,
    pub label: String,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
    pub last_used_at: Option<String>,
}

fn device_token_from_row(row: &AnyRow) -> Result<DeviceToken, sqlx::Error> {
    let opt = |c: &str| -> Result<Option<String>, sqlx::Error> {
        Ok(row.try_get::<Option<i64>, _>(c)?.map(rfc3339))
    };
    Ok(DeviceToken {
        id: row.try_get("id")?,
        device: row.try_get("device_id")?,
        label: row.try_get("label")?,
        created_at: rfc3339(row.try_get("created_at")?),
        expires_at: opt("expires_at")?,
        revoked_at: opt("revoked_at")?,
        last_used_at: opt("last_used_at")?,
    })
}

/// Whether `id` is a device token's id (`dtk_…`).
pub fn is_device_token_id(id: &str) -> bool {
    id.starts_with("dtk_")
}

/// Creates a token for the permit's device (its id is the permit's target id). With `secret`
/// given (the demo's well-known cart token) that secret is used, and an existing token with it
/// is answered instead of a second one. Returns the record and the secret.
pub async fn create_for_device(
    db: &Db,
    permit: &Permit<DeviceTokenCreate>,
    label: &str,
    expires_at: Option<i64>,
    secret: Option<&str>,
    now: i64,
) -> Result<(DeviceToken, String), TokenError> {
    let device = permit.target().id.clone().ok_or(TokenError::NotFound)?;
    let label = check_text("token label", label).map_err(|e| TokenError::Invalid(e.to_string()))?;
    if let Some(exp) = expires_at
        && exp <= now
    {
        return Err(TokenError::Invalid("expiry must be in the future".into()));
    }
    let secret = match secret {
        Some(s) => s.to_string(),
        None => format!("{TOKEN_PREFIX}{}", random_id(32)),
    };
    if let Some(row) =
        sqlx::query("SELECT * FROM device_tokens WHERE token_hash = $1 AND device_id = $2")
            .bind(hash_secret(&secret))
            .bind(&device)
            .fetch_optional(db.pool())
            .await?
    {
        return Ok((device_token_from_row(&row)?, secret));
    }
    let id = format!("dtk_{}", random_id(9));
    sqlx::query(
        "INSERT INTO device_tokens (id, device_id, token_hash, label, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&id)
    .bind(&device)
    .bind(hash_secret(&secret))
    .bind(&label)
    .bind(now)
    .bind(expires_at)
    .execute(db.pool())
    .await?;
    let token = DeviceToken {
        id,
        device,
        label,
        created_at: rfc3339(now),
        expires_at: expires_at.map(rfc3339),
        revoked_at: None,
        last_used_at: None,
    };
    Ok((token, secret))
}

/// The tokens of the permit's device (its id is the permit's target id).
pub async fn list_for_device(
    db: &Db,
    permit: &Permit<DeviceList>,
) -> Result<Vec<DeviceToken>, TokenError> {
    let device = permit.target().id.clone().ok_or(TokenError::NotFound)?;
    let rows = sqlx::query(
        "SELECT * FROM device_tokens WHERE device_id = $1 ORDER BY created_at DESC, id",
    )
    .bind(&device)
    .fetch_all(db.pool())
    .await?;
    Ok(rows.iter().map(device_token_from_row).collect::<Result<_, _>>()?)
}

/// The device a device token belongs to. (Structural: used to decide access.)
pub async fn device_of_token(db: &Db, token_id: &str) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT device_id FROM device_tokens WHERE id = $1")
        .bind(token_id)
        .fetch_optional(db.pool())
        .await
}

/// Revokes the permit's device token. Revoking twice keeps the first revocation time.
pub async fn revoke_device_token(
    db: &Db,
    permit: &Permit<DeviceTokenRevoke>,
    now: i64,
) -> Result<DeviceToken, TokenError> {
    let id = permit.target().id.clone().ok_or(TokenError::NotFound)?;
    sqlx::query("UPDATE device_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
        .bind(now)
        .bind(&id)
        .execute(db.pool())
        .await?;
    let row = sqlx::query("SELECT * FROM device_tokens WHERE id = $1")
        .bind(&id)
        .fetch_optional(db.pool())
        .await?
        .ok_or(TokenError::NotFound)?;
    Ok(device_token_from_row(&row)?)
}
