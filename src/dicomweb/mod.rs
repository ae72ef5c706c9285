//! DICOMweb over HTTP (`/dicomweb`): STOW-RS in, QIDO-RS search, WADO-RS retrieve. Thin:
//! parsing and checking are in `archive::parse`, the index in `archive::store`, and every
//! access goes through the policy (`ImagingStore`, `ImagingSearch`, `ImagingRead`).

use axum::Router;
use axum::body::Body;
use axum::extract::RawQuery;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use serde_json::Value;

use crate::archive::is_uid;
use crate::archive::json::{self, StowItem};
use crate::archive::status::*;
use crate::archive::store::{self, StudyQuery};
use crate::audit::Outcome;
use crate::auth::RequestCtx;
use crate::auth::policy::{ImagingRead, ImagingSearch, ImagingStore, Permit, StudyShare, Target};
use crate::error::{ApiError, JsonBody, PathParams};
use crate::network::SiteId;
use crate::state::AppState;

mod metadata;
mod multipart;
mod negotiate;
mod qido;
mod render;
mod shares;
mod stow;
mod wado;

pub(crate) use qido::study_permit;
pub use shares::share;
// The handlers and the pieces they share, by name for the router and for each other.
use metadata::*;
use qido::*;
use stow::*;
use wado::*;

pub const DICOM_JSON: &str = "application/dicom+json";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/studies", get(search_studies).post(stow))
        .route("/studies/{study}", get(retrieve_level).post(stow_into))
        .route("/studies/{study}/series", get(search_series))
        .route("/studies/{study}/series/{series}", get(retrieve_level))
        .route("/studies/{study}/series/{series}/instances", get(search_instances))
        .route("/studies/{study}/instances", get(search_study_instances))
        .route("/series", get(search_all_series))
        .route("/instances", get(search_all_instances))
        .route("/studies/{study}/series/{series}/instances/{instance}", get(retrieve_level))
        .route("/studies/{study}/metadata", get(metadata_level))
        .route("/studies/{study}/series/{series}/metadata", get(metadata_level))
        .route(
            "/studies/{study}/series/{series}/instances/{instance}/metadata",
            get(metadata_level),
        )
        .route("/studies/{study}/series/{series}/instances/{instance}/frames/{frames}", get(frames))
        .route("/studies/{study}/rendered", get(render::rendered))
        .route("/studies/{study}/series/{series}/rendered", get(render::rendered))
        .route(
            "/studies/{study}/series/{series}/instances/{instance}/rendered",
            get(render::rendered),
        )
        .route(
            "/studies/{study}/series/{series}/instances/{instance}/frames/{frames}/rendered",
            get(render::rendered),
        )
        .route("/studies/{study}/thumbnail", get(render::thumbnail))
        .route("/studies/{study}/series/{series}/thumbnail", get(render::thumbnail))
        .route(
            "/studies/{study}/series/{series}/instances/{instance}/thumbnail",
            get(render::thumbnail),
        )
        .route(
            "/studies/{study}/series/{series}/instances/{instance}/frames/{frames}/thumbnail",
            get(render::thumbnail),
        )
        .route(
            "/studies/{study}/series/{series}/instances/{instance}/bulkdata/{*path}",
            get(bulkdata),
        )
}

fn dicom_json(status: StatusCode, v: Value) -> Response {
    let mut r = (status, v.to_string()).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(DICOM_JSON));
    r
}

fn base_url(ctx: &RequestCtx, headers: &HeaderMap) -> String {
    let scheme = if ctx.state.settings.tls_enabled() { "https" } else { "http" };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
    format!("{scheme}://{host}/dicomweb")
}

/// A study, series, instance or frames addressed by the path
/// (`{study}[/series/{series}[/instances/{instance}[/frames/{frames}]]]`).
struct Level {
    study: String,
    series: Option<String>,
    instance: Option<String>,
    frames: Option<String>,
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Level {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        let PathParams(mut m) =
            PathParams::<std::collections::HashMap<String, String>>::from_request_parts(
                parts, state,
            )
            .await?;
        Ok(Level {
            study: m.remove("study").ok_or(ApiError::NotFound { what: "study" })?,
            series: m.remove("series"),
            instance: m.remove("instance"),
            frames: m.remove("frames"),
        })
    }
}
