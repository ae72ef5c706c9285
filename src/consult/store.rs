//! SQL for consults. A step is saved with a check that nobody changed the consult since it
//! was read (`updated_at` and `state` as read), in one transaction with its audit event, so
//! two specialists accepting at once cannot both win and no step goes unrecorded.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::*;
use crate::archive::store::share_study_on;
use crate::audit::{self, NewEvent};
use crate::auth::policy::{ConsultCreate, ConsultSearch, ConsultUpdate, Permit, StudyShare};
use crate::network::{Role, split_list};
use crate::storage::Db;
use crate::storage::sql::{parsed, parsed_opt};

const COLS: &str = "id, from_site, requested_by, specialty, specialist, urgency, summary, \
    scheduled_at, state, accepted_by, accepted_at, decline_reason, cancel_reason, escalated_at, \
    call_started_at, completed_at, ack_by, ack_at, ack_version, created_at, updated_at";

fn from_row(row: &AnyRow) -> Result<Consult, sqlx::Error> {
    let ack_by: Option<UserId> = parsed_opt(row, "ack_by")?;
    Ok(Consult {
        id: row.try_get("id")?,
        from_site: parsed(row, "from_site")?,
        requested_by: parsed(row, "requested_by")?,
        specialty: parsed(row, "specialty")?,
        specialist: parsed_opt(row, "specialist")?,
        urgency: parsed(row, "urgency")?,
        summary: row.try_get("summary")?,
        scheduled_at: row.try_get("scheduled_at")?,
        state: parsed(row, "state")?,
        accepted_by: parsed_opt(row, "accepted_by")?,
        accepted_at: row.try_get("accepted_at")?,
        decline_reason: row.try_get("decline_reason")?,
        cancel_reason: row.try_get("cancel_reason")?,
        escalated_at: row.try_get("escalated_at")?,
        call_started_at: row.try_get("call_started_at")?,
        completed_at: row.try_get("completed_at")?,
        ack: match ack_by {
            Some(by) => Some(Ack {
                by,
                at: row.try_get::<Option<i64>, _>("ack_at")?.unwrap_or(0),
                version: row.try_get::<Option<i64>, _>("ack_version")?.unwrap_or(0),
            }),
            None => None,
        },
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        studies: vec![],
        opinions: vec![],
        declined_by: vec![],
    })
}

/// Consults from their rows, with their studies, opinions and declines filled in: three
/// queries for the whole batch (a list of 200 consults is 4 round trips, not 601).
async fn complete(db: &Db, rows: &[AnyRow]) -> Result<Vec<Consult>, sqlx::Error> {
    let mut out = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
    if out.is_empty() {
        return Ok(out);
    }
    let at: std::collections::HashMap<String, usize> =
        out.iter().enumerate().map(|(i, c)| (c.id.clone(), i)).collect();
    let keys: Vec<String> = out.iter().map(|c| c.id.clone()).collect();
    let ids: Vec<String> = (1..=keys.len()).map(|i| format!("${i}")).collect();
    let ids = ids.join(", ");
    fn bind_ids<'q>(
        sql: &'q str,
        keys: &'q [String],
    ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
        keys.iter().fold(sqlx::query(sql), |q, id| q.bind(id.as_str()))
    }
    let studies = format!(
        "SELECT consult_id, study_uid FROM consult_studies WHERE consult_id IN ({ids}) ORDER BY study_uid"
    );
    for r in bind_ids(&studies, &keys).fetch_all(db.pool()).await? {
        let id: String = r.try_get("consult_id")?;
        out[at[&id]].studies.push(r.try_get("study_uid")?);
    }
    let opinions = format!(
        "SELECT consult_id, version, text, signed_by, signed_at FROM consult_opinions \
         WHERE consult_id IN ({ids}) ORDER BY version"
    );
    for r in bind_ids(&opinions, &keys).fetch_all(db.pool()).await? {
        let id: String = r.try_get("consult_id")?;
        out[at[&id]].opinions.push(Opinion {
            version: r.try_get("version")?,
            text: r.try_get("text")?,
            signed_by: parsed(&r, "signed_by")?,
            signed_at: r.try_get("signed_at")?,
        });
    }
    let declines = format!(
        "SELECT consult_id, user_id FROM consult_declines WHERE consult_id IN ({ids}) ORDER BY at"
    );
    for r in bind_ids(&declines, &keys).fetch_all(db.pool()).await? {
        let id: String = r.try_get("consult_id")?;
        out[at[&id]].declined_by.push(parsed(&r, "user_id")?);
    }
    Ok(out)
}

