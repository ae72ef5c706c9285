//! Request metrics in the Prometheus text format: a counter and a latency histogram per
//! (method, route template, status). Route templates, not paths, keep the label set bounded.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

const BUCKETS: [f64; 12] =
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

#[derive(Default)]
struct Series {
    count: u64,
    sum: f64,
    buckets: [u64; BUCKETS.len()],
}

#[derive(Default)]
pub struct Metrics {
    series: Mutex<BTreeMap<(String, String, u16), Series>>,
}

impl Metrics {
    pub fn observe(&self, method: &str, route: &str, status: u16, secs: f64) {
        let mut m = self.series.lock().unwrap_or_else(|p| p.into_inner());
        let s = m.entry((method.to_string(), route.to_string(), status)).or_default();
        s.count += 1;
        s.sum += secs;
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                s.buckets[i] += 1;
            }
        }
    }

    /// The Prometheus text; `sockets` is the signalling sockets open now.
    pub fn render(&self, sockets: usize) -> String {
        let m = self.series.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::new();
        out.push_str("# HELP ferry_http_requests_total HTTP requests answered.\n");
        out.push_str("# TYPE ferry_http_requests_total counter\n");
        for ((method, route, status), s) in m.iter() {
            let _ = writeln!(
                out,
                "ferry_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {}",
                s.count
            );
        }
        out.push_str("# HELP ferry_http_request_duration_seconds Time to answer HTTP requests.\n");
        out.push_str("# TYPE ferry_http_request_duration_seconds histogram\n");
        for ((method, route, status), s) in m.iter() {
            let labels = format!("method=\"{method}\",route=\"{route}\",status=\"{status}\"");
            for (i, b) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "ferry_http_request_duration_seconds_bucket{{{labels},le=\"{b}\"}} {}",
                    s.buckets[i]
                );
            }
            let _ = writeln!(
                out,
                "ferry_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                s.count
            );
            let _ = writeln!(out, "ferry_http_request_duration_seconds_sum{{{labels}}} {}", s.sum);
            let _ =
                writeln!(out, "ferry_http_request_duration_seconds_count{{{labels}}} {}", s.count);
        }
        out.push_str("# HELP ferry_signal_sockets Signalling WebSockets open now.\n");
        out.push_str("# TYPE ferry_signal_sockets gauge\n");
        let _ = writeln!(out, "ferry_signal_sockets {}", sockets);
        out
    }
}

/// The method as a metric label: the standard methods by name, anything else (a client may
/// send any token as a method) as `other`, so the label set stays bounded.
pub fn method_label(m: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    const KNOWN: [(Method, &str); 9] = [
        (Method::GET, "GET"),
        (Method::HEAD, "HEAD"),
        (Method::POST, "POST"),
        (Method::PUT, "PUT"),
        (Method::PATCH, "PATCH"),
        (Method::DELETE, "DELETE"),
        (Method::OPTIONS, "OPTIONS"),
        (Method::CONNECT, "CONNECT"),
        (Method::TRACE, "TRACE"),
    ];
    KNOWN.iter().find(|(k, _)| k == m).map_or("other", |(_, n)| n)
}

/// Gauges of the reading worklists: requests waiting to be read (ready or claimed) per
/// priority, and how long the oldest has waited. Every priority is present (0 when none).
pub fn reading_waiting(rows: &[(crate::reading::Priority, i64, i64)], now: i64) -> String {
    let mut out = String::new();
    out.push_str(
        "# HELP ferry_reading_waiting Reading requests waiting to be read (ready or claimed).\n",
    );
    out.push_str("# TYPE ferry_reading_waiting gauge\n");
    for p in crate::reading::Priority::ALL {
        let n = rows.iter().find(|r| r.0 == *p).map_or(0, |r| r.1);
        let _ = writeln!(out, "ferry_reading_waiting{{priority=\"{p}\"}} {n}");
    }
    out.push_str("# HELP ferry_reading_oldest_waiting_seconds How long the oldest waiting request has waited.\n");
    out.push_str("# TYPE ferry_reading_oldest_waiting_seconds gauge\n");
    for p in crate::reading::Priority::ALL {
        let age = rows.iter().find(|r| r.0 == *p).map_or(0, |r| ((now - r.2).max(0)) / 1000);
        let _ = writeln!(out, "ferry_reading_oldest_waiting_seconds{{priority=\"{p}\"}} {age}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_outside_the_standard_set_share_one_label() {
        use axum::http::Method;
        assert_eq!(method_label(&Method::PATCH), "PATCH");
        for odd in ["FROB", "X-PATIENT-NAME", "get"] {
            assert_eq!(method_label(&Method::from_bytes(odd.as_bytes()).unwrap()), "other");
        }
    }

    #[test]
    fn renders_counters_and_cumulative_buckets() {
        let m = Metrics::default();
        m.observe("GET", "/api/sites", 200, 0.003);
        m.observe("GET", "/api/sites", 200, 0.2);
        let text = m.render(0);
        assert!(text.contains(
            "ferry_http_requests_total{method=\"GET\",route=\"/api/sites\",status=\"200\"} 2"
        ));
        assert!(text.contains("route=\"/api/sites\",status=\"200\",le=\"0.005\"} 1"));
        assert!(text.contains("route=\"/api/sites\",status=\"200\",le=\"0.25\"} 2"));
        assert!(text.contains("le=\"+Inf\"} 2"));
    }
}
