//! SQL for reading centres: routing rules, requests and signed reports. A step is saved only
//! if the request still has the stamp it was decided on, in one transaction with its report
//! (when signed) and its audit event — two readers claiming at once cannot both win.

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::*;
use crate::audit::{self, NewEvent, Outcome};
use crate::auth::policy::{
    Permit, ReadingCreate, ReadingRead, ReadingSearch, ReadingUpdate, RoutingList, RoutingManage,
    TemplateManage,
};
use crate::storage::Db;
use crate::storage::sql::parsed;

const COLS: &str = "id, kind, centre_site, sending_site, study_uid, ecg_id, modality, priority, \
    state, question, callback_phone, requested_by, instances, received_at, last_instance_at, \
    ready_at, claimed_by, claimed_at, active_at, signed_at, drafted_by, acknowledged_by, acknowledged_at, \
    draft, stamp";

fn from_row(row: &AnyRow) -> Result<Request, sqlx::Error> {
    let claimed_by: Option<String> = row.try_get("claimed_by")?;
    let draft: Option<String> = row.try_get("draft")?;
    Ok(Request {
        id: row.try_get("id")?,
        kind: parsed(row, "kind")?,
        centre_site: parsed(row, "centre_site")?,
        sending_site: parsed(row, "sending_site")?,
        study_uid: row.try_get("study_uid")?,
        ecg_id: row.try_get("ecg_id")?,
        modality: row.try_get("modality")?,
        priority: parsed(row, "priority")?,
        state: parsed(row, "state")?,
        question: row.try_get("question")?,
        callback_phone: row.try_get("callback_phone")?,
        requested_by: row.try_get("requested_by")?,
        instances: row.try_get("instances")?,
        received_at: row.try_get("received_at")?,
        last_instance_at: row.try_get("last_instance_at")?,
        ready_at: row.try_get("ready_at")?,
        claimed_by: claimed_by.and_then(|u| u.parse().ok()),
        claimed_at: row.try_get("claimed_at")?,
        active_at: row.try_get("active_at")?,
        signed_at: row.try_get("signed_at")?,
        drafted_by: row.try_get::<Option<String>, _>("drafted_by")?.and_then(|u| u.parse().ok()),
        acknowledged_by: row
            .try_get::<Option<String>, _>("acknowledged_by")?
            .and_then(|u| u.parse().ok()),
        acknowledged_at: row.try_get("acknowledged_at")?,
        draft: draft.and_then(|d| serde_json::from_str(&d).ok()),
        stamp: row.try_get("stamp")?,
    })
}

/// A request by id. (Structural: its sites decide who may see it.)
pub async fn find(db: &Db, id: &str) -> Result<Option<Request>, sqlx::Error> {
    let row = sqlx::query(&format!("SELECT {COLS} FROM reading_requests WHERE id = $1"))
        .bind(id)
        .fetch_optional(db.pool())
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// The permit's request.
pub async fn get(db: &Db, permit: &Permit<ReadingRead>) -> Result<Option<Request>, sqlx::Error> {
    find(db, permit.target().id.as_deref().unwrap_or_default()).await
}

/// A signed report version.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub version: i64,
    pub body: ReportBody,
    pub reason: Option<String>,
    pub signed_by: String,
    pub signed_at: i64,
    pub content_sha256: String,
    /// Where reading is two-step: the junior who drafted what the senior signed.
    pub drafted_by: Option<String>,
}

/// The signed versions of the permit's request, oldest first.
pub async fn reports(db: &Db, permit: &Permit<ReadingRead>) -> Result<Vec<Report>, sqlx::Error> {
    versions(db, permit.target().id.as_deref().unwrap_or_default()).await
}

/// The signed versions of request `id`, oldest first.
async fn versions(db: &Db, id: &str) -> Result<Vec<Report>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT version, body, reason, signed_by, signed_at, content_sha256, drafted_by FROM reading_reports \
         WHERE request_id = $1 ORDER BY version",
    )
    .bind(id)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| {
            let body: String = r.try_get("body")?;
            Ok(Report {
                version: r.try_get("version")?,
                body: serde_json::from_str(&body).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
                reason: r.try_get("reason")?,
                signed_by: r.try_get("signed_by")?,
                signed_at: r.try_get("signed_at")?,
                content_sha256: r.try_get("content_sha256")?,
                drafted_by: r.try_get("drafted_by")?,
            })
        })
        .collect()
}

/// Patient and study facts of the listed requests' studies, by study (what a worklist row
/// shows: the lister may read each listed request, hence its study).
pub async fn study_facts(
    db: &Db,
    _: &Permit<ReadingSearch>,
    rows: &[Request],
) -> Result<std::collections::HashMap<String, Value>, sqlx::Error> {
    let mut uids: Vec<&str> = rows.iter().map(|r| r.study_uid.as_str()).collect();
    uids.sort_unstable();
    uids.dedup();
    facts(db, &uids).await
}

/// The same for one request's study.
pub async fn study_facts_of(
    db: &Db,
    _: &Permit<ReadingRead>,
    study: &str,
) -> Result<std::collections::HashMap<String, Value>, sqlx::Error> {
    facts(db, &[study]).await
}

