//! SQL for the network model. Reads and writes of administered data take a [`Permit`] for
//! the matching action; the few functions without one answer structural questions (which site
//! does this user belong to, which sites lie below this one) needed to make a decision.

use std::collections::HashSet;

use sqlx::Row;
use sqlx::any::AnyRow;

use super::*;
use crate::auth::policy::{
    DeviceCreate, DeviceDelete, DeviceList, PeopleDirectory, Permit, SiteCreate, SiteList,
    SiteRead, UserCreate, UserList, UserRead, UserUpdate,
};
use crate::storage::Db;
use crate::storage::sql::{is_foreign_key_violation, is_unique_violation};
use crate::time::rfc3339;

#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error("{0} already exists")]
    Exists(String),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
}

impl From<ParseError> for NetworkError {
    fn from(e: ParseError) -> Self {
        NetworkError::Invalid(e.to_string())
    }
}

fn parse_col<T: FromStr<Err = ParseError>>(row: &AnyRow, col: &str) -> Result<T, sqlx::Error> {
    let s: String = row.try_get(col)?;
    s.parse().map_err(|e: ParseError| sqlx::Error::Decode(Box::new(e)))
}

fn site_from_row(row: &AnyRow) -> Result<Site, sqlx::Error> {
    let parent: Option<String> = row.try_get("parent_id")?;
    Ok(Site {
        id: parse_col(row, "id")?,
        name: row.try_get("name")?,
        tier: parse_col(row, "tier")?,
        kind: parse_col(row, "kind")?,
        parent: parent.and_then(|p| p.parse().ok()),
        created_at: rfc3339(row.try_get("created_at")?),
    })
}

const USER_COLS: &str =
    "id, site_id, display_name, roles, specialties, password_hash, disabled, created_at";

fn user_from_row(row: &AnyRow) -> Result<User, sqlx::Error> {
    let hash: Option<String> = row.try_get("password_hash")?;
    Ok(User {
        id: parse_col(row, "id")?,
        site: parse_col(row, "site_id")?,
        display_name: row.try_get("display_name")?,
        roles: split_list(&row.try_get::<String, _>("roles")?),
        specialties: split_list(&row.try_get::<String, _>("specialties")?),
        disabled: row.try_get::<i64, _>("disabled")? != 0,
        has_password: hash.is_some(),
        created_at: rfc3339(row.try_get("created_at")?),
    })
}

fn device_from_row(row: &AnyRow) -> Result<Device, sqlx::Error> {
    let ae: Option<String> = row.try_get("ae_title")?;
    Ok(Device {
        id: row.try_get("id")?,
        site: parse_col(row, "site_id")?,
        kind: parse_col(row, "kind")?,
        name: row.try_get("name")?,
        ae_title: ae.and_then(|a| AeTitle::try_from(a).ok()),
        created_at: rfc3339(row.try_get("created_at")?),
    })
}

// ---- sites ----

pub async fn list_sites(db: &Db, _: &Permit<SiteList>) -> Result<Vec<Site>, NetworkError> {
    let rows = sqlx::query("SELECT * FROM sites ORDER BY id").fetch_all(db.pool()).await?;
    Ok(rows.iter().map(site_from_row).collect::<Result<_, _>>()?)
}

pub async fn get_site(db: &Db, permit: &Permit<SiteRead>) -> Result<Site, NetworkError> {
    let id = permit.site().ok_or(NetworkError::NotFound("site"))?;
    let row = sqlx::query("SELECT * FROM sites WHERE id = $1")
        .bind(id.as_str())
        .fetch_optional(db.pool())
        .await?
        .ok_or(NetworkError::NotFound("site"))?;
    Ok(site_from_row(&row)?)
}

/// Does the site exist? (Structural; reveals nothing but the identifier's use.)
pub async fn site_exists(db: &Db, id: &SiteId) -> Result<bool, sqlx::Error> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sites WHERE id = $1")
        .bind(id.as_str())
        .fetch_one(db.pool())
        .await?;
    Ok(n > 0)
}

/// A site's display name (the network directory, which anyone signed in may read).
pub async fn site_name(db: &Db, id: &SiteId) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT name FROM sites WHERE id = $1")
        .bind(id.as_str())
        .fetch_optional(db.pool())
        .await
}

/// A site's parent. (Structural: the tree decides routing.)
pub async fn parent_of(db: &Db, id: &SiteId) -> Result<Option<SiteId>, sqlx::Error> {
    let p: Option<Option<String>> = sqlx::query_scalar("SELECT parent_id FROM sites WHERE id = $1")
        .bind(id.as_str())
        .fetch_optional(db.pool())
        .await?;
    Ok(p.flatten().and_then(|p| p.parse().ok()))
}

