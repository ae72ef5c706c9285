//! The HTTP surface: routes, and thin handlers that parse input, obtain permits through
//! `RequestCtx`, call the domain and storage functions, and shape the output.

mod admin;
mod ops;
mod session;

use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::DefaultBodyLimit;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{delete, get, post, put};
use tower::ServiceBuilder;

use crate::broadcast::http as broadcast;
use crate::broadcast::http_materials as broadcast_materials;
use crate::broadcast::http_questions as broadcast_questions;
use crate::broadcast::http_stage as broadcast_stage;
use crate::consult::http as consult;
use crate::error::ApiError;
use crate::reading::http as reading;
use crate::state::AppState;

pub fn router(state: AppState) -> Router {
    let limit = state.settings.http.max_body_bytes;
    let api = Router::new()
        .route("/auth/login", post(session::login))
        .route("/auth/logout", post(session::logout))
        .route("/me", get(session::me))
        .route("/sites", get(admin::list_sites).post(admin::create_site))
        .route("/sites/{site}", get(admin::get_site))
        .route("/people", get(admin::people))
        .route("/sites/{site}/users", get(admin::list_users).post(admin::create_user))
        .route("/sites/{site}/devices", get(admin::list_devices).post(admin::create_device))
        .route("/devices/{device}", delete(admin::delete_device))
        .route(
            "/devices/{device}/tokens",
            get(admin::list_device_tokens).post(admin::create_device_token),
        )
        .route("/device-tokens/{token}", delete(admin::revoke_device_token))
        .route("/sites/{site}/routing-rules", get(reading::rules).post(reading::add_rule))
        .route("/routing-rules/{id}", delete(reading::delete_rule))
        .route(
            "/sites/{site}/reading-templates",
            get(reading::templates).put(reading::put_template).delete(reading::delete_template),
        )
        .route("/readings", get(reading::list).post(reading::create))
        .route("/readings/{id}", get(reading::get))
        .route("/readings/{id}/send", post(reading::send))
        .route("/readings/{id}/cancel", post(reading::cancel))
        .route("/readings/{id}/claim", post(reading::claim))
        .route("/readings/{id}/release", post(reading::release))
        .route("/readings/{id}/reassign", post(reading::reassign))
        .route("/readings/{id}/draft", post(reading::draft))
        .route("/readings/{id}/sign", post(reading::sign))
        .route("/readings/{id}/amend", post(reading::amend))
        .route("/readings/{id}/acknowledge", post(reading::acknowledge))
        .route("/readings/{id}/submit", post(reading::submit))
        .route("/readings/{id}/critical", post(reading::raise))
        .route("/readings/{id}/report.pdf", get(reading::report_pdf))
        .route("/critical", get(reading::criticals))
        .route("/reading-stats", get(reading::stats))
        .route("/critical/{id}/acknowledge", post(reading::acknowledge_critical))
        .route("/critical/{id}/calls", post(reading::log_call))
        .route("/users/{user}", get(admin::get_user).patch(admin::update_user))
        .route("/users/{user}/tokens", get(admin::list_tokens).post(admin::create_token))
        .route("/tokens/{token}", delete(admin::revoke_token))
        .route("/audit", get(admin::audit_json))
        .route("/audit.csv", get(admin::audit_csv))
        .route("/studies/{study}/shares", post(crate::dicomweb::share))
        .route("/turn", get(crate::signal::turn::credentials))
        .route("/ws", get(crate::signal::ws::upgrade))
        .route("/consults", get(consult::list).post(consult::create))
        .route("/consults/{id}", get(consult::get))
        .route("/consults/{id}/accept", post(consult::accept))
        .route("/consults/{id}/decline", post(consult::decline))
        .route("/consults/{id}/cancel", post(consult::cancel))
        .route("/consults/{id}/complete", post(consult::complete))
        .route("/consults/{id}/opinions", post(consult::sign))
        .route("/consults/{id}/acknowledge", post(consult::acknowledge))
        .route("/specialists", get(consult::specialists))
        .route("/broadcasts", get(broadcast::list).post(broadcast::create))
        .route("/broadcasts/library", get(crate::broadcast::http_library::library))
        .route("/broadcasts/{id}", get(broadcast::get))
        .route("/broadcasts/{id}/end", post(broadcast::end))
        .route("/broadcasts/{id}/health", get(crate::broadcast::http_health::health))
        .route(
            "/broadcasts/{id}/materials",
            get(broadcast_materials::list).post(broadcast_materials::upload),
        )
        .route(
            "/broadcasts/{id}/materials/{m}",
            get(broadcast_materials::get).delete(broadcast_materials::remove),
        )
        .route("/broadcasts/{id}/calendar.ics", get(broadcast::calendar))
        .route("/broadcasts/{id}/attendance", get(broadcast::attendance_report))
        .route("/broadcasts/{id}/recordings", get(broadcast::recordings))
        .route("/broadcasts/{id}/recordings/{rec}", get(broadcast::recording))
        .route(
            "/broadcasts/{id}/questions",
            get(broadcast_questions::list).post(broadcast_questions::ask),
        )
        .route("/broadcasts/{id}/questions/{q}/vote", put(broadcast_questions::vote))
        .route("/broadcasts/{id}/questions/{q}/answered", put(broadcast_questions::answered))
        .route("/broadcasts/{id}/hand", put(broadcast_questions::hand))
        .route("/broadcasts/{id}/whip", post(broadcast::whip))
        .route("/broadcasts/{id}/whep", post(broadcast::whep))
        .route("/broadcasts/{id}/whip/{peer}", delete(broadcast::hang_up))
        .route(
            "/broadcasts/{id}/stage",
            get(broadcast_stage::get).put(broadcast_stage::invite).delete(broadcast_stage::end),
        )
        .route("/broadcasts/{id}/stage/whip", post(broadcast_stage::whip))
        .route("/broadcasts/{id}/stage/whip/{peer}", delete(broadcast::hang_up))
        .route("/broadcasts/{id}/whep/{peer}", delete(broadcast::hang_up))
        .route("/ecgs", get(crate::ecg::http::list).post(crate::ecg::http::create))
        .route("/ecgs/{id}", get(crate::ecg::http::get))
        .route("/ecgs/{id}/waveform", get(crate::ecg::http::waveform))
        .route("/ecgs/{id}/rendered", get(crate::ecg::http::rendered))
        .route("/ecgs/{id}/original", get(crate::ecg::http::original))
        .route("/uploads", post(crate::upload::create).options(crate::upload::options))
        .route(
            "/uploads/{id}",
            get(crate::upload::status)
                .head(crate::upload::head)
                .patch(crate::upload::patch)
                .delete(crate::upload::terminate),
        )
        .fallback(|| async { ApiError::NotFound { what: "API route" } })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed });

    Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/viewer", get(crate::viewer::serve))
        .route("/viewer/{*rest}", get(crate::viewer::serve))
        .nest("/api", api)
        .route("/fhir/ServiceRequest", get(reading::fhir_service_requests))
        .route("/fhir/ServiceRequest/{id}", get(reading::fhir_service_request))
        .route("/fhir/DiagnosticReport", get(reading::fhir_diagnostic_reports))
        .route("/fhir/DiagnosticReport/{id}", get(reading::fhir_diagnostic_report))
        .nest(
            "/dicomweb",
            crate::dicomweb::router()
                .fallback(|| async { ApiError::NotFound { what: "DICOMweb route" } })
                .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed }),
        )
        .fallback(crate::web::serve)
        .layer(
            ServiceBuilder::new()
                .layer(axum::middleware::from_fn_with_state(state.clone(), track))
                .layer(axum::middleware::from_fn_with_state(state.clone(), body_stall_guard))
                .layer(axum::middleware::map_response(security_headers))
                .layer(DefaultBodyLimit::max(limit)),
        )
        .layer(compression())
        .with_state(state)
}