async fn facts(
    db: &Db,
    uids: &[&str],
) -> Result<std::collections::HashMap<String, Value>, sqlx::Error> {
    let mut out = std::collections::HashMap::new();
    for batch in uids.chunks(200) {
        if batch.is_empty() {
            continue;
        }
        let marks: Vec<String> = (1..=batch.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT study_uid, patient_name, patient_id, patient_sex, patient_birth_date, study_date,              study_description FROM studies WHERE study_uid IN ({})",
            marks.join(", ")
        );
        let mut q = sqlx::query(&sql);
        for u in batch {
            q = q.bind(*u);
        }
        for r in q.fetch_all(db.pool()).await? {
            let uid: String = r.try_get("study_uid")?;
            let get = |c: &str| r.try_get::<Option<String>, _>(c);
            out.insert(
                uid,
                serde_json::json!({
                    "patient_name": get("patient_name")?,
                    "patient_id": get("patient_id")?,
                    "patient_sex": get("patient_sex")?,
                    "patient_birth_date": get("patient_birth_date")?,
                    "study_date": get("study_date")?,
                    "study_description": get("study_description")?,
                }),
            );
        }
    }
    Ok(out)
}

/// The first modality of a study's series. (Structural: what a request by hand is for.)
pub async fn study_modality(db: &Db, study: &str) -> Result<Option<String>, sqlx::Error> {
    let m: Option<Option<String>> = sqlx::query_scalar(
        "SELECT modality FROM series WHERE study_uid = $1 AND modality IS NOT NULL ORDER BY created_at LIMIT 1",
    )
    .bind(study)
    .fetch_optional(db.pool())
    .await?;
    Ok(m.flatten())
}

/// The patient's other studies the centre may see (its site's, or shared with it), newest
/// first, each with the centre's reading of it if there is one (state and latest impression).
/// Matched by patient ID within the request's sending site's studies and the centre's own.
pub async fn priors(
    db: &Db,
    _: &Permit<ReadingRead>,
    r: &Request,
    patient_id: &str,
) -> Result<Vec<Value>, sqlx::Error> {
    if patient_id.trim().is_empty() {
        return Ok(vec![]);
    }
    let rows = sqlx::query(
        "SELECT st.study_uid, st.study_date, st.study_description, st.origin_site, \
           (SELECT rr.id FROM reading_requests rr WHERE rr.study_uid = st.study_uid AND rr.centre_site = $2 \
              AND rr.state <> 'cancelled' ORDER BY rr.received_at DESC LIMIT 1) AS reading \
         FROM studies st WHERE st.patient_id = $1 AND st.study_uid <> $3 \
           AND (st.origin_site = $2 OR EXISTS (SELECT 1 FROM study_shares sh WHERE sh.study_uid = st.study_uid AND sh.site_id = $2)) \
         ORDER BY st.study_date DESC, st.created_at DESC LIMIT 20",
    )
    .bind(patient_id)
    .bind(r.centre_site.as_str())
    .bind(&r.study_uid)
    .fetch_all(db.pool())
    .await?;
    let mut out = vec![];
    for row in rows {
        let reading: Option<String> = row.try_get("reading")?;
        let (state, impression, kind, ecg) = match &reading {
            Some(id) => {
                let req = find(db, id).await?;
                let last = latest_report(db, id).await?;
                (
                    req.as_ref().map(|q| q.state.as_str()),
                    last.map(|l| l.body.impression),
                    req.as_ref().map(|q| q.kind.as_str()),
                    req.and_then(|q| q.ecg_id),
                )
            }
            None => (None, None, None, None),
        };
        out.push(serde_json::json!({
            "study_uid": row.try_get::<String, _>("study_uid")?,
            "study_date": row.try_get::<Option<String>, _>("study_date")?,
            "study_description": row.try_get::<Option<String>, _>("study_description")?,
            "site": row.try_get::<String, _>("origin_site")?,
            "reading": reading,
            "kind": kind,
            "ecg_id": ecg,
            "state": state,
            "impression": impression,
        }));
    }
    Ok(out)
}

/// One study's facts. (Structural: for a report the caller may already read.)
pub async fn facts_of_study(db: &Db, study: &str) -> Result<Option<Value>, sqlx::Error> {
    Ok(facts(db, &[study]).await?.remove(study))
}

/// The signed versions of a listed request (the lister may read it).
pub async fn reports_of_listed(
    db: &Db,
    _: &Permit<ReadingSearch>,
    id: &str,
) -> Result<Vec<Report>, sqlx::Error> {
    versions(db, id).await
}

/// The latest signed version of a request. (Structural: filed by the server on signing.)
pub async fn latest_report(db: &Db, id: &str) -> Result<Option<Report>, sqlx::Error> {
    Ok(versions(db, id).await?.pop())
}

/// What a worklist or a clinic's list shows.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub kind: Option<Kind>,
    pub modality: Option<String>,
    pub priority: Option<Priority>,
    /// None: the open ones (collecting, ready, claimed).
    pub states: Option<Vec<State>>,
    pub sending_site: Option<SiteId>,
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    pub limit: i64,
}

