//! Turnaround of a centre: received → claimed → signed → acknowledged, p50 and p90 of each
//! interval and the share signed within the service level, per kind, priority and sending
//! site. Pure: the requests' times in, rows out (and as CSV).

use serde::Serialize;

use super::{Kind, Priority};

/// The times of one request (unix ms).
#[derive(Debug, Clone)]
pub struct Times {
    pub kind: Kind,
    pub priority: Priority,
    pub sending_site: String,
    pub received_at: i64,
    pub ready_at: Option<i64>,
    pub claimed_at: Option<i64>,
    pub signed_at: Option<i64>,
    pub acknowledged_at: Option<i64>,
}

/// p50 and p90 of an interval, in ms (None without data).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Default)]
pub struct Spread {
    pub n: usize,
    pub p50_ms: Option<i64>,
    pub p90_ms: Option<i64>,
}

/// One row of the turnaround table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub kind: Kind,
    pub priority: Priority,
    pub sending_site: String,
    pub count: usize,
    /// received → claimed
    pub claimed: Spread,
    /// claimed → signed
    pub signed: Spread,
    /// signed → acknowledged
    pub acknowledged: Spread,
    /// Of the signed ones, the share signed within the service level (from ready); None when
    /// none is signed.
    pub within_sla: Option<f64>,
}

/// The nearest-rank percentile `p` (0–100) of sorted values.
fn percentile(sorted: &[i64], p: f64) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    Some(sorted[rank.min(sorted.len()) - 1])
}

fn spread(mut v: Vec<i64>) -> Spread {
    v.sort_unstable();
    Spread { n: v.len(), p50_ms: percentile(&v, 50.0), p90_ms: percentile(&v, 90.0) }
}

/// The table, sorted by kind, priority (STAT first) and sending site.
pub fn turnaround(times: &[Times], sla_ms: impl Fn(Priority) -> i64) -> Vec<Row> {
    let mut groups: std::collections::BTreeMap<(Kind, Priority, String), Vec<&Times>> =
        Default::default();
    for t in times {
        groups.entry((t.kind, t.priority, t.sending_site.clone())).or_default().push(t);
    }
    groups
        .into_iter()
        .map(|((kind, priority, sending_site), ts)| {
            let gap = |a: Option<i64>, b: Option<i64>| Some(b? - a?).filter(|d| *d >= 0);
            let claimed = ts.iter().filter_map(|t| gap(Some(t.received_at), t.claimed_at));
            let signed = ts.iter().filter_map(|t| gap(t.claimed_at, t.signed_at));
            let acked = ts.iter().filter_map(|t| gap(t.signed_at, t.acknowledged_at));
            let done: Vec<&&Times> = ts.iter().filter(|t| t.signed_at.is_some()).collect();
            let within = done
                .iter()
                .filter(|t| {
                    let start = t.ready_at.unwrap_or(t.received_at);
                    t.signed_at.is_some_and(|s| s - start <= sla_ms(priority))
                })
                .count();
            Row {
                kind,
                priority,
                sending_site,
                count: ts.len(),
                claimed: spread(claimed.collect()),
                signed: spread(signed.collect()),
                acknowledged: spread(acked.collect()),
                within_sla: (!done.is_empty()).then(|| within as f64 / done.len() as f64),
            }
        })
        .collect()
}

/// The table as CSV (durations in seconds).
pub fn csv(rows: &[Row]) -> String {
    let mut out = String::from(
        "kind,priority,sending_site,count,claimed_p50_s,claimed_p90_s,signed_p50_s,signed_p90_s,acknowledged_p50_s,acknowledged_p90_s,within_sla\n",
    );
    let s = |v: Option<i64>| v.map(|ms| format!("{:.0}", ms as f64 / 1000.0)).unwrap_or_default();
    for r in rows {
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{}\n",
            r.kind,
            r.priority,
            r.sending_site,
            r.count,
            s(r.claimed.p50_ms),
            s(r.claimed.p90_ms),
            s(r.signed.p50_ms),
            s(r.signed.p90_ms),
            s(r.acknowledged.p50_ms),
            s(r.acknowledged.p90_ms),
            r.within_sla.map(|w| format!("{w:.3}")).unwrap_or_default(),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(received: i64, claimed: i64, signed: Option<i64>, acked: Option<i64>) -> Times {
        Times {
            kind: Kind::Imaging,
            priority: Priority::Urgent,
            sending_site: "island-clinic".into(),
            received_at: received,
            ready_at: Some(received),
            claimed_at: Some(claimed),
            signed_at: signed,
            acknowledged_at: acked,
        }
    }

    #[test]
    fn percentiles_and_service_level() {
        const MIN: i64 = 60_000;
        // Ten urgent CTs: claimed after 1..=10 minutes, signed 10 minutes after the claim,
        // acknowledged 5 minutes after signing; the last two never signed.
        let times: Vec<Times> = (1..=10)
            .map(|i| {
                let signed = (i <= 8).then_some(i * MIN + 10 * MIN);
                t(0, i * MIN, signed, signed.map(|s| s + 5 * MIN))
            })
            .collect();
        // Service level 15 minutes: signed at 11..=18 minutes, so 11–15 are within: 5 of 8.
        let rows = turnaround(&times, |_| 15 * MIN);
        assert_eq!(rows.len(), 1);
        let r = &rows[0];
        assert_eq!(r.count, 10);
        assert_eq!((r.claimed.p50_ms, r.claimed.p90_ms), (Some(5 * MIN), Some(9 * MIN)));
        assert_eq!((r.signed.n, r.signed.p50_ms), (8, Some(10 * MIN)));
        assert_eq!(r.acknowledged.p90_ms, Some(5 * MIN));
        assert_eq!(r.within_sla, Some(5.0 / 8.0));
        let csv = csv(&rows);
        assert_eq!(
            csv.lines().nth(1),
            Some("imaging,urgent,island-clinic,10,300,540,600,600,300,300,0.625")
        );
    }
}
