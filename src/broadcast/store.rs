//! Training sessions in the database (`broadcasts`, `broadcast_audience`).

use std::collections::{HashMap, HashSet};

use sqlx::Row;
use sqlx::any::AnyRow;

use super::*;
use crate::audit::{self, NewEvent};
use crate::auth::policy::{
    BroadcastAttendance, BroadcastCreate, BroadcastRead, BroadcastSearch, Permit,
};
use crate::network::store::site_and_descendants;
use crate::storage::Db;
use crate::storage::sql::parsed;

/// Saves a new session with its audience and its audit event, in one transaction.
pub async fn create(
    db: &Db,
    _: &Permit<BroadcastCreate>,
    b: &Broadcast,
    event: &NewEvent,
) -> Result<(), sqlx::Error> {
    let mut tx = db.pool().begin().await?;
    sqlx::query(
        "INSERT INTO broadcasts (id, site_id, trainer_id, title, description, starts_at, minutes, state, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&b.id)
    .bind(b.site.as_str())
    .bind(b.trainer.as_str())
    .bind(&b.title)
    .bind(&b.description)
    .bind(b.starts_at)
    .bind(b.minutes)
    .bind(b.state.as_str())
    .bind(b.created_at)
    .execute(&mut *tx)
    .await?;
    for e in &b.audience {
        sqlx::query(
            "INSERT INTO broadcast_audience (broadcast_id, site_id, subtree) VALUES ($1, $2, $3)",
        )
        .bind(&b.id)
        .bind(e.site.as_str())
        .bind(e.subtree as i64)
        .execute(&mut *tx)
        .await?;
    }
    audit::record_on(&mut *tx, event).await?;
    tx.commit().await
}

fn row_to(r: &AnyRow) -> Result<Broadcast, sqlx::Error> {
    let state: String = r.try_get("state")?;
    Ok(Broadcast {
        id: r.try_get("id")?,
        site: parsed(r, "site_id")?,
        trainer: parsed(r, "trainer_id")?,
        title: r.try_get("title")?,
        description: r.try_get("description")?,
        starts_at: r.try_get("starts_at")?,
        minutes: r.try_get("minutes")?,
        state: State::parse(&state)
            .ok_or_else(|| sqlx::Error::Decode("bad value in column state".into()))?,
        audience: vec![],
        created_at: r.try_get("created_at")?,
    })
}

const COLUMNS: &str =
    "id, site_id, trainer_id, title, description, starts_at, minutes, state, created_at";

/// Fills in the audience of each session.
async fn with_audience(db: &Db, mut found: Vec<Broadcast>) -> Result<Vec<Broadcast>, sqlx::Error> {
    if found.is_empty() {
        return Ok(found);
    }
    let marks: Vec<String> = (1..=found.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "SELECT broadcast_id, site_id, subtree FROM broadcast_audience WHERE broadcast_id IN ({}) \
         ORDER BY site_id",
        marks.join(", ")
    );
    let mut q = sqlx::query(&sql);
    for b in &found {
        q = q.bind(b.id.clone());
    }
    let mut by: HashMap<String, Vec<AudienceEntry>> = HashMap::new();
    for r in q.fetch_all(db.pool()).await? {
        let subtree: i64 = r.try_get("subtree")?;
        by.entry(r.try_get("broadcast_id")?)
            .or_default()
            .push(AudienceEntry { site: parsed(&r, "site_id")?, subtree: subtree != 0 });
    }
    for b in &mut found {
        b.audience = by.remove(&b.id).unwrap_or_default();
    }
    Ok(found)
}

/// One session, with its audience.
pub async fn load(db: &Db, id: &str) -> Result<Option<Broadcast>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM broadcasts WHERE id = $1");
    let Some(r) = sqlx::query(&sql).bind(id).fetch_optional(db.pool()).await? else {
        return Ok(None);
    };
    Ok(with_audience(db, vec![row_to(&r)?]).await?.pop())
}

