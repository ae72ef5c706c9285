//! `GET /api/broadcasts/library`: the training library — sessions that are over (ended by
//! their trainer, or past their scheduled end), the most recent first, each with its
//! recordings and materials, for the people of the sites that saw them.

use axum::Json;
use serde_json::{Value, json};

use super::http::{recording_view, view, visible_pages};
use super::{http_materials, store};
use crate::auth::RequestCtx;
use crate::auth::policy::{BroadcastSearch, Permit, Target};
use crate::error::ApiError;

/// The most sessions the library lists.
pub const LIBRARY_SIZE: usize = 200;

pub async fn library(ctx: RequestCtx) -> Result<Json<Value>, ApiError> {
    let permit: Permit<BroadcastSearch> = ctx.permit(Target::network()).await?;
    let now = ctx.now();
    let db = &ctx.state.db;
    let seen = visible_pages(&ctx, LIBRARY_SIZE, |page, offset| {
        store::past(db, &permit, now, page, offset)
    })
    .await?;
    let ids: Vec<String> = seen.iter().map(|b| b.id.clone()).collect();
    let (recordings, materials) = store::library_files(&ctx.state.db, &permit, &ids).await?;
    let out: Vec<Value> = seen
        .iter()
        .map(|b| {
            let mut v = view(b, now);
            v["recordings"] = recordings
                .iter()
                .filter(|r| r.broadcast_id == b.id)
                .map(recording_view)
                .collect::<Vec<_>>()
                .into();
            v["materials"] = materials
                .iter()
                .filter(|m| m.broadcast_id == b.id)
                .map(|m| http_materials::view(&b.id, m))
                .collect::<Vec<_>>()
                .into();
            v
        })
        .collect();
    Ok(Json(json!({ "broadcasts": out })))
}
