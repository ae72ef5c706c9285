//! Operations endpoints: liveness, readiness, metrics.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde_json::json;

use crate::state::AppState;

/// Alive: the process answers.
pub async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

/// Ready: the database and the object store answer within two seconds each.
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let limit = Duration::from_secs(2);
    let (db, objects) = tokio::join!(
        tokio::time::timeout(limit, state.db.ping()),
        tokio::time::timeout(limit, state.objects.ping()),
    );
    let check = |ok: bool| if ok { "ok" } else { "unreachable" };
    let db_ok = matches!(db, Ok(Ok(())));
    let obj_ok = matches!(objects, Ok(Ok(())));
    if !db_ok {
        tracing::warn!(backend = state.db.backend().name(), "readiness: database unreachable");
    }
    if !obj_ok {
        tracing::warn!(store = state.objects.kind(), "readiness: object store unreachable");
    }
    let status = if db_ok && obj_ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (
        status,
        Json(json!({
            "status": if status == StatusCode::OK { "ready" } else { "not ready" },
            "checks": {
                "database": {"backend": state.db.backend().name(), "status": check(db_ok)},
                "objects": {"backend": state.objects.kind(), "status": check(obj_ok)},
            }
        })),
    )
}

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let mut text = state.metrics.render(state.hub.sockets());
    match crate::reading::store::waiting(&state.db).await {
        Ok(w) => text.push_str(&crate::metrics::reading_waiting(&w, crate::time::now_ms())),
        Err(e) => tracing::warn!(error = %e, "the reading worklist gauges could not be read"),
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text)
}
