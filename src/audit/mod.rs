//! The audit trail: append-only events for every access decision on protected data and every
//! security event. Rows are never updated or deleted (the schema's triggers refuse it).
//! Events carry identifiers only, never patient-identifying values.

use std::collections::HashSet;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::auth::policy::{AuditRead, Permit};
use crate::network::SiteId;
use crate::network::store::{is_root_site, site_and_descendants};
use crate::storage::Db;
use crate::time::rfc3339;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The policy allowed the access.
    Allowed,
    /// The policy refused the access.
    Denied,
    /// A security event that succeeded (login, token created).
    Success,
    /// A security event that failed (bad password, bad token).
    Failure,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allowed => "allowed",
            Outcome::Denied => "denied",
            Outcome::Success => "success",
            Outcome::Failure => "failure",
        }
    }
}

/// One event, before it is stored.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub at: i64,
    pub actor: Option<String>,
    pub actor_site: Option<String>,
    /// The site the resource belongs to.
    pub site: Option<String>,
    pub action: &'static str,
    pub resource_kind: &'static str,
    pub resource_id: Option<String>,
    pub outcome: Outcome,
    pub client_addr: Option<String>,
    pub detail: Option<String>,
}

/// A stored event, as admins see it.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Event {
    pub id: i64,
    pub at: String,
    pub actor: Option<String>,
    pub actor_site: Option<String>,
    pub site: Option<String>,
    pub action: String,
    pub resource_kind: String,
    pub resource_id: Option<String>,
    pub outcome: String,
    pub client_addr: Option<String>,
    pub detail: Option<String>,
}

/// Appends an event. Callers treat a failure as a failure of the request: no access goes
/// unrecorded.
pub async fn record(db: &Db, e: &NewEvent) -> Result<(), sqlx::Error> {
    record_on(db.pool(), e).await
}

/// Appends several events in one transaction (one commit): all recorded, or none and an error.
pub async fn record_all(db: &Db, events: &[NewEvent]) -> Result<(), sqlx::Error> {
    // One statement per 50 events (a worklist page is one round trip, not fifty).
    let mut tx = db.pool().begin().await?;
    for chunk in events.chunks(50) {
        insert(&mut *tx, chunk).await?;
    }
    tx.commit().await
}

/// Appends an event on a given connection or transaction, so that it commits (or not) with
/// the change it records.
pub async fn record_on<'e, E>(ex: E, e: &NewEvent) -> Result<(), sqlx::Error>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    insert(ex, std::slice::from_ref(e)).await
}

/// One INSERT of `events` (a few dozen at most).
async fn insert<'e, E>(ex: E, events: &[NewEvent]) -> Result<(), sqlx::Error>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let rows: Vec<String> = (0..events.len())
        .map(|i| {
            let marks: Vec<String> = (1..=10).map(|k| format!("${}", i * 10 + k)).collect();
            format!("({})", marks.join(", "))
        })
        .collect();
    let sql = format!(
        "INSERT INTO audit_events (at, actor, actor_site, site_id, action, resource_kind, resource_id, outcome, client_addr, detail) VALUES {}",
        rows.join(", ")
    );
    let mut q = sqlx::query(&sql);
    for e in events {
        q = q
            .bind(e.at)
            .bind(e.actor.clone())
            .bind(e.actor_site.clone())
            .bind(e.site.clone())
            .bind(e.action)
            .bind(e.resource_kind)
            .bind(e.resource_id.clone())
            .bind(e.outcome.as_str())
            .bind(e.client_addr.clone())
            .bind(e.detail.clone());
    }
    q.execute(ex).await?;
    Ok(())
}

/// Filters for an audit search. Times are unix milliseconds; `resource` is `kind` or
/// `kind:id`.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub user: Option<String>,
    pub site: Option<SiteId>,
    pub resource: Option<String>,
    pub action: Option<String>,
    pub outcome: Option<Outcome>,
    pub from: Option<i64>,
    pub to: Option<i64>,
    /// Only events with a smaller id (for paging backwards in time).
    pub before_id: Option<i64>,
    pub limit: i64,
}

/// Most events in one JSON page.
pub const MAX_PAGE: i64 = 1000;
/// Most events in one CSV export.
pub const MAX_EXPORT: i64 = 100_000;