/// Whose list: a centre's worklist, or a clinic's own requests.
pub enum Scope<'a> {
    Centre(&'a SiteId),
    Sender(&'a SiteId),
}

/// The requests of a centre's worklist (STAT first, then the longest waiting) or of a clinic.
pub async fn search(
    db: &Db,
    _: &Permit<ReadingSearch>,
    scope: Scope<'_>,
    f: &Filter,
) -> Result<Vec<Request>, sqlx::Error> {
    let mut args: Vec<String> = vec![];
    let mut arg = |v: String| {
        args.push(v);
        format!("${}", args.len())
    };
    let mut clauses = vec![match scope {
        Scope::Centre(s) => format!("centre_site = {}", arg(s.to_string())),
        Scope::Sender(s) => format!("sending_site = {}", arg(s.to_string())),
    }];
    let states: Vec<State> = f
        .states
        .clone()
        .unwrap_or_else(|| vec![State::Collecting, State::Ready, State::Claimed, State::Review]);
    let marks: Vec<String> = states.iter().map(|s| arg(s.as_str().to_string())).collect();
    clauses.push(format!("state IN ({})", marks.join(", ")));
    if let Some(k) = f.kind {
        clauses.push(format!("kind = {}", arg(k.as_str().into())));
    }
    if let Some(m) = &f.modality {
        clauses.push(format!("modality = {}", arg(m.to_uppercase())));
    }
    if let Some(p) = f.priority {
        let rank = Priority::ALL.iter().position(|x| *x == p).unwrap_or(2);
        clauses.push(format!("priority_rank = {rank}"));
    }
    if let Some(s) = &f.sending_site {
        clauses.push(format!("sending_site = {}", arg(s.to_string())));
    }
    let mut sql = format!(
        "SELECT {COLS} FROM reading_requests WHERE {} {} {} \
         ORDER BY priority_rank, received_at, id \
         LIMIT {}",
        clauses.join(" AND "),
        if f.from_ms.is_some() { "AND received_at >= $FROM" } else { "" },
        if f.to_ms.is_some() { "AND received_at < $TO" } else { "" },
        f.limit.clamp(1, 1000)
    );
    let n = args.len();
    sql = sql.replace("$FROM", &format!("${}", n + 1));
    sql = sql.replace("$TO", &format!("${}", n + 1 + usize::from(f.from_ms.is_some())));
    let mut q = sqlx::query(&sql);
    for a in &args {
        q = q.bind(a);
    }
    if let Some(v) = f.from_ms {
        q = q.bind(v);
    }
    if let Some(v) = f.to_ms {
        q = q.bind(v);
    }
    q.fetch_all(db.pool()).await?.iter().map(from_row).collect()
}

/// Saves a step decided on `before`: nothing if the request changed since (None), else the
/// request as saved. A signature or amendment adds its report version; the event is recorded
/// in the same transaction.
pub async fn save(
    db: &Db,
    _: &Permit<ReadingUpdate>,
    before: &Request,
    change: &Change,
    by: &str,
    event: &NewEvent,
) -> Result<Option<Request>, sqlx::Error> {
    save_change(db, before, change, by, event).await
}

async fn save_change(
    db: &Db,
    before: &Request,
    change: &Change,
    by: &str,
    event: &NewEvent,
) -> Result<Option<Request>, sqlx::Error> {
    let a = &change.after;
    let mut tx = db.pool().begin().await?;
    let r = sqlx::query(
        "UPDATE reading_requests SET state = $1, ready_at = $2, claimed_by = $3, claimed_at = $4, \
           active_at = $5, signed_at = $6, draft = $7, stamp = $8, acknowledged_by = $11, \
           acknowledged_at = $12, drafted_by = $13 WHERE id = $9 AND stamp = $10",
    )
    .bind(a.state.as_str())
    .bind(a.ready_at)
    .bind(a.claimed_by.as_ref().map(|u| u.to_string()))
    .bind(a.claimed_at)
    .bind(a.active_at)
    .bind(a.signed_at)
    .bind(a.draft.as_ref().map(|d| d.to_string()))
    .bind(a.stamp)
    .bind(&a.id)
    .bind(before.stamp)
    .bind(a.acknowledged_by.as_ref().map(|u| u.to_string()))
    .bind(a.acknowledged_at)
    .bind(a.drafted_by.as_ref().map(|u| u.to_string()))
    .execute(&mut *tx)
    .await?;
    if r.rows_affected() == 0 {
        return Ok(None);
    }
    if let Some((body, reason)) = &change.report {
        let version: i64 = sqlx::query_scalar(
            "SELECT COALESCE(MAX(version), 0) + 1 FROM reading_reports WHERE request_id = $1",
        )
        .bind(&a.id)
        .fetch_one(&mut *tx)
        .await?;
        let at = event.at;
        sqlx::query(
            "INSERT INTO reading_reports (request_id, version, body, reason, signed_by, signed_at, content_sha256, drafted_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&a.id)
        .bind(version)
        .bind(serde_json::to_string(body).expect("serialisable"))
        .bind(reason.as_deref())
        .bind(by)
        .bind(at)
        .bind(content_hash(&a.id, version, body, by, at))
        .bind(a.drafted_by.as_ref().map(|u| u.to_string()))
        .execute(&mut *tx)
        .await?;
    }
    audit::record_on(&mut *tx, event).await?;
    tx.commit().await?;
    Ok(Some(a.clone()))
}

/// What a clinician asks for by hand.
pub struct Manual<'a> {
    pub kind: Kind,
    pub centre: &'a SiteId,
    pub study_uid: &'a str,
    pub ecg_id: Option<&'a str>,
    pub modality: Option<&'a str>,
    pub priority: Priority,
    pub question: Option<&'a str>,
    pub callback_phone: Option<&'a str>,
}

/// A request made by hand for the permit's site, ready at once, with its study shared with
/// the centre, in one transaction. When the centre already has an open request for it, that
/// one is answered (false) — raised to the asked priority if higher, with the question and
/// phone number filled in where they were empty.
pub async fn create(
    db: &Db,
    permit: &Permit<ReadingCreate>,
    m: &Manual<'_>,
    by: &str,
    now: i64,
) -> Result<(Request, bool), sqlx::Error> {
    let site = permit.site().map(|s| s.to_string()).unwrap_or_default();
    let subject = m.ecg_id.unwrap_or(m.study_uid);
    let id = format!("rd_{}", crate::ids::random_id(9));
    let mut tx = db.pool().begin().await?;
    let got: String = sqlx::query_scalar(
        "INSERT INTO reading_requests (id, kind, centre_site, sending_site, subject, study_uid, ecg_id, modality, \
           priority, state, question, callback_phone, requested_by, instances, received_at, last_instance_at, ready_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'ready', $10, $11, $12, 0, $13, $13, $13) \
         ON CONFLICT (centre_site, subject) WHERE state <> 'cancelled' DO UPDATE SET \
           priority = CASE WHEN reading_requests.state IN ('collecting', 'ready', 'claimed', 'review') \
             AND (CASE $9 WHEN 'stat' THEN 0 WHEN 'urgent' THEN 1 ELSE 2 END) < \
                 (CASE reading_requests.priority WHEN 'stat' THEN 0 WHEN 'urgent' THEN 1 ELSE 2 END) \
             THEN $9 ELSE reading_requests.priority END, \
           question = COALESCE(reading_requests.question, $10), \
           callback_phone = COALESCE(reading_requests.callback_phone, $11), \
           stamp = reading_requests.stamp + 1 \
         RETURNING id",
    )
    .bind(&id)
    .bind(m.kind.as_str())
    .bind(m.centre.as_str())
    .bind(&site)
    .bind(subject)
    .bind(m.study_uid)
    .bind(m.ecg_id)
    .bind(m.modality)
    .bind(m.priority.as_str())
    .bind(m.question)
    .bind(m.callback_phone)
    .bind(by)
    .bind(now)
    .fetch_one(&mut *tx)
    .await?;
    let fresh = got == id;
    if fresh {
        crate::archive::store::share_study_on(&mut *tx, m.study_uid, m.centre, by, now).await?;
    }
    audit::record_on(
        &mut *tx,
        &NewEvent {
            at: now,
            actor: Some(by.to_string()),
            actor_site: Some(site.clone()),
            site: Some(site.clone()),
            action: "reading.requested",
            resource_kind: "reading",
            resource_id: Some(got.clone()),
            outcome: Outcome::Success,
            client_addr: None,
            detail: Some(format!(
                "{} {} to {}{}",
                m.priority,
                m.kind,
                m.centre,
                if fresh { "" } else { " (already requested)" }
            )),
        },
    )
    .await?;
    let row = sqlx::query(&format!("SELECT {COLS} FROM reading_requests WHERE id = $1"))
        .bind(&got)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok((from_row(&row)?, fresh))
}

/// Requests received at or after `from` (at most 500, oldest first): what to announce.
pub async fn received_since(db: &Db, from: i64) -> Result<Vec<Request>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT {COLS} FROM reading_requests WHERE received_at >= $1 ORDER BY received_at LIMIT 500"
    ))
    .bind(from)
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(from_row).collect()
}