/// Loads a consult to decide about it (structural, like `archive::store::study_sites`): the
/// caller obtains a permit before any of it leaves the server.
pub(crate) async fn load(db: &Db, id: &str) -> Result<Option<Consult>, sqlx::Error> {
    let row = sqlx::query(&format!("SELECT {COLS} FROM consults WHERE id = $1"))
        .bind(id)
        .fetch_optional(db.pool())
        .await?;
    match row {
        Some(r) => Ok(complete(db, &[r]).await?.pop()),
        None => Ok(None),
    }
}

/// The active specialists of the network with any of `of` (all of them for None). Only
/// open requests need them (to know who may answer), so callers ask for those specialties.
pub async fn specialists(
    db: &Db,
    of: Option<&[Specialty]>,
) -> Result<Vec<Specialist>, sqlx::Error> {
    let mut sql = String::from(
        "SELECT id, display_name, site_id, roles, specialties FROM users \
         WHERE disabled = 0 AND (',' || roles || ',') LIKE '%,specialist,%'",
    );
    if let Some(of) = of {
        if of.is_empty() {
            return Ok(vec![]);
        }
        let any: Vec<String> =
            (1..=of.len()).map(|i| format!("(',' || specialties || ',') LIKE ${i}")).collect();
        sql.push_str(&format!(" AND ({})", any.join(" OR ")));
    }
    sql.push_str(" ORDER BY id");
    let mut q = sqlx::query(&sql);
    for s in of.unwrap_or_default() {
        q = q.bind(format!("%,{s},%"));
    }
    let rows = q.fetch_all(db.pool()).await?;
    let mut out = vec![];
    for r in rows {
        let roles: Vec<Role> = split_list(&r.try_get::<String, _>("roles")?);
        if !roles.contains(&Role::Specialist) {
            continue;
        }
        out.push(Specialist {
            id: parsed(&r, "id")?,
            display_name: r.try_get("display_name")?,
            site: parsed(&r, "site_id")?,
            specialties: split_list(&r.try_get::<String, _>("specialties")?),
        });
    }
    Ok(out)
}

/// A study shared with a site because of a consult, with its audit event.
pub struct Share {
    study: String,
    site: SiteId,
    event: NewEvent,
}

impl Share {
    pub fn new(permit: &Permit<StudyShare>, site: SiteId, event: NewEvent) -> Share {
        Share { study: permit.target().id.clone().unwrap_or_default(), site, event }
    }
}

async fn put_shares(tx: &mut sqlx::AnyConnection, shares: &[Share]) -> Result<(), sqlx::Error> {
    for s in shares {
        let by = s.event.actor.as_deref().unwrap_or("ferry");
        share_study_on(&mut *tx, &s.study, &s.site, by, s.event.at).await?;
        audit::record_on(&mut *tx, &s.event).await?;
    }
    Ok(())
}