/// Sessions that end at `from` or later (or are live), soonest first, `limit` of them from
/// `offset` on: the caller keeps those its actor may see.
pub async fn upcoming(
    db: &Db,
    _: &Permit<BroadcastSearch>,
    from: i64,
    limit: i64,
    offset: i64,
) -> Result<Vec<Broadcast>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM broadcasts \
         WHERE state = 'live' \
            OR (state = 'scheduled' AND starts_at + minutes * 60000 >= $1) \
         ORDER BY starts_at, id LIMIT $2 OFFSET $3"
    );
    let q = sqlx::query(&sql).bind(from).bind(limit).bind(offset);
    let rows = q.fetch_all(db.pool()).await?;
    let found = rows.iter().map(row_to).collect::<Result<Vec<_>, _>>()?;
    with_audience(db, found).await
}

/// Marks a scheduled session live (its presenter connected); false when it was not scheduled.
pub async fn set_live(db: &Db, id: &str, now: i64) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE broadcasts SET state = 'live', live_at = $1 WHERE id = $2 AND state = 'scheduled'",
    )
    .bind(now)
    .bind(id)
    .execute(db.pool())
    .await?;
    Ok(r.rows_affected() == 1)
}

/// The sites that see `b` beyond its own (subtrees expanded), looking each subtree up once.
pub async fn audience_of(
    db: &Db,
    b: &Broadcast,
    cache: &mut HashMap<SiteId, HashSet<SiteId>>,
) -> Result<Vec<SiteId>, sqlx::Error> {
    for e in b.audience.iter().filter(|e| e.subtree) {
        if !cache.contains_key(&e.site) {
            let below = site_and_descendants(db, &e.site).await?;
            cache.insert(e.site.clone(), below);
        }
    }
    Ok(audience_sites(b, |s| cache.get(s).cloned().unwrap_or_default()))
}

/// A media connection to a session: who, from which site, as what.
pub struct Joined<'a> {
    pub broadcast: &'a str,
    pub peer: &'a str,
    pub user: &'a UserId,
    pub site: &'a SiteId,
    pub presenter: bool,
    pub at: i64,
}