/// Applies what time alone changes (quiet studies ready, idle claims released), each saved
/// against its stamp with an event by the server. Returns the requests changed, each with what
/// happened to it (`ready` or `released`).
pub async fn run_due(
    db: &Db,
    now: i64,
    timing: Timing,
) -> Result<Vec<(Request, &'static str)>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT {COLS} FROM reading_requests WHERE (state = 'collecting' AND last_instance_at <= $1) \
         OR (state = 'claimed' AND active_at <= $2) LIMIT 500"
    ))
    .bind(now - timing.quiet_ms)
    .bind(now - timing.claim_idle_ms)
    .fetch_all(db.pool())
    .await?;
    let mut changed = vec![];
    for row in &rows {
        let before = from_row(row)?;
        let Some((after, what)) = due(&before, now, timing) else { continue };
        let event = NewEvent {
            at: now,
            actor: Some(super::route::ROUTING.into()),
            actor_site: None,
            site: Some(before.sending_site.to_string()),
            action: if what == "ready" { "reading.ready" } else { "reading.released" },
            resource_kind: "reading",
            resource_id: Some(before.id.clone()),
            outcome: Outcome::Success,
            client_addr: None,
            detail: Some(match what {
                "ready" => format!("quiet for {} s", timing.quiet_ms / 1000),
                _ => format!("claim idle for {} min", timing.claim_idle_ms / 60_000),
            }),
        };
        let change = Change { after, report: None };
        if let Some(saved) = save_change(db, &before, &change, "server", &event).await? {
            changed.push((saved, what));
        }
    }
    Ok(changed)
}

