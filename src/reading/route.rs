//! Routing at ingest: inside the transaction that files an instance or an ECG record, the
//! sending site's routing rules (its own, and those of any site above it made for a whole
//! subtree) open one reading request per centre — or update the open one — and share the
//! study with the centre. A CT sent as 500 C-STOREs is one request counting 500 instances.

use sqlx::Row;

use super::{Kind, Priority};
use crate::audit::{self, NewEvent, Outcome};
use crate::ids::random_id;
use crate::network::SiteId;

/// Who opened a request that routing opened.
pub const ROUTING: &str = "routing";

/// The rules that send `site`'s `kind` to a centre: (centre, priority, modalities).
async fn rules_for<'c>(
    tx: &mut sqlx::Transaction<'c, sqlx::Any>,
    site: &str,
    kind: Kind,
) -> Result<Vec<(String, Priority, Option<String>)>, sqlx::Error> {
    let rows = sqlx::query(
        "WITH RECURSIVE up(id, parent_id, depth) AS ( \
           SELECT id, parent_id, 0 FROM sites WHERE id = $1 \
           UNION ALL SELECT s.id, s.parent_id, up.depth + 1 FROM sites s JOIN up ON s.id = up.parent_id WHERE up.depth < 32) \
         SELECT r.centre_site, r.priority, r.modalities FROM routing_rules r JOIN up ON r.from_site = up.id \
         WHERE r.kind = $2 AND (up.depth = 0 OR r.subtree = 1) ORDER BY up.depth",
    )
    .bind(site)
    .bind(kind.as_str())
    .fetch_all(&mut **tx)
    .await?;
    let mut out: Vec<(String, Priority, Option<String>)> = vec![];
    for r in rows {
        let centre: String = r.try_get("centre_site")?;
        // The nearest rule for a centre wins (a site's own before its parent's subtree rule).
        if centre == site || out.iter().any(|(c, _, _)| *c == centre) {
            continue;
        }
        let priority: String = r.try_get("priority")?;
        let priority = priority.parse().unwrap_or(Priority::Routine);
        out.push((centre, priority, r.try_get("modalities")?));
    }
    Ok(out)
}

fn modality_matches(list: Option<&str>, modality: Option<&str>) -> bool {
    match list.map(str::trim).filter(|l| !l.is_empty()) {
        None => true,
        Some(list) => {
            modality.is_some_and(|m| list.split(',').any(|x| x.trim().eq_ignore_ascii_case(m)))
        }
    }
}

/// What arrived.
pub struct Arrival<'a> {
    pub site: &'a str,
    pub kind: Kind,
    pub study_uid: &'a str,
    pub ecg_id: Option<&'a str>,
    pub modality: Option<&'a str>,
    pub now: i64,
}

/// Routes one arrival inside `tx`; returns the ids of the requests it opened (not those it
/// only updated), so the caller can tell the centre once the transaction has committed.
pub async fn arrived<'c>(
    tx: &mut sqlx::Transaction<'c, sqlx::Any>,
    a: &Arrival<'_>,
) -> Result<Vec<String>, sqlx::Error> {
    let mut opened = vec![];
    for (centre, priority, modalities) in rules_for(tx, a.site, a.kind).await? {
        if !modality_matches(modalities.as_deref(), a.modality) {
            continue;
        }
        let subject = a.ecg_id.unwrap_or(a.study_uid);
        // An ECG is complete on arrival; a study is collected until it has been quiet.
        let state = match a.kind {
            Kind::Ecg => "ready",
            Kind::Imaging => "collecting",
        };
        let id = format!("rd_{}", random_id(9));
        let r = sqlx::query(
            "INSERT INTO reading_requests (id, kind, centre_site, sending_site, subject, study_uid, ecg_id, modality, \
               priority, state, requested_by, instances, received_at, last_instance_at, ready_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 1, $12, $12, $13) \
             ON CONFLICT (centre_site, subject) WHERE state <> 'cancelled' DO UPDATE SET \
               instances = reading_requests.instances + 1, last_instance_at = $12, \
               modality = COALESCE(reading_requests.modality, $8), stamp = reading_requests.stamp + 1 \
             WHERE reading_requests.state IN ('collecting', 'ready', 'claimed', 'review') \
             RETURNING id",
        )
        .bind(&id)
        .bind(a.kind.as_str())
        .bind(&centre)
        .bind(a.site)
        .bind(subject)
        .bind(a.study_uid)
        .bind(a.ecg_id)
        .bind(a.modality)
        .bind(priority.as_str())
        .bind(state)
        .bind(ROUTING)
        .bind(a.now)
        .bind((a.kind == Kind::Ecg).then_some(a.now))
        .fetch_optional(&mut **tx)
        .await?;
        // Nothing returned: the centre's request was signed already (a late instance, or the
        // report Ferry files into the study) — it stays as signed.
        let Some(r) = r else { continue };
        let got: String = r.try_get("id")?;
        if got != id {
            continue;
        }
        let centre_id: SiteId = centre.parse().map_err(|_| sqlx::Error::RowNotFound)?;
        crate::archive::store::share_study_on(&mut **tx, a.study_uid, &centre_id, ROUTING, a.now)
            .await?;
        for (action, kind, rid, detail) in [
            ("reading.routed", "reading", Some(id.clone()), format!("{} to {centre}", a.kind)),
            ("study.shared", "study", None, format!("with {centre} for reading {id}")),
        ] {
            audit::record_on(
                &mut **tx,
                &NewEvent {
                    at: a.now,
                    actor: Some(ROUTING.to_string()),
                    actor_site: Some(a.site.to_string()),
                    site: Some(a.site.to_string()),
                    action,
                    resource_kind: kind,
                    resource_id: rid.or_else(|| Some(a.study_uid.to_string())),
                    outcome: Outcome::Success,
                    client_addr: None,
                    detail: Some(detail),
                },
            )
            .await?;
        }
        opened.push(id);
    }
    Ok(opened)
}

/// Routes a new ECG record (its study is already filed) in a transaction of its own, with the
/// share of its study. A failure is logged: the ECG itself stays stored.
pub async fn ecg_arrived(
    db: &crate::storage::Db,
    site: &str,
    ecg_id: &str,
    study_uid: &str,
    now: i64,
) -> Vec<String> {
    let routed = async {
        let mut tx = db.pool().begin().await?;
        let arrival = Arrival {
            site,
            kind: Kind::Ecg,
            study_uid,
            ecg_id: Some(ecg_id),
            modality: Some("ECG"),
            now,
        };
        let opened = arrived(&mut tx, &arrival).await?;
        tx.commit().await?;
        Ok::<_, sqlx::Error>(opened)
    };
    match routed.await {
        Ok(opened) => opened,
        Err(e) => {
            tracing::error!(error = %e, "a new ECG could not be routed for reading");
            vec![]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::modality_matches;

    #[test]
    fn modality_lists() {
        assert!(modality_matches(None, Some("CT")));
        assert!(modality_matches(Some(""), None));
        assert!(modality_matches(Some("CT, MR"), Some("mr")));
        assert!(!modality_matches(Some("CT,MR"), Some("US")));
        assert!(!modality_matches(Some("CT"), None));
    }
}