/// Records a connection as it is made (the session's read permit is the decision).
pub async fn attendance_join(
    db: &Db,
    _: &Permit<BroadcastRead>,
    j: &Joined<'_>,
) -> Result<bool, sqlx::Error> {
    let mut tx = db.pool().begin().await?;
    // Under the session's lock, and only while it is not over: a connection that raced past
    // its ending is refused here, and one filed first is closed by the ending (`set_ended`).
    if !lock_session(&mut tx, j.broadcast, true).await? {
        return Ok(false);
    }
    sqlx::query(
        "INSERT INTO broadcast_attendance (broadcast_id, peer, user_id, site_id, role, joined_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(j.broadcast)
    .bind(j.peer)
    .bind(j.user.as_str())
    .bind(j.site.as_str())
    .bind(if j.presenter { "presenter" } else { "viewer" })
    .bind(j.at)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// Takes session `id`'s row lock for the rest of `tx` by writing the row to no effect (a row
/// lock on PostgreSQL, where a waiter re-reads the row once the holder commits; the write
/// lock on SQLite): changes to the session and what hangs off it queue on it. With
/// `open_only`, a session that is over is not locked: false.
async fn lock_session(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    id: &str,
    open_only: bool,
) -> Result<bool, sqlx::Error> {
    let sql = if open_only {
        "UPDATE broadcasts SET state = state WHERE id = $1 AND state IN ('scheduled', 'live')"
    } else {
        "UPDATE broadcasts SET state = state WHERE id = $1"
    };
    let n = sqlx::query(sql).bind(id.to_string()).execute(&mut **tx).await?.rows_affected();
    Ok(n == 1)
}

/// Saves what the media plane saw of a connection (`attendance::Update`).
pub async fn attendance_update(
    db: &Db,
    peer: &str,
    update: &super::attendance::Update,
) -> Result<(), sqlx::Error> {
    use super::attendance::Update;
    let q = match update {
        Update::FirstMedia { room, at, .. } => sqlx::query(
            "UPDATE broadcast_attendance SET first_media_at = $1 \
             WHERE broadcast_id = $2 AND peer = $3 AND first_media_at IS NULL",
        )
        .bind(*at)
        .bind(room.clone()),
        Update::Watched { room, ms, .. } => sqlx::query(
            "UPDATE broadcast_attendance SET watched_ms = $1 WHERE broadcast_id = $2 AND peer = $3",
        )
        .bind(*ms)
        .bind(room.clone()),
        Update::Left { room, at, ms, .. } => sqlx::query(
            "UPDATE broadcast_attendance SET left_at = $1, watched_ms = $2 \
             WHERE broadcast_id = $3 AND peer = $4",
        )
        .bind(*at)
        .bind(*ms)
        .bind(room.clone()),
    };
    q.bind(peer.to_string()).execute(db.pool()).await?;
    Ok(())
}

/// Marks every connection still open as left at `at` (the server stops, or starts after a
/// crash: nobody is connected to a plane that is not running).
pub async fn attendance_close_all(db: &Db, at: i64) -> Result<u64, sqlx::Error> {
    let r = sqlx::query("UPDATE broadcast_attendance SET left_at = $1 WHERE left_at IS NULL")
        .bind(at)
        .execute(db.pool())
        .await?;
    Ok(r.rows_affected())
}

/// One connection's attendance.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Attended {
    /// The media connection's key (`attendance::peer_key`).
    pub peer: String,
    pub user: String,
    pub site: String,
    pub role: String,
    pub joined_at: i64,
    pub first_media_at: Option<i64>,
    pub left_at: Option<i64>,
    pub watched_ms: i64,
}

/// A session's attendance, in order of joining.
pub async fn attendance(
    db: &Db,
    permit: &Permit<BroadcastAttendance>,
) -> Result<Vec<Attended>, sqlx::Error> {
    let id = permit.target().id.clone().unwrap_or_default();
    let rows = sqlx::query(
        "SELECT peer, user_id, site_id, role, joined_at, first_media_at, left_at, watched_ms \
         FROM broadcast_attendance WHERE broadcast_id = $1 ORDER BY joined_at, peer",
    )
    .bind(id)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Attended {
                peer: r.try_get("peer")?,
                user: r.try_get("user_id")?,
                site: r.try_get("site_id")?,
                role: r.try_get("role")?,
                joined_at: r.try_get("joined_at")?,
                first_media_at: r.try_get("first_media_at")?,
                left_at: r.try_get("left_at")?,
                watched_ms: r.try_get("watched_ms")?,
            })
        })
        .collect()
}

/// A recording of a session's presenter.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Recording {
    pub id: String,
    pub broadcast_id: String,
    #[serde(skip)]
    pub object_key: String,
    pub bytes: i64,
    pub duration_ms: i64,
    pub video_frames: i64,
    pub created_at: i64,
}