// ---- routing rules ----

/// A routing rule as its centre's admins see it.
#[derive(Debug, Clone, Serialize)]
pub struct Rule {
    pub id: String,
    pub centre_site: String,
    pub from_site: String,
    pub subtree: bool,
    pub kind: Kind,
    pub modalities: Vec<String>,
    pub priority: Priority,
    pub created_by: String,
    pub created_at: i64,
}

fn rule_from_row(r: &AnyRow) -> Result<Rule, sqlx::Error> {
    let m: Option<String> = r.try_get("modalities")?;
    Ok(Rule {
        id: r.try_get("id")?,
        centre_site: r.try_get("centre_site")?,
        from_site: r.try_get("from_site")?,
        subtree: r.try_get::<i64, _>("subtree")? != 0,
        kind: parsed(r, "kind")?,
        modalities: m
            .map(|m| m.split(',').map(|x| x.trim().to_string()).filter(|x| !x.is_empty()).collect())
            .unwrap_or_default(),
        priority: parsed(r, "priority")?,
        created_by: r.try_get("created_by")?,
        created_at: r.try_get("created_at")?,
    })
}

/// The rules of the permit's centre.
pub async fn rules(db: &Db, permit: &Permit<RoutingList>) -> Result<Vec<Rule>, sqlx::Error> {
    let centre = permit.site().map(|s| s.to_string()).unwrap_or_default();
    let rows = sqlx::query(
        "SELECT * FROM routing_rules WHERE centre_site = $1 ORDER BY kind, from_site, id",
    )
    .bind(centre)
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(rule_from_row).collect()
}

/// A new rule.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRule {
    pub from_site: SiteId,
    #[serde(default)]
    pub subtree: bool,
    pub kind: Kind,
    #[serde(default)]
    pub modalities: Vec<String>,
    #[serde(default = "routine")]
    pub priority: Priority,
}

fn routine() -> Priority {
    Priority::Routine
}

#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    #[error("{0}")]
    Invalid(String),
    #[error("a rule for this site and kind exists already")]
    Exists,
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
}