/// Middleware: a request body that sends no byte for `http.body_stall_secs` ends with an
/// error, as if the connection had dropped. On a cut link the connection may never report
/// its death; without this, the request (and whatever it holds, such as an upload) would
/// wait for ever.
async fn body_stall_guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let stall = Duration::from_secs(state.settings.http.body_stall_secs);
    let (parts, body) = req.into_parts();
    next.run(Request::from_parts(parts, guard_body(body, stall))).await
}

/// `body`, ending with a `TimedOut` error when no data comes for `stall`.
pub fn guard_body(body: Body, stall: Duration) -> Body {
    use axum::body::HttpBody;
    use futures::StreamExt;
    if body.size_hint().exact() == Some(0) {
        return body;
    }
    let frames = body.into_data_stream();
    Body::from_stream(futures::stream::unfold(Some(frames), move |frames| async move {
        let mut frames = frames?;
        match tokio::time::timeout(stall, frames.next()).await {
            Ok(Some(Ok(b))) => Some((Ok(b), Some(frames))),
            Ok(Some(Err(e))) => Some((Err(std::io::Error::other(e)), None)),
            Ok(None) => None,
            Err(_) => Some((
                Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "request body stalled")),
                None,
            )),
        }
    }))
}

/// gzip or brotli, as the browser accepts, for text: the app's files, JSON and DICOM JSON
/// (QIDO results and metadata compress five- to tenfold). Not for instances, frames or images,
/// which are binary and mostly compressed already.
fn compression()
-> tower_http::compression::CompressionLayer<impl tower_http::compression::Predicate> {
    use tower_http::compression::predicate::{Predicate, SizeAbove};
    let textual = |_: axum::http::StatusCode,
                   _: axum::http::Version,
                   headers: &axum::http::HeaderMap,
                   _: &axum::http::Extensions| {
        let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        let ct = ct.split(';').next().unwrap_or("").trim();
        ct.starts_with("text/")
            || matches!(
                ct,
                "application/json"
                    | "application/dicom+json"
                    | "application/problem+json"
                    | "application/javascript"
                    | "image/svg+xml"
            )
    };
    tower_http::compression::CompressionLayer::new()
        .no_deflate()
        .no_zstd()
        .quality(tower_http::CompressionLevel::Default)
        .compress_when(SizeAbove::new(512).and(textual))
}

/// Headers every response carries.
async fn security_headers(mut resp: axum::response::Response) -> axum::response::Response {
    let h = resp.headers_mut();
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    // Same origin only: the call page shows the viewer beside the call in a frame.
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("SAMEORIGIN"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

/// Middleware: times each request and records it under its route template. Paths that match
/// no API route are the web app's (`web`).
pub async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = crate::metrics::method_label(req.method()).to_string();
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