/// Files a recording (its bytes are in the object store already) with its audit event.
pub async fn add_recording(db: &Db, r: &Recording, event: &NewEvent) -> Result<(), sqlx::Error> {
    let mut tx = db.pool().begin().await?;
    sqlx::query(
        "INSERT INTO broadcast_recordings (id, broadcast_id, object_key, bytes, duration_ms, video_frames, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&r.id)
    .bind(&r.broadcast_id)
    .bind(&r.object_key)
    .bind(r.bytes)
    .bind(r.duration_ms)
    .bind(r.video_frames)
    .bind(r.created_at)
    .execute(&mut *tx)
    .await?;
    audit::record_on(&mut *tx, event).await?;
    tx.commit().await
}

/// A session's recordings, oldest first (the session's read permit is the decision).
pub async fn recordings(
    db: &Db,
    permit: &Permit<BroadcastRead>,
) -> Result<Vec<Recording>, sqlx::Error> {
    let id = permit.target().id.clone().unwrap_or_default();
    let rows = sqlx::query(
        "SELECT id, broadcast_id, object_key, bytes, duration_ms, video_frames, created_at \
         FROM broadcast_recordings WHERE broadcast_id = $1 ORDER BY created_at, id",
    )
    .bind(id)
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(recording_of).collect()
}

fn recording_of(r: &AnyRow) -> Result<Recording, sqlx::Error> {
    Ok(Recording {
        id: r.try_get("id")?,
        broadcast_id: r.try_get("broadcast_id")?,
        object_key: r.try_get("object_key")?,
        bytes: r.try_get("bytes")?,
        duration_ms: r.try_get("duration_ms")?,
        video_frames: r.try_get("video_frames")?,
        created_at: r.try_get("created_at")?,
    })
}

/// Runs one statement and the step's audit event in one transaction; the rows it changed.
async fn with_event<'q>(
    db: &Db,
    q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    event: &NewEvent,
) -> Result<u64, sqlx::Error> {
    run_with_event(db, q, event, true).await
}

/// Runs `q` and, when it changed rows (or `always`), records `event` in the same transaction.
async fn run_with_event<'q>(
    db: &Db,
    q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    event: &NewEvent,
    always: bool,
) -> Result<u64, sqlx::Error> {
    let mut tx = db.pool().begin().await?;
    let n = q.execute(&mut *tx).await?.rows_affected();
    if always || n > 0 {
        audit::record_on(&mut *tx, event).await?;
    }
    tx.commit().await?;
    Ok(n)
}

/// Questions `user` has waiting in the session (the flood guard counts these; two asks at
/// once may pass it by one, which is harmless).
pub async fn open_questions_of(
    db: &Db,
    permit: &Permit<BroadcastRead>,
    user: &UserId,
) -> Result<i64, sqlx::Error> {
    let id = permit.target().id.clone().unwrap_or_default();
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM broadcast_questions \
         WHERE broadcast_id = $1 AND user_id = $2 AND answered_at IS NULL",
    )
    .bind(id)
    .bind(user.as_str())
    .fetch_one(db.pool())
    .await
}