/// Adds a rule for the permit's centre.
pub async fn add_rule(
    db: &Db,
    permit: &Permit<RoutingManage>,
    new: &NewRule,
    by: &str,
    now: i64,
) -> Result<Rule, RuleError> {
    let centre = permit.site().map(|s| s.to_string()).unwrap_or_default();
    if new.from_site.as_str() == centre {
        return Err(RuleError::Invalid("a centre does not route to itself".into()));
    }
    if !crate::network::store::site_exists(db, &new.from_site).await? {
        return Err(RuleError::Invalid(format!("no site `{}`", new.from_site)));
    }
    let mods: Vec<String> = new.modalities.iter().map(|m| m.trim().to_uppercase()).collect();
    if mods
        .iter()
        .any(|m| m.is_empty() || m.len() > 16 || !m.chars().all(|c| c.is_ascii_alphanumeric()))
    {
        return Err(RuleError::Invalid("modalities are DICOM codes such as CT, MR, DX, US".into()));
    }
    if new.kind == Kind::Ecg && !mods.is_empty() {
        return Err(RuleError::Invalid("modalities apply to imaging rules only".into()));
    }
    let id = format!("rr_{}", crate::ids::random_id(9));
    let r = sqlx::query(
        "INSERT INTO routing_rules (id, centre_site, from_site, subtree, kind, modalities, priority, created_by, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&id)
    .bind(&centre)
    .bind(new.from_site.as_str())
    .bind(i64::from(new.subtree))
    .bind(new.kind.as_str())
    .bind((!mods.is_empty()).then(|| mods.join(",")))
    .bind(new.priority.as_str())
    .bind(by)
    .bind(now)
    .execute(db.pool())
    .await;
    match r {
        Err(e) if crate::storage::sql::is_unique_violation(&e) => Err(RuleError::Exists),
        Err(e) => Err(e.into()),
        Ok(_) => Ok(Rule {
            id,
            centre_site: centre,
            from_site: new.from_site.to_string(),
            subtree: new.subtree,
            kind: new.kind,
            modalities: mods,
            priority: new.priority,
            created_by: by.to_string(),
            created_at: now,
        }),
    }
}

/// The centre a rule belongs to. (Structural: decides who may remove it.)
pub async fn rule_centre(db: &Db, id: &str) -> Result<Option<SiteId>, sqlx::Error> {
    let s: Option<String> =
        sqlx::query_scalar("SELECT centre_site FROM routing_rules WHERE id = $1")
            .bind(id)
            .fetch_optional(db.pool())
            .await?;
    Ok(s.and_then(|s| s.parse().ok()))
}

/// Removes the permit's rule (its id is the target id).
pub async fn delete_rule(db: &Db, permit: &Permit<RoutingManage>) -> Result<bool, sqlx::Error> {
    let r = sqlx::query("DELETE FROM routing_rules WHERE id = $1 AND centre_site = $2")
        .bind(permit.target().id.as_deref().unwrap_or_default())
        .bind(permit.site().map(|s| s.to_string()).unwrap_or_default())
        .execute(db.pool())
        .await?;
    Ok(r.rows_affected() > 0)
}

/// The centre a site's `kind` is routed to by its rules (the nearest), for requests by hand.
pub async fn centre_for(db: &Db, site: &SiteId, kind: Kind) -> Result<Option<SiteId>, sqlx::Error> {
    let mut at = Some(site.clone());
    let mut depth = 0;
    while let Some(s) = at {
        let c: Option<String> = sqlx::query_scalar(
            "SELECT centre_site FROM routing_rules WHERE from_site = $1 AND kind = $2 AND ($3 = 0 OR subtree = 1) \
             ORDER BY created_at LIMIT 1",
        )
        .bind(s.as_str())
        .bind(kind.as_str())
        .bind(depth)
        .fetch_optional(db.pool())
        .await?;
        if let Some(c) = c.and_then(|c| c.parse().ok()) {
            return Ok(Some(c));
        }
        at = crate::network::store::parent_of(db, &s).await?;
        depth += 1;
        if depth > 32 {
            break;
        }
    }
    Ok(None)
}

// ---- critical results ----

use super::critical::{Call, Critical};

const CRIT_COLS: &str = "id, request_id, sending_site, finding, note, raised_by, raised_at, \
    acknowledged_by, acknowledged_at, readback, escalated_at";

fn critical_from_row(r: &AnyRow) -> Result<Critical, sqlx::Error> {
    Ok(Critical {
        id: r.try_get("id")?,
        reading: r.try_get("request_id")?,
        sending_site: r.try_get("sending_site")?,
        finding: r.try_get("finding")?,
        note: r.try_get("note")?,
        raised_by: r.try_get("raised_by")?,
        raised_at: r.try_get("raised_at")?,
        acknowledged_by: r.try_get("acknowledged_by")?,
        acknowledged_at: r.try_get("acknowledged_at")?,
        readback: r.try_get("readback")?,
        escalated_at: r.try_get("escalated_at")?,
        calls: vec![],
    })
}

/// The critical results (with their calls) of some requests, or matching a clause.
async fn criticals_where(
    db: &Db,
    clause: &str,
    args: &[String],
) -> Result<Vec<Critical>, sqlx::Error> {
    let sql = format!(
        "SELECT {CRIT_COLS} FROM critical_results WHERE {clause} ORDER BY raised_at DESC LIMIT 500"
    );
    let mut q = sqlx::query(&sql);
    for a in args {
        q = q.bind(a);
    }
    let mut out: Vec<Critical> =
        q.fetch_all(db.pool()).await?.iter().map(critical_from_row).collect::<Result<_, _>>()?;
    for c in &mut out {
        let rows = sqlx::query("SELECT at, by_user, outcome, note FROM critical_calls WHERE critical_id = $1 ORDER BY at")
            .bind(&c.id)
            .fetch_all(db.pool())
            .await?;
        c.calls = rows
            .iter()
            .map(|r| {
                Ok(Call {
                    by: r.try_get("by_user")?,
                    at: r.try_get("at")?,
                    outcome: r.try_get("outcome")?,
                    note: r.try_get("note")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()?;
    }
    Ok(out)
}

/// The critical results of the permit's request.
pub async fn criticals_of(
    db: &Db,
    permit: &Permit<ReadingRead>,
) -> Result<Vec<Critical>, sqlx::Error> {
    let id = permit.target().id.clone().unwrap_or_default();
    criticals_where(db, "request_id = $1", &[id]).await
}

/// The critical results of listed requests (the lister may read each), by request.
pub async fn criticals_of_listed(
    db: &Db,
    _: &Permit<ReadingSearch>,
    rows: &[Request],
) -> Result<std::collections::HashMap<String, Vec<Critical>>, sqlx::Error> {
    let mut out: std::collections::HashMap<String, Vec<Critical>> = Default::default();
    for batch in rows.chunks(200) {
        if batch.is_empty() {
            continue;
        }
        let marks: Vec<String> = (1..=batch.len()).map(|i| format!("${i}")).collect();
        let ids: Vec<String> = batch.iter().map(|r| r.id.clone()).collect();
        for c in criticals_where(db, &format!("request_id IN ({})", marks.join(", ")), &ids).await?
        {
            out.entry(c.reading.clone()).or_default().push(c);
        }
    }
    Ok(out)
}

/// A clinic's critical results (open ones, and those of the last 7 days), or a centre's.
pub async fn criticals_for(
    db: &Db,
    _: &Permit<ReadingSearch>,
    scope: Scope<'_>,
    now: i64,
) -> Result<Vec<Critical>, sqlx::Error> {
    let since = (now - 7 * 86_400_000).to_string();
    match scope {
        Scope::Sender(site) => criticals_where(
            db,
            "sending_site = $1 AND (acknowledged_at IS NULL OR raised_at >= CAST($2 AS BIGINT))",
            &[site.to_string(), since],
        )
        .await,
        Scope::Centre(site) => {
            criticals_where(
                db,
                "request_id IN (SELECT id FROM reading_requests WHERE centre_site = $1) \
                 AND (acknowledged_at IS NULL OR raised_at >= CAST($2 AS BIGINT))",
                &[site.to_string(), since],
            )
            .await
        }
    }
}

/// One critical result. (Structural: its request decides who may see it.)
pub async fn critical(db: &Db, id: &str) -> Result<Option<Critical>, sqlx::Error> {
    Ok(criticals_where(db, "id = $1", &[id.to_string()]).await?.pop())
}

/// Records a critical result of the permit's request, with its event.
pub async fn raise_critical(
    db: &Db,
    _: &Permit<ReadingUpdate>,
    req: &Request,
    finding: &str,
    note: Option<&str>,
    by: &str,
    event: &NewEvent,
) -> Result<Critical, sqlx::Error> {
    let id = format!("cr_{}", crate::ids::random_id(9));
    let mut tx = db.pool().begin().await?;
    sqlx::query(
        "INSERT INTO critical_results (id, request_id, sending_site, finding, note, raised_by, raised_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&id)
    .bind(&req.id)
    .bind(req.sending_site.as_str())
    .bind(finding)
    .bind(note)
    .bind(by)
    .bind(event.at)
    .execute(&mut *tx)
    .await?;
    let mut e = event.clone();
    e.detail = Some(format!("{finding} ({id})"));
    audit::record_on(&mut *tx, &e).await?;
    tx.commit().await?;
    Ok(critical(db, &id).await?.expect("just stored"))
}

/// Acknowledges an open critical result; false when someone already did.
pub async fn acknowledge_critical(
    db: &Db,
    _: &Permit<ReadingUpdate>,
    id: &str,
    by: &str,
    readback: &str,
    event: &NewEvent,
) -> Result<bool, sqlx::Error> {
    let mut tx = db.pool().begin().await?;
    let r = sqlx::query(
        "UPDATE critical_results SET acknowledged_by = $1, acknowledged_at = $2, readback = $3 \
         WHERE id = $4 AND acknowledged_at IS NULL",
    )
    .bind(by)
    .bind(event.at)
    .bind(readback)
    .bind(id)
    .execute(&mut *tx)
    .await?;
    if r.rows_affected() == 0 {
        return Ok(false);
    }
    audit::record_on(&mut *tx, event).await?;
    tx.commit().await?;
    Ok(true)
}

/// Logs a call about a critical result, with its event.
pub async fn log_call(
    db: &Db,
    _: &Permit<ReadingUpdate>,
    id: &str,
    by: &str,
    outcome: &str,
    note: Option<&str>,
    event: &NewEvent,
) -> Result<(), sqlx::Error> {
    let mut tx = db.pool().begin().await?;
    sqlx::query("INSERT INTO critical_calls (critical_id, at, by_user, outcome, note) VALUES ($1, $2, $3, $4, $5)")
        .bind(id)
        .bind(event.at)
        .bind(by)
        .bind(outcome)
        .bind(note)
        .execute(&mut *tx)
        .await?;
    audit::record_on(&mut *tx, event).await?;
    tx.commit().await?;
    Ok(())
}

/// Escalates the open critical results raised at least `ack_ms` ago, each once, audited by the
/// server. Returns them.
pub async fn escalate_due(db: &Db, now: i64, ack_ms: i64) -> Result<Vec<Critical>, sqlx::Error> {
    let cutoff = (now - ack_ms).to_string();
    let due = criticals_where(
        db,
        "acknowledged_at IS NULL AND escalated_at IS NULL AND raised_at <= CAST($1 AS BIGINT)",
        &[cutoff],
    )
    .await?;
    let mut out = vec![];
    for mut c in due {
        if !super::critical::due(&c, now, ack_ms) {
            continue;
        }
        let mut tx = db.pool().begin().await?;
        let r = sqlx::query(
            "UPDATE critical_results SET escalated_at = $1 WHERE id = $2 AND escalated_at IS NULL AND acknowledged_at IS NULL",
        )
        .bind(now)
        .bind(&c.id)
        .execute(&mut *tx)
        .await?;
        if r.rows_affected() == 0 {
            continue;
        }
        audit::record_on(
            &mut *tx,
            &NewEvent {
                at: now,
                actor: Some(super::route::ROUTING.into()),
                actor_site: None,
                site: Some(c.sending_site.clone()),
                action: "critical.escalated",
                resource_kind: "critical",
                resource_id: Some(c.id.clone()),
                outcome: Outcome::Success,
                client_addr: None,
                detail: Some(format!("unacknowledged for {} min", ack_ms / 60_000)),
            },
        )
        .await?;
        tx.commit().await?;
        c.escalated_at = Some(now);
        out.push(c);
    }
    Ok(out)
}

// ---- turnaround and metrics ----

/// The times of a centre's requests received since `since` (not cancelled).
pub async fn times_since(
    db: &Db,
    _: &Permit<ReadingSearch>,
    centre: &SiteId,
    since: i64,
) -> Result<Vec<super::stats::Times>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT kind, priority, sending_site, received_at, ready_at, claimed_at, signed_at, acknowledged_at \
         FROM reading_requests WHERE centre_site = $1 AND received_at >= $2 AND state <> 'cancelled'",
    )
    .bind(centre.as_str())
    .bind(since)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(super::stats::Times {
                kind: parsed(r, "kind")?,
                priority: parsed(r, "priority")?,
                sending_site: r.try_get("sending_site")?,
                received_at: r.try_get("received_at")?,
                ready_at: r.try_get("ready_at")?,
                claimed_at: r.try_get("claimed_at")?,
                signed_at: r.try_get("signed_at")?,
                acknowledged_at: r.try_get("acknowledged_at")?,
            })
        })
        .collect()
}

/// Requests waiting to be read (ready or claimed), per priority: how many, and since when the
/// oldest has waited (unix ms). For `/metrics`.
pub async fn waiting(db: &Db) -> Result<Vec<(Priority, i64, i64)>, sqlx::Error> {
    let rows: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT priority, COUNT(*), MIN(COALESCE(ready_at, received_at)) FROM reading_requests \
         WHERE state IN ('ready', 'claimed', 'review') GROUP BY priority",
    )
    .fetch_all(db.pool())
    .await?;
    Ok(rows.into_iter().filter_map(|(p, n, oldest)| Some((p.parse().ok()?, n, oldest))).collect())
}

// ---- report templates ----

/// A centre's report template.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Template {
    pub kind: Kind,
    /// `""`: any modality of the kind.
    #[serde(default)]
    pub modality: String,
    #[serde(default)]
    pub findings: String,
    #[serde(default)]
    pub impression: String,
    #[serde(default, skip_deserializing)]
    pub updated_by: String,
    #[serde(default, skip_deserializing)]
    pub updated_at: i64,
}