/// Searches the trail, newest first, within what the permit's site may see: an admin of a root
/// site sees everything; other admins see events about, or by people of, their site and the
/// sites below it.
pub async fn search(
    db: &Db,
    permit: &Permit<AuditRead>,
    f: &Filter,
) -> Result<Vec<Event>, sqlx::Error> {
    let Some(site) = permit.site() else {
        return Ok(vec![]);
    };
    let scope: Option<HashSet<SiteId>> = if is_root_site(db, site).await? {
        None
    } else {
        Some(site_and_descendants(db, site).await?)
    };
    let mut sql = String::from(
        "SELECT id, at, actor, actor_site, site_id, action, resource_kind, resource_id, outcome, client_addr, detail \
         FROM audit_events WHERE 1=1",
    );
    let mut args: Vec<ArgVal> = vec![];
    fn push(sql: &mut String, args: &mut Vec<ArgVal>, clause: &str, v: ArgVal) {
        args.push(v);
        let _ = write!(sql, " AND {}", clause.replace('?', &format!("${}", args.len())));
    }
    if let Some(scope) = &scope {
        let mut ids: Vec<&SiteId> = scope.iter().collect();
        ids.sort();
        let mut marks = vec![];
        for id in ids {
            args.push(ArgVal::Text(id.to_string()));
            marks.push(format!("${}", args.len()));
        }
        let list = marks.join(", ");
        let _ = write!(sql, " AND (site_id IN ({list}) OR actor_site IN ({list}))");
    }
    if let Some(u) = &f.user {
        push(&mut sql, &mut args, "actor = ?", ArgVal::Text(u.clone()));
    }
    if let Some(s) = &f.site {
        args.push(ArgVal::Text(s.to_string()));
        let n = args.len();
        let _ = write!(sql, " AND (site_id = ${n} OR actor_site = ${n})");
    }
    if let Some(r) = &f.resource {
        match r.split_once(':') {
            Some((kind, id)) => {
                push(&mut sql, &mut args, "resource_kind = ?", ArgVal::Text(kind.to_string()));
                push(&mut sql, &mut args, "resource_id = ?", ArgVal::Text(id.to_string()));
            }
            None => push(&mut sql, &mut args, "resource_kind = ?", ArgVal::Text(r.clone())),
        }
    }
    if let Some(a) = &f.action {
        push(&mut sql, &mut args, "action = ?", ArgVal::Text(a.clone()));
    }
    if let Some(o) = f.outcome {
        push(&mut sql, &mut args, "outcome = ?", ArgVal::Text(o.as_str().to_string()));
    }
    if let Some(t) = f.from {
        push(&mut sql, &mut args, "at >= ?", ArgVal::Int(t));
    }
    if let Some(t) = f.to {
        push(&mut sql, &mut args, "at < ?", ArgVal::Int(t));
    }
    if let Some(b) = f.before_id {
        push(&mut sql, &mut args, "id < ?", ArgVal::Int(b));
    }
    args.push(ArgVal::Int(f.limit.clamp(1, MAX_EXPORT)));
    let _ = write!(sql, " ORDER BY id DESC LIMIT ${}", args.len());

    let mut q = sqlx::query(&sql);
    for a in args {
        q = match a {
            ArgVal::Text(s) => q.bind(s),
            ArgVal::Int(i) => q.bind(i),
        };
    }
    let rows = q.fetch_all(db.pool()).await?;
    rows.iter()
        .map(|r| {
            Ok(Event {
                id: r.try_get("id")?,
                at: rfc3339(r.try_get("at")?),
                actor: r.try_get("actor")?,
                actor_site: r.try_get("actor_site")?,
                site: r.try_get("site_id")?,
                action: r.try_get("action")?,
                resource_kind: r.try_get("resource_kind")?,
                resource_id: r.try_get("resource_id")?,
                outcome: r.try_get("outcome")?,
                client_addr: r.try_get("client_addr")?,
                detail: r.try_get("detail")?,
            })
        })
        .collect()
}

enum ArgVal {
    Text(String),
    Int(i64),
}

/// One RFC 4180 CSV field: quoted when it holds a comma, quote or line break; a leading
/// = + - @, which would make spreadsheets evaluate the cell, is neutralised.
pub fn csv_field(v: &str) -> String {
    let guarded = if v.starts_with(['=', '+', '-', '@']) { format!("'{v}") } else { v.to_string() };
    if guarded.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", guarded.replace('"', "\"\""))
    } else {
        guarded
    }
}

/// RFC 4180 CSV of events, with a header row.
pub fn to_csv(events: &[Event]) -> String {
    fn field(out: &mut String, v: Option<&str>) {
        out.push_str(&csv_field(v.unwrap_or("")));
    }
    let mut out = String::from(
        "id,at,actor,actor_site,site,action,resource_kind,resource_id,outcome,client_addr,detail\r\n",
    );
    for e in events {
        let id = e.id.to_string();
        let cells = [
            Some(id.as_str()),
            Some(e.at.as_str()),
            e.actor.as_deref(),
            e.actor_site.as_deref(),
            e.site.as_deref(),
            Some(e.action.as_str()),
            Some(e.resource_kind.as_str()),
            e.resource_id.as_deref(),
            Some(e.outcome.as_str()),
            e.client_addr.as_deref(),
            e.detail.as_deref(),
        ];
        for (i, c) in cells.into_iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            field(&mut out, c);
        }
        out.push_str("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_and_guards() {
        let e = Event {
            id: 7,
            at: "2026-11-24T00:00:00Z".into(),
            actor: Some("dr-zhao".into()),
            actor_site: Some("island-clinic".into()),
            site: None,
            action: "user.list".into(),
            resource_kind: "user".into(),
            resource_id: None,
            outcome: "denied".into(),
            client_addr: Some("127.0.0.1".into()),
            detail: Some("says \"no\", twice\n=cmd".into()),
        };
        let csv = to_csv(&[e]);
        let mut lines = csv.split("\r\n");
        assert!(lines.next().unwrap().starts_with("id,at,actor"));
        assert_eq!(
            lines.next().unwrap(),
            "7,2026-11-24T00:00:00Z,dr-zhao,island-clinic,,user.list,user,,denied,127.0.0.1,\"says \"\"no\"\", twice\n=cmd\""
        );
        let e2 = Event { detail: Some("=HYPERLINK()".into()), ..Default::default() };
        assert!(to_csv(&[e2]).contains(",'=HYPERLINK()"));
    }
}