/// Files a question with its audit event.
pub async fn ask(
    db: &Db,
    _: &Permit<BroadcastRead>,
    q: &super::questions::Question,
    event: &NewEvent,
) -> Result<(), sqlx::Error> {
    let insert = sqlx::query(
        "INSERT INTO broadcast_questions (id, broadcast_id, user_id, site_id, body, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(q.id.clone())
    .bind(q.broadcast.clone())
    .bind(q.author.to_string())
    .bind(q.site.to_string())
    .bind(q.text.clone())
    .bind(q.created_at);
    with_event(db, insert, event).await.map(|_| ())
}

const QUESTION_COLUMNS: &str = "q.id, q.broadcast_id, q.user_id, q.site_id, q.body, q.created_at, q.answered_at, \
     (SELECT COUNT(*) FROM broadcast_votes v WHERE v.question_id = q.id) AS votes, \
     (SELECT COUNT(*) FROM broadcast_votes v WHERE v.question_id = q.id AND v.user_id = $2) AS mine";

fn question_row(r: &AnyRow) -> Result<super::questions::Question, sqlx::Error> {
    let mine: i64 = r.try_get("mine")?;
    Ok(super::questions::Question {
        id: r.try_get("id")?,
        broadcast: r.try_get("broadcast_id")?,
        author: parsed(r, "user_id")?,
        site: parsed(r, "site_id")?,
        text: r.try_get("body")?,
        created_at: r.try_get("created_at")?,
        answered_at: r.try_get("answered_at")?,
        votes: r.try_get("votes")?,
        voted: mine > 0,
    })
}

/// The session's questions in the order people see them, with `me`'s votes marked.
pub async fn questions(
    db: &Db,
    permit: &Permit<BroadcastRead>,
    me: &UserId,
) -> Result<Vec<super::questions::Question>, sqlx::Error> {
    let id = permit.target().id.clone().unwrap_or_default();
    let sql =
        format!("SELECT {QUESTION_COLUMNS} FROM broadcast_questions q WHERE q.broadcast_id = $1");
    let rows = sqlx::query(&sql).bind(id).bind(me.as_str()).fetch_all(db.pool()).await?;
    let mut list = rows.iter().map(question_row).collect::<Result<Vec<_>, _>>()?;
    super::questions::order(&mut list);
    Ok(list)
}

/// One question of the session, with `me`'s vote marked.
pub async fn question(
    db: &Db,
    permit: &Permit<BroadcastRead>,
    question: &str,
    me: &UserId,
) -> Result<Option<super::questions::Question>, sqlx::Error> {
    let id = permit.target().id.clone().unwrap_or_default();
    let sql = format!(
        "SELECT {QUESTION_COLUMNS} FROM broadcast_questions q \
         WHERE q.broadcast_id = $1 AND q.id = $3"
    );
    let row = sqlx::query(&sql)
        .bind(id)
        .bind(me.as_str())
        .bind(question)
        .fetch_optional(db.pool())
        .await?;
    row.as_ref().map(question_row).transpose()
}

/// `user` up-votes a question (`up`), or takes the vote back; either twice is a no-op.
pub async fn vote(
    db: &Db,
    _: &Permit<BroadcastRead>,
    question: &str,
    user: &UserId,
    up: bool,
    event: &NewEvent,
) -> Result<(), sqlx::Error> {
    let q = if up {
        sqlx::query(
            "INSERT INTO broadcast_votes (question_id, user_id) VALUES ($1, $2) \
             ON CONFLICT (question_id, user_id) DO NOTHING",
        )
    } else {
        sqlx::query("DELETE FROM broadcast_votes WHERE question_id = $1 AND user_id = $2")
    };
    with_event(db, q.bind(question.to_string()).bind(user.to_string()), event).await.map(|_| ())
}

/// Marks a question answered at `at` (or waiting again with `None`).
pub async fn mark_answered(
    db: &Db,
    permit: &Permit<BroadcastRead>,
    question: &str,
    at: Option<i64>,
    event: &NewEvent,
) -> Result<(), sqlx::Error> {
    let id = permit.target().id.clone().unwrap_or_default();
    let q = sqlx::query(
        "UPDATE broadcast_questions SET answered_at = $1 WHERE id = $2 AND broadcast_id = $3",
    )
    .bind(at)
    .bind(question.to_string())
    .bind(id);
    with_event(db, q, event).await.map(|_| ())
}

/// Raises `user`'s hand in the session (kept at its first raising) or lowers it.
pub async fn set_hand(
    db: &Db,
    permit: &Permit<BroadcastRead>,
    hand: &super::questions::Hand,
    raised: bool,
    event: &NewEvent,
) -> Result<(), sqlx::Error> {
    let id = permit.target().id.clone().unwrap_or_default();
    let q = if raised {
        sqlx::query(
            "INSERT INTO broadcast_hands (broadcast_id, user_id, site_id, raised_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (broadcast_id, user_id) DO NOTHING",
        )
        .bind(id)
        .bind(hand.user.to_string())
        .bind(hand.site.to_string())
        .bind(hand.raised_at)
    } else {
        sqlx::query("DELETE FROM broadcast_hands WHERE broadcast_id = $1 AND user_id = $2")
            .bind(id)
            .bind(hand.user.to_string())
    };
    with_event(db, q, event).await.map(|_| ())
}

/// Hands raised in the session, first raised first.
pub async fn hands(
    db: &Db,
    permit: &Permit<BroadcastRead>,
) -> Result<Vec<super::questions::Hand>, sqlx::Error> {
    let id = permit.target().id.clone().unwrap_or_default();
    let rows = sqlx::query(
        "SELECT user_id, site_id, raised_at FROM broadcast_hands WHERE broadcast_id = $1 \
         ORDER BY raised_at, user_id",
    )
    .bind(id)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(super::questions::Hand {
                user: parsed(r, "user_id")?,
                site: parsed(r, "site_id")?,
                raised_at: r.try_get("raised_at")?,
            })
        })
        .collect()
}