fn template_from_row(r: &AnyRow) -> Result<Template, sqlx::Error> {
    Ok(Template {
        kind: parsed(r, "kind")?,
        modality: r.try_get("modality")?,
        findings: r.try_get("findings")?,
        impression: r.try_get("impression")?,
        updated_by: r.try_get("updated_by")?,
        updated_at: r.try_get("updated_at")?,
    })
}

/// A centre's templates (anyone who reads there may see them).
pub async fn templates(
    db: &Db,
    _: &Permit<ReadingSearch>,
    centre: &SiteId,
) -> Result<Vec<Template>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT * FROM reading_templates WHERE centre_site = $1 ORDER BY kind, modality",
    )
    .bind(centre.as_str())
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(template_from_row).collect()
}

/// The template a new report of this kind and modality starts from: the modality's, else the
/// kind's. (Structural: what the reader's page is prefilled with.)
pub async fn template_for(
    db: &Db,
    centre: &SiteId,
    kind: Kind,
    modality: Option<&str>,
) -> Result<Option<Template>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT * FROM reading_templates WHERE centre_site = $1 AND kind = $2 AND modality IN ($3, '') \
         ORDER BY modality DESC LIMIT 1",
    )
    .bind(centre.as_str())
    .bind(kind.as_str())
    .bind(modality.unwrap_or("").to_uppercase())
    .fetch_all(db.pool())
    .await?;
    rows.first().map(template_from_row).transpose()
}