/// Stores a new consult and its studies with its audit event, all or nothing.
pub async fn create(
    db: &Db,
    _: &Permit<ConsultCreate>,
    c: &Consult,
    event: &NewEvent,
) -> Result<(), sqlx::Error> {
    let mut tx = db.pool().begin().await?;
    sqlx::query(
        "INSERT INTO consults (id, from_site, requested_by, specialty, specialist, urgency, summary, scheduled_at, state, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(&c.id)
    .bind(c.from_site.as_str())
    .bind(c.requested_by.as_str())
    .bind(c.specialty.as_str())
    .bind(c.specialist.as_ref().map(|s| s.to_string()))
    .bind(c.urgency.as_str())
    .bind(&c.summary)
    .bind(c.scheduled_at)
    .bind(c.state.as_str())
    .bind(c.created_at)
    .bind(c.updated_at)
    .execute(&mut *tx)
    .await?;
    for s in &c.studies {
        sqlx::query("INSERT INTO consult_studies (consult_id, study_uid) VALUES ($1, $2)")
            .bind(&c.id)
            .bind(s)
            .execute(&mut *tx)
            .await?;
    }
    audit::record_on(&mut *tx, event).await?;
    tx.commit().await
}

/// Saves the change a step (or a timer) made to `c`, which was read as `was`; false when
/// someone else changed it in between (nothing is saved then).
pub async fn save(
    db: &Db,
    _: &Permit<ConsultUpdate>,
    was: &Consult,
    c: &Consult,
    event: &NewEvent,
    shares: &[Share],
) -> Result<bool, sqlx::Error> {
    let mut tx = db.pool().begin().await?;
    let updated = sqlx::query(
        "UPDATE consults SET state = $1, accepted_by = $2, accepted_at = $3, decline_reason = $4, \
         cancel_reason = $5, escalated_at = $6, call_started_at = $7, completed_at = $8, \
         ack_by = $9, ack_at = $10, ack_version = $11, updated_at = $12 \
         WHERE id = $13 AND state = $14 AND updated_at = $15",
    )
    .bind(c.state.as_str())
    .bind(c.accepted_by.as_ref().map(|u| u.to_string()))
    .bind(c.accepted_at)
    .bind(c.decline_reason.clone())
    .bind(c.cancel_reason.clone())
    .bind(c.escalated_at)
    .bind(c.call_started_at)
    .bind(c.completed_at)
    .bind(c.ack.as_ref().map(|a| a.by.to_string()))
    .bind(c.ack.as_ref().map(|a| a.at))
    .bind(c.ack.as_ref().map(|a| a.version))
    .bind(c.updated_at)
    .bind(&c.id)
    .bind(was.state.as_str())
    .bind(was.updated_at)
    .execute(&mut *tx)
    .await?;
    if updated.rows_affected() != 1 {
        return Ok(false);
    }
    for o in c.opinions.iter().skip(was.opinions.len()) {
        sqlx::query(
            "INSERT INTO consult_opinions (consult_id, version, text, signed_by, signed_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&c.id)
        .bind(o.version)
        .bind(&o.text)
        .bind(o.signed_by.as_str())
        .bind(o.signed_at)
        .execute(&mut *tx)
        .await?;
    }
    for u in c.declined_by.iter().skip(was.declined_by.len()) {
        let reason = c.decline_reason.clone();
        sqlx::query(
            "INSERT INTO consult_declines (consult_id, user_id, reason, at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&c.id)
        .bind(u.as_str())
        .bind(reason.unwrap_or_default())
        .bind(c.updated_at)
        .execute(&mut *tx)
        .await?;
    }
    put_shares(&mut tx, shares).await?;
    audit::record_on(&mut *tx, event).await?;
    tx.commit().await?;
    Ok(true)
}

/// Who may answer the open ones among `consults`: the specialists of their specialties.
pub async fn answerers_of(db: &Db, consults: &[&Consult]) -> Result<Vec<Specialist>, sqlx::Error> {
    let mut of: Vec<Specialty> =
        consults.iter().filter(|c| c.state.is_open()).map(|c| c.specialty.clone()).collect();
    of.sort();
    of.dedup();
    specialists(db, Some(&of)).await
}

/// Consults that may concern `actor`: their site's, those they accepted, and open requests of
/// their specialties (the caller keeps only what the core says they may read).
pub async fn candidates(
    db: &Db,
    _: &Permit<ConsultSearch>,
    actor: &crate::auth::policy::ActorView,
    specialties: &[Specialty],
    limit: i64,
) -> Result<Vec<Consult>, sqlx::Error> {
    let mut sql = format!(
        "SELECT {COLS} FROM consults WHERE from_site = $1 OR accepted_by = $2 OR specialist = $2"
    );
    if !specialties.is_empty() && actor.has_role(Role::Specialist) {
        let list: Vec<String> = (0..specialties.len()).map(|i| format!("${}", i + 4)).collect();
        sql.push_str(&format!(" OR (state = 'requested' AND specialty IN ({}))", list.join(", ")));
    }
    // Open requests first, so a long history does not push one out; then the newest.
    sql.push_str(
        " ORDER BY CASE WHEN state = 'requested' THEN 0 ELSE 1 END, created_at DESC LIMIT $3",
    );
    let mut q = sqlx::query(&sql).bind(actor.site.as_str()).bind(actor.user.as_str()).bind(limit);
    if actor.has_role(Role::Specialist) {
        for s in specialties {
            q = q.bind(s.as_str());
        }
    }
    complete(db, &q.fetch_all(db.pool()).await?).await
}

/// Consults in the given states (timers: open requests; start-up: rooms to open).
pub async fn in_states(db: &Db, states: &[State]) -> Result<Vec<Consult>, sqlx::Error> {
    let list: Vec<String> = states.iter().map(|s| format!("'{}'", s.as_str())).collect();
    let rows = sqlx::query(&format!(
        "SELECT {COLS} FROM consults WHERE state IN ({}) ORDER BY created_at",
        list.join(", ")
    ))
    .fetch_all(db.pool())
    .await?;
    // In batches, to stay far below the databases' limits on bound parameters.
    let mut out = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(500) {
        out.extend(complete(db, chunk).await?);
    }
    Ok(out)
}