/// People connected to the session's media now (to tell them of new questions).
pub async fn connected_people(db: &Db, broadcast: &str) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT DISTINCT user_id FROM broadcast_attendance \
         WHERE broadcast_id = $1 AND left_at IS NULL",
    )
    .bind(broadcast)
    .fetch_all(db.pool())
    .await
}

/// A session's material: a PDF its trainer uploaded, kept in the object store.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Material {
    pub id: String,
    pub broadcast_id: String,
    /// What the trainer called the file: shown to the audience, never logged.
    pub name: String,
    #[serde(skip)]
    pub object_key: String,
    pub bytes: i64,
    pub sha256: String,
    pub uploaded_by: String,
    pub created_at: i64,
}

/// Saves a material and its audit event in one transaction.
pub async fn add_material(
    db: &Db,
    _: &Permit<BroadcastRead>,
    m: &Material,
    max: i64,
    event: &NewEvent,
) -> Result<bool, sqlx::Error> {
    let mut tx = db.pool().begin().await?;
    // Two uploads at once queue on the session's lock: the second counts the first.
    lock_session(&mut tx, &m.broadcast_id, false).await?;
    let n: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM broadcast_materials WHERE broadcast_id = $1")
            .bind(&m.broadcast_id)
            .fetch_one(&mut *tx)
            .await?;
    if n >= max {
        return Ok(false);
    }
    sqlx::query(
        "INSERT INTO broadcast_materials \
         (id, broadcast_id, name, object_key, bytes, sha256, uploaded_by, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&m.id)
    .bind(&m.broadcast_id)
    .bind(&m.name)
    .bind(&m.object_key)
    .bind(m.bytes)
    .bind(&m.sha256)
    .bind(&m.uploaded_by)
    .bind(m.created_at)
    .execute(&mut *tx)
    .await?;
    audit::record_on(&mut *tx, event).await?;
    tx.commit().await?;
    Ok(true)
}

/// A session's materials, oldest first (the session's read permit is the decision).
pub async fn materials(
    db: &Db,
    permit: &Permit<BroadcastRead>,
) -> Result<Vec<Material>, sqlx::Error> {
    let id = permit.target().id.clone().unwrap_or_default();
    let rows = sqlx::query(
        "SELECT id, broadcast_id, name, object_key, bytes, sha256, uploaded_by, created_at \
         FROM broadcast_materials WHERE broadcast_id = $1 ORDER BY created_at, id",
    )
    .bind(id)
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(material_of).collect()
}

fn material_of(r: &AnyRow) -> Result<Material, sqlx::Error> {
    Ok(Material {
        id: r.try_get("id")?,
        broadcast_id: r.try_get("broadcast_id")?,
        name: r.try_get("name")?,
        object_key: r.try_get("object_key")?,
        bytes: r.try_get("bytes")?,
        sha256: r.try_get("sha256")?,
        uploaded_by: r.try_get("uploaded_by")?,
        created_at: r.try_get("created_at")?,
    })
}

/// Removes a material's row with its audit event; whether there was one.
pub async fn remove_material(
    db: &Db,
    permit: &Permit<BroadcastRead>,
    material: &str,
    event: &NewEvent,
) -> Result<bool, sqlx::Error> {
    let id = permit.target().id.clone().unwrap_or_default();
    let q = sqlx::query("DELETE FROM broadcast_materials WHERE id = $1 AND broadcast_id = $2")
        .bind(material.to_string())
        .bind(id);
    Ok(with_event_if_changed(db, q, event).await? == 1)
}

/// Ends a live or scheduled session (its trainer said so), with the audit event; false when
/// it was over already. Every attendance still open closes at `now` with it (the media
/// plane's own leave, coming after, writes the exact time and minutes watched): a
/// connection filed just before the ending cannot stay open after it.
pub async fn set_ended(db: &Db, id: &str, now: i64, event: &NewEvent) -> Result<bool, sqlx::Error> {
    let mut tx = db.pool().begin().await?;
    let n = sqlx::query(
        "UPDATE broadcasts SET state = 'ended', ended_at = $1 \
         WHERE id = $2 AND state IN ('scheduled', 'live')",
    )
    .bind(now)
    .bind(id.to_string())
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if n == 0 {
        return Ok(false);
    }
    sqlx::query(
        "UPDATE broadcast_attendance SET left_at = $1 WHERE broadcast_id = $2 AND left_at IS NULL",
    )
    .bind(now)
    .bind(id.to_string())
    .execute(&mut *tx)
    .await?;
    audit::record_on(&mut *tx, event).await?;
    tx.commit().await?;
    Ok(true)
}

/// Runs one statement, and records the step's audit event with it only if it changed a row
/// (of two requests at once, the one that did the change is recorded); the rows it changed.
async fn with_event_if_changed<'q>(
    db: &Db,
    q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    event: &NewEvent,
) -> Result<u64, sqlx::Error> {
    run_with_event(db, q, event, false).await
}

