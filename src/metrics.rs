//! Request metrics in the Prometheus text format: a counter and a latency histogram per
//! (method, route template, status). Route templates, not paths, keep the label set bounded.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::app::AppState;

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

/// Middleware: times each request and records it under its route template. Paths that match
/// no API route are the web app's (`web`).
pub async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().as_str().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| {
            if req.uri().path().starts_with("/api/") { "unmatched".into() } else { "web".into() }
        });
    let resp = next.run(req).await;
    let status = resp.status();
    let secs = start.elapsed().as_secs_f64();
    state.metrics.observe(&method, &route, status.as_u16(), secs);
    // Paths and query strings may carry patient identifiers later (QIDO): log the template only.
    tracing::debug!(%method, %route, status = status.as_u16(), ms = secs * 1000.0, "request");
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

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