/// Creates or replaces the permit's centre's template.
pub async fn put_template(
    db: &Db,
    permit: &Permit<TemplateManage>,
    t: &Template,
    by: &str,
    now: i64,
) -> Result<Template, RuleError> {
    let centre = permit.site().map(|s| s.to_string()).unwrap_or_default();
    let modality = t.modality.trim().to_uppercase();
    if modality.len() > 16 || !modality.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(RuleError::Invalid(
            "modality: a DICOM code such as CT, or empty for any".into(),
        ));
    }
    if t.findings.chars().count() > 20_000 || t.impression.chars().count() > 5_000 {
        return Err(RuleError::Invalid("the template is too long".into()));
    }
    sqlx::query(
        "INSERT INTO reading_templates (centre_site, kind, modality, findings, impression, updated_by, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (centre_site, kind, modality) DO UPDATE SET \
         findings = $4, impression = $5, updated_by = $6, updated_at = $7",
    )
    .bind(&centre)
    .bind(t.kind.as_str())
    .bind(&modality)
    .bind(&t.findings)
    .bind(&t.impression)
    .bind(by)
    .bind(now)
    .execute(db.pool())
    .await?;
    Ok(Template { modality, updated_by: by.to_string(), updated_at: now, ..t.clone() })
}

/// Removes one of the permit's centre's templates.
pub async fn delete_template(
    db: &Db,
    permit: &Permit<TemplateManage>,
    kind: Kind,
    modality: &str,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "DELETE FROM reading_templates WHERE centre_site = $1 AND kind = $2 AND modality = $3",
    )
    .bind(permit.site().map(|s| s.to_string()).unwrap_or_default())
    .bind(kind.as_str())
    .bind(modality.trim().to_uppercase())
    .execute(db.pool())
    .await?;
    Ok(r.rows_affected() > 0)
}