/// Sessions over by `now` (ended, or still scheduled past their end: nobody presented), the
/// most recent first, `limit` of them from `offset` on: the training library. A live session
/// is not over, even past its scheduled end (it is among the upcoming ones until its trainer
/// ends it). The caller keeps those its actor may see.
pub async fn past(
    db: &Db,
    _: &Permit<BroadcastSearch>,
    now: i64,
    limit: i64,
    offset: i64,
) -> Result<Vec<Broadcast>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM broadcasts \
         WHERE state = 'ended' OR (state = 'scheduled' AND starts_at + minutes * 60000 < $1) \
         ORDER BY starts_at DESC, id LIMIT $2 OFFSET $3"
    );
    let q = sqlx::query(&sql).bind(now).bind(limit).bind(offset);
    let rows = q.fetch_all(db.pool()).await?;
    let found = rows.iter().map(row_to).collect::<Result<Vec<_>, _>>()?;
    with_audience(db, found).await
}

/// The recordings and materials of the sessions `ids` (the library, which the caller has
/// filtered to the sessions its actor may see), oldest first.
pub async fn library_files(
    db: &Db,
    _: &Permit<BroadcastSearch>,
    ids: &[String],
) -> Result<(Vec<Recording>, Vec<Material>), sqlx::Error> {
    if ids.is_empty() {
        return Ok((vec![], vec![]));
    }
    let marks: Vec<String> = (1..=ids.len()).map(|i| format!("${i}")).collect();
    let marks = marks.join(", ");
    let sql = format!(
        "SELECT id, broadcast_id, object_key, bytes, duration_ms, video_frames, created_at \
         FROM broadcast_recordings WHERE broadcast_id IN ({marks}) ORDER BY created_at, id"
    );
    let mut q = sqlx::query(&sql);
    for id in ids {
        q = q.bind(id);
    }
    let recordings =
        q.fetch_all(db.pool()).await?.iter().map(recording_of).collect::<Result<Vec<_>, _>>()?;
    let sql = format!(
        "SELECT id, broadcast_id, name, object_key, bytes, sha256, uploaded_by, created_at \
         FROM broadcast_materials WHERE broadcast_id IN ({marks}) ORDER BY created_at, id"
    );
    let mut q = sqlx::query(&sql);
    for id in ids {
        q = q.bind(id);
    }
    let materials = q
        .fetch_all(db.pool())
        .await?
        .iter()
        .map(material_of)
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    Ok((recordings, materials))
}
