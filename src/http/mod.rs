//! The HTTP surface: routes, and thin handlers that parse input, obtain permits through
//! `RequestCtx`, call the domain and storage functions, and shape the output.

mod admin;
mod ops;
mod session;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, header};
use axum::routing::{delete, get, post};
use tower::ServiceBuilder;

use crate::app::AppState;
use crate::consult::http as consult;
use crate::error::ApiError;

pub fn router(state: AppState) -> Router {
    let limit = state.settings.http.max_body_bytes;
    let api = Router::new()
        .route("/auth/login", post(session::login))
        .route("/auth/logout", post(session::logout))
        .route("/me", get(session::me))
        .route("/sites", get(admin::list_sites).post(admin::create_site))
        .route("/sites/{site}", get(admin::get_site))
        .route("/sites/{site}/users", get(admin::list_users).post(admin::create_user))
        .route("/sites/{site}/devices", get(admin::list_devices).post(admin::create_device))
        .route("/devices/{device}", delete(admin::delete_device))
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
        .nest(
            "/dicomweb",
            crate::dicomweb::router()
                .fallback(|| async { ApiError::NotFound { what: "DICOMweb route" } })
                .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed }),
        )
        .fallback(crate::web::serve)
        .layer(
            ServiceBuilder::new()
                .layer(axum::middleware::from_fn_with_state(state.clone(), crate::metrics::track))
                .layer(axum::middleware::map_response(security_headers))
                .layer(DefaultBodyLimit::max(limit)),
        )
        .with_state(state)
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