/// The active people of a site holding `role` (ids only: whom to tell that something
/// happened; structural, no personal data leaves with it).
pub async fn people_with_role(
    db: &Db,
    site: &SiteId,
    role: Role,
) -> Result<Vec<String>, sqlx::Error> {
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT id, roles FROM users WHERE site_id = $1 AND disabled = 0")
            .bind(site.as_str())
            .fetch_all(db.pool())
            .await?;
    Ok(rows
        .into_iter()
        .filter(|(_, roles)| crate::network::split_list::<Role>(roles).contains(&role))
        .map(|(id, _)| id)
        .collect())
}

/// The people of these sites whose accounts are enabled (to tell them of something that
/// concerns their sites, such as a training session for them).
pub async fn people_of_sites(db: &Db, sites: &[SiteId]) -> Result<Vec<String>, sqlx::Error> {
    if sites.is_empty() {
        return Ok(vec![]);
    }
    let marks: Vec<String> = (1..=sites.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "SELECT id FROM users WHERE disabled = 0 AND site_id IN ({}) ORDER BY id",
        marks.join(", ")
    );
    let mut q = sqlx::query_scalar(&sql);
    for s in sites {
        q = q.bind(s.to_string());
    }
    q.fetch_all(db.pool()).await
}

pub async fn create_site(
    db: &Db,
    permit: &Permit<SiteCreate>,
    new: NewSite,
    now: i64,
) -> Result<Site, NetworkError> {
    let name = check_text("site name", &new.name)?;
    if new.parent.as_ref() != permit.site() {
        return Err(NetworkError::Invalid("permit is for another parent site".into()));
    }
    if let Some(p) = &new.parent
        && !site_exists(db, p).await?
    {
        return Err(NetworkError::Invalid(format!("parent site `{p}` does not exist")));
    }
    let r = sqlx::query(
        "INSERT INTO sites (id, name, tier, kind, parent_id, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(new.id.as_str())
    .bind(&name)
    .bind(new.tier.as_str())
    .bind(new.kind.as_str())
    .bind(new.parent.as_ref().map(|p| p.as_str().to_string()))
    .bind(now)
    .execute(db.pool())
    .await;
    match r {
        Err(e) if is_unique_violation(&e) => {
            Err(NetworkError::Exists(format!("site `{}`", new.id)))
        }
        Err(e) => Err(e.into()),
        Ok(_) => Ok(Site {
            id: new.id,
            name,
            tier: new.tier,
            kind: new.kind,
            parent: new.parent,
            created_at: rfc3339(now),
        }),
    }
}

/// The site and every site below it in the network tree.
pub async fn site_and_descendants(db: &Db, id: &SiteId) -> Result<HashSet<SiteId>, sqlx::Error> {
    let ids: Vec<String> = sqlx::query_scalar(
        "WITH RECURSIVE below(id) AS (\
           SELECT id FROM sites WHERE id = $1 \
           UNION SELECT s.id FROM sites s JOIN below b ON s.parent_id = b.id) \
         SELECT id FROM below",
    )
    .bind(id.as_str())
    .fetch_all(db.pool())
    .await?;
    Ok(ids.into_iter().filter_map(|s| s.parse().ok()).collect())
}

/// Is the site a root of the network tree?
pub async fn is_root_site(db: &Db, id: &SiteId) -> Result<bool, sqlx::Error> {
    let parent: Option<Option<String>> =
        sqlx::query_scalar("SELECT parent_id FROM sites WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(db.pool())
            .await?;
    Ok(matches!(parent, Some(None)))
}

// ---- users ----

/// The site a user belongs to, if the user exists. (Structural: used to decide access.)
pub async fn site_of_user(db: &Db, id: &UserId) -> Result<Option<SiteId>, sqlx::Error> {
    let s: Option<String> = sqlx::query_scalar("SELECT site_id FROM users WHERE id = $1")
        .bind(id.as_str())
        .fetch_optional(db.pool())
        .await?;
    Ok(s.and_then(|s| s.parse().ok()))
}

pub async fn list_users(db: &Db, permit: &Permit<UserList>) -> Result<Vec<User>, NetworkError> {
    let site = permit.site().ok_or(NetworkError::NotFound("site"))?;
    let rows =
        sqlx::query(&format!("SELECT {USER_COLS} FROM users WHERE site_id = $1 ORDER BY id"))
            .bind(site.as_str())
            .fetch_all(db.pool())
            .await?;
    Ok(rows.iter().map(user_from_row).collect::<Result<_, _>>()?)
}

pub async fn get_user(db: &Db, permit: &Permit<UserRead>) -> Result<User, NetworkError> {
    let id = permit.target().id.as_deref().ok_or(NetworkError::NotFound("user"))?;
    user_by_id(db, id).await?.ok_or(NetworkError::NotFound("user"))
}

/// The signed-in user's own record, as authentication found it.
pub(crate) async fn user_by_id(db: &Db, id: &str) -> Result<Option<User>, NetworkError> {
    let row = sqlx::query(&format!("SELECT {USER_COLS} FROM users WHERE id = $1"))
        .bind(id)
        .fetch_optional(db.pool())
        .await?;
    Ok(row.as_ref().map(user_from_row).transpose()?)
}

pub async fn create_user(
    db: &Db,
    permit: &Permit<UserCreate>,
    new: NewUser,
    password_hash: Option<String>,
    now: i64,
) -> Result<User, NetworkError> {
    let site = permit.site().ok_or(NetworkError::NotFound("site"))?.clone();
    let display_name = check_text("display name", &new.display_name)?;
    let roles = normalise_roles(new.roles)?;
    let mut specialties = new.specialties;
    specialties.sort();
    specialties.dedup();
    let r = sqlx::query(
        "INSERT INTO users (id, site_id, display_name, roles, specialties, password_hash, disabled, failed_logins, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, 0, 0, $7)",
    )
    .bind(new.id.as_str())
    .bind(site.as_str())
    .bind(&display_name)
    .bind(join_list(&roles))
    .bind(join_list(&specialties))
    .bind(password_hash.clone())
    .bind(now)
    .execute(db.pool())
    .await;
    match r {
        Err(e) if is_unique_violation(&e) => {
            Err(NetworkError::Exists(format!("user `{}`", new.id)))
        }
        Err(e) if is_foreign_key_violation(&e) => Err(NetworkError::NotFound("site")),
        Err(e) => Err(e.into()),
        Ok(_) => Ok(User {
            id: new.id,
            site,
            display_name,
            roles,
            specialties,
            disabled: false,
            has_password: password_hash.is_some(),
            created_at: rfc3339(now),
        }),
    }
}

/// Applies a patch (the password, if any, already hashed by the caller).
pub async fn update_user(
    db: &Db,
    permit: &Permit<UserUpdate>,
    patch: UserPatch,
    password_hash: Option<String>,
) -> Result<User, NetworkError> {
    let id = permit.target().id.clone().ok_or(NetworkError::NotFound("user"))?;
    let mut tx = db.pool().begin().await?;
    if let Some(name) = &patch.display_name {
        let name = check_text("display name", name)?;
        sqlx::query("UPDATE users SET display_name = $1 WHERE id = $2")
            .bind(name)
            .bind(&id)
            .execute(&mut *tx)
            .await?;
    }
    if let Some(roles) = patch.roles {
        let roles = normalise_roles(roles)?;
        sqlx::query("UPDATE users SET roles = $1 WHERE id = $2")
            .bind(join_list(&roles))
            .bind(&id)
            .execute(&mut *tx)
            .await?;
    }
    if let Some(mut specs) = patch.specialties {
        specs.sort();
        specs.dedup();
        sqlx::query("UPDATE users SET specialties = $1 WHERE id = $2")
            .bind(join_list(&specs))
            .bind(&id)
            .execute(&mut *tx)
            .await?;
    }
    if let Some(disabled) = patch.disabled {
        sqlx::query("UPDATE users SET disabled = $1 WHERE id = $2")
            .bind(disabled as i64)
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        if disabled {
            sqlx::query("DELETE FROM sessions WHERE user_id = $1")
                .bind(&id)
                .execute(&mut *tx)
                .await?;
        }
    }
    if let Some(hash) = password_hash {
        sqlx::query("UPDATE users SET password_hash = $1, failed_logins = 0, locked_until = NULL WHERE id = $2")
            .bind(hash)
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        // A new password ends every open session of that user.
        sqlx::query("DELETE FROM sessions WHERE user_id = $1").bind(&id).execute(&mut *tx).await?;
    }
    tx.commit().await?;
    user_by_id(db, &id).await?.ok_or(NetworkError::NotFound("user"))
}

// ---- devices ----

pub async fn list_devices(
    db: &Db,
    permit: &Permit<DeviceList>,
) -> Result<Vec<Device>, NetworkError> {
    let site = permit.site().ok_or(NetworkError::NotFound("site"))?;
    let rows = sqlx::query("SELECT * FROM devices WHERE site_id = $1 ORDER BY name, id")
        .bind(site.as_str())
        .fetch_all(db.pool())
        .await?;
    Ok(rows.iter().map(device_from_row).collect::<Result<_, _>>()?)
}

pub async fn create_device(
    db: &Db,
    permit: &Permit<DeviceCreate>,
    new: NewDevice,
    now: i64,
) -> Result<Device, NetworkError> {
    let site = permit.site().ok_or(NetworkError::NotFound("site"))?.clone();
    let name = check_text("device name", &new.name)?;
    let id = format!("dev_{}", crate::ids::random_id(10));
    let r = sqlx::query(
        "INSERT INTO devices (id, site_id, kind, name, ae_title, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&id)
    .bind(site.as_str())
    .bind(new.kind.as_str())
    .bind(&name)
    .bind(new.ae_title.as_ref().map(|a| a.as_str().to_string()))
    .bind(now)
    .execute(db.pool())
    .await;
    match r {
        Err(e) if is_unique_violation(&e) => Err(NetworkError::Exists(format!(
            "a device with AE title `{}`",
            new.ae_title.as_ref().map(|a| a.as_str()).unwrap_or("")
        ))),
        Err(e) if is_foreign_key_violation(&e) => Err(NetworkError::NotFound("site")),
        Err(e) => Err(e.into()),
        Ok(_) => Ok(Device {
            id,
            site,
            kind: new.kind,
            name,
            ae_title: new.ae_title,
            created_at: rfc3339(now),
        }),
    }
}

/// A registered device by id. (Structural: who a device token acts as.)
pub async fn device_by_id(db: &Db, id: &str) -> Result<Option<Device>, sqlx::Error> {
    let row = sqlx::query("SELECT * FROM devices WHERE id = $1")
        .bind(id)
        .fetch_optional(db.pool())
        .await?;
    row.as_ref().map(device_from_row).transpose()
}

/// The id of the device registered with an AE title.
pub async fn device_id_by_ae(db: &Db, ae_title: &str) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT id FROM devices WHERE ae_title = $1")
        .bind(ae_title)
        .fetch_optional(db.pool())
        .await
}

/// The site a device belongs to. (Structural: used to decide access.)
pub async fn site_of_device(db: &Db, id: &str) -> Result<Option<SiteId>, sqlx::Error> {
    let s: Option<String> = sqlx::query_scalar("SELECT site_id FROM devices WHERE id = $1")
        .bind(id)
        .fetch_optional(db.pool())
        .await?;
    Ok(s.and_then(|s| s.parse().ok()))
}

pub async fn delete_device(db: &Db, permit: &Permit<DeviceDelete>) -> Result<(), NetworkError> {
    let id = permit.target().id.as_deref().ok_or(NetworkError::NotFound("device"))?;
    let site = permit.site().ok_or(NetworkError::NotFound("device"))?;
    let r = sqlx::query("DELETE FROM devices WHERE id = $1 AND site_id = $2")
        .bind(id)
        .bind(site.as_str())
        .execute(db.pool())
        .await?;
    if r.rows_affected() == 0 {
        return Err(NetworkError::NotFound("device"));
    }
    Ok(())
}

/// Every registered DICOM AE title and the site of its device (the DIMSE association gate).
pub async fn ae_titles(db: &Db) -> Result<std::collections::HashMap<String, SiteId>, sqlx::Error> {
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT ae_title, site_id FROM devices WHERE ae_title IS NOT NULL")
            .fetch_all(db.pool())
            .await?;
    Ok(rows.into_iter().filter_map(|(ae, site)| Some((ae, site.parse().ok()?))).collect())
}

/// A person as the directory shows them to anyone signed in.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Person {
    pub id: String,
    pub display_name: String,
    pub site: String,
    pub site_name: String,
    pub roles: Vec<Role>,
    pub specialties: Vec<Specialty>,
}

/// The directory entries of `ids` (at most 200; unknown ids are left out).
pub async fn people(
    db: &Db,
    _: &Permit<PeopleDirectory>,
    ids: &[UserId],
) -> Result<Vec<Person>, NetworkError> {
    let ids = &ids[..ids.len().min(200)];
    if ids.is_empty() {
        return Ok(vec![]);
    }
    let marks: Vec<String> = (1..=ids.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "SELECT u.id AS id, u.display_name AS display_name, u.site_id AS site_id, s.name AS site_name, \
           u.roles AS roles, u.specialties AS specialties \
         FROM users u JOIN sites s ON s.id = u.site_id WHERE u.id IN ({}) ORDER BY u.id",
        marks.join(", ")
    );
    let mut q = sqlx::query(&sql);
    for id in ids {
        q = q.bind(id.as_str());
    }
    let rows = q.fetch_all(db.pool()).await?;
    rows.iter()
        .map(|r| {
            let roles: String = r.try_get("roles")?;
            let specialties: String = r.try_get("specialties")?;
            Ok(Person {
                id: r.try_get("id")?,
                display_name: r.try_get("display_name")?,
                site: r.try_get("site_id")?,
                site_name: r.try_get("site_name")?,
                roles: split_list(&roles),
                specialties: split_list(&specialties),
            })
        })
        .collect()
}
